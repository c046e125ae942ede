//! Self-healing: a failed task is classified by what went wrong and tried
//! again with a strategy that avoids it, a bounded number of times.
//!
//! | failure          | next attempt                                   |
//! |------------------|------------------------------------------------|
//! | tool down        | without the failing servers' tools             |
//! | rate limited     | later (a delay), on another model tier         |
//! | model refused    | on another model tier (the next stronger one)  |
//! | model malformed  | on another model tier                          |
//! | quality rejected | with a narrower scope                          |
//! | turn limit       | with a narrower scope                          |
//! | budget           | never retried: retrying would spend more       |
//! | other            | never retried: a person must look              |

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    ToolDown,
    RateLimited,
    ModelRefused,
    ModelMalformed,
    QualityRejected,
    TurnLimit,
    Budget,
    Other,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::ToolDown => "tool down",
            FailureKind::RateLimited => "rate limited",
            FailureKind::ModelRefused => "model refused",
            FailureKind::ModelMalformed => "model answer malformed",
            FailureKind::QualityRejected => "quality rejected",
            FailureKind::TurnLimit => "turn limit",
            FailureKind::Budget => "budget",
            FailureKind::Other => "other",
        })
    }
}

/// How an attempt differs from the plain one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    /// Model tier to use instead of the skill's.
    #[serde(default)]
    pub tier: Option<String>,
    /// Tool servers this attempt is not offered.
    #[serde(default)]
    pub without_servers: Vec<String>,
    /// Ask for the single most important part of the task only.
    #[serde(default)]
    pub narrow: bool,
    /// Why the previous attempt failed, for the prompt.
    #[serde(default)]
    pub previous_failure: Option<String>,
    /// Tiers earlier attempts failed on; never chosen again.
    #[serde(default)]
    pub tried_tiers: Vec<String>,
}

