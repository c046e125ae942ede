//! Cold start of each function's bootstrap, as `sam build` makes it: the
//! binary is started with `AWS_LAMBDA_RUNTIME_API` pointing at a mock
//! runtime API (a real HTTP server) and the emulator's resources in its
//! environment; init is the time from spawn until it first asks for an
//! invocation (`GET /2018-06-01/runtime/invocation/next`), when its peak
//! RSS (VmHWM) is read. Prints bootstrap size, init time and peak memory.
//! Needs `localstack/up` and `localstack/deploy` (for the binaries).
//!
//!     cargo run -p mktg-bench --bin cold_start [-- BIN_DIR] [RUNS]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FUNCTIONS: [&str; 6] = [
    "director",
    "agent-executor",
    "reviewer",
    "tool-invoker",
    "scheduler-tick",
    "webhook-intake",
];

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let bin_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".mktg/sam-bins"));
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let env_file = root.join(".mktg/emulator.env");
    let env: Vec<(String, String)> = dotenvy::from_path_iter(&env_file)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run localstack/up)", env_file.display()))?
        .collect::<Result<_, _>>()?;
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>14}",
        "function", "bootstrap", "init p50", "init max", "peak RSS"
    );
    for f in FUNCTIONS {
        let bin = bin_dir.join(f);
        let size = std::fs::metadata(&bin)
            .map_err(|e| anyhow::anyhow!("{}: {e} (run localstack/deploy)", bin.display()))?
            .len();
        let mut inits = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let api = MockServer::start().await;
            // Hold the request open, as the runtime API does between invocations.
            Mock::given(method("GET"))
                .and(path("/2018-06-01/runtime/invocation/next"))
                .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
                .mount(&api)
                .await;
            let address = api.address().to_string();
            let started = Instant::now();
            let mut child = Command::new(&bin)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("AWS_LAMBDA_RUNTIME_API", &address)
                .env("AWS_LAMBDA_FUNCTION_NAME", f)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("MKTG_ROOT", &root)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let pid = child.id();
            let init = loop {
                if !api.received_requests().await.unwrap_or_default().is_empty() {
                    break started.elapsed();
                }
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("{f} exited with {status} before asking for work");
                }
                if started.elapsed() > Duration::from_secs(20) {
                    anyhow::bail!("{f} did not ask for work within 20 s");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            rss = rss.max(peak_rss_kb(pid).unwrap_or(0));
            child.kill()?;
            child.wait()?;
            inits.push(init);
        }
        inits.sort();
        println!(
            "{f:<16} {:>9.1} MB {:>9} ms {:>9} ms {:>11} MB",
            size as f64 / 1e6,
            inits[inits.len() / 2].as_millis(),
            inits[inits.len() - 1].as_millis(),
            rss / 1024
        );
    }
    println!("({runs} starts each; init = spawn until the first GET /runtime/invocation/next)");
    Ok(())
}
