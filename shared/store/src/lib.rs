//! The `Store` port: durable state of goals, tasks, turns, outputs, reviews
//! and their trace, with an in-memory adapter and a DynamoDB adapter.
//!
//! Both adapters share `record.rs` (keys and serialization), so the memory
//! adapter used in unit tests exercises the same key layout as DynamoDB.
//! This crate makes no business decisions.

mod dynamo;
pub mod keys;
mod memory;
mod port;
mod record;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;
pub use port::{
    CostEntry, CostTotals, Disposition, GoalKey, GoalState, Parked, PendingApproval, Store,
    StoreError, TenantBudget, Write,
};
pub use record::{Op, Record};
