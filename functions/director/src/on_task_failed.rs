//! A task failed outside review. First, self-healing: the failure is
//! classified and, within `self_heal.max_attempts`, the task is tried again
//! as a new revision with a strategy that avoids what went wrong
//! (`mktg_core::heal`). Otherwise the goal cannot finish, so it fails
//! visibly and the tasks that can no longer run are cancelled.

use crate::decide::{decide, event, Decided};
use mktg_boot::{Deps, HandlerError};
use mktg_core::heal::{classify, plan, FailureKind, HealAttempt};
use mktg_core::tools::{CallStatus, ToolCall};
use mktg_core::{Envelope, GoalStatus, Message, Outgoing, Task, TaskId, TaskStatus};

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    reason: &str,
) -> Result<(), HandlerError> {
    decide(deps, env, |state, goal, now| {
        if goal.status != GoalStatus::Running {
            return Ok(None);
        }
        let mut d = Decided::new(goal, state);
        if let Some(task) = state.tasks.iter().find(|t| &t.id == task_id) {
            if task.status == TaskStatus::Failed {
                if let Some((task_next, trace, kind, ready)) =
                    heal(deps, &state.calls, task, reason, None, now)
                {
                    // The retry's message goes out with the goal's, in one
                    // flush.
                    d.out.push(ready);
                    d.out.push(event(
                        env,
                        "task.healing",
                        Some(task_id.clone()),
                        "ASSIGNED",
                        Some(format!("{kind}: {}", task_next.strategy.describe())),
                        now,
                    ));
                    d.traces.push(trace);
                    for t in d.tasks.iter_mut().filter(|t| &t.id == task_id) {
                        *t = task_next.clone();
                    }
                    return Ok(Some(d));
                }
            } else if task.status != TaskStatus::Cancelled {
                // Already retried (this is a redelivered failure) or never
                // failed: nothing to decide.
                tracing::info!(status = %task.status, "task is not failed; duplicate failure notice");
                return Ok(None);
            }
        }
        // The goal cannot finish: it fails, and what can no longer run is
        // cancelled.
        let why = format!("task {task_id} failed: {reason}");
        d.traces
            .push(d.goal.transition(GoalStatus::Failed, now, why.clone())?);
        for t in d
            .tasks
            .iter_mut()
            .filter(|t| t.status == TaskStatus::Pending)
        {
            d.traces
                .push(t.transition(TaskStatus::Cancelled, now, format!("{task_id} failed"))?);
        }
        d.goal.reason = Some(why.clone());
        d.out.push(event(
            env,
            "task.failed",
            Some(task_id.clone()),
            "FAILED",
            Some(reason.to_string()),
            now,
        ));
        d.out
            .push(event(env, "goal.failed", None, "FAILED", Some(why), now));
        Ok(Some(d))
    })
    .await
}

/// Servers whose calls failed (not answered, crashed, timed out) in the
/// task's current revision.
fn failing_servers(calls: &[ToolCall], task: &Task) -> Vec<String> {
    let mut servers: Vec<String> = calls
        .iter()
        .filter(|c| c.task == task.id && c.revision == task.revision)
        .filter(|c| c.status == CallStatus::Failed && !c.server.is_empty())
        .map(|c| c.server.clone())
        .collect();
    servers.sort();
    servers.dedup();
    servers
}

/// The retried task (FAILED → ASSIGNED at the next revision, with its new
/// strategy and the attempt recorded), its trace line, the failure's kind
/// (`known`, or classified from the reason) and the TaskReady that starts
/// the retry (for the caller's outbox); `None` when the failure is not
/// healed or the attempts are used up. `task` must be FAILED.
pub(crate) fn heal(
    deps: &Deps,
    calls: &[ToolCall],
    task: &Task,
    reason: &str,
    known: Option<FailureKind>,
    now: u64,
) -> Option<(Task, mktg_core::Trace, FailureKind, Outgoing)> {
    let limits = deps.config.self_heal;
    let servers = failing_servers(calls, task);
    let kind = known.unwrap_or_else(|| classify(reason, &servers));
    let used = u32::try_from(task.heal.len()).unwrap_or(u32::MAX);
    if used >= limits.max_attempts {
        tracing::info!(%kind, used, "self-healing attempts used up");
        return None;
    }
    let skill_tier = deps
        .config
        .skill(&task.skill)
        .map(|s| s.tier.clone())
        .unwrap_or_else(|| "sonnet".into());
    let current_tier = task.strategy.tier.clone().unwrap_or(skill_tier);
    let strategy = plan(
        kind,
        reason,
        &task.strategy,
        &current_tier,
        &deps.config.models.tiers_by_strength(),
        &servers,
    )?;
    let delay_secs = if kind == FailureKind::RateLimited {
        limits.rate_limit_delay_secs
    } else {
        0
    };
    let mut next = task.clone();
    let attempt = used + 1;
    let note = format!(
        "self-heal attempt {attempt}/{}: {kind} ({}) → retry {}{}",
        limits.max_attempts,
        reason.chars().take(160).collect::<String>(),
        strategy.describe(),
        if delay_secs > 0 {
            format!(" in {delay_secs}s")
        } else {
            String::new()
        }
    );
    let trace = next.transition(TaskStatus::Assigned, now, note).ok()?;
    next.heal.push(HealAttempt {
        attempt,
        failed_revision: task.revision,
        kind,
        reason: reason.to_string(),
        strategy: strategy.clone(),
        delay_secs,
        at_ms: now,
    });
    next.strategy = strategy;
    next.revision += 1;
    next.reason = None;
    let ready = Outgoing::Message(
        Envelope::new(
            task.tenant.clone(),
            task.goal.clone(),
            Message::TaskReady {
                task: task.id.clone(),
                revision: next.revision,
            },
        )
        .delayed(delay_secs),
    );
    tracing::warn!(task = %task.id, %kind, attempt, strategy = %next.strategy.describe(), "self-healing");
    Some((next, trace, kind, ready))
}
