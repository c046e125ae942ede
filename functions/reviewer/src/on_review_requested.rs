//! Review one revision: structural checks first (cheap, from skills.yaml);
//! when they pass and the skill has a rubric, a semantic review by the model.
//! Each review is written once (`REV#{task}#{rev}#{reviewer}`), each model
//! answer is checkpointed before it is used, and the decision is sent after.
//! A redelivery while the task is still in review re-sends the stored
//! decision (the director ignores a duplicate); once the director has moved
//! on, a redelivery is acknowledged and does nothing.

use crate::semantic::{self, ReviewRequest, Verdict};
use mktg_boot::checkpoint::{self, CallAt};
use mktg_boot::{budget, outbox, Deps, HandlerError};
use mktg_core::cost::Gate;
use mktg_core::review::structural;
use mktg_core::{
    Decision, Envelope, Message, Outgoing, Output, Review, Task, TaskId, TaskStatus, Turn,
};
use mktg_store::{GoalKey, GoalState, StoreError, Write};

pub const STRUCTURAL: &str = "structural";
pub const SEMANTIC: &str = "semantic";
/// The model tier reviews run on (falls back to the skill's tier).
pub const REVIEW_TIER: &str = "sonnet";

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
    step: Option<u32>,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    let Some(task) = deps.store.task(&key, task_id).await? else {
        return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
    };
    if task.status != TaskStatus::InReview || task.revision != revision {
        tracing::info!(status = %task.status, "review already acted on; duplicate");
        return outbox::flush_task(deps, &task).await;
    }
    let state = deps.store.goal_state(&key).await?;
    let Some(output) = state
        .outputs
        .iter()
        .find(|o| &o.task == task_id && o.revision == revision)
        .cloned()
    else {
        return Err(HandlerError::Fail(format!(
            "task {task_id} has no output for revision {revision}"
        )));
    };
    let stored = |reviewer: &str, rev: u32| {
        state
            .reviews
            .iter()
            .find(|r| &r.task == task_id && r.revision == rev && r.reviewer == reviewer)
            .cloned()
    };
    let steps = deps.config.review_steps(&task.skill);
    let index = match step {
        Some(i) => i as usize,
        None => {
            // (1) Structural, always first.
            let structural_review = match stored(STRUCTURAL, revision) {
                Some(r) => r,
                None => write_once(deps, &key, structural_review(deps, &task, &output)?).await?,
            };
            if structural_review.decision != Decision::Approve || steps.is_empty() {
                return decide(deps, env, task_id, revision, structural_review.decision).await;
            }
            first_step(deps, &task, &steps, &stored)
        }
    };
    let Some(name) = steps.get(index) else {
        return Err(HandlerError::Fail(format!(
            "review step {index} does not exist for {} (steps: {})",
            task.skill,
            steps.join(", ")
        )));
    };

    // (2) This step of the chain: its review is written once.
    let decision = match stored(name, revision) {
        Some(r) => r.decision,
        None => match semantic_review(deps, &key, &state, &task, &output, name).await? {
            Semantic::Verdict(v) => {
                let review = Review {
                    task: task_id.clone(),
                    revision,
                    reviewer: name.clone(),
                    decision: v.decision,
                    summary: v.summary,
                    findings: v.findings,
                    scores: v.scores,
                    overall: Some(v.overall),
                    at_ms: deps.clock.now_ms(),
                };
                write_once(deps, &key, review).await?.decision
            }
            Semantic::Skipped(why) => {
                // Recorded, so `mktg status` shows the output was not scored.
                tracing::warn!(%why, step = %name, "review step skipped; the structural decision stands");
                let review = Review {
                    task: task_id.clone(),
                    revision,
                    reviewer: name.clone(),
                    decision: Decision::Approve,
                    summary: format!("not run: {why}; the structural decision stands"),
                    findings: Vec::new(),
                    scores: Default::default(),
                    overall: None,
                    at_ms: deps.clock.now_ms(),
                };
                write_once(deps, &key, review).await?.decision
            }
            Semantic::Unusable(problems) => {
                return fail_review(deps, &key, &task, problems).await;
            }
        },
    };
    // (3) Approved and more steps to go: the next step is its own message.
    if decision == Decision::Approve && index + 1 < steps.len() {
        tracing::info!(step = %name, next = %steps[index + 1], "review step approved; next step");
        deps.bus
            .send(&Envelope::new(
                env.tenant.clone(),
                env.goal.clone(),
                Message::ReviewStep {
                    task: task_id.clone(),
                    revision,
                    step: u32::try_from(index + 1).unwrap_or(u32::MAX),
                },
            ))
            .await?;
        return Ok(());
    }
    crate::learnings::after_decision(deps, &key, &task, &output, decision).await?;
    decide(deps, env, task_id, revision, decision).await
}

