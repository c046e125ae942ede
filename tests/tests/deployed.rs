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

/// A function-URL request to the stack's function `logical` (its logical
/// id in the template), as the URL would send it; its answer's status,
/// content type and body.
async fn invoke_url_raw(
    emu: &mktg_it::Emulator,
    logical: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u64, String, String) {
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
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut head = json!({"content-type": "application/json"});
    for (k, v) in headers {
        head[*k] = json!(v);
    }
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": head,
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
    let content_type = response["headers"]["content-type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let text = response["body"].as_str().unwrap_or_default().to_string();
    (status, content_type, text)
}

/// As `invoke_url_raw`, for a JSON answer.
async fn invoke_url(
    emu: &mktg_it::Emulator,
    logical: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u64, Value) {
    let (status, _, text) = invoke_url_raw(emu, logical, method, path, &[], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_submitted_through_the_deployed_api_completes_and_streams() {
    let emu = deployed().await;
    let key = emu.env["MKTG_DEPLOYED_API_KEY"].clone();
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    // The dashboard is served by the same function.
    let (status, kind, page) = invoke_url_raw(&emu, "ApiFunction", "GET", "/", &[], None).await;
    assert_eq!(status, 200);
    assert!(
        kind.starts_with("text/html") && page.contains("<html"),
        "{kind}"
    );
    let (status, _, me) = invoke_url_raw(&emu, "ApiFunction", "GET", "/me", &headers, None).await;
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("\"tenant\":\"it-deployed\""), "{me}");
    // A goal through the API, run by the deployed functions.
    let body = json!({"text": "Lift trial signups", "pipeline": "Conversion Sprint"}).to_string();
    let (status, _, answer) =
        invoke_url_raw(&emu, "ApiFunction", "POST", "/goals", &headers, Some(&body)).await;
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["goal_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = Instant::now();
    let goal = loop {
        let (status, _, text) = invoke_url_raw(
            &emu,
            "ApiFunction",
            "GET",
            &format!("/goals/{id}"),
            &headers,
            None,
        )
        .await;
        let g: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 && g["status"] != "RUNNING" {
            break g;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "not settled: {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(goal["status"], "COMPLETED", "{goal}");
    // Its event stream, as the dashboard reads it.
    let (status, kind, events) = invoke_url_raw(
        &emu,
        "ApiFunction",
        "GET",
        &format!("/goals/{id}/stream"),
        &headers,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(kind, "text/event-stream");
    assert!(events.contains("event: goal") && events.contains("COMPLETED"));
    assert!(events.contains("event: task") && events.contains("event: trace"));
    let (status, _, outputs) = invoke_url_raw(
        &emu,
        "ApiFunction",
        "GET",
        &format!("/goals/{id}/outputs"),
        &headers,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<Value>(&outputs).unwrap()["outputs"]
            .as_array()
            .unwrap()
            .len()
            >= 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_connects_a_tool_through_the_deployed_api_into_secrets_manager() {
    let emu = deployed().await;
    let key = emu.env["MKTG_DEPLOYED_API_KEY"].clone();
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    // Sign-up is closed unless the operator opens it.
    let (status, body) = invoke_url(
        &emu,
        "ApiFunction",
        "POST",
        "/signup",
        Some(r#"{"name": "Acme"}"#),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("signup_closed"))
    );
    // The function writes the tenant's credentials to Secrets Manager.
    let value = format!("re_deployed_{}", uuid::Uuid::new_v4().simple());
    let body = json!({"credentials": {"RESEND_API_KEY": value}}).to_string();
    let (status, _, text) = invoke_url_raw(
        &emu,
        "ApiFunction",
        "PUT",
        "/tools/resend/connection",
        &headers,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(&value));
    let sm = aws_sdk_secretsmanager::Client::new(&emu.aws);
    let name = |list: &aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput| {
        list.secret_list()
            .iter()
            .filter_map(|s| s.name())
            .find(|n| n.ends_with("tenants/it-deployed/tools/resend"))
            .map(str::to_string)
    };
    let listed = sm.list_secrets().send().await.unwrap();
    let secret = name(&listed).expect("the tenant's secret exists");
    let stored = sm
        .get_secret_value()
        .secret_id(&secret)
        .send()
        .await
        .unwrap();
    assert!(stored.secret_string().unwrap().contains(&value));
    let (status, _, tools) =
        invoke_url_raw(&emu, "ApiFunction", "GET", "/tools", &headers, None).await;
    assert_eq!(status, 200);
    assert!(!tools.contains(&value));
    // Disconnected: the secret is deleted.
    let (status, _, text) = invoke_url_raw(
        &emu,
        "ApiFunction",
        "DELETE",
        "/tools/resend/connection",
        &headers,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(sm
        .get_secret_value()
        .secret_id(&secret)
        .send()
        .await
        .is_err());
}
