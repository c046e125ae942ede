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
    let g = r.goals.max(1) as f64;
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
    println!("AWS requests at the ports: {} ({:.1} per task, {:.1} per goal); deliveries handled {}, retried {}", r.aws_requests, r.aws_per_task, r.aws_requests as f64 / g, r.handled, r.retried);
    for (what, n) in &r.by_kind {
        println!("  {what:<44} {:>9.1} per goal", *n as f64 / g);
    }
    println!(
        "handler time: {:.3} s per goal over {:.1} deliveries (no model latency: scripted)",
        r.busy_seconds / g,
        r.handled as f64 / g
    );

    // Cost per 1,000 goals, model tokens excluded. List prices (us-east-1,
    // on-demand); check yours. SQS counts sends, and one receive and one
    // delete per delivery (Lambda's pollers; idle polling is a fixed cost).
    let per_k = |n: f64| n / g * 1000.0;
    let kind = |prefix: &str| -> f64 {
        r.by_kind
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v as f64)
            .sum()
    };
    let deliveries = r.handled as f64 + r.retried as f64;
    let sqs = per_k(kind("sqs") + 2.0 * deliveries);
    let events = per_k(kind("eventbridge"));
    let wru = per_k(
        r.by_kind
            .get(mktg_testkit::counting::WRU)
            .copied()
            .unwrap_or(0) as f64,
    );
    let rru = per_k(
        r.by_kind
            .get(mktg_testkit::counting::RRU)
            .copied()
            .unwrap_or(0) as f64,
    );
    let invocations = per_k(deliveries);
    let gb_s = per_k(r.busy_seconds) * 0.25;
    let rows = [
        ("Lambda requests", invocations, "requests", 0.20 / 1e6),
        (
            "Lambda duration (256 MB, x86)",
            gb_s,
            "GB-s",
            0.000_016_666_7,
        ),
        ("SQS requests", sqs, "requests", 0.40 / 1e6),
        ("DynamoDB writes (on-demand)", wru, "WRU", 0.625 / 1e6),
        ("DynamoDB reads (on-demand)", rru, "RRU", 0.125 / 1e6),
        ("EventBridge events", events, "events", 1.00 / 1e6),
    ];
    println!("\ncost per 1,000 goals (model tokens excluded):");
    let mut total = 0.0;
    for (what, qty, unit, price) in rows {
        let usd = qty * price;
        total += usd;
        println!("  {what:<32} {qty:>12.0} {unit:<9} ${usd:>8.4}");
    }
    println!("  {:<32} {:>22} ${total:>8.4}", "total", "");
    println!(
        "  (+ Lambda time waiting for the model: ${:.2} per 1,000 goals per second of latency per model call, 20 calls a goal)",
        20.0 * 1000.0 * 0.25 * 0.000_016_666_7
    );
    Ok(())
}
