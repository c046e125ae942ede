//! A decision about a goal, made on one read of its state and committed
//! on the goal's version: a lost race re-reads and decides again. Used by
//! the handlers whose decision is "these tasks, calls, traces and
//! messages change" (a person's decisions, a failed task).

use crate::MAX_DECISION_ATTEMPTS;
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::{DomainEvent, Envelope, Goal, Outgoing, TaskId, Trace};
use mktg_store::{GoalKey, GoalState, StoreError, Write};

/// What a decision changes: the goal, its tasks and calls, traces and
/// what is sent after the commit.
pub(crate) struct Decided {
    pub goal: Goal,
    pub tasks: Vec<mktg_core::Task>,
    pub calls: Vec<mktg_core::ToolCall>,
    pub clear: Vec<String>,
    pub traces: Vec<Trace>,
    pub out: Vec<Outgoing>,
}

impl Decided {
    pub(crate) fn new(goal: &Goal, state: &GoalState) -> Decided {
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

/// A domain event of the goal, for `Decided::out`.
pub(crate) fn event(
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
pub(crate) async fn decide<F>(deps: &Deps, env: &Envelope, f: F) -> Result<(), HandlerError>
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
