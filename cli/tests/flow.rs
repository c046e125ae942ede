//! A goal through every handler with in-memory adapters: the same code the
//! Lambdas and `mktg dev` run, with the queues simulated by `MemoryBus`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::HandlerError;
use mktg_cli::dispatch;
use mktg_core::{Decision, Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId};
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::{memory_deps, TestDeps};

fn submit(t: &TestDeps, tenant: &str, goal: &str, text: &str, pipeline: Option<&str>) -> Envelope {
    Envelope::new(
        TenantId::new(tenant),
        GoalId::new(goal),
        Message::GoalSubmitted {
            text: text.into(),
            pipeline: pipeline.map(String::from),
            priority: Default::default(),
            source: None,
            submitted_ms: t.deps.clock.now_ms(),
        },
    )
}

/// Delivers queued messages until every queue is empty. With `dup`, each
/// message is delivered twice in a row, as an at-least-once queue may.
async fn drain(t: &TestDeps, dup: bool) -> usize {
    let mut delivered = 0;
    for _ in 0..10_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                any = true;
                for _ in 0..if dup { 2 } else { 1 } {
                    delivered += 1;
                    match dispatch(&t.deps, q, env.clone()).await {
                        Ok(()) => {}
                        Err(HandlerError::Retry(why)) => {
                            panic!("unexpected retry of {}: {why}", env.message.kind())
                        }
                        Err(HandlerError::Fail(why)) => {
                            panic!("unexpected failure of {}: {why}", env.message.kind())
                        }
                    }
                }
            }
        }
        if !any {
            return delivered;
        }
    }
    panic!("queues never drained");
}

