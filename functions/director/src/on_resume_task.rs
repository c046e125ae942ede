//! The budget was raised: release a task the budget gate parked. The agent
//! runs the gate again, so a task still over budget parks again.

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
    let unpark = Write::Unpark {
        tenant: env.tenant.clone(),
        goal: env.goal.clone(),
        task: task_id.clone(),
    };
    for _ in 0..MAX_DECISION_ATTEMPTS {
        let Some(mut task) = deps.store.task(&key, task_id).await? else {
            return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
        };
        if task.status != TaskStatus::BudgetBlocked || task.revision != revision {
            tracing::info!(status = %task.status, "task is not parked; nothing to resume");
            deps.store.commit(&key, vec![unpark.clone()]).await?;
            return outbox::flush_task(deps, &task).await;
        }
        let expect = task.version;
        let trace = task.transition(
            TaskStatus::Assigned,
            deps.clock.now_ms(),
            "budget raised; released again",
        )?;
        task.reason = None;
        task.outbox.push(Outgoing::Message(Envelope::new(
            env.tenant.clone(),
            env.goal.clone(),
            Message::TaskReady {
                task: task_id.clone(),
                revision,
            },
        )));
        let writes = vec![
            Write::Task {
                task: task.clone(),
                expect_version: expect,
            },
            unpark.clone(),
            Write::Trace(trace),
        ];
        match deps.store.commit(&key, writes).await {
            Ok(()) => return outbox::flush_task(deps, &task).await,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Retry(format!(
        "gave up after {MAX_DECISION_ATTEMPTS} conflicting attempts"
    )))
}
