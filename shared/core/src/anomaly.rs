//! Anomaly detection over daily metric series: is today's value far from
//! what this metric usually does?
//!
//! The method (documented in ARCHITECTURE.md, "Anomalies"):
//! - The baseline is the observations of the `window_days` days before the
//!   day assessed (the day itself excluded).
//! - With weekly seasonality, only the same weekday is compared when there
//!   are at least `min_points` of them (a Monday is compared with Mondays);
//!   otherwise the whole window is used.
//! - z = (value − mean) / sample standard deviation of the baseline.
//! - An anomaly needs |z| ≥ `z_threshold` **and** |value − mean| ≥ the
//!   metric's `min_change` (absolute, in the metric's unit), so a flat series
//!   does not alarm on noise, and in the direction the metric watches.
//! - Fewer than `min_points` baseline points: no verdict.

use serde::{Deserialize, Serialize};

/// How the baseline is built and when a deviation counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Method {
    pub window_days: u32,
    pub weekly: bool,
    pub min_points: usize,
    pub z_threshold: f64,
}

impl Default for Method {
    fn default() -> Self {
        Method {
            window_days: 28,
            weekly: true,
            min_points: 4,
            z_threshold: 3.0,
        }
    }
}

/// Which deviations a metric cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    Drop,
    Spike,
    Both,
}

/// The direction of a deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Drop,
    Spike,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Drop => "drop",
            Direction::Spike => "spike",
        }
    }
}

/// The numbers behind a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    pub value: f64,
    pub baseline: f64,
    pub sd: f64,
    pub z: f64,
    /// value − baseline.
    pub change: f64,
    /// (value − baseline) / baseline × 100; 0 when the baseline is 0.
    pub change_percent: f64,
    pub direction: Direction,
    /// How many observations the baseline used.
    pub points: usize,
    /// Whether only the same weekday was compared.
    pub seasonal: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Assessment {
    TooFewPoints { have: usize, need: usize },
    Normal(Deviation),
    Anomaly(Deviation),
}

