//! The one way a model call is made and recorded: call, then write the turn
//! checkpoint and its cost in one commit. The checkpoint is written once
//! (conditional put), so its cost is recorded exactly once; a delivery that
//! loses the race takes the stored answer instead of its own.

use crate::{budget, month_of, Deps, HandlerError};
use mktg_core::cost::cost_micros;
use mktg_core::{TaskId, Turn, TurnToolUse};
use mktg_llm::ChatRequest;
use mktg_store::{CostEntry, GoalKey, StoreError, Write};

/// Where a call's answer is checkpointed and how it is priced.
pub struct CallAt<'a> {
    /// The (pseudo-)task the turn is stored under: a task id, `plan`,
    /// `consistency`, `{task}~review`, `{task}~learn`.
    pub task: TaskId,
    pub revision: u32,
    pub n: u32,
    /// The tier the call is priced at.
    pub tier: &'a str,
    /// The skill the cost ledger books it to.
    pub skill: &'a str,
}

/// Calls the model with `request` and stores the answer as turn
/// `at.task/at.revision/at.n` with its cost, plus `extra` writes, in one
/// commit; then announces any budget level the call crossed.
pub async fn call_and_record(
    deps: &Deps,
    key: &GoalKey,
    at: CallAt<'_>,
    request: &ChatRequest,
    extra: Vec<Write>,
) -> Result<Turn, HandlerError> {
    let response = deps.model.complete(request).await?;
    crate::crash_point!("model.after_answer");
    let now = deps.clock.now_ms();
    let micros = cost_micros(
        &response.usage,
        &deps.config.models.prices(at.tier).unwrap_or_default(),
    );
    let turn = Turn {
        task: at.task.clone(),
        revision: at.revision,
        n: at.n,
        request_hash: request.hash(),
        model: response.model.clone(),
        scripted: response.scripted,
        text: response.text,
        stop_reason: response.stop_reason,
        usage: response.usage,
        tier: at.tier.to_string(),
        cost_micros: micros,
        tool_uses: response
            .tool_uses
            .iter()
            .map(|t| TurnToolUse {
                id: t.id.clone(),
                name: t.name.clone(),
                // serde_json keeps object keys sorted: canonical text.
                input: t.input.to_string(),
            })
            .collect(),
        at_ms: now,
    };
    let month = month_of(now);
    let cost = Write::AddCost(CostEntry {
        tenant: key.tenant.clone(),
        goal: key.goal.clone(),
        month: month.clone(),
        skill: at.skill.to_string(),
        model: turn.model.clone(),
        usage: turn.usage,
        micros,
    });
    let writes = [Write::NewTurn(turn.clone()), cost]
        .into_iter()
        .chain(extra)
        .collect();
    match deps.store.commit(key, writes).await {
        Ok(()) => {
            budget::announce_levels(deps, key, &month).await?;
            Ok(turn)
        }
        // Another delivery checkpointed first: use its answer.
        Err(StoreError::Conflict(_)) => deps
            .store
            .turn(key, &at.task, at.revision, at.n)
            .await?
            .ok_or_else(|| HandlerError::Retry("turn checkpoint vanished".into())),
        Err(e) => Err(e.into()),
    }
}
