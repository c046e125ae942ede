//! A goal's live updates as server-sent events.
//!
//! Why SSE and not a WebSocket API: the dashboard only listens, the
//! browser's EventSource reconnects by itself and sends the last event id
//! it saw, and the same function URL serves it, with no connection table,
//! no fan-out from the bus and nothing more to deploy. Each request answers
//! the events after the client's cursor, waiting a few seconds for the
//! first new one (a long poll), then ends with a `retry:` hint; the browser
//! reconnects at once. So it works behind a buffered Lambda function URL
//! as well as locally, and a reconnect never loses or repeats an event.
//!
//! The cursor (the SSE event id) is `{traces seen}.{fingerprint}`: trace
//! lines are sent from that index on; the fingerprint is a hash of the
//! goal's and tasks' statuses, and when it changed every task's state is
//! sent again (the client replaces, so a repeat is harmless).

use crate::Reply;
use mktg_boot::Deps;
use mktg_core::{GoalId, TenantId, Trace};
use mktg_store::{GoalKey, GoalState};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long one stream request waits for something new
/// (`MKTG_STREAM_HOLD_SECS`, default 8; the function's timeout is 30 s).
pub fn hold() -> Duration {
    Duration::from_secs(
        std::env::var("MKTG_STREAM_HOLD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8)
            .min(25),
    )
}

/// How often the store is read while waiting.
const POLL: Duration = Duration::from_millis(500);

pub fn trace_json(t: &Trace) -> Value {
    json!({"at_ms": t.at_ms, "subject": t.subject, "from": t.from, "to": t.to, "note": t.note})
}

fn fingerprint(state: &GoalState) -> String {
    let mut h = Sha256::new();
    if let Some(g) = &state.goal {
        h.update(g.status.to_string());
    }
    for t in &state.tasks {
        h.update(format!("|{}:{}:{}", t.id, t.status, t.revision));
    }
    hex::encode(h.finalize())[..12].to_string()
}

fn parse_cursor(cursor: Option<&str>) -> (usize, String) {
    cursor
        .and_then(|c| c.split_once('.'))
        .and_then(|(n, fp)| Some((n.parse().ok()?, fp.to_string())))
        .unwrap_or((0, String::new()))
}

/// The SSE text of what changed since `cursor`, and the new cursor; empty
/// when nothing did.
pub fn changes(state: &GoalState, cursor: Option<&str>) -> String {
    let (seen, fp) = parse_cursor(cursor);
    let now_fp = fingerprint(state);
    let mut out = String::new();
    let traces = state.traces.len();
    let id = format!("{traces}.{now_fp}");
    if now_fp != fp {
        if let Some(g) = &state.goal {
            let data = json!({"id": g.id, "status": g.status.to_string(), "reason": g.reason});
            let _ = write!(out, "event: goal\ndata: {data}\n\n");
        }
        for t in &state.tasks {
            let data = json!({"id": t.id, "skill": t.skill, "status": t.status.to_string(),
                              "revision": t.revision, "deps": t.deps});
            let _ = write!(out, "event: task\ndata: {data}\n\n");
        }
    }
    for t in state.traces.iter().skip(seen.min(traces)) {
        let _ = write!(out, "event: trace\ndata: {}\n\n", trace_json(t));
    }
    if !out.is_empty() {
        // The id goes on the last event: the browser remembers it.
        let _ = write!(out, "id: {id}\ndata: {{}}\nevent: cursor\n\n");
    }
    out
}

/// Answers a stream request: what changed after `cursor`, waiting up to
/// `hold` for the first change.
pub async fn events(
    deps: &Deps,
    tenant: &TenantId,
    goal: &GoalId,
    cursor: Option<&str>,
    hold: Duration,
) -> Reply {
    let key = GoalKey::new(tenant.clone(), goal.clone());
    let started = Instant::now();
    loop {
        let state = match deps.store.goal_state(&key).await {
            Ok(s) => s,
            Err(e) => return crate::unavailable(e).into(),
        };
        if state.goal.is_none() {
            return crate::error(404, "not_found", format!("no goal \"{goal}\"")).into();
        }
        let text = changes(&state, cursor);
        if !text.is_empty() || started.elapsed() >= hold {
            let settled = state.goal.as_ref().is_some_and(|g| {
                !matches!(
                    g.status,
                    mktg_core::GoalStatus::Running | mktg_core::GoalStatus::Escalated
                )
            });
            // Reconnect at once while the goal runs; slowly once it ended.
            let retry = if settled { 15_000 } else { 250 };
            return Reply {
                status: 200,
                content_type: "text/event-stream",
                headers: vec![("cache-control", "no-cache".into())],
                body: format!("retry: {retry}\n\n{text}"),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}