async fn state(t: &TestDeps, tenant: &str, goal: &str) -> GoalState {
    t.deps
        .store
        .goal_state(&GoalKey::new(tenant.into(), goal.into()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_content_goal_is_planned_executed_reviewed_revised_and_completed() {
    let t = memory_deps();
    t.bus
        .send_now(&submit(
            &t,
            "acme",
            "g1",
            "Write a blog post about our invoicing feature",
            None,
        ))
        .await;
    drain(&t, false).await;
    let s = state(&t, "acme", "g1").await;
    let goal = s.goal.as_ref().unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    assert_eq!(goal.category, "content");
    assert_eq!(goal.pipeline.as_deref(), Some("Content Production"));
    let skills: Vec<&str> = s.tasks.iter().map(|t| t.skill.as_str()).collect();
    assert_eq!(
        skills,
        [
            "content-strategy",
            "copywriting",
            "copy-editing",
            "seo-audit",
            "schema-markup"
        ]
    );
    assert!(s.tasks.iter().all(|t| t.status == TaskStatus::Approved));
    // The scripted first copywriting draft misses sections: one revision.
    let copy = s
        .tasks
        .iter()
        .find(|t| t.skill.as_str() == "copywriting")
        .unwrap();
    assert_eq!(copy.revision, 1);
    assert_eq!(copy.feedback.len(), 1);
    let copy_reviews: Vec<Decision> = s
        .reviews
        .iter()
        .filter(|r| r.task == copy.id && r.reviewer == "structural")
        .map(|r| r.decision)
        .collect();
    assert_eq!(copy_reviews, [Decision::Revise, Decision::Approve]);
    // The revised copy passed its semantic review too, with rubric scores.
    let scored = s
        .reviews
        .iter()
        .find(|r| r.task == copy.id && r.reviewer == "director")
        .unwrap();
    assert_eq!((scored.revision, scored.decision), (1, Decision::Approve));
    assert!(scored.overall.is_some() && !scored.scores.is_empty());
    assert_eq!(s.outputs.len(), 6, "five tasks, one of them twice");
    assert!(s.outputs.iter().all(|o| o.scripted));
    // Six outputs, the content strategist's tool turn, four semantic reviews,
    // copywriting's three-step review chain, five distillations of
    // learnings (one per approval) and the director's consistency check.
    assert_eq!(s.turns.len(), 20);
    assert_eq!(s.calls.len(), 1);
    // The revised copywriting prompt carried the feedback: the turn hash differs.
    let events: Vec<String> = t.bus.events().iter().map(|e| e.kind.clone()).collect();
    assert_eq!(events, ["goal.completed"]);
    // Every transition left a trace line.
    assert!(s
        .traces
        .iter()
        .any(|tr| tr.subject == "goal" && tr.to == "COMPLETED"));
}

#[tokio::test]
async fn every_message_delivered_twice_gives_the_same_result_as_once() {
    let once = memory_deps();
    once.bus
        .send_now(&submit(&once, "t", "g", "Write a blog post", None))
        .await;
    drain(&once, false).await;
    let twice = memory_deps();
    twice
        .bus
        .send_now(&submit(&twice, "t", "g", "Write a blog post", None))
        .await;
    drain(&twice, true).await;
    let (a, b) = (state(&once, "t", "g").await, state(&twice, "t", "g").await);
    assert_eq!(b.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(a.tasks.len(), b.tasks.len());
    for (x, y) in a.tasks.iter().zip(&b.tasks) {
        assert_eq!((x.status, x.revision), (y.status, y.revision), "{}", x.id);
    }
    assert_eq!(a.outputs.len(), b.outputs.len(), "no output written twice");
    assert_eq!(a.reviews.len(), b.reviews.len(), "no review written twice");
    assert_eq!(a.turns.len(), b.turns.len(), "no model turn paid twice");
    assert_eq!(once.bus.events().len(), 1);
    // Duplicates of outbox flushes may re-publish an event; consumers dedupe by key.
    let keys: std::collections::BTreeSet<String> = twice
        .bus
        .events()
        .iter()
        .map(|e| e.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 1);
}

#[tokio::test]
async fn a_pipeline_with_a_parallel_step_releases_the_group_together() {
    let t = memory_deps();
    t.bus
        .send_now(&submit(
            &t,
            "t",
            "launch",
            "Launch Set-Aside Autopilot",
            Some("product-launch"),
        ))
        .await;
    // Run only the director: it plans and releases the first step.
    let env = t.bus.pop(QueueName::Director).unwrap();
    dispatch(&t.deps, QueueName::Director, env).await.unwrap();
    assert_eq!(
        t.bus.pending(QueueName::Agent).len(),
        1,
        "only launch-strategy is ready"
    );
    drain(&t, false).await;
    let s = state(&t, "t", "launch").await;
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(s.tasks.len(), 5);
    assert!(s.tasks[1..]
        .iter()
        .all(|t| t.deps == vec![s.tasks[0].id.clone()]));
}

#[tokio::test]
async fn an_unknown_pipeline_fails_the_goal_with_the_reason() {
    let t = memory_deps();
    t.bus
        .send_now(&submit(&t, "t", "bad", "x", Some("Conversion Sprnt")))
        .await;
    drain(&t, false).await;
    let g = state(&t, "t", "bad").await.goal.unwrap();
    assert_eq!(g.status, GoalStatus::Failed);
    assert!(g
        .reason
        .unwrap()
        .contains("unknown pipeline template \"Conversion Sprnt\""));
    assert_eq!(t.bus.events()[0].kind, "goal.failed");
}

#[tokio::test]
async fn an_output_that_never_meets_the_bar_is_escalated_after_max_revisions() {
    let mut config = mktg_testkit::real_config();
    // Every reply has the headings but far too few words.
    let tmp = mktg_testkit::config_copy();
    let dir = tmp.path();
    std::fs::write(dir.join("s.yaml"), "replies:\n  - { skill: '*', role: agent, text: \"# Out\\n## Findings\\n## Recommendations\\n\" }\n").unwrap();
    config.models.scripted_script = dir.join("s.yaml");
    let model = mktg_llm::ScriptedModel::load(&config.models.scripted_script).unwrap();
    let t = mktg_testkit::memory_deps_with(config, std::sync::Arc::new(model));
    t.bus
        .send_now(&submit(&t, "t", "g", "Run an SEO audit", None))
        .await;
    drain(&t, false).await;
    let s = state(&t, "t", "g").await;
    // The thin output is sent back until revisions run out: escalated.
    let g = s.goal.unwrap();
    assert_eq!(g.status, GoalStatus::Escalated, "{:?}", g.reason);
    let audit = &s.tasks[0];
    assert_eq!(audit.status, TaskStatus::Escalated);
    assert_eq!(audit.revision, 3);
    assert_eq!(audit.feedback.len(), 4);
    assert!(s.tasks[1..].iter().all(|t| t.status == TaskStatus::Pending));
}

#[tokio::test]
async fn a_permanent_model_error_fails_the_task_and_the_goal_with_the_cause() {
    let mut config = mktg_testkit::real_config();
    let tmp = mktg_testkit::config_copy();
    let dir = tmp.path();
    // No reply for any skill but copywriting: seo-audit's call fails for good.
    std::fs::write(
        dir.join("s.yaml"),
        "replies:\n  - { skill: copywriting, text: x }\n",
    )
    .unwrap();
    config.models.scripted_script = dir.join("s.yaml");
    let model = mktg_llm::ScriptedModel::load(&config.models.scripted_script).unwrap();
    let t = mktg_testkit::memory_deps_with(config, std::sync::Arc::new(model));
    t.bus
        .send_now(&submit(&t, "t", "g", "Run an SEO audit", None))
        .await;
    // The agent reports the failure as permanent; the driver must not panic on it.
    for _ in 0..20 {
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                let _ = dispatch(&t.deps, q, env).await;
            }
        }
    }
    let s = state(&t, "t", "g").await;
    let g = s.goal.unwrap();
    assert_eq!(g.status, GoalStatus::Failed);
    assert!(
        g.reason
            .as_deref()
            .unwrap()
            .contains("no reply for role agent skill seo-audit"),
        "{:?}",
        g.reason
    );
    assert_eq!(s.tasks[0].status, TaskStatus::Failed);
    assert!(s.tasks[1..]
        .iter()
        .all(|t| t.status == TaskStatus::Cancelled));
    let kinds: Vec<String> = t.bus.events().iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds, ["task.failed", "goal.failed"]);
}

#[tokio::test]
async fn a_skill_added_only_in_config_is_planned_prompted_and_executed() {
    let tmp = mktg_testkit::config_copy();
    let root = tmp.path();
    let skills = root.join("config/skills.yaml");
    let mut yaml = std::fs::read_to_string(&skills).unwrap();
    yaml.push_str("  - name: podcast-outreach\n    squad: activate\n    description: Pitches podcast hosts.\n    tier: sonnet\n    review:\n      required_sections: [Pitch]\n      min_words: 5\n");
    std::fs::write(&skills, yaml).unwrap();
    std::fs::create_dir_all(root.join("skills/podcast-outreach")).unwrap();
    std::fs::write(root.join("skills/podcast-outreach/SKILL.md"), "---\nname: podcast-outreach\ndescription: pitches\n---\n# Podcast outreach\nWrite a pitch.\n").unwrap();
    let pipelines = root.join("config/pipelines.yaml");
    let mut yaml = std::fs::read_to_string(&pipelines).unwrap();
    yaml.push_str("\n  - name: Podcast Tour\n    priority: P2\n    steps:\n      - podcast-outreach\n      - analytics-tracking\n");
    std::fs::write(&pipelines, yaml).unwrap();
    std::fs::write(
        root.join("config/scripted/demo.yaml"),
        "replies:\n  - { skill: podcast-outreach, role: agent, text: \"# Pitches\\n## Pitch\\nHi Sam, our founder would love to talk receipts.\" }\n  - { skill: '*', role: agent, file: 'responses/{skill}.md' }\n  - { skill: '*', role: reviewer, file: 'reviews/{skill}.json' }\n",
    )
    .unwrap();
    let config = mktg_config::load(&mktg_config::Paths::under(root)).unwrap();
    let model = mktg_llm::ScriptedModel::load(&config.models.scripted_script).unwrap();
    let t = mktg_testkit::memory_deps_with(config, std::sync::Arc::new(model));
    t.bus
        .send_now(&submit(
            &t,
            "t",
            "pod",
            "Book podcast appearances",
            Some("podcast-tour"),
        ))
        .await;
    drain(&t, false).await;
    let s = state(&t, "t", "pod").await;
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(s.tasks[0].skill.as_str(), "podcast-outreach");
    assert!(s.outputs[0].body.contains("## Pitch"));
    // The agent was prompted with the new skill's own instructions.
    assert_eq!(
        s.turns
            .iter()
            .filter(|t| t.task.as_str() == "01-podcast-outreach")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_goal_over_its_budget_parks_and_resumes_when_the_budget_is_raised() {
    use mktg_store::{GoalKey, TenantBudget, Write};
    // What the first task of the plan costs (both of its turns), measured
    // on an unrestricted run of the same goal.
    let first_task_micros = {
        let probe = memory_deps();
        probe
            .bus
            .send_now(&submit(&probe, "t", "g", "Write a blog post", None))
            .await;
        drain(&probe, false).await;
        let s = state(&probe, "t", "g").await;
        s.turns
            .iter()
            .filter(|t| t.task == s.tasks[0].id)
            .map(|t| t.cost_micros)
            .sum::<u64>()
    };
    let t = memory_deps();
    let tenant = TenantId::new("t");
    // Enough for the first task of the Content Production plan only.
    let tiny = TenantBudget {
        monthly_usd: 1000.0,
        per_goal_usd: (first_task_micros - 1) as f64 / 1e6,
        updated_ms: 0,
        plan: None,
    };
    t.deps
        .store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget: tiny,
            }],
        )
        .await
        .unwrap();
    t.bus
        .send_now(&submit(&t, "t", "g", "Write a blog post", None))
        .await;
    drain(&t, false).await;
    let s = state(&t, "t", "g").await;
    assert_eq!(
        s.goal.as_ref().unwrap().status,
        GoalStatus::Running,
        "parked, not failed"
    );
    assert_eq!(
        s.tasks[0].status,
        TaskStatus::Approved,
        "{:?}",
        s.tasks
            .iter()
            .map(|t| (t.id.as_str(), t.status))
            .collect::<Vec<_>>()
    );
    let parked_task = &s.tasks[1];
    assert_eq!(parked_task.status, TaskStatus::BudgetBlocked);
    assert!(
        parked_task
            .reason
            .as_deref()
            .unwrap()
            .starts_with("the goal used its budget"),
        "{:?}",
        parked_task.reason
    );
    let parked = t.deps.store.parked(&tenant).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].level, "goal_exhausted");
    assert_eq!(
        s.cost.calls, 2,
        "no call was made while parked (task 1 took two turns)"
    );
    assert!(t
        .bus
        .events()
        .iter()
        .any(|e| e.kind == "task.budget_blocked"));

    // `mktg budget set`: raise the budget, resume every parked task.
    let raised = TenantBudget {
        monthly_usd: 1000.0,
        per_goal_usd: 50.0,
        updated_ms: 1,
        plan: None,
    };
    t.deps
        .store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget: raised,
            }],
        )
        .await
        .unwrap();
    for p in parked {
        t.bus
            .send_now(&Envelope::new(
                tenant.clone(),
                p.goal,
                Message::ResumeTask {
                    task: p.task,
                    revision: p.revision,
                },
            ))
            .await;
    }
    drain(&t, false).await;
    let s = state(&t, "t", "g").await;
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);
    assert!(t.deps.store.parked(&tenant).await.unwrap().is_empty());
    // Every call was paid once: 7 agent turns, and the semantic reviews
    // that ran (a review is not run while the goal is over budget, and its
    // record says so).
    let agent_turns = s
        .turns
        .iter()
        .filter(|t| s.tasks.iter().any(|task| task.id == t.task))
        .count();
    assert_eq!(agent_turns, 7);
    let learn_turns = s
        .turns
        .iter()
        .filter(|t| t.task.as_str().ends_with("~learn"))
        .count();
    assert_eq!(s.cost.calls as usize, s.turns.len());
    let semantic: Vec<_> = s
        .reviews
        .iter()
        .filter(|r| r.reviewer != "structural")
        .collect();
    let ran = semantic.iter().filter(|r| r.overall.is_some()).count();
    let director_turns = s
        .turns
        .iter()
        .filter(|t| t.task.as_str() == "consistency")
        .count();
    assert_eq!(
        s.turns.len(),
        agent_turns + ran + learn_turns + director_turns
    );
    assert!(semantic
        .iter()
        .filter(|r| r.overall.is_none())
        .all(|r| r.summary.starts_with("not run: the budget")));
}