impl Strategy {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tier {
            parts.push(format!("model tier {t}"));
        }
        if !self.without_servers.is_empty() {
            parts.push(format!("without {}", self.without_servers.join(", ")));
        }
        if self.narrow {
            parts.push("narrower scope".to_string());
        }
        if parts.is_empty() {
            "as before".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One self-healing retry, as recorded on the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealAttempt {
    /// 1 for the first retry.
    pub attempt: u32,
    /// The revision that failed.
    pub failed_revision: u32,
    pub kind: FailureKind,
    pub reason: String,
    pub strategy: Strategy,
    /// Seconds the retry waited before running.
    #[serde(default)]
    pub delay_secs: u32,
    pub at_ms: u64,
}

/// What went wrong, from the failure's text and the servers whose calls
/// failed in the failed revision.
pub fn classify(reason: &str, failing_servers: &[String]) -> FailureKind {
    let r = reason.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&["budget"]) {
        FailureKind::Budget
    } else if has(&["semantic review failed"]) {
        // The reviewer's own answer was unusable: retrying the task would
        // not change that.
        FailureKind::Other
    } else if has(&["429", "rate limit", "rate_limit", "overloaded", "529"]) {
        FailureKind::RateLimited
    } else if has(&["refused", "refusal"]) {
        FailureKind::ModelRefused
    } else if has(&["cannot start or reach tool server", "did not answer within"])
        || (has(&["turn limit"]) && !failing_servers.is_empty())
    {
        FailureKind::ToolDown
    } else if has(&["turn limit"]) {
        FailureKind::TurnLimit
    } else if has(&[
        "broke the format",
        "not valid json",
        "malformed",
        "truncated",
    ]) {
        FailureKind::ModelMalformed
    } else if has(&["rejected"]) {
        FailureKind::QualityRejected
    } else {
        FailureKind::Other
    }
}

/// The tier to try instead of `current`: the nearest stronger one of
/// `by_strength` (weakest first) not in `tried`, else the nearest weaker.
pub fn other_tier(current: &str, by_strength: &[String], tried: &[String]) -> Option<String> {
    let i = by_strength.iter().position(|t| t == current)?;
    let fresh = |t: &&String| t.as_str() != current && !tried.contains(t);
    by_strength[i + 1..]
        .iter()
        .find(fresh)
        .or_else(|| by_strength[..i].iter().rev().find(fresh))
        .cloned()
}

/// The next attempt's strategy, or `None` when this failure is not healed.
pub fn plan(
    kind: FailureKind,
    reason: &str,
    previous: &Strategy,
    current_tier: &str,
    tiers_by_strength: &[String],
    failing_servers: &[String],
) -> Option<Strategy> {
    let mut next = previous.clone();
    next.previous_failure = Some(reason.chars().take(400).collect());
    match kind {
        FailureKind::ToolDown => {
            let fresh: Vec<&String> = failing_servers
                .iter()
                .filter(|s| !next.without_servers.contains(s))
                .collect();
            if fresh.is_empty() {
                // The tools are already gone: ask for less instead.
                if next.narrow {
                    return None;
                }
                next.narrow = true;
            } else {
                next.without_servers.extend(fresh.into_iter().cloned());
            }
        }
        FailureKind::RateLimited | FailureKind::ModelRefused | FailureKind::ModelMalformed => {
            if !next.tried_tiers.iter().any(|t| t == current_tier) {
                next.tried_tiers.push(current_tier.to_string());
            }
            next.tier = Some(other_tier(
                current_tier,
                tiers_by_strength,
                &next.tried_tiers,
            )?);
        }
        FailureKind::QualityRejected | FailureKind::TurnLimit => {
            if next.narrow {
                return None;
            }
            next.narrow = true;
        }
        FailureKind::Budget | FailureKind::Other => return None,
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<String> {
        vec!["haiku".into(), "sonnet".into(), "opus".into()]
    }

    #[test]
    fn failures_are_classified_from_their_text_and_failing_tools() {
        let none: Vec<String> = vec![];
        let ga4 = vec!["ga4".to_string()];
        let cases = [
            (
                "anthropic returned 429 too many requests",
                &none,
                FailureKind::RateLimited,
            ),
            (
                "the model refused to answer (stop_reason refusal)",
                &none,
                FailureKind::ModelRefused,
            ),
            (
                "cannot start or reach tool server \"ga4\": gone",
                &none,
                FailureKind::ToolDown,
            ),
            (
                "turn limit reached: 8 model turns",
                &ga4,
                FailureKind::ToolDown,
            ),
            (
                "turn limit reached: 8 model turns",
                &none,
                FailureKind::TurnLimit,
            ),
            (
                "the model's answer was truncated: not valid JSON",
                &none,
                FailureKind::ModelMalformed,
            ),
            (
                "the semantic review failed: the reviewer's answer broke the format twice",
                &none,
                FailureKind::Other,
            ),
            (
                "rejected: the copy invents a discount",
                &none,
                FailureKind::QualityRejected,
            ),
            ("monthly budget exhausted", &none, FailureKind::Budget),
            ("task t3 does not exist", &none, FailureKind::Other),
        ];
        for (reason, servers, want) in cases {
            assert_eq!(classify(reason, servers), want, "{reason}");
        }
    }

    #[test]
    fn each_kind_gets_its_adjusted_strategy() {
        let plain = Strategy::default();
        let s = plan(
            FailureKind::ToolDown,
            "x",
            &plain,
            "sonnet",
            &tiers(),
            &["ga4".into()],
        )
        .unwrap();
        assert_eq!(s.without_servers, vec!["ga4".to_string()]);
        let s = plan(
            FailureKind::ModelRefused,
            "x",
            &plain,
            "sonnet",
            &tiers(),
            &[],
        )
        .unwrap();
        assert_eq!(s.tier.as_deref(), Some("opus"));
        let s = plan(FailureKind::RateLimited, "x", &plain, "opus", &tiers(), &[]).unwrap();
        assert_eq!(
            s.tier.as_deref(),
            Some("sonnet"),
            "the strongest falls back"
        );
        let s = plan(
            FailureKind::QualityRejected,
            "x",
            &plain,
            "sonnet",
            &tiers(),
            &[],
        )
        .unwrap();
        assert!(s.narrow);
        assert_eq!(s.previous_failure.as_deref(), Some("x"));
        assert_eq!(
            plan(
                FailureKind::QualityRejected,
                "x",
                &s,
                "sonnet",
                &tiers(),
                &[]
            ),
            None
        );
        assert_eq!(
            plan(FailureKind::Budget, "x", &plain, "sonnet", &tiers(), &[]),
            None
        );
        assert_eq!(
            plan(FailureKind::Other, "x", &plain, "sonnet", &tiers(), &[]),
            None
        );
        assert_eq!(
            plan(
                FailureKind::ModelRefused,
                "x",
                &plain,
                "unknown",
                &tiers(),
                &[]
            ),
            None
        );
        // A tier that failed is not tried again: opus → sonnet → haiku → none.
        let s1 = plan(
            FailureKind::ModelRefused,
            "x",
            &plain,
            "opus",
            &tiers(),
            &[],
        )
        .unwrap();
        assert_eq!(s1.tier.as_deref(), Some("sonnet"));
        let s2 = plan(FailureKind::ModelRefused, "x", &s1, "sonnet", &tiers(), &[]).unwrap();
        assert_eq!(s2.tier.as_deref(), Some("haiku"));
        assert_eq!(
            plan(FailureKind::ModelRefused, "x", &s2, "haiku", &tiers(), &[]),
            None
        );
    }

    #[test]
    fn a_tool_already_left_out_narrows_the_scope_instead() {
        let without = Strategy {
            without_servers: vec!["ga4".into()],
            ..Strategy::default()
        };
        let s = plan(
            FailureKind::ToolDown,
            "x",
            &without,
            "sonnet",
            &tiers(),
            &["ga4".into()],
        )
        .unwrap();
        assert!(s.narrow);
        assert_eq!(s.without_servers, vec!["ga4".to_string()]);
    }
}
