//! Self-healing through the real handlers (memory adapters): a failed task
//! is classified, retried with an adjusted strategy, recorded, and the goal
//! still completes; when the attempts run out the goal fails visibly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use mktg_boot::HandlerError;
use mktg_cli::dispatch;
use mktg_core::heal::FailureKind;
use mktg_core::tools::CallStatus;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId, Usage};
use mktg_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel, ToolUse};
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::{config_with_tools, mcp_python, memory_deps_with, TestDeps};
use std::sync::{Arc, Mutex};

/// How the content strategist's model misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    /// Refuses on this model id (the skill's tier), answers on others.
    RefuseOn(&'static str),
    /// Refuses whatever the tier.
    AlwaysRefuse,
    /// Asks for `crashy__explode` on every turn while that server is
    /// offered (and even on the last turn, when no tools are offered), as a
    /// model stuck on a broken tool does.
    StuckOnCrashyTool,
}

struct FaultyModel {
    inner: ScriptedModel,
    fault: Fault,
    refuse_model: Mutex<String>,
    requests: Mutex<Vec<ChatRequest>>,
}

#[async_trait]
impl ChatModel for FaultyModel {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn is_scripted(&self) -> bool {
        true
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        let mine = request.meta.skill == "content-strategy" && request.meta.role == "agent";
        let reply = |text: &str, stop: &str, tool_uses: Vec<ToolUse>| ChatResponse {
            text: text.into(),
            tool_uses,
            stop_reason: stop.into(),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 10,
                ..Usage::default()
            },
            model: request.model.clone(),
            scripted: true,
        };
        if mine {
            match self.fault {
                Fault::RefuseOn(_) if request.model == *self.refuse_model.lock().unwrap() => {
                    return Ok(reply("I can't help with that request.", "refusal", vec![]));
                }
                Fault::AlwaysRefuse => {
                    return Ok(reply("I can't help with that request.", "refusal", vec![]));
                }
                Fault::StuckOnCrashyTool if request.meta.revision == 0 => {
                    return Ok(reply(
                        "",
                        "tool_use",
                        vec![ToolUse {
                            id: format!("toolu_{}", request.meta.turn),
                            name: "crashy__explode".into(),
                            input: serde_json::json!({"reason": "heal test"}),
                        }],
                    ));
                }
                _ => {}
            }
        }
        self.inner.complete(request).await
    }
}

struct World {
    t: TestDeps,
    model: Arc<FaultyModel>,
    _dir: tempfile::TempDir,
}

fn world(fault: Fault, max_turns: u32) -> World {
    let crashy = mktg_testkit::repo_root().join("tests/fixtures/mcp/crashy.py");
    let tools = format!(
        "servers:\n  crashy:\n    command: {}\n    args: [\"{}\"]\n    skills: [content-strategy]\n    effect: read\n    timeout_ms: 10000\n",
        mcp_python(),
        crashy.display()
    );
    let real = mktg_testkit::repo_root().join("config/scripted");
    let script = format!(
        "replies:\n  - skill: copywriting\n    role: agent\n    revision: 0\n    file: {real}/responses/copywriting-draft.md\n  - skill: \"*\"\n    role: agent\n    file: \"{real}/responses/{{skill}}.md\"\n  - skill: \"*\"\n    role: reviewer\n    file: \"{real}/reviews/{{skill}}.json\"\n",
        real = real.display()
    );
    let (dir, mut config, scripted) = config_with_tools(&tools, &script);
    config.max_turns = max_turns;
    let refuse = match fault {
        Fault::RefuseOn(tier) => config.models.model_id(tier, "scripted"),
        _ => String::new(),
    };
    let model = Arc::new(FaultyModel {
        inner: scripted,
        fault,
        refuse_model: Mutex::new(refuse),
        requests: Mutex::new(Vec::new()),
    });
    let t = memory_deps_with(config, model.clone());
    World {
        t,
        model,
        _dir: dir,
    }
}

fn submit(w: &World, goal: &str) -> Envelope {
    Envelope::new(
        TenantId::new("acme"),
        GoalId::new(goal),
        Message::GoalSubmitted {
            text: "Plan next quarter's content".into(),
            pipeline: Some("Content Production".into()),
            priority: Default::default(),
            source: None,
            submitted_ms: w.t.deps.clock.now_ms(),
        },
    )
}