/// Where a revision's chain starts: the first step, or (with
/// `restart: failed`) the step that sent the previous revision back.
fn first_step(
    deps: &Deps,
    task: &Task,
    steps: &[String],
    stored: &dyn Fn(&str, u32) -> Option<Review>,
) -> usize {
    let restart_at_failed = deps
        .config
        .rubrics
        .chains
        .get(&task.skill)
        .is_some_and(|c| c.restart_at_failed);
    if !restart_at_failed || task.revision == 0 {
        return 0;
    }
    steps
        .iter()
        .position(|s| stored(s, task.revision - 1).is_some_and(|r| r.decision != Decision::Approve))
        .unwrap_or(0)
}

async fn decide(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
    decision: Decision,
) -> Result<(), HandlerError> {
    tracing::info!(%decision, "reviewed");
    deps.bus
        .send(&Envelope::new(
            env.tenant.clone(),
            env.goal.clone(),
            Message::ReviewDecided {
                task: task_id.clone(),
                revision,
                decision,
            },
        ))
        .await?;
    Ok(())
}

fn structural_review(deps: &Deps, task: &Task, output: &Output) -> Result<Review, HandlerError> {
    let rules = deps
        .config
        .skill(&task.skill)
        .map(|s| s.review.clone())
        .ok_or_else(|| HandlerError::Fail(format!("skill {} is not in skills.yaml", task.skill)))?;
    let (decision, findings) = structural(&output.body, &rules);
    let summary = match findings
        .iter()
        .filter(|f| f.severity <= mktg_core::Severity::Major)
        .count()
    {
        0 => format!(
            "meets the structural bar for {} ({} words)",
            task.skill,
            mktg_core::review::word_count(&output.body)
        ),
        n => format!(
            "{n} structural problem{} to fix",
            if n == 1 { "" } else { "s" }
        ),
    };
    Ok(Review {
        task: task.id.clone(),
        revision: output.revision,
        reviewer: STRUCTURAL.into(),
        decision,
        summary,
        findings,
        scores: Default::default(),
        overall: None,
        at_ms: deps.clock.now_ms(),
    })
}

/// Writes a review once; if another delivery wrote it first, that one wins.
async fn write_once(deps: &Deps, key: &GoalKey, review: Review) -> Result<Review, HandlerError> {
    // The trace line makes each review step visible in `mktg trace`.
    let trace = mktg_core::Trace {
        at_ms: review.at_ms,
        subject: review.task.to_string(),
        from: TaskStatus::InReview.to_string(),
        to: TaskStatus::InReview.to_string(),
        note: format!(
            "review by {} of revision {}: {}{} - {}",
            review.reviewer,
            review.revision,
            review.decision,
            review
                .overall
                .map(|o| format!(" ({o}/10)"))
                .unwrap_or_default(),
            review.summary.chars().take(140).collect::<String>()
        ),
    };
    match deps
        .store
        .commit(
            key,
            vec![Write::NewReview(review.clone()), Write::Trace(trace)],
        )
        .await
    {
        Ok(()) => Ok(review),
        Err(StoreError::Conflict(_)) => deps
            .store
            .goal_state(key)
            .await?
            .reviews
            .into_iter()
            .find(|r| {
                r.task == review.task
                    && r.revision == review.revision
                    && r.reviewer == review.reviewer
            })
            .ok_or_else(|| HandlerError::Retry("review conflicted but is not stored".into())),
        Err(e) => Err(e.into()),
    }
}

enum Semantic {
    Verdict(Verdict),
    /// Not run (the budget says no): the structural decision stands.
    Skipped(String),
    /// The model's answer failed the format twice.
    Unusable(Vec<String>),
}

