//! `ToolHost` over MCP with the rmcp client. One connection per server,
//! opened on first use and kept for the life of the process (a Lambda
//! container, or the CLI's workers); a connection that breaks is dropped and
//! reopened on the next call.

use crate::oauth::{AccessToken, TokenStore};
use crate::{clean_description, Credentials, ToolDef, ToolError, ToolHost, ToolOutcome};
use async_trait::async_trait;
use mktg_config::{ToolServer, ToolTransport, Tools};
use mktg_core::tools::{cap_result, claude_tool_name};
use mktg_core::SkillName;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;

type Client = RunningService<RoleClient, ()>;

/// Reads an environment variable (the process's, or a test's map).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Environment a stdio server gets besides its declared credentials: what
/// `npx`, `uvx` and interpreters need to start, nothing secret.
pub const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "USER",
    "NODE_PATH",
    "npm_config_cache",
    "VIRTUAL_ENV",
];

pub struct McpHost {
    tools: Tools,
    env: EnvLookup,
    /// One slot per connection key, each with its own lock: opening one
    /// tenant's slow server holds up only callers of that same connection.
    clients: Mutex<HashMap<String, Slot>>,
    listed: Mutex<HashMap<String, Vec<ToolDef>>>,
    http: reqwest::Client,
    token_store: Option<Arc<dyn TokenStore>>,
}

type Slot = Arc<Mutex<Option<Connection>>>;

/// A live connection, and the OAuth access token it was opened with.
struct Connection {
    client: Arc<Client>,
    token: Option<AccessToken>,
}

impl McpHost {
    /// A host for the servers of `tools`, reading credentials from the
    /// process environment.
    pub fn new(tools: Tools) -> Self {
        Self::with_env(tools, Arc::new(|k: &str| std::env::var(k).ok()))
    }

    /// A host reading credentials through `env` (tests, Secrets Manager).
    pub fn with_env(tools: Tools, env: EnvLookup) -> Self {
        McpHost {
            tools,
            env,
            clients: Mutex::new(HashMap::new()),
            listed: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
            token_store: None,
        }
    }

