//! The agent executor: runs one turn of one task. It builds the prompt from
//! the skill's SKILL.md, the goal, upstream outputs and revision feedback,
//! checkpoints the model's answer before anything else happens, then stores
//! the output and tells the director.

mod on_task_ready;
mod prompt;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mktg_boot::{run_sqs_batch_with, Deps, HandlerError};
use mktg_core::{Envelope, Message};

pub use prompt::{build_request, RequestParts};

/// Lambda entry point: one SQS batch from the agent queue.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_sqs_batch_with(deps, event.payload, |env| on_message(deps, env)).await)
}

pub async fn on_message(deps: &Deps, env: Envelope) -> Result<(), HandlerError> {
    match &env.message {
        Message::TaskReady { task, revision } | Message::ToolsDone { task, revision, .. } => {
            on_task_ready::run(deps, &env, task, *revision).await
        }
        other => Err(HandlerError::Fail(format!(
            "agent-executor does not handle {} messages",
            other.kind()
        ))),
    }
}
