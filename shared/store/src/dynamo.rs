//! The DynamoDB adapter: one table, every commit a `TransactWriteItems`.
//! SDK types never leave this module.

use crate::keys;
use crate::port::{CostTotals, GoalKey, GoalState, Parked, Store, StoreError, TenantBudget, Write};
use crate::record::{decode, goal_state, kind_name, ops, totals, Cond, Op, Record, COST_COUNTERS};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use mktg_core::{Goal, Output, TaskId, TenantId, Turn};
use std::collections::HashMap;

/// DynamoDB allows at most 100 items in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }
}

fn to_item(r: &Record) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("PK".into(), AttributeValue::S(r.pk.clone()));
    item.insert("SK".into(), AttributeValue::S(r.sk.clone()));
    item.insert("kind".into(), AttributeValue::S(r.kind.to_string()));
    item.insert("data".into(), AttributeValue::S(r.data.clone()));
    if let Some(v) = r.version {
        item.insert("version".into(), AttributeValue::N(v.to_string()));
    }
    if let Some(s) = &r.status {
        item.insert("status".into(), AttributeValue::S(s.clone()));
    }
    if let Some(ttl) = r.ttl {
        item.insert("ttl".into(), AttributeValue::N(ttl.to_string()));
    }
    if let Some((pk, sk)) = &r.gsi1 {
        item.insert("GSI1PK".into(), AttributeValue::S(pk.clone()));
        item.insert("GSI1SK".into(), AttributeValue::S(sk.clone()));
    }
    item
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let s = |name: &str| -> Result<String, StoreError> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(StoreError::Permanent(format!(
                "stored item lacks string attribute {name}"
            ))),
        }
    };
    let kind = s("kind")?;
    let kind = kind_name(&kind)
        .ok_or_else(|| StoreError::Permanent(format!("unknown item kind \"{kind}\"")))?;
    Ok(Record {
        pk: s("PK")?,
        sk: s("SK")?,
        kind,
        version: match item.get("version") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        },
        status: s("status").ok(),
        gsi1: None,
        data: s("data")?,
        ttl: None,
    })
}

/// Folds any SDK error into the store's three outcomes.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    err: SdkError<E>,
    what: &str,
) -> StoreError {
    let code = err.code().unwrap_or_default().to_string();
    let message = format!("{what}: {code} {}", err.message().unwrap_or_default());
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(format!(
                "{what}: cannot reach DynamoDB: {}",
                DisplayErrorContext(&err)
            ))
        }
        _ => match code.as_str() {
            "ConditionalCheckFailedException" => StoreError::Conflict(message),
            "TransactionCanceledException" => {
                let text = err.message().unwrap_or_default();
                if text.contains("ConditionalCheckFailed") {
                    StoreError::Conflict(message)
                } else {
                    StoreError::Transient(message)
                }
            }
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException" => StoreError::Transient(message),
            _ => StoreError::Permanent(message),
        },
    }
}

fn transact_item(table: &str, op: Op, cond: Cond) -> Result<TransactWriteItem, StoreError> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| {
        StoreError::Permanent(format!("invalid write: {e}"))
    };
    Ok(match op {
        Op::Put(record) => {
            let mut put = Put::builder()
                .table_name(table)
                .set_item(Some(to_item(&record)));
            put = match cond {
                Cond::None => put,
                Cond::NotExists => put.condition_expression("attribute_not_exists(PK)"),
                Cond::NotExistsOrExpired(now) => put
                    .condition_expression("attribute_not_exists(PK) OR #ttl < :now")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string())),
                Cond::Version(v) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
                Cond::Below(..) => {
                    return Err(StoreError::Permanent(
                        "a counter condition applies to counter updates only".into(),
                    ))
                }
            };
            TransactWriteItem::builder()
                .put(put.build().map_err(invalid)?)
                .build()
        }
        Op::Add {
            pk,
            sk,
            kind,
            counters,
            ttl,
        } => {
            let mut update = Update::builder()
                .table_name(table)
                .key("PK", AttributeValue::S(pk))
                .key("SK", AttributeValue::S(sk))
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":kind", AttributeValue::S(kind.to_string()));
            let mut adds = Vec::new();
            for (i, (name, n)) in counters.into_iter().enumerate() {
                adds.push(format!("#c{i} :c{i}"));
                update = update
                    .expression_attribute_names(format!("#c{i}"), name)
                    .expression_attribute_values(
                        format!(":c{i}"),
                        AttributeValue::N(n.to_string()),
                    );
            }
            let mut set = "SET #kind = :kind".to_string();
            if let Some(ttl) = ttl {
                set.push_str(", #ttl = :ttl");
                update = update
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()));
            }
            if let Cond::Below(counter, limit) = cond {
                update = update
                    .condition_expression("attribute_not_exists(#below) OR #below < :below")
                    .expression_attribute_names("#below", counter)
                    .expression_attribute_values(":below", AttributeValue::N(limit.to_string()));
            }
            update = update.update_expression(format!("{set} ADD {}", adds.join(", ")));
            TransactWriteItem::builder()
                .update(update.build().map_err(invalid)?)
                .build()
        }
        Op::Delete { pk, sk } => {
            let delete = Delete::builder()
                .table_name(table)
                .key("PK", AttributeValue::S(pk))
                .key("SK", AttributeValue::S(sk))
                .build()
                .map_err(invalid)?;
            TransactWriteItem::builder().delete(delete).build()
        }
    })
}

