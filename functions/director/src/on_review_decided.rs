//! A reviewer decided on a task's revision.
//!
//! APPROVE: approve the task, release every pending task whose dependencies
//! are now all approved, and complete the goal when every task is approved.
//! REVISE: queue the next revision with the reviewer's feedback, or escalate
//! when revisions are used up. REJECT: fail the task and the goal, and cancel
//! the tasks that can no longer run.
//!
//! The decision, the task changes and the messages they cause are one
//! commit conditioned on the goal's version, so two decisions on one goal
//! never both act on a stale view (e.g. both missing that a shared dependent
//! is now releasable).

use crate::{ready_message, MAX_DECISION_ATTEMPTS};
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::heal::FailureKind;
use mktg_core::plan::releasable;
use mktg_core::review::Feedback;
use mktg_core::{Decision, DomainEvent, Envelope, GoalStatus, Outgoing, TaskId, TaskStatus, Trace};
use mktg_store::{GoalKey, StoreError, Write};

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
    decision: Decision,
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
        let Some(task) = state.tasks.iter().find(|t| &t.id == task_id).cloned() else {
            return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
        };
        if task.status != TaskStatus::InReview
            || task.revision != revision
            || goal.status != GoalStatus::Running
        {
            tracing::info!(status = %task.status, "decision already applied; duplicate");
            outbox::flush_task(deps, &task).await?;
            return outbox::flush_goal(deps, &goal).await;
        }
        let now = deps.clock.now_ms();
        let feedback = state
            .reviews
            .iter()
            .filter(|r| &r.task == task_id && r.revision == revision)
            .map(|r| Feedback {
                revision,
                reviewer: r.reviewer.clone(),
                summary: r.summary.clone(),
                findings: r.findings.clone(),
            })
            .collect::<Vec<_>>();
        let mut tasks = state.tasks.clone();
        let mut goal_next = goal.clone();
        goal_next.updated_ms = now;
        let mut traces: Vec<Trace> = Vec::new();
        let mut out: Vec<Outgoing> = Vec::new();
        let event = |kind: &str, task: Option<TaskId>, status: &str, reason: Option<String>| {
            Outgoing::Event(DomainEvent::new(
                kind,
                env.tenant.clone(),
                env.goal.clone(),
                task,
                status,
                reason,
                now,
            ))
        };
        let idx = tasks
            .iter()
            .position(|t| &t.id == task_id)
            .unwrap_or_default();

        match decision {
            Decision::Approve => {
                traces.push(tasks[idx].transition(
                    TaskStatus::Approved,
                    now,
                    format!("revision {revision} approved"),
                )?);
                let ready: Vec<TaskId> = releasable(&tasks)
                    .into_iter()
                    .map(|t| t.id.clone())
                    .collect();
                for t in tasks.iter_mut().filter(|t| ready.contains(&t.id)) {
                    traces.push(t.transition(
                        TaskStatus::Assigned,
                        now,
                        "dependencies approved; released",
                    )?);
                    out.push(ready_message(env, t));
                }
                let all_approved = tasks.iter().all(|t| t.status == TaskStatus::Approved);
                let check = all_approved
                    && !goal.consistency_checked
                    && tasks.len() > 1
                    && deps.config.rubrics.consistency_check;
                let mut revising = false;
                if check {
                    let outcome =
                        crate::consistency::check(deps, &key, &goal, &tasks, &state.outputs)
                            .await?;
                    goal_next.consistency_checked = true;
                    traces.push(Trace {
                        at_ms: now,
                        subject: "goal".into(),
                        from: goal.status.to_string(),
                        to: goal.status.to_string(),
                        note: outcome.note,
                    });
                    for (id, fb) in outcome.revise {
                        if let Some(t) = tasks.iter_mut().find(|t| t.id == id) {
                            traces.push(t.transition(
                                TaskStatus::Revision,
                                now,
                                format!("sent back by the consistency check: {}", fb.summary),
                            )?);
                            t.revision += 1;
                            t.feedback.push(fb);
                            out.push(ready_message(env, t));
                            revising = true;
                        }
                    }
                }
                if all_approved && !revising {
                    traces.push(goal_next.transition(
                        GoalStatus::Completed,
                        now,
                        "every task approved",
                    )?);
                    out.push(event("goal.completed", None, "COMPLETED", None));
                }
            }
            Decision::Reject
                if deps.config.rubrics.replan_on_reject
                    && task.review_rounds() < deps.config.max_revisions =>
            {
                // Re-plan the task: a fresh attempt that knows why the last
                // one missed; it counts against max_revisions.
                let t = &mut tasks[idx];
                traces.push(t.transition(
                    TaskStatus::Revision,
                    now,
                    format!("revision {revision} rejected; re-planning the task"),
                )?);
                t.revision += 1;
                t.feedback.extend(feedback);
                out.push(ready_message(env, t));
            }
            Decision::Revise if task.review_rounds() < deps.config.max_revisions => {
                let t = &mut tasks[idx];
                traces.push(t.transition(
                    TaskStatus::Revision,
                    now,
                    format!("revision {revision} sent back"),
                )?);
                t.revision += 1;
                t.feedback.extend(feedback);
                out.push(ready_message(env, t));
            }
            Decision::Revise => {
                let reason = format!(
                    "still not approved after {} revisions; a human must decide",
                    deps.config.max_revisions
                );
                let t = &mut tasks[idx];
                traces.push(t.transition(TaskStatus::Escalated, now, reason.clone())?);
                t.feedback.extend(feedback);
                t.reason = Some(reason.clone());
                traces.push(goal_next.transition(
                    GoalStatus::Escalated,
                    now,
                    format!("task {task_id} escalated"),
                )?);
                goal_next.reason = Some(format!("task {task_id}: {reason}"));
                out.push(event(
                    "task.escalated",
                    Some(task_id.clone()),
                    "ESCALATED",
                    Some(reason),
                ));
            }
            Decision::Reject => {
                let reason = feedback
                    .first()
                    .map(|f| f.summary.clone())
                    .unwrap_or_else(|| "rejected by review".into());
                let t = &mut tasks[idx];
                traces.push(t.transition(TaskStatus::Failed, now, reason.clone())?);
                t.reason = Some(reason.clone());
                t.feedback.extend(feedback);
                // Self-healing first: a narrower attempt, within the limit.
                if let Some((healed, trace, _, ready)) = crate::on_task_failed::heal(
                    deps,
                    &state.calls,
                    t,
                    &format!("rejected by review: {reason}"),
                    Some(FailureKind::QualityRejected),
                    now,
                ) {
                    *t = healed;
                    traces.push(trace);
                    out.push(ready);
                } else {
                    for other in tasks.iter_mut().filter(|t| t.status == TaskStatus::Pending) {
                        traces.push(other.transition(
                            TaskStatus::Cancelled,
                            now,
                            format!("{task_id} was rejected"),
                        )?);
                    }
                    traces.push(goal_next.transition(
                        GoalStatus::Failed,
                        now,
                        format!("task {task_id} rejected"),
                    )?);
                    goal_next.reason = Some(format!("task {task_id}: {reason}"));
                    out.push(event(
                        "task.failed",
                        Some(task_id.clone()),
                        "FAILED",
                        Some(reason),
                    ));
                    out.push(event(
                        "goal.failed",
                        None,
                        "FAILED",
                        goal_next.reason.clone(),
                    ));
                }
            }
        }

        // Every decision bumps the goal's version exactly once, whether or
        // not the goal's status changed: that is what serializes decisions.
        goal_next.version = goal.version + 1;
        goal_next.outbox.extend(out);
        let mut writes = vec![Write::Goal {
            goal: goal_next.clone(),
            expect_version: goal.version,
        }];
        writes.extend(crate::changed_tasks(&state.tasks, &tasks));
        writes.extend(traces.into_iter().map(Write::Trace));
        match deps.store.commit(&key, writes).await {
            Ok(()) => {
                tracing::info!(%decision, "decision applied");
                return outbox::flush_goal(deps, &goal_next).await;
            }
            Err(StoreError::Conflict(why)) => {
                tracing::debug!(%why, "lost a race on the goal; re-deciding");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Retry(format!(
        "gave up after {MAX_DECISION_ATTEMPTS} conflicting attempts"
    )))
}