/// Delivers every message until the queues are empty; permanent failures
/// (recorded on their tasks by the handlers) are collected, not fatal.
async fn drain(w: &World) -> Vec<String> {
    let mut failed = Vec::new();
    for _ in 0..10_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = w.t.bus.pop(q) {
                any = true;
                match dispatch(&w.t.deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Fail(why)) => failed.push(why),
                    Err(HandlerError::Retry(why)) => {
                        panic!("{} retried: {why}", env.message.kind())
                    }
                }
            }
        }
        if !any {
            return failed;
        }
    }
    panic!("queues never drained");
}

async fn state(w: &World, goal: &str) -> GoalState {
    w.t.deps
        .store
        .goal_state(&GoalKey::new("acme".into(), goal.into()))
        .await
        .unwrap()
}

fn strategist(s: &GoalState) -> mktg_core::Task {
    s.tasks
        .iter()
        .find(|t| t.skill.as_str() == "content-strategy")
        .cloned()
        .unwrap()
}

fn agent_models(w: &World, revision: u32) -> Vec<String> {
    w.model
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.meta.skill == "content-strategy"
                && r.meta.role == "agent"
                && r.meta.revision == revision
        })
        .map(|r| r.model.clone())
        .collect()
}

#[tokio::test]
async fn a_refusal_is_retried_on_another_tier_and_the_goal_completes() {
    // content-strategy runs on opus; its model refuses there.
    let w = world(Fault::RefuseOn("opus"), 8);
    w.t.bus.send_now(&submit(&w, "g-refuse")).await;
    let failed = drain(&w).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("refused"), "{failed:?}");

    let s = state(&w, "g-refuse").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    let task = strategist(&s);
    assert_eq!(task.status, TaskStatus::Approved);
    assert_eq!(task.heal.len(), 1);
    let h = &task.heal[0];
    assert_eq!(
        (h.attempt, h.failed_revision, h.kind),
        (1, 0, FailureKind::ModelRefused)
    );
    assert_eq!(
        h.strategy.tier.as_deref(),
        Some("sonnet"),
        "the strongest tier falls back"
    );
    let opus = w.t.deps.config.models.model_id("opus", "scripted");
    let sonnet = w.t.deps.config.models.model_id("sonnet", "scripted");
    assert_eq!(agent_models(&w, 0), vec![opus]);
    assert_eq!(agent_models(&w, 1), vec![sonnet.clone()]);
    // The retry's prompt says why it is a retry.
    let retry = w
        .model
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| {
            r.meta.skill == "content-strategy" && r.meta.revision == 1 && r.meta.role == "agent"
        })
        .cloned()
        .unwrap();
    let text = format!("{:?}", retry.messages);
    assert!(
        text.contains("<retry attempt=\\\"1\\\">"),
        "{}",
        &text[..text.len().min(600)]
    );
    assert!(text.contains("model refused"));
    // Each attempt is in the trace.
    let trace: Vec<&str> = s.traces.iter().map(|t| t.note.as_str()).collect();
    assert!(
        trace
            .iter()
            .any(|n| n.starts_with("self-heal attempt 1/2: model refused")
                && n.contains("model tier sonnet")),
        "{trace:?}"
    );
    // Both calls were paid for once each: the refusal and the retry.
    let turns: Vec<_> = s.turns.iter().filter(|t| t.task == task.id).collect();
    assert_eq!(turns.len(), 2);
    assert_eq!(s.cost.calls as usize, s.turns.len());
}

#[tokio::test]
async fn a_dead_tool_is_left_out_of_the_retry() {
    let w = world(Fault::StuckOnCrashyTool, 2);
    w.t.bus.send_now(&submit(&w, "g-tool")).await;
    let failed = drain(&w).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("turn limit"), "{failed:?}");

    let s = state(&w, "g-tool").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    let task = strategist(&s);
    let crashed: Vec<_> = s
        .calls
        .iter()
        .filter(|c| c.task == task.id && c.revision == 0)
        .collect();
    assert_eq!(crashed.len(), 1, "only the first turn offered the tool");
    assert_eq!(crashed[0].status, CallStatus::Failed);
    assert_eq!(task.heal.len(), 1);
    assert_eq!(task.heal[0].kind, FailureKind::ToolDown);
    assert_eq!(task.strategy.without_servers, vec!["crashy".to_string()]);
    // The retry was offered no crashy tools and was told why.
    let retry: Vec<ChatRequest> = w
        .model
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.meta.skill == "content-strategy" && r.meta.revision == 1 && r.meta.role == "agent"
        })
        .cloned()
        .collect();
    assert_eq!(retry.len(), 1);
    assert!(retry[0].tools.is_empty(), "{:?}", retry[0].tools);
    assert!(format!("{:?}", retry[0].messages).contains("The tools of crashy are unavailable"));
}

