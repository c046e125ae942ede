//! The stored shape of every item, shared by both adapters: key attributes,
//! the attributes conditions look at (`version`, `status`), and the domain
//! object as JSON in `data`.

use crate::keys;
use crate::port::{CostTotals, GoalKey, StoreError, Write};
use mktg_core::{Goal, Output, Review, Task, ToolCall, Trace, Turn};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a write requires of the item it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    None,
    NotExists,
    Version(u64),
    /// Absent, or its `ttl` is before this time (epoch seconds).
    NotExistsOrExpired(u64),
    /// For an `Add`: the counter is absent or below this value.
    Below(&'static str, u64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub pk: String,
    pub sk: String,
    pub kind: &'static str,
    pub version: Option<u64>,
    pub status: Option<String>,
    pub gsi1: Option<(String, String)>,
    pub data: String,
    /// Epoch seconds after which DynamoDB's TTL may delete the item.
    pub ttl: Option<u64>,
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Permanent(format!("cannot encode item: {e}")))
}

pub fn decode<T: DeserializeOwned>(record: &Record) -> Result<T, StoreError> {
    serde_json::from_str(&record.data).map_err(|e| {
        StoreError::Permanent(format!(
            "stored item {} / {} is not a valid {}: {e}",
            record.pk, record.sk, record.kind
        ))
    })
}

impl Record {
    pub fn goal(goal: &Goal) -> Result<Record, StoreError> {
        Ok(Record {
            pk: keys::goal_pk(&goal.tenant, &goal.id),
            sk: keys::GOAL_SK.to_string(),
            kind: "goal",
            version: Some(goal.version),
            status: Some(goal.status.to_string()),
            gsi1: Some((
                keys::goals_by_tenant_pk(&goal.tenant),
                keys::goals_by_tenant_sk(goal.created_ms, &goal.id),
            )),
            data: json(goal)?,
            ttl: None,
        })
    }

    pub fn task(task: &Task) -> Result<Record, StoreError> {
        Ok(Record {
            pk: keys::goal_pk(&task.tenant, &task.goal),
            sk: keys::task_sk(&task.id),
            kind: "task",
            version: Some(task.version),
            status: Some(task.status.to_string()),
            gsi1: None,
            data: json(task)?,
            ttl: None,
        })
    }

    pub fn call(
        call: &ToolCall,
        tenant: &mktg_core::TenantId,
        goal: &mktg_core::GoalId,
    ) -> Result<Record, StoreError> {
        Ok(Record {
            pk: keys::goal_pk(tenant, goal),
            sk: keys::call_sk(&call.task, call.revision, call.turn, &call.id),
            kind: "call",
            version: Some(call.version),
            status: Some(call.status.to_string()),
            gsi1: None,
            data: json(call)?,
            ttl: None,
        })
    }

    fn keyed<T: Serialize>(
        pk: String,
        sk: String,
        kind: &'static str,
        value: &T,
    ) -> Result<Record, StoreError> {
        Ok(Record {
            pk,
            sk,
            kind,
            version: None,
            status: None,
            gsi1: None,
            data: json(value)?,
            ttl: None,
        })
    }
}

/// Counter names of the cost ledger, in `CostTotals` order.
pub const COST_COUNTERS: [&str; 6] = [
    "micros",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "calls",
];

/// What one write does to one item.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Put(Record),
    /// Atomic ADD of counters (creating the item if needed).
    Add {
        pk: String,
        sk: String,
        kind: &'static str,
        counters: Vec<(&'static str, u64)>,
        /// Epoch seconds after which the item may be deleted.
        ttl: Option<u64>,
    },
    Delete {
        pk: String,
        sk: String,
    },
}

impl Op {
    pub fn key(&self) -> (&str, &str) {
        match self {
            Op::Put(r) => (&r.pk, &r.sk),
            Op::Add { pk, sk, .. } | Op::Delete { pk, sk } => (pk, sk),
        }
    }
}

fn tenant_matches(key: &GoalKey, tenant: &mktg_core::TenantId) -> Result<(), StoreError> {
    if tenant != &key.tenant {
        return Err(StoreError::Permanent(format!(
            "write for tenant {tenant} inside a commit for tenant {}",
            key.tenant
        )));
    }
    Ok(())
}

