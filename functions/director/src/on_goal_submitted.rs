//! A new goal: choose its plan (pipeline template, or category → template or
//! routes), create the goal and all its tasks in one commit, release the
//! tasks with no dependencies.

use mktg_boot::{outbox, Deps, HandlerError};
use mktg_core::plan::{infer_category, releasable, tasks_for_steps, Step};
use mktg_core::{Envelope, Goal, GoalSource, GoalStatus, Message, Outgoing, TaskStatus, Trace};
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
    let cfg = &deps.config;

    let (category, pipeline_name, steps, mut priority) = match pipeline {
        Some(name) => match cfg.pipeline(name) {
            Some(p) => (
                "pipeline".to_string(),
                Some(p.name.clone()),
                p.steps.clone(),
                p.priority,
            ),
            None => {
                let known: Vec<&str> = cfg.pipelines.iter().map(|p| p.name.as_str()).collect();
                let reason = format!(
                    "unknown pipeline template \"{name}\"; known templates: {}",
                    known.join(", ")
                );
                return record_unplannable(deps, env, &key, text, reason, now).await;
            }
        },
        None => {
            let category = infer_category(text, &cfg.category_rules(), &cfg.fallback_category);
            match cfg.steps_for_category(&category) {
                Some((p, steps)) => {
                    let prio = p.map(|p| p.priority).unwrap_or_default();
                    (category, p.map(|p| p.name.clone()), steps, prio)
                }
                None => {
                    let reason = format!("category \"{category}\" has no plan in routing.yaml");
                    return record_unplannable(deps, env, &key, text, reason, now).await;
                }
            }
        }
    };
    // An explicit priority on the message wins over the template's default.
    if *asked_priority != mktg_core::Priority::default() {
        priority = *asked_priority;
    }
    if let Some(unknown) = unknown_skill(deps, &steps) {
        let reason = format!("plan names skill \"{unknown}\" which is not in skills.yaml");
        return record_unplannable(deps, env, &key, text, reason, now).await;
    }

    let mut tasks = tasks_for_steps(&env.tenant, &env.goal, &steps, priority, now);
    let mut traces = vec![Trace {
        at_ms: now,
        subject: "goal".into(),
        from: "-".into(),
        to: GoalStatus::Running.to_string(),
        note: format!(
            "planned {} tasks in {} steps from {}",
            tasks.len(),
            steps.len(),
            pipeline_name.as_deref().map_or_else(
                || format!("the {category} routes"),
                |p| format!("template \"{p}\"")
            )
        ),
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
