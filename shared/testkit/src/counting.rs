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

/// How many times each port method was called.
#[derive(Default)]
pub struct Counts(pub Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    pub fn add(&self, what: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(what).or_default() += 1;
        }
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
