//! The Bedrock provider against a mock Converse endpoint (wiremock): the
//! same contract as Anthropic, including the cache point and usage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_llm::{BedrockModel, CallMeta, ChatMessage, ChatModel, ChatRequest, LlmError};
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn model(server: &MockServer) -> BedrockModel {
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(server.uri())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    BedrockModel::new(aws_sdk_bedrockruntime::Client::new(&aws))
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        system: "You are the SEO auditor.".into(),
        messages: vec![ChatMessage::user("Audit tallybook.app")],
        max_tokens: 2048,
        tools: vec![],
        meta: CallMeta::default(),
    }
}

#[tokio::test]
async fn converse_sends_the_system_prompt_with_a_cache_point_and_reads_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/.+/converse$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "# Audit\n## Findings\n..."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 900, "outputTokens": 300, "totalTokens": 1200, "cacheReadInputTokens": 700, "cacheWriteInputTokens": 0},
            "metrics": {"latencyMs": 12}
        })))
        .mount(&server)
        .await;
    let r = model(&server).await.complete(&request()).await.unwrap();
    assert_eq!(r.text, "# Audit\n## Findings\n...");
    assert_eq!(r.usage.input_tokens, 900);
    assert_eq!(r.usage.cache_read_tokens, 700);
    assert_eq!(r.stop_reason, "end_turn");
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent["system"],
        json!([{"text": "You are the SEO auditor."}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        sent["messages"][0]["content"][0]["text"],
        "Audit tallybook.app"
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 2048);
}

#[tokio::test]
async fn a_validation_error_is_permanent_and_throttling_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-errortype", "ValidationException")
                .set_body_json(json!({"message": "The provided model identifier is invalid."})),
        )
        .mount(&server)
        .await;
    let err = model(&server).await.complete(&request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Permanent(ref m) if m.contains("model identifier is invalid")),
        "{err:?}"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-amzn-errortype", "ThrottlingException")
                .set_body_json(json!({"message": "Too many requests"})),
        )
        .mount(&server)
        .await;
    let err = model(&server).await.complete(&request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Retryable(_)), "{err:?}");
}