/// The operations a write produces, each with its condition.
pub fn ops(key: &GoalKey, write: &Write, seq: usize) -> Result<Vec<(Op, Cond)>, StoreError> {
    let same_goal = |tenant: &mktg_core::TenantId, goal: &mktg_core::GoalId| {
        if tenant != &key.tenant || goal != &key.goal {
            Err(StoreError::Permanent(format!(
                "write for {tenant}/{goal} inside a commit for {}/{}",
                key.tenant, key.goal
            )))
        } else {
            Ok(())
        }
    };
    let put = |r: Record, c: Cond| Ok(vec![(Op::Put(r), c)]);
    let goal_pk = keys::goal_pk(&key.tenant, &key.goal);
    match write {
        Write::NewGoal(g) => {
            same_goal(&g.tenant, &g.id)?;
            put(Record::goal(g)?, Cond::NotExists)
        }
        Write::Goal {
            goal,
            expect_version,
        } => {
            same_goal(&goal.tenant, &goal.id)?;
            put(Record::goal(goal)?, Cond::Version(*expect_version))
        }
        Write::NewTask(t) => {
            same_goal(&t.tenant, &t.goal)?;
            put(Record::task(t)?, Cond::NotExists)
        }
        Write::Task {
            task,
            expect_version,
        } => {
            same_goal(&task.tenant, &task.goal)?;
            put(Record::task(task)?, Cond::Version(*expect_version))
        }
        Write::NewTurn(t) => put(
            Record::keyed(goal_pk, keys::turn_sk(&t.task, t.revision, t.n), "turn", t)?,
            Cond::NotExists,
        ),
        Write::NewOutput(o) => put(
            Record::keyed(goal_pk, keys::output_sk(&o.task, o.revision), "output", o)?,
            Cond::NotExists,
        ),
        Write::NewReview(r) => put(
            Record::keyed(
                goal_pk,
                keys::review_sk(&r.task, r.revision, &r.reviewer),
                "review",
                r,
            )?,
            Cond::NotExists,
        ),
        Write::Trace(t) => put(
            Record::keyed(
                goal_pk,
                keys::trace_sk(t.at_ms, seq, &t.subject),
                "trace",
                t,
            )?,
            Cond::None,
        ),
        Write::AddCost(c) => {
            same_goal(&c.tenant, &c.goal)?;
            let u = &c.usage;
            let counters = vec![
                ("micros", c.micros),
                ("input_tokens", u.input_tokens),
                ("output_tokens", u.output_tokens),
                ("cache_write_tokens", u.cache_write_tokens),
                ("cache_read_tokens", u.cache_read_tokens),
                ("calls", 1),
            ];
            let month = keys::cost_pk(&c.tenant, &c.month);
            let add = |pk: String, sk: String| {
                (
                    Op::Add {
                        pk,
                        sk,
                        kind: "cost",
                        counters: counters.clone(),
                        ttl: None,
                    },
                    Cond::None,
                )
            };
            Ok(vec![
                add(month.clone(), keys::COST_TOTAL_SK.to_string()),
                add(month.clone(), format!("GOAL#{}", c.goal)),
                add(month.clone(), format!("SKILL#{}", c.skill)),
                add(month, format!("MODEL#{}", c.model)),
                add(goal_pk, keys::GOAL_COST_SK.to_string()),
            ])
        }
        Write::Park { tenant, parked } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::parked_pk(tenant),
                    keys::parked_sk(&parked.goal, &parked.task),
                    "parked",
                    parked,
                )?,
                Cond::None,
            )
        }
        Write::Unpark { tenant, goal, task } => {
            tenant_matches(key, tenant)?;
            Ok(vec![(
                Op::Delete {
                    pk: keys::parked_pk(tenant),
                    sk: keys::parked_sk(goal, task),
                },
                Cond::None,
            )])
        }
        Write::Claim {
            tenant,
            kind,
            key: k,
            expires_at,
        } => {
            tenant_matches(key, tenant)?;
            let mut r = Record::keyed(
                keys::claim_pk(tenant, kind, k),
                keys::CLAIM_SK.into(),
                "claim",
                expires_at,
            )?;
            r.ttl = (*expires_at > 0).then_some(*expires_at);
            put(r, Cond::NotExists)
        }
        Write::Lease {
            tenant,
            kind,
            key: k,
            holder,
            expires_at,
            now,
        } => {
            tenant_matches(key, tenant)?;
            let mut r = Record::keyed(
                keys::claim_pk(tenant, kind, k),
                keys::CLAIM_SK.into(),
                "claim",
                holder,
            )?;
            r.ttl = Some(*expires_at);
            put(r, Cond::NotExistsOrExpired(*now))
        }
        Write::NewCall(c) => put(Record::call(c, &key.tenant, &key.goal)?, Cond::NotExists),
        Write::Call {
            call,
            expect_version,
        } => put(
            Record::call(call, &key.tenant, &key.goal)?,
            Cond::Version(*expect_version),
        ),
        Write::TakeRate {
            tenant,
            bucket,
            window,
            limit,
            expires_at,
        } => {
            tenant_matches(key, tenant)?;
            Ok(vec![(
                Op::Add {
                    pk: keys::rate_pk(tenant, bucket),
                    sk: window.clone(),
                    kind: "rate",
                    counters: vec![("n", 1)],
                    ttl: Some(*expires_at),
                },
                Cond::Below("n", u64::from(*limit)),
            )])
        }
        Write::AwaitApproval { tenant, approval } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::approvals_pk(tenant),
                    approval.reference.clone(),
                    "approval",
                    approval,
                )?,
                Cond::None,
            )
        }
        Write::ClearApproval { tenant, reference } => {
            tenant_matches(key, tenant)?;
            Ok(vec![(
                Op::Delete {
                    pk: keys::approvals_pk(tenant),
                    sk: reference.clone(),
                },
                Cond::None,
            )])
        }
        Write::NewLearning { tenant, learning } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::learn_pk(tenant, learning.skill.as_str()),
                    keys::learning_sk(learning.created_ms, &learning.id),
                    "learning",
                    learning,
                )?,
                Cond::NotExists,
            )
        }
        Write::Learning { tenant, learning } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::learn_pk(tenant, learning.skill.as_str()),
                    keys::learning_sk(learning.created_ms, &learning.id),
                    "learning",
                    learning,
                )?,
                Cond::None,
            )
        }
        Write::LearningUse {
            tenant,
            skill,
            used,
        } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::learn_pk(tenant, skill),
                    keys::learning_use_sk(&used.goal, &used.task, used.revision),
                    "learning_use",
                    used,
                )?,
                Cond::None,
            )
        }
        Write::Doc {
            tenant,
            collection,
            id,
            body,
            new_only,
            ttl,
        } => {
            tenant_matches(key, tenant)?;
            let mut r = Record::keyed(keys::doc_pk(tenant, collection), id.clone(), "doc", body)?;
            r.ttl = *ttl;
            put(
                r,
                if *new_only {
                    Cond::NotExists
                } else {
                    Cond::None
                },
            )
        }
        Write::DeleteDoc {
            tenant,
            collection,
            id,
        } => {
            tenant_matches(key, tenant)?;
            Ok(vec![(
                Op::Delete {
                    pk: keys::doc_pk(tenant, collection),
                    sk: id.clone(),
                },
                Cond::None,
            )])
        }
        Write::Budget { tenant, budget } => {
            tenant_matches(key, tenant)?;
            put(
                Record::keyed(
                    keys::budget_pk(tenant),
                    keys::BUDGET_SK.into(),
                    "budget",
                    budget,
                )?,
                Cond::None,
            )
        }
    }
}

