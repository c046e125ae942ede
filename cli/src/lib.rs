//! The pieces of the `mktg` tool that tests reuse: routing a message to its
//! function's handler, and `mktg dev`'s queue pollers.

pub use mktg_actions::approvals;
pub mod dev;
pub mod dlq;
pub mod serve;
pub mod show;

use mktg_boot::{Deps, HandlerError};
use mktg_core::{Envelope, QueueName};

/// Runs the handler of the function that consumes `queue`, exactly as its
/// Lambda would for one record.
pub async fn dispatch(deps: &Deps, queue: QueueName, env: Envelope) -> Result<(), HandlerError> {
    match queue {
        QueueName::Director => director::on_message(deps, env).await,
        QueueName::Agent => agent_executor::on_message(deps, env).await,
        QueueName::Review => reviewer::on_message(deps, env).await,
        QueueName::Tool => tool_invoker::on_message(deps, env).await,
    }
}

/// Loads `.mktg/emulator.env` (written by `localstack/up`) into the process
/// environment, without overriding variables that are already set. Call it
/// before any thread starts.
pub fn load_env_file(path: &std::path::Path) -> Result<bool, String> {
    if !path.exists() {
        return Ok(false);
    }
    let iter = dotenvy::from_path_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for item in iter {
        let (k, v) = item.map_err(|e| format!("{}: {e}", path.display()))?;
        if std::env::var_os(&k).is_none() {
            std::env::set_var(k, v);
        }
    }
    Ok(true)
}
