//! Review one revision: write the review once, then send the decision.
//! A redelivery while the task is still in review re-sends the stored
//! decision (the director ignores a duplicate); once the director has moved
//! on, a redelivery is acknowledged and does nothing.

use mktg_boot::{Deps, HandlerError};
use mktg_core::review::structural;
use mktg_core::{Envelope, Message, Review, TaskId, TaskStatus};
use mktg_store::{GoalKey, StoreError, Write};

pub const STRUCTURAL: &str = "structural";

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    let Some(task) = deps.store.task(&key, task_id).await? else {
        return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
    };
    if task.status != TaskStatus::InReview || task.revision != revision {
        tracing::info!(status = %task.status, "review already acted on; duplicate");
        return Ok(());
    }
    let Some(output) = deps.store.output(&key, task_id, revision).await? else {
        return Err(HandlerError::Fail(format!(
            "task {task_id} has no output for revision {revision}"
        )));
    };
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
    let review = Review {
        task: task_id.clone(),
        revision,
        reviewer: STRUCTURAL.into(),
        decision,
        summary,
        findings,
        at_ms: deps.clock.now_ms(),
    };
    let decision = match deps
        .store
        .commit(&key, vec![Write::NewReview(review.clone())])
        .await
    {
        Ok(()) => decision,
        Err(StoreError::Conflict(_)) => {
            // Already reviewed by a delivery that may have crashed before
            // sending: send the stored decision again.
            let state = deps.store.goal_state(&key).await?;
            state
                .reviews
                .iter()
                .find(|r| &r.task == task_id && r.revision == revision && r.reviewer == STRUCTURAL)
                .map(|r| r.decision)
                .ok_or_else(|| HandlerError::Retry("review conflicted but is not stored".into()))?
        }
        Err(e) => return Err(e.into()),
    };
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
