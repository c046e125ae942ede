//! The tool host: the MCP servers of `tools.yaml`, reached through the rmcp
//! client over stdio (a child process) or streamable HTTP.
//!
//! What a server says about itself (tool descriptions, schemas) and what it
//! answers are untrusted text: descriptions and results are size-capped, and
//! nothing a server returns can change which tools a skill may use; that is
//! decided by `tools.yaml` alone.

mod mcp;
pub mod oauth;

pub use mcp::{EnvLookup, McpHost, PASS_THROUGH};

use async_trait::async_trait;
use mktg_config::{ToolPolicy, ToolServer};
use mktg_core::SkillName;
use std::collections::HashMap;

/// A tool as the model sees it, with the policy that governs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDef {
    /// `server__tool`, the name the model calls.
    pub name: String,
    pub server: String,
    /// The server's own name for the tool.
    pub tool: String,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub policy: ToolPolicy,
}

/// A tenant's own credentials for one server: the values of the variables
/// the server declares, from the tenant's connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub tenant: String,
    /// When the tenant last (re)connected: a new version opens a new
    /// connection, so changed credentials take effect at once.
    pub version: u64,
    pub values: HashMap<String, String>,
}

impl Credentials {
    /// Where an OAuth access token minted with these credentials is kept:
    /// per server, tenant and connection version, so a reconnect (another
    /// account) never reuses the previous account's token.
    pub fn token_key(server: &str, tenant: &str, version: u64) -> String {
        format!("{server}@{tenant}@{version}")
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        f.debug_struct("Credentials")
            .field("tenant", &self.tenant)
            .field("version", &self.version)
            .field("variables", &names)
            .finish()
    }
}

/// What a tool answered. `is_error` is the tool's own error result (the
/// call reached the tool and it said no): the model sees it and can adapt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutcome {
    pub text: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("no tool server \"{0}\" in tools.yaml")]
    UnknownServer(String),
    #[error("cannot start or reach tool server \"{server}\": {reason}")]
    Connect { server: String, reason: String },
    #[error("tool {server}/{tool} did not answer within {ms} ms")]
    Timeout {
        server: String,
        tool: String,
        ms: u64,
    },
    /// The server answered with a protocol error (unknown tool, invalid
    /// arguments) or the connection broke during the call.
    #[error("tool {server}/{tool} failed: {reason}")]
    Call {
        server: String,
        tool: String,
        reason: String,
    },
}

#[async_trait]
pub trait ToolHost: Send + Sync {
    /// The tools a skill may call, listed from each server it is allowed to
    /// use. A server that cannot be reached is left out with a warning, so
    /// one broken server does not stop every agent.
    async fn tools_for_skill(&self, skill: &SkillName) -> Vec<ToolDef>;

    /// Every tool of one server, or why the server could not be listed.
    async fn list_server(&self, server: &str) -> Result<Vec<ToolDef>, ToolError>;

    /// Every tool of a server reached with a tenant's own credentials (its
    /// connection), kept apart from the deployment's connection.
    async fn list_connected(
        &self,
        server: &ToolServer,
        creds: &Credentials,
    ) -> Result<Vec<ToolDef>, ToolError> {
        let _ = creds;
        Err(ToolError::Connect {
            server: server.name.clone(),
            reason: "this tool host cannot use a tenant's own connection".into(),
        })
    }

    /// As `invoke`, with a tenant's own credentials for the server.
    async fn invoke_connected(
        &self,
        server: &ToolServer,
        creds: &Credentials,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError> {
        let _ = (creds, tool, arguments, idempotency_key, timeout_ms);
        Err(ToolError::Connect {
            server: server.name.clone(),
            reason: "this tool host cannot use a tenant's own connection".into(),
        })
    }

    /// Lists `server` with the tenant's credentials, or the deployment's
    /// when `creds` is `None`.
    async fn list_as(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
    ) -> Result<Vec<ToolDef>, ToolError> {
        match creds {
            Some(c) => self.list_connected(server, c).await,
            None => self.list_server(&server.name).await,
        }
    }

    /// Calls a tool of `server` with the tenant's credentials, or the
    /// deployment's when `creds` is `None`.
    async fn invoke_as(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError> {
        match creds {
            Some(c) => {
                self.invoke_connected(server, c, tool, arguments, idempotency_key, timeout_ms)
                    .await
            }
            None => {
                self.invoke(&server.name, tool, arguments, idempotency_key, timeout_ms)
                    .await
            }
        }
    }

    /// Calls `tool` on `server` with `arguments` (a JSON object), giving up
    /// after `timeout_ms`. The idempotency key goes to the server in the
    /// request's `_meta`, for servers that honour one.
    async fn invoke(
        &self,
        server: &str,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError>;
}

/// Longest tool description passed to the model.
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;

/// Trims an untrusted description: control characters out, length capped.
pub fn clean_description(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_DESCRIPTION_CHARS)
        .collect();
    cleaned.trim().to_string()
}
