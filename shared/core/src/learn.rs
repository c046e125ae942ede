//! Learnings: what worked, distilled from approved outputs, reused in later
//! prompts of the same skill, and validated against a control group.

use crate::ids::{GoalId, SkillName, TaskId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Learning {
    /// `{goal}.{task}.{n}`: one distillation can never store it twice.
    pub id: String,
    pub skill: SkillName,
    pub text: String,
    /// Why it is believed: the review that backs it.
    pub evidence: String,
    /// The overall review score of the output it came from.
    pub score: u8,
    pub source_goal: GoalId,
    pub source_task: TaskId,
    pub created_ms: u64,
    /// Set when validation showed it does not help; kept, never deleted.
    #[serde(default)]
    pub pruned: Option<String>,
}

/// One task revision's exposure: the learnings its prompt carried (none for
/// the control group), and the review score it then got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearningUse {
    pub goal: GoalId,
    pub task: TaskId,
    pub revision: u32,
    pub control: bool,
    pub learnings: Vec<String>,
    #[serde(default)]
    pub score: Option<u8>,
    pub at_ms: u64,
}

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(str::to_lowercase)
        .collect()
}

/// Word-set overlap (Jaccard) of two texts, 0.0 to 1.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// The most relevant live learnings for a prompt: ranked by score (what
/// the output earned), recency (30-day half-life) and similarity to the
/// goal, at most `k`.
pub fn select<'a>(
    learnings: &'a [Learning],
    goal_text: &str,
    now_ms: u64,
    k: usize,
) -> Vec<&'a Learning> {
    let mut ranked: Vec<(f64, &Learning)> = learnings
        .iter()
        .filter(|l| l.pruned.is_none())
        .map(|l| {
            let age_days = now_ms.saturating_sub(l.created_ms) as f64 / 86_400_000.0;
            let recency = 0.5f64.powf(age_days / 30.0);
            let rank =
                f64::from(l.score) / 10.0 + 0.5 * recency + 2.0 * similarity(&l.text, goal_text);
            (rank, l)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    ranked.into_iter().take(k).map(|(_, l)| l).collect()
}

/// Whether a task revision runs without learnings, as the control group:
/// a stable hash of its identity, so a redelivery decides the same way.
pub fn in_control(key: &str, control_percent: u8) -> bool {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 100) < u64::from(control_percent)
}

/// Mean score with and without a learning, and a 95 % confidence interval
/// of the difference (normal approximation, Welch's standard error).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub n_with: usize,
    pub n_without: usize,
    pub mean_with: f64,
    pub mean_without: f64,
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var)
}

/// `None` until both groups have at least two samples.
pub fn compare(with: &[f64], without: &[f64]) -> Option<Comparison> {
    if with.len() < 2 || without.len() < 2 {
        return None;
    }
    let (m1, v1) = mean_var(with);
    let (m0, v0) = mean_var(without);
    let se = (v1 / with.len() as f64 + v0 / without.len() as f64).sqrt();
    let diff = m1 - m0;
    Some(Comparison {
        n_with: with.len(),
        n_without: without.len(),
        mean_with: m1,
        mean_without: m0,
        diff,
        ci_low: diff - 1.96 * se,
        ci_high: diff + 1.96 * se,
    })
}

/// The pruning rule: after `min_samples` uses, a learning whose outputs do
/// not score higher than the control group's (the difference is not
/// positive) is pruned. `None` keeps it.
pub fn prune_reason(c: &Comparison, min_samples: usize) -> Option<String> {
    if c.n_with < min_samples || c.diff > 0.0 {
        return None;
    }
    Some(format!(
        "after {} uses it scored {:.2} vs {:.2} without learnings (difference {:+.2}, 95% CI {:+.2} to {:+.2})",
        c.n_with, c.mean_with, c.mean_without, c.diff, c.ci_low, c.ci_high
    ))
}

/// A lesson that held across goals: validated learnings of one skill, from
/// at least two different goals, that say nearly the same thing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// The id of its best-scored learning: stable while that one lives.
    pub id: String,
    pub skill: SkillName,
    /// The best-scored learning's wording.
    pub text: String,
    pub goals: Vec<GoalId>,
    pub learnings: Vec<String>,
    pub mean_score: f64,
    /// Mean review score with any of its learnings minus the control
    /// group's, when both groups have samples.
    #[serde(default)]
    pub diff: Option<f64>,
}

/// How similar two learnings must be (word overlap) to count as one idea.
pub const PATTERN_SIMILARITY: f64 = 0.35;
/// From how many goals an idea must come to be a pattern.
pub const PATTERN_MIN_GOALS: usize = 2;

