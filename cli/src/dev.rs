//! `mktg dev`: every function's handler in one process, polling the
//! emulator's queues with the semantics of Lambda's SQS event source
//! mapping: batches of up to 10, delete only what succeeded, leave failures
//! for redelivery after the visibility timeout, and let SQS move a message
//! to its DLQ after maxReceiveCount.

use crate::dispatch;
use mktg_boot::{handle_record, Deps, RecordOutcome};
use mktg_bus::SqsConsumer;
use mktg_core::QueueName;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct DevStats {
    pub handled: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    /// Time spent in handlers, in microseconds (what Lambda would bill).
    pub busy_us: AtomicU64,
}

/// Polls every queue until `stop` is set.
pub async fn run(
    deps: Deps,
    consumer: SqsConsumer,
    urls: HashMap<QueueName, String>,
    batch_size: i32,
    stop: Arc<AtomicBool>,
    stats: Arc<DevStats>,
) -> anyhow::Result<()> {
    let mut workers = Vec::new();
    for queue in QueueName::ALL {
        let Some(url) = urls.get(&queue).cloned() else {
            continue;
        };
        let (deps, consumer, stop, stats) =
            (deps.clone(), consumer.clone(), stop.clone(), stats.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let batch = match consumer.receive(&url, batch_size, 1).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(queue = queue.as_str(), error = %e, "receive failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                // Records of one batch run concurrently, like concurrent
                // invocations would; each is deleted only on success.
                let jobs = batch.into_iter().map(|m| {
                    let (deps, consumer, url, stats) = (deps.clone(), consumer.clone(), url.clone(), stats.clone());
                    async move {
                        let began = std::time::Instant::now();
                        let outcome = handle_record(&m.message_id, &m.body, |env| {
                            let deps = deps.clone();
                            async move { dispatch(&deps, queue, env).await }
                        })
                        .await;
                        stats.busy_us.fetch_add(
                            u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
                            Ordering::Relaxed,
                        );
                        if let RecordOutcome::Retry(why) = &outcome {
                            // As under Lambda: the last delivery before the
                            // DLQ records the failure on the task.
                            if mktg_boot::dead_letter::is_last_delivery(m.receive_count) {
                                if let Ok(env) = mktg_boot::decode(&m.body) {
                                    if let Err(e) = mktg_boot::dead_letter::record(&deps, &env, why).await {
                                        tracing::error!(error = %e, "could not record the dead-lettered failure");
                                    }
                                }
                            }
                        }
                        match &outcome {
                            RecordOutcome::Ack => stats.handled.fetch_add(1, Ordering::Relaxed),
                            RecordOutcome::Failed(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
                            RecordOutcome::Retry(_) => stats.retried.fetch_add(1, Ordering::Relaxed),
                        };
                        if outcome.deletes_message() {
                            if let Err(e) = consumer.delete(&url, &m.receipt_handle).await {
                                tracing::warn!(error = %e, "delete failed; the message will be redelivered and deduplicated");
                            }
                        }
                    }
                });
                futures::future::join_all(jobs).await;
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    Ok(())
}

/// `run` started in the background, with what stops it and what it counted.
pub struct Workers {
    pub stats: Arc<DevStats>,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Workers {
    /// Starts polling every queue of `urls` with `batch_size` records per receive.
    pub fn start(
        deps: Deps,
        consumer: SqsConsumer,
        urls: HashMap<QueueName, String>,
        batch_size: i32,
    ) -> Workers {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(DevStats::default());
        let handle = tokio::spawn(run(
            deps,
            consumer,
            urls,
            batch_size,
            stop.clone(),
            stats.clone(),
        ));
        Workers {
            stats,
            stop,
            handle,
        }
    }

    /// Stops after the records in hand are done; what they counted.
    pub async fn stop(self) -> anyhow::Result<Arc<DevStats>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await??;
        Ok(self.stats)
    }
}
