//! Helpers of the emulator integration tests: deps wired to the emulator
//! from `.mktg/emulator.env` (written by `localstack/up`), in-process
//! workers, and a bus that delivers every message twice.
//!
//! Tests fail, loudly and with the fix, when the emulator is not there:
//! they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod load;

use async_trait::async_trait;
use mktg_boot::{Deps, Settings};
use mktg_bus::{Bus, BusError, SqsConsumer};
use mktg_cli::dev::{self, DevStats};
use mktg_core::{DomainEvent, Envelope};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The variables `localstack/up` (or `localstack/deploy`) wrote.
pub fn emulator_env(file: &str, how: &str) -> HashMap<String, String> {
    let path = repo_root().join(".mktg").join(file);
    let iter = dotenvy::from_path_iter(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}). Run {how} first", path.display()));
    iter.map(|kv| kv.unwrap()).collect()
}

/// Tests that run workers share the stack's queues, so a test's workers
/// would also handle another test's messages with their own deps (e.g. a
/// duplicating bus). Such tests hold this lock for their whole run.
pub static QUEUES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Emulator {
    pub env: HashMap<String, String>,
    pub aws: aws_config::SdkConfig,
    pub settings: Settings,
}

/// The stack `localstack/up` provisioned for in-process handlers.
pub async fn emulator() -> Emulator {
    connect(emulator_env("emulator.env", "localstack/up")).await
}

/// The stack `localstack/deploy` deployed with the real Lambda functions.
pub async fn deployed() -> Emulator {
    connect(emulator_env("deployed.env", "localstack/deploy")).await
}

async fn connect(mut env: HashMap<String, String>) -> Emulator {
    env.insert("MKTG_ROOT".into(), repo_root().display().to_string());
    env.remove("ANTHROPIC_API_KEY");
    let endpoint = env["AWS_ENDPOINT_URL"].clone();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(env["AWS_REGION"].clone()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await;
    let lookup = env.clone();
    let settings = Settings::from_lookup(|k| lookup.get(k).cloned()).unwrap();
    let probe = aws_sdk_dynamodb::Client::new(&aws)
        .describe_table()
        .table_name(&settings.table_name)
        .send()
        .await;
    if let Err(e) = probe {
        panic!(
            "the emulator at {endpoint} does not answer or lacks table {} ({e:?}). Run localstack/up (and localstack/deploy) first.",
            settings.table_name
        );
    }
    Emulator { env, aws, settings }
}

impl Emulator {
    pub fn deps(&self) -> Deps {
        Deps::build_with(&self.settings, &self.aws).unwrap()
    }

    /// Runs every function's handler in this process until stopped.
    pub fn workers(&self, deps: Deps) -> Workers {
        let consumer = SqsConsumer::new(aws_sdk_sqs::Client::new(&self.aws));
        let running = dev::Workers::start(deps, consumer, self.settings.queue_urls.clone(), 10);
        Workers {
            stats: running.stats.clone(),
            running,
        }
    }
}

pub struct Workers {
    pub stats: Arc<DevStats>,
    running: dev::Workers,
}

impl Workers {
    pub async fn stop(self) -> Arc<DevStats> {
        self.running.stop().await.unwrap()
    }
}

/// A bus that sends every message twice, as an at-least-once queue may
/// deliver it.
pub struct DuplicatingBus {
    inner: Arc<dyn Bus>,
    /// Deliveries made, counting both copies.
    pub sent: std::sync::atomic::AtomicUsize,
}

impl DuplicatingBus {
    pub fn new(inner: Arc<dyn Bus>) -> Self {
        DuplicatingBus {
            inner,
            sent: Default::default(),
        }
    }
}

#[async_trait]
impl Bus for DuplicatingBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        self.inner.send(envelope).await?;
        self.inner.send(envelope).await?;
        self.sent.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        self.inner.publish(event).await
    }

    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError> {
        self.inner.put_external(source, detail_type, detail).await
    }
}

/// A tenant id of its own for each test, so tests run in parallel.
pub fn fresh_tenant(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Waits until the goal at `key` is COMPLETED, FAILED or ESCALATED (two
/// minutes at most) and returns everything stored under it.
pub async fn settled(deps: &Deps, key: &mktg_store::GoalKey) -> mktg_store::GoalState {
    let start = std::time::Instant::now();
    loop {
        let state = deps
            .store
            .goal_state(key)
            .await
            .unwrap_or_else(|e| panic!("reading goal {}: {e}", key.goal));
        if state.goal.as_ref().is_some_and(|g| g.status.is_settled()) {
            return state;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "goal {} did not settle: {:?}",
            key.goal,
            state.traces
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
