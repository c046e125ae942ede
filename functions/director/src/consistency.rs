//! The cross-output consistency check: when every task of a goal is
//! approved, the director compares the outputs (claims, offers, prices,
//! names, tone, calls to action) and sends targeted revisions to the tasks
//! that conflict, once, before completing the goal.

use crate::planner;
use mktg_boot::{Deps, HandlerError};
use mktg_core::review::{Feedback, Finding, Severity};
use mktg_core::{Goal, Output, Task, TaskId};
use mktg_llm::{CallMeta, ChatMessage, ChatRequest};
use mktg_store::GoalKey;
use serde::Deserialize;
use std::fmt::Write as _;

pub const SUBJECT: &str = "consistency";
const TIER: &str = "sonnet";

const SYSTEM: &str = "You are the Director of an AI marketing team. Every deliverable of this goal has been approved on its own; before anything ships, compare them with each other. Look only for conflicts between deliverables: different claims or figures, offers, prices, product or plan names, audiences, tone, or calls to action that a reader would notice. Ignore style differences that fit each channel. Answer with JSON only: {\"conflicts\": [{\"revise\": \"<task id to change>\", \"quote\": \"<the exact passage in that task's output>\", \"conflicts_with\": \"<other task id>\", \"problem\": \"<what disagrees>\", \"fix\": \"<what to change>\"}]}. An empty list means they agree. Name the task whose output is wrong, not the one that is right.";

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    conflicts: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    revise: String,
    #[serde(default)]
    quote: String,
    #[serde(default)]
    conflicts_with: String,
    problem: String,
    fix: String,
}

/// What the check found: feedback per task to revise, and a note for the
/// trace.
pub struct Outcome {
    pub revise: Vec<(TaskId, Feedback)>,
    pub note: String,
}

/// Runs the check (its answer checkpointed as turn `consistency`/0).
pub async fn check(
    deps: &Deps,
    key: &GoalKey,
    goal: &Goal,
    tasks: &[Task],
    outputs: &[Output],
) -> Result<Outcome, HandlerError> {
    let latest = |t: &Task| {
        outputs
            .iter()
            .filter(|o| o.task == t.id)
            .max_by_key(|o| o.revision)
    };
    let mut user = format!("<goal>\n{}\n</goal>\n", goal.text.trim());
    for t in tasks {
        if let Some(o) = latest(t) {
            let _ = write!(
                user,
                "\n<output task=\"{}\" skill=\"{}\">\n{}\n</output>\n",
                t.id,
                t.skill,
                o.body.trim()
            );
        }
    }
    let model = deps.config.models.model_id(TIER, deps.model.provider());
    let request = ChatRequest {
        model,
        system: SYSTEM.into(),
        messages: vec![ChatMessage::user(user)],
        max_tokens: 2_000,
        tools: vec![],
        meta: CallMeta {
            role: "director".into(),
            skill: "director".into(),
            task: SUBJECT.into(),
            revision: 0,
            turn: 0,
            step: SUBJECT.into(),
        },
    };
    let text = match planner::turn(deps, key, SUBJECT, 0, &request, true).await {
        Ok(t) => t,
        // A permanent model error must not fail a goal whose every output
        // is approved: complete it, and say the check could not run.
        Err(HandlerError::Fail(why)) => {
            return Ok(Outcome {
                revise: Vec::new(),
                note: format!("consistency check could not run ({why}); completing without it"),
            })
        }
        Err(e) => return Err(e),
    };
    let json = mktg_llm::json_object(&text).unwrap_or(&text);
    let answer: Answer = match serde_json::from_str(json) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Outcome {
                revise: Vec::new(),
                note: format!("consistency check answer unusable ({e}); completing without it"),
            })
        }
    };
    let mut revise: Vec<(TaskId, Feedback)> = Vec::new();
    let mut dropped = 0;
    for item in answer.conflicts {
        let Some(task) = tasks.iter().find(|t| t.id.as_str() == item.revise) else {
            dropped += 1;
            continue;
        };
        let quote_ok = !item.quote.trim().is_empty()
            && latest(task)
                .is_some_and(|o| mktg_core::review::contains_passage(&o.body, &item.quote));
        if !quote_ok {
            dropped += 1;
            continue;
        }
        let finding = Finding {
            severity: Severity::Major,
            section: format!("consistency with {}", item.conflicts_with),
            problem: item.problem.trim().to_string(),
            fix: item.fix.trim().to_string(),
            quote: Some(item.quote.trim().to_string()),
        };
        match revise.iter_mut().find(|(id, _)| id == &task.id) {
            Some((_, fb)) => fb.findings.push(finding),
            None => revise.push((
                task.id.clone(),
                Feedback {
                    revision: task.revision,
                    reviewer: "consistency".into(),
                    summary: format!(
                        "conflicts with {}; change this output to agree",
                        item.conflicts_with
                    ),
                    findings: vec![finding],
                },
            )),
        }
    }
    let note = if revise.is_empty() {
        format!(
            "consistency check: the outputs agree{}",
            if dropped > 0 {
                format!(" ({dropped} unsupported claim(s) of conflict ignored)")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "consistency check: {} conflict(s); revising {}",
            revise.iter().map(|(_, f)| f.findings.len()).sum::<usize>(),
            revise
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Outcome { revise, note })
}
