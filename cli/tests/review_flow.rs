//! The semantic review in the live path: structural checks, then a model
//! review against the skill's rubric, schema-checked with one repair round;
//! its feedback drives the revision loop. Memory adapters, real handlers,
//! scripted reviewer answers from config/scripted/reviews/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use mktg_boot::HandlerError;
use mktg_cli::dispatch;
use mktg_core::{Decision, Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId};
use mktg_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel};
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::{config_with_tools, memory_deps_with, TestDeps};
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

impl Recording {
    fn find(&self, role: &str, skill: &str, revision: u32) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.meta.role == role && r.meta.skill == skill && r.meta.revision == revision)
            .cloned()
            .collect()
    }
}

/// The demo script with `extra` replies placed first (they win).
fn world(extra: &str) -> (TestDeps, Arc<Recording>, tempfile::TempDir) {
    let real = mktg_testkit::repo_root().join("config/scripted");
    let demo = std::fs::read_to_string(real.join("demo.yaml")).unwrap();
    let demo = demo
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
        )
        .replace(
            "file: reviews/",
            &format!("file: {}/reviews/", real.display()),
        );
    let script = demo.replacen("replies:\n", &format!("replies:\n{extra}"), 1);
    // The shipped tools.yaml, its local server found from the repository.
    let tools = std::fs::read_to_string(mktg_testkit::repo_root().join("config/tools.yaml"))
        .unwrap()
        .replace(
            "command: .mktg/",
            &format!("command: {}/.mktg/", mktg_testkit::repo_root().display()),
        );
    let (dir, config, model) = config_with_tools(&tools, &script);
    let model = Arc::new(Recording {
        inner: model,
        requests: Mutex::new(Vec::new()),
    });
    let t = memory_deps_with(config, model.clone());
    (t, model, dir)
}

async fn run_goal(t: &TestDeps, goal: &str) -> GoalState {
    t.bus
        .send_now(&Envelope::new(
            TenantId::new("acme"),
            GoalId::new(goal),
            Message::GoalSubmitted {
                text: "Plan next quarter's content".into(),
                pipeline: Some("Content Production".into()),
                priority: Default::default(),
                source: None,
                submitted_ms: 1,
            },
        ))
        .await;
    for _ in 0..10_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                any = true;
                match dispatch(&t.deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Retry(why)) => {
                        panic!("retry of {}: {why}", env.message.kind())
                    }
                    Err(HandlerError::Fail(why)) => {
                        // A failing review is reported as a failed task, visibly.
                        tracing::info!("{} failed: {why}", env.message.kind());
                    }
                }
            }
        }
        if !any {
            break;
        }
    }
    t.deps
        .store
        .goal_state(&GoalKey::new("acme".into(), goal.into()))
        .await
        .unwrap()
}

