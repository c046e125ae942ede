//! A tenant's own tool connections: its credentials for a server of
//! tools.yaml or the catalogue, kept in the vault (Secrets Manager when
//! deployed). The settings document records only which variables were set,
//! by whom and when; no value is ever written anywhere else or returned.

use crate::ActionError;
use mktg_boot::tenant::{self, Item, ToolConnection};
use mktg_boot::Deps;
use mktg_core::TenantId;
use std::collections::BTreeMap;

/// Longest credential value accepted, in bytes.
pub const MAX_VALUE: usize = 8_192;

/// The definition of a server a tenant may connect (tools.yaml's or the
/// catalogue's), or a not-found naming the known ones.
pub fn server_def<'a>(
    deps: &'a Deps,
    server: &str,
) -> Result<&'a mktg_config::ToolServer, ActionError> {
    deps.config.connectable(server).ok_or_else(|| {
        let known: Vec<&str> = deps
            .config
            .tools
            .servers
            .keys()
            .chain(deps.config.catalog.servers.keys())
            .map(String::as_str)
            .collect();
        ActionError::NotFound(format!(
            "no tool server \"{server}\" in tools.yaml or the catalogue; known: {}",
            known.join(", ")
        ))
    })
}

/// Stores the tenant's credentials for `server` and records the connection
/// with a new version, so warm functions reconnect with the new values.
/// Every name must be a variable the server reads; values are one line.
pub async fn connect(
    deps: &Deps,
    tenant: &TenantId,
    server: &str,
    credentials: &BTreeMap<String, String>,
    by: &str,
) -> Result<ToolConnection, ActionError> {
    let vars = server_def(deps, server)?.credential_vars();
    if vars.is_empty() {
        return Err(ActionError::Invalid(format!(
            "tool server \"{server}\" reads no credentials: it is ready to use as it is"
        )));
    }
    if credentials.is_empty() {
        return Err(ActionError::Invalid(format!(
            "no credentials given; tool server \"{server}\" reads {}",
            vars.join(", ")
        )));
    }
    for (name, value) in credentials {
        if !vars.contains(name) {
            return Err(ActionError::Invalid(format!(
                "tool server \"{server}\" does not read \"{name}\"; it reads {}",
                vars.join(", ")
            )));
        }
        if value.trim().is_empty() || value.len() > MAX_VALUE || value.chars().any(char::is_control)
        {
            return Err(ActionError::Invalid(format!(
                "the value of {name} must be 1 to {MAX_VALUE} bytes on one line (it is not shown here)"
            )));
        }
    }
    // Values not given are kept: replacing one credential of several
    // (a rotated token) leaves the others as they were.
    let own = tenant::load(deps, tenant).await?;
    let previous = own.connections.get(server);
    let mut values = match previous {
        Some(c) => deps
            .vault
            .get(tenant, server, c.version)
            .await
            .map_err(ActionError::Unavailable)?
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
    values.extend(credentials.iter().map(|(k, v)| (k.clone(), v.clone())));
    deps.vault
        .put(tenant, server, &values)
        .await
        .map_err(ActionError::Unavailable)?;
    let connection = ToolConnection {
        version: deps
            .clock
            .now_ms()
            .max(previous.map_or(0, |c| c.version) + 1),
        vars: values.keys().cloned().collect(),
        by: by.to_string(),
    };
    tenant::put_item(deps, tenant, Item::Connection, server, &connection).await?;
    tracing::info!(%tenant, server, vars = ?connection.vars, "tool server connected with the tenant's credentials");
    Ok(connection)
}

/// Forgets the tenant's credentials for `server`; the deployment's apply
/// again (if it has any).
pub async fn disconnect(deps: &Deps, tenant: &TenantId, server: &str) -> Result<(), ActionError> {
    server_def(deps, server)?;
    let own = tenant::load(deps, tenant).await?;
    let Some(connection) = own.connections.get(server) else {
        // A disconnect whose record went but whose secret stayed (the
        // vault did not answer): deleting it again finishes it.
        deps.vault
            .delete(tenant, server, 0)
            .await
            .map_err(ActionError::Unavailable)?;
        return Err(ActionError::NotFound(format!(
            "tool server \"{server}\" has no connection of this tenant's"
        )));
    };
    // The record first: nobody then reads credentials it no longer names.
    tenant::delete_item(deps, tenant, Item::Connection, server).await?;
    deps.vault
        .delete(tenant, server, connection.version)
        .await
        .map_err(ActionError::Unavailable)
}
