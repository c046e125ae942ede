//! Work that starts by itself, through the real bus, rule, queues and table
//! of the local emulator: refused webhooks enqueue nothing, a cooldown holds
//! back a second matching event, and a metric series with a drop raises an
//! anomaly that starts the Conversion Sprint. Needs `localstack/up`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::metrics::{date_of_day, day_of_ms};
use mktg_core::message::goal_for_event;
use mktg_core::{GoalStatus, QueueName, TenantId};
use mktg_it::{emulator, fresh_tenant, settled};
use mktg_store::GoalKey;
use std::time::{Duration, Instant};
use webhook_intake::{intake, Answer, WebhookSecrets};

const SECRET: &str = "whsec-test-7f3a";

fn secrets() -> WebhookSecrets {
    WebhookSecrets::from_vars([("WEBHOOK_SECRET_GA4".to_string(), SECRET.to_string())])
}

/// Sends `body` to the intake signed with `secret` at `ts`.
async fn post(
    deps: &mktg_boot::Deps,
    tenant: &TenantId,
    secret: &str,
    ts: i64,
    body: &[u8],
) -> Answer {
    let sig = webhook_intake::sign(secret, Some(ts), body).unwrap();
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
    intake(deps, &secrets(), tenant, "ga4", header, body).await
}

