//! An event arrived (webhook or measurement): the first mapping of
//! events.yaml whose type matches and whose conditions hold starts a goal,
//! unless the mapping is cooling down for this tenant.
//!
//! The goal id is derived from the event id, so one event starts at most
//! one goal. The cooldown is a lease held by the event that fired; a crash
//! after taking it is repaired on redelivery because the same event still
//! holds the lease.

use crate::on_goal_submitted;
use mktg_boot::{metrics, outbox, Deps, HandlerError};
use mktg_config::ScheduleTarget;
use mktg_core::events::{check, render, Scalar};
use mktg_core::{Envelope, GoalSource, Message};
use mktg_store::{GoalKey, StoreError, Write};
use std::collections::BTreeMap;

fn flatten(data_json: &str) -> BTreeMap<String, Scalar> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(data_json)
    else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Number(n) => n.as_f64().map(|f| (k, Scalar::Num(f))),
            serde_json::Value::String(s) => Some((k, Scalar::Str(s))),
            serde_json::Value::Bool(b) => Some((k, Scalar::Bool(b))),
            _ => None,
        })
        .collect()
}

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    event_id: &str,
    event_type: &str,
    data_json: &str,
    received_ms: u64,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    if let Some(existing) = deps.store.goal(&key).await? {
        tracing::info!(%event_id, "event already started its goal; duplicate");
        return outbox::flush_goal(deps, &existing).await;
    }
    if event_type == metrics::OBSERVED_EVENT {
        // A measurement, not a request for work: store it and let the
        // anomaly check decide whether it means anything.
        let data: serde_json::Value = serde_json::from_str(data_json).unwrap_or_default();
        let obs = metrics::parse_observed(&data, received_ms)
            .map_err(|why| HandlerError::Fail(format!("event {event_id}: {why}")))?;
        let observed = metrics::observe(deps, &env.tenant, &obs).await?;
        tracing::info!(%event_id, metric = %obs.metric, value = obs.value, ?observed, "metric observed");
        return Ok(());
    }
    let data = flatten(data_json);
    let mut reasons = Vec::new();
    let Some(mapping) = deps
        .config
        .mappings
        .iter()
        .filter(|m| m.event == event_type)
        .find(|m| match check(&m.conditions, &data) {
            Ok(()) => true,
            Err(why) => {
                reasons.push(format!("{}: {why}", m.id));
                false
            }
        })
    else {
        tracing::info!(%event_id, %event_type, reasons = ?reasons, "no mapping starts work for this event");
        return Ok(());
    };
    let now_secs = deps.clock.now_ms() / 1000;
    let lease = Write::Lease {
        tenant: env.tenant.clone(),
        kind: "event-cooldown".into(),
        key: mapping.id.clone(),
        holder: event_id.to_string(),
        expires_at: now_secs + u64::from(mapping.cooldown_minutes) * 60,
        now: now_secs,
    };
    match deps
        .store
        .commit(&GoalKey::tenant_only(env.tenant.clone()), vec![lease])
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            let holder = deps
                .store
                .lease_holder(&env.tenant, "event-cooldown", &mapping.id)
                .await?;
            if holder.as_deref() != Some(event_id) {
                tracing::info!(%event_id, mapping = %mapping.id, held_by = ?holder, "mapping is cooling down; event ignored");
                return Ok(());
            }
        }
        Err(e) => return Err(e.into()),
    }
    let (text, pipeline) = match &mapping.target {
        ScheduleTarget::Goal(t) => (render(t, &data), None),
        ScheduleTarget::Pipeline(p) => (
            format!("Respond to {event_type} ({}): {data_json}", mapping.id),
            Some(p.clone()),
        ),
        ScheduleTarget::Job(job) => {
            tracing::warn!(mapping = %mapping.id, job = job.name(), "an event mapping cannot start a job");
            return Ok(());
        }
    };
    tracing::info!(%event_id, mapping = %mapping.id, "event starts a goal");
    let goal = Envelope::new(
        env.tenant.clone(),
        env.goal.clone(),
        Message::GoalSubmitted {
            text,
            pipeline,
            priority: mapping.priority,
            source: Some(GoalSource::Event {
                event_type: event_type.to_string(),
                event_id: event_id.to_string(),
            }),
            submitted_ms: if received_ms > 0 {
                received_ms
            } else {
                deps.clock.now_ms()
            },
        },
    );
    on_goal_submitted::run(deps, &goal).await
}
