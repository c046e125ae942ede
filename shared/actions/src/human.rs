//! A person stops a goal or decides an escalated task. Both are checked
//! here (the goal or task exists for the tenant and is in a state that
//! allows it) and sent to the director, which decides them on the goal's
//! version (`functions/director/src/on_human.rs`).

use crate::ActionError;
use mktg_boot::Deps;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, Resolution, TaskId, TaskStatus, TenantId};
use mktg_store::GoalKey;

/// Asks the director to cancel a running or escalated goal.
pub async fn cancel(
    deps: &Deps,
    tenant: &TenantId,
    goal: &str,
    by: &str,
    reason: &str,
) -> Result<GoalId, ActionError> {
    let key = GoalKey::new(tenant.clone(), GoalId::new(goal));
    let Some(g) = deps.store.goal(&key).await? else {
        return Err(ActionError::NotFound(format!("no goal \"{goal}\"")));
    };
    if !matches!(g.status, GoalStatus::Running | GoalStatus::Escalated) {
        return Err(ActionError::Conflict(format!(
            "goal {goal} is {}; only a running or escalated goal can be cancelled",
            g.status
        )));
    }
    send(
        deps,
        Envelope::new(
            tenant.clone(),
            g.id.clone(),
            Message::CancelGoal {
                by: by.to_string(),
                reason: reason.trim().to_string(),
            },
        ),
    )
    .await?;
    Ok(g.id)
}

/// Asks the director to resolve an escalated task.
pub async fn resolve(
    deps: &Deps,
    tenant: &TenantId,
    goal: &str,
    task: &str,
    action: Resolution,
    by: &str,
    note: &str,
) -> Result<(), ActionError> {
    let key = GoalKey::new(tenant.clone(), GoalId::new(goal));
    let task_id = TaskId::new(task);
    let Some(t) = deps.store.task(&key, &task_id).await? else {
        return Err(ActionError::NotFound(format!(
            "no task \"{task}\" in goal \"{goal}\""
        )));
    };
    if t.status != TaskStatus::Escalated {
        return Err(ActionError::Conflict(format!(
            "task {task} is {}, not escalated",
            t.status
        )));
    }
    send(
        deps,
        Envelope::new(
            tenant.clone(),
            GoalId::new(goal),
            Message::ResolveEscalation {
                task: task_id,
                revision: t.revision,
                action,
                by: by.to_string(),
                note: note.trim().to_string(),
            },
        ),
    )
    .await
}

async fn send(deps: &Deps, env: Envelope) -> Result<(), ActionError> {
    deps.bus
        .send(&env)
        .await
        .map_err(|e| ActionError::Unavailable(format!("not queued: {e}")))
}
