//! An in-memory bus: per-queue FIFO lists and a list of published events.

use crate::{Bus, BusError, ExternalEvent};
use async_trait::async_trait;
use mktg_core::{DomainEvent, Envelope, QueueName};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryBus {
    queues: Mutex<HashMap<QueueName, VecDeque<Envelope>>>,
    events: Mutex<Vec<DomainEvent>>,
    external: Mutex<Vec<ExternalEvent>>,
    sent: Mutex<usize>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the oldest message of a queue.
    pub fn pop(&self, queue: QueueName) -> Option<Envelope> {
        self.queues.lock().ok()?.get_mut(&queue)?.pop_front()
    }

    /// Messages waiting in a queue, oldest first.
    pub fn pending(&self, queue: QueueName) -> Vec<Envelope> {
        self.queues
            .lock()
            .map(|q| {
                q.get(&queue)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    pub fn external_events(&self) -> Vec<ExternalEvent> {
        self.external.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn events(&self) -> Vec<DomainEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Total messages ever sent.
    pub fn sent_count(&self) -> usize {
        self.sent.lock().map(|n| *n).unwrap_or(0)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        let mut queues = self
            .queues
            .lock()
            .map_err(|_| BusError::Permanent("memory bus poisoned".into()))?;
        queues
            .entry(envelope.message.queue())
            .or_default()
            .push_back(envelope.clone());
        if let Ok(mut n) = self.sent.lock() {
            *n += 1;
        }
        Ok(())
    }

    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        self.events
            .lock()
            .map_err(|_| BusError::Permanent("memory bus poisoned".into()))?
            .push(event.clone());
        Ok(())
    }

    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError> {
        self.external
            .lock()
            .map_err(|_| BusError::Permanent("memory bus poisoned".into()))?
            .push(ExternalEvent {
                source: source.into(),
                detail_type: detail_type.into(),
                detail: detail.into(),
            });
        Ok(())
    }
}

impl MemoryBus {
    /// `send` for tests: panics on error.
    pub async fn send_now(&self, envelope: &Envelope) {
        if let Err(e) = self.send(envelope).await {
            panic!("memory bus send failed: {e}");
        }
    }
}
