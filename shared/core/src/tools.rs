//! Tool calls: what an agent asked a tool to do, the policy that governs it,
//! and the pure rules around it (names, loop guard, rate windows).

use crate::ids::TaskId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a tool does to the world. Reads run freely; writes and spends are
/// deliberate (approval by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Read,
    Write,
    Spend,
}

impl Effect {
    pub fn parse(s: &str) -> Option<Effect> {
        match s {
            "read" => Some(Effect::Read),
            "write" => Some(Effect::Write),
            "spend" => Some(Effect::Spend),
            _ => None,
        }
    }

    /// Whether running the call twice could do something twice.
    pub fn has_side_effects(self) -> bool {
        !matches!(self, Effect::Read)
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Spend => "spend",
        })
    }
}

/// Whether a call waits for a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Runs without asking.
    Auto,
    /// Parks in AWAITING_APPROVAL until `mktg approve` / `mktg deny`.
    Ask,
}

impl Approval {
    pub fn parse(s: &str) -> Option<Approval> {
        match s {
            "auto" => Some(Approval::Auto),
            "ask" => Some(Approval::Ask),
            _ => None,
        }
    }

    /// The default for an effect: reads run, writes and spends ask.
    pub fn default_for(effect: Effect) -> Approval {
        if effect.has_side_effects() {
            Approval::Ask
        } else {
            Approval::Auto
        }
    }
}

/// Calls allowed per window; `None` means no limit for that window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
}

impl Rate {
    /// The windows that limit calls: (name, window length in ms, limit).
    pub fn windows(&self) -> Vec<(&'static str, u64, u32)> {
        [
            ("s", 1_000, self.per_second),
            ("m", 60_000, self.per_minute),
            ("d", 86_400_000, self.per_day),
        ]
        .into_iter()
        .filter_map(|(n, len, limit)| limit.map(|l| (n, len, l)))
        .collect()
    }
}

/// The bucket key of one window at `now_ms`, e.g. `m#29000000`: every call
/// in the same minute counts against the same item.
pub fn window_key(name: &str, len_ms: u64, now_ms: u64) -> String {
    format!("{name}#{}", now_ms / len_ms.max(1))
}

/// Milliseconds until the window containing `now_ms` ends.
pub fn window_remaining_ms(len_ms: u64, now_ms: u64) -> u64 {
    let len = len_ms.max(1);
    len - now_ms % len
}

/// The name Claude sees for a server's tool: `server__tool`, with every
/// character outside `[a-zA-Z0-9_-]` replaced by `_` and cut to 64.
pub fn claude_tool_name(server: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name = format!("{}__{}", clean(server), clean(tool));
    name.truncate(64);
    name
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallStatus {
    /// Waiting for a person to approve or deny.
    AwaitingApproval,
    /// Queued for the tool invoker.
    Pending,
    /// The invoker claimed it and is calling the server.
    Running,
    /// The tool answered (its answer may still be an error result).
    Done,
    /// The call failed: server error, timeout, or an unknown outcome.
    Failed,
    /// A person said no.
    Denied,
    /// Never sent: not allowed for the skill, unknown, or a repeated call.
    Blocked,
}

impl CallStatus {
    /// Final statuses carry the result the model sees next turn.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Done | CallStatus::Failed | CallStatus::Denied | CallStatus::Blocked
        )
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CallStatus::AwaitingApproval => "AWAITING_APPROVAL",
            CallStatus::Pending => "PENDING",
            CallStatus::Running => "RUNNING",
            CallStatus::Done => "DONE",
            CallStatus::Failed => "FAILED",
            CallStatus::Denied => "DENIED",
            CallStatus::Blocked => "BLOCKED",
        };
        f.write_str(s)
    }
}

