//! Dead-letter queues: list what landed there, with the task it concerns,
//! and send it back to its queue. Redriving is safe because every handler
//! acknowledges work that is already done.

use mktg_boot::decode;
use mktg_bus::{BusError, SqsConsumer};
use mktg_core::QueueName;
use mktg_store::{GoalKey, Store};
use std::collections::{BTreeSet, HashMap};

/// One dead message, as shown by `mktg dlq list`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadMessage {
    pub queue: QueueName,
    pub message_id: String,
    pub receive_count: u32,
    /// `kind goal task`, or why the body could not be read.
    pub what: String,
    /// The task's status and reason now, if the message names one.
    pub task_state: Option<String>,
}

/// Lists up to `max` messages per dead-letter queue without consuming them.
pub async fn list(
    consumer: &SqsConsumer,
    store: &dyn Store,
    dlqs: &HashMap<QueueName, String>,
    max: usize,
) -> Result<Vec<DeadMessage>, BusError> {
    let mut out = Vec::new();
    for queue in QueueName::ALL {
        let Some(url) = dlqs.get(&queue) else {
            continue;
        };
        let mut seen = BTreeSet::new();
        // Receives sample the queue; a few rounds see all of a small one.
        for _ in 0..10 {
            let batch = consumer.peek(url, 10).await?;
            let fresh: Vec<_> = batch
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for m in fresh {
                let (what, task_state) = match decode(&m.body) {
                    Ok(env) => {
                        let task = env.message.task().cloned();
                        let state = match &task {
                            Some(t) => store
                                .task(&GoalKey::new(env.tenant.clone(), env.goal.clone()), t)
                                .await
                                .ok()
                                .flatten()
                                .map(|t| {
                                    format!(
                                        "{}{}",
                                        t.status,
                                        t.reason.map(|r| format!(": {r}")).unwrap_or_default()
                                    )
                                }),
                            None => None,
                        };
                        (
                            format!(
                                "{} tenant {} goal {} task {}",
                                env.message.kind(),
                                env.tenant,
                                env.goal,
                                task.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
                            ),
                            state,
                        )
                    }
                    Err(e) => (format!("unreadable body: {e}"), None),
                };
                out.push(DeadMessage {
                    queue,
                    message_id: m.message_id,
                    receive_count: m.receive_count,
                    what,
                    task_state,
                });
            }
            if out.len() >= max {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Moves every message of each dead-letter queue back to its queue.
/// Returns how many moved.
pub async fn redrive(
    consumer: &SqsConsumer,
    queues: &HashMap<QueueName, String>,
    dlqs: &HashMap<QueueName, String>,
) -> Result<usize, BusError> {
    let mut moved = 0;
    for queue in QueueName::ALL {
        let (Some(dlq), Some(target)) = (dlqs.get(&queue), queues.get(&queue)) else {
            continue;
        };
        loop {
            let batch = consumer.receive(dlq, 10, 0).await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                // Send first, then delete: a crash in between duplicates the
                // message, which the handler acknowledges; it never loses it.
                consumer.send_raw(target, &m.body).await?;
                consumer.delete(dlq, &m.receipt_handle).await?;
                moved += 1;
            }
        }
    }
    Ok(moved)
}
