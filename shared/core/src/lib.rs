//! Domain types and pure rules of mktg: goals, plans, tasks and their state
//! machine, reviews, message envelopes and idempotency keys.
//!
//! This crate performs no IO, reads no clock and no environment, and knows
//! nothing about AWS or HTTP. Callers pass `now` and ids in.

pub mod anomaly;
pub mod cost;
pub mod events;
pub mod heal;
pub mod ids;
pub mod keys;
pub mod learn;
pub mod message;
pub mod model;
pub mod plan;
pub mod realloc;
pub mod review;
pub mod status;
pub mod tools;

pub use ids::{GoalId, SkillName, TaskId, TenantId};
pub use message::{DomainEvent, Envelope, Message, Outgoing, QueueName, Resolution};
pub use model::{Goal, GoalSource, Output, Priority, Task, Trace, Turn, TurnToolUse, Usage};
pub use review::{Decision, Finding, Review, Severity};
pub use status::{GoalStatus, TaskStatus, TransitionError};
pub use tools::{CallStatus, Effect, ToolCall};
