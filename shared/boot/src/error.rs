use mktg_bus::BusError;
use mktg_llm::LlmError;
use mktg_store::StoreError;

/// How a handler's failure should be treated by the batch runner.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Temporary: report the record as failed so SQS redelivers it.
    #[error("{0}")]
    Retry(String),
    /// Permanent and already recorded on the task where possible: ack.
    #[error("{0}")]
    Fail(String),
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        match e {
            // A conflict that escapes a handler is retried: the redelivery
            // re-reads the state and acknowledges if the work is done.
            StoreError::Conflict(_) | StoreError::Transient(_) => {
                HandlerError::Retry(e.to_string())
            }
            StoreError::Permanent(_) => HandlerError::Fail(e.to_string()),
        }
    }
}

impl From<BusError> for HandlerError {
    fn from(e: BusError) -> Self {
        if e.is_transient() {
            HandlerError::Retry(e.to_string())
        } else {
            HandlerError::Fail(e.to_string())
        }
    }
}

impl From<LlmError> for HandlerError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::Retryable(_) => HandlerError::Retry(e.to_string()),
            LlmError::Permanent(_) => HandlerError::Fail(e.to_string()),
        }
    }
}

impl From<mktg_core::TransitionError> for HandlerError {
    fn from(e: mktg_core::TransitionError) -> Self {
        HandlerError::Fail(e.to_string())
    }
}
