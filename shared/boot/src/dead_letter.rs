//! The last delivery: when a handler still asks for a retry on the
//! delivery after which SQS moves the message to its dead-letter queue, the
//! failure is recorded on the message's task (FAILED, with the cause) and
//! the director is told, so the goal fails visibly instead of waiting on a
//! message nobody will deliver again. The message itself still goes to the
//! DLQ, where `mktg dlq list` shows it.

use crate::{outbox, Deps, HandlerError};
use mktg_core::{Envelope, Message, Outgoing, TaskStatus};
use mktg_store::{GoalKey, StoreError, Write};

/// `maxReceiveCount` of every queue's redrive policy (infra/template.yaml).
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Whether this delivery is the last before the dead-letter queue.
pub fn is_last_delivery(receive_count: u32) -> bool {
    receive_count >= MAX_RECEIVE_COUNT
}

/// Marks the envelope's task FAILED with `why` (if it has a task that is
/// not finished) and queues TaskFailed for the director.
pub async fn record(deps: &Deps, env: &Envelope, why: &str) -> Result<(), HandlerError> {
    let Some(task_id) = env.message.task().cloned() else {
        tracing::error!(kind = env.message.kind(), error = %why, "a message without a task is going to the dead-letter queue");
        return Ok(());
    };
    if matches!(env.message, Message::TaskFailed { .. }) {
        // The director could not even record a failure: nothing more to do here.
        tracing::error!(error = %why, "a TaskFailed message is going to the dead-letter queue");
        return Ok(());
    }
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    let Some(mut task) = deps.store.task(&key, &task_id).await? else {
        return Ok(());
    };
    if task.status.is_terminal() {
        return outbox::flush_task(deps, &task).await;
    }
    let reason = format!(
        "its {} message failed {MAX_RECEIVE_COUNT} deliveries and went to the dead-letter queue (mktg dlq list); last error: {why}",
        env.message.kind()
    );
    let expect = task.version;
    let trace = task.transition(TaskStatus::Failed, deps.clock.now_ms(), reason.clone())?;
    task.reason = Some(reason.clone());
    task.outbox.push(Outgoing::Message(Envelope::new(
        env.tenant.clone(),
        env.goal.clone(),
        Message::TaskFailed {
            task: task_id,
            reason,
        },
    )));
    match deps
        .store
        .commit(
            &key,
            vec![
                Write::Task {
                    task: task.clone(),
                    expect_version: expect,
                },
                Write::Trace(trace),
            ],
        )
        .await
    {
        Ok(()) => outbox::flush_task(deps, &task).await,
        Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