    /// Shares minted OAuth access tokens with other processes through
    /// `store` (Secrets Manager when deployed).
    pub fn with_token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.token_store = Some(store);
        self
    }

    pub fn config(&self) -> &Tools {
        &self.tools
    }

    fn server(&self, name: &str) -> Result<&ToolServer, ToolError> {
        self.tools
            .servers
            .get(name)
            .ok_or_else(|| ToolError::UnknownServer(name.to_string()))
    }

    /// A credential variable's value: a tenant's connection supplies every
    /// variable the server declares (never mixed with the deployment's);
    /// anything else (PATH and the like) comes from the host's environment.
    fn lookup(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
        var: &str,
    ) -> Option<String> {
        match creds {
            Some(c) if server.credential_vars().iter().any(|v| v == var) => {
                c.values.get(var).cloned()
            }
            _ => (self.env)(var),
        }
    }

    /// Connections and listings are kept per server for the deployment's
    /// credentials, and per server, tenant and connection version for a
    /// tenant's own.
    fn cache_key(server: &ToolServer, creds: Option<&Credentials>) -> String {
        match creds {
            Some(c) => Credentials::token_key(&server.name, &c.tenant, c.version),
            None => server.name.clone(),
        }
    }

    async fn client(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
    ) -> Result<Arc<Client>, ToolError> {
        let key = Self::cache_key(server, creds);
        let slot = {
            let mut clients = self.clients.lock().await;
            // A tenant that reconnected with new credentials: its old
            // connection is closed with its entry.
            if let Some(c) = creds {
                let stale = format!("{}@{}@", server.name, c.tenant);
                clients.retain(|k, _| *k == key || !k.starts_with(&stale));
            }
            clients.entry(key.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            let token_ok = c.token.as_ref().is_none_or(AccessToken::is_fresh);
            if !c.client.is_closed() && token_ok {
                return Ok(c.client.clone());
            }
            if token_ok {
                tracing::warn!(server = %server.name, "tool server connection closed; reconnecting");
            } else {
                tracing::info!(server = %server.name, "access token near expiry; reconnecting with a fresh one");
            }
            *slot = None;
        }
        let token_key = key.clone();
        let env = |var: &str| self.lookup(server, creds, var);
        // A server behind OAuth gets a fresh access token for the life of
        // the connection; the connection is renewed before the token ends.
        let token = match &server.oauth {
            Some(oauth) => {
                let stored = match &self.token_store {
                    Some(store) => store.get(&token_key).await.filter(AccessToken::is_fresh),
                    None => None,
                };
                match stored {
                    Some(t) => Some(t),
                    None => {
                        let t = crate::oauth::refresh(oauth, &env, &self.http)
                            .await
                            .map_err(|reason| ToolError::Connect {
                                server: server.name.clone(),
                                reason,
                            })?;
                        if let Some(store) = &self.token_store {
                            store.put(&token_key, &t).await;
                        }
                        Some(t)
                    }
                }
            }
            None => None,
        };
        let connect = self.connect(server, token.as_ref(), &env);
        let client =
            tokio::time::timeout(Duration::from_millis(server.connect_timeout_ms), connect)
                .await
                .map_err(|_| ToolError::Connect {
                    server: server.name.clone(),
                    reason: format!(
                        "no MCP handshake within {} ms (connect_timeout_ms)",
                        server.connect_timeout_ms
                    ),
                })??;
        let client = Arc::new(client);
        *slot = Some(Connection {
            client: client.clone(),
            token,
        });
        Ok(client)
    }

    async fn connect(
        &self,
        server: &ToolServer,
        token: Option<&AccessToken>,
        env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    ) -> Result<Client, ToolError> {
        // The minted access token, under the variable name the server reads.
        let minted = |var: &str| -> Option<String> {
            match (&server.oauth, token) {
                (Some(o), Some(t)) if o.access_token_env == var => Some(t.value.clone()),
                _ => None,
            }
        };
        let fail = |reason: String| ToolError::Connect {
            server: server.name.clone(),
            reason,
        };
        match &server.transport {
            ToolTransport::Stdio { command, args } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                let oauth_var = server.oauth.as_ref().map(|o| o.access_token_env.clone());
                for var in PASS_THROUGH
                    .iter()
                    .map(|s| s.to_string())
                    .chain(server.env.clone())
                    .chain(oauth_var)
                {
                    if let Some(v) = minted(&var).or_else(|| env(&var)) {
                        cmd.env(&var, v);
                    }
                }
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| fail(format!("cannot start `{command}`: {e}")))?;
                if let Some(stderr) = stderr {
                    let name = server.name.clone();
                    // The server's stderr is its log: keep it, in ours.
                    tokio::spawn(async move {
                        let mut lines = BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tracing::info!(server = %name, "tool server: {line}");
                        }
                    });
                }
                ().serve(transport)
                    .await
                    .map_err(|e| fail(format!("MCP handshake failed: {e}")))
            }
            ToolTransport::Http { url, headers } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                let mut custom = HashMap::new();
                for (name, template) in headers {
                    let value = expand(template, &minted, env).map_err(fail)?;
                    if name.eq_ignore_ascii_case("authorization") {
                        let token = value.strip_prefix("Bearer ").unwrap_or(&value).to_string();
                        config = config.auth_header(token);
                        continue;
                    }
                    let n = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| fail(format!("header name \"{name}\": {e}")))?;
                    let v = HeaderValue::from_str(&value)
                        .map_err(|e| fail(format!("header \"{name}\" value: {e}")))?;
                    custom.insert(n, v);
                }
                if !custom.is_empty() {
                    config = config.custom_headers(custom);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                ().serve(transport)
                    .await
                    .map_err(|e| fail(format!("MCP handshake with {url} failed: {e}")))
            }
        }
    }

    async fn drop_client(&self, key: &str) {
        self.clients.lock().await.remove(key);
        self.listed.lock().await.remove(key);
    }

    async fn list(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
    ) -> Result<Vec<ToolDef>, ToolError> {
        let name = server.name.as_str();
        let key = Self::cache_key(server, creds);
        if let Some(defs) = self.listed.lock().await.get(&key) {
            return Ok(defs.clone());
        }
        let client = self.client(server, creds).await?;
        let listed = tokio::time::timeout(
            Duration::from_millis(server.connect_timeout_ms),
            client.list_all_tools(),
        )
        .await;
        let tools = match listed {
            Ok(Ok(tools)) => tools,
            Ok(Err(e)) => {
                self.drop_client(&key).await;
                return Err(ToolError::Connect {
                    server: name.to_string(),
                    reason: format!("tools/list failed: {e}"),
                });
            }
            Err(_) => {
                return Err(ToolError::Connect {
                    server: name.to_string(),
                    reason: format!(
                        "tools/list took longer than {} ms",
                        server.connect_timeout_ms
                    ),
                })
            }
        };
        let defs: Vec<ToolDef> = tools
            .into_iter()
            .map(|t| ToolDef {
                name: claude_tool_name(name, &t.name),
                server: name.to_string(),
                tool: t.name.to_string(),
                description: clean_description(t.description.as_deref().unwrap_or_default()),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()),
                policy: server.policy(&t.name),
            })
            .collect();
        if creds.is_some() {
            let stale = format!("{}@", key.rsplit_once('@').map_or(name, |(k, _)| k));
            self.listed
                .lock()
                .await
                .retain(|k, _| !k.starts_with(&stale));
        }
        self.listed.lock().await.insert(key, defs.clone());
        Ok(defs)
    }

    async fn call(
        &self,
        server: &ToolServer,
        creds: Option<&Credentials>,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError> {
        let server_name = server.name.as_str();
        let client = self.client(server, creds).await?;
        let call_err = |reason: String| ToolError::Call {
            server: server_name.to_string(),
            tool: tool.to_string(),
            reason,
        };
        let args = match arguments {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                return Err(call_err(format!(
                    "arguments must be a JSON object, got {other}"
                )))
            }
        };
        let mut meta = serde_json::Map::new();
        meta.insert(
            "mktg/idempotency-key".into(),
            serde_json::Value::String(idempotency_key.to_string()),
        );
        let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        params.meta = Some(RequestMetaObject(rmcp::model::MetaObject(meta)));
        let result =
            tokio::time::timeout(Duration::from_millis(timeout_ms), client.call_tool(params)).await;
        let result = match result {
            Err(_) => {
                return Err(ToolError::Timeout {
                    server: server_name.to_string(),
                    tool: tool.to_string(),
                    ms: timeout_ms,
                })
            }
            Ok(Err(e)) => {
                // A protocol error is the server answering; anything else
                // means the connection is broken: reopen it next time.
                if client.is_closed() || !matches!(e, rmcp::ServiceError::McpError(_)) {
                    self.drop_client(&Self::cache_key(server, creds)).await;
                }
                return Err(call_err(e.to_string()));
            }
            Ok(Ok(r)) => r,
        };
        let mut parts: Vec<String> = Vec::new();
        for block in &result.content {
            match block.as_text() {
                Some(t) => parts.push(t.text.clone()),
                None => parts.push(format!(
                    "[non-text content: {}]",
                    serde_json::to_value(block)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from))
                        .unwrap_or_else(|| "unknown".into())
                )),
            }
        }
        if parts.is_empty() {
            if let Some(structured) = &result.structured_content {
                parts.push(structured.to_string());
            }
        }
        Ok(ToolOutcome {
            text: cap_result(&parts.join("\n"), server.max_result_bytes),
            is_error: result.is_error.unwrap_or(false),
        })
    }
}

