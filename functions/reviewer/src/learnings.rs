//! After a decision: the revision's score is recorded against the
//! learnings its prompt carried (or the control group), learnings that do
//! not help are pruned, and an approved output is distilled into up to 3
//! new learnings. All best-effort: a learning problem never blocks a review.

use mktg_boot::checkpoint::{self, CallAt};
use mktg_boot::{Deps, HandlerError};
use mktg_core::learn::{self, Learning};
use mktg_core::{Decision, Output, Task, TaskId, Turn};
use mktg_llm::{CallMeta, ChatMessage, ChatRequest};
use mktg_store::{GoalKey, StoreError, Write};
use serde::Deserialize;

/// Longest learning kept, in characters.
pub const MAX_LEARNING_CHARS: usize = 400;

#[derive(Deserialize)]
struct Answer {
    learnings: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    #[serde(default)]
    evidence: String,
}

const SYSTEM: &str = "You keep the playbook of an AI marketing team. From one approved deliverable and its reviews, distil at most 3 lessons that would make the next deliverable of the same kind better. Each lesson is one imperative sentence a specialist can apply to a different product or goal (no names or figures specific to this one), and says what evidence in the reviews backs it. Answer with JSON only: {\"learnings\": [{\"text\": \"...\", \"evidence\": \"...\"}]}";

pub async fn after_decision(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    output: &Output,
    decision: Decision,
) -> Result<(), HandlerError> {
    if !deps.config.learnings.enabled {
        return Ok(());
    }
    let state = deps.store.goal_state(key).await?;
    let reviews: Vec<_> = state
        .reviews
        .iter()
        .filter(|r| r.task == task.id && r.revision == task.revision)
        .collect();
    let score = reviews.iter().filter_map(|r| r.overall).min();
    if let Some(score) = score {
        record_score(deps, key, task, score).await?;
    }
    if decision != Decision::Approve {
        return Ok(());
    }
    let Some(score) = score else {
        return Ok(());
    };
    let notes: Vec<String> = reviews
        .iter()
        .filter(|r| r.overall.is_some())
        .map(|r| {
            format!(
                "{} ({}/10): {}",
                r.reviewer,
                r.overall.unwrap_or(0),
                r.summary
            )
        })
        .collect();
    let turn = match distil_turn(deps, key, task, output, &notes).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(()),
        // A crash or a throttled call: the review is not decided yet, so the
        // redelivery distils again (and records the call's cost then).
        Err(e @ HandlerError::Retry(_)) => return Err(e),
        // Never blocking: a distillation that cannot work is skipped.
        Err(e) => {
            tracing::warn!("no learnings distilled: {e}");
            return Ok(());
        }
    };
    let text = turn.text.trim();
    let json = mktg_llm::json_object(text).unwrap_or(text);
    let answer: Answer = match serde_json::from_str(json) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("learnings answer is not the expected JSON ({e}); none stored");
            return Ok(());
        }
    };
    let now = deps.clock.now_ms();
    let (known, _) = deps
        .store
        .learnings(&key.tenant, task.skill.as_str())
        .await?;
    for (i, item) in answer.learnings.iter().take(3).enumerate() {
        let text: String = item.text.trim().chars().take(MAX_LEARNING_CHARS).collect();
        if text.is_empty() {
            continue;
        }
        // A lesson already in the playbook is not stored twice.
        if known
            .iter()
            .any(|k| k.source_goal != key.goal && learn::similarity(&k.text, &text) >= 0.8)
        {
            tracing::info!(%text, "learning already known; not stored again");
            continue;
        }
        let learning = Learning {
            id: format!("{}.{}.{i}", key.goal, task.id),
            skill: task.skill.clone(),
            text,
            evidence: item
                .evidence
                .trim()
                .chars()
                .take(MAX_LEARNING_CHARS)
                .collect(),
            score,
            source_goal: key.goal.clone(),
            source_task: task.id.clone(),
            created_ms: now,
            pruned: None,
        };
        match deps
            .store
            .commit(
                &GoalKey::tenant_only(key.tenant.clone()),
                vec![Write::NewLearning {
                    tenant: key.tenant.clone(),
                    learning,
                }],
            )
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Puts the score on this revision's use record and prunes the learnings it
/// used that, with enough samples, score no better than the control group.
async fn record_score(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    score: u8,
) -> Result<(), HandlerError> {
    let (learnings, mut uses) = deps
        .store
        .learnings(&key.tenant, task.skill.as_str())
        .await?;
    let Some(mine) = uses
        .iter_mut()
        .find(|u| u.goal == key.goal && u.task == task.id && u.revision == task.revision)
    else {
        return Ok(());
    };
    if mine.score.is_some() {
        return Ok(());
    }
    mine.score = Some(score);
    let mine = mine.clone();
    let tenant_key = GoalKey::tenant_only(key.tenant.clone());
    let mut writes = vec![Write::LearningUse {
        tenant: key.tenant.clone(),
        skill: task.skill.to_string(),
        used: mine.clone(),
    }];
    let control = learn::control_scores(&uses);
    for id in &mine.learnings {
        let with = learn::scores_with(&uses, |used| used == id);
        let Some(c) = learn::compare(&with, &control) else {
            continue;
        };
        if let Some(reason) = learn::prune_reason(&c, deps.config.learnings.prune_after) {
            if let Some(l) = learnings.iter().find(|l| &l.id == id && l.pruned.is_none()) {
                tracing::info!(learning = %id, %reason, "pruning a learning");
                let mut pruned = l.clone();
                pruned.pruned = Some(reason);
                writes.push(Write::Learning {
                    tenant: key.tenant.clone(),
                    learning: pruned,
                });
            }
        }
    }
    deps.store.commit(&tenant_key, writes).await?;
    Ok(())
}

/// The distillation answer, checkpointed under `{task}~learn` and costed
/// once, like every model call. `None` when the budget says no.
async fn distil_turn(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    output: &Output,
    notes: &[String],
) -> Result<Option<Turn>, HandlerError> {
    let turn_task = TaskId::new(format!("{}~learn", task.id));
    if let Some(t) = deps.store.turn(key, &turn_task, task.revision, 0).await? {
        return Ok(Some(t));
    }
    let tier = "haiku";
    let goal_cost = deps.store.goal_state(key).await?.cost.micros;
    if let mktg_core::cost::Gate::Park { .. } =
        mktg_boot::budget::gate_call(deps, &key.tenant, task.priority, goal_cost).await?
    {
        return Ok(None);
    }
    let model = deps.config.models.model_id(tier, deps.model.provider());
    let request = ChatRequest {
        model,
        system: SYSTEM.into(),
        messages: vec![ChatMessage::user(format!(
            "<skill>{}</skill>\n<reviews>\n{}\n</reviews>\n<approved-deliverable>\n{}\n</approved-deliverable>",
            task.skill,
            notes.join("\n"),
            output.body.trim()
        ))],
        max_tokens: 800,
        tools: vec![],
        meta: CallMeta {
            role: "learner".into(),
            skill: task.skill.to_string(),
            task: task.id.to_string(),
            revision: task.revision,
            turn: 0,
            step: String::new(),
        },
    };
    let at = CallAt {
        task: turn_task,
        revision: task.revision,
        n: 0,
        tier,
        skill: task.skill.as_str(),
    };
    Ok(Some(
        checkpoint::call_and_record(deps, key, at, &request, Vec::new()).await?,
    ))
}