#[tokio::test]
async fn at_the_critical_level_calls_are_downgraded_and_each_level_is_announced_once() {
    use mktg_store::{CostEntry, GoalKey, TenantBudget, Write};
    let t = memory_deps();
    let tenant = TenantId::new("t");
    let budget = TenantBudget {
        monthly_usd: 1.0,
        per_goal_usd: 50.0,
        updated_ms: 0,
        plan: None,
    };
    t.deps
        .store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget,
            }],
        )
        .await
        .unwrap();
    // Earlier work this month spent 96 % of the budget.
    let month = mktg_boot::month_of(t.deps.clock.now_ms());
    let earlier = CostEntry {
        tenant: tenant.clone(),
        goal: GoalId::new("earlier"),
        month,
        skill: "seo-audit".into(),
        model: "m".into(),
        usage: Default::default(),
        micros: 960_000,
    };
    t.deps
        .store
        .commit(
            &GoalKey::new(tenant.clone(), GoalId::new("earlier")),
            vec![Write::AddCost(earlier)],
        )
        .await
        .unwrap();
    let mut env = submit(&t, "t", "g", "Write a blog post", None);
    if let Message::GoalSubmitted { priority, .. } = &mut env.message {
        *priority = mktg_core::Priority::P0;
    }
    t.bus.send_now(&env).await;
    drain(&t, false).await;
    let s = state(&t, "t", "g").await;
    assert_eq!(
        s.turns[0].tier, "haiku",
        "critical forces the cheapest tier for P0 work"
    );
    assert_eq!(
        s.turns[0].cost_micros,
        mktg_core::cost::cost_micros(
            &s.turns[0].usage,
            &t.deps.config.models.prices("haiku").unwrap()
        )
    );
    assert!(s.turns.iter().all(|t| t.tier == "haiku"));
    // Calls continue at critical until the month passes 100 %; then the
    // next task parks instead of calling.
    let levels: Vec<String> = t
        .bus
        .events()
        .iter()
        .filter(|e| e.kind == "budget.level")
        .map(|e| e.status.clone())
        .collect();
    assert_eq!(
        levels,
        ["warning", "throttle", "critical", "exhausted"],
        "each level once, in order"
    );
    assert_eq!(
        s.tasks
            .iter()
            .filter(|t| t.status == TaskStatus::BudgetBlocked)
            .count(),
        1
    );
    assert_eq!(s.goal.unwrap().status, GoalStatus::Running);
}
