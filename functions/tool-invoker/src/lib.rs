//! The tool invoker: runs an agent's MCP tool calls with policy, rate limits
//! and approvals, stores each result and resumes the agent when the last
//! call of a turn is done. This version has no tool-call messages to serve
//! yet (agents run tool-less turns); any message that arrives is refused
//! permanently with the reason, so nothing loops.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mktg_boot::{run_sqs_batch, Deps, HandlerError};
use mktg_core::Envelope;

/// Lambda entry point: one SQS batch from the tool queue.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_sqs_batch(event.payload, |env| on_message(deps, env)).await)
}

pub async fn on_message(_deps: &Deps, env: Envelope) -> Result<(), HandlerError> {
    Err(HandlerError::Fail(format!(
        "tool-invoker does not handle {} messages in this version",
        env.message.kind()
    )))
}
