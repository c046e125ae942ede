//! The `ChatModel` port and its providers. This crate builds no prompts:
//! functions assemble them from `core` and `config` and hand them over.

mod anthropic;
mod bedrock;
mod scripted;

pub use anthropic::{AnthropicModel, AnthropicSettings, RetryPolicy};
pub use bedrock::BedrockModel;
pub use scripted::{ScriptError, ScriptedModel};

use async_trait::async_trait;
use mktg_core::Usage;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Who is asking: lets the scripted provider pick a reply and lets logs and
/// cost reports group calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallMeta {
    pub role: String,
    pub skill: String,
    pub task: String,
    pub revision: u32,
    pub turn: u32,
    /// The review step (`semantic`, a skill, `director`) of reviewer calls.
    #[serde(default)]
    pub step: String,
}

/// One block of a message's content.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    pub content: Vec<Block>,
}

impl ChatMessage {
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".into(),
            content: vec![Block::Text { text: text.into() }],
        }
    }

    /// The text blocks joined, for providers and logs that need plain text.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// A tool call the model asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUse {
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    /// The stable prefix: the skill's instructions (and product context).
    pub system: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    #[serde(skip)]
    pub meta: CallMeta,
}

impl ChatRequest {
    /// A stable hash of what is sent, stored with the turn checkpoint so a
    /// redelivery can tell it is replaying the same request.
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    /// Tool calls requested in this turn (stop reason `tool_use`).
    pub tool_uses: Vec<ToolUse>,
    pub stop_reason: String,
    pub usage: Usage,
    pub model: String,
    /// True when the text came from a script, not a model.
    pub scripted: bool,
}

/// The JSON object in a model's answer: the part from the first `{` to the
/// last `}` (models like code fences and prose around it).
pub fn json_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (end > start).then(|| &text[start..=end])
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// Rate limits, overload, 5xx, timeouts: try again later.
    #[error("model call failed, will retry: {0}")]
    Retryable(String),
    /// Bad request, auth, missing script reply: retrying cannot help.
    #[error("model call failed: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Provider name shown to users, e.g. `scripted` or `anthropic`.
    fn provider(&self) -> &str;

    /// True for the scripted provider, whose outputs must be labelled.
    fn is_scripted(&self) -> bool;

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}
