//! The tool invoker: runs one stored tool call of an agent's turn.
//!
//! Steps, each safe to repeat: (1) read the call; a final call only
//! re-checks the fan-in, an unapproved call waits; (2) check policy again
//! (the server must still allow the task's skill: nothing the model or a
//! tool says can widen access; a server the tenant connected is reached
//! with its own credentials, and one it disconnected is refused); (3) claim the call (PENDING → RUNNING with
//! a lease) and take one token from each rate window of the tool, in one
//! transaction: a full window refuses the claim and the message is retried
//! later; (4) call the MCP server with the tool's timeout; (5) store the
//! result (DONE, or FAILED with the reason the model will read); (6) when
//! every call of the turn is final, send ToolsDone to the agent.
//!
//! A call that writes or spends runs at most once: a redelivery that finds
//! it RUNNING after the lease ended does not call again; it records that
//! the outcome is unknown, and the agent is told so.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mktg_boot::tenant::CredentialsError;
use mktg_boot::{run_sqs_batch_with, Deps, HandlerError};
use mktg_core::tools::{window_key, window_remaining_ms, CallStatus, ToolCall};
use mktg_core::{Envelope, Message, TaskId, Trace};
use mktg_store::{GoalKey, StoreError, Write};
use mktg_tools::ToolError;

/// How often a call is retried when its server cannot be reached.
pub const MAX_CONNECT_ATTEMPTS: u32 = 3;
/// Time added to the tool's timeout for the lease of a running call.
const LEASE_MARGIN_MS: u64 = 30_000;

/// Lambda entry point: one SQS batch from the tool queue.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_sqs_batch_with(deps, event.payload, |env| on_message(deps, env)).await)
}

pub async fn on_message(deps: &Deps, env: Envelope) -> Result<(), HandlerError> {
    match &env.message {
        Message::ToolCall {
            task,
            revision,
            turn,
            call,
        } => run(deps, &env, task, *revision, *turn, call).await,
        other => Err(HandlerError::Fail(format!(
            "tool-invoker does not handle {} messages",
            other.kind()
        ))),
    }
}

async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
    turn: u32,
    call_id: &str,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    let Some(call) = deps
        .store
        .call(&key, task_id, revision, turn, call_id)
        .await?
    else {
        return Err(HandlerError::Fail(format!(
            "tool call {task_id}.{revision}.{turn}.{call_id} does not exist"
        )));
    };
    let now = deps.clock.now_ms();
    match call.status {
        s if s.is_final() => return resume_if_turn_done(deps, &key, &call).await,
        CallStatus::AwaitingApproval => {
            tracing::info!(call = %call.reference(), "waiting for approval; `mktg approve` sends it again");
            return Ok(());
        }
        CallStatus::Running if call.lease_until_ms > now => {
            return Err(HandlerError::Retry(format!(
                "call {} is running in another invocation",
                call.reference()
            )));
        }
        CallStatus::Running if call.effect.has_side_effects() => {
            let mut done = call.clone();
            done.finish(
                CallStatus::Failed,
                format!(
                    "outcome unknown: an earlier attempt of this {} call stopped while it ran; it was not repeated, so it may or may not have taken effect. Check before trying again.",
                    call.effect
                ),
                true,
                now,
            );
            return finish(deps, &key, &call, done).await;
        }
        _ => {}
    }

    // (2) Policy, again.
    let task = deps
        .store
        .task(&key, task_id)
        .await?
        .ok_or_else(|| HandlerError::Fail(format!("task {task_id} does not exist")))?;
    // The tenant's route to the server: its own credentials for one it
    // connected (which may come from the catalogue), else tools.yaml's.
    let own = mktg_boot::tenant::load(deps, &key.tenant).await?;
    let route = match own.route(deps, &key.tenant, &call.server).await {
        Ok(r) => r,
        Err(CredentialsError::Unavailable(why)) => return Err(HandlerError::Retry(why)),
        Err(CredentialsError::Missing(why)) => {
            // Not worth retrying: the agent is told and goes on without.
            let mut done = call.clone();
            done.finish(CallStatus::Failed, why, true, now);
            return finish(deps, &key, &call, done).await;
        }
    };
    let route = match route {
        Some(r) if r.enabled && r.server.allows(&task.skill) => r,
        other => {
            let why = match other {
                Some(r) if !r.enabled => format!(
                    "tool server {} is turned off for this tenant (settings)",
                    call.server
                ),
                _ => format!(
                    "tool {} is not (or no longer) available to the {} skill in tools.yaml",
                    call.name, task.skill
                ),
            };
            let mut done = call.clone();
            done.finish(CallStatus::Blocked, why, true, now);
            return finish(deps, &key, &call, done).await;
        }
    };
    let server = route.server;
    let policy = server.policy(&call.tool);

    // (3) Claim + rate tokens, atomically.
    let mut running = call.clone();
    running.status = CallStatus::Running;
    running.attempts += 1;
    running.lease_until_ms = now + policy.timeout_ms + LEASE_MARGIN_MS;
    running.version += 1;
    let mut writes = vec![Write::Call {
        call: running.clone(),
        expect_version: call.version,
    }];
    let windows = policy.rate.windows();
    for (name, len, limit) in &windows {
        writes.push(Write::TakeRate {
            tenant: key.tenant.clone(),
            bucket: call.name.clone(),
            window: window_key(name, *len, now),
            limit: *limit,
            expires_at: (now + len) / 1000 + 3600,
        });
    }
    match deps.store.commit(&key, writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            let current = deps
                .store
                .call(&key, task_id, revision, turn, call_id)
                .await?;
            if current.as_ref().map(|c| c.version) == Some(call.version) {
                let wait = windows
                    .iter()
                    .map(|(_, len, _)| window_remaining_ms(*len, now))
                    .min()
                    .unwrap_or(1_000);
                // Come back when the window ends, not after the queue's
                // visibility timeout: the same message, delayed, and this
                // delivery acknowledged. A duplicate is harmless (the claim
                // runs a call once).
                let secs = u32::try_from(wait.div_ceil(1000))
                    .unwrap_or(900)
                    .clamp(1, 900);
                tracing::info!(call = %call.reference(), wait_ms = wait, "rate limit reached; re-queued for when the window ends");
                deps.bus
                    .send(
                        &Envelope::new(
                            key.tenant.clone(),
                            key.goal.clone(),
                            Message::ToolCall {
                                task: task_id.clone(),
                                revision,
                                turn,
                                call: call_id.to_string(),
                            },
                        )
                        .delayed(secs),
                    )
                    .await
                    .map_err(|e| {
                        HandlerError::Retry(format!(
                        "rate limit of {} reached and the delayed retry could not be queued: {e}",
                        call.name
                    ))
                    })?;
                return Ok(());
            }
            return Err(HandlerError::Retry("call changed while claiming it".into()));
        }
        Err(e) => return Err(e.into()),
    }

    // (4) Call the server.
    let arguments: serde_json::Value =
        serde_json::from_str(&call.input).unwrap_or(serde_json::Value::Null);
    let started = deps.clock.now_ms();
    let outcome = deps
        .tools
        .invoke_as(
            server,
            route.creds.as_ref(),
            &call.tool,
            arguments,
            &call.idempotency_key(),
            policy.timeout_ms,
        )
        .await;
    // The tool did its work; its result is not stored yet.
    mktg_boot::crash_point!("tool.after_effect");
    let now = deps.clock.now_ms();
    let mut done = running.clone();
    match outcome {
        Ok(out) => done.finish(CallStatus::Done, out.text, out.is_error, now),
        Err(ToolError::Connect { reason, .. })
            if running.attempts < MAX_CONNECT_ATTEMPTS && !call.effect.has_side_effects() =>
        {
            // Not reached: give the call back and let the queue retry.
            let mut back = running.clone();
            back.status = CallStatus::Pending;
            back.lease_until_ms = 0;
            back.version += 1;
            deps.store
                .commit(
                    &key,
                    vec![Write::Call {
                        call: back,
                        expect_version: running.version,
                    }],
                )
                .await?;
            return Err(HandlerError::Retry(format!(
                "tool server {} unreachable (attempt {} of {MAX_CONNECT_ATTEMPTS}): {reason}",
                call.server, running.attempts
            )));
        }
        Err(e) => done.finish(CallStatus::Failed, e.to_string(), true, now),
    }
    tracing::info!(
        call = %call.reference(),
        status = %done.status,
        ms = now.saturating_sub(started),
        "tool call finished"
    );
    // (5) + (6)
    finish(deps, &key, &running, done).await
}

