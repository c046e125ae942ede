//! Tenant isolation at the store: every key starts with the tenant, a
//! commit is for one tenant, and no write inside it may name another. Two
//! tenants with the same goal id never see each other's items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::learn::{Learning, LearningUse};
use mktg_core::{Envelope, GoalId, Message, TenantId};
use mktg_store::{CostEntry, GoalKey, Parked, PendingApproval, StoreError, TenantBudget, Write};
use mktg_testkit::memory_deps;

fn submit(tenant: &str, text: &str) -> Envelope {
    Envelope::new(
        TenantId::new(tenant),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: text.into(),
            pipeline: None,
            priority: Default::default(),
            source: None,
            submitted_ms: 1,
        },
    )
}

#[tokio::test]
async fn no_write_in_a_commit_for_one_tenant_may_touch_another() {
    let t = memory_deps();
    director::on_message(&t.deps, submit("alpha", "Write a blog post about receipts"))
        .await
        .unwrap();
    director::on_message(
        &t.deps,
        submit("beta", "Lift trial signups on the pricing page"),
    )
    .await
    .unwrap();
    let a = GoalKey::new("alpha".into(), "g".into());
    let b = GoalKey::new("beta".into(), "g".into());
    let sa = t.deps.store.goal_state(&a).await.unwrap();
    let sb = t.deps.store.goal_state(&b).await.unwrap();
    // Same goal id, separate worlds.
    assert!(sa.tasks.iter().all(|x| x.tenant.as_str() == "alpha"));
    assert!(sb.tasks.iter().all(|x| x.tenant.as_str() == "beta"));
    assert_ne!(
        sa.tasks
            .iter()
            .map(|x| x.skill.to_string())
            .collect::<Vec<_>>(),
        sb.tasks
            .iter()
            .map(|x| x.skill.to_string())
            .collect::<Vec<_>>()
    );
    let beta = TenantId::new("beta");
    let goal_b = sb.goal.clone().unwrap();
    let task_b = sb.tasks[0].clone();
    let writes = vec![
        Write::Goal {
            goal: goal_b.clone(),
            expect_version: goal_b.version,
        },
        Write::NewGoal(goal_b.clone()),
        Write::Task {
            task: task_b.clone(),
            expect_version: task_b.version,
        },
        Write::NewTask(task_b.clone()),
        Write::AddCost(CostEntry {
            tenant: beta.clone(),
            goal: "g".into(),
            month: "2026-11".into(),
            skill: "copywriting".into(),
            model: "m".into(),
            usage: Default::default(),
            micros: 1,
        }),
        Write::Park {
            tenant: beta.clone(),
            parked: Parked {
                goal: "g".into(),
                task: task_b.id.clone(),
                revision: 0,
                level: "x".into(),
                reason: "x".into(),
                at_ms: 1,
            },
        },
        Write::Unpark {
            tenant: beta.clone(),
            goal: "g".into(),
            task: task_b.id.clone(),
        },
        Write::Claim {
            tenant: beta.clone(),
            kind: "k".into(),
            key: "k".into(),
            expires_at: 0,
        },
        Write::Lease {
            tenant: beta.clone(),
            kind: "k".into(),
            key: "k".into(),
            holder: "h".into(),
            expires_at: 9,
            now: 1,
        },
        Write::Budget {
            tenant: beta.clone(),
            budget: TenantBudget {
                monthly_usd: 1e6,
                per_goal_usd: 1e6,
                updated_ms: 1,
                plan: None,
            },
        },
        Write::TakeRate {
            tenant: beta.clone(),
            bucket: "b".into(),
            window: "w".into(),
            limit: 1,
            expires_at: 9,
        },
        Write::AwaitApproval {
            tenant: beta.clone(),
            approval: PendingApproval {
                reference: "r".into(),
                goal: "g".into(),
                task: task_b.id.clone(),
                revision: 0,
                turn: 0,
                call: "c".into(),
                tool: "t".into(),
                effect: "write".into(),
                input: "{}".into(),
                at_ms: 1,
            },
        },
        Write::ClearApproval {
            tenant: beta.clone(),
            reference: "r".into(),
        },
        Write::NewLearning {
            tenant: beta.clone(),
            learning: Learning {
                id: "l".into(),
                skill: "copywriting".into(),
                text: "x".into(),
                evidence: "x".into(),
                score: 9,
                source_goal: "g".into(),
                source_task: task_b.id.clone(),
                created_ms: 1,
                pruned: None,
            },
        },
        Write::LearningUse {
            tenant: beta.clone(),
            skill: "copywriting".into(),
            used: LearningUse {
                goal: "g".into(),
                task: task_b.id.clone(),
                revision: 0,
                control: false,
                learnings: vec![],
                score: None,
                at_ms: 1,
            },
        },
        Write::Doc {
            tenant: beta.clone(),
            collection: "allocation".into(),
            id: "current".into(),
            body: serde_json::json!({"channels": {"x": 1}}),
            new_only: false,
            ttl: None,
        },
    ];
    let before = t.store.len();
    for w in writes {
        let what = format!("{w:?}").chars().take(60).collect::<String>();
        // Alone, and hidden among writes that are fine.
        for batch in [
            vec![w.clone()],
            vec![
                Write::Claim {
                    tenant: "alpha".into(),
                    kind: "ok".into(),
                    key: what.clone(),
                    expires_at: 0,
                },
                w,
            ],
        ] {
            match t.deps.store.commit(&a, batch).await {
                Err(StoreError::Permanent(why)) => assert!(why.contains("beta"), "{what}: {why}"),
                other => panic!("{what}: a write for beta inside alpha's commit gave {other:?}"),
            }
        }
    }
    assert_eq!(
        t.store.len(),
        before,
        "nothing was written, not even the allowed half"
    );
    // Reads are keyed by the caller's tenant: alpha's view is unchanged.
    let again = t.deps.store.goal_state(&a).await.unwrap();
    assert_eq!(again.tasks, sa.tasks);
    assert!(t
        .deps
        .store
        .docs(&"alpha".into(), "allocation")
        .await
        .unwrap()
        .is_empty());
}
