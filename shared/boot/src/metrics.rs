//! Metric observations and the anomaly check (method in
//! `mktg_core::anomaly`). An observation is stored per tenant, series and
//! day (a later value of the same day replaces it); each new value is
//! assessed against the stored baseline, and a significant change is put on
//! the bus as an `analytics.anomaly` event, which the incoming-events rule
//! delivers to the director like a webhook.
//!
//! Once: the anomaly's event id is derived from the series and the day, and
//! the director derives the goal id from the event id, so a value observed
//! twice (a redelivered webhook, a re-run job) starts at most one goal.

use crate::{Deps, HandlerError};
use chrono::{NaiveDate, TimeZone, Utc};
use mktg_core::anomaly::{assess, Assessment, Deviation};
use mktg_core::TenantId;
use mktg_store::{GoalKey, Write};
use serde_json::{json, Value};

/// The EventBridge source of events the system measured itself.
pub const MEASURE_SOURCE: &str = "mktg.measure";
/// The event type of an anomaly.
pub const ANOMALY_EVENT: &str = "analytics.anomaly";
/// The event type of a pushed observation.
pub const OBSERVED_EVENT: &str = "metric.observed";
/// How long observations are kept beyond the baseline window, in days.
const KEEP_EXTRA_DAYS: i64 = 60;

/// One value of one series on one day.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub metric: String,
    pub dimension: Option<String>,
    /// Days since 1970-01-01.
    pub day: i64,
    pub value: f64,
}

/// What observing a value found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    TooFewPoints {
        have: usize,
        need: usize,
    },
    Normal(Deviation),
    /// An anomaly, put on the bus as the event with this id.
    Anomaly {
        event_id: String,
        deviation: Deviation,
    },
}

/// `metric` or `metric.dimension`: one stored series.
pub fn series(metric: &str, dimension: Option<&str>) -> String {
    match dimension {
        Some(d) => format!("{metric}.{d}"),
        None => metric.to_string(),
    }
}

fn collection(series: &str) -> String {
    format!("metric#{series}")
}

pub fn day_of_ms(ms: u64) -> i64 {
    i64::try_from(ms / 86_400_000).unwrap_or(0)
}

pub fn date_of_day(day: i64) -> String {
    Utc.timestamp_opt(day * 86_400, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn day_of_date(date: &str) -> Option<i64> {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((d - epoch).num_days())
}

/// Reads an observation from the data of a `metric.observed` event:
/// `{"metric": "...", "dimension": "...", "value": 1.2, "day": "2026-11-25"}`
/// (`day` defaults to the day it was received).
pub fn parse_observed(data: &Value, received_ms: u64) -> Result<Observation, String> {
    let metric = data
        .get("metric")
        .and_then(Value::as_str)
        .ok_or("metric.observed needs a \"metric\" string")?;
    let value = data
        .get("value")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or("metric.observed needs a numeric \"value\"")?;
    let day = match data.get("day") {
        None => day_of_ms(received_ms),
        Some(Value::String(s)) => day_of_date(s)
            .ok_or_else(|| format!("\"day\" \"{s}\" is not a date like 2026-11-25"))?,
        Some(other) => return Err(format!("\"day\" must be a date string, not {other}")),
    };
    let dimension = match data.get("dimension") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("\"dimension\" must be a string, not {other}")),
    };
    Ok(Observation {
        metric: metric.to_string(),
        dimension,
        day,
        value,
    })
}

/// The write that stores one day's value of a series, kept for the
/// baseline window and 60 days more.
pub fn point(deps: &Deps, tenant: &TenantId, series: &str, day: i64, value: f64) -> Write {
    let keep_until =
        (day + i64::from(deps.config.metrics.method.window_days) + KEEP_EXTRA_DAYS) * 86_400;
    Write::Doc {
        tenant: tenant.clone(),
        collection: collection(series),
        id: date_of_day(day),
        body: json!({"day": day, "value": value, "at_ms": deps.clock.now_ms()}),
        new_only: false,
        ttl: u64::try_from(keep_until).ok(),
    }
}

/// The stored values of a series: (day, value), oldest first.
pub async fn history(
    deps: &Deps,
    tenant: &TenantId,
    series: &str,
) -> Result<Vec<(i64, f64)>, HandlerError> {
    Ok(deps
        .store
        .docs(tenant, &collection(series))
        .await?
        .into_iter()
        .filter_map(|(_, body)| Some((body.get("day")?.as_i64()?, body.get("value")?.as_f64()?)))
        .collect())
}

