//! Secrets never reach the logs: a run with known secret values — the
//! Anthropic API key (with a rate-limited call retried), a webhook source's
//! secret (good, forged and stale deliveries), a tool server's credential —
//! is logged at TRACE level, as JSON like Lambda's, and the captured logs
//! are scanned for every secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::{Deps, HandlerError};
use mktg_bus::MemoryBus;
use mktg_cli::dispatch;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, QueueName, TenantId};
use mktg_llm::{AnthropicModel, AnthropicSettings, RetryPolicy};
use mktg_store::{GoalKey, MemoryStore, Store};
use mktg_tools::{McpHost, ToolHost};
use serde_json::json;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "sk-ant-api03-LEAKCHECK-9f8e7d6c5b4a";
const WEBHOOK_SECRET: &str = "whsec_LEAKCHECK_5a4b3c2d1e";
const TOOL_TOKEN: &str = "tok_LEAKCHECK_77aa88bb99";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn answer(text: &str) -> serde_json::Value {
    json!({"content": [{"type": "text", "text": text}], "model": "claude-opus-4-6", "stop_reason": "end_turn",
           "usage": {"input_tokens": 1000, "output_tokens": 300, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
}

#[tokio::test]
async fn no_secret_appears_in_trace_level_logs_of_a_run() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .init();

    // 1. A goal through Claude at a mock API, the first call rate limited.
    let server = MockServer::start().await;
    let body = format!(
        "# Tallybook marketing context\n## Product\n{}\n## Audience\n{}\n## Positioning\n{}",
        "Tallybook invoices, captures receipts and estimates quarterly taxes. ".repeat(10),
        "Freelancers and small agencies in the US who hate month-end. ".repeat(10),
        "The bookkeeping app that tells you what you owe before the IRS does. ".repeat(10)
    );
    let verdict = json!({"decision": "APPROVE", "scores": {"source_accuracy": 8, "specificity": 8, "candor": 8, "downstream_usefulness": 8},
        "overall": 8, "summary": "Clear.", "feedback": []});
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("You are the reviewer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer(&verdict.to_string())))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer(&body)))
        .with_priority(3)
        .mount(&server)
        .await;
    let model = Arc::new(
        AnthropicModel::new(AnthropicSettings {
            api_key: API_KEY.into(),
            base_url: server.uri(),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_retries: 2,
                min_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
                max_total: Duration::from_secs(10),
            },
        })
        .unwrap(),
    );
    let store = Arc::new(MemoryStore::new());
    let bus = Arc::new(MemoryBus::new());
    let mut config = mktg_testkit::real_config();
    config.learnings.enabled = false;
    let deps = Deps::new(
        store.clone(),
        bus.clone(),
        model,
        Arc::new(config),
        Arc::new(mktg_testkit::StepClock::new(1_700_000_000_000)),
    );
    bus.send_now(&Envelope::new(
        TenantId::new("t"),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: "Write our marketing context".into(),
            pipeline: Some("Foundation".into()),
            priority: Default::default(),
            source: None,
            submitted_ms: 1,
        },
    ))
    .await;
    for _ in 0..100 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = bus.pop(q) {
                any = true;
                if let Err(HandlerError::Retry(_)) = dispatch(&deps, q, env.clone()).await {
                    bus.send_now(&env).await;
                }
            }
        }
        if !any {
            break;
        }
    }
    let s = store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap();
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);

    // 2. Webhooks signed with the source's secret: good, forged, stale.
    let secrets = webhook_intake::WebhookSecrets::from_vars([(
        "WEBHOOK_SECRET_STRIPE".to_string(),
        WEBHOOK_SECRET.to_string(),
    )]);
    let now = i64::try_from(deps.clock.now_ms() / 1000).unwrap();
    let payload = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    for (secret, ts, want) in [
        (WEBHOOK_SECRET, now, 202),
        ("not-the-secret", now, 401),
        (WEBHOOK_SECRET, now - 3600, 401),
    ] {
        let sig = webhook_intake::sign(secret, Some(ts), payload).unwrap();
        let header_value = format!("t={ts},v1={sig}");
        let header = |name: &str| (name == "stripe-signature").then(|| header_value.clone());
        let a = webhook_intake::intake(
            &deps,
            &secrets,
            &TenantId::new("t"),
            "stripe",
            header,
            payload,
        )
        .await;
        assert_eq!(a.status, want, "{}", a.body);
    }

    // 3. A tool server started with a declared credential.
    std::env::set_var("EVERYTHING_API_TOKEN", TOOL_TOKEN);
    let tools_yaml = format!(
        "servers:\n  everything:\n    command: {}\n    args: [stdio]\n    env: [EVERYTHING_API_TOKEN]\n    skills: [content-strategy]\n    effect: read\n",
        mktg_testkit::everything_server()
    );
    let (_dir, config, _) = mktg_testkit::config_with_tools(&tools_yaml, "replies: []\n");
    let host = McpHost::new(config.tools.clone());
    let out = host
        .invoke(
            "everything",
            "echo",
            json!({"message": "hello"}),
            "k-1",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("hello"));
    drop(host);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The logs are real: they saw the retry, the refusals and the tool.
    assert!(text.len() > 10_000, "only {} bytes of logs", text.len());
    assert!(text.contains("webhook refused"), "refusals are logged");
    assert!(
        text.contains("429") || text.contains("rate"),
        "the retry is logged"
    );
    for secret in [API_KEY, WEBHOOK_SECRET, TOOL_TOKEN] {
        if let Some(at) = text.find(secret) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            let _ = writeln!(std::io::stderr(), "{}", &text[line_start..line_end]);
            panic!("a secret reached the logs");
        }
    }
}
