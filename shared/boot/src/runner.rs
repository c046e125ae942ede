//! The one place that turns handler results into SQS batch responses.

use crate::error::HandlerError;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use mktg_core::Envelope;
use std::future::Future;
use tracing::Instrument;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Handled (or a harmless duplicate): delete the message.
    Ack,
    /// Failed permanently; the failure is recorded: delete the message.
    Failed(String),
    /// Failed temporarily: keep the message for redelivery.
    Retry(String),
}

impl RecordOutcome {
    pub fn deletes_message(&self) -> bool {
        !matches!(self, RecordOutcome::Retry(_))
    }
}

/// A message body is either our envelope, or an event that an EventBridge
/// rule delivered to the queue (a webhook or measurement event, whose
/// `detail` carries `id`, `tenant`, `type` and `data`).
pub fn decode(body: &str) -> Result<Envelope, String> {
    let envelope_error = match serde_json::from_str::<Envelope>(body) {
        Ok(e) => return Ok(e),
        Err(e) => e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let Some(detail) = value
        .get("detail")
        .filter(|_| value.get("detail-type").is_some())
    else {
        return Err(envelope_error);
    };
    let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(String::from);
    let (Some(event_id), Some(tenant), Some(event_type)) =
        (text("id"), text("tenant"), text("type"))
    else {
        return Err("an EventBridge event without detail.id, detail.tenant and detail.type".into());
    };
    if !mktg_core::ids::is_valid_id(&tenant) {
        return Err(format!("event tenant \"{tenant}\" is not a valid id"));
    }
    let data_json = detail
        .get("data")
        .map(|d| d.to_string())
        .unwrap_or_else(|| "{}".into());
    let received_ms = detail
        .get("received_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let goal = mktg_core::message::goal_for_event(&event_id);
    Ok(Envelope::new(
        mktg_core::TenantId::new(tenant),
        goal,
        mktg_core::Message::EventReceived {
            event_id,
            event_type,
            data_json,
            received_ms,
        },
    ))
}

/// Decodes one message body and runs the handler on it inside a span
/// carrying the message's identity. Errors are logged here, once.
pub async fn handle_record<F, Fut>(message_id: &str, body: &str, handler: F) -> RecordOutcome
where
    F: FnOnce(Envelope) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let envelope: Envelope = match decode(body) {
        Ok(e) => e,
        Err(e) => {
            // An undecodable message can never succeed; keeping it would
            // only send it to the DLQ after five useless attempts.
            tracing::error!(message_id, error = %e, "message is not a valid envelope; dropped");
            return RecordOutcome::Failed(format!("not a valid envelope: {e}"));
        }
    };
    let span = tracing::info_span!(
        "message",
        message_id,
        kind = envelope.message.kind(),
        tenant = %envelope.tenant,
        goal_id = %envelope.goal,
        task_id = envelope.message.task().map(|t| t.to_string()).unwrap_or_default(),
        idempotency_key = %envelope.idempotency_key,
    );
    match handler(envelope).instrument(span.clone()).await {
        Ok(()) => RecordOutcome::Ack,
        Err(HandlerError::Retry(why)) => {
            span.in_scope(|| tracing::warn!(error = %why, "will retry"));
            RecordOutcome::Retry(why)
        }
        Err(HandlerError::Fail(why)) => {
            span.in_scope(|| tracing::error!(error = %why, "failed permanently"));
            RecordOutcome::Failed(why)
        }
    }
}

/// Runs the handler on every record of an SQS event and reports only the
/// records to retry (`ReportBatchItemFailures`).
pub async fn run_sqs_batch<F, Fut>(event: SqsEvent, handler: F) -> SqsBatchResponse
where
    F: Fn(Envelope) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let outcome = handle_record(&id, &body, &handler).await;
        if !outcome.deletes_message() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// As `run_sqs_batch`, and on a record's last delivery before its
/// dead-letter queue, a retry is recorded as the task's failure
/// (`dead_letter::record`).
pub async fn run_sqs_batch_with<F, Fut>(
    deps: &crate::Deps,
    event: SqsEvent,
    handler: F,
) -> SqsBatchResponse
where
    F: Fn(Envelope) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let outcome = handle_record(&id, &body, &handler).await;
        if let RecordOutcome::Retry(why) = &outcome {
            if crate::dead_letter::is_last_delivery(receive_count) {
                if let Ok(env) = decode(&body) {
                    if let Err(e) = crate::dead_letter::record(deps, &env, why).await {
                        tracing::error!(error = %e, "could not record the dead-lettered failure");
                    }
                }
            }
        }
        if !outcome.deletes_message() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use mktg_core::{Envelope, Message};

    fn record(id: &str, task: &str) -> SqsMessage {
        let env = Envelope::new(
            "t".into(),
            "g".into(),
            Message::TaskReady {
                task: task.into(),
                revision: 0,
            },
        );
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(serde_json::to_string(&env).unwrap());
        m
    }

    #[tokio::test]
    async fn only_records_to_retry_are_reported_as_batch_item_failures() {
        let mut event = SqsEvent::default();
        event.records = vec![record("ok", "a"), record("retry", "b"), record("fail", "c")];
        let response = run_sqs_batch(event, |env| async move {
            match env.message.task().map(|t| t.as_str()) {
                Some("b") => Err(HandlerError::Retry("throttled".into())),
                Some("c") => Err(HandlerError::Fail("bad input".into())),
                _ => Ok(()),
            }
        })
        .await;
        let ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["retry"]);
    }

    #[test]
    fn an_eventbridge_delivery_becomes_an_event_received_envelope() {
        let body = r#"{"version":"0","id":"x","detail-type":"traffic_drop","source":"mktg.webhook","time":"2026-11-25T06:00:00Z","detail":{"id":"ga4:evt-1","tenant":"acme","type":"traffic_drop","received_ms":5,"data":{"percentageDrop":32}}}"#;
        let env = decode(body).unwrap();
        assert_eq!(env.tenant.as_str(), "acme");
        assert_eq!(env.goal.as_str(), "e-ga4-evt-1");
        match env.message {
            Message::EventReceived {
                event_id,
                event_type,
                data_json,
                ..
            } => {
                assert_eq!(
                    (event_id.as_str(), event_type.as_str()),
                    ("ga4:evt-1", "traffic_drop")
                );
                assert_eq!(data_json, r#"{"percentageDrop":32}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(r#"{"detail-type":"x","detail":{"id":"a"}}"#).is_err());
    }

    #[tokio::test]
    async fn an_undecodable_body_is_dropped_not_retried() {
        let outcome = handle_record("m", "{oops", |_env| async { Ok(()) }).await;
        assert!(
            matches!(outcome, RecordOutcome::Failed(ref why) if why.contains("not a valid envelope"))
        );
        assert!(outcome.deletes_message());
    }
}
