//! SQS for queues, EventBridge for domain events. Queue URLs and the bus
//! name come from the environment the template sets; none are in code.

use crate::{Bus, BusError};
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use mktg_core::{DomainEvent, Envelope, QueueName};
use std::collections::HashMap;

/// The queue URL of each consuming function.
#[derive(Clone, Debug, Default)]
pub struct QueueUrls(pub HashMap<QueueName, String>);

impl QueueUrls {
    pub fn get(&self, queue: QueueName) -> Result<&str, BusError> {
        self.0.get(&queue).map(String::as_str).ok_or_else(|| {
            BusError::Permanent(format!(
                "no URL configured for the {} queue",
                queue.as_str()
            ))
        })
    }
}

/// The event source of every domain event.
pub const EVENT_SOURCE: &str = "mktg";

#[derive(Clone)]
pub struct SqsEventBridgeBus {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    urls: QueueUrls,
    bus_name: String,
}

impl SqsEventBridgeBus {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        events: aws_sdk_eventbridge::Client,
        urls: QueueUrls,
        bus_name: impl Into<String>,
    ) -> Self {
        SqsEventBridgeBus {
            sqs,
            events,
            urls,
            bus_name: bus_name.into(),
        }
    }
}

fn sdk_error<E: std::fmt::Debug>(what: &str, err: aws_sdk_sqs::error::SdkError<E>) -> BusError {
    use aws_sdk_sqs::error::SdkError;
    match err {
        SdkError::ServiceError(e) => BusError::Permanent(format!("{what}: {:?}", e.err())),
        other => BusError::Transient(format!("{what}: {other:?}")),
    }
}

#[async_trait]
impl Bus for SqsEventBridgeBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        let url = self.urls.get(envelope.message.queue())?;
        let body = serde_json::to_string(envelope)
            .map_err(|e| BusError::Permanent(format!("cannot encode message: {e}")))?;
        let delay = (envelope.delay_secs > 0)
            .then(|| i32::try_from(envelope.delay_secs.min(900)).unwrap_or(900));
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .set_delay_seconds(delay)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        let detail = serde_json::to_string(event)
            .map_err(|e| BusError::Permanent(format!("cannot encode event: {e}")))?;
        self.put_external(EVENT_SOURCE, &event.kind, &detail).await
    }

    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| sdk_error("PutEvents", e))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BusError::Transient(format!(
                "PutEvents rejected the event: {why}"
            )));
        }
        Ok(())
    }
}

/// One received SQS message.
#[derive(Clone, Debug)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
}

fn received(m: &aws_sdk_sqs::types::Message) -> Received {
    Received {
        message_id: m.message_id().unwrap_or_default().to_string(),
        receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
        body: m.body().unwrap_or_default().to_string(),
        receive_count: m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    }
}

/// Polls a queue like Lambda's event source mapping: receive a batch, let the
/// caller handle it, delete only the messages that succeeded. Failed messages
/// reappear after the visibility timeout; SQS moves them to the DLQ after
/// the queue's maxReceiveCount.
#[derive(Clone)]
pub struct SqsConsumer {
    sqs: aws_sdk_sqs::Client,
}

impl SqsConsumer {
    pub fn new(sqs: aws_sdk_sqs::Client) -> Self {
        SqsConsumer { sqs }
    }

    pub async fn receive(
        &self,
        url: &str,
        max: i32,
        wait_secs: i32,
    ) -> Result<Vec<Received>, BusError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        Ok(out.messages().iter().map(received).collect())
    }

    /// Reads up to `max` messages without hiding them (visibility 0), for
    /// listing a dead-letter queue.
    pub async fn peek(&self, url: &str, max: i32) -> Result<Vec<Received>, BusError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        Ok(out.messages().iter().map(received).collect())
    }

    /// Sends a raw body (a redriven message) to a queue.
    pub async fn send_raw(&self, url: &str, body: &str) -> Result<(), BusError> {
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    pub async fn delete(&self, url: &str, receipt_handle: &str) -> Result<(), BusError> {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteMessage", e))?;
        Ok(())
    }

    /// Approximate visible + in-flight messages, for progress display.
    pub async fn depth(&self, url: &str) -> Result<(u64, u64), BusError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sdk_error("GetQueueAttributes", e))?;
        let get = |k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}
