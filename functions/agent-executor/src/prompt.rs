//! Prompt assembly. The system prompt is the skill's instructions; the user
//! message carries the goal, the task, the outputs it builds on and, on a
//! revision, the previous output and every piece of reviewer feedback.

use mktg_config::Config;
use mktg_core::{Goal, Output, Task};
use mktg_llm::{CallMeta, ChatMessage, ChatRequest};
use std::fmt::Write as _;

pub fn build_request(
    config: &Config,
    goal: &Goal,
    task: &Task,
    upstream: &[Output],
    previous: Option<&Output>,
    turn: u32,
    model: &str,
) -> ChatRequest {
    let skill = config.skill(&task.skill);
    let instructions = skill.map(|s| s.instructions.as_str()).unwrap_or_default();

    let mut user = String::new();
    let _ = writeln!(user, "<goal>\n{}\n</goal>\n", goal.text.trim());
    let _ = writeln!(
        user,
        "<task>\nYou are the {} specialist on this goal (task {}, plan phase {}, priority {}).\nProduce your deliverable in Markdown exactly as your output format describes.\n</task>\n",
        task.skill,
        task.id,
        task.phase + 1,
        task.priority
    );
    for out in upstream {
        let _ =
            writeln!(
            user,
            "<upstream-output skill=\"{}\" task=\"{}\" revision=\"{}\">\n{}\n</upstream-output>\n",
            out.skill, out.task, out.revision, out.body.trim()
        );
    }
    if task.revision > 0 {
        if let Some(prev) = previous {
            let _ = writeln!(
                user,
                "<previous-output revision=\"{}\">\n{}\n</previous-output>\n",
                prev.revision,
                prev.body.trim()
            );
        }
        let _ = writeln!(user, "<revision-feedback>");
        for fb in &task.feedback {
            let _ = writeln!(
                user,
                "Reviewer {} on revision {}: {}",
                fb.reviewer, fb.revision, fb.summary
            );
            for f in &fb.findings {
                let _ = writeln!(
                    user,
                    "- [{:?}] {}: {} Fix: {}",
                    f.severity, f.section, f.problem, f.fix
                );
            }
        }
        let _ = writeln!(
            user,
            "Revise the previous output to address every finding above; keep what already works.\n</revision-feedback>"
        );
    }
    ChatRequest {
        model: model.to_string(),
        system: instructions.to_string(),
        messages: vec![ChatMessage::user(user)],
        max_tokens: config.models.max_output_tokens,
        tools: vec![],
        meta: CallMeta {
            role: "agent".into(),
            skill: task.skill.to_string(),
            task: task.id.to_string(),
            revision: task.revision,
            turn,
        },
    }
}

/// The model id of a tier for the provider in use (models.yaml).
pub fn model_id(config: &Config, provider: &str, tier: &str) -> String {
    config
        .models
        .tiers
        .get(tier)
        .map(|t| {
            if provider == "bedrock" {
                t.bedrock.clone()
            } else {
                t.anthropic.clone()
            }
        })
        .unwrap_or_else(|| tier.to_string())
}
