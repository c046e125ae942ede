//! The director's Lambda entry point fed with real SQS event JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use mktg_core::{GoalStatus, QueueName};
use mktg_store::{GoalKey, Store};
use mktg_testkit::{fixture, memory_deps};

fn event(name: &str) -> LambdaEvent<SqsEvent> {
    let payload: SqsEvent = serde_json::from_str(&fixture(name)).unwrap();
    LambdaEvent::new(payload, Context::default())
}

#[test]
fn fixtures_round_trip_through_the_event_types() {
    for name in [
        "events/sqs-goal-submitted.json",
        "events/sqs-mixed-batch.json",
    ] {
        let parsed: SqsEvent = serde_json::from_str(&fixture(name)).unwrap();
        let again: SqsEvent =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(parsed, again, "{name}");
    }
}

#[tokio::test]
async fn a_goal_submitted_record_plans_the_goal_and_releases_the_first_task() {
    let t = memory_deps();
    let response = director::handle(&t.deps, event("events/sqs-goal-submitted.json"))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let goal = t
        .store
        .goal(&GoalKey::new("acme".into(), "g-fixture".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(goal.status, GoalStatus::Running);
    assert_eq!(goal.pipeline.as_deref(), Some("SEO Cycle"));
    assert_eq!(t.bus.pending(QueueName::Agent).len(), 1);
}

#[tokio::test]
async fn a_mixed_batch_acks_what_can_never_succeed_and_reports_only_retries() {
    let t = memory_deps();
    let response = director::handle(&t.deps, event("events/sqs-mixed-batch.json"))
        .await
        .unwrap();
    // The garbage body and the output of a task that does not exist can
    // never succeed; retrying them would only feed the DLQ. Nothing here
    // is transient, so no record is reported for redelivery.
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(
        t.bus.pending(QueueName::Agent).len(),
        1,
        "the good record was handled"
    );
}
