//! The reviewer: judges one revision of a task's output and tells the
//! director. Structural checks from skills.yaml first (required sections,
//! minimum words); then, when they pass, a semantic review by the model
//! against the rubric of the skill's kind (rubrics.yaml).

pub mod learnings;
mod on_review_requested;
pub mod semantic;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mktg_boot::{run_sqs_batch_with, Deps, HandlerError};
use mktg_core::{Envelope, Message};

/// Lambda entry point: one SQS batch from the review queue.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_sqs_batch_with(deps, event.payload, |env| on_message(deps, env)).await)
}

pub async fn on_message(deps: &Deps, env: Envelope) -> Result<(), HandlerError> {
    match &env.message {
        Message::ReviewRequested { task, revision } => {
            on_review_requested::run(deps, &env, task, *revision, None).await
        }
        Message::ReviewStep {
            task,
            revision,
            step,
        } => on_review_requested::run(deps, &env, task, *revision, Some(*step)).await,
        other => Err(HandlerError::Fail(format!(
            "reviewer does not handle {} messages",
            other.kind()
        ))),
    }
}