fn is_counter(item: &HashMap<String, AttributeValue>) -> bool {
    matches!(item.get("kind"), Some(AttributeValue::S(k)) if k == "cost")
}

fn counters_from_item(item: &HashMap<String, AttributeValue>) -> CostTotals {
    let mut map = std::collections::BTreeMap::new();
    for name in COST_COUNTERS {
        if let Some(AttributeValue::N(n)) = item.get(name) {
            map.insert(name.to_string(), n.parse().unwrap_or(0));
        }
    }
    totals(&map)
}

impl DynamoStore {
    /// Every item of one partition, following pagination.
    async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(e, "Query"))?;
            all.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(all)
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Record>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(pk))
            .key("SK", AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, "GetItem"))?;
        out.item().map(from_item).transpose()
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut all = Vec::new();
        for (seq, w) in writes.iter().enumerate() {
            all.extend(ops(key, w, seq)?);
        }
        if all.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Permanent(format!(
                "a commit touching {} items exceeds DynamoDB's {MAX_TRANSACTION_ITEMS}-item transaction limit",
                all.len()
            )));
        }
        let mut items = Vec::with_capacity(all.len());
        for (op, cond) in all {
            items.push(transact_item(&self.table, op, cond)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| classify(e, "TransactWriteItems"))?;
        Ok(())
    }

    async fn goal(&self, key: &GoalKey) -> Result<Option<Goal>, StoreError> {
        self.get(keys::goal_pk(&key.tenant, &key.goal), keys::GOAL_SK.into())
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn task(
        &self,
        key: &GoalKey,
        task: &TaskId,
    ) -> Result<Option<mktg_core::Task>, StoreError> {
        self.get(keys::goal_pk(&key.tenant, &key.goal), keys::task_sk(task))
            .await?
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
        )
        .await?
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
        )
        .await?
        .map(|r| decode(&r))
        .transpose()
    }

    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError> {
        let items = self
            .partition(&keys::goal_pk(&key.tenant, &key.goal))
            .await?;
        let mut records = Vec::new();
        let mut cost = CostTotals::default();
        for item in &items {
            if is_counter(item) {
                cost = counters_from_item(item);
            } else {
                records.push(from_item(item)?);
            }
        }
        let mut state = goal_state(&records)?;
        state.cost = cost;
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
        let mut goals = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("GSI1")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::goals_by_tenant_pk(tenant)),
                );
            q = if after.is_empty() {
                q.key_condition_expression("GSI1PK = :pk")
            } else {
                q.key_condition_expression("GSI1PK = :pk AND GSI1SK > :after")
                    .expression_attribute_values(":after", AttributeValue::S(after.to_string()))
            };
            let out = q
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(e, "Query GSI1"))?;
            for item in out.items() {
                goals.push(decode(&from_item(item)?)?);
                if goals.len() >= limit {
                    return Ok(goals);
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(goals)
    }

    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError> {
        let items = self.partition(&keys::cost_pk(tenant, month)).await?;
        Ok(items
            .iter()
            .filter_map(|i| match i.get("SK") {
                Some(AttributeValue::S(sk)) => Some((sk.clone(), counters_from_item(i))),
                _ => None,
            })
            .collect())
    }

    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(pk.to_string()))
            .key("SK", AttributeValue::S(sk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, "GetItem"))?;
        Ok(out.item().map(counters_from_item).unwrap_or_default())
    }

    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError> {
        self.get(keys::budget_pk(tenant), keys::BUDGET_SK.into())
            .await?
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
        )
        .await?
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
        let items = self.partition(&keys::learn_pk(tenant, skill)).await?;
        let records: Vec<crate::Record> = items.iter().map(from_item).collect::<Result<_, _>>()?;
        crate::record::learnings(&records)
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<crate::PendingApproval>, StoreError> {
        let items = self.partition(&keys::approvals_pk(tenant)).await?;
        let mut out: Vec<crate::PendingApproval> = items
            .iter()
            .map(|i| decode(&from_item(i)?))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|a| a.at_ms);
        Ok(out)
    }

    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError> {
        let items = self.partition(&keys::parked_pk(tenant)).await?;
        items.iter().map(|i| decode(&from_item(i)?)).collect()
    }

    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let items = self.partition(&keys::doc_pk(tenant, collection)).await?;
        let records: Vec<crate::Record> = items.iter().map(from_item).collect::<Result<_, _>>()?;
        crate::record::docs(&records)
    }

    async fn doc(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(keys::doc_pk(tenant, collection), id.to_string())
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(keys::claim_pk(tenant, kind, key), keys::CLAIM_SK.into())
            .await?
            .is_some())
    }

    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.get(keys::claim_pk(tenant, kind, key), keys::CLAIM_SK.into())
            .await?
            .map(|r| decode(&r))
            .transpose()
    }
}
