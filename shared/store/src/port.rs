use async_trait::async_trait;
use mktg_core::{Goal, GoalId, Output, Review, Task, TaskId, TenantId, Trace, Turn};

/// What to do with the message whose handling hit this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Lost a race or already done: acknowledge quietly.
    Done,
    /// Temporary: let the queue redeliver.
    Retry,
    /// Will never succeed: record the failure and acknowledge.
    Fail,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed or already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("transient store error: {0}")]
    Transient(String),
    #[error("store error: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn disposition(&self) -> Disposition {
        match self {
            StoreError::Conflict(_) => Disposition::Done,
            StoreError::Transient(_) => Disposition::Retry,
            StoreError::Permanent(_) => Disposition::Fail,
        }
    }
}

/// The partition of one goal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoalKey {
    pub tenant: TenantId,
    pub goal: GoalId,
}

impl GoalKey {
    pub fn new(tenant: TenantId, goal: GoalId) -> Self {
        GoalKey { tenant, goal }
    }
}

/// One write of an atomic commit. `expect_version` is the version the item
/// had when it was read; the write fails with `Conflict` if it changed.
#[derive(Clone, Debug)]
pub enum Write {
    NewGoal(Goal),
    Goal {
        goal: Goal,
        expect_version: u64,
    },
    NewTask(Task),
    Task {
        task: Task,
        expect_version: u64,
    },
    /// Written once; a second write of the same key is a conflict.
    NewTurn(Turn),
    NewOutput(Output),
    NewReview(Review),
    Trace(Trace),
}

/// Everything stored under one goal.
#[derive(Clone, Debug, Default)]
pub struct GoalState {
    pub goal: Option<Goal>,
    pub tasks: Vec<Task>,
    pub outputs: Vec<Output>,
    pub reviews: Vec<Review>,
    pub turns: Vec<Turn>,
    pub traces: Vec<Trace>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Applies every write or none. Any failed condition makes the whole
    /// commit fail with `Conflict`.
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError>;

    async fn goal(&self, key: &GoalKey) -> Result<Option<Goal>, StoreError>;

    async fn task(&self, key: &GoalKey, task: &TaskId) -> Result<Option<Task>, StoreError>;

    async fn turn(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        n: u32,
    ) -> Result<Option<Turn>, StoreError>;

    async fn output(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
    ) -> Result<Option<Output>, StoreError>;

    /// Every item of the goal, read with a consistent read.
    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError>;

    /// The tenant's goals, oldest first, at most `limit`.
    async fn goals(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Goal>, StoreError>;
}
