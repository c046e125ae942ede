//! A task failed outside review: the goal cannot finish, so it fails
//! visibly and the tasks that can no longer run are cancelled.

use crate::MAX_DECISION_ATTEMPTS;
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::{DomainEvent, Envelope, GoalStatus, Outgoing, TaskId, TaskStatus};
use mktg_store::{GoalKey, StoreError, Write};

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    reason: &str,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    for _ in 0..MAX_DECISION_ATTEMPTS {
        let state = deps.store.goal_state(&key).await?;
        let Some(goal) = state.goal else {
            return Err(HandlerError::Fail(format!(
                "goal {} does not exist",
                env.goal
            )));
        };
        if goal.status != GoalStatus::Running {
            return outbox::flush_goal(deps, &goal).await;
        }
        let now = deps.clock.now_ms();
        let mut goal_next = goal.clone();
        let why = format!("task {task_id} failed: {reason}");
        let mut writes = Vec::new();
        let mut traces = vec![goal_next.transition(GoalStatus::Failed, now, why.clone())?];
        for t in state
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Pending)
        {
            let mut t2 = t.clone();
            traces.push(t2.transition(TaskStatus::Cancelled, now, format!("{task_id} failed"))?);
            writes.push(Write::Task {
                task: t2,
                expect_version: t.version,
            });
        }
        goal_next.reason = Some(why.clone());
        goal_next.outbox.push(Outgoing::Event(DomainEvent::new(
            "task.failed",
            env.tenant.clone(),
            env.goal.clone(),
            Some(task_id.clone()),
            "FAILED",
            Some(reason.to_string()),
            now,
        )));
        goal_next.outbox.push(Outgoing::Event(DomainEvent::new(
            "goal.failed",
            env.tenant.clone(),
            env.goal.clone(),
            None,
            "FAILED",
            Some(why),
            now,
        )));
        writes.insert(
            0,
            Write::Goal {
                goal: goal_next.clone(),
                expect_version: goal.version,
            },
        );
        writes.extend(traces.into_iter().map(Write::Trace));
        match deps.store.commit(&key, writes).await {
            Ok(()) => return outbox::flush_goal(deps, &goal_next).await,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Retry(format!(
        "gave up after {MAX_DECISION_ATTEMPTS} conflicting attempts"
    )))
}
