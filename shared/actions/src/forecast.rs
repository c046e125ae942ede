//! A plan preview: how the director would plan a goal and what it would
//! cost, before anything is stored or sent.

use crate::ActionError;
use mktg_boot::Deps;
use mktg_core::{GoalId, Priority, TenantId, Usage};
use mktg_store::GoalKey;
use serde::Serialize;

/// Tokens assumed per call for a skill with no measured history yet.
pub const DEFAULT_INPUT_TOKENS: u64 = 3_000;
pub const DEFAULT_OUTPUT_TOKENS: u64 = 1_500;

#[derive(Clone, Debug, Serialize)]
pub struct TaskForecast {
    pub id: String,
    pub skill: String,
    pub deps: Vec<String>,
    pub tier: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub micros: u64,
    pub usd: f64,
    /// Where the token estimate comes from.
    pub basis: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Forecast {
    /// How the plan was made.
    pub note: String,
    pub pipeline: Option<String>,
    pub tasks: Vec<TaskForecast>,
    pub total_micros: u64,
    pub total_usd: f64,
}

/// Plans `text` as the director would (with a model when it plans with
/// one) and prices each task at one call: this month's average tokens of
/// the skill, or a default when it has none yet.
pub async fn forecast(
    deps: &Deps,
    tenant: &TenantId,
    text: &str,
    pipeline: Option<&str>,
    priority: Priority,
) -> Result<Forecast, ActionError> {
    // A real model's planning call costs money: it is checkpointed and
    // costed under a preview id of its own, like any other call. The
    // scripted provider costs nothing and stores nothing.
    let record = !deps.model.is_scripted();
    let key = GoalKey::new(
        tenant.clone(),
        GoalId::new(format!(
            "preview-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )),
    );
    let choice = director::choose_plan(deps, &key, text, pipeline, priority, record)
        .await?
        .map_err(ActionError::Invalid)?;
    let month = mktg_boot::month_of(deps.clock.now_ms());
    let history = deps.store.costs(tenant, &month).await?;
    let mut tasks = Vec::new();
    let mut total = 0u64;
    for task in &choice.tasks {
        let tier = deps
            .config
            .skill(&task.skill)
            .map(|s| s.tier.clone())
            .unwrap_or_else(|| "sonnet".into());
        let measured = history
            .iter()
            .find(|(k, _)| k == &format!("SKILL#{}", task.skill))
            .map(|(_, c)| *c)
            .filter(|c| c.calls > 0);
        let (input, output, basis) = match measured {
            Some(c) => (
                c.input_tokens / c.calls,
                c.output_tokens / c.calls,
                format!("average of {} call(s) this month", c.calls),
            ),
            None => (
                DEFAULT_INPUT_TOKENS,
                DEFAULT_OUTPUT_TOKENS,
                "default (no history yet)".to_string(),
            ),
        };
        let usage = Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        };
        let micros = mktg_core::cost::cost_micros(
            &usage,
            &deps.config.models.prices(&tier).unwrap_or_default(),
        );
        total += micros;
        tasks.push(TaskForecast {
            id: task.id.to_string(),
            skill: task.skill.to_string(),
            deps: task.deps.iter().map(|d| d.to_string()).collect(),
            tier,
            input_tokens: input,
            output_tokens: output,
            micros,
            usd: micros as f64 / 1e6,
            basis,
        });
    }
    Ok(Forecast {
        note: choice.note,
        pipeline: choice.pipeline,
        tasks,
        total_micros: total,
        total_usd: total as f64 / 1e6,
    })
}
