//! The `Bus` port: send a message to a function's queue, publish a domain
//! event. Adapters: SQS + EventBridge, and in-memory. Also the SQS consumer
//! `mktg dev` uses to poll queues the way Lambda's event source mapping does.
//! No business decisions here.

mod aws;
mod memory;

pub use aws::{QueueUrls, Received, SqsConsumer, SqsEventBridgeBus};
pub use memory::MemoryBus;

use async_trait::async_trait;
use mktg_core::{DomainEvent, Envelope};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("transient bus error: {0}")]
    Transient(String),
    #[error("bus error: {0}")]
    Permanent(String),
}

impl BusError {
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Transient(_))
    }
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends the envelope to the queue of its message's consumer. At least
    /// once: consumers dedupe by the envelope's idempotency key.
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Publishes a domain event on the event bus.
    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError>;

    /// Puts an event from outside (a webhook) on the bus, as `source` /
    /// `detail_type` with a JSON `detail`.
    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError>;
}

/// One external event put on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalEvent {
    pub source: String,
    pub detail_type: String,
    pub detail: String,
}