/// Stores a call's final state (if `from` is still current) and resumes
/// the agent when it was the turn's last.
async fn finish(
    deps: &Deps,
    key: &GoalKey,
    from: &ToolCall,
    mut done: ToolCall,
) -> Result<(), HandlerError> {
    done.version = from.version + 1;
    let note = format!(
        "{} {} ({} bytes{})",
        done.name,
        done.status,
        done.result.as_deref().map_or(0, str::len),
        if done.is_error { ", error" } else { "" }
    );
    let trace = Trace {
        at_ms: done.finished_ms.unwrap_or_else(|| deps.clock.now_ms()),
        subject: done.task.to_string(),
        from: from.status.to_string(),
        to: done.status.to_string(),
        note: format!("tool call {}: {note}", done.reference()),
    };
    match deps
        .store
        .commit(
            key,
            vec![
                Write::Call {
                    call: done.clone(),
                    expect_version: from.version,
                },
                Write::Trace(trace),
            ],
        )
        .await
    {
        Ok(()) => resume_if_turn_done(deps, key, &done).await,
        Err(StoreError::Conflict(_)) => Err(HandlerError::Retry(
            "call changed while storing its result".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Fan-in: every invocation that finishes a call reads the turn's calls
/// after its own commit; whoever sees them all final sends ToolsDone. The
/// last to commit always sees that, so the resume is never lost; two may
/// both send it, and the agent treats the second as a duplicate.
pub async fn resume_if_turn_done(
    deps: &Deps,
    key: &GoalKey,
    call: &ToolCall,
) -> Result<(), HandlerError> {
    let state = deps.store.goal_state(key).await?;
    let expected = state
        .turns
        .iter()
        .find(|t| t.task == call.task && t.revision == call.revision && t.n == call.turn)
        .map_or(0, |t| t.tool_uses.len());
    let calls: Vec<&ToolCall> = state
        .calls
        .iter()
        .filter(|c| c.task == call.task && c.revision == call.revision && c.turn == call.turn)
        .collect();
    if calls.len() < expected || !calls.iter().all(|c| c.status.is_final()) {
        return Ok(());
    }
    // Every call is final; the agent has not been told.
    mktg_boot::crash_point!("tool.fan_in");
    deps.bus
        .send(&Envelope::new(
            key.tenant.clone(),
            key.goal.clone(),
            Message::ToolsDone {
                task: call.task.clone(),
                revision: call.revision,
                turn: call.turn,
            },
        ))
        .await
        .map_err(|e| HandlerError::Retry(e.to_string()))
}
