//! Reviews and the structural check every output passes before anything
//! more expensive looks at it.

use crate::ids::TaskId;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Approve,
    Revise,
    Reject,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Approve => "APPROVE",
            Decision::Revise => "REVISE",
            Decision::Reject => "REJECT",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
}

/// One problem a reviewer found: where, how bad, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The section or passage concerned.
    pub section: String,
    pub problem: String,
    pub fix: String,
    /// The exact passage the reviewer quotes, when it quotes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
}

/// Feedback carried into the next revision of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub revision: u32,
    pub reviewer: String,
    pub summary: String,
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub task: TaskId,
    pub revision: u32,
    pub reviewer: String,
    pub decision: Decision,
    pub summary: String,
    pub findings: Vec<Finding>,
    /// Score 1-10 per rubric dimension (semantic reviews only).
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, u8>,
    /// Overall score 1-10 (semantic reviews only).
    #[serde(default)]
    pub overall: Option<u8>,
    pub at_ms: u64,
}

/// What the structural check needs to know about a skill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StructuralRules {
    pub required_sections: Vec<String>,
    pub min_words: usize,
}

/// Counts whitespace-separated words, ignoring Markdown markers on their own.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(|c| c.is_alphanumeric()))
        .count()
}

/// Whether `text` contains `passage`, comparing runs of whitespace as one
/// space (how a quoted passage is checked against an output).
pub fn contains_passage(text: &str, passage: &str) -> bool {
    let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    squash(text).contains(&squash(passage))
}

/// Headings of a Markdown text (any level), trimmed, without the `#`s.
pub fn headings(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let trimmed = line.trim_start();
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
                Some(
                    trimmed[hashes..]
                        .trim()
                        .trim_end_matches('#')
                        .trim()
                        .to_string(),
                )
            } else {
                None
            }
        })
        .collect()
}

/// The structural review: empty output is rejected; a missing required
/// section or too few words asks for a revision; otherwise it approves.
pub fn structural(text: &str, rules: &StructuralRules) -> (Decision, Vec<Finding>) {
    let mut findings = Vec::new();
    if text.trim().is_empty() {
        findings.push(Finding {
            severity: Severity::Critical,
            section: "entire output".into(),
            problem: "the output is empty".into(),
            fix: "produce the deliverable described in the skill's output format".into(),
            quote: None,
        });
        return (Decision::Reject, findings);
    }
    let found: Vec<String> = headings(text).iter().map(|h| h.to_lowercase()).collect();
    for section in &rules.required_sections {
        let wanted = section.to_lowercase();
        if !found
            .iter()
            .any(|h| h == &wanted || h.starts_with(&format!("{wanted}:")))
        {
            findings.push(Finding {
                severity: Severity::Major,
                section: section.clone(),
                problem: format!("required section \"{section}\" is missing"),
                fix: format!("add a \"## {section}\" section as the skill's output format asks"),
                quote: None,
            });
        }
    }
    let words = word_count(text);
    if words < rules.min_words {
        findings.push(Finding {
            severity: Severity::Major,
            section: "entire output".into(),
            problem: format!("{words} words, below the minimum of {}", rules.min_words),
            fix: format!("expand the substance to at least {} words", rules.min_words),
            quote: None,
        });
    }
    if found.is_empty() {
        findings.push(Finding {
            severity: Severity::Minor,
            section: "entire output".into(),
            problem: "no Markdown headings".into(),
            fix: "structure the answer with headings".into(),
            quote: None,
        });
    }
    let decision = if findings.iter().any(|f| f.severity <= Severity::Major) {
        Decision::Revise
    } else {
        Decision::Approve
    };
    (decision, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sections: &[&str], min_words: usize) -> StructuralRules {
        StructuralRules {
            required_sections: sections.iter().map(|s| s.to_string()).collect(),
            min_words,
        }
    }

    #[test]
    fn empty_output_is_rejected() {
        let (d, f) = structural("  \n", &rules(&[], 0));
        assert_eq!(d, Decision::Reject);
        assert_eq!(f[0].severity, Severity::Critical);
    }

    #[test]
    fn a_missing_section_asks_for_a_revision_naming_it() {
        let text = "# Audit\n## Findings\nword ".to_string() + &"word ".repeat(50);
        let (d, f) = structural(&text, &rules(&["Findings", "Recommendations"], 10));
        assert_eq!(d, Decision::Revise);
        assert_eq!(f.len(), 1);
        assert!(f[0].problem.contains("Recommendations"));
    }

    #[test]
    fn too_few_words_asks_for_a_revision_with_the_count() {
        let (d, f) = structural("# T\n## Ideas\none two three", &rules(&["Ideas"], 200));
        assert_eq!(d, Decision::Revise);
        assert!(f[0].problem.starts_with("5 words"), "{}", f[0].problem);
    }

    #[test]
    fn sections_match_case_insensitively_at_any_level() {
        let text = format!("# X\n### tracking plan\n{}", "event ".repeat(30));
        let (d, _) = structural(&text, &rules(&["Tracking Plan"], 20));
        assert_eq!(d, Decision::Approve);
    }

    #[test]
    fn no_headings_is_only_a_minor_finding() {
        let (d, f) = structural(&"word ".repeat(20), &rules(&[], 10));
        assert_eq!(d, Decision::Approve);
        assert_eq!(f[0].severity, Severity::Minor);
    }

    #[test]
    fn hashes_without_a_space_are_not_headings() {
        assert_eq!(headings("#hashtag\n## Real ##\n"), vec!["Real".to_string()]);
    }
}