/// Weekday of a day number (days since 1970-01-01, a Thursday): 0 = Monday.
pub fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Assesses `value` observed on `day` against `history` (day, value) pairs.
pub fn assess(
    history: &[(i64, f64)],
    day: i64,
    value: f64,
    method: &Method,
    min_change: f64,
    watch: Watch,
) -> Assessment {
    let need = method.min_points.max(2);
    let window: Vec<(i64, f64)> = history
        .iter()
        .copied()
        .filter(|(d, v)| *d < day && *d >= day - i64::from(method.window_days) && v.is_finite())
        .collect();
    let same_weekday: Vec<f64> = window
        .iter()
        .filter(|(d, _)| weekday(*d) == weekday(day))
        .map(|(_, v)| *v)
        .collect();
    let (points, seasonal) = if method.weekly && same_weekday.len() >= need {
        (same_weekday, true)
    } else {
        (window.iter().map(|(_, v)| *v).collect::<Vec<_>>(), false)
    };
    if points.len() < need {
        return Assessment::TooFewPoints {
            have: points.len(),
            need,
        };
    }
    let (baseline, sd) = mean_sd(&points);
    let change = value - baseline;
    let z = if sd > f64::EPSILON {
        change / sd
    } else if change == 0.0 {
        0.0
    } else {
        change.signum() * f64::INFINITY
    };
    let direction = if change < 0.0 {
        Direction::Drop
    } else {
        Direction::Spike
    };
    let deviation = Deviation {
        value,
        baseline,
        sd,
        z,
        change,
        change_percent: if baseline.abs() > f64::EPSILON {
            change / baseline * 100.0
        } else {
            0.0
        },
        direction,
        points: points.len(),
        seasonal,
    };
    let watched = match watch {
        Watch::Both => true,
        Watch::Drop => direction == Direction::Drop,
        Watch::Spike => direction == Direction::Spike,
    };
    if watched && z.abs() >= method.z_threshold && change.abs() >= min_change {
        Assessment::Anomaly(deviation)
    } else {
        Assessment::Normal(deviation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(days: std::ops::Range<i64>, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        days.map(|d| (d, f(d))).collect()
    }

    #[test]
    fn the_epoch_was_a_thursday() {
        assert_eq!(weekday(0), 3);
        // 2026-11-23 is a Monday: day 20780.
        assert_eq!(weekday(20780), 0);
    }

    #[test]
    fn a_drop_far_outside_the_baseline_is_an_anomaly_with_hand_checked_numbers() {
        // Baseline 3.0, 3.2, 2.8, 3.0 (mean 3.0, sample sd 0.16330); today 2.0.
        let history = vec![(1, 3.0), (2, 3.2), (3, 2.8), (4, 3.0)];
        let m = Method {
            weekly: false,
            ..Method::default()
        };
        let Assessment::Anomaly(d) = assess(&history, 5, 2.0, &m, 0.3, Watch::Both) else {
            panic!("expected an anomaly");
        };
        assert!((d.baseline - 3.0).abs() < 1e-9);
        assert!((d.sd - 0.163_299).abs() < 1e-5);
        assert!((d.z + 6.123_72).abs() < 1e-4);
        assert!((d.change_percent + 33.333).abs() < 1e-2);
        assert_eq!(d.direction, Direction::Drop);
        assert_eq!(d.points, 4);
    }

    #[test]
    fn a_small_absolute_change_is_not_an_anomaly_even_with_a_large_z() {
        let history = vec![(1, 3.0), (2, 3.0), (3, 3.0), (4, 3.01)];
        let m = Method::default();
        assert!(matches!(
            assess(&history, 5, 2.9, &m, 0.3, Watch::Both),
            Assessment::Normal(_)
        ));
    }

    #[test]
    fn a_spike_is_ignored_by_a_metric_that_watches_drops() {
        let history = vec![(1, 3.0), (2, 3.2), (3, 2.8), (4, 3.0)];
        let m = Method::default();
        assert!(matches!(
            assess(&history, 5, 9.0, &m, 0.3, Watch::Drop),
            Assessment::Normal(_)
        ));
        assert!(matches!(
            assess(&history, 5, 9.0, &m, 0.3, Watch::Spike),
            Assessment::Anomaly(_)
        ));
    }

    #[test]
    fn weekly_seasonality_compares_the_same_weekday() {
        // Weekends at 100, weekdays at 1000, over four weeks; a Saturday at
        // 100 is normal though it is far below the overall mean.
        let weekend = |d: i64| weekday(d) >= 5;
        let history = series(20_000..20_028, |d| if weekend(d) { 100.0 } else { 1000.0 });
        let saturday = (20_028..20_035).find(|d| weekday(*d) == 5).unwrap();
        let m = Method::default();
        match assess(&history, saturday, 100.0, &m, 10.0, Watch::Both) {
            Assessment::Normal(d) => assert!(d.seasonal),
            other => panic!("{other:?}"),
        }
        // A Saturday at weekday level is a spike for a Saturday, and
        // unremarkable against the whole window.
        assert!(matches!(
            assess(&history, saturday, 1000.0, &m, 10.0, Watch::Both),
            Assessment::Anomaly(Deviation { seasonal: true, .. })
        ));
        let flat = Method {
            weekly: false,
            ..m.clone()
        };
        assert!(matches!(
            assess(&history, saturday, 1000.0, &flat, 10.0, Watch::Both),
            Assessment::Normal(Deviation {
                seasonal: false,
                ..
            })
        ));
    }

    #[test]
    fn too_little_history_gives_no_verdict_and_the_day_itself_is_excluded() {
        let history = vec![(1, 3.0), (2, 3.0), (5, 1.0)];
        assert_eq!(
            assess(&history, 5, 1.0, &Method::default(), 0.3, Watch::Both),
            Assessment::TooFewPoints { have: 2, need: 4 }
        );
    }

    #[test]
    fn observations_older_than_the_window_are_not_in_the_baseline() {
        let mut history = series(0..10, |_| 50.0);
        history.extend(series(100..110, |_| 3.0));
        let m = Method {
            window_days: 28,
            weekly: false,
            ..Method::default()
        };
        match assess(&history, 110, 3.0, &m, 0.3, Watch::Both) {
            Assessment::Normal(d) => {
                assert_eq!(d.points, 10);
                assert!((d.baseline - 3.0).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }
}