/// Stores `obs`, assesses it, and puts an anomaly on the bus.
pub async fn observe(
    deps: &Deps,
    tenant: &TenantId,
    obs: &Observation,
) -> Result<Observed, HandlerError> {
    let metric = deps.config.metrics.get(&obs.metric).ok_or_else(|| {
        let known: Vec<&str> = deps
            .config
            .metrics
            .list
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        HandlerError::Fail(format!(
            "unknown metric \"{}\" (metrics.yaml defines: {})",
            obs.metric,
            known.join(", ")
        ))
    })?;
    match (&obs.dimension, metric.dimensions.is_empty()) {
        (Some(d), _) if !metric.dimensions.contains(d) => {
            return Err(HandlerError::Fail(format!(
                "metric \"{}\" has no dimension \"{d}\" (it has: {})",
                metric.id,
                metric.dimensions.join(", ")
            )))
        }
        (None, false) => {
            return Err(HandlerError::Fail(format!(
                "metric \"{}\" needs a dimension (one of: {})",
                metric.id,
                metric.dimensions.join(", ")
            )))
        }
        _ => {}
    }
    let series = series(&metric.id, obs.dimension.as_deref());
    let past = history(deps, tenant, &series).await?;
    let method = &deps.config.metrics.method;
    let date = date_of_day(obs.day);
    deps.store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![point(deps, tenant, &series, obs.day, obs.value)],
        )
        .await?;
    let verdict = assess(
        &past,
        obs.day,
        obs.value,
        method,
        metric.min_change,
        metric.watch,
    );
    let deviation = match verdict {
        Assessment::TooFewPoints { have, need } => {
            tracing::info!(%series, have, need, "too little history for a verdict yet");
            return Ok(Observed::TooFewPoints { have, need });
        }
        Assessment::Normal(d) => return Ok(Observed::Normal(d)),
        Assessment::Anomaly(d) => d,
    };
    let event_id = format!("anomaly:{series}:{date}");
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let mut data = json!({
        "metric": metric.id,
        "name": metric.name,
        "unit": metric.unit,
        "day": date,
        "direction": deviation.direction.as_str(),
        "value": round(deviation.value),
        "baseline": round(deviation.baseline),
        "z": round(deviation.z.clamp(-1e6, 1e6)),
        "changePercent": round(deviation.change_percent),
        "percentageDrop": round((-deviation.change_percent).max(0.0)),
        "points": deviation.points,
        "seasonal": deviation.seasonal,
    });
    if let Some(d) = &obs.dimension {
        data["dimension"] = json!(d);
    }
    let detail = json!({
        "id": event_id,
        "tenant": tenant,
        "source": "measure",
        "type": ANOMALY_EVENT,
        "received_ms": deps.clock.now_ms(),
        "data": data,
    });
    deps.bus
        .put_external(MEASURE_SOURCE, ANOMALY_EVENT, &detail.to_string())
        .await
        .map_err(|e| HandlerError::Retry(format!("could not put the anomaly on the bus: {e}")))?;
    tracing::warn!(%series, %date, z = deviation.z, change_percent = deviation.change_percent, "anomaly");
    Ok(Observed::Anomaly {
        event_id,
        deviation,
    })
}

/// The number at `pointer` in a tool's result text (JSON), or a plain
/// number when the whole text is one.
pub fn extract_value(text: &str, pointer: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    if let Ok(v) = trimmed.parse::<f64>() {
        return Ok(v);
    }
    let json: Value = serde_json::from_str(trimmed).map_err(|e| {
        format!(
            "the tool's result is not JSON ({e}): {}",
            trimmed.chars().take(120).collect::<String>()
        )
    })?;
    let at = json
        .pointer(pointer)
        .ok_or_else(|| format!("the tool's result has nothing at {pointer}"))?;
    match at {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{pointer} is not a number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{pointer} is \"{s}\", not a number")),
        other => Err(format!("{pointer} is {other}, not a number")),
    }
}

/// What the check-metrics job did, per series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckReport {
    pub observed: Vec<(String, f64)>,
    pub anomalies: Vec<String>,
    /// Series and why they could not be read; the others still ran.
    pub errors: Vec<(String, String)>,
}