/// What goes into a prompt: the lead learning of each pattern first (ideas
/// that held across goals), then the best of the rest by `select`, at most
/// `k` in all.
pub fn select_with_patterns<'a>(
    learnings: &'a [Learning],
    uses: &[LearningUse],
    pass: u8,
    goal_text: &str,
    now_ms: u64,
    k: usize,
) -> Vec<&'a Learning> {
    let leads: Vec<String> = patterns(learnings, uses, pass, PATTERN_SIMILARITY, PATTERN_MIN_GOALS)
        .into_iter()
        .map(|p| p.id)
        .collect();
    let mut chosen: Vec<&Learning> = leads
        .iter()
        .filter_map(|id| learnings.iter().find(|l| &l.id == id))
        .take(k)
        .collect();
    for l in select(learnings, goal_text, now_ms, learnings.len()) {
        if chosen.len() >= k {
            break;
        }
        if !chosen.iter().any(|c| c.id == l.id) {
            chosen.push(l);
        }
    }
    chosen
}

/// Review scores of the control group's revisions (run without learnings).
pub fn control_scores(uses: &[LearningUse]) -> Vec<f64> {
    uses.iter()
        .filter(|u| u.control)
        .filter_map(|u| u.score.map(f64::from))
        .collect()
}

/// Review scores of the revisions whose prompt carried a learning that
/// `carried` accepts.
pub fn scores_with(uses: &[LearningUse], carried: impl Fn(&str) -> bool) -> Vec<f64> {
    uses.iter()
        .filter(|u| !u.control && u.learnings.iter().any(|id| carried(id)))
        .filter_map(|u| u.score.map(f64::from))
        .collect()
}

/// Whether a learning counts as validated: not pruned, backed by a passing
/// review, and not shown to do worse than the control group.
pub fn validated(l: &Learning, uses: &[LearningUse], pass: u8) -> bool {
    validated_against(l, uses, &control_scores(uses), pass)
}

fn validated_against(l: &Learning, uses: &[LearningUse], control: &[f64], pass: u8) -> bool {
    if l.pruned.is_some() || l.score < pass {
        return false;
    }
    let with = scores_with(uses, |id| id == l.id);
    compare(&with, control).is_none_or(|c| c.diff > 0.0)
}