fn reviews_of(s: &GoalState, skill: &str) -> Vec<(u32, String, Decision)> {
    let task = s.tasks.iter().find(|t| t.skill.as_str() == skill).unwrap();
    let mut out: Vec<_> = s
        .reviews
        .iter()
        .filter(|r| r.task == task.id)
        .map(|r| (r.revision, r.reviewer.clone(), r.decision))
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

#[tokio::test]
async fn every_output_is_scored_against_its_rubric_after_the_structural_check() {
    let (t, model, _dir) = world("");
    let s = run_goal(&t, "g-scored").await;
    assert_eq!(
        s.goal.as_ref().unwrap().status,
        GoalStatus::Completed,
        "{:?}",
        s.goal.as_ref().unwrap().reason
    );
    // Each approved revision has a structural and a semantic review, and
    // copywriting its chain (config/rubrics.yaml); the thin copywriting
    // draft stopped at the structural check.
    let copy = reviews_of(&s, "copywriting");
    assert_eq!(
        copy,
        [
            (0, "structural".into(), Decision::Revise),
            (1, "copy-editing".into(), Decision::Approve),
            (1, "director".into(), Decision::Approve),
            (1, "page-cro".into(), Decision::Approve),
            (1, "structural".into(), Decision::Approve),
        ]
    );
    let semantic: Vec<_> = s
        .reviews
        .iter()
        .filter(|r| r.reviewer != "structural")
        .collect();
    assert_eq!(semantic.len(), 4 + 3);
    let rubrics = &t.deps.config.rubrics;
    for r in &semantic {
        let task = s.tasks.iter().find(|x| x.id == r.task).unwrap();
        let rubric = rubrics.for_skill(&task.skill).unwrap();
        let dims: Vec<&String> = r.scores.keys().collect();
        let want: Vec<&String> = rubric.dimensions.iter().map(|d| &d.name).collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(dims, want_sorted, "{} scored on its rubric", task.skill);
        assert!(r.overall.unwrap() >= rubrics.pass_overall);
    }
    // The reviewer saw the rubric and the deliverable.
    let req = &model.find("reviewer", "seo-audit", 0)[0];
    let seo = rubrics.for_skill(&"seo-audit".into()).unwrap();
    assert!(req.system.contains(&format!("## Rubric: {}", seo.name)));
    assert!(req.messages[0].text().contains("<deliverable>"));
    // Reviews are priced like any call.
    assert_eq!(
        s.cost.calls as usize,
        s.turns.len(),
        "every model call (agents and reviews) has its cost"
    );
}

#[tokio::test]
async fn a_semantic_revise_sends_the_task_back_with_quoted_feedback_then_approves() {
    let (t, model, _dir) = world(&format!(
        "  - skill: content-strategy\n    role: reviewer\n    revision: 0\n    file: {}/config/scripted/reviews/content-strategy-revise.json\n",
        mktg_testkit::repo_root().display()
    ));
    let s = run_goal(&t, "g-revise").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
    assert_eq!(
        reviews_of(&s, "content-strategy"),
        [
            (0, "semantic".into(), Decision::Revise),
            (0, "structural".into(), Decision::Approve),
            (1, "semantic".into(), Decision::Approve),
            (1, "structural".into(), Decision::Approve),
        ]
    );
    // Revision 1 was asked for with the previous output and each quoted finding.
    let revise = s
        .reviews
        .iter()
        .find(|r| r.reviewer == "semantic" && r.decision == Decision::Revise)
        .unwrap();
    let again = &model.find("agent", "content-strategy", 1)[0];
    let prompt = again.messages[0].text();
    assert!(prompt.contains("<previous-output revision=\"0\">"));
    for f in &revise.findings {
        assert!(
            prompt.contains(f.quote.as_deref().unwrap()),
            "quote missing"
        );
        assert!(prompt.contains(&f.fix));
    }
    assert_eq!(revise.overall, Some(5));
}

#[tokio::test]
async fn an_answer_that_breaks_the_format_gets_one_repair_round() {
    let (t, model, _dir) = world(
        "  - skill: seo-audit\n    role: reviewer\n    turn: 0\n    text: \"Looks great to me!\"\n",
    );
    let s = run_goal(&t, "g-repair").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let asked = model.find("reviewer", "seo-audit", 0);
    assert_eq!(asked.len(), 2, "one review, one repair");
    let repair = asked[1].messages.last().unwrap().text();
    assert!(
        repair.contains("does not follow the answer format"),
        "{repair}"
    );
    assert!(repair.contains("no JSON object"));
}

#[tokio::test]
async fn a_reviewer_that_never_answers_in_format_fails_the_task_visibly() {
    let (t, _model, _dir) =
        world("  - skill: seo-audit\n    role: reviewer\n    text: \"{\\\"decision\\\": \\\"FINE\\\"}\"\n");
    let s = run_goal(&t, "g-broken").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Failed);
    let seo = s
        .tasks
        .iter()
        .find(|x| x.skill.as_str() == "seo-audit")
        .unwrap();
    assert_eq!(seo.status, TaskStatus::Failed);
    let reason = seo.reason.as_deref().unwrap();
    assert!(reason.contains("broke the format twice"), "{reason}");
    assert!(goal.reason.as_deref().unwrap().contains("seo-audit"));
}

#[tokio::test]
async fn a_reviewer_that_always_asks_for_more_escalates_after_max_revisions() {
    let (t, _model, _dir) = world(&format!(
        "  - skill: content-strategy\n    role: reviewer\n    file: {}/config/scripted/reviews/content-strategy-revise.json\n",
        mktg_testkit::repo_root().display()
    ));
    let s = run_goal(&t, "g-escalate").await;
    let task = s
        .tasks
        .iter()
        .find(|x| x.skill.as_str() == "content-strategy")
        .unwrap();
    assert_eq!(task.status, TaskStatus::Escalated);
    assert_eq!(task.revision, t.deps.config.max_revisions);
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Escalated);
    assert!(t.bus.events().iter().any(|e| e.kind == "task.escalated"));
}

