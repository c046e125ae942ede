//! The Anthropic provider against a mock LLM server process from PyPI
//! (llmock, installed by `scripts/mcp-servers`): faults are scripted through
//! its admin API, the client's requests are counted there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_llm::{
    AnthropicModel, AnthropicSettings, CallMeta, ChatMessage, ChatModel, ChatRequest, LlmError,
    RetryPolicy, ToolSpec,
};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Llmock {
    url: String,
    child: tokio::process::Child,
    http: reqwest::Client,
}

impl Llmock {
    async fn start() -> Llmock {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.mktg/mcp-venv/bin/llmock");
        assert!(
            bin.exists(),
            "{} is missing: run `bash scripts/mcp-servers` (scripts/test does)",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(bin)
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-level",
                "warning",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http
            .get(format!("{url}/_llmock/requests"))
            .send()
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "llmock did not start on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Llmock { url, child, http }
    }

    async fn script(&self, behaviors: serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/_llmock/scenario", self.url))
            .json(&json!({ "behaviors": behaviors }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn requests(&self) -> usize {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/_llmock/requests", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["requests"].as_array().map_or(0, Vec::len)
    }

    fn claude(&self, max_retries: usize) -> AnthropicModel {
        AnthropicModel::new(AnthropicSettings {
            api_key: "sk-test".into(),
            base_url: format!("{}/anthropic", self.url),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_retries,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_total: Duration::from_secs(20),
            },
        })
        .unwrap()
    }
}

impl Drop for Llmock {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn request(tools: Vec<ToolSpec>) -> ChatRequest {
    ChatRequest {
        model: "claude-sonnet-4-5".into(),
        system: "You are the copywriting specialist.".into(),
        messages: vec![ChatMessage::user("Write a headline.")],
        max_tokens: 200,
        tools,
        meta: CallMeta::default(),
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_the_call_succeeds() {
    let mock = Llmock::start().await;
    mock.script(json!([
        {"type": "fail", "status": 429, "retry_after": 0.5, "times": 1},
        {"type": "reply", "text": "Know what you owe before the IRS does."}
    ]))
    .await;
    let started = Instant::now();
    let out = mock.claude(3).complete(&request(vec![])).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "retry-after was not honoured"
    );
    assert_eq!(out.text, "Know what you owe before the IRS does.");
    assert_eq!(mock.requests().await, 2);
}

#[tokio::test]
async fn an_overload_storm_is_retried_until_it_passes_or_the_cap_is_reached() {
    let mock = Llmock::start().await;
    mock.script(json!([{"type": "fail", "status": 529, "times": 3}]))
        .await;
    let out = mock.claude(3).complete(&request(vec![])).await.unwrap();
    assert!(!out.text.is_empty());
    assert_eq!(mock.requests().await, 4, "three 529s, then success");

    mock.script(json!([{"type": "fail", "status": 529, "times": 5}]))
        .await;
    let err = mock.claude(2).complete(&request(vec![])).await.unwrap_err();
    assert!(matches!(err, LlmError::Retryable(_)), "{err}");
    assert!(err.to_string().contains("529"), "{err}");
}

#[tokio::test]
async fn a_permanent_400_is_not_retried_and_carries_the_apis_message() {
    let mock = Llmock::start().await;
    mock.script(json!([{
        "type": "fail", "status": 400, "times": 1,
        "message": "prompt is too long: 210000 tokens > 200000 maximum"
    }]))
    .await;
    let err = mock.claude(3).complete(&request(vec![])).await.unwrap_err();
    assert!(matches!(err, LlmError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("prompt is too long"), "{err}");
    assert_eq!(mock.requests().await, 1);
}

#[tokio::test]
async fn a_tool_call_turn_comes_back_as_tool_uses() {
    let mock = Llmock::start().await;
    mock.script(json!([{
        "type": "reply",
        "tool_calls": [{"name": "ga4__run_report", "arguments": {"property": "123", "metric": "sessions"}}]
    }]))
    .await;
    let tool = ToolSpec {
        name: "ga4__run_report".into(),
        description: "Runs a GA4 report.".into(),
        input_schema: json!({"type": "object", "properties": {"property": {"type": "string"}, "metric": {"type": "string"}}}),
    };
    let out = mock.claude(1).complete(&request(vec![tool])).await.unwrap();
    assert_eq!(out.stop_reason, "tool_use");
    assert_eq!(out.tool_uses.len(), 1);
    assert_eq!(out.tool_uses[0].name, "ga4__run_report");
    assert_eq!(out.tool_uses[0].input["metric"], "sessions");
    assert!(out.tool_uses[0].id.starts_with("toolu"));
}
