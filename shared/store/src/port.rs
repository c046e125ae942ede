use async_trait::async_trait;
use mktg_core::learn::{Learning, LearningUse};
use mktg_core::{
    Goal, GoalId, Output, Review, Task, TaskId, TenantId, ToolCall, Trace, Turn, Usage,
};
use serde::{Deserialize, Serialize};

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

    /// A key for commits of tenant-level items only (budget, parked tasks,
    /// claims), which check the tenant and ignore the goal.
    pub fn tenant_only(tenant: TenantId) -> Self {
        GoalKey {
            tenant,
            goal: GoalId::new("-"),
        }
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
    /// Atomic ADD to the month's ledger (total, goal, skill, model) and to
    /// the goal's own running cost.
    AddCost(CostEntry),
    /// Records a task parked by the budget gate, for `mktg budget set`.
    Park {
        tenant: TenantId,
        parked: Parked,
    },
    Unpark {
        tenant: TenantId,
        goal: GoalId,
        task: TaskId,
    },
    /// Claims `key` of `kind` once; a second claim is a conflict. Commit a
    /// claim on its own so a lost claim rolls nothing else back.
    Claim {
        tenant: TenantId,
        kind: String,
        key: String,
        expires_at: u64,
    },
    /// Takes `key` of `kind` for `holder` until `expires_at` (epoch
    /// seconds): a conflict while another holder's lease is unexpired at
    /// `now`. Commit it on its own, like a claim.
    Lease {
        tenant: TenantId,
        kind: String,
        key: String,
        holder: String,
        expires_at: u64,
        now: u64,
    },
    Budget {
        tenant: TenantId,
        budget: TenantBudget,
    },
    /// A new tool call (fails if it exists).
    NewCall(ToolCall),
    /// A tool call's new state, if it is still at `expect_version`.
    Call {
        call: ToolCall,
        expect_version: u64,
    },
    /// Takes one call from a rate bucket: fails with a conflict when the
    /// window already holds `limit` calls.
    TakeRate {
        tenant: TenantId,
        bucket: String,
        window: String,
        limit: u32,
        expires_at: u64,
    },
    /// Lists a call among the tenant's pending approvals.
    AwaitApproval {
        tenant: TenantId,
        approval: PendingApproval,
    },
    /// Removes a call from the pending approvals.
    ClearApproval {
        tenant: TenantId,
        reference: String,
    },
    /// A new learning (fails if it exists).
    NewLearning {
        tenant: TenantId,
        learning: Learning,
    },
    /// A learning's new state (pruning).
    Learning {
        tenant: TenantId,
        learning: Learning,
    },
    /// Which learnings a task revision's prompt carried, and later its score.
    LearningUse {
        tenant: TenantId,
        skill: String,
        used: LearningUse,
    },
    /// A tenant-level document `id` of `collection` (metric observations,
    /// learned patterns, budget proposals), as JSON. `new_only` makes a
    /// second write of the same id a conflict; `ttl` lets DynamoDB expire it.
    Doc {
        tenant: TenantId,
        collection: String,
        id: String,
        body: serde_json::Value,
        new_only: bool,
        ttl: Option<u64>,
    },
    /// Removes a document (none there is fine).
    DeleteDoc {
        tenant: TenantId,
        collection: String,
        id: String,
    },
}

/// A tool call waiting for `mktg approve` / `mktg deny`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// `task.revision.turn.call`, what people type.
    pub reference: String,
    pub goal: GoalId,
    pub task: TaskId,
    pub revision: u32,
    pub turn: u32,
    pub call: String,
    pub tool: String,
    pub effect: String,
    /// The arguments, as the model gave them.
    pub input: String,
    pub at_ms: u64,
}

/// One model call's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostEntry {
    pub tenant: TenantId,
    pub goal: GoalId,
    /// `yyyy-mm` of the call.
    pub month: String,
    pub skill: String,
    pub model: String,
    pub usage: Usage,
    pub micros: u64,
}

/// Sums kept by the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostTotals {
    pub micros: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_tokens: u64,
    pub cache_read_tokens: u64,
    pub calls: u64,
}

/// A tenant's budget, overriding budget.yaml once set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantBudget {
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    pub updated_ms: u64,
    /// The billing plan the tenant chose (budget.yaml `billing.plans`).
    #[serde(default)]
    pub plan: Option<String>,
}

/// A task the budget gate parked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub goal: GoalId,
    pub task: TaskId,
    pub revision: u32,
    pub level: String,
    pub reason: String,
    pub at_ms: u64,
}

/// Everything stored under one goal.
#[derive(Clone, Debug, Default)]
pub struct GoalState {
    pub goal: Option<Goal>,
    pub tasks: Vec<Task>,
    pub outputs: Vec<Output>,
    pub reviews: Vec<Review>,
    pub turns: Vec<Turn>,
    pub calls: Vec<ToolCall>,
    pub traces: Vec<Trace>,
    /// What the goal's model calls cost so far.
    pub cost: CostTotals,
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

    /// The tenant's goals after `after` in creation order, oldest first, at
    /// most `limit`. `after` is exclusive: a sort key from
    /// `keys::goals_by_tenant_sk` (a page's cursor), a `{ms:013}` prefix
    /// (every goal created at or after that millisecond), or "" (from the
    /// first).
    async fn goals_after(
        &self,
        tenant: &TenantId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Goal>, StoreError>;

    /// The month's ledger rows: `TOTAL`, `GOAL#…`, `SKILL#…`, `MODEL#…`.
    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError>;

    /// One ledger row (zero when absent): `keys::cost_pk` / sk.
    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError>;

    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError>;

    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError>;

    /// The holder of a lease, if it exists (expired or not).
    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    async fn call(
        &self,
        key: &GoalKey,
        task: &TaskId,
        revision: u32,
        turn: u32,
        id: &str,
    ) -> Result<Option<ToolCall>, StoreError>;

    /// A skill's learnings (oldest first) and their recorded uses.
    async fn learnings(
        &self,
        tenant: &TenantId,
        skill: &str,
    ) -> Result<(Vec<Learning>, Vec<LearningUse>), StoreError>;

    /// The tenant's tool calls waiting for approval, oldest first.
    async fn approvals(&self, tenant: &TenantId) -> Result<Vec<PendingApproval>, StoreError>;

    /// The documents of a collection (see `Write::Doc`), ordered by id.
    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;

    /// One document of a collection, by id.
    async fn doc(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .docs(tenant, collection)
            .await?
            .into_iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v))
    }

    /// Whether a claim exists (see `Write::Claim`).
    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError>;
}