#[tokio::test]
async fn a_three_reviewer_chain_runs_step_by_step_and_restarts_where_it_failed() {
    let real = mktg_testkit::repo_root().join("config/scripted");
    // The first draft is the full page (it passes the structural check);
    // page-cro sends revision 0 back; everything else approves.
    let revise = r#"{"decision":"REVISE","scores":{"clarity":6,"specificity":5,"claim_accuracy":6,"brand_voice":7,"call_to_action":5},"overall":5,"summary":"The headline is strong but nothing on the page says what it costs.","feedback":[{"severity":"major","quote":"Know what you owe before the IRS does.","problem":"The promise is not followed by the price, so a visitor cannot judge it.","fix":"Put the Free and Pro prices right under the subheadline."}]}"#;
    let (t, model, _dir) = world(&format!(
        "  - skill: copywriting\n    role: agent\n    file: {real}/responses/copywriting.md\n  - skill: copywriting\n    role: reviewer\n    step: page-cro\n    revision: 0\n    text: '{revise}'\n",
        real = real.display()
    ));
    let s = run_goal(&t, "g-chain").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
    assert_eq!(
        reviews_of(&s, "copywriting"),
        [
            (0, "copy-editing".into(), Decision::Approve),
            (0, "page-cro".into(), Decision::Revise),
            (0, "structural".into(), Decision::Approve),
            (1, "director".into(), Decision::Approve),
            (1, "page-cro".into(), Decision::Approve),
            (1, "structural".into(), Decision::Approve),
        ],
        "revision 1 restarted at page-cro, the step that failed"
    );
    // Each step reviewed through its own lens.
    let steps: Vec<String> = model
        .find("reviewer", "copywriting", 0)
        .iter()
        .map(|r| r.meta.step.clone())
        .collect();
    assert_eq!(steps, ["copy-editing", "page-cro"]);
    let page_cro = &model.find("reviewer", "copywriting", 0)[1];
    assert!(page_cro
        .system
        .starts_with("You are the page-cro specialist"));
    let director = &model.find("reviewer", "copywriting", 1)[1];
    assert!(director.system.starts_with("You are the Director"));
    // The revision carried page-cro's quoted feedback.
    let again = &model.find("agent", "copywriting", 1)[0];
    assert!(again.messages[0]
        .text()
        .contains("Put the Free and Pro prices"));
}

