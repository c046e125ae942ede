//! The product surface through the API with the real handlers over memory
//! adapters: the product context reaches every agent, a plan preview costs
//! a goal without starting it, a goal runs to approved outputs with reviews
//! and a trace, the live stream reports it and resumes from its cursor, a
//! goal is cancelled, an escalation is resolved, the budget and plan cap
//! spending, and the dashboard's files are served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use api::stream;
use common::{keys, Client};
use mktg_core::{GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId};
use mktg_store::{GoalKey, Write};
use mktg_testkit::{memory_deps_with, real_config, RecordingModel, TestDeps};
use serde_json::{json, Value};
use std::time::Duration;

/// Delivers every queued message to its function's handler until none is
/// left, as the queues and Lambdas would.
async fn drain(t: &TestDeps) {
    let failed = drain_lenient(t).await;
    assert!(failed.is_empty(), "handlers failed: {failed:?}");
}

/// As `drain`, collecting handler failures instead of stopping at one.
async fn drain_lenient(t: &TestDeps) -> Vec<String> {
    let mut failed = Vec::new();
    loop {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                any = true;
                let deps = &t.deps;
                let r = match q {
                    QueueName::Director => director::on_message(deps, env).await,
                    QueueName::Agent => agent_executor::on_message(deps, env).await,
                    QueueName::Review => reviewer::on_message(deps, env).await,
                    QueueName::Tool => tool_invoker::on_message(deps, env).await,
                };
                if let Err(e) = r {
                    failed.push(format!("{q:?}: {e}"));
                }
            }
        }
        if !any {
            return failed;
        }
    }
}

/// Puts the goal's last task (and so the goal) in ESCALATED, as running out
/// of revisions would.
async fn escalate_last_task(t: &TestDeps, key: &GoalKey) -> mktg_core::Task {
    let state = t.deps.store.goal_state(key).await.unwrap();
    let mut goal = state.goal.clone().unwrap();
    let mut task = state.tasks.last().unwrap().clone();
    let (gv, tv) = (goal.version, task.version);
    goal.status = GoalStatus::Escalated;
    goal.version += 1;
    task.status = TaskStatus::Escalated;
    task.version += 1;
    let writes = vec![
        Write::Goal {
            goal,
            expect_version: gv,
        },
        Write::Task {
            task: task.clone(),
            expect_version: tv,
        },
    ];
    t.deps.store.commit(key, writes).await.unwrap();
    task
}

fn world() -> (TestDeps, std::sync::Arc<RecordingModel>) {
    let model = RecordingModel::demo();
    (memory_deps_with(real_config(), model.clone()), model)
}

const EDITOR: Option<&str> = Some("alpha-editor-key");
const VIEWER: Option<&str> = Some("alpha-viewer-key");
const OTHER: Option<&str> = Some("beta-owner-key");

