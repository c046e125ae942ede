//! Claude through the Anthropic Messages API, over one shared reqwest client.
//!
//! The stable prefix (the system prompt, then the tool definitions) carries
//! `cache_control` so repeated turns of a task and tasks of the same skill
//! read it from the prompt cache. Rate limits (429), overload (529), 5xx and
//! timeouts are retried with jittered exponential backoff, waiting at least
//! what `retry-after` asks, within a cap on attempts and on total time.
//! Everything else fails permanently with the API's own message. The API key
//! is never logged.

use crate::{Block, ChatModel, ChatRequest, ChatResponse, LlmError, ToolUse};
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use mktg_core::Usage;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const API_VERSION: &str = "2023-06-01";

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much time has passed since the first try.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(90),
        }
    }
}

#[derive(Clone)]
pub struct AnthropicSettings {
    pub api_key: String,
    /// `https://api.anthropic.com` unless pointed at a mock or a proxy.
    pub base_url: String,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for AnthropicSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicSettings")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

pub struct AnthropicModel {
    http: reqwest::Client,
    settings: AnthropicSettings,
}

/// One failed attempt, with what the server asked us to wait.
#[derive(Debug)]
struct Attempt {
    error: LlmError,
    retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    content: Vec<ApiBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    model: Option<String>,
    usage: ApiUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ApiBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: ApiErrorDetail,
}

#[derive(Deserialize)]
struct ApiErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl AnthropicModel {
    pub fn new(settings: AnthropicSettings) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| LlmError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(AnthropicModel { http, settings })
    }

    /// The request body exactly as sent: system and tools carry the cache
    /// breakpoints that end the stable prefix.
    pub fn body(request: &ChatRequest) -> Value {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        if let Some(last) = tools.last_mut() {
            last["cache_control"] = json!({"type": "ephemeral"});
        }
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| {
                let content: Vec<Value> = m
                    .content
                    .iter()
                    .map(|b| match b {
                        Block::Text { text } => json!({"type": "text", "text": text}),
                        Block::ToolUse { id, name, input } => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                        Block::ToolResult { tool_use_id, content, is_error } => json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
                    })
                    .collect();
                json!({"role": m.role, "content": content})
            })
            .collect();
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        body
    }

    async fn attempt(&self, body: &Value) -> Result<ChatResponse, Attempt> {
        let url = format!(
            "{}/v1/messages",
            self.settings.base_url.trim_end_matches('/')
        );
        let sent = self
            .http
            .post(&url)
            .header("x-api-key", &self.settings.api_key)
            .header("anthropic-version", API_VERSION)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Attempt {
                    error: LlmError::Retryable(format!(
                        "no answer within {:?}",
                        self.settings.request_timeout
                    )),
                    retry_after: None,
                })
            }
            Err(e) => {
                return Err(Attempt {
                    error: LlmError::Retryable(format!("cannot reach {url}: {e}")),
                    retry_after: None,
                })
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = response.text().await.map_err(|e| Attempt {
            error: LlmError::Retryable(format!("reading the response failed: {e}")),
            retry_after: None,
        })?;
        if status.is_success() {
            let parsed: ApiResponse = serde_json::from_str(&text).map_err(|e| Attempt {
                // A malformed success body is a server fault; retry it.
                error: LlmError::Retryable(format!(
                    "malformed response body ({e}): {}",
                    snippet(&text)
                )),
                retry_after: None,
            })?;
            return Ok(to_response(parsed));
        }
        let detail = serde_json::from_str::<ApiErrorBody>(&text)
            .map(|b| format!("{}: {}", b.error.kind, b.error.message))
            .unwrap_or_else(|_| snippet(&text));
        let message = format!("Anthropic API {}: {detail}", status.as_u16());
        let retryable = status.as_u16() == 429
            || status.as_u16() == 529
            || status.is_server_error()
            || status.as_u16() == 408;
        Err(Attempt {
            error: if retryable {
                LlmError::Retryable(message)
            } else {
                LlmError::Permanent(message)
            },
            retry_after,
        })
    }
}

fn snippet(text: &str) -> String {
    let s: String = text.chars().take(300).collect();
    if s.is_empty() {
        "(empty body)".into()
    } else {
        s
    }
}

fn to_response(api: ApiResponse) -> ChatResponse {
    let mut text = String::new();
    let mut tool_uses = Vec::new();
    for block in api.content {
        match block {
            ApiBlock::Text { text: t } => text.push_str(&t),
            ApiBlock::ToolUse { id, name, input } => tool_uses.push(ToolUse { id, name, input }),
            ApiBlock::Other => {}
        }
    }
    ChatResponse {
        text,
        tool_uses,
        stop_reason: api.stop_reason.unwrap_or_else(|| "unknown".into()),
        usage: Usage {
            input_tokens: api.usage.input_tokens,
            output_tokens: api.usage.output_tokens,
            cache_write_tokens: api.usage.cache_creation_input_tokens.unwrap_or(0),
            cache_read_tokens: api.usage.cache_read_input_tokens.unwrap_or(0),
        },
        model: api.model.unwrap_or_default(),
        scripted: false,
    }
}

#[async_trait]
impl ChatModel for AnthropicModel {
    fn provider(&self) -> &str {
        "anthropic"
    }

    fn is_scripted(&self) -> bool {
        false
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = Self::body(request);
        let policy = &self.settings.retry;
        let started = Instant::now();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries)
            .with_jitter();
        let result = (|| self.attempt(&body))
            .retry(backoff)
            .when(|a: &Attempt| matches!(a.error, LlmError::Retryable(_)) && started.elapsed() < policy.max_total)
            // Never wait less than the server asked for.
            .adjust(|a: &Attempt, planned| match (planned, a.retry_after) {
                (Some(p), Some(ra)) => Some(p.max(ra)),
                (p, _) => p,
            })
            .notify(|a: &Attempt, wait| {
                tracing::warn!(error = %a.error, wait_ms = wait.as_millis() as u64, model = %request.model, "model call will be retried");
            })
            .await;
        match result {
            Ok(mut r) => {
                if r.model.is_empty() {
                    r.model = request.model.clone();
                }
                Ok(r)
            }
            Err(a) => Err(a.error),
        }
    }
}
