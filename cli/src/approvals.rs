//! `mktg approvals`, `mktg approve`, `mktg deny`: a person's say over tool
//! calls that write or spend. Approving queues the call (the tool invoker
//! runs it once); denying records the refusal as the call's result, which
//! the agent reads on its next turn.

use mktg_boot::{Deps, HandlerError};
use mktg_core::tools::{CallStatus, ToolCall};
use mktg_core::{Envelope, Message, TenantId, Trace};
use mktg_store::{GoalKey, PendingApproval, StoreError, Write};

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no tool call \"{wanted}\" is waiting for approval{hint}")]
    NotPending { wanted: String, hint: String },
    #[error("tool call {0} changed while deciding; run the command again")]
    Raced(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Handler(String),
}

impl From<HandlerError> for ApprovalError {
    fn from(e: HandlerError) -> Self {
        ApprovalError::Handler(e.to_string())
    }
}

/// Finds a pending approval by its full reference or an unambiguous part
/// of it (the call id alone is usually enough).
async fn find(
    deps: &Deps,
    tenant: &TenantId,
    wanted: &str,
) -> Result<(PendingApproval, ToolCall), ApprovalError> {
    let pending = deps.store.approvals(tenant).await?;
    let matches: Vec<&PendingApproval> = pending
        .iter()
        .filter(|a| a.reference == wanted || a.call == wanted || a.reference.ends_with(wanted))
        .collect();
    let approval = match matches.as_slice() {
        [one] => (*one).clone(),
        _ => {
            let hint = if pending.is_empty() {
                " (nothing is waiting; see `mktg approvals`)".to_string()
            } else if matches.len() > 1 {
                format!(
                    "; \"{wanted}\" matches {} calls, give the full reference",
                    matches.len()
                )
            } else {
                format!(
                    "; waiting: {}",
                    pending
                        .iter()
                        .map(|a| a.reference.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(ApprovalError::NotPending {
                wanted: wanted.to_string(),
                hint,
            });
        }
    };
    let key = GoalKey::new(tenant.clone(), approval.goal.clone());
    let call = deps
        .store
        .call(
            &key,
            &approval.task,
            approval.revision,
            approval.turn,
            &approval.call,
        )
        .await?
        .ok_or_else(|| ApprovalError::NotPending {
            wanted: wanted.to_string(),
            hint: " (its call record is gone)".into(),
        })?;
    Ok((approval, call))
}

pub async fn list(deps: &Deps, tenant: &TenantId) -> Result<Vec<PendingApproval>, ApprovalError> {
    Ok(deps.store.approvals(tenant).await?)
}

/// Approves a call: it becomes PENDING and goes to the tool queue.
pub async fn approve(
    deps: &Deps,
    tenant: &TenantId,
    wanted: &str,
    by: &str,
) -> Result<ToolCall, ApprovalError> {
    let (approval, call) = find(deps, tenant, wanted).await?;
    let key = GoalKey::new(tenant.clone(), approval.goal.clone());
    let now = deps.clock.now_ms();
    let mut next = call.clone();
    if call.status == CallStatus::AwaitingApproval {
        next.status = CallStatus::Pending;
        next.decided_by = Some(format!("approved by {by}"));
        next.version += 1;
        let trace = Trace {
            at_ms: now,
            subject: call.task.to_string(),
            from: call.status.to_string(),
            to: next.status.to_string(),
            note: format!("tool call {} approved by {by}", call.reference()),
        };
        commit_decision(deps, &key, &call, &next, trace, &approval).await?;
    }
    // Sent after the commit; if this send is lost, running the command
    // again sends it again (the invoker runs a call once whatever it gets).
    deps.bus
        .send(&Envelope::new(
            tenant.clone(),
            approval.goal.clone(),
            Message::ToolCall {
                task: call.task.clone(),
                revision: call.revision,
                turn: call.turn,
                call: call.id.clone(),
            },
        ))
        .await
        .map_err(|e| ApprovalError::Handler(e.to_string()))?;
    Ok(next)
}

/// Denies a call: it becomes DENIED with the reason as its result.
pub async fn deny(
    deps: &Deps,
    tenant: &TenantId,
    wanted: &str,
    by: &str,
    reason: &str,
) -> Result<ToolCall, ApprovalError> {
    let (approval, call) = find(deps, tenant, wanted).await?;
    let key = GoalKey::new(tenant.clone(), approval.goal.clone());
    let now = deps.clock.now_ms();
    let mut next = call.clone();
    if call.status == CallStatus::AwaitingApproval {
        next.finish(
            CallStatus::Denied,
            format!("a person denied this call ({by}): {reason}. Continue without it."),
            true,
            now,
        );
        next.decided_by = Some(format!("denied by {by}: {reason}"));
        next.version += 1;
        let trace = Trace {
            at_ms: now,
            subject: call.task.to_string(),
            from: call.status.to_string(),
            to: next.status.to_string(),
            note: format!("tool call {} denied by {by}: {reason}", call.reference()),
        };
        commit_decision(deps, &key, &call, &next, trace, &approval).await?;
    }
    tool_invoker::resume_if_turn_done(deps, &key, &next).await?;
    Ok(next)
}

async fn commit_decision(
    deps: &Deps,
    key: &GoalKey,
    call: &ToolCall,
    next: &ToolCall,
    trace: Trace,
    approval: &PendingApproval,
) -> Result<(), ApprovalError> {
    match deps
        .store
        .commit(
            key,
            vec![
                Write::Call {
                    call: next.clone(),
                    expect_version: call.version,
                },
                Write::ClearApproval {
                    tenant: key.tenant.clone(),
                    reference: approval.reference.clone(),
                },
                Write::Trace(trace),
            ],
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApprovalError::Raced(call.reference())),
        Err(e) => Err(e.into()),
    }
}
