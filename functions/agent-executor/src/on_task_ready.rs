//! One turn of one task.
//!
//! Steps, each safe to repeat: (1) claim the task (ASSIGNED/REVISION →
//! IN_PROGRESS); (2) reuse the turn checkpoint or call the model and
//! checkpoint its answer; (3) store the output, mark the task COMPLETED and
//! queue TaskOutput in one commit; (4) send. A crash after any step is
//! repaired by the redelivered message without paying for the model twice.

use crate::prompt::{build_request, model_id};
use mktg_boot::{budget, month_of, outbox, Deps, HandlerError};
use mktg_core::cost::{cost_micros, gate, Gate};
use mktg_core::{DomainEvent, Envelope, Message, Outgoing, Output, Task, TaskId, TaskStatus, Turn};
use mktg_store::{CostEntry, GoalKey, Parked, StoreError, Write};

/// The skeleton runs one model turn per task; tool turns come later.
const TURN: u32 = 0;

pub async fn run(
    deps: &Deps,
    env: &Envelope,
    task_id: &TaskId,
    revision: u32,
) -> Result<(), HandlerError> {
    let key = GoalKey::new(env.tenant.clone(), env.goal.clone());
    let Some(mut task) = deps.store.task(&key, task_id).await? else {
        return Err(HandlerError::Fail(format!("task {task_id} does not exist")));
    };
    if task.revision != revision
        || !matches!(
            task.status,
            TaskStatus::Assigned | TaskStatus::Revision | TaskStatus::InProgress
        )
    {
        tracing::info!(status = %task.status, task_revision = task.revision, "turn already done; duplicate");
        return outbox::flush_task(deps, &task).await;
    }

    // (1) Claim.
    if task.status != TaskStatus::InProgress {
        let expect = task.version;
        let trace = task.transition(
            TaskStatus::InProgress,
            deps.clock.now_ms(),
            format!("revision {revision} started"),
        )?;
        match deps
            .store
            .commit(
                &key,
                vec![
                    Write::Task {
                        task: task.clone(),
                        expect_version: expect,
                    },
                    Write::Trace(trace),
                ],
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(HandlerError::Retry("task changed while claiming it".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }

    match execute(deps, &key, &task).await {
        Ok(()) => Ok(()),
        Err(HandlerError::Fail(why)) => fail_task(deps, &key, &task, why).await,
        Err(e) => Err(e),
    }
}

async fn execute(deps: &Deps, key: &GoalKey, task: &Task) -> Result<(), HandlerError> {
    let state = deps.store.goal_state(key).await?;
    let goal = state
        .goal
        .clone()
        .ok_or_else(|| HandlerError::Fail(format!("goal {} does not exist", key.goal)))?;
    let latest = |id: &TaskId| {
        state
            .outputs
            .iter()
            .filter(|o| &o.task == id)
            .max_by_key(|o| o.revision)
            .cloned()
    };
    let upstream: Vec<Output> = task.deps.iter().filter_map(latest).collect();
    let previous = if task.revision > 0 {
        state
            .outputs
            .iter()
            .find(|o| o.task == task.id && o.revision + 1 == task.revision)
            .cloned()
    } else {
        None
    };
    // (2) Checkpoint, or reuse the one a crashed attempt left.
    let turn = match deps.store.turn(key, &task.id, task.revision, TURN).await? {
        Some(turn) => {
            tracing::info!(turn = TURN, "reusing checkpointed model answer");
            turn
        }
        None => {
            // The budget gate runs before every call that would cost money.
            let month = month_of(deps.clock.now_ms());
            let limits = budget::limits(deps, &key.tenant).await?;
            let spent = budget::month_spent(deps, &key.tenant, &month).await?;
            let skill_tier = deps
                .config
                .skill(&task.skill)
                .map(|s| s.tier.clone())
                .unwrap_or_else(|| "sonnet".into());
            let levels = &deps.config.budget.levels;
            let tier = match gate(task.priority, spent, state.cost.micros, limits, levels) {
                Gate::Park { level, reason } => return park(deps, key, task, level, reason).await,
                Gate::Proceed { level, force_tier } => {
                    if let Some(level) = level {
                        tracing::warn!(%level, "calling the model under a budget level");
                    }
                    force_tier.unwrap_or(skill_tier)
                }
            };
            let request = build_request(
                &deps.config,
                &goal,
                task,
                &upstream,
                previous.as_ref(),
                TURN,
                &model_id(&deps.config, deps.model.provider(), &tier),
            );
            let response = deps.model.complete(&request).await?;
            let prices = deps.config.models.prices(&tier).unwrap_or_default();
            let micros = cost_micros(&response.usage, &prices);
            let turn = Turn {
                task: task.id.clone(),
                revision: task.revision,
                n: TURN,
                request_hash: request.hash(),
                model: response.model.clone(),
                scripted: response.scripted,
                text: response.text,
                stop_reason: response.stop_reason,
                usage: response.usage,
                tier,
                cost_micros: micros,
                at_ms: deps.clock.now_ms(),
            };
            // The turn is written once, so the cost recorded with it in the
            // same transaction is recorded exactly once.
            let cost = Write::AddCost(CostEntry {
                tenant: key.tenant.clone(),
                goal: key.goal.clone(),
                month: month.clone(),
                skill: task.skill.to_string(),
                model: turn.model.clone(),
                usage: turn.usage,
                micros,
            });
            match deps
                .store
                .commit(key, vec![Write::NewTurn(turn.clone()), cost])
                .await
            {
                Ok(()) => {
                    budget::announce_levels(deps, key, &month).await?;
                    turn
                }
                // Another delivery checkpointed first: use its answer.
                Err(StoreError::Conflict(_)) => deps
                    .store
                    .turn(key, &task.id, task.revision, TURN)
                    .await?
                    .ok_or_else(|| HandlerError::Retry("turn checkpoint vanished".into()))?,
                Err(e) => return Err(e.into()),
            }
        }
    };

    // (3) Output + COMPLETED + outbox, atomically.
    let now = deps.clock.now_ms();
    let output = Output {
        task: task.id.clone(),
        skill: task.skill.clone(),
        revision: task.revision,
        body: turn.text.clone(),
        model: turn.model.clone(),
        scripted: turn.scripted,
        usage: turn.usage,
        cost_micros: turn.cost_micros,
        at_ms: now,
    };
    let mut next = task.clone();
    let expect = next.version;
    let trace = next.transition(
        TaskStatus::Completed,
        now,
        format!(
            "output of revision {} stored ({} words, {})",
            task.revision,
            mktg_core::review::word_count(&output.body),
            output.model
        ),
    )?;
    next.outbox.push(Outgoing::Message(Envelope::new(
        key.tenant.clone(),
        key.goal.clone(),
        Message::TaskOutput {
            task: task.id.clone(),
            revision: task.revision,
        },
    )));
    let writes = vec![
        Write::NewOutput(output),
        Write::Task {
            task: next.clone(),
            expect_version: expect,
        },
        Write::Trace(trace),
    ];
    match deps.store.commit(key, writes).await {
        Ok(()) => outbox::flush_task(deps, &next).await,
        Err(StoreError::Conflict(_)) => Err(HandlerError::Retry(
            "task changed while storing its output".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Parks the task: no model call until the budget is raised and
/// `mktg budget set` resumes it.
async fn park(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    level: String,
    reason: String,
) -> Result<(), HandlerError> {
    let now = deps.clock.now_ms();
    let mut next = task.clone();
    let expect = next.version;
    let trace = next.transition(TaskStatus::BudgetBlocked, now, reason.clone())?;
    next.reason = Some(reason.clone());
    next.outbox.push(Outgoing::Event(DomainEvent::new(
        "task.budget_blocked",
        key.tenant.clone(),
        key.goal.clone(),
        Some(task.id.clone()),
        &level,
        Some(reason.clone()),
        now,
    )));
    let parked = Parked {
        goal: key.goal.clone(),
        task: task.id.clone(),
        revision: task.revision,
        level,
        reason,
        at_ms: now,
    };
    let writes = vec![
        Write::Task {
            task: next.clone(),
            expect_version: expect,
        },
        Write::Park {
            tenant: key.tenant.clone(),
            parked,
        },
        Write::Trace(trace),
    ];
    match deps.store.commit(key, writes).await {
        Ok(()) => outbox::flush_task(deps, &next).await,
        Err(StoreError::Conflict(_)) => {
            Err(HandlerError::Retry("task changed while parking it".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a permanent failure on the task, so it is visible, and tells the
/// director, which fails the goal.
async fn fail_task(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    why: String,
) -> Result<(), HandlerError> {
    let Some(mut current) = deps.store.task(key, &task.id).await? else {
        return Err(HandlerError::Fail(why));
    };
    if current.status.is_terminal() {
        return Ok(());
    }
    let now = deps.clock.now_ms();
    let expect = current.version;
    let trace = current.transition(TaskStatus::Failed, now, why.clone())?;
    current.reason = Some(why.clone());
    current.outbox.push(Outgoing::Message(Envelope::new(
        key.tenant.clone(),
        key.goal.clone(),
        Message::TaskFailed {
            task: task.id.clone(),
            reason: why.clone(),
        },
    )));
    deps.store
        .commit(
            key,
            vec![
                Write::Task {
                    task: current.clone(),
                    expect_version: expect,
                },
                Write::Trace(trace),
            ],
        )
        .await?;
    outbox::flush_task(deps, &current).await?;
    Err(HandlerError::Fail(why))
}
