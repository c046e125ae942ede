//! Lambda glue shared by every function: settings from the environment,
//! tracing, the dependencies built once per cold start, the SQS batch runner
//! and the outbox flush. Only this crate (and tests) names concrete adapters.

pub mod budget;
pub mod checkpoint;
pub mod context;
pub mod dead_letter;
mod deps;
mod error;
pub mod metrics;
pub mod outbox;
mod runner;
pub mod secrets;
mod settings;
pub mod tenant;
pub mod vault;

pub use fail;

/// A crash injected by tests at a step boundary: with the `fail/failpoints`
/// feature (test builds only) and the point configured, the handler returns
/// a retryable error here, as if the invocation died; otherwise a no-op.
/// Use inside a function returning `Result<_, HandlerError>`.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        $crate::fail::fail_point!($name, |_| {
            Err($crate::HandlerError::Retry(
                concat!("injected crash at ", $name).into(),
            ))
        })
    };
}

pub use deps::{choose_model, BootError, Clock, Deps, SystemClock};
pub use error::HandlerError;
pub use runner::{decode, handle_record, run_sqs_batch, run_sqs_batch_with, RecordOutcome};
pub use settings::{Secret, Settings, SettingsError};

/// JSON logs under Lambda (or when `MKTG_LOG_FORMAT=json`), readable text
/// otherwise; level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`, default info.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok()
        || std::env::var("MKTG_LOG_FORMAT")
            .map(|f| f == "json")
            .unwrap_or(false);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, `mktg dev`) is harmless; ignore it.
    if json {
        let _ = builder.json().flatten_event(true).without_time().try_init();
    } else {
        let _ = builder.compact().try_init();
    }
}

/// The `yyyy-mm` (UTC) of a time, the cost ledger's month.
pub fn month_of(ms: u64) -> String {
    use chrono::{TimeZone, Utc};
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "1970-01".into())
}
