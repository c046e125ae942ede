//! One turn of one task.
//!
//! Steps, each safe to repeat: (1) find where the revision stands from its
//! stored turns and tool calls; (2) claim the task (→ IN_PROGRESS);
//! (3) reuse the turn checkpoint or call the model and checkpoint its answer;
//! (4a) a final answer: store the output, mark the task COMPLETED and queue
//! TaskOutput in one commit; (4b) tool calls: store one call item per
//! tool_use, mark the task AWAITING_TOOLS (or AWAITING_APPROVAL) and queue
//! the calls in one commit; (5) send. A crash after any step is repaired by
//! the redelivered message without paying for the model twice. The tool
//! invoker sends ToolsDone when the last call of a turn has its result,
//! which brings the task back here for its next turn.

use crate::prompt::{build_request, RequestParts};
use mktg_boot::checkpoint::{self, CallAt};
use mktg_boot::tenant::TenantSettings;
use mktg_boot::{budget, outbox, Deps, HandlerError};
use mktg_core::cost::Gate;
use mktg_core::learn::{self, Learning, LearningUse};
use mktg_core::tools::{repeats, CallStatus, Effect, ToolCall};
use mktg_core::{DomainEvent, Envelope, Message, Outgoing, Output, Task, TaskId, TaskStatus, Turn};
use mktg_store::{GoalKey, GoalState, Parked, PendingApproval, StoreError, Write};
use mktg_tools::ToolDef;

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
            TaskStatus::Assigned
                | TaskStatus::Revision
                | TaskStatus::InProgress
                | TaskStatus::AwaitingTools
                | TaskStatus::AwaitingApproval
        )
    {
        tracing::info!(status = %task.status, task_revision = task.revision, "turn already done; duplicate");
        return outbox::flush_task(deps, &task).await;
    }

    // (1) Where does the revision stand?
    let state = deps.store.goal_state(&key).await?;
    let turns = turns_of(&state, &task);
    let mut next_turn = 0;
    if let Some(last) = turns.last() {
        if last.tool_uses.is_empty() {
            // A final answer is checkpointed; only its output is missing.
            next_turn = last.n;
        } else {
            let calls = calls_of(&state, &task, last.n);
            if calls.len() < last.tool_uses.len() {
                // Crashed between the checkpoint and storing its calls.
                let own = mktg_boot::tenant::load(deps, &key.tenant).await?;
                return match queue_tool_calls(deps, &key, &task, &state, last, &own).await {
                    Err(HandlerError::Fail(why)) => fail_task(deps, &key, &task, why).await,
                    other => other,
                };
            }
            if !calls.iter().all(|c| c.status.is_final()) {
                tracing::info!(
                    turn = last.n,
                    "tool calls still running; waiting for ToolsDone"
                );
                return outbox::flush_task(deps, &task).await;
            }
            next_turn = last.n + 1;
        }
    }

    // (2) Claim.
    if task.status != TaskStatus::InProgress {
        let expect = task.version;
        let now = deps.clock.now_ms();
        let mut traces = Vec::new();
        if task.status == TaskStatus::AwaitingApproval {
            traces.push(task.transition(TaskStatus::AwaitingTools, now, "approvals settled")?);
        }
        let why = if next_turn == 0 {
            format!("revision {revision} started")
        } else {
            format!("tool results in; turn {next_turn} of revision {revision}")
        };
        traces.push(task.transition(TaskStatus::InProgress, now, why)?);
        let trace = traces
            .pop()
            .ok_or_else(|| HandlerError::Fail("no transition".into()))?;
        match deps
            .store
            .commit(
                &key,
                traces
                    .into_iter()
                    .map(Write::Trace)
                    .chain([
                        Write::Task {
                            task: task.clone(),
                            expect_version: expect,
                        },
                        Write::Trace(trace),
                    ])
                    .collect(),
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

    match execute(deps, &key, &task, &state, next_turn).await {
        Ok(()) => Ok(()),
        Err(HandlerError::Fail(why)) => fail_task(deps, &key, &task, why).await,
        Err(e) => Err(e),
    }
}

/// The learnings this revision's prompt carries. The first turn picks them
/// (or puts the revision in the control group) and records the choice with
/// its checkpoint; later turns reuse the record, so every turn of a revision
/// sees the same prompt.
async fn learnings_for(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    goal: &mktg_core::Goal,
) -> Result<(Vec<Learning>, Option<Write>), HandlerError> {
    let settings = deps.config.learnings;
    if !settings.enabled {
        return Ok((Vec::new(), None));
    }
    let (all, uses) = deps
        .store
        .learnings(&key.tenant, task.skill.as_str())
        .await?;
    if let Some(u) = uses
        .iter()
        .find(|u| u.goal == key.goal && u.task == task.id && u.revision == task.revision)
    {
        let chosen = all
            .iter()
            .filter(|l| u.learnings.contains(&l.id))
            .cloned()
            .collect();
        return Ok((chosen, None));
    }
    let control = learn::in_control(
        &format!("{}.{}.{}", key.goal, task.id, task.revision),
        settings.control_percent,
    );
    let chosen: Vec<Learning> = if control {
        Vec::new()
    } else {
        learn::select_with_patterns(
            &all,
            &uses,
            deps.config.rubrics.pass_overall.max(1),
            &goal.text,
            deps.clock.now_ms(),
            settings.per_prompt,
        )
        .into_iter()
        .cloned()
        .collect()
    };
    if all.is_empty() {
        // Nothing to validate yet: no use to record.
        return Ok((chosen, None));
    }
    let used = Write::LearningUse {
        tenant: key.tenant.clone(),
        skill: task.skill.to_string(),
        used: LearningUse {
            goal: key.goal.clone(),
            task: task.id.clone(),
            revision: task.revision,
            control,
            learnings: chosen.iter().map(|l| l.id.clone()).collect(),
            score: None,
            at_ms: deps.clock.now_ms(),
        },
    };
    Ok((chosen, Some(used)))
}

fn turns_of(state: &GoalState, task: &Task) -> Vec<Turn> {
    let mut turns: Vec<Turn> = state
        .turns
        .iter()
        .filter(|t| t.task == task.id && t.revision == task.revision)
        .cloned()
        .collect();
    turns.sort_by_key(|t| t.n);
    turns
}

fn calls_of(state: &GoalState, task: &Task, turn: u32) -> Vec<ToolCall> {
    state
        .calls
        .iter()
        .filter(|c| c.task == task.id && c.revision == task.revision && c.turn == turn)
        .cloned()
        .collect()
}

async fn execute(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    state: &GoalState,
    n: u32,
) -> Result<(), HandlerError> {
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
    let max_turns = deps.config.max_turns.max(1);
    if n >= max_turns {
        return Err(HandlerError::Fail(format!(
            "turn limit reached: {max_turns} model turns in revision {} without a final answer (max_turns in skills.yaml)",
            task.revision
        )));
    }
    // The tenant's own settings (product context, its override of this
    // skill, tool servers it turned off), read once for the call and for
    // checking the calls the answer asks for.
    let own = mktg_boot::tenant::load(deps, &key.tenant).await?;
    // (3) Checkpoint, or reuse the one a crashed attempt left.
    let turn = match deps.store.turn(key, &task.id, task.revision, n).await? {
        Some(turn) => {
            tracing::info!(turn = n, "reusing checkpointed model answer");
            turn
        }
        None => {
            // The budget gate runs before every call that would cost money.
            let gate =
                budget::gate_call(deps, &key.tenant, task.priority, state.cost.micros).await?;
            let own_skill = own.skill(task.skill.as_str()).cloned().unwrap_or_default();
            let skill_tier = own_skill.tier.clone().unwrap_or_else(|| {
                deps.config
                    .skill(&task.skill)
                    .map(|s| s.tier.clone())
                    .unwrap_or_else(|| "sonnet".into())
            });
            let tier = match gate {
                Gate::Park { level, reason } => return park(deps, key, task, level, reason).await,
                Gate::Proceed { level, force_tier } => {
                    if let Some(level) = level {
                        tracing::warn!(%level, "calling the model under a budget level");
                    }
                    // A budget level's forced tier beats a healing retry's.
                    force_tier
                        .or_else(|| task.strategy.tier.clone())
                        .unwrap_or(skill_tier)
                }
            };
            // The last allowed turn offers no tools: the agent must answer.
            let last_turn = n + 1 == max_turns;
            let tools = if last_turn {
                Vec::new()
            } else {
                offered_tools(deps, key, task, &own).await
            };
            let history: Vec<(Turn, Vec<ToolCall>)> = turns_of(state, task)
                .into_iter()
                .filter(|t| t.n < n)
                .map(|t| {
                    let calls = calls_of(state, task, t.n);
                    (t, calls)
                })
                .collect();
            let (learnings, used) = learnings_for(deps, key, task, &goal).await?;
            let request = build_request(RequestParts {
                config: &deps.config,
                goal: &goal,
                task,
                upstream: &upstream,
                previous: previous.as_ref(),
                turn: n,
                model: &deps.config.models.model_id(&tier, deps.model.provider()),
                tools: &tools,
                history: &history,
                last_turn,
                learnings: &learnings,
                context: own.context.as_ref(),
                extra_instructions: own_skill.instructions.as_deref(),
            });
            checkpoint::call_and_record(
                deps,
                key,
                CallAt {
                    task: task.id.clone(),
                    revision: task.revision,
                    n,
                    tier: &tier,
                    skill: task.skill.as_str(),
                },
                &request,
                used.into_iter().collect(),
            )
            .await?
        }
    };

    // The answer is checkpointed; neither its output nor its tool calls
    // are stored yet.
    mktg_boot::crash_point!("agent.after_checkpoint");
    if turn.stop_reason == "refusal" {
        return Err(HandlerError::Fail(format!(
            "the model refused the task (stop_reason refusal): {}",
            turn.text.chars().take(200).collect::<String>()
        )));
    }
    if !turn.tool_uses.is_empty() {
        if n + 1 == max_turns {
            return Err(HandlerError::Fail(format!(
                "turn limit reached: the model asked for tools on its last allowed turn ({max_turns}, max_turns in skills.yaml)"
            )));
        }
        // (4b) The calls, the status and the messages, atomically.
        let fresh = deps
            .store
            .task(key, &task.id)
            .await?
            .ok_or_else(|| HandlerError::Fail(format!("task {} vanished", task.id)))?;
        return queue_tool_calls(deps, key, &fresh, state, &turn, &own).await;
    }

    // (4a) Output + COMPLETED + outbox, atomically.
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

/// Stores one call item per tool_use of `turn`, each with its fate decided
/// by policy: not offered to the skill or repeated too often → BLOCKED with
/// the reason as its result; needs a person → AWAITING_APPROVAL; otherwise
/// PENDING with a ToolCall message. The task moves to AWAITING_TOOLS (and
/// AWAITING_APPROVAL when a call waits for a person) in the same commit.
/// `own`: the tenant's settings (servers it turned off or connected).
async fn queue_tool_calls(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    state: &GoalState,
    turn: &Turn,
    own: &TenantSettings,
) -> Result<(), HandlerError> {
    let offered: Vec<ToolDef> = offered_tools(deps, key, task, own).await;
    let earlier: Vec<ToolCall> = state
        .calls
        .iter()
        .filter(|c| c.task == task.id && c.revision == task.revision && c.turn < turn.n)
        .cloned()
        .collect();
    let existing = calls_of(state, task, turn.n);
    let now = deps.clock.now_ms();
    let limit = deps.config.max_repeated_tool_calls as usize;

    let mut writes = Vec::new();
    let mut next = task.clone();
    let expect = next.version;
    let mut all_final = true;
    let mut awaiting = Vec::new();
    let mut this_turn: Vec<ToolCall> = Vec::new();
    for use_ in &turn.tool_uses {
        if let Some(c) = existing.iter().find(|c| c.id == use_.id) {
            all_final &= c.status.is_final();
            this_turn.push(c.clone());
            continue;
        }
        let def = offered.iter().find(|d| d.name == use_.name);
        let mut call = ToolCall {
            task: task.id.clone(),
            revision: task.revision,
            turn: turn.n,
            id: use_.id.clone(),
            name: use_.name.clone(),
            server: def.map(|d| d.server.clone()).unwrap_or_default(),
            tool: def.map(|d| d.tool.clone()).unwrap_or_default(),
            input: use_.input.clone(),
            effect: def.map(|d| d.policy.effect).unwrap_or(Effect::Read),
            status: CallStatus::Pending,
            result: None,
            is_error: false,
            decided_by: None,
            attempts: 0,
            lease_until_ms: 0,
            version: 1,
            created_ms: now,
            finished_ms: None,
        };
        let seen = repeats(&earlier, &use_.name, &use_.input)
            + repeats(&this_turn, &use_.name, &use_.input);
        match def {
            None => call.finish(
                CallStatus::Blocked,
                format!(
                    "tool {} is not available to the {} skill; use only the tools offered",
                    use_.name, task.skill
                ),
                true,
                now,
            ),
            Some(_) if seen >= limit => call.finish(
                CallStatus::Blocked,
                format!(
                    "loop guard: {} was already called {seen} time(s) with these exact arguments in this revision; use the earlier result or change the arguments",
                    use_.name
                ),
                true,
                now,
            ),
            Some(d) if d.policy.approval == mktg_core::tools::Approval::Ask => {
                call.status = CallStatus::AwaitingApproval;
                awaiting.push(PendingApproval {
                    reference: call.reference(),
                    goal: key.goal.clone(),
                    task: task.id.clone(),
                    revision: task.revision,
                    turn: turn.n,
                    call: call.id.clone(),
                    tool: call.name.clone(),
                    effect: call.effect.to_string(),
                    input: call.input.clone(),
                    at_ms: now,
                });
            }
            Some(_) => {
                next.outbox.push(Outgoing::Message(Envelope::new(
                    key.tenant.clone(),
                    key.goal.clone(),
                    Message::ToolCall {
                        task: task.id.clone(),
                        revision: task.revision,
                        turn: turn.n,
                        call: call.id.clone(),
                    },
                )));
            }
        }
        all_final &= call.status.is_final();
        this_turn.push(call.clone());
        writes.push(Write::NewCall(call));
    }
    if writes.is_empty() {
        return outbox::flush_task(deps, task).await;
    }
    if next.status == TaskStatus::InProgress {
        writes.push(Write::Trace(next.transition(
            TaskStatus::AwaitingTools,
            now,
            format!(
                "turn {} asked for {} tool call(s): {}",
                turn.n,
                turn.tool_uses.len(),
                turn.tool_uses.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )?));
    }
    if !awaiting.is_empty() && next.status == TaskStatus::AwaitingTools {
        writes.push(Write::Trace(next.transition(
            TaskStatus::AwaitingApproval,
            now,
            format!(
                "waiting for approval: {} (mktg approvals)",
                awaiting.iter().map(|a| a.reference.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )?));
    }
    for approval in awaiting {
        next.outbox.push(Outgoing::Event(DomainEvent::new(
            "tool.approval_requested",
            key.tenant.clone(),
            key.goal.clone(),
            Some(task.id.clone()),
            &approval.effect,
            Some(format!("{} {}", approval.tool, approval.reference)),
            now,
        )));
        writes.push(Write::AwaitApproval {
            tenant: key.tenant.clone(),
            approval,
        });
    }
    if all_final {
        // Every call was refused before running: the agent hears why at once.
        next.outbox.push(Outgoing::Message(Envelope::new(
            key.tenant.clone(),
            key.goal.clone(),
            Message::ToolsDone {
                task: task.id.clone(),
                revision: task.revision,
                turn: turn.n,
            },
        )));
    }
    writes.push(Write::Task {
        task: next.clone(),
        expect_version: expect,
    });
    match deps.store.commit(key, writes).await {
        Ok(()) => outbox::flush_task(deps, &next).await,
        Err(StoreError::Conflict(_)) => Err(HandlerError::Retry(
            "task or its calls changed while queueing tool calls".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The tools this attempt may use: the skill's, minus the servers a
/// self-healing retry left out, and the servers the tenant turned off.
/// A server the tenant connected with its own credentials (from tools.yaml
/// or the catalogue) is reached with those, and only those.
async fn offered_tools(
    deps: &Deps,
    key: &GoalKey,
    task: &Task,
    own: &TenantSettings,
) -> Vec<ToolDef> {
    // The deployment's servers for the skill and the ones the tenant
    // connected; each reached as the tenant's route says.
    let names: std::collections::BTreeSet<&str> = deps
        .config
        .tools
        .for_skill(&task.skill)
        .map(|s| s.name.as_str())
        .chain(own.connections.keys().map(String::as_str))
        .filter(|s| !task.strategy.without_servers.iter().any(|w| w == s))
        .collect();
    let mut out: Vec<ToolDef> = Vec::new();
    for name in names {
        let listed = match own.route(deps, &key.tenant, name).await {
            Ok(Some(r)) if r.enabled && r.server.allows(&task.skill) => deps
                .tools
                .list_as(r.server, r.creds.as_ref())
                .await
                .map_err(|e| e.to_string()),
            Ok(_) => continue,
            Err(e) => Err(e.to_string()),
        };
        match listed {
            Ok(defs) => out.extend(defs),
            Err(e) => {
                tracing::warn!(server = %name, skill = %task.skill, "tool server left out: {e}")
            }
        }
    }
    // The tenant may make a server's writes ask first, or run without.
    for def in &mut out {
        def.policy.approval = own
            .tool(&def.server)
            .approval(def.policy.effect, def.policy.approval);
    }
    out
}
