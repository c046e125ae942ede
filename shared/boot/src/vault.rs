//! Where a tenant's own tool credentials are kept: one Secrets Manager
//! secret per tenant and server (`{prefix}tenants/{tenant}/tools/{server}`,
//! a JSON object of variable → value, encrypted at rest with KMS), written
//! by the API when the tenant connects a server and read by the agent and
//! the tool invoker. Values never reach the table, the logs or an answer.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use mktg_core::TenantId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub type Values = BTreeMap<String, String>;

#[async_trait::async_trait]
pub trait Vault: Send + Sync {
    /// Stores (replaces) the tenant's credentials for `server`.
    async fn put(&self, tenant: &TenantId, server: &str, values: &Values) -> Result<(), String>;
    /// The credentials stored for `server`; `version` is the connection's
    /// (a reader may keep what it read for the same version).
    async fn get(
        &self,
        tenant: &TenantId,
        server: &str,
        version: u64,
    ) -> Result<Option<Values>, String>;
    /// Forgets them, and an OAuth access token minted with connection
    /// `version` (nothing stored is fine).
    async fn delete(&self, tenant: &TenantId, server: &str, version: u64) -> Result<(), String>;
}

/// In-process vault for `mktg dev` and the memory tests.
#[derive(Default)]
pub struct MemoryVault(Mutex<HashMap<(String, String), Values>>);

#[async_trait::async_trait]
impl Vault for MemoryVault {
    async fn put(&self, tenant: &TenantId, server: &str, values: &Values) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .insert((tenant.to_string(), server.to_string()), values.clone());
        Ok(())
    }
    async fn get(&self, tenant: &TenantId, server: &str, _: u64) -> Result<Option<Values>, String> {
        Ok(self
            .0
            .lock()
            .map_err(|e| e.to_string())?
            .get(&(tenant.to_string(), server.to_string()))
            .cloned())
    }
    async fn delete(&self, tenant: &TenantId, server: &str, _: u64) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .remove(&(tenant.to_string(), server.to_string()));
        Ok(())
    }
}

/// Secrets Manager vault; what it read is kept per connection version for
/// the life of the process, so a warm function reads a secret once.
pub struct SecretsVault {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    read: Mutex<HashMap<(String, u64), Values>>,
}

impl SecretsVault {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: &str) -> Self {
        SecretsVault {
            client,
            prefix: prefix.to_string(),
            read: Mutex::new(HashMap::new()),
        }
    }

    /// The secret's name for a tenant's server.
    pub fn name(&self, tenant: &TenantId, server: &str) -> String {
        format!("{}tenants/{tenant}/tools/{server}", self.prefix)
    }
}

#[async_trait::async_trait]
impl Vault for SecretsVault {
    async fn put(&self, tenant: &TenantId, server: &str, values: &Values) -> Result<(), String> {
        let name = self.name(tenant, server);
        let body = serde_json::to_string(values).map_err(|e| e.to_string())?;
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&body)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&name)
                    .description(format!(
                        "mktg: {tenant}'s credentials for tool server {server}"
                    ))
                    .secret_string(&body)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "cannot create secret \"{name}\": {}",
                            DisplayErrorContext(&e)
                        )
                    })
            }
            Err(e) => Err(format!(
                "cannot write secret \"{name}\": {}",
                DisplayErrorContext(&e)
            )),
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        server: &str,
        version: u64,
    ) -> Result<Option<Values>, String> {
        let name = self.name(tenant, server);
        if let Some(v) = self
            .read
            .lock()
            .map_err(|e| e.to_string())?
            .get(&(name.clone(), version))
        {
            return Ok(Some(v.clone()));
        }
        let out = match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(format!(
                    "cannot read secret \"{name}\": {}",
                    DisplayErrorContext(&e)
                ))
            }
        };
        let values: Values = serde_json::from_str(out.secret_string().unwrap_or("{}"))
            .map_err(|e| format!("secret \"{name}\" is not a JSON object of strings: {e}"))?;
        let mut read = self.read.lock().map_err(|e| e.to_string())?;
        read.retain(|(n, _), _| n != &name);
        read.insert((name, version), values.clone());
        Ok(Some(values))
    }

    async fn delete(&self, tenant: &TenantId, server: &str, version: u64) -> Result<(), String> {
        let name = self.name(tenant, server);
        self.read
            .lock()
            .map_err(|e| e.to_string())?
            .retain(|(n, _), _| n != &name);
        // The token first: the credentials are what a retry looks for.
        let token = format!(
            "{}oauth/{}",
            self.prefix,
            mktg_tools::Credentials::token_key(server, tenant.as_str(), version)
        );
        for secret in [token, name] {
            match self
                .client
                .delete_secret()
                .secret_id(&secret)
                .force_delete_without_recovery(true)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot delete secret \"{secret}\": {}",
                        DisplayErrorContext(&e)
                    ))
                }
            }
        }
        Ok(())
    }
}
