//! The dashboard's static files (compiled into the function, so one
//! deployment serves both) and the tool connections view.

use crate::{error, ok, Answer, Reply};
use mktg_boot::Deps;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const INDEX: &str = include_str!("../../../web/index.html");
const APP: &str = include_str!("../../../web/app.js");
const STYLE: &str = include_str!("../../../web/style.css");

static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Serve the dashboard's files from this directory, read at each request,
/// instead of the copies compiled in (`mktg serve` on a checkout: edit and
/// reload).
pub fn serve_files_from(dir: std::path::PathBuf) {
    let _ = DIR.set(dir);
}

/// The file at `path`, if it is one of the dashboard's.
pub fn file(path: &str) -> Option<Reply> {
    let (content_type, name, compiled) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", "index.html", INDEX),
        "/app.js" => ("text/javascript; charset=utf-8", "app.js", APP),
        "/style.css" => ("text/css; charset=utf-8", "style.css", STYLE),
        _ => return None,
    };
    let body = DIR
        .get()
        .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
        .unwrap_or_else(|| compiled.to_string());
    Some(Reply {
        status: 200,
        content_type,
        headers: vec![("cache-control", "no-cache".into())],
        body,
    })
}

/// Every server of tools.yaml: how it is reached, whether its credentials
/// are set, whether the tenant turned it off, which skills may use it, and
/// its tools' configured effects.
pub fn tool_servers(deps: &Deps, own: &mktg_boot::tenant::TenantSettings) -> Vec<Value> {
    deps.config
        .tools
        .servers
        .values()
        .map(|s| {
            let missing: Vec<String> = s
                .credential_vars()
                .into_iter()
                .filter(|v| std::env::var_os(v).is_none())
                .collect();
            let transport = match &s.transport {
                mktg_config::ToolTransport::Stdio { .. } => "stdio",
                mktg_config::ToolTransport::Http { .. } => "http",
            };
            // A server that needs no account can be tried at once.
            let sample = s.credential_vars().is_empty();
            json!({
                "name": s.name, "description": s.description, "transport": transport,
                "connected": missing.is_empty(), "missing_credentials": missing,
                "enabled": own.tool_enabled(&s.name),
                "sample": sample,
                "effect": s.effect.to_string(),
                "skills": s.skills.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "tools": s.overrides.iter().map(|(name, o)| json!({"name": name, "effect": o.effect.map(|e| e.to_string())})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Connects to one server and lists its tools: the connection test.
pub async fn test_tool(deps: &Deps, server: &str) -> Answer {
    if !deps.config.tools.servers.contains_key(server) {
        let known: Vec<&str> = deps
            .config
            .tools
            .servers
            .keys()
            .map(String::as_str)
            .collect();
        return error(
            404,
            "not_found",
            format!(
                "no tool server \"{server}\"; configured: {}",
                known.join(", ")
            ),
        );
    }
    let started = Instant::now();
    let listed =
        tokio::time::timeout(Duration::from_secs(25), deps.tools.list_server(server)).await;
    let ms = started.elapsed().as_millis() as u64;
    match listed {
        Ok(Ok(defs)) => ok(
            200,
            json!({"server": server, "ok": true, "ms": ms,
                   "tools": defs.iter().map(|d| json!({"name": d.tool, "effect": d.policy.effect.to_string(), "description": d.description})).collect::<Vec<_>>()}),
        ),
        Ok(Err(e)) => ok(
            200,
            json!({"server": server, "ok": false, "ms": ms, "error": e.to_string()}),
        ),
        Err(_) => ok(
            200,
            json!({"server": server, "ok": false, "ms": ms, "error": "no answer within 25 s"}),
        ),
    }
}
