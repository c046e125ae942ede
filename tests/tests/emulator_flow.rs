//! Goals through real SQS queues, a real DynamoDB table and a real event
//! bus in the local emulator, with the handlers polling like Lambda's event
//! source mapping. Needs `localstack/up`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use mktg_core::{Decision, Envelope, GoalId, GoalStatus, Message, TaskStatus, TenantId};
use mktg_it::{emulator, fresh_tenant, settled, DuplicatingBus};
use mktg_store::GoalKey;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn submit(tenant: &TenantId, goal: &GoalId, text: &str, pipeline: Option<&str>) -> Envelope {
    Envelope::new(
        tenant.clone(),
        goal.clone(),
        Message::GoalSubmitted {
            text: text.into(),
            pipeline: pipeline.map(String::from),
            priority: Default::default(),
            source: None,
            submitted_ms: 1,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_step_pipeline_completes_and_its_outputs_are_read_back_from_dynamodb() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-flow"));
    let goal = GoalId::new("g-conversion");
    let workers = emu.workers(deps.clone());
    deps.bus
        .send(&submit(
            &tenant,
            &goal,
            "Lift trial signups",
            Some("Conversion Sprint"),
        ))
        .await
        .unwrap();
    let key = GoalKey::new(tenant.clone(), goal.clone());
    let state = settled(&deps, &key).await;
    let stats = workers.stop().await;

    let g = state.goal.as_ref().unwrap();
    assert_eq!(g.status, GoalStatus::Completed, "{:?}", g.reason);
    let skills: Vec<&str> = state.tasks.iter().map(|t| t.skill.as_str()).collect();
    assert_eq!(
        skills,
        [
            "page-cro",
            "copywriting",
            "ab-test-setup",
            "analytics-tracking"
        ]
    );
    assert!(state.tasks.iter().all(|t| t.status == TaskStatus::Approved));
    // copywriting was revised once (the scripted first draft is thin).
    assert_eq!(state.tasks[1].revision, 1);
    assert_eq!(state.outputs.len(), 5);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);

    // Read the outputs back straight from the table, not through the store.
    let ddb = aws_sdk_dynamodb::Client::new(&emu.aws);
    let items = ddb
        .query()
        .table_name(&emu.settings.table_name)
        .key_condition_expression("PK = :pk AND begins_with(SK, :out)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("T#{tenant}#G#{goal}")))
        .expression_attribute_values(":out", AttributeValue::S("OUT#".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 5);
    let body_of = |sk: &str| {
        items
            .items()
            .iter()
            .find(|i| i["SK"] == AttributeValue::S(sk.into()))
            .map(|i| i["data"].as_s().unwrap().clone())
            .unwrap_or_else(|| panic!("no item {sk}"))
    };
    assert!(body_of("OUT#04-analytics-tracking#000").contains("Tracking Plan"));
    assert!(body_of("OUT#02-copywriting#001").contains("Call to Action"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_changes_nothing() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let mut deps = emu.deps();
    let dup = Arc::new(DuplicatingBus::new(deps.bus.clone()));
    deps.bus = dup.clone();
    let tenant = TenantId::new(fresh_tenant("it-dup"));
    let goal = GoalId::new("g-dup");
    let workers = emu.workers(deps.clone());
    deps.bus
        .send(&submit(
            &tenant,
            &goal,
            "Write a blog post about receipts",
            None,
        ))
        .await
        .unwrap();
    let key = GoalKey::new(tenant.clone(), goal.clone());
    let state = settled(&deps, &key).await;
    let stats = workers.stop().await;

    assert_eq!(state.goal.as_ref().unwrap().status, GoalStatus::Completed);
    assert_eq!(state.tasks.len(), 5);
    // Exactly one output, one structural review and one model turn per task
    // revision, plus the content strategist's tool turn and its one tool
    // call, one semantic review (and its model turn) per approval, and the
    // three steps of copywriting's review chain, and one distillation of
    // learnings per approval, and the director's consistency check.
    assert_eq!(state.outputs.len(), 6);
    assert_eq!(state.turns.len(), 20);
    assert_eq!(state.calls.len(), 1);
    assert_eq!(state.calls[0].status, mktg_core::CallStatus::Done);
    assert_eq!(state.reviews.len(), 13);
    assert_eq!(state.cost.calls, 20);
    let copy: Vec<Decision> = state
        .reviews
        .iter()
        .filter(|r| r.task.as_str() == "02-copywriting" && r.reviewer == "structural")
        .map(|r| r.decision)
        .collect();
    assert_eq!(copy, [Decision::Revise, Decision::Approve]);
    // Every transition happened once: one trace line per (subject, to, revision) step.
    let goal_completions = state
        .traces
        .iter()
        .filter(|t| t.subject == "goal" && t.to == "COMPLETED")
        .count();
    assert_eq!(goal_completions, 1);
    let approvals = state.traces.iter().filter(|t| t.to == "APPROVED").count();
    assert_eq!(approvals, 5);
    // Duplicates were acknowledged, never failed.
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    // Submit + 6 ready + 6 outputs + 6 review requests + 6 decisions, each twice.
    assert!(
        dup.sent.load(Ordering::Relaxed) >= 2 * 24,
        "every message was sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ticks_at_once_through_dynamodb_start_one_goal() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-tick"));
    let workers = emu.workers(deps.clone());
    // 2026-11-25 06:00:20 UTC: daily-social is due.
    let now = 1_795_586_420_000;
    let (a, b) = tokio::join!(
        scheduler_tick::tick(&deps, &tenant, now),
        scheduler_tick::tick(&deps, &tenant, now)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // The metrics job is due at 06:00 too; count the goal schedule only.
    let social = |r: &scheduler_tick::TickReport| {
        r.fired
            .iter()
            .chain(&r.already)
            .filter(|k| k.contains("daily-social"))
            .count()
    };
    assert_eq!(social(&a) + social(&b), 2, "{a:?} {b:?}");
    let key = GoalKey::new(tenant.clone(), GoalId::new("s-daily-social-202611250600"));
    let state = settled(&deps, &key).await;
    workers.stop().await;
    assert_eq!(state.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(deps.store.goals(&tenant, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_put_on_the_real_bus_once() {
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-hook"));
    let secrets = webhook_intake::WebhookSecrets::from_vars([(
        "WEBHOOK_SECRET_GA4".to_string(),
        "s".to_string(),
    )]);
    let body = br#"{"id":"evt-42","type":"conversion_drop","percentageDrop":14}"#;
    let ts = (deps.clock.now_ms() / 1000) as i64;
    let sig = webhook_intake::sign("s", Some(ts), body).unwrap();
    let headers = [
        ("x-mktg-timestamp", ts.to_string()),
        ("x-mktg-signature", format!("v1={sig}")),
    ];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let first = webhook_intake::intake(&deps, &secrets, &tenant, "ga4", header, body).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let second = webhook_intake::intake(&deps, &secrets, &tenant, "ga4", header, body).await;
    assert_eq!(
        (second.status, second.body["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert!(deps
        .store
        .claimed(&tenant, "webhook", "ga4:evt-42")
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_becomes_a_goal_through_the_bus_and_its_rule() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-event"));
    let workers = emu.workers(deps.clone());
    let secrets = webhook_intake::WebhookSecrets::from_vars([(
        "WEBHOOK_SECRET_GA4".to_string(),
        "s".to_string(),
    )]);
    let body = br#"{"id":"evt-77","type":"conversion_drop","percentageDrop":18}"#;
    let ts = (deps.clock.now_ms() / 1000) as i64;
    let sig = webhook_intake::sign("s", Some(ts), body).unwrap();
    let headers = [
        ("x-mktg-timestamp", ts.to_string()),
        ("x-mktg-signature", format!("v1={sig}")),
    ];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let answer = webhook_intake::intake(&deps, &secrets, &tenant, "ga4", header, body).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // The rule delivers the event to the director queue; a duplicate
    // delivery of the same webhook is refused at the door.
    assert_eq!(
        webhook_intake::intake(&deps, &secrets, &tenant, "ga4", header, body)
            .await
            .status,
        200
    );
    let key = GoalKey::new(
        tenant.clone(),
        mktg_core::message::goal_for_event("ga4:evt-77"),
    );
    let state = settled(&deps, &key).await;
    workers.stop().await;
    let goal = state.goal.unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    assert_eq!(goal.pipeline.as_deref(), Some("Conversion Sprint"));
    assert_eq!(goal.priority, mktg_core::Priority::P0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_task_and_redriven_to_their_queue() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let consumer = mktg_bus::SqsConsumer::new(aws_sdk_sqs::Client::new(&emu.aws));
    let tenant = TenantId::new(fresh_tenant("it-dlq"));
    let env = Envelope::new(
        tenant.clone(),
        GoalId::new("g-dead"),
        Message::TaskOutput {
            task: "01-seo-audit".into(),
            revision: 0,
        },
    );
    let dlq = emu.settings.dlq_urls[&mktg_core::QueueName::Director].clone();
    consumer
        .send_raw(&dlq, &serde_json::to_string(&env).unwrap())
        .await
        .unwrap();
    consumer.send_raw(&dlq, "{not json").await.unwrap();

    let dead = mktg_cli::dlq::list(&consumer, deps.store.as_ref(), &emu.settings.dlq_urls, 50)
        .await
        .unwrap();
    let ours = dead
        .iter()
        .find(|d| d.what.contains(tenant.as_str()))
        .expect("listed");
    assert_eq!(
        ours.what,
        format!("TaskOutput tenant {tenant} goal g-dead task 01-seo-audit")
    );
    assert!(dead.iter().any(|d| d.what.starts_with("unreadable body")));
    // Listing consumed nothing.
    assert_eq!(
        mktg_cli::dlq::list(&consumer, deps.store.as_ref(), &emu.settings.dlq_urls, 50)
            .await
            .unwrap()
            .len(),
        dead.len()
    );

    let moved = mktg_cli::dlq::redrive(&consumer, &emu.settings.queue_urls, &emu.settings.dlq_urls)
        .await
        .unwrap();
    assert_eq!(moved, dead.len());
    assert!(
        mktg_cli::dlq::list(&consumer, deps.store.as_ref(), &emu.settings.dlq_urls, 50)
            .await
            .unwrap()
            .is_empty()
    );
    // Both are back on the director queue; take them off again.
    let director = emu.settings.queue_urls[&mktg_core::QueueName::Director].clone();
    let mut back = 0;
    for _ in 0..10 {
        for m in consumer.receive(&director, 10, 1).await.unwrap() {
            consumer.delete(&director, &m.receipt_handle).await.unwrap();
            back += 1;
        }
        if back >= moved {
            break;
        }
    }
    assert_eq!(back, moved);
}
