//! A small load run through the emulator (the full N runs as
//! `cargo run -p mktg-bench --bin load`): goals submitted at once, several
//! poller sets handling them concurrently; none lost, none duplicated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::TenantId;
use mktg_it::{emulator, fresh_tenant};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_goals_are_all_completed_once() {
    let _queues = mktg_it::QUEUES.lock().await;
    let emu = emulator().await;
    let tenant = TenantId::new(fresh_tenant("it-load"));
    let n = 12;
    let r = mktg_it::load::run(&emu, &tenant, n, 2, Duration::from_secs(240), |_, _| {})
        .await
        .unwrap();
    println!("{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.completed, n, "{r:?}");
    assert_eq!(r.duplicated, 0, "{r:?}");
    assert_eq!(r.tasks, n * 5);
    assert!(r.aws_requests > 0 && r.step_p95_ms >= r.step_p50_ms);
    // Paging through DynamoDB's goal index: after the first goal's sort key
    // come the other n - 1, in creation order; a millisecond prefix is
    // inclusive of that millisecond.
    let deps = emu.deps();
    let all = deps.store.goals(&tenant, 100).await.unwrap();
    assert_eq!(all.len(), n);
    let first = mktg_store::keys::goals_by_tenant_sk(all[0].created_ms, &all[0].id);
    let rest = deps.store.goals_after(&tenant, &first, 100).await.unwrap();
    assert_eq!(rest, all[1..].to_vec());
    let from_ms = format!("{:013}", all[0].created_ms);
    assert_eq!(
        deps.store.goals_after(&tenant, &from_ms, 2).await.unwrap(),
        all[..2].to_vec()
    );
}
