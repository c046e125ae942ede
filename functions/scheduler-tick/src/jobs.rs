//! The system's own scheduled jobs (schedules.yaml `job:`), run by the tick
//! after it claimed the slot. Each is idempotent for its slot, so a tick
//! that crashed mid-job is repaired by the next tick running it again.

use chrono::{DateTime, Utc};
use mktg_boot::metrics::{self, date_of_day, day_of_ms};
use mktg_boot::{Deps, HandlerError};
use mktg_config::Job;
use mktg_core::learn::{patterns, PATTERN_MIN_GOALS, PATTERN_SIMILARITY};
use mktg_core::realloc::{propose, ChannelReturn};
use mktg_core::TenantId;
use mktg_store::{GoalKey, StoreError, Write};
use serde_json::json;
use std::collections::BTreeMap;

/// Collection of per-skill pattern lists (`mktg learnings patterns`).
pub const PATTERNS: &str = "patterns";
/// Collection of budget-shift proposals (`mktg approvals`).
pub const PROPOSALS: &str = "proposals";
/// Collection holding the approved channel allocation (id `current`).
pub const ALLOCATION: &str = "allocation";

pub async fn run(
    deps: &Deps,
    tenant: &TenantId,
    job: Job,
    slot: DateTime<Utc>,
) -> Result<String, HandlerError> {
    let slot_ms = u64::try_from(slot.timestamp_millis()).unwrap_or(0);
    match job {
        Job::CheckMetrics => {
            // Yesterday's value is complete; today's is still growing.
            let day = day_of_ms(slot_ms) - 1;
            let r = metrics::check(deps, tenant, day).await?;
            Ok(format!(
                "{} series read for {}, {} anomalies, {} unreadable{}",
                r.observed.len(),
                date_of_day(day),
                r.anomalies.len(),
                r.errors.len(),
                r.errors
                    .iter()
                    .map(|(s, why)| format!("; {s}: {why}"))
                    .collect::<String>()
            ))
        }
        Job::CompoundLearnings => compound_learnings(deps, tenant).await,
        Job::ProposeBudgetShifts => propose_budget_shifts(deps, tenant, slot_ms).await,
        // The sweeper judges staleness by the clock, not by the slot.
        Job::SweepStuckWork => {
            crate::sweep::run(deps, tenant, deps.clock.now_ms().max(slot_ms)).await
        }
        Job::ReportUsage => report_usage(deps, tenant).await,
    }
}

async fn report_usage(deps: &Deps, tenant: &TenantId) -> Result<String, HandlerError> {
    let Some(stripe) = crate::billing::Stripe::current() else {
        return Ok("skipped: STRIPE_SECRET_KEY is not set".into());
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| HandlerError::Retry(e.to_string()))?;
    match crate::billing::report_usage(deps, tenant, &stripe, &http).await {
        Ok(crate::billing::Reported::Nothing(why)) => Ok(why),
        Ok(crate::billing::Reported::Sent { cents, identifier }) => {
            Ok(format!("reported {cents} cents to Stripe ({identifier})"))
        }
        Err(e) => Err(HandlerError::Retry(e.to_string())),
    }
}

async fn compound_learnings(deps: &Deps, tenant: &TenantId) -> Result<String, HandlerError> {
    let pass = deps.config.rubrics.pass_overall.max(1);
    let mut writes = Vec::new();
    let mut total = 0;
    for skill in deps.config.skills.keys() {
        let (ls, uses) = deps.store.learnings(tenant, skill.as_str()).await?;
        if ls.is_empty() {
            continue;
        }
        let found = patterns(&ls, &uses, pass, PATTERN_SIMILARITY, PATTERN_MIN_GOALS);
        total += found.len();
        writes.push(Write::Doc {
            tenant: tenant.clone(),
            collection: PATTERNS.into(),
            id: skill.to_string(),
            body: json!({"patterns": found, "learnings": ls.len(), "at_ms": deps.clock.now_ms()}),
            new_only: false,
            ttl: None,
        });
    }
    let skills = writes.len();
    for chunk in writes.chunks(25) {
        deps.store
            .commit(&GoalKey::tenant_only(tenant.clone()), chunk.to_vec())
            .await?;
    }
    Ok(format!(
        "{total} patterns over {skills} skills with learnings"
    ))
}

/// The channel allocation in force: the last approved shift's, else
/// metrics.yaml's.
pub async fn allocation(
    deps: &Deps,
    tenant: &TenantId,
) -> Result<BTreeMap<String, f64>, HandlerError> {
    let stored = deps.store.docs(tenant, ALLOCATION).await?;
    if let Some((_, body)) = stored.into_iter().find(|(id, _)| id == "current") {
        if let Ok(a) = serde_json::from_value::<BTreeMap<String, f64>>(body["channels"].clone()) {
            return Ok(a);
        }
    }
    Ok(deps
        .config
        .metrics
        .reallocation
        .as_ref()
        .map(|r| r.channels.clone())
        .unwrap_or_default())
}

async fn propose_budget_shifts(
    deps: &Deps,
    tenant: &TenantId,
    slot_ms: u64,
) -> Result<String, HandlerError> {
    let Some(r) = &deps.config.metrics.reallocation else {
        return Ok("no reallocation section in metrics.yaml; nothing to do".into());
    };
    let today = day_of_ms(slot_ms);
    let from = today - i64::from(r.window_days);
    let sum = |h: Vec<(i64, f64)>| -> f64 {
        h.into_iter()
            .filter(|(d, _)| *d >= from && *d < today)
            .map(|(_, v)| v)
            .sum()
    };
    let mut returns = Vec::new();
    for channel in r.channels.keys() {
        let spend = sum(metrics::history(
            deps,
            tenant,
            &metrics::series(&r.spend_metric, Some(channel)),
        )
        .await?);
        let revenue = sum(metrics::history(
            deps,
            tenant,
            &metrics::series(&r.revenue_metric, Some(channel)),
        )
        .await?);
        returns.push(ChannelReturn {
            channel: channel.clone(),
            spend,
            revenue,
        });
    }
    let current = allocation(deps, tenant).await?;
    let Some(shift) = propose(&current, &returns, r.min_roi_gap, r.max_shift_percent) else {
        return Ok(format!(
            "no shift proposed: returns per dollar {}",
            returns
                .iter()
                .map(|c| format!(
                    "{} {}",
                    c.channel,
                    c.roi().map(|v| format!("{v:.2}")).unwrap_or("n/a".into())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let id = format!("shift-{}", date_of_day(today));
    let body = json!({
        "id": id,
        "status": "pending",
        "shift": shift,
        "returns": returns,
        "window_days": r.window_days,
        "created_ms": deps.clock.now_ms(),
    });
    let write = Write::Doc {
        tenant: tenant.clone(),
        collection: PROPOSALS.into(),
        id: id.clone(),
        body,
        new_only: true,
        ttl: None,
    };
    match deps
        .store
        .commit(&GoalKey::tenant_only(tenant.clone()), vec![write])
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(%id, from = %shift.from, to = %shift.to, amount = shift.amount, "budget shift proposed; waiting for approval");
    Ok(format!(
        "proposed {id}: move {} USD/month from {} ({:.2} per dollar) to {} ({:.2}); `mktg approve {id}` applies it",
        shift.amount, shift.from, shift.from_roi, shift.to, shift.to_roi
    ))
}