/// Pulls every metric with a source through its read tool, for `day`, and
/// observes each value. One failing source does not stop the others.
pub async fn check(deps: &Deps, tenant: &TenantId, day: i64) -> Result<CheckReport, HandlerError> {
    let mut report = CheckReport::default();
    let date = date_of_day(day);
    // A source on a server the tenant connected is read with its own
    // credentials; a catalogue server it did not connect is not read.
    let own = crate::tenant::load(deps, tenant).await?;
    for metric in &deps.config.metrics.list {
        let Some(source) = &metric.source else {
            continue;
        };
        let dims: Vec<Option<&str>> = if metric.dimensions.is_empty() {
            vec![None]
        } else {
            metric.dimensions.iter().map(|d| Some(d.as_str())).collect()
        };
        for dim in dims {
            let series = series(&metric.id, dim);
            let (server, tool) = source.tool.split_once("__").unwrap_or((&source.tool, ""));
            let mut args = source.arguments.to_string();
            args = args.replace("{dimension}", dim.unwrap_or_default());
            args = args.replace("{date}", &date);
            let arguments: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
            // The tenant's route: its own connection, or tools.yaml's
            // server; a catalogue server it did not connect, or a server
            // it turned off, is not read.
            let route = match own.route(deps, tenant, server).await {
                Ok(Some(r)) if r.enabled => r,
                Ok(_) => {
                    tracing::debug!(%series, server, "server not in use by the tenant; not read");
                    continue;
                }
                Err(why) => {
                    report.errors.push((series, why.to_string()));
                    continue;
                }
            };
            let timeout = route.server.policy(tool).timeout_ms;
            let key = format!("metrics:{tenant}:{series}:{date}");
            let called = deps
                .tools
                .invoke_as(
                    route.server,
                    route.creds.as_ref(),
                    tool,
                    arguments,
                    &key,
                    timeout,
                )
                .await;
            let value = match called {
                Ok(out) if out.is_error => Err(format!(
                    "{} answered with an error: {}",
                    source.tool, out.text
                )),
                Ok(out) => extract_value(&out.text, &source.value),
                Err(e) => Err(e.to_string()),
            };
            let value = match value {
                Ok(v) => v,
                Err(why) => {
                    tracing::warn!(%series, %why, "metric not read");
                    report.errors.push((series, why));
                    continue;
                }
            };
            let obs = Observation {
                metric: metric.id.clone(),
                dimension: dim.map(String::from),
                day,
                value,
            };
            if let Observed::Anomaly { event_id, .. } = observe(deps, tenant, &obs).await? {
                report.anomalies.push(event_id);
            }
            report.observed.push((series, value));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_day_numbers_round_trip() {
        assert_eq!(day_of_date("1970-01-02"), Some(1));
        assert_eq!(date_of_day(20_782), "2026-11-25");
        assert_eq!(day_of_date("2026-11-25"), Some(20_782));
        assert_eq!(day_of_date("25/11/2026"), None);
    }

    #[test]
    fn observed_events_are_read_with_clear_errors() {
        let ok = parse_observed(
            &json!({"metric": "cpc", "dimension": "meta_ads", "value": 1.5, "day": "2026-11-25"}),
            0,
        )
        .unwrap();
        assert_eq!(ok.day, 20_782);
        assert_eq!(ok.dimension.as_deref(), Some("meta_ads"));
        assert_eq!(
            parse_observed(&json!({"metric": "cpc", "value": 2}), 86_400_000 * 3)
                .unwrap()
                .day,
            3
        );
        assert!(parse_observed(&json!({"value": 1}), 0)
            .unwrap_err()
            .contains("\"metric\""));
        assert!(parse_observed(&json!({"metric": "x", "value": "high"}), 0)
            .unwrap_err()
            .contains("numeric"));
        assert!(
            parse_observed(&json!({"metric": "x", "value": 1, "day": "soon"}), 0)
                .unwrap_err()
                .contains("soon")
        );
    }

    #[test]
    fn values_are_found_by_pointer_or_as_plain_numbers() {
        assert_eq!(extract_value(" 2.5 ", "/x"), Ok(2.5));
        assert_eq!(
            extract_value(r#"{"rows":[{"value":"3.25"}]}"#, "/rows/0/value"),
            Ok(3.25)
        );
        assert!(extract_value(r#"{"rows":[]}"#, "/rows/0/value")
            .unwrap_err()
            .contains("nothing at /rows/0/value"));
        assert!(extract_value("not json", "/v")
            .unwrap_err()
            .contains("not JSON"));
    }
}