fn now_secs(deps: &mktg_boot::Deps) -> i64 {
    i64::try_from(deps.clock.now_ms() / 1000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_webhooks_get_their_4xx_and_put_nothing_on_the_bus() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-refuse"));
    let ts = now_secs(&deps);
    let good = br#"{"id":"evt-bad-1","type":"conversion_drop","percentageDrop":30}"#;
    let mut big = br#"{"id":"evt-big","type":"conversion_drop","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', webhook_intake::MAX_BODY));
    big.extend(br#""}"#);
    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        (
            "bad signature",
            post(&deps, &tenant, "wrong-secret", ts, good).await,
            401,
            "bad_signature",
        ),
        (
            "replayed timestamp",
            post(&deps, &tenant, SECRET, ts - 3600, good).await,
            401,
            "stale_timestamp",
        ),
        (
            "oversized body",
            post(&deps, &tenant, SECRET, ts, &big).await,
            413,
            "body_too_large",
        ),
        (
            "malformed JSON",
            post(&deps, &tenant, SECRET, ts, br#"{"id":"evt-bad-2","type":"#).await,
            400,
            "malformed_json",
        ),
        (
            "no event type",
            post(&deps, &tenant, SECRET, ts, br#"{"id":"evt-bad-3"}"#).await,
            422,
            "missing_type",
        ),
    ];
    for (what, answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        assert_eq!(answer.body["error"], *code, "{what}: {}", answer.body);
        assert!(
            !answer.body["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
        assert!(
            !answer.body.to_string().contains(SECRET),
            "{what}: the secret is never echoed"
        );
    }
    // A sentinel that passes, sent after them: once it reaches the director
    // queue through the rule, anything the refused ones had put would have
    // arrived too.
    let sentinel = br#"{"id":"evt-sentinel","type":"it.sentinel"}"#;
    assert_eq!(post(&deps, &tenant, SECRET, ts, sentinel).await.status, 202);
    let consumer = mktg_bus::SqsConsumer::new(aws_sdk_sqs::Client::new(&emu.aws));
    let director = emu.settings.queue_urls[&QueueName::Director].clone();
    let mut ours = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        for m in consumer.receive(&director, 10, 1).await.unwrap() {
            consumer.delete(&director, &m.receipt_handle).await.unwrap();
            if m.body.contains(tenant.as_str()) {
                ours.push(m.body);
            }
        }
        if ours.iter().any(|b| b.contains("evt-sentinel")) {
            // Give stragglers a moment.
            for m in consumer.receive(&director, 10, 1).await.unwrap() {
                consumer.delete(&director, &m.receipt_handle).await.unwrap();
                if m.body.contains(tenant.as_str()) {
                    ours.push(m.body);
                }
            }
            break;
        }
    }
    assert_eq!(ours.len(), 1, "only the sentinel arrived: {ours:?}");
    assert!(ours[0].contains("evt-sentinel"));
    for id in [
        "ga4:evt-bad-1",
        "ga4:evt-big",
        "ga4:evt-bad-2",
        "ga4:evt-bad-3",
    ] {
        assert!(
            !deps.store.claimed(&tenant, "webhook", id).await.unwrap(),
            "{id} remembered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_holds_back_a_second_matching_event() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-cool"));
    let ts = now_secs(&deps);
    // Two conversion drops within the mapping's 60-minute cooldown, then a
    // traffic drop (another mapping) as a marker.
    for body in [
        br#"{"id":"evt-c1","type":"conversion_drop","percentageDrop":22}"#.as_slice(),
        br#"{"id":"evt-c2","type":"conversion_drop","percentageDrop":35}"#.as_slice(),
    ] {
        assert_eq!(post(&deps, &tenant, SECRET, ts, body).await.status, 202);
    }
    let workers = emu.workers(deps.clone());
    // The bus promises no order and both events may be handled at once, so
    // either may take the cooldown; exactly one of them starts a goal.
    let keys = ["ga4:evt-c1", "ga4:evt-c2"]
        .map(|id| (id, GoalKey::new(tenant.clone(), goal_for_event(id))));
    let start = Instant::now();
    let (winner, first) = loop {
        let mut found = None;
        for (id, key) in &keys {
            if deps.store.goal(key).await.unwrap().is_some() {
                found = Some((*id, key.clone()));
            }
        }
        if let Some(found) = found {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "neither conversion drop started a goal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let state = settled(&deps, &first).await;
    assert_eq!(state.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let marker = br#"{"id":"evt-c3","type":"traffic_drop","percentageDrop":40}"#;
    assert_eq!(post(&deps, &tenant, SECRET, ts, marker).await.status, 202);
    let third = GoalKey::new(tenant.clone(), goal_for_event("ga4:evt-c3"));
    let start = Instant::now();
    while deps.store.goal(&third).await.unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the marker event started no goal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settled(&deps, &third).await;
    workers.stop().await;
    for (id, key) in &keys {
        if *id != winner {
            assert!(
                deps.store.goal(key).await.unwrap().is_none(),
                "the cooldown let a second goal start ({id} after {winner})"
            );
        }
    }
    assert_eq!(
        deps.store
            .lease_holder(&tenant, "event-cooldown", "conversion-drop")
            .await
            .unwrap()
            .as_deref(),
        Some(winner)
    );
    let goals = deps.store.goals(&tenant, 10).await.unwrap();
    assert_eq!(goals.len(), 2, "{goals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_series_with_a_drop_raises_an_anomaly_that_starts_the_cro_pipeline() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-anomaly"));
    let workers = emu.workers(deps.clone());
    let ts = now_secs(&deps);
    let today = day_of_ms(deps.clock.now_ms());
    // Four normal weeks of conversion rate, pushed by webhook.
    for day in today - 28..today {
        let value = 3.0 + 0.1 * ((day % 3) as f64 - 1.0);
        let body = serde_json::json!({"id": format!("cr-{day}"), "type": "metric.observed", "metric": "conversion_rate", "value": value, "day": date_of_day(day)});
        let answer = post(&deps, &tenant, SECRET, ts, body.to_string().as_bytes()).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let start = Instant::now();
    loop {
        let stored = deps
            .store
            .docs(&tenant, "metric#conversion_rate")
            .await
            .unwrap();
        if stored.len() == 28 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} observations stored",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Today it halves.
    let drop = serde_json::json!({"id": "cr-drop", "type": "metric.observed", "metric": "conversion_rate", "value": 1.5, "day": date_of_day(today)});
    assert_eq!(
        post(&deps, &tenant, SECRET, ts, drop.to_string().as_bytes())
            .await
            .status,
        202
    );
    let event_id = format!("anomaly:conversion_rate:{}", date_of_day(today));
    let key = GoalKey::new(tenant.clone(), goal_for_event(&event_id));
    let start = Instant::now();
    while deps.store.goal(&key).await.unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no goal for {event_id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = settled(&deps, &key).await;
    workers.stop().await;
    let goal = state.goal.unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    assert_eq!(goal.pipeline.as_deref(), Some("Conversion Sprint"));
    assert_eq!(goal.priority, mktg_core::Priority::P0);
    assert!(
        goal.text.contains("\"direction\":\"drop\""),
        "{}",
        goal.text
    );
    // One goal from the whole series: the normal days started nothing.
    assert_eq!(deps.store.goals(&tenant, 50).await.unwrap().len(), 1);
}
