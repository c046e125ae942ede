//! N goals at once through the local emulator with M poller sets (as
//! `mktg dev` runs them): goals per minute, step latency, AWS requests per
//! task, and lost / duplicated counts. Needs `localstack/up`.
//!
//!     cargo run --release -p mktg-bench --bin load -- [N] [M]     (default 200 4)

use mktg_core::TenantId;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let m: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let emu = mktg_it::emulator().await;
    let tenant = TenantId::new(mktg_it::fresh_tenant("bench-load"));
    eprintln!("submitting {n} goals for tenant {tenant}, {m} poller sets ...");
    let r = mktg_it::load::run(
        &emu,
        &tenant,
        n,
        m,
        Duration::from_secs(3600),
        |done, all| {
            eprint!("\r{done}/{all} goals settled");
        },
    )
    .await?;
    eprintln!();
    println!(
        "goals: {} submitted, {} completed, {} failed/escalated, {} lost, {} duplicated",
        r.goals, r.completed, r.settled_otherwise, r.lost, r.duplicated
    );
    println!(
        "time: {:.1} s, {:.1} goals/minute ({} tasks)",
        r.seconds, r.goals_per_minute, r.tasks
    );
    println!(
        "step latency (between a task's status changes): p50 {} ms, p95 {} ms",
        r.step_p50_ms, r.step_p95_ms
    );
    println!(
        "AWS requests at the ports: {} ({:.1} per task); deliveries handled {}, retried {}",
        r.aws_requests, r.aws_per_task, r.handled, r.retried
    );
    Ok(())
}
