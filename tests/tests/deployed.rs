//! The real Lambda binaries, deployed from infra/template.yaml into the
//! emulator by `localstack/deploy`: the emulator runs them as processes
//! wired by SQS event source mappings. Nothing runs in this test process but
//! the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_lambda::primitives::Blob;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, TaskStatus, TenantId};
use mktg_it::{deployed, fresh_tenant};
use mktg_store::GoalKey;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_completes_through_the_emulator_hosted_functions() {
    let emu = deployed().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-lambda"));
    let goal = GoalId::new("g-lambda");
    deps.bus
        .send(&Envelope::new(
            tenant.clone(),
            goal.clone(),
            Message::GoalSubmitted {
                text: "Lift trial signups".into(),
                pipeline: Some("Conversion Sprint".into()),
                priority: Default::default(),
                source: None,
                submitted_ms: 1,
            },
        ))
        .await
        .unwrap();
    let key = GoalKey::new(tenant, goal);
    let start = Instant::now();
    let state = loop {
        let s = deps.store.goal_state(&key).await.unwrap();
        if s.goal.as_ref().is_some_and(|g| g.status.is_settled()) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not settled: {:?}",
            s.traces
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(state.goal.unwrap().status, GoalStatus::Completed);
    assert!(state.tasks.iter().all(|t| t.status == TaskStatus::Approved));
    assert_eq!(state.outputs.len(), 5, "four tasks, copywriting twice");
    // Five agent calls, and the reviews, distillations and consistency
    // check around them: every call recorded once.
    let agent = state
        .turns
        .iter()
        .filter(|t| state.tasks.iter().any(|task| task.id == t.task))
        .count();
    assert_eq!(agent, 5);
    assert_eq!(state.cost.calls as usize, state.turns.len());
    assert!(
        state.reviews.iter().any(|r| r.overall.is_some()),
        "semantic reviews ran in the Lambdas"
    );
}

/// Invokes the stack's function `logical` (its logical id in the
/// template) with a function-URL request, as the URL would, and returns the
/// status and the JSON body of its answer.
async fn invoke_url(
    emu: &mktg_it::Emulator,
    logical: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u64, Value) {
    let lambda = aws_sdk_lambda::Client::new(&emu.aws);
    let functions = lambda.list_functions().send().await.unwrap();
    let stack = emu.env["MKTG_STACK"].clone();
    let name = functions
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .find(|n| n.starts_with(&format!("{stack}-{logical}")))
        .unwrap_or_else(|| panic!("{logical} is not deployed"))
        .to_string();
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
                           "accountId": "anonymous", "apiId": "x", "domainName": "x", "domainPrefix": "x", "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "25/Nov/2026:06:00:00 +0000", "timeEpoch": 1_795_586_400_000_i64},
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        event["body"] = json!(b);
    }
    let out = lambda
        .invoke()
        .function_name(&name)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    assert!(out.function_error().is_none(), "{:?}", out.payload());
    let response: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    let status = response["statusCode"].as_u64().unwrap_or(0);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_function_answers_a_function_url_request() {
    let emu = deployed().await;
    // A function URL request for a source with no secret configured.
    let (status, body) = invoke_url(
        &emu,
        "WebhookIntakeFunction",
        "POST",
        "/hubspot",
        Some("{\"id\":\"1\",\"type\":\"x\"}"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_function_answers_through_its_function_url_event() {
    let emu = deployed().await;
    let (status, body) = invoke_url(&emu, "ApiFunction", "GET", "/health", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let (status, body) = invoke_url(&emu, "ApiFunction", "GET", "/goals", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
}
