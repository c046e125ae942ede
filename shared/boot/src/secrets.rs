//! Secrets Manager: credentials the environment names by reference
//! (`X_SECRET_ID` for a variable `X`), fetched once per cold start.

use crate::deps::BootError;
use crate::settings::Secret;
use std::collections::HashMap;

/// The secret's string value. `what` names the variable it stands for, so
/// an error says which credential is missing without showing any value.
pub async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    what: &str,
) -> Result<String, BootError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            BootError::Secret(format!(
                "cannot read secret \"{id}\" for {what} from Secrets Manager: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    out.secret_string().map(str::to_string).ok_or_else(|| {
        BootError::Secret(format!(
            "secret \"{id}\" for {what} has no string value (binary secrets are not supported)"
        ))
    })
}

/// For each variable in `vars` that `lookup` does not set but whose
/// `<VAR>_SECRET_ID` it does, the secret's value.
pub async fn credential_overlay(
    vars: &[String],
    lookup: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    client: &aws_sdk_secretsmanager::Client,
) -> Result<HashMap<String, Secret>, BootError> {
    let mut out = HashMap::new();
    for var in vars {
        if lookup(var).is_some() || out.contains_key(var) {
            continue;
        }
        if let Some(id) = lookup(&format!("{var}_SECRET_ID")) {
            out.insert(var.clone(), Secret(fetch(client, &id, var).await?));
        }
    }
    Ok(out)
}

/// OAuth access tokens shared between cold starts through Secrets Manager
/// (encrypted at rest with KMS), one secret per tool server:
/// `{prefix}oauth/{server}`, holding the token and when to stop using it.
pub struct SecretsTokenStore {
    pub client: aws_sdk_secretsmanager::Client,
    pub prefix: String,
}

impl SecretsTokenStore {
    fn name(&self, server: &str) -> String {
        format!("{}oauth/{server}", self.prefix)
    }
}

#[async_trait::async_trait]
impl mktg_tools::oauth::TokenStore for SecretsTokenStore {
    async fn get(&self, server: &str) -> Option<mktg_tools::oauth::AccessToken> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(self.name(server))
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(out.secret_string()?).ok()?;
        Some(mktg_tools::oauth::AccessToken::from_stored(
            v.get("access_token")?.as_str()?.to_string(),
            v.get("refresh_at_epoch").and_then(|t| t.as_u64()),
        ))
    }

    async fn put(&self, server: &str, token: &mktg_tools::oauth::AccessToken) {
        let body = serde_json::json!({
            "access_token": token.value,
            "refresh_at_epoch": token.refresh_at_epoch,
        })
        .to_string();
        let name = self.name(server);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&body)
            .send()
            .await;
        if let Err(e) = put {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception());
            let created = if missing {
                self.client
                    .create_secret()
                    .name(&name)
                    .secret_string(&body)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
            } else {
                Err(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
            };
            if let Err(e) = created {
                // The token still works in this process; the next cold
                // start refreshes again.
                tracing::warn!(%name, "could not store the access token: {e}");
            }
        }
    }
}
