//! Goals run against a mock Anthropic API (a real HTTP server): what the
//! API says is what the user sees, and a crash never pays for a call twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::{Deps, HandlerError};
use mktg_bus::MemoryBus;
use mktg_cli::dispatch;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId};
use mktg_llm::{AnthropicModel, AnthropicSettings, RetryPolicy};
use mktg_store::{GoalKey, MemoryStore, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn claude(server: &MockServer) -> Arc<AnthropicModel> {
    Arc::new(
        AnthropicModel::new(AnthropicSettings {
            api_key: "sk-test".into(),
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
    )
}

/// A foundation-skill answer that passes its structural review.
fn context_answer() -> serde_json::Value {
    let body = format!(
        "# Tallybook marketing context\n## Product\n{}\n## Audience\n{}\n## Positioning\n{}",
        "Tallybook invoices, captures receipts and estimates quarterly taxes. ".repeat(10),
        "Freelancers and small agencies in the US who hate month-end. ".repeat(10),
        "The bookkeeping app that tells you what you owe before the IRS does. ".repeat(10)
    );
    json!({"content": [{"type": "text", "text": body}], "model": "claude-opus-4-6", "stop_reason": "end_turn",
           "usage": {"input_tokens": 2000, "output_tokens": 600, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 0}})
}

/// The reviewer's answer: scores on the research rubric, quoting the answer.
fn review_answer() -> serde_json::Value {
    let verdict = json!({
        "decision": "APPROVE",
        "scores": {"source_accuracy": 8, "specificity": 8, "candor": 8, "downstream_usefulness": 8},
        "overall": 8,
        "summary": "Clear product, audience and positioning.",
        "feedback": [{"severity": "minor", "quote": "Tallybook invoices, captures receipts",
                      "problem": "lists features, not outcomes", "fix": "lead with the hours saved"}]
    });
    json!({"content": [{"type": "text", "text": verdict.to_string()}], "model": "claude-sonnet-4-6", "stop_reason": "end_turn",
           "usage": {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
}

/// Requests the agents made (not the reviewer's).
async fn agent_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("You are the reviewer"))
        .count()
}

/// In-memory deps whose model is Claude at the mock server.
fn deps_for(server: &MockServer) -> (Arc<MemoryStore>, Arc<MemoryBus>, Deps) {
    let store = Arc::new(MemoryStore::new());
    let bus = Arc::new(MemoryBus::new());
    // Learnings off: these tests count the agent's and the reviewer's calls.
    let mut config = mktg_testkit::real_config();
    config.learnings.enabled = false;
    let deps = Deps::new(
        store.clone(),
        bus.clone(),
        claude(server),
        Arc::new(config),
        Arc::new(mktg_testkit::StepClock::new(1)),
    );
    (store, bus, deps)
}

/// What a run of the queues saw.
#[derive(Debug, Default, PartialEq)]
struct Deliveries {
    retries: usize,
    failures: usize,
}

/// Submits the Foundation pipeline and delivers until the queues are empty;
/// messages for which `twice` holds are delivered twice in a row, retried
/// messages go back to their queue.
async fn run_foundation(deps: &Deps, bus: &MemoryBus, twice: fn(&Message) -> bool) -> Deliveries {
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
    let mut seen = Deliveries::default();
    for _ in 0..100 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = bus.pop(q) {
                any = true;
                for _ in 0..if twice(&env.message) { 2 } else { 1 } {
                    match dispatch(deps, q, env.clone()).await {
                        Ok(()) => {}
                        Err(HandlerError::Retry(_)) => {
                            seen.retries += 1;
                            bus.send_now(&env).await;
                        }
                        Err(HandlerError::Fail(_)) => seen.failures += 1,
                    }
                }
            }
        }
        if !any {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn a_redelivered_turn_makes_one_call_at_the_api_and_records_its_cost_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("You are the reviewer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(review_answer()))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(context_answer()))
        .mount(&server)
        .await;
    let (store, bus, deps) = deps_for(&server);
    // Deliver every TaskReady twice: the second delivery finds the stored turn.
    let seen = run_foundation(&deps, &bus, |m| matches!(m, Message::TaskReady { .. })).await;
    assert_eq!(
        seen,
        Deliveries::default(),
        "no delivery failed or was retried"
    );
    let s = store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap();
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(
        agent_requests(&server).await,
        1,
        "one agent call at the API"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "and one review"
    );
    assert_eq!(s.cost.calls, 2);
    // The agent on opus: 2000 x 15 + 600 x 75 + 1500 x 18.75 micro-dollars;
    // the review on sonnet: 1000 x 3 + 100 x 15.
    assert_eq!(s.cost.micros, 30_000 + 45_000 + 28_125 + 3_000 + 1_500);
    let review = s.reviews.iter().find(|r| r.reviewer == "semantic").unwrap();
    assert_eq!(review.overall, Some(8));
    assert!(!s.outputs[0].scripted);
    assert_eq!(s.outputs[0].model, "claude-opus-4-6");
}

#[tokio::test]
async fn a_permanent_api_error_fails_the_task_with_the_apis_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}})))
        .mount(&server)
        .await;
    let (store, bus, deps) = deps_for(&server);
    let seen = run_foundation(&deps, &bus, |_| false).await;
    assert_eq!(seen.retries, 0, "a 400 is never retried");
    let s = store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap();
    let goal = s.goal.unwrap();
    assert_eq!(goal.status, GoalStatus::Failed);
    let reason = goal.reason.unwrap();
    assert!(
        reason.contains("Anthropic API 400: invalid_request_error: prompt is too long"),
        "{reason}"
    );
    assert_eq!(s.tasks[0].status, TaskStatus::Failed);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_eq!(s.cost.calls, 0, "a failed call costs nothing");
}