/// Groups validated learnings that say nearly the same thing (word overlap
/// at least `min_similarity` with the group's best) and keeps the groups
/// that come from at least `min_goals` goals, best supported first.
pub fn patterns(
    learnings: &[Learning],
    uses: &[LearningUse],
    pass: u8,
    min_similarity: f64,
    min_goals: usize,
) -> Vec<Pattern> {
    let control = control_scores(uses);
    let mut valid: Vec<&Learning> = learnings
        .iter()
        .filter(|l| validated_against(l, uses, &control, pass))
        .collect();
    valid.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.created_ms.cmp(&b.created_ms))
            .then(a.id.cmp(&b.id))
    });
    let mut groups: Vec<Vec<&Learning>> = Vec::new();
    for l in valid {
        match groups
            .iter_mut()
            .find(|g| similarity(&g[0].text, &l.text) >= min_similarity)
        {
            Some(g) => g.push(l),
            None => groups.push(vec![l]),
        }
    }
    let mut out: Vec<Pattern> = groups
        .into_iter()
        .filter_map(|g| {
            let goals: BTreeSet<GoalId> = g.iter().map(|l| l.source_goal.clone()).collect();
            if goals.len() < min_goals {
                return None;
            }
            let ids: Vec<String> = g.iter().map(|l| l.id.clone()).collect();
            let with = scores_with(uses, |id| ids.iter().any(|i| i == id));
            Some(Pattern {
                id: g[0].id.clone(),
                skill: g[0].skill.clone(),
                text: g[0].text.clone(),
                goals: goals.into_iter().collect(),
                mean_score: g.iter().map(|l| f64::from(l.score)).sum::<f64>() / g.len() as f64,
                learnings: ids,
                diff: compare(&with, &control).map(|c| c.diff),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.goals
            .len()
            .cmp(&a.goals.len())
            .then(b.mean_score.total_cmp(&a.mean_score))
            .then(a.id.cmp(&b.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_goal(id: &str, goal: &str, text: &str, score: u8) -> Learning {
        Learning {
            source_goal: goal.into(),
            ..learning(id, text, score, 1)
        }
    }

    #[test]
    fn patterns_group_similar_validated_learnings_from_different_goals() {
        let ls = vec![
            from_goal(
                "a",
                "g1",
                "Lead headlines with the customer's measurable outcome",
                9,
            ),
            from_goal(
                "b",
                "g2",
                "Lead the headline with a measurable customer outcome",
                8,
            ),
            from_goal(
                "c",
                "g2",
                "Keep paragraphs under three sentences for scanning",
                9,
            ),
            // Same idea, but only one goal: no pattern.
            from_goal(
                "d",
                "g3",
                "Keep paragraphs under three sentences for scanning readers",
                8,
            ),
            // Similar but not validated (low score).
            from_goal(
                "e",
                "g4",
                "Lead headlines with the customer's measurable outcome",
                5,
            ),
        ];
        let mut pruned = from_goal(
            "f",
            "g5",
            "Lead headlines with measurable customer outcome",
            9,
        );
        pruned.pruned = Some("did not help".into());
        let mut all = ls.clone();
        all.push(pruned);
        let ps = patterns(&all, &[], 7, 0.35, 2);
        assert_eq!(ps.len(), 2, "{ps:?}");
        let headline = ps.iter().find(|p| p.id == "a").expect("headline pattern");
        assert_eq!(headline.learnings, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(headline.goals.len(), 2);
        assert!((headline.mean_score - 8.5).abs() < 1e-9);
        let paragraphs = ps.iter().find(|p| p.id == "c").expect("paragraph pattern");
        assert_eq!(paragraphs.goals.len(), 2);
        assert!(patterns(&all, &[], 7, 0.35, 3).is_empty());
        // In a prompt, the pattern leads come first, then the best others.
        let chosen: Vec<&str> = select_with_patterns(&all, &[], 7, "", 1, 3)
            .into_iter()
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(&chosen[..2], ["a", "c"]);
        assert_eq!(chosen.len(), 3);
    }

    #[test]
    fn a_learning_that_did_worse_than_control_is_not_validated() {
        let l = from_goal("a", "g1", "Use numbers", 9);
        let used = |score: u8, control: bool, n: u32| LearningUse {
            goal: "g".into(),
            task: "t".into(),
            revision: n,
            control,
            learnings: if control { vec![] } else { vec!["a".into()] },
            score: Some(score),
            at_ms: 0,
        };
        let worse = vec![
            used(5, false, 0),
            used(6, false, 1),
            used(8, true, 2),
            used(9, true, 3),
        ];
        assert!(!validated(&l, &worse, 7));
        let better = vec![
            used(9, false, 0),
            used(8, false, 1),
            used(6, true, 2),
            used(5, true, 3),
        ];
        assert!(validated(&l, &better, 7));
        assert!(validated(&l, &[], 7));
    }

    fn learning(id: &str, text: &str, score: u8, created_ms: u64) -> Learning {
        Learning {
            id: id.into(),
            skill: "copywriting".into(),
            text: text.into(),
            evidence: String::new(),
            score,
            source_goal: "g".into(),
            source_task: "t".into(),
            created_ms,
            pruned: None,
        }
    }

    #[test]
    fn the_comparison_matches_a_hand_computed_interval() {
        // with: mean 8, sample variance 1; without: mean 6, variance 1.
        let with = [7.0, 8.0, 9.0];
        let without = [5.0, 6.0, 7.0];
        let c = compare(&with, &without).unwrap_or_else(|| panic!("enough samples"));
        assert_eq!((c.n_with, c.n_without), (3, 3));
        assert!((c.diff - 2.0).abs() < 1e-9);
        // se = sqrt(1/3 + 1/3) = 0.816497; 1.96 * se = 1.600334
        assert!((c.ci_low - 0.399_666).abs() < 1e-5, "{}", c.ci_low);
        assert!((c.ci_high - 3.600_334).abs() < 1e-5, "{}", c.ci_high);
        assert!(compare(&[8.0], &without).is_none());
    }

    #[test]
    fn a_learning_that_does_not_help_is_pruned_only_after_enough_samples() {
        let same = compare(&[7.0, 7.0, 8.0, 6.0], &[7.0, 8.0, 6.0, 7.0])
            .unwrap_or_else(|| panic!("samples"));
        assert!(
            prune_reason(&same, 10).is_none(),
            "too few samples to judge"
        );
        let reason = prune_reason(&same, 4).unwrap_or_default();
        assert!(reason.contains("after 4 uses"), "{reason}");
        let helps = compare(&[8.0, 9.0, 8.0, 9.0], &[7.0, 7.0, 6.0, 7.0])
            .unwrap_or_else(|| panic!("samples"));
        assert!(prune_reason(&helps, 4).is_none());
    }

    #[test]
    fn selection_prefers_high_scores_recent_and_similar_and_skips_pruned() {
        let day = 86_400_000;
        let mut pruned = learning("p", "invoice headline numbers", 10, 100 * day);
        pruned.pruned = Some("no help".into());
        let all = vec![
            learning("old", "generic advice about tone", 8, 0),
            learning(
                "fit",
                "lead invoice pages with the hours saved",
                8,
                90 * day,
            ),
            learning(
                "low",
                "lead invoice pages with the hours saved too",
                3,
                90 * day,
            ),
            pruned,
        ];
        let picked: Vec<&str> = select(&all, "Write the invoice page", 100 * day, 2)
            .iter()
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(picked, ["fit", "low"]);
    }

    #[test]
    fn control_assignment_is_stable_and_near_its_share() {
        assert_eq!(in_control("g1.t1.0", 20), in_control("g1.t1.0", 20));
        let n = (0..1000)
            .filter(|i| in_control(&format!("g.{i}.0"), 20))
            .count();
        assert!(
            (150..=250).contains(&n),
            "{n} of 1000 in a 20 % control group"
        );
        assert!(!in_control("anything", 0));
    }
}
