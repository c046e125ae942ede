//! Planning a goal with the model. The system prompt is generated from the
//! live registry (squads, skills, what each builds on, templates as hints);
//! the answer is a JSON plan that is validated against the registry. An
//! invalid plan gets one repair round with the validation errors; after
//! that the caller falls back to the routing plan and records why.
//!
//! Each model turn is checkpointed (task `plan`) and its cost recorded with
//! it, so a redelivered GoalSubmitted never pays for planning twice.

use mktg_boot::checkpoint::{self, CallAt};
use mktg_boot::{Deps, HandlerError};
use mktg_config::Config;
use mktg_core::plan::{validate_dag, PlannedTask};
use mktg_core::{SkillName, TaskId};
use mktg_llm::{Block, CallMeta, ChatMessage, ChatRequest};
use mktg_store::GoalKey;
use serde::Deserialize;
use std::fmt::Write as _;

/// The most tasks a model plan may have.
pub const MAX_PLAN_TASKS: usize = 12;
/// The checkpoint "task" of planning turns.
pub const PLAN_TASK: &str = "plan";
const PLAN_TIER: &str = "opus";

/// What the planning produced.
pub enum Planned {
    /// A valid plan and the model's rationale.
    Plan {
        tasks: Vec<PlannedTask>,
        rationale: String,
        repaired: bool,
    },
    /// No usable plan; the reason goes into the trace.
    Fallback { reason: String },
}

/// Whether this goal is planned by the model at all.
pub fn enabled(deps: &Deps) -> bool {
    match deps.config.models.plan_with_model.as_str() {
        "always" => true,
        "never" => false,
        _ => !deps.model.is_scripted(),
    }
}

