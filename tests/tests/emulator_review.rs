//! Issue 5's behaviours through the real queues, table and handlers: a
//! semantic REVISE and its revision, the three-reviewer chain, a consistency
//! conflict's targeted revision, learnings reaching the next goal's prompt,
//! and escalation after max revisions. Needs `localstack/up`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use mktg_core::{Decision, Envelope, GoalId, GoalStatus, Message, TaskStatus, TenantId};
use mktg_it::{emulator, fresh_tenant, settled};
use mktg_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel};
use mktg_store::{GoalKey, GoalState};
use std::sync::{Arc, Mutex};

struct Recording {
    inner: ScriptedModel,
    requests: Mutex<Vec<ChatRequest>>,
}

#[async_trait]
impl ChatModel for Recording {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn is_scripted(&self) -> bool {
        true
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        self.inner.complete(request).await
    }
}

fn submit(tenant: &TenantId, goal: &str) -> Envelope {
    Envelope::new(
        tenant.clone(),
        GoalId::new(goal),
        Message::GoalSubmitted {
            text: "Plan next quarter's content".into(),
            pipeline: Some("Content Production".into()),
            priority: Default::default(),
            source: None,
            submitted_ms: 1,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_revisions_chains_consistency_learnings_and_escalation_through_the_emulator() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let root = mktg_it::repo_root();
    let real = root.join("config/scripted");
    let demo = std::fs::read_to_string(real.join("demo.yaml"))
        .unwrap()
        .replace(
            "file: responses/",
            &format!("file: {}/responses/", real.display()),
        )
        .replace(
            "file: \"responses/",
            &format!("file: \"{}/responses/", real.display()),
        )
        .replace(
            "file: \"reviews/",
            &format!("file: \"{}/reviews/", real.display()),
        );
    let conflict = r#"{"conflicts": [{"revise": "05-schema-markup", "quote": "The site currently ships no structured data at all", "conflicts_with": "04-seo-audit", "problem": "The SEO audit found markup already validating.", "fix": "Replace the live markup instead of adding more."}]}"#;
    // Goal A: content-strategy's first revision is sent back by the
    // semantic review; the consistency check reopens schema-markup.
    // Goal B: content-strategy is never good enough: escalated.
    let extra = format!(
        "  - {{skill: content-strategy, role: reviewer, revision: 0, file: {r}/reviews/content-strategy-revise.json}}\n  - {{skill: director, role: director, step: consistency, text: '{conflict}'}}\n",
        r = real.display()
    );
    let script_a = demo.replacen("replies:\n", &format!("replies:\n{extra}"), 1);
    let tools = std::fs::read_to_string(root.join("config/tools.yaml"))
        .unwrap()
        .replace(
            "command: .mktg/",
            &format!("command: {}/.mktg/", root.display()),
        );
    let (_dir, mut config, model) = mktg_testkit::config_with_tools(&tools, &script_a);
    config.learnings.control_percent = 0;
    let recording = Arc::new(Recording {
        inner: model,
        requests: Mutex::new(Vec::new()),
    });
    let mut deps = emu.deps();
    deps.tools = Arc::new(mktg_tools::McpHost::new(config.tools.clone()));
    deps.config = Arc::new(config);
    deps.model = recording.clone();
    let tenant = TenantId::new(fresh_tenant("it-review"));
    let workers = emu.workers(deps.clone());
    deps.bus.send(&submit(&tenant, "g-a")).await.unwrap();
    let a = settled(&deps, &GoalKey::new(tenant.clone(), "g-a".into())).await;
    workers.stop().await;
    assert_eq!(
        a.goal.as_ref().unwrap().status,
        GoalStatus::Completed,
        "{:?}",
        a.goal
    );
    let by = |s: &GoalState, skill: &str| {
        s.tasks
            .iter()
            .find(|t| t.skill.as_str() == skill)
            .unwrap()
            .clone()
    };
    let strategy = by(&a, "content-strategy");
    assert_eq!(
        strategy.revision, 1,
        "revised once after the semantic REVISE"
    );
    let decisions: Vec<(u32, String, Decision)> = a
        .reviews
        .iter()
        .filter(|r| r.task == strategy.id)
        .map(|r| (r.revision, r.reviewer.clone(), r.decision))
        .collect();
    assert!(decisions.contains(&(0, "semantic".into(), Decision::Revise)));
    assert!(decisions.contains(&(1, "semantic".into(), Decision::Approve)));
    // The three-reviewer chain on copywriting.
    let copy = by(&a, "copywriting");
    for step in ["copy-editing", "page-cro", "director"] {
        assert!(
            a.reviews.iter().any(|r| r.task == copy.id
                && r.reviewer == step
                && r.decision == Decision::Approve),
            "no {step} review"
        );
    }
    // The consistency check reopened schema-markup once.
    let schema = by(&a, "schema-markup");
    assert_eq!(schema.revision, 1);
    assert_eq!(schema.feedback.last().unwrap().reviewer, "consistency");

    // Goal B runs with learnings from goal A in the content-strategy prompt,
    // and a reviewer that always asks for more: escalated.
    let extra_b = format!(
        "  - {{skill: content-strategy, role: reviewer, file: {r}/reviews/content-strategy-revise.json}}\n",
        r = real.display()
    );
    let script_b = demo.replacen("replies:\n", &format!("replies:\n{extra_b}"), 1);
    let (_dir_b, mut config_b, model_b) = mktg_testkit::config_with_tools(&tools, &script_b);
    config_b.learnings.control_percent = 0;
    let recording_b = Arc::new(Recording {
        inner: model_b,
        requests: Mutex::new(Vec::new()),
    });
    let mut deps_b = deps.clone();
    deps_b.config = Arc::new(config_b);
    deps_b.model = recording_b.clone();
    let workers = emu.workers(deps_b.clone());
    deps_b.bus.send(&submit(&tenant, "g-b")).await.unwrap();
    let b = settled(&deps_b, &GoalKey::new(tenant.clone(), "g-b".into())).await;
    workers.stop().await;
    let (learned, _) = deps_b
        .store
        .learnings(&tenant, "content-strategy")
        .await
        .unwrap();
    assert!(!learned.is_empty());
    let first = recording_b
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.meta.role == "agent" && r.meta.skill == "content-strategy")
        .cloned()
        .unwrap();
    let prompt = first.messages[0].text();
    assert!(prompt.contains("<learnings>"), "{prompt}");
    assert!(prompt.contains(&learned[0].text));
    assert_eq!(b.goal.as_ref().unwrap().status, GoalStatus::Escalated);
    let strategy_b = by(&b, "content-strategy");
    assert_eq!(strategy_b.status, TaskStatus::Escalated);
    assert_eq!(strategy_b.revision, deps_b.config.max_revisions);
}
