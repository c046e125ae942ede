//! The scheduler tick, run every minute by an EventBridge rule: for the
//! deployment's tenant and every registered tenant, every schedule of schedules.yaml whose cron slot
//! fell due (within the catch-up window) starts its goal or pipeline, once.
//!
//! Once: each slot is claimed with a conditional write, so two ticks at the
//! same time start one goal. The goal id is derived from the slot, so a tick
//! that crashed between its claim and its send is repaired by the next tick
//! re-sending (it sees the claim without its `sent` mark), and the director
//! ignores a second submission of the same goal.

pub mod billing;
pub mod jobs;
pub mod sweep;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_runtime::LambdaEvent;
use mktg_boot::{budget, month_of, Deps, HandlerError};
use mktg_config::{Schedule, ScheduleTarget};
use mktg_core::cost::level_for;
use mktg_core::{Envelope, GoalId, GoalSource, Message, TenantId};
use mktg_store::{GoalKey, StoreError, Write};
use serde::Serialize;

/// What one tick did, returned to the invoker and logged.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Goal ids started by this tick.
    pub fired: Vec<String>,
    /// Slots already started by another tick.
    pub already: Vec<String>,
    /// Schedule id and why it was skipped.
    pub skipped: Vec<(String, String)>,
    /// Jobs run by this tick: slot key and what the job did.
    pub jobs: Vec<(String, String)>,
}

