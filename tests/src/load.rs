//! Load through the emulator: N goals submitted at once, M sets of queue
//! pollers (as `mktg dev` runs them), counting AWS requests at the ports.
//! Used by `tests/tests/emulator_load.rs` (small N) and
//! `cargo run -p mktg-bench --bin load` (N = 200 by default).

use crate::Emulator;
use mktg_cli::dev::{self, DevStats};
use mktg_core::{Envelope, GoalId, GoalStatus, Message, TenantId};
use mktg_store::GoalKey;
use mktg_testkit::counting::{CountingBus, CountingStore, Counts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct LoadReport {
    pub goals: usize,
    pub completed: usize,
    /// FAILED or ESCALATED: settled, but not done.
    pub settled_otherwise: usize,
    /// Still running at the deadline.
    pub lost: usize,
    /// Goals whose outputs, model turns or costs exceed one per step.
    pub duplicated: usize,
    pub tasks: usize,
    pub seconds: f64,
    pub goals_per_minute: f64,
    /// Time between consecutive status changes of a task, in ms.
    pub step_p50_ms: u64,
    pub step_p95_ms: u64,
    pub aws_requests: u64,
    pub aws_per_task: f64,
    pub handled: u64,
    pub retried: u64,
    /// Requests (and capacity estimates) by kind, over the whole run.
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Handler time summed over all deliveries, in seconds.
    pub busy_seconds: f64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Submits `n` demo goals for `tenant` and runs `m` poller sets until all
/// settle or `deadline` passes. `progress` is called now and then.
pub async fn run(
    emu: &Emulator,
    tenant: &TenantId,
    n: usize,
    m: usize,
    deadline: Duration,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<LoadReport> {
    let base = emu.deps();
    let counts = Arc::new(Counts::default());
    let mut deps = base.clone();
    deps.store = Arc::new(CountingStore {
        inner: base.store.clone(),
        counts: counts.clone(),
    });
    deps.bus = Arc::new(CountingBus {
        inner: base.bus.clone(),
        counts: counts.clone(),
    });
    let started = Instant::now();
    let ids: Vec<GoalId> = (0..n)
        .map(|i| GoalId::new(format!("load-{i:04}")))
        .collect();
    for id in &ids {
        deps.bus
            .send(&Envelope::new(
                tenant.clone(),
                id.clone(),
                Message::GoalSubmitted {
                    text: "Write a blog post about receipts".into(),
                    pipeline: None,
                    priority: Default::default(),
                    source: None,
                    submitted_ms: deps.clock.now_ms(),
                },
            ))
            .await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(DevStats::default());
    let consumer = mktg_bus::SqsConsumer::new(aws_sdk_sqs::Client::new(&emu.aws));
    let mut pollers = Vec::new();
    for _ in 0..m.max(1) {
        pollers.push(tokio::spawn(dev::run(
            deps.clone(),
            consumer.clone(),
            emu.settings.queue_urls.clone(),
            10,
            stop.clone(),
            stats.clone(),
        )));
    }
    // Watch with the uncounted store, so the figures are the system's own.
    let mut pending: Vec<GoalId> = ids.clone();
    while !pending.is_empty() && started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut still = Vec::new();
        for id in pending {
            let g = base
                .store
                .goal(&GoalKey::new(tenant.clone(), id.clone()))
                .await?;
            if !g.is_some_and(|g| g.status.is_settled()) {
                still.push(id);
            }
        }
        pending = still;
        progress(n - pending.len(), n);
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.await??;
    }
    let mut report = LoadReport {
        goals: n,
        lost: pending.len(),
        seconds,
        handled: stats.handled.load(Ordering::Relaxed),
        retried: stats.retried.load(Ordering::Relaxed),
        busy_seconds: stats.busy_us.load(Ordering::Relaxed) as f64 / 1e6,
        ..LoadReport::default()
    };
    let mut steps = Vec::new();
    for id in &ids {
        let s = base
            .store
            .goal_state(&GoalKey::new(tenant.clone(), id.clone()))
            .await?;
        match s.goal.as_ref().map(|g| g.status) {
            Some(GoalStatus::Completed) => report.completed += 1,
            Some(st) if st.is_settled() => report.settled_otherwise += 1,
            _ => {}
        }
        report.tasks += s.tasks.len();
        let revisions: usize = s.tasks.iter().map(|t| t.revision as usize + 1).sum();
        if s.outputs.len() > revisions || s.cost.calls as usize != s.turns.len() {
            report.duplicated += 1;
        }
        for t in &s.tasks {
            let mut at: Vec<u64> = s
                .traces
                .iter()
                .filter(|tr| tr.subject == t.id.as_str())
                .map(|tr| tr.at_ms)
                .collect();
            at.sort_unstable();
            steps.extend(at.windows(2).map(|w| w[1] - w[0]));
        }
    }
    steps.sort_unstable();
    report.step_p50_ms = percentile(&steps, 0.50);
    report.step_p95_ms = percentile(&steps, 0.95);
    report.goals_per_minute = report.completed as f64 / (seconds / 60.0);
    report.aws_requests = counts.requests();
    report.by_kind = counts.0.lock().map(|c| c.clone()).unwrap_or_default();
    report.aws_per_task = report.aws_requests as f64 / report.tasks.max(1) as f64;
    Ok(report)
}
