//! Sample data for a tenant with no tools connected yet: four weeks of
//! plausible daily values for every metric of metrics.yaml (a weekday
//! rhythm and small day-to-day movement, the same for every tenant), so
//! the dashboard's metrics, the anomaly baselines and the budget-shift
//! proposals have something real to work on. Stored like observed values;
//! no anomaly is raised for them.

use crate::ActionError;
use mktg_boot::metrics::{day_of_ms, point, series};
use mktg_boot::Deps;
use mktg_core::TenantId;
use mktg_store::GoalKey;
use serde::Serialize;

/// Days of sample history, ending yesterday.
pub const DAYS: i64 = 28;

#[derive(Clone, Debug, Serialize)]
pub struct Loaded {
    pub series: usize,
    pub points: usize,
    pub first_day: String,
    pub last_day: String,
}

/// A typical daily value of a metric (per channel for channel metrics).
fn base(metric: &str, dimension: Option<&str>) -> f64 {
    let channel = |google: f64, meta: f64, linkedin: f64| match dimension {
        Some("google_ads") => google,
        Some("meta_ads") => meta,
        Some("linkedin_ads") => linkedin,
        _ => (google + meta + linkedin) / 3.0,
    };
    match metric {
        "conversion_rate" => 3.1,
        "sessions" => 4_200.0,
        "email_open_rate" => 38.0,
        "cpc" => channel(1.8, 0.9, 5.2),
        "spend" => channel(420.0, 260.0, 310.0),
        "revenue" => channel(1_900.0, 700.0, 450.0),
        _ => 100.0,
    }
}

/// Weekdays busier than weekends, and a little movement from day to day.
fn shape(day: i64, salt: usize) -> f64 {
    let weekday = (day + 3).rem_euclid(7); // 0 = Monday
    let week = if weekday >= 5 {
        0.82
    } else {
        1.0 + 0.02 * weekday as f64
    };
    let wiggle = ((day as f64) * 1.7 + salt as f64).sin() * 0.03;
    week + wiggle
}

pub async fn load(deps: &Deps, tenant: &TenantId) -> Result<Loaded, ActionError> {
    let today = day_of_ms(deps.clock.now_ms());
    let days = today - DAYS..today;
    let mut loaded = Loaded {
        series: 0,
        points: 0,
        first_day: mktg_boot::metrics::date_of_day(days.start),
        last_day: mktg_boot::metrics::date_of_day(days.end - 1),
    };
    for (i, m) in deps.config.metrics.list.iter().enumerate() {
        let dims: Vec<Option<&str>> = if m.dimensions.is_empty() {
            vec![None]
        } else {
            m.dimensions.iter().map(|d| Some(d.as_str())).collect()
        };
        for (j, d) in dims.into_iter().enumerate() {
            let name = series(&m.id, d);
            let b = base(&m.id, d);
            // One commit per series (28 writes, under the 100 a
            // transaction allows).
            let writes = days
                .clone()
                .map(|day| {
                    let v = (b * shape(day, i * 7 + j) * 100.0).round() / 100.0;
                    point(deps, tenant, &name, day, v)
                })
                .collect();
            deps.store
                .commit(&GoalKey::tenant_only(tenant.clone()), writes)
                .await?;
            loaded.series += 1;
            loaded.points += DAYS as usize;
        }
    }
    Ok(loaded)
}
