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
