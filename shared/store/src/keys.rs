//! The only place that builds DynamoDB keys. Tenant comes first in every
//! partition key, so one tenant's data can never be read by building another
//! tenant's key from a payload.

use mktg_core::{GoalId, TaskId, TenantId};

pub fn goal_pk(tenant: &TenantId, goal: &GoalId) -> String {
    format!("T#{tenant}#G#{goal}")
}

pub const GOAL_SK: &str = "GOAL";

pub fn task_sk(task: &TaskId) -> String {
    format!("TASK#{task}")
}

pub fn turn_sk(task: &TaskId, revision: u32, n: u32) -> String {
    format!("TURN#{task}#{revision:03}#{n:03}")
}

/// A tool call of a turn; sorts by turn, then by the model's call id.
pub fn call_sk(task: &TaskId, revision: u32, turn: u32, call: &str) -> String {
    format!("CALL#{task}#{revision:03}#{turn:03}#{call}")
}

/// A tool's rate bucket of one window, per tenant (whose credentials the
/// vendor limits).
pub fn rate_pk(tenant: &TenantId, bucket: &str) -> String {
    format!("T#{tenant}#RATE#{bucket}")
}

/// The tenant's tool calls waiting for a person.
pub fn approvals_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#APPROVALS")
}

/// A skill's learnings and their uses, per tenant.
pub fn learn_pk(tenant: &TenantId, skill: &str) -> String {
    format!("T#{tenant}#LEARN#{skill}")
}

pub fn learning_sk(created_ms: u64, id: &str) -> String {
    format!("L#{created_ms:013}#{id}")
}

pub fn learning_use_sk(goal: &GoalId, task: &TaskId, revision: u32) -> String {
    format!("USE#{goal}#{task}#{revision:03}")
}

/// A tenant's documents of one collection (`Write::Doc`).
pub fn doc_pk(tenant: &TenantId, collection: &str) -> String {
    format!("T#{tenant}#DOC#{collection}")
}

pub fn output_sk(task: &TaskId, revision: u32) -> String {
    format!("OUT#{task}#{revision:03}")
}

pub fn review_sk(task: &TaskId, revision: u32, reviewer: &str) -> String {
    format!("REV#{task}#{revision:03}#{reviewer}")
}

/// Trace lines sort by time; `seq` separates lines written in one commit.
pub fn trace_sk(at_ms: u64, seq: usize, subject: &str) -> String {
    format!("LOG#{at_ms:013}#{seq:03}#{subject}")
}

/// GSI1 lists a tenant's goals newest last.
pub fn goals_by_tenant_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#GOALS")
}

pub fn goals_by_tenant_sk(created_ms: u64, goal: &GoalId) -> String {
    format!("{created_ms:013}#{goal}")
}

/// The tenant's cost ledger of one month (`yyyy-mm`).
pub fn cost_pk(tenant: &TenantId, month: &str) -> String {
    format!("T#{tenant}#COST#{month}")
}

pub const COST_TOTAL_SK: &str = "TOTAL";
/// The running cost of one goal, kept in the goal's own partition.
pub const GOAL_COST_SK: &str = "COST";

pub fn parked_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#PARKED")
}

pub fn parked_sk(goal: &GoalId, task: &TaskId) -> String {
    format!("{goal}#{task}")
}

pub fn claim_pk(tenant: &TenantId, kind: &str, key: &str) -> String {
    format!("T#{tenant}#CLAIM#{kind}#{key}")
}

pub const CLAIM_SK: &str = "CLAIM";

pub fn budget_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#BUDGET")
}

pub const BUDGET_SK: &str = "BUDGET";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_the_tenant_first_and_sort_revisions_numerically() {
        assert_eq!(goal_pk(&"acme".into(), &"g1".into()), "T#acme#G#g1");
        assert!(output_sk(&"t".into(), 2) < output_sk(&"t".into(), 10));
        assert!(trace_sk(999, 0, "goal") < trace_sk(1000, 0, "goal"));
    }
}