/// Replaces `${VAR}` with the variable's value; a missing variable is an
/// error naming it.
fn expand(
    template: &str,
    minted: &dyn Fn(&str) -> Option<String>,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<String, String> {
    let mut out = template.to_string();
    for var in mktg_config::env_refs(template) {
        let value = minted(&var)
            .or_else(|| env(&var))
            .ok_or_else(|| format!("variable {var} is not set"))?;
        out = out.replace(&format!("${{{var}}}"), &value);
    }
    Ok(out)
}

#[async_trait]
impl ToolHost for McpHost {
    async fn tools_for_skill(&self, skill: &SkillName) -> Vec<ToolDef> {
        let mut out = Vec::new();
        let servers: Vec<String> = self
            .tools
            .for_skill(skill)
            .map(|s| s.name.clone())
            .collect();
        for server in servers {
            match self.list_server(&server).await {
                Ok(defs) => out.extend(defs),
                Err(e) => tracing::warn!(%server, %skill, "tool server left out: {e}"),
            }
        }
        out
    }

    async fn list_server(&self, name: &str) -> Result<Vec<ToolDef>, ToolError> {
        let server = self.server(name)?;
        self.list(server, None).await
    }

    async fn list_connected(
        &self,
        server: &ToolServer,
        creds: &Credentials,
    ) -> Result<Vec<ToolDef>, ToolError> {
        self.list(server, Some(creds)).await
    }

    async fn invoke(
        &self,
        server_name: &str,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError> {
        let server = self.server(server_name)?;
        self.call(server, None, tool, arguments, idempotency_key, timeout_ms)
            .await
    }

    async fn invoke_connected(
        &self,
        server: &ToolServer,
        creds: &Credentials,
        tool: &str,
        arguments: serde_json::Value,
        idempotency_key: &str,
        timeout_ms: u64,
    ) -> Result<ToolOutcome, ToolError> {
        self.call(
            server,
            Some(creds),
            tool,
            arguments,
            idempotency_key,
            timeout_ms,
        )
        .await
    }
}