async fn submit(c: &Client<'_>, text: &str) -> String {
    let a = c
        .call("POST", "/goals", EDITOR, json!({ "text": text }))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    a.body["goal_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_goal_from_product_context_to_reviewed_outputs_through_the_api() {
    let (t, model) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    let me = c.call("GET", "/me", VIEWER, Value::Null).await;
    assert_eq!(
        (me.body["tenant"].as_str(), me.body["role"].as_str()),
        (Some("alpha"), Some("viewer"))
    );

    // The product context: none yet; viewers cannot write it; it is checked.
    let none = c.call("GET", "/context", VIEWER, Value::Null).await;
    assert_eq!(none.body["context"], Value::Null);
    let context = json!({
        "product": "Tallybook, bookkeeping for freelancers that reads receipts from a photo",
        "audience": "freelance designers and developers in the EU",
        "voice": "plain, warm, no jargon",
    });
    assert_eq!(
        c.call("PUT", "/context", VIEWER, context.clone())
            .await
            .status,
        403
    );
    let bad = c
        .call(
            "PUT",
            "/context",
            EDITOR,
            json!({"product": "x", "audience": " "}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("audience is required"),
        "{}",
        bad.body
    );
    let bad = c
        .call(
            "PUT",
            "/context",
            EDITOR,
            json!({"product": "x", "audience": "y", "mood": "z"}),
        )
        .await;
    assert!(
        bad.body["message"].as_str().unwrap().contains("mood"),
        "{}",
        bad.body
    );
    assert_eq!(
        c.call("PUT", "/context", EDITOR, context.clone())
            .await
            .status,
        200
    );
    let read = c.call("GET", "/context", VIEWER, Value::Null).await;
    assert_eq!(read.body["context"]["product"], context["product"]);
    // Another tenant has its own (none).
    assert_eq!(
        c.call("GET", "/context", OTHER, Value::Null).await.body["context"],
        Value::Null
    );

    // A plan preview prices the goal and starts nothing.
    let text = "Write a blog post announcing Tallybook's new receipt capture";
    let preview = c
        .call("POST", "/plan-preview", EDITOR, json!({ "text": text }))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    let tasks = preview.body["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty());
    assert!(preview.body["total_usd"].as_f64().unwrap() > 0.0);
    assert!(tasks
        .iter()
        .all(|t| t["basis"].as_str().unwrap().contains("default")));
    assert!(
        t.bus.pending(QueueName::Director).is_empty(),
        "a preview queues nothing"
    );
    assert_eq!(
        c.call("POST", "/plan-preview", VIEWER, json!({ "text": text }))
            .await
            .status,
        403
    );

    // The goal runs to completion.
    let id = submit(&c, text).await;
    drain(&t).await;
    let goal = c
        .call("GET", &format!("/goals/{id}"), VIEWER, Value::Null)
        .await;
    assert_eq!(goal.body["status"], "COMPLETED", "{}", goal.body);
    let task_list = goal.body["tasks"].as_array().unwrap();
    assert_eq!(
        task_list.len(),
        tasks.len(),
        "the goal ran the plan the preview showed"
    );
    assert!(task_list.iter().all(|t| t["status"] == "APPROVED"));
    let reviews = c
        .call("GET", &format!("/goals/{id}/reviews"), VIEWER, Value::Null)
        .await;
    let reviews = reviews.body["reviews"].as_array().unwrap().clone();
    assert!(reviews
        .iter()
        .any(|r| r["overall"].is_u64() && r["decision"] == "APPROVE"));
    assert!(
        reviews
            .iter()
            .any(|r| r["decision"] == "REVISE" && !r["findings"].as_array().unwrap().is_empty()),
        "the demo's thin first draft is sent back with findings"
    );
    let outputs = c
        .call("GET", &format!("/goals/{id}/outputs"), VIEWER, Value::Null)
        .await;
    assert!(outputs.body["outputs"].as_array().unwrap().len() >= task_list.len());
    let trace = c
        .call("GET", &format!("/goals/{id}/trace"), VIEWER, Value::Null)
        .await;
    assert!(trace.body["trace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["to"] == "COMPLETED"));

    // Every agent's system prompt carried the product context.
    let agent_calls: Vec<_> = model
        .requests()
        .into_iter()
        .filter(|r| r.meta.role == "agent")
        .collect();
    assert!(!agent_calls.is_empty());
    for r in &agent_calls {
        assert!(
            r.system.contains("## Product marketing context"),
            "{} lacks the context",
            r.meta.skill
        );
        assert!(r.system.contains("reads receipts from a photo"));
    }

    // The live stream: everything so far, then nothing new from its cursor.
    let first = api::serve(
        &t.deps,
        &c.keys,
        "GET",
        &format!("/goals/{id}/stream"),
        "",
        Some("Bearer alpha-viewer-key"),
        None,
        b"",
    )
    .await;
    assert_eq!(
        (first.status, first.content_type),
        (200, "text/event-stream")
    );
    assert!(first.body.contains("event: goal\ndata: {\"id\":"));
    assert!(first.body.contains("\"status\":\"COMPLETED\""));
    assert_eq!(first.body.matches("event: task\n").count(), task_list.len());
    assert_eq!(
        first.body.matches("event: trace\n").count(),
        trace.body["trace"].as_array().unwrap().len()
    );
    let cursor = first
        .body
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    let state = t
        .deps
        .store
        .goal_state(&GoalKey::new("alpha".into(), GoalId::new(&id)))
        .await
        .unwrap();
    assert_eq!(
        stream::changes(&state, Some(&cursor)),
        "",
        "nothing new after the cursor"
    );
    let again = stream::events(
        &t.deps,
        &"alpha".into(),
        &GoalId::new(&id),
        Some(&cursor),
        Duration::ZERO,
    )
    .await;
    assert!(!again.body.contains("event:"), "{}", again.body);
    // A trace line added later is the only thing sent after the cursor.
    let mut more = state.clone();
    more.traces.push(mktg_core::Trace {
        at_ms: 1,
        subject: "goal".into(),
        from: "COMPLETED".into(),
        to: "COMPLETED".into(),
        note: "later".into(),
    });
    let next = stream::changes(&more, Some(&cursor));
    assert_eq!(next.matches("event: trace\n").count(), 1);
    assert!(next.contains("\"note\":\"later\"") && !next.contains("event: task"));
    // The stream is the key's tenant's only.
    let theirs = api::serve(
        &t.deps,
        &c.keys,
        "GET",
        &format!("/goals/{id}/stream"),
        "",
        Some("Bearer beta-owner-key"),
        None,
        b"",
    )
    .await;
    assert_eq!(theirs.status, 404);
    let anon = api::serve(
        &t.deps,
        &c.keys,
        "GET",
        &format!("/goals/{id}/stream"),
        "",
        None,
        None,
        b"",
    )
    .await;
    assert_eq!(anon.status, 401);

    // Cost now shows the goal's calls by skill; learnings and views answer.
    let cost = c.call("GET", "/cost", VIEWER, Value::Null).await;
    assert!(cost.body["calls"].as_u64().unwrap() > 0);
    assert!(!cost.body["by_skill"].as_array().unwrap().is_empty());
    for path in [
        "/learnings",
        "/schedules",
        "/events",
        "/metrics",
        "/escalations",
        "/approvals",
        "/tools",
        "/budget",
        "/billing",
    ] {
        let a = c.call("GET", path, VIEWER, Value::Null).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let schedules = c.call("GET", "/schedules", VIEWER, Value::Null).await;
    assert!(schedules.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["what"] == "report-usage" && s["next"].as_array().unwrap().len() == 3));

    // A second preview prices from this month's measured calls.
    let preview = c
        .call("POST", "/plan-preview", EDITOR, json!({ "text": text }))
        .await;
    assert!(preview.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["basis"].as_str().unwrap().contains("average")));
}

#[tokio::test]
async fn a_goal_is_cancelled_and_an_escalation_resolved_by_people_with_the_right_role() {
    let (t, _) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    let id = submit(
        &c,
        "Write a blog post announcing Tallybook's new receipt capture",
    )
    .await;
    // Plan only: tasks are released, nothing has run.
    while let Some(env) = t.bus.pop(QueueName::Director) {
        director::on_message(&t.deps, env).await.unwrap();
    }
    let path = format!("/goals/{id}/cancel");
    assert_eq!(c.call("POST", &path, VIEWER, json!({})).await.status, 403);
    assert_eq!(c.call("POST", &path, OTHER, json!({})).await.status, 404);
    let a = c
        .call("POST", &path, EDITOR, json!({"reason": "wrong product"}))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    drain(&t).await;
    let goal = c
        .call("GET", &format!("/goals/{id}"), VIEWER, Value::Null)
        .await;
    assert_eq!(goal.body["status"], "CANCELLED");
    assert!(goal.body["reason"]
        .as_str()
        .unwrap()
        .contains("wrong product"));
    assert!(goal.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "CANCELLED"));
    assert_eq!(
        t.deps
            .store
            .goal_state(&GoalKey::new("alpha".into(), GoalId::new(&id)))
            .await
            .unwrap()
            .outputs
            .len(),
        0,
        "no agent ran after the cancel"
    );
    assert_eq!(c.call("POST", &path, EDITOR, json!({})).await.status, 409);

    // An escalated task: accept its output as it is, and the goal completes.
    let id = submit(
        &c,
        "Write a blog post announcing Tallybook's new receipt capture",
    )
    .await;
    drain(&t).await;
    let key = GoalKey::new("alpha".into(), GoalId::new(&id));
    let task = escalate_last_task(&t, &key).await;
    let listed = c.call("GET", "/escalations", VIEWER, Value::Null).await;
    assert_eq!(listed.body["escalations"][0]["task"], task.id.as_str());
    let resolve = format!("/escalations/{id}/{}/resolve", task.id);
    assert_eq!(
        c.call("POST", &resolve, VIEWER, json!({"action": "accept"}))
            .await
            .status,
        403
    );
    let bad = c
        .call("POST", &resolve, EDITOR, json!({"action": "ignore"}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"].as_str().unwrap().contains("ignore"));
    assert_eq!(
        c.call(
            "POST",
            &format!("/escalations/{id}/t99/resolve"),
            EDITOR,
            json!({"action": "accept"})
        )
        .await
        .status,
        404
    );
    let a = c
        .call(
            "POST",
            &resolve,
            EDITOR,
            json!({"action": "accept", "note": "good enough for launch"}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    // The same decision delivered twice is applied once.
    let dup = t.bus.pending(QueueName::Director);
    assert_eq!(dup.len(), 1);
    t.bus.send_now(&dup[0]).await;
    drain(&t).await;
    let goal = c
        .call("GET", &format!("/goals/{id}"), VIEWER, Value::Null)
        .await;
    assert_eq!(goal.body["status"], "COMPLETED", "{}", goal.body);
    let trace = c
        .call("GET", &format!("/goals/{id}/trace"), VIEWER, Value::Null)
        .await;
    let accepted: Vec<_> = trace.body["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["note"].as_str().unwrap().contains("accepted as it is"))
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        c.call("POST", &resolve, EDITOR, json!({"action": "accept"}))
            .await
            .status,
        409,
        "no longer escalated"
    );

    // Retry: one more revision with the person's note as feedback.
    let task = escalate_last_task(&t, &key).await;
    let a = c
        .call(
            "POST",
            &resolve,
            EDITOR,
            json!({"action": "retry", "note": "Lead with the time saved per receipt"}),
        )
        .await;
    assert_eq!(a.status, 202);
    let env = t.bus.pop(QueueName::Director).unwrap();
    director::on_message(&t.deps, env).await.unwrap();
    let after = t.deps.store.task(&key, &task.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.revision),
        (TaskStatus::Assigned, task.revision + 1)
    );
    assert_eq!(
        after.feedback.last().unwrap().summary,
        "Lead with the time saved per receipt"
    );
    assert!(
        matches!(t.bus.pending(QueueName::Agent)[0].message, Message::TaskReady { revision, .. } if revision == task.revision + 1)
    );
    assert_eq!(
        t.deps.store.goal(&key).await.unwrap().unwrap().status,
        GoalStatus::Running
    );
}

#[tokio::test]
async fn budget_and_plan_cap_spending_and_owners_alone_set_them() {
    let (t, _) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    let owner = OTHER;
    let b = c.call("GET", "/budget", owner, Value::Null).await;
    assert_eq!(
        (b.body["source"].as_str(), b.body["monthly_usd"].as_f64()),
        (Some("config"), Some(1000.0))
    );
    assert_eq!(
        c.call("PUT", "/budget", EDITOR, json!({"monthly_usd": 5}))
            .await
            .status,
        403
    );
    let bad = c
        .call("PUT", "/budget", owner, json!({"monthly_usd": -5}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"].as_str().unwrap().contains("-5"));
    let set = c
        .call(
            "PUT",
            "/budget",
            owner,
            json!({"monthly_usd": 200, "per_goal_usd": 10}),
        )
        .await;
    assert_eq!(
        (set.status, set.body["monthly_usd"].as_f64()),
        (200, Some(200.0))
    );
    // A plan caps the tenant's own budget.
    let bad = c
        .call("PUT", "/billing/plan", owner, json!({"plan": "gold"}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("starter, team"),
        "{}",
        bad.body
    );
    let plan = c
        .call("PUT", "/billing/plan", owner, json!({"plan": "starter"}))
        .await;
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert_eq!(plan.body["plan"]["name"], "starter");
    let b = c.call("GET", "/budget", owner, Value::Null).await;
    assert_eq!(
        (
            b.body["monthly_usd"].as_f64(),
            b.body["per_goal_usd"].as_f64(),
            b.body["plan"].as_str()
        ),
        (Some(50.0), Some(5.0), Some("starter"))
    );
    let limits = mktg_boot::budget::limits(&t.deps, &TenantId::new("beta"))
        .await
        .unwrap();
    assert_eq!(
        limits.month_micros, 50_000_000,
        "the gate enforces the plan's cap"
    );
    // Setting the budget keeps the plan.
    c.call("PUT", "/budget", owner, json!({"monthly_usd": 20}))
        .await;
    let b = c.call("GET", "/budget", owner, Value::Null).await;
    assert_eq!(
        (b.body["monthly_usd"].as_f64(), b.body["plan"].as_str()),
        (Some(20.0), Some("starter"))
    );
    // Stripe customer ids are checked.
    let bad = c
        .call(
            "PUT",
            "/billing/customer",
            owner,
            json!({"customer": "acct_1"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let ok = c
        .call(
            "PUT",
            "/billing/customer",
            owner,
            json!({"customer": "cus_Q1w2E3"}),
        )
        .await;
    assert_eq!(ok.body["stripe"]["customer"], "cus_Q1w2E3");
    // The other tenant is untouched.
    let alpha = c.call("GET", "/billing", VIEWER, Value::Null).await;
    assert_eq!(
        (
            alpha.body["plan"].clone(),
            alpha.body["stripe"]["customer"].clone()
        ),
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn the_dashboard_is_served_by_the_same_function() {
    let t = mktg_testkit::memory_deps();
    let keys = keys();
    for (path, kind, needle) in [
        ("/", "text/html", "<html"),
        ("/app.js", "text/javascript", "fetch"),
        ("/style.css", "text/css", "{"),
    ] {
        let r = api::serve(&t.deps, &keys, "GET", path, "", None, None, b"").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.content_type.starts_with(kind),
            "{path}: {}",
            r.content_type
        );
        assert!(r.body.contains(needle), "{path}");
    }
    let r = api::serve(&t.deps, &keys, "GET", "/nope.js", "", None, None, b"").await;
    assert_eq!(r.status, 401, "anything else is the API, which wants a key");
}

#[tokio::test]
async fn each_tenant_overrides_skills_schedules_and_tools_for_itself() {
    let (t, model) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    // beta (owner) gives copywriting the cheap tier and house rules, and
    // turns the time server and the daily social schedule off.
    let rules = "Always write in British English.";
    assert_eq!(
        c.call(
            "PUT",
            "/settings/skills/copywriting",
            EDITOR,
            json!({"tier": "haiku"})
        )
        .await
        .status,
        403,
        "owners only"
    );
    let bad = c
        .call(
            "PUT",
            "/settings/skills/copywriting",
            OTHER,
            json!({"tier": "gpt"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"].as_str().unwrap().contains("\"gpt\""));
    assert_eq!(
        c.call("PUT", "/settings/skills/astrology", OTHER, json!({}))
            .await
            .status,
        404
    );
    let set = c
        .call(
            "PUT",
            "/settings/skills/copywriting",
            OTHER,
            json!({"tier": "haiku", "instructions": rules}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let set = c
        .call(
            "PUT",
            "/settings/schedules/daily-social",
            OTHER,
            json!({"enabled": false}),
        )
        .await;
    assert!(set.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "daily-social" && s["enabled"] == false));
    // alpha keeps the defaults.
    let alpha = c.call("GET", "/settings", VIEWER, Value::Null).await;
    assert!(alpha.body["skills"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["override"].is_null()));

    // The same goal for both tenants.
    let text = "Write a blog post announcing Tallybook's new receipt capture";
    submit(&c, text).await;
    let beta_goal = c
        .call("POST", "/goals", OTHER, json!({ "text": text }))
        .await;
    assert_eq!(beta_goal.status, 202);
    drain(&t).await;
    let haiku = t.deps.config.models.model_id("haiku", "scripted");
    let sonnet = t.deps.config.models.model_id("sonnet", "scripted");
    let requests = model.requests();
    let copy: Vec<&mktg_llm::ChatRequest> = requests
        .iter()
        .filter(|r| r.meta.role == "agent" && r.meta.skill == "copywriting")
        .collect();
    let (beta_copy, alpha_copy): (Vec<&mktg_llm::ChatRequest>, Vec<&mktg_llm::ChatRequest>) =
        copy.iter().copied().partition(|r| r.system.contains(rules));
    assert!(!beta_copy.is_empty() && !alpha_copy.is_empty());
    assert!(
        beta_copy.iter().all(|r| r.model == haiku),
        "beta's copywriting runs on haiku"
    );
    assert!(
        alpha_copy.iter().all(|r| r.model == sonnet),
        "alpha's on the skill's tier"
    );
    // beta turns the time server off: its next content strategist is not
    // offered it (the demo script, which wants it, then fails that call).
    let set = c
        .call(
            "PUT",
            "/settings/tools/time",
            OTHER,
            json!({"enabled": false}),
        )
        .await;
    assert!(set.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "time" && s["enabled"] == false));
    let before = model.requests().len();
    let again = c
        .call("POST", "/goals", OTHER, json!({ "text": text }))
        .await;
    assert_eq!(again.status, 202);
    drain_lenient(&t).await;
    let offered_time =
        |r: &mktg_llm::ChatRequest| r.tools.iter().any(|d| d.name.starts_with("time__"));
    let after: Vec<mktg_llm::ChatRequest> = model.requests()[before..]
        .iter()
        .filter(|r| r.meta.role == "agent" && r.meta.skill == "content-strategy")
        .cloned()
        .collect();
    assert!(!after.is_empty());
    assert!(!after.iter().any(offered_time), "not offered once off");
    assert!(
        requests
            .iter()
            .any(|r| r.meta.skill == "content-strategy" && offered_time(r)),
        "offered before"
    );

    // Both tenants are registered; the tick runs beta's schedules without
    // the one it turned off.
    let registered = mktg_boot::tenant::registered(&t.deps).await.unwrap();
    assert!(
        registered.contains(&TenantId::new("alpha")) && registered.contains(&TenantId::new("beta"))
    );
    let own = mktg_boot::tenant::load(&t.deps, &TenantId::new("beta"))
        .await
        .unwrap();
    assert!(!own.schedule_enabled("daily-social") && own.schedule_enabled("weekly-content"));
}

#[tokio::test]
async fn a_tenant_connects_a_catalogue_server_with_its_own_credentials_which_no_answer_shows() {
    let (t, _model) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    let server = |answer: &api::Answer, name: &str| -> Value {
        answer.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {}", answer.body))
    };
    // The catalogue's servers are listed with the variables they read.
    let tools = c
        .call("GET", "/tools", Some("beta-owner-key"), Value::Null)
        .await;
    assert_eq!(tools.status, 200);
    let resend = server(&tools, "resend");
    assert_eq!(resend["source"], "catalog");
    assert_eq!(resend["connected"], false);
    assert_eq!(resend["credentials"], json!(["RESEND_API_KEY"]));
    assert_eq!(server(&tools, "time")["source"], "deployment");

    let secret = "re_live_0123456789abcdef";
    let body = json!({"credentials": {"RESEND_API_KEY": secret}});
    // Owners only; names the server reads only; one-line values.
    let no = c
        .call(
            "PUT",
            "/tools/resend/connection",
            Some("alpha-editor-key"),
            body.clone(),
        )
        .await;
    assert_eq!(no.status, 403);
    for (bad, says) in [
        (
            json!({"credentials": {"RESEND_TOKEN": "x"}}),
            "does not read \"RESEND_TOKEN\"; it reads RESEND_API_KEY",
        ),
        (json!({"credentials": {}}), "no credentials given"),
        (
            json!({"credentials": {"RESEND_API_KEY": "a\nb"}}),
            "on one line",
        ),
        (
            json!({"credentials": {"RESEND_API_KEY": "x"}, "extra": 1}),
            "unknown field `extra`",
        ),
    ] {
        let a = c
            .call(
                "PUT",
                "/tools/resend/connection",
                Some("beta-owner-key"),
                bad,
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(
            a.body["message"].as_str().unwrap().contains(says),
            "{}",
            a.body
        );
    }
    let none = c
        .call(
            "PUT",
            "/tools/time/connection",
            Some("beta-owner-key"),
            body.clone(),
        )
        .await;
    assert!(none.body["message"]
        .as_str()
        .unwrap()
        .contains("reads no credentials"));
    let ghost = c
        .call(
            "PUT",
            "/tools/ghost/connection",
            Some("beta-owner-key"),
            body.clone(),
        )
        .await;
    assert_eq!(ghost.status, 404);

    let done = c
        .call(
            "PUT",
            "/tools/resend/connection",
            Some("beta-owner-key"),
            body,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["connection"]["vars"], json!(["RESEND_API_KEY"]));
    // The value is in the vault and in no answer.
    let beta = TenantId::new("beta");
    let kept = t.deps.vault.get(&beta, "resend", 0).await.unwrap().unwrap();
    assert_eq!(kept["RESEND_API_KEY"], secret);
    let tools = c
        .call("GET", "/tools", Some("beta-owner-key"), Value::Null)
        .await;
    assert!(!tools.body.to_string().contains(secret));
    assert!(!done.body.to_string().contains(secret));
    let resend = server(&tools, "resend");
    assert_eq!(resend["connected"], true);
    assert_eq!(resend["missing_credentials"], json!([]));
    assert!(resend["connection"]["by"]
        .as_str()
        .unwrap()
        .contains("beta owner"));
    let settings = t.deps.store.docs(&beta, "settings").await.unwrap();
    assert!(!format!("{settings:?}").contains(secret));
    // Another tenant is not connected, and its test says what to do.
    let alpha = c
        .call("GET", "/tools", Some("alpha-viewer-key"), Value::Null)
        .await;
    assert_eq!(server(&alpha, "resend")["connected"], false);
    let test = c
        .call(
            "POST",
            "/tools/resend/test",
            Some("alpha-editor-key"),
            Value::Null,
        )
        .await;
    assert_eq!(test.body["ok"], false);
    assert!(test.body["error"]
        .as_str()
        .unwrap()
        .contains("set its credentials (RESEND_API_KEY) first"));

    // Its owner lets its writes run without asking; a bad value is refused.
    let set = c
        .call(
            "PUT",
            "/settings/tools/resend",
            Some("beta-owner-key"),
            json!({"approval": "auto"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let resend_setting = set.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "resend")
        .cloned()
        .unwrap();
    assert_eq!(resend_setting["approval"], "auto");
    assert_eq!(resend_setting["enabled"], true);
    let bad = c
        .call(
            "PUT",
            "/settings/tools/resend",
            Some("beta-owner-key"),
            json!({"approval": "sometimes"}),
        )
        .await;
    assert_eq!(bad.status, 400);

    // A server with several variables: replacing one keeps the others.
    let put = |body: Value| {
        let c = &c;
        async move {
            c.call(
                "PUT",
                "/tools/mailchimp/connection",
                Some("beta-owner-key"),
                body,
            )
            .await
        }
    };
    let first =
        put(json!({"credentials": {"MAILCHIMP_API_KEY": "mc-1", "MAILCHIMP_TOOLS": "read"}})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = put(json!({"credentials": {"MAILCHIMP_TOOLS": "read,create_campaign"}})).await;
    assert_eq!(
        second.body["connection"]["vars"],
        json!(["MAILCHIMP_API_KEY", "MAILCHIMP_TOOLS"])
    );
    assert!(
        second.body["connection"]["connected_ms"].as_u64()
            > first.body["connection"]["connected_ms"].as_u64()
    );
    let kept = t
        .deps
        .vault
        .get(&beta, "mailchimp", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept["MAILCHIMP_API_KEY"], "mc-1");
    assert_eq!(kept["MAILCHIMP_TOOLS"], "read,create_campaign");

    // Disconnected: forgotten by the vault; a second time is 404.
    let gone = c
        .call(
            "DELETE",
            "/tools/resend/connection",
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(t
        .deps
        .vault
        .get(&beta, "resend", 0)
        .await
        .unwrap()
        .is_none());
    // A secret left behind by a disconnect cut short goes on the next try.
    let left =
        std::collections::BTreeMap::from([("RESEND_API_KEY".to_string(), "left".to_string())]);
    t.deps.vault.put(&beta, "resend", &left).await.unwrap();
    let again = c
        .call(
            "DELETE",
            "/tools/resend/connection",
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(again.status, 404);
    assert!(t
        .deps
        .vault
        .get(&beta, "resend", 0)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_tenant_schedules_its_own_work_which_the_tick_starts_once() {
    let (t, _model) = world();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(api::OPENAPI).unwrap(),
    };
    let tip = json!({"name": "Morning growth tip", "cron": "0 7 * * *", "timezone": "Europe/Berlin",
                     "priority": "P2", "goal": "Post a growth tip for {date}"});
    let put = |id: &'static str, key: &'static str, body: Value| {
        let c = &c;
        async move {
            c.call("PUT", &format!("/schedules/{id}"), Some(key), body)
                .await
        }
    };
    assert_eq!(
        put("morning-tip", "alpha-viewer-key", tip.clone())
            .await
            .status,
        403
    );
    for (body, says) in [
        (
            json!({"name": "x", "cron": "*/10 * * * *", "goal": "g"}),
            "10 minutes apart",
        ),
        (
            json!({"name": "x", "cron": "0 7 * *", "goal": "g"}),
            "is invalid",
        ),
        (
            json!({"name": "x", "cron": "0 7 * * *", "timezone": "Mars/Base", "goal": "g"}),
            "unknown timezone \"Mars/Base\"",
        ),
        (
            json!({"name": "x", "cron": "0 7 * * *", "goal": "g", "pipeline": "SEO Cycle"}),
            "exactly one of goal or pipeline",
        ),
        (
            json!({"name": "x", "cron": "0 7 * * *", "pipeline": "Nope"}),
            "unknown pipeline \"Nope\"",
        ),
        (
            json!({"name": "x", "cron": "0 7 * * *", "job": "report-usage"}),
            "unknown field `job`",
        ),
    ] {
        let a = put("morning-tip", "alpha-editor-key", body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(
            a.body["message"].as_str().unwrap().contains(says),
            "{}",
            a.body
        );
    }
    let a = put("daily-social", "alpha-editor-key", tip.clone()).await;
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("schedule of the deployment"),
        "{}",
        a.body
    );

    let saved = put("morning-tip", "alpha-editor-key", tip).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(saved.body["own"], true);
    // 07:00 in Berlin is 06:00 UTC in winter.
    assert!(
        saved.body["next"][0]
            .as_str()
            .unwrap()
            .ends_with("T06:00:00Z"),
        "{}",
        saved.body
    );
    let listed = c
        .call("GET", "/schedules", Some("alpha-viewer-key"), Value::Null)
        .await;
    let own: Vec<&Value> = listed.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["own"] == true)
        .collect();
    assert_eq!(own.len(), 1);
    let other = c
        .call("GET", "/schedules", Some("beta-owner-key"), Value::Null)
        .await;
    assert!(other.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["own"] == false));

    // The tick starts it once for alpha, with the slot's date; not for beta.
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T06:00:30Z").unwrap();
    let now_ms = u64::try_from(at.timestamp_millis()).unwrap();
    let alpha = TenantId::new("alpha");
    let first = scheduler_tick::tick(&t.deps, &alpha, now_ms).await.unwrap();
    assert!(
        first
            .fired
            .contains(&"s-morning-tip-202611270600".to_string()),
        "{first:?}"
    );
    let texts: Vec<String> = std::iter::from_fn(|| t.bus.pop(QueueName::Director))
        .filter_map(|env| match env.message {
            Message::GoalSubmitted { text, .. } if env.tenant == alpha => Some(text),
            _ => None,
        })
        .collect();
    assert!(
        texts.contains(&"Post a growth tip for 2026-11-27".to_string()),
        "{texts:?}"
    );
    let again = scheduler_tick::tick(&t.deps, &alpha, now_ms).await.unwrap();
    assert!(!again.fired.iter().any(|g| g.contains("morning-tip")));
    assert!(
        again.already.iter().any(|k| k.starts_with("morning-tip@")),
        "{again:?}"
    );
    let beta = scheduler_tick::tick(&t.deps, &TenantId::new("beta"), now_ms)
        .await
        .unwrap();
    assert!(!beta.fired.iter().any(|g| g.contains("morning-tip")));

    // One the configuration no longer accepts is listed with the reason.
    mktg_boot::tenant::put_item(
        &t.deps,
        &alpha,
        mktg_boot::tenant::Item::Schedule,
        "old-sprint",
        &serde_json::from_value::<mktg_boot::tenant::OwnSchedule>(
            json!({"name": "Old sprint", "cron": "0 8 * * 1", "pipeline": "Retired Pipeline"}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let listed = c
        .call("GET", "/schedules", Some("alpha-viewer-key"), Value::Null)
        .await;
    let old = listed.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "old-sprint")
        .cloned()
        .unwrap();
    assert_eq!(old["enabled"], false);
    assert!(
        old["error"].as_str().unwrap().contains("Retired Pipeline"),
        "{old}"
    );

    // Deleted: the next morning nothing starts.
    let gone = c
        .call(
            "DELETE",
            "/schedules/morning-tip",
            Some("alpha-editor-key"),
            Value::Null,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let next_day = now_ms + 24 * 3600 * 1000;
    let later = scheduler_tick::tick(&t.deps, &alpha, next_day)
        .await
        .unwrap();
    assert!(
        !later.fired.iter().any(|g| g.contains("morning-tip")),
        "{later:?}"
    );
    let again = c
        .call(
            "DELETE",
            "/schedules/morning-tip",
            Some("alpha-editor-key"),
            Value::Null,
        )
        .await;
    assert_eq!(again.status, 404);
}
