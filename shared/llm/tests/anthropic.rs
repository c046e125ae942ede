//! The Anthropic provider against a real HTTP server (wiremock): the exact
//! request sent, retries that honour retry-after, permanent errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_llm::{
    AnthropicModel, AnthropicSettings, CallMeta, ChatMessage, ChatModel, ChatRequest, LlmError,
    RetryPolicy, ToolSpec,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn model(server: &MockServer) -> AnthropicModel {
    AnthropicModel::new(AnthropicSettings {
        api_key: "sk-test".into(),
        base_url: server.uri(),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_total: Duration::from_secs(30),
        },
    })
    .unwrap()
}

fn request(tools: bool) -> ChatRequest {
    ChatRequest {
        model: "claude-sonnet-4-5-20250929".into(),
        system: "You are the copywriting specialist.".into(),
        messages: vec![ChatMessage::user("<goal>Launch</goal>")],
        max_tokens: 1024,
        tools: if tools {
            vec![
                ToolSpec {
                    name: "ga4__run_report".into(),
                    description: "Run a GA4 report".into(),
                    input_schema: json!({"type": "object"}),
                },
                ToolSpec {
                    name: "wp__get_page".into(),
                    description: "Read a page".into(),
                    input_schema: json!({"type": "object"}),
                },
            ]
        } else {
            vec![]
        },
        meta: CallMeta::default(),
    }
}

fn ok_body() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "# Draft\n## Headline\nKnow what you owe."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 120, "output_tokens": 40, "cache_creation_input_tokens": 900, "cache_read_input_tokens": 0}
    })
}

#[tokio::test]
async fn the_request_marks_the_stable_prefix_for_caching_and_usage_is_read_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-test"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
        .expect(1)
        .mount(&server)
        .await;
    let response = model(&server).complete(&request(true)).await.unwrap();
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are the copywriting specialist.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "<goal>Launch</goal>"}]}],
            "tools": [
                {"name": "ga4__run_report", "description": "Run a GA4 report", "input_schema": {"type": "object"}},
                {"name": "wp__get_page", "description": "Read a page", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
            ]
        })
    );
    assert_eq!(response.text, "# Draft\n## Headline\nKnow what you owe.");
    assert_eq!(response.usage.input_tokens, 120);
    assert_eq!(response.usage.cache_write_tokens, 900);
    assert!(!response.scripted);
}

#[tokio::test]
async fn a_429_is_waited_out_for_at_least_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
        .mount(&server)
        .await;
    let start = Instant::now();
    let response = model(&server).complete(&request(false)).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "retry-after was not honoured"
    );
    assert_eq!(response.usage.output_tokens, 40);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_400_fails_permanently_with_the_api_message_after_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: must be at most 64000"}})))
        .mount(&server)
        .await;
    let err = model(&server).complete(&request(false)).await.unwrap_err();
    match err {
        LlmError::Permanent(m) => assert_eq!(
            m,
            "Anthropic API 400: invalid_request_error: max_tokens: must be at most 64000"
        ),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_overload_storm_gives_up_after_the_retry_cap_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(529).set_body_json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
        .mount(&server)
        .await;
    let err = model(&server).complete(&request(false)).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Retryable(ref m) if m.contains("529") && m.contains("Overloaded")),
        "{err:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "one try plus three retries"
    );
}

#[tokio::test]
async fn a_malformed_body_is_retried_and_the_next_answer_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"content\": ["))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
        .mount(&server)
        .await;
    let response = model(&server).complete(&request(false)).await.unwrap();
    assert_eq!(response.stop_reason, "end_turn");
}

#[tokio::test]
async fn tool_use_blocks_come_back_as_tool_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "tu_1", "name": "ga4__run_report", "input": {"days": 28}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5}
        })))
        .mount(&server)
        .await;
    let r = model(&server).complete(&request(true)).await.unwrap();
    assert_eq!(r.stop_reason, "tool_use");
    assert_eq!(r.tool_uses.len(), 1);
    assert_eq!(r.tool_uses[0].input, json!({"days": 28}));
    assert_eq!(
        r.model, "claude-sonnet-4-5-20250929",
        "falls back to the requested model id"
    );
}

#[test]
fn the_api_key_never_appears_in_debug_output() {
    let s = AnthropicSettings {
        api_key: "sk-secret".into(),
        base_url: "http://x".into(),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy::default(),
    };
    assert!(!format!("{s:?}").contains("sk-secret"));
}