pub fn totals(counters: &std::collections::BTreeMap<String, u64>) -> CostTotals {
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    CostTotals {
        micros: get("micros"),
        input_tokens: get("input_tokens"),
        output_tokens: get("output_tokens"),
        cache_write_tokens: get("cache_write_tokens"),
        cache_read_tokens: get("cache_read_tokens"),
        calls: get("calls"),
    }
}

/// The documents of a doc partition, ordered by id.
pub fn docs(records: &[Record]) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let mut out: Vec<(String, serde_json::Value)> = records
        .iter()
        .map(|r| Ok((r.sk.clone(), decode(r)?)))
        .collect::<Result<_, StoreError>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Splits a learn partition into learnings and uses.
pub fn learnings(
    records: &[Record],
) -> Result<
    (
        Vec<mktg_core::learn::Learning>,
        Vec<mktg_core::learn::LearningUse>,
    ),
    StoreError,
> {
    let mut ls = Vec::new();
    let mut uses = Vec::new();
    for r in records {
        match r.kind {
            "learning" => ls.push(decode(r)?),
            "learning_use" => uses.push(decode(r)?),
            _ => {}
        }
    }
    Ok((ls, uses))
}

/// Sorts the records of one goal partition into a `GoalState`.
pub fn goal_state(records: &[Record]) -> Result<crate::GoalState, StoreError> {
    let mut state = crate::GoalState::default();
    for r in records {
        match r.kind {
            "goal" => state.goal = Some(decode::<Goal>(r)?),
            "task" => state.tasks.push(decode::<Task>(r)?),
            "output" => state.outputs.push(decode::<Output>(r)?),
            "review" => state.reviews.push(decode::<Review>(r)?),
            "turn" => state.turns.push(decode::<Turn>(r)?),
            "call" => state.calls.push(decode::<ToolCall>(r)?),
            "trace" => state.traces.push(decode::<Trace>(r)?),
            // Counter items are read through `cost_row`; `goal_state`
            // callers fill `cost` from it.
            "cost" => {}
            other => {
                return Err(StoreError::Permanent(format!(
                    "unknown item kind \"{other}\" at {} / {}",
                    r.pk, r.sk
                )))
            }
        }
    }
    Ok(state)
}

/// Maps a stored kind name back to the static name used in records.
pub fn kind_name(kind: &str) -> Option<&'static str> {
    [
        "goal",
        "task",
        "turn",
        "output",
        "review",
        "trace",
        "cost",
        "parked",
        "claim",
        "budget",
        "call",
        "approval",
        "rate",
        "learning",
        "learning_use",
        "doc",
    ]
    .into_iter()
    .find(|k| *k == kind)
}
