//! Port wrappers that count calls: with the AWS adapters each call is one
//! request, so benchmarks and tests read AWS requests per task off them.

use async_trait::async_trait;
use mktg_bus::{Bus, BusError};
use mktg_core::learn::{Learning, LearningUse};
use mktg_core::{DomainEvent, Envelope, Goal, Output, Task, TaskId, TenantId, ToolCall, Turn};
use mktg_store::{
    CostTotals, GoalKey, GoalState, Parked, PendingApproval, Store, StoreError, TenantBudget, Write,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How many times each port method was called, and an estimate of the
/// DynamoDB capacity it used: item sizes are approximated by the length of
/// the domain objects' debug text; a transactional write costs 2 write
/// units per KB of each item, a consistent read 1 read unit per 4 KB.
#[derive(Default)]
pub struct Counts(pub Mutex<BTreeMap<&'static str, u64>>);

/// Keys of the capacity estimates in `Counts`.
pub const WRU: &str = "~ dynamodb write units (estimate)";
pub const RRU: &str = "~ dynamodb read units (estimate)";

impl Counts {
    pub fn add(&self, what: &'static str) {
        self.add_n(what, 1);
    }

    fn add_n(&self, what: &'static str, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(what).or_default() += n;
        }
    }

    fn read<T: std::fmt::Debug>(&self, v: &T) {
        let bytes = format!("{v:?}").len() as u64;
        self.add_n(RRU, bytes.div_ceil(4096).max(1));
    }

    fn written(&self, writes: &[Write]) {
        let units: u64 = writes
            .iter()
            .map(|w| 2 * (format!("{w:?}").len() as u64).div_ceil(1024).max(1))
            .sum();
        self.add_n(WRU, units);
    }

    /// Requests only (the capacity estimates left out).
    pub fn requests(&self) -> u64 {
        self.0
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !k.starts_with('~'))
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// A Store that counts its calls (with the AWS adapter, one request each).
pub struct CountingStore {
    pub inner: Arc<dyn Store>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl Store for CountingStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        self.counts.add("dynamodb TransactWriteItems (commit)");
        self.counts.written(&writes);
        self.inner.commit(key, writes).await
    }
    async fn goal(&self, key: &GoalKey) -> Result<Option<Goal>, StoreError> {
        self.counts.add("dynamodb GetItem (goal)");
        let r = self.inner.goal(key).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn task(&self, key: &GoalKey, task: &TaskId) -> Result<Option<Task>, StoreError> {
        self.counts.add("dynamodb GetItem (task)");
        let r = self.inner.task(key, task).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn turn(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        n: u32,
    ) -> Result<Option<Turn>, StoreError> {
        self.counts.add("dynamodb GetItem (turn)");
        let r = self.inner.turn(key, task, revision, n).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn output(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
    ) -> Result<Option<Output>, StoreError> {
        self.counts.add("dynamodb GetItem (output)");
        let r = self.inner.output(key, task, revision).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError> {
        self.counts.add("dynamodb Query (goal partition)");
        let r = self.inner.goal_state(key).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn goals(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Goal>, StoreError> {
        self.counts.add("dynamodb Query (goals)");
        let r = self.inner.goals(tenant, limit).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError> {
        self.counts.add("dynamodb Query (cost ledger)");
        let r = self.inner.costs(tenant, month).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError> {
        self.counts.add("dynamodb GetItem (cost row)");
        let r = self.inner.cost_row(pk, sk).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError> {
        self.counts.add("dynamodb GetItem (budget)");
        let r = self.inner.budget(tenant).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError> {
        self.counts.add("dynamodb Query (parked)");
        let r = self.inner.parked(tenant).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.counts.add("dynamodb GetItem (lease)");
        let r = self.inner.lease_holder(tenant, kind, key).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
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
        let r = self.inner.call(key, task, revision, turn, id).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn learnings(
        &self,
        tenant: &TenantId,
        skill: &str,
    ) -> Result<(Vec<Learning>, Vec<LearningUse>), StoreError> {
        self.counts.add("dynamodb Query (learnings)");
        let r = self.inner.learnings(tenant, skill).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn approvals(&self, tenant: &TenantId) -> Result<Vec<PendingApproval>, StoreError> {
        self.counts.add("dynamodb Query (approvals)");
        let r = self.inner.approvals(tenant).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn goals_after(
        &self,
        tenant: &TenantId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<mktg_core::Goal>, StoreError> {
        self.counts.add("dynamodb Query (GSI1 goals after)");
        let r = self.inner.goals_after(tenant, after, limit).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.counts.add("dynamodb Query (docs)");
        let r = self.inner.docs(tenant, collection).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.counts.add("dynamodb GetItem (claim)");
        let r = self.inner.claimed(tenant, kind, key).await;
        if let Ok(v) = &r {
            self.counts.read(v);
        }
        r
    }
}

/// A Bus that counts its calls.
pub struct CountingBus {
    pub inner: Arc<dyn Bus>,
    pub counts: Arc<Counts>,
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

/// The scripted model, counting its calls.
pub struct CountingModel {
    pub inner: mktg_llm::ScriptedModel,
    pub calls: std::sync::atomic::AtomicUsize,
}

impl CountingModel {
    pub fn new(inner: mktg_llm::ScriptedModel) -> Arc<Self> {
        Arc::new(CountingModel {
            inner,
            calls: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The real config's demo script.
    pub fn demo() -> Arc<Self> {
        let config = crate::real_config();
        Self::new(
            mktg_llm::ScriptedModel::load(&config.models.scripted_script)
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl mktg_llm::ChatModel for CountingModel {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn is_scripted(&self) -> bool {
        true
    }
    async fn complete(
        &self,
        request: &mktg_llm::ChatRequest,
    ) -> Result<mktg_llm::ChatResponse, mktg_llm::LlmError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.complete(request).await
    }
}
