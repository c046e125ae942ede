//! The integration manager: the servers a tenant may use (tools.yaml's,
//! and the catalogue's it may connect with its own credentials), a
//! tenant's connections, and the connection test.
//!
//! Credentials go to the vault (Secrets Manager when deployed) and nowhere
//! else: the settings document records only which variables were set, by
//! whom and when, and no answer ever carries a value.

use crate::{action_error, ok, parse, unavailable, Answer};
use mktg_boot::tenant::{self, TenantSettings};
use mktg_boot::Deps;
use mktg_config::ToolTransport;
use mktg_core::TenantId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every server the tenant may use or connect: how it is reached, where it
/// comes from, the credential variables it reads, whether it is connected
/// (by the deployment's environment or the tenant's own connection),
/// whether the tenant turned it off, which skills may use it, and its
/// tools' configured effects.
pub fn tool_servers(deps: &Deps, own: &TenantSettings) -> Vec<Value> {
    let deployment = deps
        .config
        .tools
        .servers
        .values()
        .map(|s| (s, "deployment"));
    let catalog = deps
        .config
        .catalog
        .servers
        .values()
        .filter(|s| !deps.config.tools.servers.contains_key(&s.name))
        .map(|s| (s, "catalog"));
    deployment
        .chain(catalog)
        .map(|(s, source)| {
            let vars = s.credential_vars();
            let connection = own.connections.get(&s.name);
            let missing: Vec<&String> = match (connection, source) {
                (Some(c), _) => vars.iter().filter(|v| !c.vars.contains(v)).collect(),
                (None, "deployment") => vars
                    .iter()
                    .filter(|v| std::env::var_os(v).is_none())
                    .collect(),
                (None, _) => vars.iter().collect(),
            };
            let connected = connection.is_some() || (source == "deployment" && missing.is_empty());
            let transport = match &s.transport {
                ToolTransport::Stdio { .. } => "stdio",
                ToolTransport::Http { .. } => "http",
            };
            json!({
                "name": s.name, "description": s.description, "transport": transport,
                "source": source,
                "credentials": vars,
                "connected": connected, "missing_credentials": missing,
                "connection": connection.map(|c| json!({"vars": c.vars, "by": c.by, "connected_ms": c.version})),
                "enabled": own.tool_enabled(&s.name),
                // A server that needs no account can be tried at once.
                "sample": vars.is_empty(),
                "effect": s.effect.to_string(),
                "skills": s.skills.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "tools": s.overrides.iter().map(|(name, o)| json!({"name": name, "effect": o.effect.map(|e| e.to_string())})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connect {
    credentials: BTreeMap<String, String>,
}

/// `PUT /tools/{server}/connection`.
pub async fn connect(
    deps: &Deps,
    tenant: &TenantId,
    by: &str,
    server: &str,
    body: &[u8],
) -> Answer {
    if let Err(e) = mktg_actions::connections::server_def(deps, server) {
        return action_error(e);
    }
    let new: Connect = match parse(body, "{\"credentials\": {\"VARIABLE\": \"value\"}}") {
        Ok(n) => n,
        Err(a) => return a,
    };
    match mktg_actions::connections::connect(deps, tenant, server, &new.credentials, by).await {
        Ok(c) => ok(
            200,
            json!({"server": server, "connected": true,
                   "connection": {"vars": c.vars, "by": c.by, "connected_ms": c.version}}),
        ),
        Err(e) => action_error(e),
    }
}

/// `DELETE /tools/{server}/connection`.
pub async fn disconnect(deps: &Deps, tenant: &TenantId, server: &str) -> Answer {
    match mktg_actions::connections::disconnect(deps, tenant, server).await {
        Ok(()) => ok(200, json!({"server": server, "connected": false})),
        Err(e) => action_error(e),
    }
}

/// `POST /tools/{server}/test`: connects to the server (with the tenant's
/// own credentials when it connected it) and lists its tools.
pub async fn test(deps: &Deps, tenant: &TenantId, server: &str) -> Answer {
    let def = match mktg_actions::connections::server_def(deps, server) {
        Ok(d) => d,
        Err(e) => return action_error(e),
    };
    let own = match tenant::load(deps, tenant).await {
        Ok(o) => o,
        Err(e) => return unavailable(e),
    };
    let started = Instant::now();
    let failed = |error: String| {
        ok(
            200,
            json!({"server": server, "ok": false, "ms": started.elapsed().as_millis() as u64, "error": error}),
        )
    };
    // Tested as the tenant's agents reach it (on or off alike).
    let route = match own.route(deps, tenant, server).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return failed(format!(
                "not connected: set its credentials ({}) first",
                def.credential_vars().join(", ")
            ))
        }
        Err(e) => return failed(e.to_string()),
    };
    let listed = tokio::time::timeout(
        Duration::from_secs(25),
        deps.tools.list_as(route.server, route.creds.as_ref()),
    )
    .await;
    match listed {
        Ok(Ok(defs)) => ok(
            200,
            json!({"server": server, "ok": true, "ms": started.elapsed().as_millis() as u64,
                   "own_credentials": route.creds.is_some(),
                   "tools": defs.iter().map(|d| json!({"name": d.tool, "effect": d.policy.effect.to_string(), "description": d.description})).collect::<Vec<_>>()}),
        ),
        Ok(Err(e)) => failed(e.to_string()),
        Err(_) => failed("no answer within 25 s".into()),
    }
}
