//! How much of each model request sits inside the cached prefix.
//!
//! Runs the demo goal ("Write a blog post …", the Content Production plan)
//! through every handler with in-memory adapters and the scripted provider,
//! captures each request exactly as the Anthropic provider would send it,
//! and prints per call the tokens of the cached prefix (the system block,
//! which carries `cache_control`) against all input tokens. Tokens are
//! estimated as characters / 4, the same rule the scripted provider uses.
//!
//!     cargo run -p mktg-bench --bin cache_prefix

use async_trait::async_trait;
use mktg_boot::{Deps, SystemClock};
use mktg_bus::MemoryBus;
use mktg_config::Paths;
use mktg_core::{Envelope, GoalId, Message, QueueName, TenantId};
use mktg_llm::{AnthropicModel, ChatModel, ChatRequest, ChatResponse, LlmError, ScriptedModel};
use mktg_store::MemoryStore;
use std::sync::{Arc, Mutex};

struct Recording {
    inner: ScriptedModel,
    seen: Mutex<Vec<ChatRequest>>,
}

#[async_trait]
impl ChatModel for Recording {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn is_scripted(&self) -> bool {
        true
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request.clone());
        }
        self.inner.complete(request).await
    }
}

fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = mktg_config::load(&Paths::under(&root)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let model = Arc::new(Recording {
        inner: ScriptedModel::load(&config.models.scripted_script)?,
        seen: Mutex::new(vec![]),
    });
    let bus = Arc::new(MemoryBus::new());
    let deps = Deps::new(
        Arc::new(MemoryStore::new()),
        bus.clone(),
        model.clone(),
        Arc::new(config),
        Arc::new(SystemClock),
    );
    bus.send_now(&Envelope::new(
        TenantId::new("bench"),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: "Write a blog post announcing Tallybook's new receipt capture".into(),
            pipeline: None,
            priority: Default::default(),
            source: None,
            submitted_ms: 0,
        },
    ))
    .await;
    loop {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = bus.pop(q) {
                any = true;
                mktg_cli::dispatch(&deps, q, env)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        if !any {
            break;
        }
    }
    let seen = model
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    println!(
        "{:<22} {:<22} {:>4} {:>5} {:>14} {:>12} {:>8}",
        "skill", "role/step", "rev", "turn", "cached prefix", "all input", "share"
    );
    let (mut cached_sum, mut all_sum) = (0u64, 0u64);
    for r in &seen {
        let body = AnthropicModel::body(r);
        let system: String = body["system"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect();
        // The cached prefix is tools + system (both carry cache_control);
        // the rest is the messages, tool_use and tool_result blocks included.
        let tool_text = body["tools"].to_string();
        let cached = tokens(&system)
            + if body["tools"].is_null() {
                0
            } else {
                tokens(&tool_text)
            };
        let all = cached + tokens(&body["messages"].to_string());
        cached_sum += cached;
        all_sum += all;
        let role = if r.meta.step.is_empty() {
            r.meta.role.clone()
        } else {
            format!("{}/{}", r.meta.role, r.meta.step)
        };
        println!(
            "{:<22} {:<22} {:>4} {:>5} {:>14} {:>12} {:>7.1}%",
            r.meta.skill,
            role,
            r.meta.revision,
            r.meta.turn,
            cached,
            all,
            cached as f64 * 100.0 / all.max(1) as f64
        );
    }
    println!(
        "total: {cached_sum} of {all_sum} input tokens ({:.1}%) are inside the cached prefix over {} calls",
        cached_sum as f64 * 100.0 / all_sum.max(1) as f64,
        seen.len()
    );
    Ok(())
}
