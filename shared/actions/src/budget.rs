//! The tenant's budget and plan: what it is, setting it (which releases
//! the tasks the budget gate parked), and choosing a billing plan.

use crate::ActionError;
use mktg_boot::Deps;
use mktg_core::cost::{level_for, percent_used};
use mktg_core::{Envelope, Message, TenantId};
use mktg_store::{GoalKey, Parked, TenantBudget, Write};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct BudgetView {
    pub month: String,
    /// The limits in force (the plan's caps applied).
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    /// `tenant` when set for the tenant, `config` from budget.yaml.
    pub source: &'static str,
    pub plan: Option<String>,
    pub spent_usd: f64,
    pub percent_used: f64,
    pub level: String,
    pub parked: Vec<Parked>,
}

pub async fn view(deps: &Deps, tenant: &TenantId) -> Result<BudgetView, ActionError> {
    let limits = mktg_boot::budget::limits(deps, tenant).await?;
    let own = deps.store.budget(tenant).await?;
    let month = mktg_boot::month_of(deps.clock.now_ms());
    let spent = mktg_boot::budget::month_spent(deps, tenant, &month).await?;
    let level = level_for(spent, limits.month_micros, &deps.config.budget.levels);
    let plan = deps
        .config
        .budget
        .billing
        .plan_of(own.as_ref().and_then(|b| b.plan.as_deref()))
        .map(|p| p.name.clone());
    Ok(BudgetView {
        month,
        monthly_usd: limits.month_micros as f64 / 1e6,
        per_goal_usd: limits.goal_micros as f64 / 1e6,
        source: if own.is_some() { "tenant" } else { "config" },
        plan,
        spent_usd: spent as f64 / 1e6,
        percent_used: percent_used(spent, limits.month_micros),
        level: level.map_or("normal", |l| l.name.as_str()).to_string(),
        parked: deps.store.parked(tenant).await?,
    })
}

fn dollars(name: &str, v: f64) -> Result<f64, ActionError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ActionError::Invalid(format!(
            "{name} must be a non-negative number of dollars, got {v}"
        )))
    }
}

/// Sets the tenant's budget (keeping its plan) and resumes every parked
/// task; the gate parks again what is still over. Returns what it resumed.
pub async fn set(
    deps: &Deps,
    tenant: &TenantId,
    monthly: f64,
    per_goal: Option<f64>,
) -> Result<Vec<Parked>, ActionError> {
    let monthly = dollars("monthly", monthly)?;
    let per_goal = dollars(
        "per goal",
        per_goal.unwrap_or(deps.config.budget.per_goal_usd),
    )?;
    let plan = deps.store.budget(tenant).await?.and_then(|b| b.plan);
    write(deps, tenant, monthly, per_goal, plan).await?;
    resume_parked(deps, tenant).await
}

/// Puts the tenant on `plan` (keeping its own budget, or budget.yaml's).
pub async fn set_plan(
    deps: &Deps,
    tenant: &TenantId,
    plan: &str,
) -> Result<Vec<Parked>, ActionError> {
    let plans = &deps.config.budget.billing.plans;
    if !plans.contains_key(plan) {
        let known: Vec<&str> = plans.keys().map(String::as_str).collect();
        return Err(ActionError::Invalid(format!(
            "no plan \"{plan}\"; plans: {}",
            if known.is_empty() {
                "none (budget.yaml has no billing.plans)".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let (monthly, per_goal) = match deps.store.budget(tenant).await? {
        Some(b) => (b.monthly_usd, b.per_goal_usd),
        None => (
            deps.config.budget.monthly_usd,
            deps.config.budget.per_goal_usd,
        ),
    };
    write(deps, tenant, monthly, per_goal, Some(plan.to_string())).await?;
    resume_parked(deps, tenant).await
}

async fn write(
    deps: &Deps,
    tenant: &TenantId,
    monthly: f64,
    per_goal: f64,
    plan: Option<String>,
) -> Result<(), ActionError> {
    let budget = TenantBudget {
        monthly_usd: monthly,
        per_goal_usd: per_goal,
        updated_ms: deps.clock.now_ms(),
        plan,
    };
    deps.store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget,
            }],
        )
        .await?;
    Ok(())
}

async fn resume_parked(deps: &Deps, tenant: &TenantId) -> Result<Vec<Parked>, ActionError> {
    let parked = deps.store.parked(tenant).await?;
    for p in &parked {
        let env = Envelope::new(
            tenant.clone(),
            p.goal.clone(),
            Message::ResumeTask {
                task: p.task.clone(),
                revision: p.revision,
            },
        );
        deps.bus
            .send(&env)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
    }
    Ok(parked)
}
