//! The stuck-work sweeper (job `sweep-stuck-work`): work that made no
//! progress for `stale_after_minutes` gets the message that drives it sent
//! again. Normally nothing is stuck: every decision is committed with its
//! messages (outbox) and SQS redelivers until a message is handled or
//! dead-lettered (which fails its task visibly). The sweeper covers what is
//! left: a message lost after its outbox was cleared, a queue purged by
//! hand, an invocation that died in a way nothing redelivers.
//!
//! Re-sending is safe because every handler treats a repeated message as a
//! duplicate; each stale state is re-sent at most once per window (a lease
//! per task version), and each re-send is a trace line.

use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::{CallStatus, Envelope, GoalStatus, Message, Task, TaskStatus, TenantId, Trace};
use mktg_store::{GoalKey, GoalState, StoreError, Write};

/// How far back the sweeper looks for running goals.
const LOOK_BACK_MS: u64 = 30 * 24 * 3600 * 1000;

/// The messages that move `task` on from where it stands.
fn drivers(state: &GoalState, task: &Task) -> Vec<Message> {
    let (id, revision) = (task.id.clone(), task.revision);
    match task.status {
        TaskStatus::Assigned | TaskStatus::InProgress | TaskStatus::Revision => {
            vec![Message::TaskReady { task: id, revision }]
        }
        TaskStatus::Completed => vec![Message::TaskOutput { task: id, revision }],
        TaskStatus::InReview => vec![Message::ReviewRequested { task: id, revision }],
        TaskStatus::AwaitingTools => {
            let turn = state
                .turns
                .iter()
                .filter(|t| t.task == task.id && t.revision == revision)
                .map(|t| t.n)
                .max()
                .unwrap_or(0);
            let calls: Vec<_> = state
                .calls
                .iter()
                .filter(|c| c.task == task.id && c.revision == revision && c.turn == turn)
                .collect();
            if calls.iter().all(|c| c.status.is_final()) {
                vec![Message::ToolsDone {
                    task: id,
                    revision,
                    turn,
                }]
            } else {
                calls
                    .iter()
                    .filter(|c| matches!(c.status, CallStatus::Pending | CallStatus::Running))
                    .map(|c| Message::ToolCall {
                        task: id.clone(),
                        revision,
                        turn,
                        call: c.id.clone(),
                    })
                    .collect()
            }
        }
        // Waiting for a person or the budget, or finished: not stuck.
        _ => Vec::new(),
    }
}

/// Takes the sweeper's lease on one stale state; false when another sweep
/// already re-sent it within the window.
async fn lease(
    deps: &Deps,
    tenant: &TenantId,
    key: String,
    now_ms: u64,
    window_ms: u64,
) -> Result<bool, HandlerError> {
    let write = Write::Lease {
        tenant: tenant.clone(),
        kind: "sweep".into(),
        key,
        holder: "sweeper".into(),
        expires_at: (now_ms + window_ms) / 1000,
        now: now_ms / 1000,
    };
    match deps
        .store
        .commit(&GoalKey::tenant_only(tenant.clone()), vec![write])
        .await
    {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(deps: &Deps, tenant: &TenantId, now_ms: u64) -> Result<String, HandlerError> {
    let window_ms = u64::from(deps.config.schedules.stale_after_minutes.max(1)) * 60_000;
    let goals = deps
        .store
        .goals_after(
            tenant,
            &format!("{:013}", now_ms.saturating_sub(LOOK_BACK_MS)),
            usize::MAX,
        )
        .await?;
    let running: Vec<_> = goals
        .into_iter()
        .filter(|g| g.status == GoalStatus::Running)
        .collect();
    let mut resumed = Vec::new();
    for g in &running {
        let key = GoalKey::new(tenant.clone(), g.id.clone());
        let state = deps.store.goal_state(&key).await?;
        let Some(goal) = state.goal.clone() else {
            continue;
        };
        let stale = |updated_ms: u64| now_ms.saturating_sub(updated_ms) >= window_ms;
        if !goal.outbox.is_empty()
            && stale(goal.updated_ms)
            && lease(
                deps,
                tenant,
                format!("{}@{}", goal.id, goal.version),
                now_ms,
                window_ms,
            )
            .await?
        {
            outbox::flush_goal(deps, &goal).await?;
            resumed.push(format!("{}: goal outbox", goal.id));
        }
        for task in state.tasks.iter().filter(|t| stale(t.updated_ms)) {
            let (what, sends) = if task.outbox.is_empty() {
                let msgs = drivers(&state, task);
                let names: Vec<&str> = msgs.iter().map(Message::kind).collect();
                (names.join(" + "), msgs)
            } else {
                ("its outbox".to_string(), Vec::new())
            };
            if what.is_empty()
                || !lease(
                    deps,
                    tenant,
                    format!("{}/{}@{}", goal.id, task.id, task.version),
                    now_ms,
                    window_ms,
                )
                .await?
            {
                continue;
            }
            let minutes = now_ms.saturating_sub(task.updated_ms) / 60_000;
            let trace = Trace {
                at_ms: now_ms,
                subject: task.id.to_string(),
                from: task.status.to_string(),
                to: task.status.to_string(),
                note: format!("sweeper: no progress for {minutes} min; re-sent {what}"),
            };
            deps.store.commit(&key, vec![Write::Trace(trace)]).await?;
            if task.outbox.is_empty() {
                for m in sends {
                    deps.bus
                        .send(&Envelope::new(tenant.clone(), goal.id.clone(), m))
                        .await?;
                }
            } else {
                outbox::flush_task(deps, task).await?;
            }
            tracing::warn!(goal = %goal.id, task = %task.id, status = %task.status, %what, "stuck work resumed");
            resumed.push(format!("{}/{}: {what}", goal.id, task.id));
        }
    }
    Ok(format!(
        "{} running goals checked, {} resumed{}",
        running.len(),
        resumed.len(),
        resumed.iter().map(|r| format!("; {r}")).collect::<String>()
    ))
}