#[tokio::test]
async fn learnings_from_an_approved_output_reach_the_next_prompt_of_the_skill_and_are_scored() {
    let (mut t, model, _dir) = world("");
    // No control group here: every revision gets the learnings.
    let mut config = (*t.deps.config).clone();
    config.learnings.control_percent = 0;
    t.deps.config = Arc::new(config);
    let first = run_goal(&t, "g-teach").await;
    assert_eq!(first.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let tenant = TenantId::new("acme");
    let (learned, uses) = t
        .deps
        .store
        .learnings(&tenant, "content-strategy")
        .await
        .unwrap();
    assert_eq!(learned.len(), 2, "distilled after the approval");
    assert!(uses.is_empty(), "the first goal had nothing to use");
    assert!(learned
        .iter()
        .all(|l| l.score >= 7 && l.source_goal.as_str() == "g-teach"));
    // The first prompt had no learnings block; the next goal's has them.
    let before = &model.find("agent", "content-strategy", 0)[0];
    assert!(!before.messages[0].text().contains("<learnings>"));
    let second = run_goal(&t, "g-learn").await;
    assert_eq!(second.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let asked: Vec<ChatRequest> = model
        .find("agent", "content-strategy", 0)
        .into_iter()
        .filter(|r| r.meta.task == "01-content-strategy")
        .collect();
    let prompt = asked.last().unwrap().messages[0].text();
    assert!(prompt.contains("<learnings>"), "{prompt}");
    for l in &learned {
        assert!(prompt.contains(&l.text), "missing learning {}", l.id);
    }
    // The use is recorded, with the score the output then got.
    let (_, uses) = t
        .deps
        .store
        .learnings(&tenant, "content-strategy")
        .await
        .unwrap();
    let used = uses.iter().find(|u| u.goal.as_str() == "g-learn").unwrap();
    assert!(!used.control);
    assert_eq!(used.learnings.len(), 2);
    assert!(used.score.is_some_and(|s| s >= 7));
}

#[tokio::test]
async fn a_lesson_already_in_the_playbook_is_not_stored_twice() {
    let (t, _model, _dir) = world("");
    run_goal(&t, "g-one").await;
    run_goal(&t, "g-two").await;
    let (learned, _) = t
        .deps
        .store
        .learnings(&TenantId::new("acme"), "seo-audit")
        .await
        .unwrap();
    assert_eq!(
        learned.len(),
        2,
        "the second goal's identical lessons were not added"
    );
}

#[tokio::test]
async fn a_consistency_conflict_sends_one_targeted_revision_before_the_goal_completes() {
    let conflict = r#"{"conflicts": [{"revise": "05-schema-markup", "quote": "The site currently ships no structured data at all", "conflicts_with": "04-seo-audit", "problem": "The SEO audit found Organization markup already validating on the homepage.", "fix": "Inventory the live markup and replace it instead of adding a second Organization entity."}]}"#;
    let (t, model, _dir) = world(&format!(
        "  - skill: director\n    role: director\n    step: consistency\n    text: '{conflict}'\n"
    ));
    let s = run_goal(&t, "g-consistent").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    assert!(goal.consistency_checked);
    let schema = s
        .tasks
        .iter()
        .find(|x| x.id.as_str() == "05-schema-markup")
        .unwrap();
    assert_eq!(schema.revision, 1, "revised once, by the check");
    assert_eq!(schema.feedback[0].reviewer, "consistency");
    // Only the conflicting task was reopened.
    for other in s.tasks.iter().filter(|x| x.id != schema.id) {
        let expected = u32::from(other.skill.as_str() == "copywriting");
        assert_eq!(other.revision, expected, "{}", other.id);
    }
    // The revision prompt carries the conflict, quoted.
    let again = &model.find("agent", "schema-markup", 1)[0];
    assert!(again.messages[0]
        .text()
        .contains("The site currently ships no structured data at all"));
    // The check ran once, although the goal was "all approved" twice.
    let checks = model
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.meta.step == "consistency")
        .count();
    assert_eq!(checks, 1);
    assert!(s.traces.iter().any(|tr| tr
        .note
        .starts_with("consistency check: 1 conflict(s); revising 05-schema-markup")));
}

#[tokio::test]
async fn a_rejected_output_is_replanned_and_the_fresh_attempt_knows_why() {
    let reject = r#"{"decision":"REJECT","scores":{"evidence":2,"positioning_fit":2,"prioritization":3,"feasibility":3,"measurability":2},"overall":2,"summary":"This is not a content strategy for the goal.","feedback":[{"severity":"critical","quote":"Tallybook Content Strategy","problem":"It plans a different quarter than the goal asks for.","fix":"Plan the content of the quarter the goal names."}]}"#;
    let (t, model, _dir) = world(&format!(
        "  - skill: content-strategy\n    role: reviewer\n    revision: 0\n    text: '{reject}'\n"
    ));
    let s = run_goal(&t, "g-reject").await;
    assert_eq!(s.goal.as_ref().unwrap().status, GoalStatus::Completed);
    let task = s
        .tasks
        .iter()
        .find(|x| x.skill.as_str() == "content-strategy")
        .unwrap();
    assert_eq!(task.revision, 1);
    assert!(s
        .traces
        .iter()
        .any(|tr| tr.note.contains("rejected; re-planning the task")));
    let again = &model.find("agent", "content-strategy", 1)[0];
    assert!(again.messages[0]
        .text()
        .contains("Plan the content of the quarter the goal names."));
}

#[tokio::test]
async fn with_on_reject_fail_a_rejection_heals_once_with_a_narrower_scope() {
    let reject = r#"{"decision":"REJECT","scores":{"evidence":2,"positioning_fit":2,"prioritization":3,"feasibility":3,"measurability":2},"overall":2,"summary":"This tries to plan everything at once.","feedback":[{"severity":"critical","quote":"Tallybook Content Strategy","problem":"Too broad to act on.","fix":"Plan one pillar well."}]}"#;
    let (mut t, model, _dir) = world(&format!(
        "  - skill: content-strategy\n    role: reviewer\n    revision: 0\n    text: '{reject}'\n"
    ));
    let mut config = (*t.deps.config).clone();
    config.rubrics.replan_on_reject = false;
    t.deps.config = Arc::new(config);
    let s = run_goal(&t, "g-reject-heal").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    let task = s
        .tasks
        .iter()
        .find(|x| x.skill.as_str() == "content-strategy")
        .unwrap();
    assert_eq!(task.revision, 1);
    assert_eq!(task.heal.len(), 1);
    assert_eq!(
        task.heal[0].kind,
        mktg_core::heal::FailureKind::QualityRejected
    );
    assert!(task.strategy.narrow);
    assert!(s.traces.iter().any(|tr| tr
        .note
        .starts_with("self-heal attempt 1/2: quality rejected (rejected by review: This tries to plan everything at once.) → retry narrower scope")));
    let again = &model.find("agent", "content-strategy", 1)[0];
    let prompt = again.messages[0].text();
    assert!(prompt.contains("<scope>\nNarrow the scope"), "{prompt}");
    assert!(
        prompt.contains("Plan one pillar well."),
        "the reviewer's fix reaches the retry"
    );
}
