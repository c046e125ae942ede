//! The stored shape of every item, shared by both adapters: key attributes,
//! the attributes conditions look at (`version`, `status`), and the domain
//! object as JSON in `data`.

use crate::keys;
use crate::port::{GoalKey, StoreError, Write};
use mktg_core::{Goal, Output, Review, Task, Trace, Turn};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a write requires of the item it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    None,
    NotExists,
    Version(u64),
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
        })
    }

    fn plain<T: Serialize>(
        key: &GoalKey,
        sk: String,
        kind: &'static str,
        value: &T,
    ) -> Result<Record, StoreError> {
        Ok(Record {
            pk: keys::goal_pk(&key.tenant, &key.goal),
            sk,
            kind,
            version: None,
            status: None,
            gsi1: None,
            data: json(value)?,
        })
    }

    /// The record a write produces, and the condition it carries.
    pub fn from_write(
        key: &GoalKey,
        write: &Write,
        seq: usize,
    ) -> Result<(Record, Cond), StoreError> {
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
        Ok(match write {
            Write::NewGoal(g) => {
                same_goal(&g.tenant, &g.id)?;
                (Record::goal(g)?, Cond::NotExists)
            }
            Write::Goal {
                goal,
                expect_version,
            } => {
                same_goal(&goal.tenant, &goal.id)?;
                (Record::goal(goal)?, Cond::Version(*expect_version))
            }
            Write::NewTask(t) => {
                same_goal(&t.tenant, &t.goal)?;
                (Record::task(t)?, Cond::NotExists)
            }
            Write::Task {
                task,
                expect_version,
            } => {
                same_goal(&task.tenant, &task.goal)?;
                (Record::task(task)?, Cond::Version(*expect_version))
            }
            Write::NewTurn(t) => (
                Record::plain(key, keys::turn_sk(&t.task, t.revision, t.n), "turn", t)?,
                Cond::NotExists,
            ),
            Write::NewOutput(o) => (
                Record::plain(key, keys::output_sk(&o.task, o.revision), "output", o)?,
                Cond::NotExists,
            ),
            Write::NewReview(r) => (
                Record::plain(
                    key,
                    keys::review_sk(&r.task, r.revision, &r.reviewer),
                    "review",
                    r,
                )?,
                Cond::NotExists,
            ),
            Write::Trace(t) => (
                Record::plain(key, keys::trace_sk(t.at_ms, seq, &t.subject), "trace", t)?,
                Cond::None,
            ),
        })
    }
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
            "trace" => state.traces.push(decode::<Trace>(r)?),
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
    ["goal", "task", "turn", "output", "review", "trace"]
        .into_iter()
        .find(|k| *k == kind)
}