#[tokio::test]
async fn when_the_attempts_run_out_the_goal_fails_with_every_attempt_recorded() {
    let w = world(Fault::AlwaysRefuse, 8);
    w.t.bus.send_now(&submit(&w, "g-out")).await;
    let failed = drain(&w).await;
    assert_eq!(
        failed.len(),
        3,
        "one first failure and two retries: {failed:?}"
    );

    let s = state(&w, "g-out").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Failed);
    assert!(
        goal.reason.as_deref().unwrap().contains("refused"),
        "{:?}",
        goal.reason
    );
    let task = strategist(&s);
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.revision, 2);
    let kinds: Vec<_> = task.heal.iter().map(|h| (h.attempt, h.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, FailureKind::ModelRefused),
            (2, FailureKind::ModelRefused)
        ]
    );
    // A tier that refused is not tried again: opus, then sonnet, then haiku.
    let tiers: Vec<_> = task
        .heal
        .iter()
        .map(|h| h.strategy.tier.clone().unwrap())
        .collect();
    assert_eq!(tiers, vec!["sonnet".to_string(), "haiku".to_string()]);
    let notes: Vec<&str> = s.traces.iter().map(|t| t.note.as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("self-heal attempt 1/2")));
    assert!(notes.iter().any(|n| n.starts_with("self-heal attempt 2/2")));
    // Work that depended on it never ran.
    assert!(s
        .tasks
        .iter()
        .filter(|t| t.id != task.id)
        .all(|t| matches!(t.status, TaskStatus::Cancelled | TaskStatus::Approved)));
}

#[tokio::test]
async fn a_task_dead_lettered_by_rate_limits_is_retried_later_on_another_tier() {
    let w = world(Fault::RefuseOn("none"), 8);
    w.t.bus.send_now(&submit(&w, "g-429")).await;
    // Run until the strategist's TaskReady is queued, then let it die the
    // way five 429-retried deliveries do: its last delivery records it.
    let ready = loop {
        let env =
            w.t.bus
                .pop(QueueName::Director)
                .or_else(|| w.t.bus.pop(QueueName::Agent));
        let env = env.expect("the strategist's turn is queued before the queues drain");
        if let Message::TaskReady { task, .. } = &env.message {
            if task.as_str().ends_with("content-strategy") {
                break env;
            }
        }
        let q = mktg_testkit::queue_of(&env);
        dispatch(&w.t.deps, q, env).await.unwrap();
    };
    mktg_boot::dead_letter::record(
        &w.t.deps,
        &ready,
        "model call failed: anthropic returned 429 rate_limit_error (retry-after 30)",
    )
    .await
    .unwrap();
    // The director hears of it and schedules the retry with a delay.
    let failed_notice = w.t.bus.pop(QueueName::Director).unwrap();
    dispatch(&w.t.deps, QueueName::Director, failed_notice)
        .await
        .unwrap();
    let retry = w.t.bus.pending(QueueName::Agent);
    let retry = retry
        .iter()
        .find(|e| matches!(&e.message, Message::TaskReady { task, revision: 1 } if task.as_str().ends_with("content-strategy")))
        .expect("a retry at revision 1");
    assert_eq!(retry.delay_secs, 60, "rate_limit_delay_secs of skills.yaml");
    let s = state(&w, "g-429").await;
    let task = strategist(&s);
    assert_eq!(task.heal[0].kind, FailureKind::RateLimited);
    assert_eq!(task.heal[0].delay_secs, 60);
    assert_eq!(task.strategy.tier.as_deref(), Some("sonnet"));
    // And the goal still completes.
    let failed = drain(&w).await;
    assert!(failed.is_empty(), "{failed:?}");
    let s = state(&w, "g-429").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
}
