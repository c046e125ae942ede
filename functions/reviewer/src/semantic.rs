//! The semantic review: a model judges the output against the rubric of its
//! skill's kind and the skill's own instructions, and answers in JSON that
//! is checked here. An answer that fails the check gets one repair round.

use mktg_config::{Config, Rubric};
use mktg_core::review::{Decision, Finding, Severity};
use mktg_core::{Goal, Output, Task};
use mktg_llm::{Block, CallMeta, ChatMessage, ChatRequest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The checked verdict of one semantic review.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub scores: BTreeMap<String, u8>,
    pub overall: u8,
    pub summary: String,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    decision: String,
    scores: BTreeMap<String, serde_json::Value>,
    overall: serde_json::Value,
    summary: String,
    #[serde(default)]
    feedback: Vec<AnswerItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerItem {
    severity: String,
    #[serde(default)]
    quote: String,
    problem: String,
    fix: String,
}

const RULES: &str = "You are the reviewer on an AI marketing team. You judge one deliverable of a specialist against the rubric below and the specialist's own instructions. Be exacting: approve only work a senior marketer would ship as is.";

/// Who reviews at a step, and through which instructions.
pub enum Lens<'a> {
    /// The skill's own bar.
    Own { instructions: &'a str },
    /// Another specialist reviews through their own instructions.
    Peer {
        skill: &'a str,
        instructions: &'a str,
    },
    /// The director's final approval against the goal.
    Director { instructions: &'a str },
}

/// The system prompt: reviewer rules, the rubric, the answer format and the
/// lens's instructions (stable per skill and step, so it caches).
pub fn system_prompt(rubric: &Rubric, pass_overall: u8, lens: &Lens<'_>) -> String {
    let mut s = String::new();
    let intro = match lens {
        Lens::Own { .. } => RULES.to_string(),
        Lens::Peer { skill, .. } => format!(
            "You are the {skill} specialist on an AI marketing team, reviewing a colleague's deliverable before it ships. Judge it against the rubric below and through your own expertise (your instructions follow). Be exacting: approve only what you would sign off on."
        ),
        Lens::Director { .. } => "You are the Director of an AI marketing team, giving the final approval of a deliverable. Judge whether it serves the goal as stated, is consistent with the plan, and is ready to ship, scoring it on the rubric below. Be exacting: approve only work you would put in front of the customer.".to_string(),
    };
    let _ = writeln!(s, "{intro}\n");
    let _ = writeln!(s, "## Rubric: {} — {}", rubric.name, rubric.description);
    for d in &rubric.dimensions {
        let _ = writeln!(s, "\n### {}\n{}", d.name, d.description);
        for (level, text) in &d.levels {
            let _ = writeln!(s, "- {level}: {text}");
        }
    }
    let dims: Vec<String> = rubric
        .dimensions
        .iter()
        .map(|d| format!("\"{}\": <1-10>", d.name))
        .collect();
    let _ = writeln!(
        s,
        "\n## Answer format\nAnswer with one JSON object and nothing else:\n{{\"decision\": \"APPROVE\" | \"REVISE\" | \"REJECT\", \"scores\": {{{}}}, \"overall\": <1-10>, \"summary\": \"<one or two sentences>\", \"feedback\": [{{\"severity\": \"critical\" | \"major\" | \"minor\", \"quote\": \"<the exact passage, copied from the deliverable>\", \"problem\": \"<what is wrong>\", \"fix\": \"<what to change>\"}}]}}\nScore every dimension. APPROVE needs an overall score of at least {pass_overall}. REVISE when the problems can be fixed, and list every one of them; REJECT only when the deliverable misses the task. Each feedback item quotes the passage it is about, exactly.",
        dims.join(", ")
    );
    let (heading, instructions) = match lens {
        Lens::Own { instructions } | Lens::Director { instructions } => (
            "The specialist's instructions (their quality bar is yours)",
            instructions,
        ),
        Lens::Peer { instructions, .. } => ("Your own instructions as a specialist", instructions),
    };
    let _ = writeln!(s, "\n## {heading}\n{}", instructions.trim());
    s
}

pub fn user_prompt(goal: &Goal, task: &Task, output: &Output) -> String {
    format!(
        "<goal>\n{}\n</goal>\n\n<task>\nThe {} specialist's deliverable for this goal (task {}, revision {}).\n</task>\n\n<deliverable>\n{}\n</deliverable>",
        goal.text.trim(),
        task.skill,
        task.id,
        output.revision,
        output.body.trim()
    )
}

pub struct ReviewRequest<'a> {
    pub config: &'a Config,
    pub goal: &'a Goal,
    pub task: &'a Task,
    pub output: &'a Output,
    pub rubric: &'a Rubric,
    pub model: &'a str,
    /// `semantic`, another skill's name, or `director`.
    pub step: &'a str,
    /// 0 for the review, 1 for the repair round.
    pub attempt: u32,
    /// The rejected answer and what was wrong with it (repair round).
    pub repair: Option<(&'a str, &'a [String])>,
}

pub fn build_request(r: ReviewRequest<'_>) -> ChatRequest {
    let instructions_of = |skill: &str| {
        r.config
            .skills
            .iter()
            .find(|(name, _)| name.as_str() == skill)
            .map(|(_, s)| s.instructions.as_str())
            .unwrap_or_default()
    };
    let own = instructions_of(r.task.skill.as_str());
    let lens = match r.step {
        "semantic" => Lens::Own { instructions: own },
        "director" => Lens::Director { instructions: own },
        peer => Lens::Peer {
            skill: peer,
            instructions: instructions_of(peer),
        },
    };
    let mut messages = vec![ChatMessage::user(user_prompt(r.goal, r.task, r.output))];
    if let Some((answer, problems)) = r.repair {
        messages.push(ChatMessage {
            role: "assistant".into(),
            content: vec![Block::Text {
                text: answer.to_string(),
            }],
        });
        messages.push(ChatMessage::user(format!(
            "Your answer does not follow the answer format:\n- {}\nAnswer again with the JSON object only.",
            problems.join("\n- ")
        )));
    }
    ChatRequest {
        model: r.model.to_string(),
        system: system_prompt(r.rubric, r.config.rubrics.pass_overall, &lens),
        messages,
        max_tokens: 2_000,
        tools: vec![],
        meta: CallMeta {
            role: "reviewer".into(),
            skill: r.task.skill.to_string(),
            task: r.task.id.to_string(),
            revision: r.task.revision,
            turn: r.attempt,
            step: r.step.to_string(),
        },
    }
}

fn score(value: &serde_json::Value) -> Option<u8> {
    value
        .as_u64()
        .filter(|n| (1..=10).contains(n))
        .and_then(|n| u8::try_from(n).ok())
}

/// Checks an answer against the format and the rubric. Every problem is
/// listed, for the repair round. An APPROVE below the pass mark becomes a
/// REVISE: the bar is the config's, not the model's.
pub fn parse(
    text: &str,
    rubric: &Rubric,
    pass_overall: u8,
    output: &str,
) -> Result<Verdict, Vec<String>> {
    let Some(json) = mktg_llm::json_object(text) else {
        return Err(vec!["the answer contains no JSON object".into()]);
    };
    let answer: Answer = serde_json::from_str(json)
        .map_err(|e| vec![format!("the JSON object does not match the format: {e}")])?;
    let mut problems = Vec::new();
    let decision = match answer.decision.as_str() {
        "APPROVE" => Decision::Approve,
        "REVISE" => Decision::Revise,
        "REJECT" => Decision::Reject,
        other => {
            problems.push(format!(
                "decision \"{other}\" is not APPROVE, REVISE or REJECT"
            ));
            Decision::Revise
        }
    };
    let mut scores = BTreeMap::new();
    for d in &rubric.dimensions {
        match answer.scores.get(&d.name) {
            None => problems.push(format!("no score for dimension \"{}\"", d.name)),
            Some(v) => match score(v) {
                Some(n) => {
                    scores.insert(d.name.clone(), n);
                }
                None => problems.push(format!(
                    "score for \"{}\" is {v}; use a whole number from 1 to 10",
                    d.name
                )),
            },
        }
    }
    for extra in answer
        .scores
        .keys()
        .filter(|k| !rubric.dimensions.iter().any(|d| &d.name == *k))
    {
        problems.push(format!(
            "\"{extra}\" is not a dimension of the {} rubric",
            rubric.name
        ));
    }
    let overall = score(&answer.overall).unwrap_or_else(|| {
        problems.push(format!(
            "overall is {}; use a whole number from 1 to 10",
            answer.overall
        ));
        0
    });
    if answer.summary.trim().is_empty() {
        problems.push("the summary is empty".into());
    }
    let mut findings = Vec::new();
    for (i, item) in answer.feedback.iter().enumerate() {
        let n = i + 1;
        let severity = match item.severity.as_str() {
            "critical" => Severity::Critical,
            "major" => Severity::Major,
            "minor" => Severity::Minor,
            other => {
                problems.push(format!(
                    "feedback {n}: severity \"{other}\" is not critical, major or minor"
                ));
                Severity::Major
            }
        };
        if item.problem.trim().is_empty() || item.fix.trim().is_empty() {
            problems.push(format!("feedback {n}: needs both a problem and a fix"));
        }
        if item.quote.trim().is_empty() {
            problems.push(format!("feedback {n}: quote the passage it is about"));
        } else if !mktg_core::review::contains_passage(output, &item.quote) {
            problems.push(format!(
                "feedback {n}: the quote \"{}\" is not in the deliverable; copy the passage exactly",
                item.quote.chars().take(80).collect::<String>()
            ));
        }
        findings.push(Finding {
            severity,
            section: "passage".into(),
            problem: item.problem.trim().to_string(),
            fix: item.fix.trim().to_string(),
            quote: Some(item.quote.trim().to_string()),
        });
    }
    if decision != Decision::Approve && findings.is_empty() {
        problems.push(format!(
            "a {decision} needs at least one feedback item saying what to fix"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut summary = answer.summary.trim().to_string();
    let decision = if decision == Decision::Approve && overall < pass_overall {
        summary.push_str(&format!(
            " (overall {overall} is below the pass mark of {pass_overall}, so this is a revision)"
        ));
        Decision::Revise
    } else {
        decision
    };
    Ok(Verdict {
        decision,
        scores,
        overall,
        summary,
        findings,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mktg_config::Dimension;

    fn rubric() -> Rubric {
        let dim = |name: &str| Dimension {
            name: name.into(),
            description: "d".into(),
            levels: [(2, "a"), (5, "b"), (8, "c"), (10, "d")]
                .into_iter()
                .map(|(l, t)| (l, t.to_string()))
                .collect(),
        };
        Rubric {
            name: "copy".into(),
            description: "copy".into(),
            skills: vec!["copywriting".into()],
            dimensions: vec![dim("clarity"), dim("persuasion")],
        }
    }

    const OUTPUT: &str = "# Headline\nSave   four hours a week on invoices.\n\nStart free today.";

    #[test]
    fn a_good_answer_in_a_code_fence_is_accepted() {
        let text = "```json\n{\"decision\":\"APPROVE\",\"scores\":{\"clarity\":8,\"persuasion\":9},\"overall\":8,\"summary\":\"Tight.\",\"feedback\":[{\"severity\":\"minor\",\"quote\":\"Save four hours a week\",\"problem\":\"vague\",\"fix\":\"say which invoices\"}]}\n```";
        let v = parse(text, &rubric(), 7, OUTPUT).unwrap();
        assert_eq!(v.decision, Decision::Approve);
        assert_eq!(v.scores["persuasion"], 9);
        assert_eq!(
            v.findings[0].quote.as_deref(),
            Some("Save four hours a week")
        );
    }

    #[test]
    fn every_problem_is_listed_for_the_repair_round() {
        let text = "{\"decision\":\"MAYBE\",\"scores\":{\"clarity\":11,\"tone\":5},\"overall\":8,\"summary\":\"\",\"feedback\":[{\"severity\":\"huge\",\"quote\":\"not in the text\",\"problem\":\"p\",\"fix\":\"\"}]}";
        let problems = parse(text, &rubric(), 7, OUTPUT).unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "decision \"MAYBE\"",
            "score for \"clarity\" is 11",
            "no score for dimension \"persuasion\"",
            "\"tone\" is not a dimension",
            "summary is empty",
            "severity \"huge\"",
            "needs both a problem and a fix",
            "is not in the deliverable",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert!(parse("no json here", &rubric(), 7, OUTPUT).is_err());
    }

    #[test]
    fn an_approval_below_the_pass_mark_is_a_revision_and_a_revision_needs_feedback() {
        let low = "{\"decision\":\"APPROVE\",\"scores\":{\"clarity\":6,\"persuasion\":6},\"overall\":6,\"summary\":\"ok\",\"feedback\":[]}";
        let v = parse(low, &rubric(), 7, OUTPUT).unwrap();
        assert_eq!(v.decision, Decision::Revise);
        assert!(v.summary.contains("below the pass mark of 7"));
        let bare = "{\"decision\":\"REVISE\",\"scores\":{\"clarity\":6,\"persuasion\":6},\"overall\":6,\"summary\":\"ok\"}";
        let problems = parse(bare, &rubric(), 7, OUTPUT).unwrap_err();
        assert!(problems[0].contains("needs at least one feedback item"));
    }
}