/// One tool call of one agent turn, stored as its own item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub task: TaskId,
    pub revision: u32,
    pub turn: u32,
    /// The model's tool_use id; unique within the turn.
    pub id: String,
    /// The name the model used (`server__tool`).
    pub name: String,
    pub server: String,
    /// The server's own tool name.
    pub tool: String,
    /// Arguments as JSON text.
    pub input: String,
    pub effect: Effect,
    pub status: CallStatus,
    /// The text the model sees: the tool's answer or why there is none.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub is_error: bool,
    /// Who approved or denied, and why.
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// A running call's claim ends here (epoch ms); after it a redelivery
    /// may take the call over.
    #[serde(default)]
    pub lease_until_ms: u64,
    pub version: u64,
    pub created_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl ToolCall {
    /// A short reference people type: `mktg approve <ref>`.
    pub fn reference(&self) -> String {
        call_reference(&self.task, self.revision, self.turn, &self.id)
    }

    /// The key a server that supports idempotency gets, so a retried write
    /// is applied once.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}:{}", self.task, self.revision, self.turn, self.id)
    }

    /// Sets a final status and result.
    pub fn finish(&mut self, status: CallStatus, result: String, is_error: bool, now_ms: u64) {
        self.status = status;
        self.result = Some(result);
        self.is_error = is_error;
        self.finished_ms = Some(now_ms);
    }
}

pub fn call_reference(task: &TaskId, revision: u32, turn: u32, id: &str) -> String {
    format!("{task}.{revision}.{turn}.{id}")
}

/// The loop guard: how many earlier calls (of earlier turns of the same
/// revision) used the same tool with the same arguments. `input` is the
/// arguments as canonical JSON text (keys sorted), as calls store them.
pub fn repeats(earlier: &[ToolCall], name: &str, input: &str) -> usize {
    earlier
        .iter()
        .filter(|c| c.name == name && c.input == input)
        .count()
}

/// Cuts `text` to at most `max` bytes on a character boundary and says so.
pub fn cap_result(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[truncated: {} of {} bytes shown]",
        &text[..end],
        end,
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_names_are_sanitised_and_bounded() {
        assert_eq!(claude_tool_name("everything", "echo"), "everything__echo");
        assert_eq!(
            claude_tool_name("search console", "query.run/v1"),
            "search_console__query_run_v1"
        );
        let long = claude_tool_name(&"s".repeat(40), &"t".repeat(40));
        assert_eq!(long.len(), 64);
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }

    #[test]
    fn approval_defaults_follow_the_effect() {
        assert_eq!(Approval::default_for(Effect::Read), Approval::Auto);
        assert_eq!(Approval::default_for(Effect::Write), Approval::Ask);
        assert_eq!(Approval::default_for(Effect::Spend), Approval::Ask);
    }

    #[test]
    fn rate_windows_share_a_key_within_the_window() {
        let rate = Rate {
            per_minute: Some(3),
            ..Rate::default()
        };
        assert_eq!(rate.windows(), vec![("m", 60_000, 3)]);
        assert_eq!(
            window_key("m", 60_000, 120_000),
            window_key("m", 60_000, 179_999)
        );
        assert_ne!(
            window_key("m", 60_000, 179_999),
            window_key("m", 60_000, 180_000)
        );
        assert_eq!(window_remaining_ms(60_000, 179_000), 1_000);
    }

    #[test]
    fn results_are_capped_on_a_char_boundary() {
        let capped = cap_result("héllo wörld", 2);
        assert!(capped.starts_with('h'));
        assert!(capped.contains("truncated"));
        assert_eq!(cap_result("short", 100), "short");
    }

    #[test]
    fn repeats_compare_arguments_as_json_values() {
        let call = ToolCall {
            task: "t".into(),
            revision: 0,
            turn: 0,
            id: "a".into(),
            name: "s__x".into(),
            server: "s".into(),
            tool: "x".into(),
            input: r#"{"a":2,"b":1}"#.into(),
            effect: Effect::Read,
            status: CallStatus::Done,
            result: None,
            is_error: false,
            decided_by: None,
            attempts: 1,
            lease_until_ms: 0,
            version: 1,
            created_ms: 0,
            finished_ms: None,
        };
        let same = serde_json::json!({"b": 1, "a": 2}).to_string();
        let other = serde_json::json!({"a": 3, "b": 1}).to_string();
        assert_eq!(repeats(std::slice::from_ref(&call), "s__x", &same), 1);
        assert_eq!(repeats(&[call], "s__x", &other), 0);
    }
}
