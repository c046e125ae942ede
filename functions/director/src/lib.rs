//! The director: plans goals into tasks, releases tasks whose dependencies
//! are approved, routes outputs to review, acts on review decisions and
//! completes goals. It is the only writer of goal status, and every decision
//! it makes bumps the goal's version, so decisions on one goal are
//! serialized by optimistic concurrency.

mod consistency;
mod decide;
mod on_event_received;
mod on_goal_submitted;
mod on_human;
mod on_resume_task;
mod on_review_decided;
mod on_task_failed;
mod on_task_output;
pub mod planner;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mktg_boot::{run_sqs_batch_with, Deps, HandlerError};
use mktg_core::{Envelope, Message};

pub use on_goal_submitted::{choose_plan, PlanChoice};

/// Lambda entry point: one SQS batch from the director queue.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_sqs_batch_with(deps, event.payload, |env| on_message(deps, env)).await)
}

/// Handles one message of the director queue.
pub async fn on_message(deps: &Deps, env: Envelope) -> Result<(), HandlerError> {
    match &env.message {
        Message::GoalSubmitted { .. } => on_goal_submitted::run(deps, &env).await,
        Message::TaskOutput { task, revision } => {
            on_task_output::run(deps, &env, task, *revision).await
        }
        Message::ReviewDecided {
            task,
            revision,
            decision,
        } => on_review_decided::run(deps, &env, task, *revision, *decision).await,
        Message::EventReceived {
            event_id,
            event_type,
            data_json,
            received_ms,
        } => {
            on_event_received::run(deps, &env, event_id, event_type, data_json, *received_ms).await
        }
        Message::ResumeTask { task, revision } => {
            on_resume_task::run(deps, &env, task, *revision).await
        }
        Message::TaskFailed { task, reason } => on_task_failed::run(deps, &env, task, reason).await,
        Message::CancelGoal { by, reason } => on_human::cancel(deps, &env, by, reason).await,
        Message::ResolveEscalation {
            task,
            revision,
            action,
            by,
            note,
        } => on_human::resolve(deps, &env, task, *revision, *action, by, note).await,
        other => Err(HandlerError::Fail(format!(
            "director does not handle {} messages",
            other.kind()
        ))),
    }
}

/// How many times a decision is re-read and re-made after losing a race on
/// the goal's version before the message goes back to the queue.
const MAX_DECISION_ATTEMPTS: usize = 8;

/// The next step of a task's revision, for the agent.
pub(crate) fn ready_message(env: &Envelope, task: &mktg_core::Task) -> mktg_core::Outgoing {
    mktg_core::Outgoing::Message(Envelope::new(
        env.tenant.clone(),
        env.goal.clone(),
        Message::TaskReady {
            task: task.id.clone(),
            revision: task.revision,
        },
    ))
}

/// A conditional write for each task of `after` that differs from its
/// version in `before` (the state the decision was made on).
pub(crate) fn changed_tasks(
    before: &[mktg_core::Task],
    after: &[mktg_core::Task],
) -> Vec<mktg_store::Write> {
    after
        .iter()
        .filter_map(|t| {
            let old = before.iter().find(|b| b.id == t.id)?;
            (old != t).then(|| mktg_store::Write::Task {
                task: t.clone(),
                expect_version: old.version,
            })
        })
        .collect()
}
