//! A new goal: choose its plan (pipeline template, or category → template or
//! routes), create the goal and all its tasks in one commit, release the
//! tasks with no dependencies.

use crate::planner;
use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::plan::{infer_category, releasable, tasks_for_dag, tasks_for_steps, Step};
use mktg_core::{
    Envelope, Goal, GoalSource, GoalStatus, Message, Outgoing, Priority, Task, TaskStatus, Trace,
};
use mktg_store::{GoalKey, StoreError, Write};

pub async fn run(deps: &Deps, env: &Envelope) -> Result<(), HandlerError> {
    let Message::GoalSubmitted {
        text,
        pipeline,
        priority: asked_priority,
        source,
        submitted_ms,
    } = &env.message
    else {
        return Err(HandlerError::Fail("not a GoalSubmitted message".into()));
    };
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    if let Some(existing) = deps.store.goal(&key).await? {
        tracing::info!("goal already exists; duplicate submission");
        return outbox::flush_goal(deps, &existing).await;
    }
    let now = deps.clock.now_ms();
    let choice =
        match choose_plan(deps, &key, text, pipeline.as_deref(), *asked_priority, true).await? {
            Ok(choice) => choice,
            Err(reason) => return record_unplannable(deps, env, &key, text, reason, now).await,
        };
    let PlanChoice {
        category,
        pipeline: pipeline_name,
        mut tasks,
        priority,
        note,
    } = choice;
    let mut traces = vec![Trace {
        at_ms: now,
        subject: "goal".into(),
        from: "-".into(),
        to: GoalStatus::Running.to_string(),
        note,
    }];
    let ready: Vec<_> = releasable(&tasks)
        .into_iter()
        .map(|t| t.id.clone())
        .collect();
    let mut out = Vec::new();
    for task in tasks.iter_mut().filter(|t| ready.contains(&t.id)) {
        traces.push(task.transition(TaskStatus::Assigned, now, "no dependencies; released")?);
        out.push(Outgoing::Message(Envelope::new(
            env.tenant.clone(),
            env.goal.clone(),
            Message::TaskReady {
                task: task.id.clone(),
                revision: 0,
            },
        )));
    }
    let goal = Goal {
        tenant: env.tenant.clone(),
        id: env.goal.clone(),
        text: text.clone(),
        category,
        pipeline: pipeline_name,
        priority,
        source: source.clone().unwrap_or(GoalSource::User),
        status: GoalStatus::Running,
        version: 1,
        created_ms: *submitted_ms,
        updated_ms: now,
        reason: None,
        outbox: out,
        consistency_checked: false,
    };
    let mut writes = vec![Write::NewGoal(goal.clone())];
    writes.extend(tasks.into_iter().map(Write::NewTask));
    writes.extend(traces.into_iter().map(Write::Trace));
    match deps.store.commit(&key, writes).await {
        Ok(()) => {
            tracing::info!(tasks = ready.len(), "goal planned");
            outbox::flush_goal(deps, &goal).await
        }
        Err(StoreError::Conflict(_)) => {
            // A concurrent delivery planned it first.
            match deps.store.goal(&key).await? {
                Some(existing) => outbox::flush_goal(deps, &existing).await,
                None => Err(HandlerError::Retry(
                    "goal commit conflicted but no goal exists".into(),
                )),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The plan chosen for a goal, before anything is stored.
pub struct PlanChoice {
    pub category: String,
    pub pipeline: Option<String>,
    pub tasks: Vec<Task>,
    pub priority: Priority,
    /// How the plan was made, for the trace.
    pub note: String,
}

/// Chooses a goal's plan: the named template; else the model's plan (when
/// planning with the model is on) validated against the registry; else the
/// category's template or routes. The inner `Err` is why no plan exists.
/// `record` is false for dry runs, which store nothing.
pub async fn choose_plan(
    deps: &Deps,
    key: &GoalKey,
    text: &str,
    pipeline: Option<&str>,
    asked_priority: Priority,
    record: bool,
) -> Result<Result<PlanChoice, String>, HandlerError> {
    let cfg = &deps.config;
    let now = deps.clock.now_ms();
    let explicit = |p: Priority| {
        if asked_priority != Priority::default() {
            asked_priority
        } else {
            p
        }
    };
    if let Some(name) = pipeline {
        let Some(p) = cfg.pipeline(name) else {
            let known: Vec<&str> = cfg.pipelines.iter().map(|p| p.name.as_str()).collect();
            return Ok(Err(format!(
                "unknown pipeline template \"{name}\"; known templates: {}",
                known.join(", ")
            )));
        };
        if let Some(unknown) = unknown_skill(deps, &p.steps) {
            return Ok(Err(format!(
                "plan names skill \"{unknown}\" which is not in skills.yaml"
            )));
        }
        let priority = explicit(p.priority);
        return Ok(Ok(PlanChoice {
            category: "pipeline".into(),
            pipeline: Some(p.name.clone()),
            tasks: tasks_for_steps(&key.tenant, &key.goal, &p.steps, priority, now),
            priority,
            note: format!(
                "planned {} steps from template \"{}\"",
                p.steps.len(),
                p.name
            ),
        }));
    }
    let category = infer_category(text, &cfg.category_rules(), &cfg.fallback_category);
    let mut fallback_note = None;
    if planner::enabled(deps) {
        match planner::plan(deps, key, text, &category, record).await? {
            planner::Planned::Plan {
                tasks,
                rationale,
                repaired,
            } => {
                let priority = explicit(Priority::default());
                return Ok(Ok(PlanChoice {
                    category,
                    pipeline: None,
                    tasks: tasks_for_dag(&key.tenant, &key.goal, &tasks, priority, now),
                    priority,
                    note: format!(
                        "planned {} tasks with the model{}: {}",
                        tasks.len(),
                        if repaired {
                            " (after one repair round)"
                        } else {
                            ""
                        },
                        rationale.trim()
                    ),
                }));
            }
            planner::Planned::Fallback { reason } => fallback_note = Some(reason),
        }
    }
    let Some((p, steps)) = cfg.steps_for_category(&category) else {
        return Ok(Err(format!(
            "category \"{category}\" has no plan in routing.yaml"
        )));
    };
    if let Some(unknown) = unknown_skill(deps, &steps) {
        return Ok(Err(format!(
            "plan names skill \"{unknown}\" which is not in skills.yaml"
        )));
    }
    let priority = explicit(p.map(|p| p.priority).unwrap_or_default());
    let source = p.map_or_else(
        || format!("the {category} routes"),
        |p| format!("template \"{}\"", p.name),
    );
    let why = match fallback_note {
        Some(reason) => format!("; model planning fell back: {reason}"),
        None if !planner::enabled(deps) => {
            " (routing rules; model planning is off for this provider)".into()
        }
        None => String::new(),
    };
    Ok(Ok(PlanChoice {
        category,
        pipeline: p.map(|p| p.name.clone()),
        tasks: tasks_for_steps(&key.tenant, &key.goal, &steps, priority, now),
        priority,
        note: format!("planned {} steps from {source}{why}", steps.len()),
    }))
}

fn unknown_skill(deps: &Deps, steps: &[Step]) -> Option<String> {
    steps
        .iter()
        .flat_map(|s| s.skills.iter())
        .find(|s| deps.config.skill(s).is_none())
        .map(|s| s.to_string())
}

/// A goal that cannot be planned is stored as FAILED with the reason, so the
/// user sees why instead of the message vanishing.
async fn record_unplannable(
    deps: &Deps,
    env: &Envelope,
    key: &GoalKey,
    text: &str,
    reason: String,
    now: u64,
) -> Result<(), HandlerError> {
    tracing::warn!(%reason, "goal cannot be planned");
    let event = mktg_core::DomainEvent::new(
        "goal.failed",
        env.tenant.clone(),
        env.goal.clone(),
        None,
        "FAILED",
        Some(reason.clone()),
        now,
    );
    let goal = Goal {
        tenant: env.tenant.clone(),
        id: env.goal.clone(),
        text: text.to_string(),
        category: "unplanned".into(),
        pipeline: None,
        priority: mktg_core::Priority::default(),
        source: GoalSource::User,
        status: GoalStatus::Failed,
        version: 1,
        created_ms: now,
        updated_ms: now,
        reason: Some(reason.clone()),
        outbox: vec![Outgoing::Event(event)],
        consistency_checked: false,
    };
    let trace = Trace {
        at_ms: now,
        subject: "goal".into(),
        from: "-".into(),
        to: "FAILED".into(),
        note: reason,
    };
    match deps
        .store
        .commit(key, vec![Write::NewGoal(goal.clone()), Write::Trace(trace)])
        .await
    {
        Ok(()) => outbox::flush_goal(deps, &goal).await,
        Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
