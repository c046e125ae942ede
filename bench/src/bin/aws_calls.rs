//! AWS requests per task: runs the demo goal through every handler with
//! counting wrappers around the Store and Bus ports and prints how many
//! times each port method was called. With the AWS adapters each call is
//! one request (a commit is one TransactWriteItems; `goal_state` is one
//! Query per 1 MB page, one page for these goals; `send` one SendMessage,
//! `publish` one PutEvents). Model calls are not AWS requests and are
//! counted apart.
//!
//!     cargo run -p mktg-bench --bin aws_calls

use mktg_boot::{Deps, SystemClock};
use mktg_bus::MemoryBus;
use mktg_config::Paths;
use mktg_core::{Envelope, GoalId, Message, QueueName, TenantId};
use mktg_llm::ScriptedModel;
use mktg_store::{GoalKey, MemoryStore, Store};
use mktg_testkit::counting::{CountingBus, CountingStore, Counts};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut config = mktg_config::load(&Paths::under(&root)).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The shipped tools.yaml names its server relative to the repository.
    for s in config.tools.servers.values_mut() {
        if let mktg_config::ToolTransport::Stdio { command, .. } = &mut s.transport {
            if !std::path::Path::new(command.as_str()).exists() {
                anyhow::bail!("{command} is missing: run `bash scripts/mcp-servers` first");
            }
        }
    }
    let model = ScriptedModel::load(&config.models.scripted_script)?;
    let counts = Arc::new(Counts::default());
    let memory_bus = Arc::new(MemoryBus::new());
    let store = Arc::new(CountingStore {
        inner: Arc::new(MemoryStore::new()),
        counts: counts.clone(),
    });
    let bus = Arc::new(CountingBus {
        inner: memory_bus.clone(),
        counts: counts.clone(),
    });
    let deps = Deps::new(
        store.clone(),
        bus,
        Arc::new(model),
        Arc::new(config),
        Arc::new(SystemClock),
    );
    memory_bus
        .send_now(&Envelope::new(
            TenantId::new("bench"),
            GoalId::new("g"),
            Message::GoalSubmitted {
                text: "Write a blog post announcing Tallybook's new receipt capture".into(),
                pipeline: None,
                priority: Default::default(),
                source: None,
                submitted_ms: 0,
            },
        ))
        .await;
    let mut deliveries = 0u64;
    loop {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = memory_bus.pop(q) {
                any = true;
                deliveries += 1;
                mktg_cli::dispatch(&deps, q, env)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        if !any {
            break;
        }
    }
    let state = store
        .goal_state(&GoalKey::new("bench".into(), "g".into()))
        .await?;
    let tasks = state.tasks.len() as u64;
    let revisions: u64 = state.tasks.iter().map(|t| u64::from(t.revision) + 1).sum();
    let counts = counts
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let total: u64 = counts
        .iter()
        .filter(|(k, _)| !k.starts_with('~'))
        .map(|(_, v)| v)
        .sum::<u64>()
        - 1; // the final read above
    println!("demo goal: {tasks} tasks, {revisions} task revisions, {deliveries} message deliveries, {} model calls", state.cost.calls);
    for (what, n) in &counts {
        println!("  {what:<44} {n:>5}");
    }
    println!(
        "total: {total} AWS requests; {:.1} per task, {:.1} per task revision, {:.1} per delivery",
        total as f64 / tasks.max(1) as f64,
        total as f64 / revisions.max(1) as f64,
        total as f64 / deliveries.max(1) as f64
    );
    Ok(())
}
