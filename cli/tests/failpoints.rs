//! Crashes injected with fail points at every step boundary of a goal, at
//! every occurrence of each: after the model answered and before the
//! checkpoint, after the checkpoint and before the output or tool calls are
//! stored, after a tool's side effect and before its result is stored,
//! during the fan-in of two parallel tool calls, after a reviewer's or an
//! agent's commit and before the next function hears of it, and in the
//! director between a decision and its messages.
//!
//! After each crash the message is redelivered (as SQS does after the
//! visibility timeout) and the run must end with: the goal COMPLETED; one
//! output per task revision and every task approved; the write tool run
//! exactly once, counted at the real MCP server; model calls = turns (+1
//! for a crash between the answer and its checkpoint); each cost recorded
//! once; no message left over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::HandlerError;
use mktg_cli::dispatch;
use mktg_core::{
    CallStatus, Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId,
};
use mktg_llm::ScriptedModel;
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::counting::CountingModel;
use mktg_testkit::{config_with_tools, mcp_python, memory_deps_with, TestDeps};
use mktg_tools::{McpHost, ToolHost};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The boundaries, each a fail point in the code.
const POINTS: [&str; 6] = [
    "model.after_answer",
    "agent.after_checkpoint",
    "tool.after_effect",
    "tool.fan_in",
    "task.after_commit",
    "director.after_commit",
];

struct Setup {
    _dir: tempfile::TempDir,
    outbox: tempfile::NamedTempFile,
    config: mktg_config::Config,
    script: std::path::PathBuf,
    host: Arc<dyn ToolHost>,
}

fn setup() -> Setup {
    let outbox = tempfile::NamedTempFile::new().unwrap();
    let fixture = mktg_testkit::repo_root().join("tests/fixtures/mcp/outbox.py");
    let tools = format!(
        "servers:\n  time:\n    command: {py}\n    args: [-m, mcp_server_time, --local-timezone, UTC]\n    skills: [content-strategy]\n    effect: read\n  outbox:\n    command: {py}\n    args: [\"{fixture}\", \"{file}\"]\n    skills: [content-strategy]\n    effect: write\n    approval: auto\n    timeout_ms: 10000\n",
        py = mcp_python(),
        fixture = fixture.display(),
        file = outbox.path().display()
    );
    let real = mktg_testkit::repo_root().join("config/scripted");
    let demo = std::fs::read_to_string(real.join("demo.yaml"))
        .unwrap()
        .replace("file: responses/", &format!("file: {}/responses/", real.display()))
        .replace("file: \"responses/", &format!("file: \"{}/responses/", real.display()))
        .replace("file: \"reviews/", &format!("file: \"{}/reviews/", real.display()))
        .replace(
            "      - name: time__get_current_time\n        input: {timezone: America/New_York}\n",
            "      - name: time__get_current_time\n        input: {timezone: America/New_York}\n      - name: outbox__send_email\n        input: {to: team@example.com, subject: Content plan ready}\n",
        );
    assert!(
        demo.contains("outbox__send_email"),
        "the demo script changed shape"
    );
    let (dir, config, _) = config_with_tools(&tools, &demo);
    let script = dir.path().join("config/scripted/test-script.yaml");
    let host: Arc<dyn ToolHost> = Arc::new(McpHost::new(config.tools.clone()));
    Setup {
        _dir: dir,
        outbox,
        config,
        script,
        host,
    }
}

fn world(s: &Setup) -> (TestDeps, Arc<CountingModel>) {
    std::fs::write(s.outbox.path(), "").unwrap();
    let model = CountingModel::new(ScriptedModel::load(&s.script).unwrap());
    let mut t = memory_deps_with(s.config.clone(), model.clone());
    // One set of server processes for every run.
    t.deps.tools = s.host.clone();
    (t, model)
}

fn submit(t: &TestDeps) -> Envelope {
    Envelope::new(
        TenantId::new("t"),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: "Plan next quarter's content".into(),
            pipeline: Some("Content Production".into()),
            priority: Default::default(),
            source: None,
            submitted_ms: t.deps.clock.now_ms(),
        },
    )
}

/// Delivers until empty; a retried message comes back after a visibility
/// timeout (the clock moves a minute). Returns the injected crashes seen.
async fn drain(t: &TestDeps) -> usize {
    let mut injected = 0;
    for _ in 0..20_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                any = true;
                match dispatch(&t.deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Retry(why)) => {
                        injected += usize::from(why.starts_with("injected crash"));
                        t.clock.advance(60_000);
                        t.bus.send_now(&env).await;
                    }
                    Err(HandlerError::Fail(why)) => panic!("{}: {why}", env.message.kind()),
                }
            }
        }
        if !any {
            return injected;
        }
    }
    panic!("never drained");
}

fn check(s: &GoalState, calls: usize, sent: usize, at: &str, expect_extra_call: bool) {
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(
        goal.status,
        GoalStatus::Completed,
        "{at}: {:?}",
        goal.reason
    );
    assert!(
        s.tasks.iter().all(|t| t.status == TaskStatus::Approved),
        "{at}"
    );
    let revisions: usize = s.tasks.iter().map(|t| t.revision as usize + 1).sum();
    assert_eq!(
        s.outputs.len(),
        revisions,
        "{at}: one output per task revision"
    );
    assert_eq!(
        sent, 1,
        "{at}: the write tool ran exactly once at the server"
    );
    let tool_calls: Vec<_> = s.calls.iter().collect();
    assert_eq!(tool_calls.len(), 2, "{at}");
    assert!(
        tool_calls
            .iter()
            .all(|c| c.status == CallStatus::Done || c.status == CallStatus::Failed),
        "{at}: {tool_calls:?}"
    );
    assert_eq!(
        calls,
        s.turns.len() + usize::from(expect_extra_call),
        "{at}: model calls = turns (+ the one answer lost before its checkpoint)"
    );
    assert_eq!(s.cost.calls as usize, s.turns.len(), "{at}: each cost once");
    assert!(
        goal.outbox.is_empty() && s.tasks.iter().all(|t| t.outbox.is_empty()),
        "{at}: every decided message was sent"
    );
}

#[tokio::test]
async fn a_crash_at_every_occurrence_of_every_boundary_loses_and_doubles_nothing() {
    let scenario = fail::FailScenario::setup();
    let s = setup();
    let mut runs = 0;
    let mut per_point = Vec::new();
    for point in POINTS {
        let mut hits = 0;
        for k in 0.. {
            fail::cfg(point, &format!("{k}*off->1*return->off")).unwrap();
            let (t, model) = world(&s);
            t.bus.send_now(&submit(&t)).await;
            let injected = drain(&t).await;
            fail::remove(point);
            let state = t
                .deps
                .store
                .goal_state(&GoalKey::new("t".into(), "g".into()))
                .await
                .unwrap();
            let sent = std::fs::read_to_string(s.outbox.path())
                .unwrap()
                .lines()
                .count();
            let at = format!("{point} #{}", k + 1);
            check(
                &state,
                model.calls.load(Ordering::SeqCst),
                sent,
                &at,
                injected == 1 && point == "model.after_answer",
            );
            runs += 1;
            if injected == 0 {
                break;
            }
            assert_eq!(injected, 1, "{at}");
            hits += 1;
        }
        assert!(hits > 0, "{point} was never reached");
        per_point.push(format!("{point}: {hits}"));
    }
    println!(
        "crashes injected per boundary: {}; runs: {runs}",
        per_point.join(", ")
    );
    scenario.teardown();
}