async fn semantic_review(
    deps: &Deps,
    key: &GoalKey,
    state: &GoalState,
    task: &Task,
    output: &Output,
    step: &str,
) -> Result<Semantic, HandlerError> {
    let Some(rubric) = deps.config.rubric_for(&task.skill) else {
        return Ok(Semantic::Skipped("no rubric".into()));
    };
    let goal = state
        .goal
        .clone()
        .ok_or_else(|| HandlerError::Fail(format!("goal {} does not exist", key.goal)))?;
    let tier = if deps.config.models.tiers.contains_key(REVIEW_TIER) {
        REVIEW_TIER.to_string()
    } else {
        deps.config
            .skill(&task.skill)
            .map(|s| s.tier.clone())
            .unwrap_or_default()
    };
    let model = deps.config.models.model_id(&tier, deps.model.provider());
    let pass = deps.config.rubrics.pass_overall;
    let mut last: Option<(String, Vec<String>)> = None;
    for attempt in 0..2u32 {
        let request = semantic::build_request(ReviewRequest {
            config: &deps.config,
            goal: &goal,
            task,
            output,
            rubric,
            model: &model,
            step,
            attempt,
            repair: last.as_ref().map(|(a, p)| (a.as_str(), p.as_slice())),
        });
        let Some(turn) = checkpointed_call(
            deps,
            key,
            state,
            Attempt {
                task,
                step,
                n: attempt,
            },
            &request,
            &tier,
        )
        .await?
        else {
            return Ok(Semantic::Skipped("the budget stops new model calls".into()));
        };
        match semantic::parse(&turn.text, rubric, pass, &output.body) {
            Ok(v) => return Ok(Semantic::Verdict(v)),
            Err(problems) => {
                tracing::warn!(attempt, ?problems, "review answer failed the format");
                last = Some((turn.text, problems));
            }
        }
    }
    Ok(Semantic::Unusable(last.map(|(_, p)| p).unwrap_or_default()))
}

/// The review's model answer for `attempt`: the checkpoint if a crashed
/// delivery left one, otherwise a call (after the budget gate), recorded
/// once with its cost. `None` when the budget says no.
///
/// `02-copywriting~review` for the semantic step, `~review-page-cro` for a
/// chain step: each step's answers are checkpointed apart.
async fn checkpointed_call(
    deps: &Deps,
    key: &GoalKey,
    state: &GoalState,
    at: Attempt<'_>,
    request: &mktg_llm::ChatRequest,
    tier: &str,
) -> Result<Option<Turn>, HandlerError> {
    let Attempt { task, step, n } = at;
    let turn_task = if step == SEMANTIC {
        TaskId::new(format!("{}~review", task.id))
    } else {
        TaskId::new(format!("{}~review-{step}", task.id))
    };
    if let Some(t) = deps.store.turn(key, &turn_task, task.revision, n).await? {
        return Ok(Some(t));
    }
    let tier = match budget::gate_call(deps, &key.tenant, task.priority, state.cost.micros).await? {
        Gate::Park { .. } => return Ok(None),
        Gate::Proceed { force_tier, .. } => force_tier.unwrap_or_else(|| tier.to_string()),
    };
    let at = CallAt {
        task: turn_task,
        revision: task.revision,
        n,
        tier: &tier,
        skill: task.skill.as_str(),
    };
    Ok(Some(
        checkpoint::call_and_record(deps, key, at, request, Vec::new()).await?,
    ))
}

/// Which review answer: the task's step and attempt.
struct Attempt<'a> {
    task: &'a Task,
    step: &'a str,
    n: u32,
}

/// The reviewer could not get a usable answer twice: the task fails with
/// the reasons, visibly, and the director fails the goal.
async fn fail_review(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    problems: Vec<String>,
) -> Result<(), HandlerError> {
    let why = format!(
        "the semantic review failed: the reviewer's answer broke the format twice ({})",
        problems.join("; ")
    );
    let mut next = task.clone();
    let expect = next.version;
    let trace = next.transition(TaskStatus::Failed, deps.clock.now_ms(), why.clone())?;
    next.reason = Some(why.clone());
    next.outbox.push(Outgoing::Message(Envelope::new(
        key.tenant.clone(),
        key.goal.clone(),
        Message::TaskFailed {
            task: task.id.clone(),
            reason: why,
        },
    )));
    match deps
        .store
        .commit(
            key,
            vec![
                Write::Task {
                    task: next.clone(),
                    expect_version: expect,
                },
                Write::Trace(trace),
            ],
        )
        .await
    {
        Ok(()) => outbox::flush_task(deps, &next).await,
        Err(StoreError::Conflict(_)) => Err(HandlerError::Retry(
            "task changed while failing its review".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
