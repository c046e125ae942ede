//! Money: the price of a model call, and the budget gate that runs before
//! every call. Amounts are integer micro-dollars so sums never drift.

use crate::model::{Priority, Usage};

/// US dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

/// Cost of one call in micro-dollars. A price in dollars per million tokens
/// is exactly micro-dollars per token.
pub fn cost_micros(usage: &Usage, prices: &Prices) -> u64 {
    let micros = usage.input_tokens as f64 * prices.input
        + usage.output_tokens as f64 * prices.output
        + usage.cache_write_tokens as f64 * prices.cache_write
        + usage.cache_read_tokens as f64 * prices.cache_read;
    if micros.is_finite() && micros > 0.0 {
        micros.round() as u64
    } else {
        0
    }
}

pub fn usd_to_micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1_000_000.0).round() as u64
    } else {
        0
    }
}

pub fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// One budget level from budget.yaml.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub name: String,
    pub at_percent: f64,
    pub allowed_priorities: Vec<Priority>,
    /// Downgrade every call to this model tier.
    pub force_tier: Option<String>,
}

/// Percentage of the limit spent; any spend against a zero limit is 100 %.
pub fn percent_used(spent_micros: u64, limit_micros: u64) -> f64 {
    if limit_micros == 0 {
        return if spent_micros == 0 { 0.0 } else { 100.0 };
    }
    spent_micros as f64 * 100.0 / limit_micros as f64
}

/// The highest level whose threshold the spend has reached, if any.
pub fn level_for(spent_micros: u64, limit_micros: u64, levels: &[Level]) -> Option<&Level> {
    let pct = percent_used(spent_micros, limit_micros);
    levels.iter().rev().find(|l| pct >= l.at_percent)
}

#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// Call the model; at `level` (if any), on `force_tier` (if any).
    Proceed {
        level: Option<String>,
        force_tier: Option<String>,
    },
    /// Do not call; park the task until the budget is raised.
    Park { level: String, reason: String },
}

/// What the tenant may spend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub month_micros: u64,
    pub goal_micros: u64,
}

/// The budget gate: the month's level decides which priorities may still
/// call and whether calls are downgraded; a goal that used its own budget
/// stops too.
pub fn gate(
    priority: Priority,
    month_spent: u64,
    goal_spent: u64,
    limits: Limits,
    levels: &[Level],
) -> Gate {
    if goal_spent >= limits.goal_micros {
        return Gate::Park {
            level: "goal_exhausted".into(),
            reason: format!(
                "the goal used its budget: ${:.2} of ${:.2}",
                micros_to_usd(goal_spent),
                micros_to_usd(limits.goal_micros)
            ),
        };
    }
    match level_for(month_spent, limits.month_micros, levels) {
        None => Gate::Proceed {
            level: None,
            force_tier: None,
        },
        Some(level) if !level.allowed_priorities.contains(&priority) => Gate::Park {
            level: level.name.clone(),
            reason: format!(
                "budget level {} ({:.1}% of ${:.2} this month) does not allow {priority} work",
                level.name,
                percent_used(month_spent, limits.month_micros),
                micros_to_usd(limits.month_micros)
            ),
        },
        Some(level) => Gate::Proceed {
            level: Some(level.name.clone()),
            force_tier: level.force_tier.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::*;

    fn levels() -> Vec<Level> {
        let l = |name: &str, at: f64, allowed: &[Priority], tier: Option<&str>| Level {
            name: name.into(),
            at_percent: at,
            allowed_priorities: allowed.to_vec(),
            force_tier: tier.map(String::from),
        };
        vec![
            l("warning", 80.0, &[P0, P1, P2], None),
            l("throttle", 90.0, &[P0, P1], None),
            l("critical", 95.0, &[P0], Some("haiku")),
            l("exhausted", 100.0, &[], None),
        ]
    }

    #[test]
    fn a_price_per_million_tokens_is_micro_dollars_per_token() {
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_write_tokens: 2_000,
            cache_read_tokens: 10_000,
        };
        let sonnet = Prices {
            input: 3.0,
            output: 15.0,
            cache_write: 3.75,
            cache_read: 0.3,
        };
        // 3000 + 7500 + 7500 + 3000 micro-dollars.
        assert_eq!(cost_micros(&usage, &sonnet), 21_000);
        assert_eq!(cost_micros(&Usage::default(), &sonnet), 0);
    }

    #[test]
    fn levels_start_exactly_at_their_threshold() {
        let ls = levels();
        let name = |spent| level_for(spent, 1_000_000, &ls).map(|l| l.name.as_str());
        assert_eq!(name(799_999), None);
        assert_eq!(name(800_000), Some("warning"));
        assert_eq!(name(900_000), Some("throttle"));
        assert_eq!(name(950_000), Some("critical"));
        assert_eq!(name(1_000_000), Some("exhausted"));
        assert_eq!(name(5_000_000), Some("exhausted"));
    }

    #[test]
    fn a_zero_budget_with_any_spend_is_exhausted() {
        assert_eq!(percent_used(1, 0), 100.0);
        assert_eq!(percent_used(0, 0), 0.0);
    }

    #[test]
    fn the_gate_throttles_by_priority_and_downgrades_at_critical() {
        let ls = levels();
        let limits = Limits {
            month_micros: 1_000_000,
            goal_micros: 10_000_000,
        };
        assert_eq!(
            gate(P3, 0, 0, limits, &ls),
            Gate::Proceed {
                level: None,
                force_tier: None
            }
        );
        assert!(
            matches!(gate(P3, 850_000, 0, limits, &ls), Gate::Park { ref level, .. } if level == "warning")
        );
        assert_eq!(
            gate(P2, 850_000, 0, limits, &ls),
            Gate::Proceed {
                level: Some("warning".into()),
                force_tier: None
            }
        );
        assert!(
            matches!(gate(P2, 920_000, 0, limits, &ls), Gate::Park { ref level, .. } if level == "throttle")
        );
        assert_eq!(
            gate(P0, 960_000, 0, limits, &ls),
            Gate::Proceed {
                level: Some("critical".into()),
                force_tier: Some("haiku".into())
            }
        );
        assert!(
            matches!(gate(P0, 1_000_000, 0, limits, &ls), Gate::Park { ref level, .. } if level == "exhausted")
        );
    }

    #[test]
    fn a_goal_over_its_own_budget_parks_whatever_the_month_says() {
        let limits = Limits {
            month_micros: 1_000_000_000,
            goal_micros: 50_000,
        };
        match gate(P0, 0, 50_000, limits, &levels()) {
            Gate::Park { level, reason } => {
                assert_eq!(level, "goal_exhausted");
                assert_eq!(reason, "the goal used its budget: $0.05 of $0.05");
            }
            other => panic!("{other:?}"),
        }
    }
}
