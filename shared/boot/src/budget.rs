//! Budget plumbing shared by the agent executor and the CLI: the limits in
//! force for a tenant, and the once-only `budget.level` announcements.

use crate::{Deps, HandlerError};
use mktg_core::cost::{percent_used, usd_to_micros, Limits};
use mktg_core::{DomainEvent, TenantId};
use mktg_store::{keys, GoalKey, StoreError, Write};

/// The tenant's own budget if one was set (`mktg budget set`), otherwise
/// budget.yaml's.
pub async fn limits(deps: &Deps, tenant: &TenantId) -> Result<Limits, HandlerError> {
    let own = deps.store.budget(tenant).await?;
    let (mut monthly, mut per_goal) = match &own {
        Some(b) => (b.monthly_usd, b.per_goal_usd),
        None => (
            deps.config.budget.monthly_usd,
            deps.config.budget.per_goal_usd,
        ),
    };
    // A plan caps what the tenant's own budget allows.
    if let Some(plan) = deps
        .config
        .budget
        .billing
        .plan_of(own.as_ref().and_then(|b| b.plan.as_deref()))
    {
        monthly = monthly.min(plan.monthly_usd);
        per_goal = per_goal.min(plan.per_goal_usd);
    }
    Ok(Limits {
        month_micros: usd_to_micros(monthly),
        goal_micros: usd_to_micros(per_goal),
    })
}

/// The month's spend so far, in micro-dollars.
pub async fn month_spent(deps: &Deps, tenant: &TenantId, month: &str) -> Result<u64, HandlerError> {
    Ok(month_totals(deps, tenant, month).await?.micros)
}

/// The month's ledger totals: cost, calls and tokens.
pub async fn month_totals(
    deps: &Deps,
    tenant: &TenantId,
    month: &str,
) -> Result<mktg_store::CostTotals, mktg_store::StoreError> {
    deps.store
        .cost_row(&keys::cost_pk(tenant, month), keys::COST_TOTAL_SK)
        .await
}

/// Publishes `budget.level` once per level and month: whoever claims the
/// level first announces it, so concurrent calls never double or miss it.
pub async fn announce_levels(deps: &Deps, key: &GoalKey, month: &str) -> Result<(), HandlerError> {
    let limits = limits(deps, &key.tenant).await?;
    let spent = month_spent(deps, &key.tenant, month).await?;
    let pct = percent_used(spent, limits.month_micros);
    for level in deps
        .config
        .budget
        .levels
        .iter()
        .filter(|l| pct >= l.at_percent)
    {
        let claim = Write::Claim {
            tenant: key.tenant.clone(),
            kind: "budget-level".into(),
            key: format!("{month}-{}", level.name),
            expires_at: 0,
        };
        match deps
            .store
            .commit(&GoalKey::tenant_only(key.tenant.clone()), vec![claim])
            .await
        {
            Ok(()) => {
                let reason = format!("{pct:.1}% of the month's budget spent ({month})");
                tracing::warn!(level = %level.name, %reason, "budget level crossed");
                let event = DomainEvent::new(
                    "budget.level",
                    key.tenant.clone(),
                    key.goal.clone(),
                    None,
                    &level.name,
                    Some(reason),
                    deps.clock.now_ms(),
                );
                deps.bus.publish(&event).await?;
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The budget gate before a model call: this tenant's limits, the month's
/// spend so far and the goal's spend (`goal_micros`) against budget.yaml's
/// levels, for a call of `priority`.
pub async fn gate_call(
    deps: &Deps,
    tenant: &TenantId,
    priority: mktg_core::Priority,
    goal_micros: u64,
) -> Result<mktg_core::cost::Gate, HandlerError> {
    let month = crate::month_of(deps.clock.now_ms());
    let limits = limits(deps, tenant).await?;
    let spent = month_spent(deps, tenant, &month).await?;
    Ok(mktg_core::cost::gate(
        priority,
        spent,
        goal_micros,
        limits,
        &deps.config.budget.levels,
    ))
}
