//! Tool calls through the real queues and table: a write tool's approval
//! and the rate buckets' conditional counters in DynamoDB. Needs
//! `localstack/up` and `scripts/mcp-servers`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::tools::CallStatus;
use mktg_core::{Envelope, GoalId, GoalStatus, Message, TaskStatus, TenantId};
use mktg_it::{emulator, fresh_tenant};
use mktg_store::{GoalKey, GoalState, StoreError, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn wait_for(
    deps: &mktg_boot::Deps,
    key: &GoalKey,
    what: &str,
    done: impl Fn(&GoalState) -> bool,
) -> GoalState {
    let start = Instant::now();
    loop {
        let state = deps.store.goal_state(key).await.unwrap();
        if done(&state) {
            return state;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}: {:?}",
            state.traces
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_tool_waits_for_approval_then_runs_once_through_sqs_and_dynamodb() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let real = mktg_it::repo_root().join("config/scripted");
    let (_dir, config, model) = mktg_testkit::config_with_tools(
        &format!(
            "servers:\n  everything:\n    command: {}\n    args: [stdio]\n    skills: [content-strategy]\n    effect: read\n    tools:\n      echo: {{effect: write}}\n",
            mktg_testkit::everything_server()
        ),
        &format!(
            "replies:\n  - skill: content-strategy\n    role: agent\n    turn: 0\n    tool_uses:\n      - {{name: everything__echo, input: {{message: publish}}}}\n  - skill: copywriting\n    role: agent\n    revision: 0\n    file: {r}/responses/copywriting-draft.md\n  - skill: \"*\"\n    role: agent\n    file: \"{r}/responses/{{skill}}.md\"\n  - skill: \"*\"\n    role: reviewer\n    file: \"{r}/reviews/{{skill}}.json\"\n",
            r = real.display()
        ),
    );
    let mut deps = emu.deps();
    deps.tools = Arc::new(mktg_tools::McpHost::new(config.tools.clone()));
    deps.config = Arc::new(config);
    deps.model = Arc::new(model);
    let tenant = TenantId::new(fresh_tenant("it-approve"));
    let goal = GoalId::new("g-approve");
    let key = GoalKey::new(tenant.clone(), goal.clone());
    let workers = emu.workers(deps.clone());
    deps.bus
        .send(&Envelope::new(
            tenant.clone(),
            goal.clone(),
            Message::GoalSubmitted {
                text: "Plan content".into(),
                pipeline: Some("Content Production".into()),
                priority: Default::default(),
                source: None,
                submitted_ms: 1,
            },
        ))
        .await
        .unwrap();
    let waiting = wait_for(&deps, &key, "the approval request", |s| {
        s.tasks
            .iter()
            .any(|t| t.status == TaskStatus::AwaitingApproval)
    })
    .await;
    assert_eq!(waiting.calls[0].status, CallStatus::AwaitingApproval);
    let pending = mktg_cli::approvals::list(&deps, &tenant).await.unwrap();
    assert_eq!(pending.len(), 1);
    // Nothing moves while it waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = deps.store.goal_state(&key).await.unwrap();
    assert_eq!(still.calls[0].status, CallStatus::AwaitingApproval);
    assert_eq!(still.goal.unwrap().status, GoalStatus::Running);

    mktg_cli::approvals::approve(&deps, &tenant, &pending[0].call, "it")
        .await
        .unwrap();
    let done = wait_for(&deps, &key, "the goal to settle", |s| {
        s.goal.as_ref().is_some_and(|g| g.status.is_settled())
    })
    .await;
    workers.stop().await;
    assert_eq!(done.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(done.calls.len(), 1);
    assert_eq!(done.calls[0].status, CallStatus::Done);
    assert_eq!(done.calls[0].attempts, 1, "the write ran once");
    assert!(done.calls[0].result.as_deref().unwrap().contains("publish"));
    assert!(mktg_cli::approvals::list(&deps, &tenant)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_rate_buckets_admit_exactly_the_limit_under_concurrency() {
    let emu = emulator().await;
    let deps = emu.deps();
    let tenant = TenantId::new(fresh_tenant("it-rate"));
    let key = GoalKey::tenant_only(tenant.clone());
    let take = |deps: mktg_boot::Deps, key: GoalKey, tenant: TenantId| async move {
        deps.store
            .commit(
                &key,
                vec![Write::TakeRate {
                    tenant,
                    bucket: "everything__echo".into(),
                    window: "m#1".into(),
                    limit: 3,
                    expires_at: 4_000_000_000,
                }],
            )
            .await
    };
    let results =
        futures::future::join_all((0..8).map(|_| take(deps.clone(), key.clone(), tenant.clone())))
            .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!((ok, refused), (3, 5), "{results:?}");
    // Another window has its own count.
    let other = deps
        .store
        .commit(
            &key,
            vec![Write::TakeRate {
                tenant: tenant.clone(),
                bucket: "everything__echo".into(),
                window: "m#2".into(),
                limit: 3,
                expires_at: 4_000_000_000,
            }],
        )
        .await;
    assert!(other.is_ok());
}
