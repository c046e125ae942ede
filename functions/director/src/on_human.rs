//! Decisions a person makes about a goal through the API or the CLI.
//!
//! CANCEL: the goal becomes CANCELLED, every unfinished task CANCELLED, and
//! every tool call still waiting for approval DENIED (so an approval that
//! arrives later finds nothing to run). Work already in flight sees the
//! cancelled task when it reports and stops there.
//!
//! RESOLVE an escalated task: `accept` approves its last output as it is
//! and the goal goes on as after a review approval; `retry` gives it one
//! more revision with the person's note as feedback; `cancel` cancels the
//! goal.
//!
//! Like review decisions, each is one commit conditioned on the goal's
//! version, and a repeated message finds the decision already applied.

use crate::decide::{decide, event, Decided};
use crate::ready_message;
use mktg_boot::{Deps, HandlerError};
use mktg_core::plan::releasable;
use mktg_core::review::Feedback;
use mktg_core::{CallStatus, Envelope, Goal, GoalStatus, Resolution, TaskId, TaskStatus};
use mktg_store::GoalState;

pub async fn cancel(
    deps: &Deps,
    env: &Envelope,
    by: &str,
    reason: &str,
) -> Result<(), HandlerError> {
    decide(deps, env, |state, goal, now| {
        if !matches!(goal.status, GoalStatus::Running | GoalStatus::Escalated) {
            return Ok(None);
        }
        let note = if reason.trim().is_empty() {
            format!("cancelled by {by}")
        } else {
            format!("cancelled by {by}: {reason}")
        };
        Ok(Some(cancel_all(state, goal, env, now, &note)?))
    })
    .await
}

pub async fn resolve(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
    action: Resolution,
    by: &str,
    note: &str,
) -> Result<(), HandlerError> {
    decide(deps, env, |state, goal, now| {
        let Some(task) = state.tasks.iter().find(|t| &t.id == task_id) else {
            return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
        };
        if task.status != TaskStatus::Escalated
            || task.revision != revision
            || goal.status != GoalStatus::Escalated
        {
            return Ok(None);
        }
        let said = if note.trim().is_empty() {
            String::new()
        } else {
            format!(": {note}")
        };
        if action == Resolution::Cancel {
            let why = format!("{task_id} escalated; cancelled by {by}{said}");
            return Ok(Some(cancel_all(state, goal, env, now, &why)?));
        }
        let mut d = Decided::new(goal, state);
        let idx = d
            .tasks
            .iter()
            .position(|t| &t.id == task_id)
            .unwrap_or_default();
        let still_escalated = d
            .tasks
            .iter()
            .any(|t| &t.id != task_id && t.status == TaskStatus::Escalated);
        match action {
            Resolution::Accept => {
                d.traces.push(d.tasks[idx].transition(
                    TaskStatus::Approved,
                    now,
                    format!("revision {revision} accepted as it is by {by}{said}"),
                )?);
                d.tasks[idx].reason = None;
                let released: Vec<TaskId> = releasable(&d.tasks)
                    .into_iter()
                    .map(|t| t.id.clone())
                    .collect();
                for t in d.tasks.iter_mut().filter(|t| released.contains(&t.id)) {
                    d.traces.push(t.transition(
                        TaskStatus::Assigned,
                        now,
                        "dependencies approved; released",
                    )?);
                    d.out.push(ready_message(env, t));
                }
            }
            Resolution::Retry => {
                let t = &mut d.tasks[idx];
                d.traces.push(t.transition(
                    TaskStatus::Assigned,
                    now,
                    format!("another revision asked for by {by}{said}"),
                )?);
                t.revision += 1;
                t.reason = None;
                t.feedback.push(Feedback {
                    revision,
                    reviewer: format!("a person ({by})"),
                    summary: if note.trim().is_empty() {
                        "A person asked for one more revision; address the earlier review findings."
                            .into()
                    } else {
                        note.trim().to_string()
                    },
                    findings: Vec::new(),
                });
                d.out.push(ready_message(env, t));
            }
            Resolution::Cancel => {}
        }
        if !still_escalated {
            d.traces.push(d.goal.transition(
                GoalStatus::Running,
                now,
                format!("{task_id} resolved by {by}"),
            )?);
            d.goal.reason = None;
            if d.tasks.iter().all(|t| t.status == TaskStatus::Approved) {
                d.traces.push(d.goal.transition(
                    GoalStatus::Completed,
                    now,
                    "every task approved",
                )?);
                d.out
                    .push(event(env, "goal.completed", None, "COMPLETED", None, now));
            }
        }
        Ok(Some(d))
    })
    .await
}

fn cancel_all(
    state: &GoalState,
    goal: &Goal,
    env: &Envelope,
    now: u64,
    note: &str,
) -> Result<Decided, HandlerError> {
    let mut d = Decided::new(goal, state);
    for t in d.tasks.iter_mut() {
        if t.status.can_move_to(TaskStatus::Cancelled) {
            d.traces
                .push(t.transition(TaskStatus::Cancelled, now, "the goal was cancelled")?);
        }
    }
    for c in d
        .calls
        .iter_mut()
        .filter(|c| c.status == CallStatus::AwaitingApproval)
    {
        d.clear.push(c.reference());
        c.finish(
            CallStatus::Denied,
            "the goal was cancelled before anyone approved this call".into(),
            true,
            now,
        );
        c.decided_by = Some("denied: the goal was cancelled".into());
        c.version += 1;
    }
    d.traces.push(
        d.goal
            .transition(GoalStatus::Cancelled, now, note.to_string())?,
    );
    d.goal.reason = Some(note.to_string());
    d.out.push(event(
        env,
        "goal.cancelled",
        None,
        "CANCELLED",
        Some(note.to_string()),
        now,
    ));
    Ok(d)
}
