//! Events matched against events.yaml become goals, once, within cooldowns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::message::goal_for_event;
use mktg_core::{Envelope, GoalSource, Message, TenantId};
use mktg_testkit::{memory_deps, TestDeps};

fn event(id: &str, event_type: &str, data: &str) -> Envelope {
    Envelope::new(
        TenantId::new("acme"),
        goal_for_event(id),
        Message::EventReceived {
            event_id: id.into(),
            event_type: event_type.into(),
            data_json: data.into(),
            received_ms: 0,
        },
    )
}

async fn deliver(t: &TestDeps, env: Envelope) {
    director::on_message(&t.deps, env).await.unwrap();
}

async fn goals(t: &TestDeps) -> Vec<mktg_core::Goal> {
    t.deps
        .store
        .goals(&TenantId::new("acme"), 50)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_matching_event_starts_its_pipeline_once() {
    let t = memory_deps();
    let e = event("ga4:evt-1", "traffic_drop", r#"{"percentageDrop": 32}"#);
    deliver(&t, e.clone()).await;
    deliver(&t, e).await;
    let g = goals(&t).await;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].pipeline.as_deref(), Some("SEO Cycle"));
    assert_eq!(g[0].priority, mktg_core::Priority::P1);
    assert_eq!(
        g[0].source,
        GoalSource::Event {
            event_type: "traffic_drop".into(),
            event_id: "ga4:evt-1".into()
        }
    );
}

#[tokio::test]
async fn an_event_below_its_threshold_starts_nothing() {
    let t = memory_deps();
    deliver(
        &t,
        event("ga4:evt-2", "traffic_drop", r#"{"percentageDrop": 12}"#),
    )
    .await;
    deliver(&t, event("ga4:evt-3", "traffic_drop", r#"{"visits": 100}"#)).await;
    deliver(&t, event("x:1", "unknown_type", "{}")).await;
    assert!(goals(&t).await.is_empty());
}

#[tokio::test]
async fn a_second_matching_event_within_the_cooldown_is_ignored() {
    let t = memory_deps();
    deliver(
        &t,
        event("ga4:a", "conversion_drop", r#"{"percentageDrop": 15}"#),
    )
    .await;
    deliver(
        &t,
        event("ga4:b", "conversion_drop", r#"{"percentageDrop": 40}"#),
    )
    .await;
    let g = goals(&t).await;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].id.as_str(), "e-ga4-a");
}

#[tokio::test]
async fn a_goal_mapping_writes_the_goal_from_the_event_data() {
    let t = memory_deps();
    deliver(
        &t,
        event(
            "gsc:r1",
            "ranking_drop",
            r#"{"positionsLost": 5, "url": "/pricing", "query": "freelance invoicing"}"#,
        ),
    )
    .await;
    let g = goals(&t).await;
    assert_eq!(
        g[0].text,
        "Refresh the content of /pricing: it lost 5 positions for \"freelance invoicing\""
    );
}
