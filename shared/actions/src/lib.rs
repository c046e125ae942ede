//! What a person asks of the system, shared by the `mktg` CLI and the REST
//! API so both give the same answers: approving or denying a tool call that
//! writes or spends and a proposed budget shift, cancelling a goal and
//! resolving an escalation, connecting a tool server with the tenant's own
//! credentials, the budget and plan, the plan forecast, billing,
//! and the read views of schedules, events, escalations and metrics.

pub mod approvals;
pub use scheduler_tick::billing;
pub mod budget;
pub mod connections;
pub mod forecast;
pub mod human;
pub mod sample;
pub mod schedules;
pub mod views;

use mktg_boot::HandlerError;
use mktg_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// It exists but is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// A store, bus or outside service did not answer; try again.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        ActionError::Unavailable(e.to_string())
    }
}

impl From<billing::BillingError> for ActionError {
    fn from(e: billing::BillingError) -> Self {
        match e {
            billing::BillingError::Invalid(m) => ActionError::Invalid(m),
            billing::BillingError::Unavailable(m) => ActionError::Unavailable(m),
        }
    }
}

impl From<HandlerError> for ActionError {
    fn from(e: HandlerError) -> Self {
        ActionError::Unavailable(e.to_string())
    }
}