/// The director's system prompt, generated from the registry.
pub fn system_prompt(config: &Config) -> String {
    let mut s = String::new();
    let agents = config
        .skills
        .values()
        .filter(|k| k.squad != "foundation")
        .count();
    let _ = writeln!(
        s,
        "You are the marketing director of a team of {agents} specialist agents in {} squads, plus a foundation skill that keeps the product's marketing context. You turn a goal into a small plan of tasks for these skills.\n",
        config.squads.len() - usize::from(config.squads.contains_key("foundation"))
    );
    let _ = writeln!(s, "# The team");
    for (squad, about) in &config.squads {
        let _ = writeln!(s, "\n## {squad}: {about}");
        for skill in config.skills.values().filter(|k| &k.squad == squad) {
            let inputs = if skill.inputs_from.is_empty() {
                String::new()
            } else {
                format!(
                    " Builds on: {}.",
                    skill
                        .inputs_from
                        .iter()
                        .map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(s, "- {}: {}{inputs}", skill.name, skill.description);
        }
    }
    let _ = writeln!(s, "\n# Proven pipelines (hints, not rules)");
    for p in &config.pipelines {
        let steps: Vec<String> = p
            .steps
            .iter()
            .map(|st| {
                st.skills
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect();
        let _ = writeln!(s, "- {}: {}", p.name, steps.join(" -> "));
    }
    let _ = writeln!(
        s,
        "\n# Rules\n\
- Use only the skills listed above, each for a task it is made for; 1 to {MAX_PLAN_TASKS} tasks.\n\
- Strategy work comes before the creative work it frames; measurement comes last.\n\
- A task may depend on an earlier task only when it builds on that output: the skill lists it under \"Builds on\", the earlier task is strategy or the foundation, or the later task measures.\n\
- Independent tasks have no dependency between them so they run in parallel.\n\
- No cycles.\n\n\
# Answer\n\
Answer with one JSON object and nothing else:\n\
{{\"rationale\": \"<two sentences on why this plan reaches the goal>\", \"tasks\": [{{\"id\": \"<short id>\", \"skill\": \"<skill name>\", \"depends_on\": [\"<ids of earlier tasks>\"], \"why\": \"<one sentence>\"}}]}}"
    );
    s
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    rationale: String,
    tasks: Vec<TaskJson>,
}

#[derive(Deserialize)]
struct TaskJson {
    id: String,
    skill: String,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// Parses the model's answer (code fences and prose around the object are
/// tolerated) and validates it; errors are worded for the model.
pub fn parse_plan(
    config: &Config,
    answer: &str,
) -> Result<(Vec<PlannedTask>, String), Vec<String>> {
    let Some(json) = mktg_llm::json_object(answer) else {
        return Err(vec!["the answer contains no JSON object".into()]);
    };
    let plan: PlanJson = serde_json::from_str(json)
        .map_err(|e| vec![format!("the JSON does not match the required shape: {e}")])?;
    let mut errors = Vec::new();
    let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
    let mut tasks = Vec::new();
    for (i, t) in plan.tasks.iter().enumerate() {
        if ids[..i].contains(&t.id.as_str()) {
            errors.push(format!("task id \"{}\" is used twice", t.id));
        }
        let mut deps = Vec::new();
        for d in &t.depends_on {
            match ids.iter().position(|x| x == d) {
                Some(p) => deps.push(p),
                None => errors.push(format!(
                    "task \"{}\" depends on unknown task id \"{d}\"",
                    t.id
                )),
            }
        }
        tasks.push(PlannedTask {
            skill: SkillName::new(t.skill.clone()),
            deps,
        });
    }
    errors.extend(validate_dag(
        &tasks,
        |s| config.skill(s).is_some(),
        |dep, consumer| config.dependency_allowed(dep, consumer),
        MAX_PLAN_TASKS,
    ));
    if errors.is_empty() {
        Ok((tasks, plan.rationale))
    } else {
        Err(errors)
    }
}

/// One planning turn: reuse its checkpoint, or call the model and
/// checkpoint the answer with its cost. `record` is false for dry runs.
/// One director model call, checkpointed under the pseudo-task `subject`
/// (`plan`, `consistency`) and costed once; with `record` false (scripted
/// planning) nothing is stored.
pub async fn turn(
    deps: &Deps,
    key: &GoalKey,
    subject: &str,
    n: u32,
    request: &ChatRequest,
    record: bool,
) -> Result<String, HandlerError> {
    let plan_task = TaskId::new(subject);
    if record {
        if let Some(t) = deps.store.turn(key, &plan_task, 0, n).await? {
            return Ok(t.text);
        }
    }
    if !record {
        return Ok(deps.model.complete(request).await?.text);
    }
    let at = CallAt {
        task: plan_task,
        revision: 0,
        n,
        tier: PLAN_TIER,
        skill: "director",
    };
    Ok(
        checkpoint::call_and_record(deps, key, at, request, Vec::new())
            .await?
            .text,
    )
}

/// Asks the model for a plan, with one repair round.
pub async fn plan(
    deps: &Deps,
    key: &GoalKey,
    goal_text: &str,
    category: &str,
    record: bool,
) -> Result<Planned, HandlerError> {
    let model = deps
        .config
        .models
        .model_id(PLAN_TIER, deps.model.provider());
    let mut request = ChatRequest {
        model,
        system: system_prompt(&deps.config),
        messages: vec![ChatMessage::user(format!(
            "<goal>\n{}\n</goal>\nThe goal reads as a \"{category}\" goal. Plan it.",
            goal_text.trim()
        ))],
        max_tokens: 2048,
        tools: vec![],
        meta: CallMeta {
            role: "director".into(),
            skill: "director".into(),
            task: PLAN_TASK.into(),
            revision: 0,
            turn: 0,
            step: String::new(),
        },
    };
    let first = match turn(deps, key, PLAN_TASK, 0, &request, record).await {
        Ok(t) => t,
        Err(HandlerError::Fail(why)) => {
            return Ok(Planned::Fallback {
                reason: format!("the model could not plan: {why}"),
            })
        }
        Err(e) => return Err(e),
    };
    let errors = match parse_plan(&deps.config, &first) {
        Ok((tasks, rationale)) => {
            return Ok(Planned::Plan {
                tasks,
                rationale,
                repaired: false,
            })
        }
        Err(errors) => errors,
    };
    request.messages.push(ChatMessage {
        role: "assistant".into(),
        content: vec![Block::Text { text: first }],
    });
    request.messages.push(ChatMessage::user(format!(
        "The plan is invalid:\n- {}\nAnswer again with the corrected JSON object only.",
        errors.join("\n- ")
    )));
    request.meta.turn = 1;
    let second = match turn(deps, key, PLAN_TASK, 1, &request, record).await {
        Ok(t) => t,
        Err(HandlerError::Fail(why)) => {
            return Ok(Planned::Fallback {
                reason: format!("the model could not repair its plan: {why}"),
            })
        }
        Err(e) => return Err(e),
    };
    match parse_plan(&deps.config, &second) {
        Ok((tasks, rationale)) => Ok(Planned::Plan {
            tasks,
            rationale,
            repaired: true,
        }),
        Err(again) => Ok(Planned::Fallback {
            reason: format!(
                "the model's plan was invalid twice ({}); used the routing plan",
                again.join("; ")
            ),
        }),
    }
}
