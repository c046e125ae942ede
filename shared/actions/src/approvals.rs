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
        let note = format!("tool call {} approved by {by}", call.reference());
        commit_decision(deps, &key, &call, &next, now, note, &approval).await?;
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
        let note = format!("tool call {} denied by {by}: {reason}", call.reference());
        commit_decision(deps, &key, &call, &next, now, note, &approval).await?;
    }
    tool_invoker::resume_if_turn_done(deps, &key, &next).await?;
    Ok(next)
}

/// Stores a person's decision on `call` (now `next`), clears it from the
/// pending approvals and traces it, if the call did not change meanwhile.
async fn commit_decision(
    deps: &Deps,
    key: &GoalKey,
    call: &ToolCall,
    next: &ToolCall,
    at_ms: u64,
    note: String,
    approval: &PendingApproval,
) -> Result<(), ApprovalError> {
    let trace = Trace {
        at_ms,
        subject: call.task.to_string(),
        from: call.status.to_string(),
        to: next.status.to_string(),
        note,
    };
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

/// Budget-shift proposals waiting for a person, oldest first.
pub async fn pending_shifts(
    deps: &Deps,
    tenant: &TenantId,
) -> Result<Vec<serde_json::Value>, ApprovalError> {
    Ok(deps
        .store
        .docs(tenant, scheduler_tick::jobs::PROPOSALS)
        .await?
        .into_iter()
        .map(|(_, body)| body)
        .filter(|b| b["status"] == "pending")
        .collect())
}

/// Whether a reference names a budget-shift proposal.
pub fn is_shift(reference: &str) -> bool {
    reference.starts_with("shift-")
}

/// Approves or denies a budget-shift proposal. Approving writes the new
/// channel allocation and puts `budget.shift_approved` on the bus (events
/// mapping `budget-shift-approved` starts the goal that carries it out in
/// the ad platforms). Approving again re-puts the event (same id, so at
/// most one goal); deciding a proposal another way is refused.
pub async fn decide_shift(
    deps: &Deps,
    tenant: &TenantId,
    id: &str,
    approve: bool,
    by: &str,
    reason: &str,
) -> Result<serde_json::Value, ApprovalError> {
    use scheduler_tick::jobs::{ALLOCATION, PROPOSALS};
    let all = deps.store.docs(tenant, PROPOSALS).await?;
    let Some((_, mut proposal)) = all.iter().find(|(pid, _)| pid == id).cloned() else {
        return Err(ApprovalError::NotPending {
            wanted: id.to_string(),
            hint: format!(
                "; proposals: {}",
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        });
    };
    let wanted = if approve { "approved" } else { "denied" };
    let status = proposal["status"].as_str().unwrap_or("pending").to_string();
    if status != "pending" && status != wanted {
        return Err(ApprovalError::Handler(format!(
            "proposal {id} was already {status} ({})",
            proposal["decided_by"].as_str().unwrap_or("?")
        )));
    }
    let scope = GoalKey::tenant_only(tenant.clone());
    if status == "pending" {
        proposal["status"] = serde_json::json!(wanted);
        proposal["decided_by"] = serde_json::json!(if approve {
            format!("approved by {by}")
        } else {
            format!("denied by {by}: {reason}")
        });
        proposal["decided_ms"] = serde_json::json!(deps.clock.now_ms());
        let mut writes = vec![
            // Decided once: a concurrent second decision loses here.
            Write::Claim {
                tenant: tenant.clone(),
                kind: "shift-decision".into(),
                key: id.to_string(),
                expires_at: 0,
            },
            Write::Doc {
                tenant: tenant.clone(),
                collection: PROPOSALS.into(),
                id: id.to_string(),
                body: proposal.clone(),
                new_only: false,
                ttl: None,
            },
        ];
        if approve {
            writes.push(Write::Doc {
                tenant: tenant.clone(),
                collection: ALLOCATION.into(),
                id: "current".into(),
                body: serde_json::json!({
                    "channels": proposal["shift"]["after"],
                    "from_proposal": id,
                    "at_ms": deps.clock.now_ms(),
                }),
                new_only: false,
                ttl: None,
            });
        }
        match deps.store.commit(&scope, writes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(ApprovalError::Raced(id.to_string())),
            Err(e) => return Err(e.into()),
        }
    }
    if approve {
        let shift = &proposal["shift"];
        let detail = serde_json::json!({
            "id": format!("shift:{id}"),
            "tenant": tenant,
            "source": "approval",
            "type": "budget.shift_approved",
            "received_ms": deps.clock.now_ms(),
            "data": {
                "proposal": id,
                "from": shift["from"], "to": shift["to"], "amount": shift["amount"],
                "from_roi": shift["from_roi"], "to_roi": shift["to_roi"],
            },
        });
        deps.bus
            .put_external(
                mktg_boot::metrics::MEASURE_SOURCE,
                "budget.shift_approved",
                &detail.to_string(),
            )
            .await
            .map_err(|e| ApprovalError::Handler(format!("{e}; run the command again")))?;
    }
    Ok(proposal)
}
