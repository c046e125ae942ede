//! Claude through Amazon Bedrock's Converse API, for users who keep every
//! call inside their AWS account. Same contract as the Anthropic provider:
//! the system prompt ends with a cache point, tools are passed through,
//! usage includes cache reads and writes. The SDK's standard retry mode
//! handles throttling with backoff; what is left is classified here.

use crate::{Block, ChatModel, ChatRequest, ChatResponse, LlmError, ToolUse};
use async_trait::async_trait;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, InferenceConfiguration,
    Message, SystemContentBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_types::{Document, Number};
use mktg_core::Usage;
use serde_json::Value;
use std::collections::HashMap;

pub struct BedrockModel {
    client: Client,
}

impl BedrockModel {
    /// `client` comes from the one AWS config built at cold start.
    pub fn new(client: Client) -> Self {
        BedrockModel { client }
    }
}

fn to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_value(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Document::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> LlmError {
    LlmError::Permanent(format!("cannot build the Bedrock request: {e}"))
}

fn tokens(n: i32) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl ChatModel for BedrockModel {
    fn provider(&self) -> &str {
        "bedrock"
    }

    fn is_scripted(&self) -> bool {
        false
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut messages = Vec::new();
        for m in &request.messages {
            let role = if m.role == "assistant" {
                ConversationRole::Assistant
            } else {
                ConversationRole::User
            };
            let mut content = Vec::new();
            for b in &m.content {
                content.push(match b {
                    Block::Text { text } => ContentBlock::Text(text.clone()),
                    Block::ToolUse { id, name, input } => ContentBlock::ToolUse(
                        ToolUseBlock::builder()
                            .tool_use_id(id)
                            .name(name)
                            .input(to_document(input))
                            .build()
                            .map_err(invalid)?,
                    ),
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => ContentBlock::ToolResult(
                        ToolResultBlock::builder()
                            .tool_use_id(tool_use_id)
                            .content(ToolResultContentBlock::Text(content.clone()))
                            .status(if *is_error {
                                ToolResultStatus::Error
                            } else {
                                ToolResultStatus::Success
                            })
                            .build()
                            .map_err(invalid)?,
                    ),
                });
            }
            messages.push(
                Message::builder()
                    .role(role)
                    .set_content(Some(content))
                    .build()
                    .map_err(invalid)?,
            );
        }
        let cache_point = CachePointBlock::builder()
            .r#type(CachePointType::Default)
            .build()
            .map_err(invalid)?;
        let mut call = self
            .client
            .converse()
            .model_id(&request.model)
            .system(SystemContentBlock::Text(request.system.clone()))
            .system(SystemContentBlock::CachePoint(cache_point.clone()))
            .set_messages(Some(messages))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .build(),
            );
        if !request.tools.is_empty() {
            let mut config = ToolConfiguration::builder();
            for t in &request.tools {
                let spec = ToolSpecification::builder()
                    .name(&t.name)
                    .description(&t.description)
                    .input_schema(ToolInputSchema::Json(to_document(&t.input_schema)))
                    .build()
                    .map_err(invalid)?;
                config = config.tools(Tool::ToolSpec(spec));
            }
            config = config.tools(Tool::CachePoint(cache_point));
            call = call.tool_config(config.build().map_err(invalid)?);
        }
        let out = call.send().await.map_err(|e| {
            let retryable = match &e {
                SdkError::ServiceError(s) => {
                    let err = s.err();
                    err.is_throttling_exception()
                        || err.is_service_unavailable_exception()
                        || err.is_internal_server_exception()
                        || err.is_model_not_ready_exception()
                        || err.is_model_timeout_exception()
                }
                _ => true,
            };
            let message = format!("Bedrock Converse: {}", DisplayErrorContext(&e));
            if retryable {
                LlmError::Retryable(message)
            } else {
                LlmError::Permanent(message)
            }
        })?;
        let mut text = String::new();
        let mut tool_uses = Vec::new();
        if let Some(aws_sdk_bedrockruntime::types::ConverseOutput::Message(m)) = out.output() {
            for block in m.content() {
                match block {
                    ContentBlock::Text(t) => text.push_str(t),
                    ContentBlock::ToolUse(t) => tool_uses.push(ToolUse {
                        id: t.tool_use_id().to_string(),
                        name: t.name().to_string(),
                        input: to_value(t.input()),
                    }),
                    _ => {}
                }
            }
        }
        let usage = out.usage().map(|u| Usage {
            input_tokens: tokens(u.input_tokens()),
            output_tokens: tokens(u.output_tokens()),
            cache_write_tokens: u.cache_write_input_tokens().map(tokens).unwrap_or(0),
            cache_read_tokens: u.cache_read_input_tokens().map(tokens).unwrap_or(0),
        });
        Ok(ChatResponse {
            text,
            tool_uses,
            stop_reason: out.stop_reason().as_str().to_string(),
            usage: usage.unwrap_or_default(),
            model: request.model.clone(),
            scripted: false,
        })
    }
}
