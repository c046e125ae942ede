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

use crate::{ready_message, MAX_DECISION_ATTEMPTS};
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::plan::releasable;
use mktg_core::review::Feedback;
use mktg_core::{
    CallStatus, DomainEvent, Envelope, Goal, GoalStatus, Outgoing, Resolution, TaskId, TaskStatus,
    Trace,
};
use mktg_store::{GoalKey, GoalState, StoreError, Write};

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

/// What a decision changes: the goal, its tasks and calls, traces and
/// what is sent after the commit.
struct Decided {
    goal: Goal,
    tasks: Vec<mktg_core::Task>,
    calls: Vec<mktg_core::ToolCall>,
    clear: Vec<String>,
    traces: Vec<Trace>,
    out: Vec<Outgoing>,
}

impl Decided {
    fn new(goal: &Goal, state: &GoalState) -> Decided {
        Decided {
            goal: goal.clone(),
            tasks: state.tasks.clone(),
            calls: state.calls.clone(),
            clear: Vec::new(),
            traces: Vec::new(),
            out: Vec::new(),
        }
    }
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

fn event(
    env: &Envelope,
    kind: &str,
    task: Option<TaskId>,
    status: &str,
    reason: Option<String>,
    now: u64,
) -> Outgoing {
    Outgoing::Event(DomainEvent::new(
        kind,
        env.tenant.clone(),
        env.goal.clone(),
        task,
        status,
        reason,
        now,
    ))
}

/// Reads the goal, lets `f` decide, commits on the goal's version; a lost
/// race re-reads and decides again. `f` returning `None` means the decision
/// was already made (or no longer applies): the outboxes are flushed again.
async fn decide<F>(deps: &Deps, env: &Envelope, f: F) -> Result<(), HandlerError>
where
    F: Fn(&GoalState, &Goal, u64) -> Result<Option<Decided>, HandlerError>,
{
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    for _ in 0..MAX_DECISION_ATTEMPTS {
        let state = deps.store.goal_state(&key).await?;
        let Some(goal) = state.goal.clone() else {
            return Err(HandlerError::Fail(format!(
                "goal {} does not exist",
                env.goal
            )));
        };
        let now = deps.clock.now_ms();
        let Some(mut d) = f(&state, &goal, now)? else {
            tracing::info!(status = %goal.status, "nothing to decide; already applied");
            return outbox::flush_goal(deps, &goal).await;
        };
        d.goal.updated_ms = now;
        d.goal.version = goal.version + 1;
        d.goal.outbox.extend(std::mem::take(&mut d.out));
        let mut writes = vec![Write::Goal {
            goal: d.goal.clone(),
            expect_version: goal.version,
        }];
        writes.extend(crate::changed_tasks(&state.tasks, &d.tasks));
        for c in &d.calls {
            if let Some(before) = state.calls.iter().find(|b| b.reference() == c.reference()) {
                if before != c {
                    writes.push(Write::Call {
                        call: c.clone(),
                        expect_version: before.version,
                    });
                }
            }
        }
        for reference in &d.clear {
            writes.push(Write::ClearApproval {
                tenant: env.tenant.clone(),
                reference: reference.clone(),
            });
        }
        writes.extend(d.traces.into_iter().map(Write::Trace));
        match deps.store.commit(&key, writes).await {
            Ok(()) => return outbox::flush_goal(deps, &d.goal).await,
            Err(StoreError::Conflict(why)) => {
                tracing::debug!(%why, "lost a race on the goal; deciding again");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Retry(format!(
        "gave up after {MAX_DECISION_ATTEMPTS} conflicting attempts"
    )))
}
