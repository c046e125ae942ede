//! An in-memory `Store` with the same conditional semantics as DynamoDB.

use crate::keys;
use crate::port::{GoalKey, GoalState, Store, StoreError, Write};
use crate::record::{decode, goal_state, Cond, Record};
use async_trait::async_trait;
use mktg_core::{Goal, Output, TaskId, TenantId, Turn};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<(String, String), Record>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, pk: String, sk: String) -> Result<Option<Record>, StoreError> {
        let items = self
            .items
            .lock()
            .map_err(|_| StoreError::Permanent("memory store poisoned".into()))?;
        Ok(items.get(&(pk, sk)).cloned())
    }

    /// Number of stored items, for tests that check nothing was added.
    pub fn len(&self) -> usize {
        self.items.lock().map(|i| i.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(writes.len());
        for (seq, w) in writes.iter().enumerate() {
            records.push(Record::from_write(key, w, seq)?);
        }
        let mut items = self
            .items
            .lock()
            .map_err(|_| StoreError::Permanent("memory store poisoned".into()))?;
        for (record, cond) in &records {
            let existing = items.get(&(record.pk.clone(), record.sk.clone()));
            let ok = match cond {
                Cond::None => true,
                Cond::NotExists => existing.is_none(),
                Cond::Version(v) => existing.and_then(|e| e.version) == Some(*v),
            };
            if !ok {
                return Err(StoreError::Conflict(format!(
                    "{} / {}",
                    record.pk, record.sk
                )));
            }
        }
        for (record, _) in records {
            items.insert((record.pk.clone(), record.sk.clone()), record);
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
            let items = self
                .items
                .lock()
                .map_err(|_| StoreError::Permanent("memory store poisoned".into()))?;
            items
                .iter()
                .filter(|((p, _), _)| p == &pk)
                .map(|(_, r)| r.clone())
                .collect()
        };
        goal_state(&records)
    }

    async fn goals(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Goal>, StoreError> {
        let gsi = keys::goals_by_tenant_pk(tenant);
        let mut records: Vec<Record> = {
            let items = self
                .items
                .lock()
                .map_err(|_| StoreError::Permanent("memory store poisoned".into()))?;
            items
                .values()
                .filter(|r| r.gsi1.as_ref().map(|g| &g.0) == Some(&gsi))
                .cloned()
                .collect()
        };
        records.sort_by(|a, b| {
            a.gsi1
                .as_ref()
                .map(|g| &g.1)
                .cmp(&b.gsi1.as_ref().map(|g| &g.1))
        });
        records.iter().take(limit).map(decode).collect()
    }
}