/// Lambda entry point. The event (an EventBridge scheduled event) only says
/// "now"; the time comes from the clock.
pub async fn handle(
    deps: &Deps,
    tenant: &TenantId,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<TickReport, lambda_runtime::Error> {
    // A retryable failure is returned as an error so the invoke is retried;
    // every slot already fired stays fired.
    tick_all(deps, tenant, deps.clock.now_ms())
        .await
        .map_err(|e| e.to_string().into())
}

/// Ticks for the deployment's tenant and every registered tenant (one
/// that wrote settings through the API). One tenant's failure does not
/// stop the others; it is returned after them, so the invoke is retried.
pub async fn tick_all(
    deps: &Deps,
    deployment: &TenantId,
    now_ms: u64,
) -> Result<TickReport, HandlerError> {
    let mut tenants = vec![deployment.clone()];
    for t in mktg_boot::tenant::registered(deps).await? {
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    let mut all = TickReport::default();
    let mut failed = Vec::new();
    for t in &tenants {
        match tick_for(deps, t, now_ms, t == deployment).await {
            Ok(r) => {
                let tag = |s: String| {
                    if t == deployment {
                        s
                    } else {
                        format!("{t}/{s}")
                    }
                };
                all.fired.extend(r.fired.into_iter().map(tag));
                all.already.extend(r.already.into_iter().map(tag));
                all.skipped
                    .extend(r.skipped.into_iter().map(|(k, v)| (tag(k), v)));
                all.jobs
                    .extend(r.jobs.into_iter().map(|(k, v)| (tag(k), v)));
            }
            Err(e) => {
                tracing::error!(tenant = %t, error = %e, "tick failed for a tenant");
                failed.push(format!("{t}: {e}"));
            }
        }
    }
    if failed.is_empty() {
        Ok(all)
    } else {
        Err(HandlerError::Retry(failed.join("; ")))
    }
}

fn utc(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_default()
}

/// Slots of `schedule` in (now - window, now], oldest first.
pub fn due_slots(
    schedule: &Schedule,
    now: DateTime<Utc>,
    window_minutes: u32,
) -> Vec<DateTime<Utc>> {
    let start =
        (now - Duration::minutes(i64::from(window_minutes))).with_timezone(&schedule.timezone);
    schedule
        .cron
        .iter_after(start)
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t <= now)
        .take(1_000)
        .collect()
}

/// The next `n` fire times after `from`.
pub fn next_fires(schedule: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    schedule
        .cron
        .iter_after(from.with_timezone(&schedule.timezone))
        .map(|t| t.with_timezone(&Utc))
        .take(n)
        .collect()
}

fn slot_key(schedule: &Schedule, slot: DateTime<Utc>) -> String {
    format!("{}@{}", schedule.id, slot.format("%Y%m%dT%H%MZ"))
}

/// The goal a slot starts, with an id derived from the slot.
pub fn slot_goal(tenant: &TenantId, schedule: &Schedule, slot: DateTime<Utc>) -> Envelope {
    let date = slot
        .with_timezone(&schedule.timezone)
        .format("%Y-%m-%d")
        .to_string();
    let goal = GoalId::new(format!("s-{}-{}", schedule.id, slot.format("%Y%m%d%H%M")));
    let (text, pipeline) = match &schedule.target {
        ScheduleTarget::Goal(text) => (text.replace("{date}", &date), None),
        ScheduleTarget::Pipeline(p) => (
            format!("Scheduled {} for {date}", schedule.name),
            Some(p.clone()),
        ),
        ScheduleTarget::Job(job) => (format!("job {}", job.name()), None),
    };
    let slot_ms = u64::try_from(slot.timestamp_millis()).unwrap_or(0);
    Envelope::new(
        tenant.clone(),
        goal,
        Message::GoalSubmitted {
            text,
            pipeline,
            priority: schedule.priority,
            source: Some(GoalSource::Schedule {
                schedule: schedule.id.clone(),
                slot: slot.to_rfc3339(),
            }),
            submitted_ms: slot_ms,
        },
    )
}

/// One tick for the deployment's tenant (or one run directly).
pub async fn tick(deps: &Deps, tenant: &TenantId, now_ms: u64) -> Result<TickReport, HandlerError> {
    tick_for(deps, tenant, now_ms, true).await
}

/// One tick for `tenant`. Another tenant than the deployment's gets the
/// deployment's goal schedules only once it has a product context (a
/// tenant that signed up and did nothing starts no paid work); its own
/// schedules and the jobs always run.
pub async fn tick_for(
    deps: &Deps,
    tenant: &TenantId,
    now_ms: u64,
    deployment: bool,
) -> Result<TickReport, HandlerError> {
    let now = utc(now_ms);
    let mut report = TickReport::default();
    let scope = GoalKey::tenant_only(tenant.clone());
    let month = month_of(now_ms);
    let limits = budget::limits(deps, tenant).await?;
    let spent = budget::month_spent(deps, tenant, &month).await?;
    let level = level_for(spent, limits.month_micros, &deps.config.budget.levels);
    let window = deps.config.schedules.catch_up_minutes;
    // The deployment's schedules the tenant did not turn off, and its own.
    let own = mktg_boot::tenant::load(deps, tenant).await?;
    let (schedules, refused) = own.schedules(&deps.config);
    for (id, why) in refused {
        tracing::warn!(schedule = %id, %why, "the tenant's schedule is not valid any more; skipped");
        report.skipped.push((id, why));
    }
    let own_ids: Vec<&String> = own.own_schedules.keys().collect();
    for schedule in &schedules {
        let slots = due_slots(schedule, now, window);
        if slots.is_empty() {
            continue;
        }
        let starts_goal = !matches!(schedule.target, ScheduleTarget::Job(_));
        if starts_goal && !deployment && own.context.is_none() && !own_ids.contains(&&schedule.id) {
            report.skipped.push((
                schedule.id.clone(),
                "no product context yet: the deployment's schedules start work for a tenant once it has one".into(),
            ));
            continue;
        }
        if let Some(level) = level.filter(|l| !l.allowed_priorities.contains(&schedule.priority)) {
            let why = format!(
                "budget level {} does not allow {} work",
                level.name, schedule.priority
            );
            tracing::warn!(schedule = %schedule.id, %why, "schedule skipped");
            report.skipped.push((schedule.id.clone(), why));
            continue;
        }
        for slot in slots {
            let key = slot_key(schedule, slot);
            let expires_at = u64::try_from((slot + Duration::days(7)).timestamp()).unwrap_or(0);
            let claim = Write::Claim {
                tenant: tenant.clone(),
                kind: "schedule".into(),
                key: key.clone(),
                expires_at,
            };
            let won = match deps.store.commit(&scope, vec![claim]).await {
                Ok(()) => true,
                Err(StoreError::Conflict(_)) => false,
                Err(e) => return Err(e.into()),
            };
            let sent_key = format!("{key}#sent");
            if !won && deps.store.claimed(tenant, "schedule", &sent_key).await? {
                report.already.push(key);
                continue;
            }
            let envelope = slot_goal(tenant, schedule, slot);
            let job_done = match &schedule.target {
                ScheduleTarget::Job(job) => Some(jobs::run(deps, tenant, *job, slot).await?),
                _ => {
                    deps.bus.send(&envelope).await?;
                    None
                }
            };
            let mark = Write::Claim {
                tenant: tenant.clone(),
                kind: "schedule".into(),
                key: sent_key,
                expires_at,
            };
            match deps.store.commit(&scope, vec![mark]).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match job_done {
                Some(summary) => {
                    tracing::info!(schedule = %schedule.id, %slot, %summary, "job ran");
                    report.jobs.push((key, summary));
                }
                None => {
                    tracing::info!(schedule = %schedule.id, goal_id = %envelope.goal, %slot, "schedule fired");
                    report.fired.push(envelope.goal.to_string());
                }
            }
        }
    }
    Ok(report)
}
