//! An in-memory `Store` with the same conditional semantics as DynamoDB.

use crate::keys;
use crate::port::{CostTotals, GoalKey, GoalState, Parked, Store, StoreError, TenantBudget, Write};
use crate::record::{decode, goal_state, ops, totals, Cond, Op, Record};
use async_trait::async_trait;
use mktg_core::{Goal, Output, TaskId, TenantId, Turn};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

type Key = (String, String);

#[derive(Default)]
struct Items {
    records: BTreeMap<Key, Record>,
    counters: BTreeMap<Key, BTreeMap<String, u64>>,
}

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<Items>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Items>, StoreError> {
        self.items
            .lock()
            .map_err(|_| StoreError::Permanent("memory store poisoned".into()))
    }

    fn get(&self, pk: String, sk: String) -> Result<Option<Record>, StoreError> {
        Ok(self.lock()?.records.get(&(pk, sk)).cloned())
    }

    /// Number of stored items, for tests that check nothing was added.
    pub fn len(&self) -> usize {
        self.items
            .lock()
            .map(|i| i.records.len() + i.counters.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut all = Vec::new();
        for (seq, w) in writes.iter().enumerate() {
            all.extend(ops(key, w, seq)?);
        }
        let mut items = self.lock()?;
        for (op, cond) in &all {
            let (pk, sk) = op.key();
            let existing = items.records.get(&(pk.to_string(), sk.to_string()));
            let ok = match cond {
                Cond::None => true,
                Cond::NotExists => existing.is_none(),
                Cond::Version(v) => existing.and_then(|e| e.version) == Some(*v),
                Cond::NotExistsOrExpired(now) => {
                    existing.is_none_or(|e| e.ttl.is_some_and(|t| t < *now))
                }
                Cond::Below(counter, limit) => items
                    .counters
                    .get(&(pk.to_string(), sk.to_string()))
                    .and_then(|row| row.get(*counter))
                    .is_none_or(|n| n < limit),
            };
            if !ok {
                return Err(StoreError::Conflict(format!("{pk} / {sk}")));
            }
        }
        for (op, _) in all {
            match op {
                Op::Put(r) => {
                    items.records.insert((r.pk.clone(), r.sk.clone()), r);
                }
                Op::Add {
                    pk, sk, counters, ..
                } => {
                    let row = items.counters.entry((pk, sk)).or_default();
                    for (name, n) in counters {
                        *row.entry(name.to_string()).or_default() += n;
                    }
                }
                Op::Delete { pk, sk } => {
                    items.records.remove(&(pk, sk));
                }
            }
        }
        Ok(())
    }

    async fn goal(&self, key: &GoalKey) -> Result<Option<Goal>, StoreError> {
        self.get(keys::goal_pk(&key.tenant, &key.goal), keys::GOAL_SK.into())?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn task(
        &self,
        key: &GoalKey,
        task: &TaskId,
    ) -> Result<Option<mktg_core::Task>, StoreError> {
        self.get(keys::goal_pk(&key.tenant, &key.goal), keys::task_sk(task))?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn turn(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        n: u32,
    ) -> Result<Option<Turn>, StoreError> {
        self.get(
            keys::goal_pk(&key.tenant, &key.goal),
            keys::turn_sk(task, revision, n),
        )?
        .map(|r| decode(&r))
        .transpose()
    }

    async fn output(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
    ) -> Result<Option<Output>, StoreError> {
        self.get(
            keys::goal_pk(&key.tenant, &key.goal),
            keys::output_sk(task, revision),
        )?
        .map(|r| decode(&r))
        .transpose()
    }

    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError> {
        let pk = keys::goal_pk(&key.tenant, &key.goal);
        let records: Vec<Record> = {
            let items = self.lock()?;
            items
                .records
                .iter()
                .filter(|((p, _), _)| p == &pk)
                .map(|(_, r)| r.clone())
                .collect()
        };
        let mut state = goal_state(&records)?;
        state.cost = self.cost_row(&pk, keys::GOAL_COST_SK).await?;
        Ok(state)
    }

    async fn goals(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Goal>, StoreError> {
        self.goals_after(tenant, "", limit).await
    }

    async fn goals_after(
        &self,
        tenant: &TenantId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Goal>, StoreError> {
        let gsi = keys::goals_by_tenant_pk(tenant);
        let mut records: Vec<(String, Record)> = {
            let items = self.lock()?;
            items
                .records
                .values()
                .filter_map(|r| match &r.gsi1 {
                    Some((pk, sk)) if *pk == gsi && sk.as_str() > after => {
                        Some((sk.clone(), r.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.iter().take(limit).map(|(_, r)| decode(r)).collect()
    }

    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError> {
        let pk = keys::cost_pk(tenant, month);
        let items = self.lock()?;
        Ok(items
            .counters
            .iter()
            .filter(|((p, _), _)| p == &pk)
            .map(|((_, sk), c)| (sk.clone(), totals(c)))
            .collect())
    }

    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError> {
        let items = self.lock()?;
        Ok(items
            .counters
            .get(&(pk.to_string(), sk.to_string()))
            .map(totals)
            .unwrap_or_default())
    }

    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError> {
        self.get(keys::budget_pk(tenant), keys::BUDGET_SK.into())?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn call(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        turn: u32,
        id: &str,
    ) -> Result<Option<mktg_core::ToolCall>, StoreError> {
        self.get(
            keys::goal_pk(&key.tenant, &key.goal),
            keys::call_sk(task, revision, turn, id),
        )?
        .map(|r| decode(&r))
        .transpose()
    }

    async fn learnings(
        &self,
        tenant: &TenantId,
        skill: &str,
    ) -> Result<
        (
            Vec<mktg_core::learn::Learning>,
            Vec<mktg_core::learn::LearningUse>,
        ),
        StoreError,
    > {
        let pk = keys::learn_pk(tenant, skill);
        let items = self.lock()?;
        let mut records: Vec<&crate::Record> = items
            .records
            .iter()
            .filter(|((p, _), _)| p == &pk)
            .map(|(_, r)| r)
            .collect();
        records.sort_by(|a, b| a.sk.cmp(&b.sk));
        let owned: Vec<crate::Record> = records.into_iter().cloned().collect();
        crate::record::learnings(&owned)
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<crate::PendingApproval>, StoreError> {
        let pk = keys::approvals_pk(tenant);
        let items = self.lock()?;
        let mut out: Vec<crate::PendingApproval> = items
            .records
            .iter()
            .filter(|((p, _), _)| p == &pk)
            .map(|(_, r)| decode(r))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|a| a.at_ms);
        Ok(out)
    }

    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError> {
        let pk = keys::parked_pk(tenant);
        let items = self.lock()?;
        items
            .records
            .iter()
            .filter(|((p, _), _)| p == &pk)
            .map(|(_, r)| decode(r))
            .collect()
    }

    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let pk = keys::doc_pk(tenant, collection);
        let items = self.lock()?;
        let records: Vec<Record> = items
            .records
            .iter()
            .filter(|((p, _), _)| p == &pk)
            .map(|(_, r)| r.clone())
            .collect();
        crate::record::docs(&records)
    }

    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(keys::claim_pk(tenant, kind, key), keys::CLAIM_SK.into())?
            .is_some())
    }

    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.get(keys::claim_pk(tenant, kind, key), keys::CLAIM_SK.into())?
            .map(|r| decode(&r))
            .transpose()
    }
}
