//! The director planning with a model: a valid plan is used as given, an
//! invalid one gets one repair round, and after that the routing plan is
//! used and the reason recorded. Replies come from scripted model turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_cli::dispatch;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId};
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::TestDeps;
use std::sync::Arc;

/// Deps whose scripted model answers the director with `replies` (YAML list
/// entries) and every agent with the demo outputs; planning always on.
fn deps_with_director(replies: &str) -> (tempfile::TempDir, TestDeps) {
    let tmp = mktg_testkit::config_copy();
    let dir = tmp.path().join("config/scripted");
    std::fs::write(
        dir.join("plan.yaml"),
        format!("replies:\n{replies}  - {{ skill: copywriting, role: agent, revision: 0, file: responses/copywriting-draft.md }}\n  - {{ skill: '*', role: agent, file: 'responses/{{skill}}.md' }}\n  - {{ skill: '*', role: reviewer, file: 'reviews/{{skill}}.json' }}\n"),
    )
    .unwrap();
    let mut config = mktg_config::load(&mktg_config::Paths::under(tmp.path())).unwrap();
    config.models.plan_with_model = "always".into();
    config.models.scripted_script = dir.join("plan.yaml");
    let model = mktg_llm::ScriptedModel::load(&config.models.scripted_script).unwrap();
    (tmp, mktg_testkit::memory_deps_with(config, Arc::new(model)))
}

async fn run(t: &TestDeps, text: &str) -> GoalState {
    t.bus
        .send_now(&Envelope::new(
            TenantId::new("t"),
            GoalId::new("g"),
            Message::GoalSubmitted {
                text: text.into(),
                pipeline: None,
                priority: Default::default(),
                source: None,
                submitted_ms: 1,
            },
        ))
        .await;
    for _ in 0..1000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                any = true;
                dispatch(&t.deps, q, env).await.unwrap();
            }
        }
        if !any {
            break;
        }
    }
    t.deps
        .store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap()
}

const GOOD: &str = r#"{"rationale": "Position first, then write and promote.", "tasks": [
  {"id": "launch", "skill": "launch-strategy", "depends_on": [], "why": "plan the launch"},
  {"id": "page", "skill": "copywriting", "depends_on": ["launch"], "why": "the launch page"},
  {"id": "ads", "skill": "paid-ads", "depends_on": ["launch"], "why": "paid reach"},
  {"id": "track", "skill": "analytics-tracking", "depends_on": ["page", "ads"], "why": "measure it"}]}"#;

fn reply(turn: u32, text: &str) -> String {
    format!(
        "  - role: director\n    turn: {turn}\n    text: '{}'\n",
        text.replace('\'', "''").replace('\n', " ")
    )
}

#[tokio::test]
async fn a_valid_model_plan_is_used_as_given_with_its_dependencies() {
    let (_tmp, t) = deps_with_director(&reply(0, GOOD));
    let s = run(&t, "Launch Set-Aside Autopilot").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let skills: Vec<&str> = s.tasks.iter().map(|t| t.skill.as_str()).collect();
    assert_eq!(
        skills,
        [
            "launch-strategy",
            "copywriting",
            "paid-ads",
            "analytics-tracking"
        ]
    );
    assert_eq!(s.tasks[3].deps.len(), 2);
    assert_eq!(s.tasks[1].phase, 1);
    let note = &s
        .traces
        .iter()
        .find(|t| t.subject == "goal" && t.from == "-")
        .unwrap()
        .note;
    assert!(
        note.starts_with("planned 4 tasks with the model: Position first"),
        "{note}"
    );
    // The planning call was checkpointed and costed like any turn.
    assert_eq!(
        s.turns.iter().filter(|t| t.task.as_str() == "plan").count(),
        1
    );
    let agent = s
        .turns
        .iter()
        .filter(|t| s.tasks.iter().any(|task| task.id == t.task))
        .count();
    assert_eq!(agent, 5, "five agent calls (copywriting revised once)");
    assert_eq!(
        s.cost.calls as usize,
        s.turns.len(),
        "the planning call, agent calls and reviews each costed once"
    );
}

#[tokio::test]
async fn an_invalid_plan_gets_one_repair_round_with_the_errors() {
    let bad = r#"{"rationale": "x", "tasks": [{"id": "a", "skill": "growth-hacking", "depends_on": []}]}"#;
    let (_tmp, t) = deps_with_director(&(reply(0, bad) + &reply(1, GOOD)));
    let s = run(&t, "Launch Set-Aside Autopilot").await;
    let note = &s
        .traces
        .iter()
        .find(|t| t.subject == "goal" && t.from == "-")
        .unwrap()
        .note;
    assert!(
        note.contains("with the model (after one repair round)"),
        "{note}"
    );
    assert_eq!(s.tasks.len(), 4);
    assert_eq!(
        s.turns.iter().filter(|t| t.task.as_str() == "plan").count(),
        2
    );
}

#[tokio::test]
async fn a_plan_invalid_twice_falls_back_to_the_routing_plan_and_says_why() {
    let cyclic = r#"{"rationale": "x", "tasks": [{"id": "a", "skill": "copywriting", "depends_on": ["b"]}, {"id": "b", "skill": "page-cro", "depends_on": ["a"]}]}"#;
    let (_tmp, t) = deps_with_director(&(reply(0, cyclic) + &reply(1, "I cannot plan this.")));
    let s = run(&t, "Improve our signup conversion").await;
    let g = s.goal.as_ref().unwrap();
    assert_eq!(g.pipeline.as_deref(), Some("Conversion Sprint"));
    let note = &s
        .traces
        .iter()
        .find(|t| t.subject == "goal" && t.from == "-")
        .unwrap()
        .note;
    assert!(note.contains("model planning fell back: the model's plan was invalid twice (the answer contains no JSON object)"), "{note}");
    assert!(s.tasks.iter().all(|t| t.status == TaskStatus::Approved));
}

#[test]
fn the_director_prompt_is_generated_from_the_live_registry() {
    let config = mktg_testkit::real_config();
    let prompt = director::planner::system_prompt(&config);
    assert!(
        prompt.contains("a team of 25 specialist agents in 5 squads"),
        "{}",
        &prompt[..200]
    );
    for skill in config.skills.keys() {
        assert!(
            prompt.contains(&format!("- {skill}: ")),
            "{skill} missing from the prompt"
        );
    }
    assert!(prompt.contains("- Content Production: content-strategy -> copywriting"));
}
