//! AWS requests per task: runs the demo goal through every handler with
//! counting wrappers around the Store and Bus ports and prints how many
//! times each port method was called. With the AWS adapters each call is
//! one request (a commit is one TransactWriteItems; `goal_state` is one
//! Query per 1 MB page, one page for these goals; `send` one SendMessage,
//! `publish` one PutEvents). Model calls are not AWS requests and are
//! counted apart.
//!
//!     cargo run -p mktg-bench --bin aws_calls

use async_trait::async_trait;
use mktg_boot::{Deps, SystemClock};
use mktg_bus::{Bus, BusError, MemoryBus};
use mktg_config::Paths;
use mktg_core::learn::{Learning, LearningUse};
use mktg_core::{
    DomainEvent, Envelope, Goal, GoalId, Message, Output, QueueName, Task, TaskId, TenantId,
    ToolCall, Turn,
};
use mktg_llm::ScriptedModel;
use mktg_store::{
    CostTotals, GoalKey, GoalState, MemoryStore, Parked, PendingApproval, Store, StoreError,
    TenantBudget, Write,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts(Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    fn add(&self, what: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(what).or_default() += 1;
        }
    }
}

struct CountingStore {
    inner: MemoryStore,
    counts: Arc<Counts>,
}

#[async_trait]
impl Store for CountingStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        self.counts.add("dynamodb TransactWriteItems (commit)");
        self.inner.commit(key, writes).await
    }
    async fn goal(&self, key: &GoalKey) -> Result<Option<Goal>, StoreError> {
        self.counts.add("dynamodb GetItem (goal)");
        self.inner.goal(key).await
    }
    async fn task(&self, key: &GoalKey, task: &TaskId) -> Result<Option<Task>, StoreError> {
        self.counts.add("dynamodb GetItem (task)");
        self.inner.task(key, task).await
    }
    async fn turn(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        n: u32,
    ) -> Result<Option<Turn>, StoreError> {
        self.counts.add("dynamodb GetItem (turn)");
        self.inner.turn(key, task, revision, n).await
    }
    async fn output(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
    ) -> Result<Option<Output>, StoreError> {
        self.counts.add("dynamodb GetItem (output)");
        self.inner.output(key, task, revision).await
    }
    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError> {
        self.counts.add("dynamodb Query (goal partition)");
        self.inner.goal_state(key).await
    }
    async fn goals(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Goal>, StoreError> {
        self.counts.add("dynamodb Query (goals)");
        self.inner.goals(tenant, limit).await
    }
    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError> {
        self.counts.add("dynamodb Query (cost ledger)");
        self.inner.costs(tenant, month).await
    }
    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError> {
        self.counts.add("dynamodb GetItem (cost row)");
        self.inner.cost_row(pk, sk).await
    }
    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError> {
        self.counts.add("dynamodb GetItem (budget)");
        self.inner.budget(tenant).await
    }
    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError> {
        self.counts.add("dynamodb Query (parked)");
        self.inner.parked(tenant).await
    }
    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.counts.add("dynamodb GetItem (lease)");
        self.inner.lease_holder(tenant, kind, key).await
    }
    async fn call(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        turn: u32,
        id: &str,
    ) -> Result<Option<ToolCall>, StoreError> {
        self.counts.add("dynamodb GetItem (tool call)");
        self.inner.call(key, task, revision, turn, id).await
    }
    async fn learnings(
        &self,
        tenant: &TenantId,
        skill: &str,
    ) -> Result<(Vec<Learning>, Vec<LearningUse>), StoreError> {
        self.counts.add("dynamodb Query (learnings)");
        self.inner.learnings(tenant, skill).await
    }
    async fn approvals(&self, tenant: &TenantId) -> Result<Vec<PendingApproval>, StoreError> {
        self.counts.add("dynamodb Query (approvals)");
        self.inner.approvals(tenant).await
    }
    async fn goals_since(
        &self,
        tenant: &TenantId,
        since_ms: u64,
    ) -> Result<Vec<mktg_core::Goal>, StoreError> {
        self.counts.add("dynamodb Query (GSI1 goals since)");
        self.inner.goals_since(tenant, since_ms).await
    }
    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.counts.add("dynamodb Query (docs)");
        self.inner.docs(tenant, collection).await
    }
    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.counts.add("dynamodb GetItem (claim)");
        self.inner.claimed(tenant, kind, key).await
    }
}

struct CountingBus {
    inner: Arc<MemoryBus>,
    counts: Arc<Counts>,
}

#[async_trait]
impl Bus for CountingBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        self.counts.add("sqs SendMessage");
        self.inner.send(envelope).await
    }
    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        self.counts.add("eventbridge PutEvents");
        self.inner.publish(event).await
    }
    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError> {
        self.counts.add("eventbridge PutEvents");
        self.inner.put_external(source, detail_type, detail).await
    }
}

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
        inner: MemoryStore::new(),
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
    let total: u64 = counts.values().sum::<u64>() - 1; // the final read above
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
