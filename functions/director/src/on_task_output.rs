//! An agent stored an output: move the task into review and ask for one.

use crate::MAX_DECISION_ATTEMPTS;
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::{Envelope, Message, Outgoing, TaskId, TaskStatus};
use mktg_store::{GoalKey, StoreError, Write};

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    for _ in 0..MAX_DECISION_ATTEMPTS {
        let Some(mut task) = deps.store.task(&key, task_id).await? else {
            return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
        };
        if task.status != TaskStatus::Completed || task.revision != revision {
            tracing::info!(status = %task.status, "output already routed; duplicate");
            return outbox::flush_task(deps, &task).await;
        }
        let expect = task.version;
        let now = deps.clock.now_ms();
        let trace = task.transition(
            TaskStatus::InReview,
            now,
            format!("revision {revision} sent to review"),
        )?;
        task.outbox.push(Outgoing::Message(Envelope::new(
            env.tenant.clone(),
            env.goal.clone(),
            Message::ReviewRequested {
                task: task_id.clone(),
                revision,
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
            Ok(()) => return outbox::flush_task(deps, &task).await,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Retry(format!(
        "gave up after {MAX_DECISION_ATTEMPTS} conflicting attempts"
    )))
}
