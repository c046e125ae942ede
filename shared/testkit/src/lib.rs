//! Test helpers (dev-dependency only): the real config, in-memory deps with
//! the scripted model and a stepping clock, a driver that delivers queued
//! messages to the handlers like the queues would, fixtures and `eventually`.

pub mod counting;

use mktg_boot::{Clock, Deps, HandlerError};
use mktg_bus::MemoryBus;
use mktg_config::{Config, Paths};
use mktg_core::{Envelope, QueueName};
use mktg_llm::{ChatModel, ScriptedModel};
use mktg_store::MemoryStore;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The repository root (where `config/` and `skills/` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's own configuration.
pub fn real_config() -> Config {
    mktg_config::load(&Paths::under(repo_root()))
        .unwrap_or_else(|e| panic!("shipped config is invalid: {e}"))
}

/// A temp dir holding copies of `config/` and `skills/`, to break on purpose.
pub fn config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    for sub in ["config", "skills"] {
        copy_dir(&repo_root().join(sub), &dir.path().join(sub));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    let fail = |e: std::io::Error| -> ! { panic!("copying {} failed: {e}", from.display()) };
    std::fs::create_dir_all(to).unwrap_or_else(|e| fail(e));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| fail(e)) {
        let entry = entry.unwrap_or_else(|e| fail(e));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap_or_else(|e| fail(e));
        }
    }
}

/// Reads `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    let path = repo_root().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// A clock that advances one millisecond per reading, so every trace line
/// has its own time and tests are repeatable.
pub struct StepClock(AtomicU64);

impl StepClock {
    pub fn new(start_ms: u64) -> Self {
        StepClock(AtomicU64::new(start_ms))
    }

    /// Jumps ahead, e.g. past a rate-limit window.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for StepClock {
    fn now_ms(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// In-memory deps plus typed handles on the memory adapters.
pub struct TestDeps {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub bus: Arc<MemoryBus>,
    pub clock: Arc<StepClock>,
}

/// Deps over memory adapters, the real config and the demo script.
pub fn memory_deps() -> TestDeps {
    let config = real_config();
    let model =
        ScriptedModel::load(&config.models.scripted_script).unwrap_or_else(|e| panic!("{e}"));
    memory_deps_with(config, Arc::new(model))
}

pub fn memory_deps_with(config: Config, model: Arc<dyn ChatModel>) -> TestDeps {
    let store = Arc::new(MemoryStore::new());
    let bus = Arc::new(MemoryBus::new());
    let clock = Arc::new(StepClock::new(1_700_000_000_000));
    let deps = Deps::new(
        store.clone(),
        bus.clone(),
        model,
        Arc::new(config),
        clock.clone(),
    );
    TestDeps {
        deps,
        store,
        bus,
        clock,
    }
}

/// The path of an MCP server that `scripts/mcp-servers` installs under
/// `.mktg/`; fails with the fix when it is missing.
pub fn mcp_server(rel: &str) -> String {
    let path = repo_root().join(".mktg").join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/mcp-servers` (scripts/test does)",
        path.display()
    );
    path.display().to_string()
}

/// `everything`: the reference MCP server from npm (stdio).
pub fn everything_server() -> String {
    mcp_server("mcp-node/node_modules/.bin/mcp-server-everything")
}

/// The Python of the venv holding the PyPI MCP servers.
pub fn mcp_python() -> String {
    mcp_server("mcp-venv/bin/python")
}

/// A copy of the real config with `tools_yaml` as config/tools.yaml, and
/// the scripted model reading `script_yaml` (its `file:` entries are
/// relative to the real config/scripted/).
pub fn config_with_tools(
    tools_yaml: &str,
    script_yaml: &str,
) -> (tempfile::TempDir, Config, ScriptedModel) {
    let dir = config_copy();
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()))
    };
    write(dir.path().join("config/tools.yaml"), tools_yaml);
    let script = dir.path().join("config/scripted/test-script.yaml");
    write(script.clone(), script_yaml);
    let config = mktg_config::load(&Paths::under(dir.path()))
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
    let model = ScriptedModel::load(&script).unwrap_or_else(|e| panic!("{e}"));
    (dir, config, model)
}

/// The handler of each queue, as `mktg dev` wires them.
pub type Handler = for<'a> fn(
    &'a Deps,
    Envelope,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), HandlerError>> + Send + 'a>,
>;

/// Polls `probe` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which queue a message waits in.
pub fn queue_of(env: &Envelope) -> QueueName {
    env.message.queue()
}

/// A model that keeps every request it was sent, then lets `inner` answer.
pub struct RecordingModel {
    pub inner: Arc<dyn ChatModel>,
    pub requests: std::sync::Mutex<Vec<mktg_llm::ChatRequest>>,
}

impl RecordingModel {
    /// Over the demo script.
    pub fn demo() -> Arc<Self> {
        let config = real_config();
        let model =
            ScriptedModel::load(&config.models.scripted_script).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(RecordingModel {
            inner: Arc::new(model),
            requests: Default::default(),
        })
    }

    pub fn requests(&self) -> Vec<mktg_llm::ChatRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl ChatModel for RecordingModel {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn is_scripted(&self) -> bool {
        self.inner.is_scripted()
    }
    async fn complete(
        &self,
        request: &mktg_llm::ChatRequest,
    ) -> Result<mktg_llm::ChatResponse, mktg_llm::LlmError> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        self.inner.complete(request).await
    }
}
