//! The scripted provider: replays replies from a script file, for tests and
//! for running the whole system offline. Its answers are never real work and
//! are labelled `scripted` wherever they are shown.

use crate::{ChatModel, ChatRequest, ChatResponse, LlmError};
use async_trait::async_trait;
use mktg_core::Usage;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    replies: Vec<ReplyEntry>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyEntry {
    /// Skill name, or `*` for any.
    #[serde(default = "any")]
    skill: String,
    /// `agent`, `reviewer`, ... or `*`.
    #[serde(default = "any")]
    role: String,
    #[serde(default)]
    revision: Option<u32>,
    /// Turn within the task (0 first; the director's repair round is 1).
    #[serde(default)]
    turn: Option<u32>,
    /// Review step (reviewer replies only): semantic, a skill, director.
    #[serde(default)]
    step: Option<String>,
    /// Inline reply text.
    #[serde(default)]
    text: Option<String>,
    /// Reply file relative to the script; `{skill}` is replaced.
    #[serde(default)]
    file: Option<String>,
    /// Tools this reply calls (the turn ends with stop reason `tool_use`).
    #[serde(default)]
    tool_uses: Vec<ScriptedToolUse>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedToolUse {
    name: String,
    #[serde(default)]
    input: serde_json::Value,
}

fn any() -> String {
    "*".into()
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScriptError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug)]
pub struct ScriptedModel {
    path: PathBuf,
    dir: PathBuf,
    replies: Vec<ReplyEntry>,
}

impl ScriptedModel {
    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let err = |message: String| ScriptError {
            path: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read script: {e}")))?;
        let file: ScriptFile = serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
        for (i, r) in file.replies.iter().enumerate() {
            let both = r.text.is_some() && r.file.is_some();
            let neither = r.text.is_none() && r.file.is_none();
            if both || (neither && r.tool_uses.is_empty()) {
                return Err(err(format!(
                    "reply {} needs exactly one of text or file (or tool_uses)",
                    i + 1
                )));
            }
        }
        Ok(ScriptedModel {
            path: path.to_path_buf(),
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            replies: file.replies,
        })
    }

    fn entry_for(&self, request: &ChatRequest) -> Option<&ReplyEntry> {
        let meta = &request.meta;
        self.replies.iter().find(|r| {
            (r.skill == "*" || r.skill == meta.skill)
                && (r.role == "*" || r.role == meta.role)
                && r.revision.is_none_or(|rev| rev == meta.revision)
                && r.turn.is_none_or(|n| n == meta.turn)
                && r.step.as_ref().is_none_or(|s| s == &meta.step)
        })
    }

    fn reply_for(&self, request: &ChatRequest) -> Result<String, LlmError> {
        let meta = &request.meta;
        let entry = self.entry_for(request);
        let Some(entry) = entry else {
            return Err(LlmError::Permanent(format!(
                "scripted provider has no reply for role {} skill {} revision {} in {}",
                meta.role,
                meta.skill,
                meta.revision,
                self.path.display()
            )));
        };
        if let Some(text) = &entry.text {
            return Ok(text.clone());
        }
        if entry.file.is_none() {
            return Ok(String::new());
        }
        let rel = entry
            .file
            .as_deref()
            .unwrap_or_default()
            .replace("{skill}", &meta.skill);
        let file = self.dir.join(&rel);
        std::fs::read_to_string(&file).map_err(|e| {
            LlmError::Permanent(format!(
                "scripted reply file {} for skill {} cannot be read: {e}",
                file.display(),
                meta.skill
            ))
        })
    }
}

/// Rough token estimate (4 characters a token), so scripted runs still show
/// plausible usage and exercise the cost path.
/// Replaces `{tool_results}` in a scripted reply with the tool results the
/// request carries, so a scripted final answer shows what the real tools
/// returned.
fn with_tool_results(text: &str, request: &ChatRequest) -> String {
    if !text.contains("{tool_results}") {
        return text.to_string();
    }
    let results: Vec<String> = request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|b| match b {
            crate::Block::ToolResult {
                content, is_error, ..
            } => Some(if *is_error {
                format!("(error) {content}")
            } else {
                content.clone()
            }),
            _ => None,
        })
        .collect();
    let joined = if results.is_empty() {
        "(no tool was called)".to_string()
    } else {
        results.join("\n\n")
    };
    text.replace("{tool_results}", &joined)
}

fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[async_trait]
impl ChatModel for ScriptedModel {
    fn provider(&self) -> &str {
        "scripted"
    }

    fn is_scripted(&self) -> bool {
        true
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let text = with_tool_results(&self.reply_for(request)?, request);
        let tool_uses: Vec<crate::ToolUse> = self
            .entry_for(request)
            .map(|e| e.tool_uses.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, t)| crate::ToolUse {
                id: format!("toolu_s{}_{}_{i}", request.meta.revision, request.meta.turn),
                name: t.name.clone(),
                input: if t.input.is_null() {
                    serde_json::json!({})
                } else {
                    t.input.clone()
                },
            })
            .collect();
        // Tools the request does not offer cannot be called: a real model
        // would not see them either.
        for t in &tool_uses {
            if !request.tools.iter().any(|spec| spec.name == t.name) {
                return Err(LlmError::Permanent(format!(
                    "scripted reply for skill {} calls tool {} but the request offers only [{}] ({})",
                    request.meta.skill,
                    t.name,
                    request.tools.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                    self.path.display()
                )));
            }
        }
        let input: u64 = estimate_tokens(&request.system)
            + request
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.text()))
                .sum::<u64>();
        Ok(ChatResponse {
            usage: Usage {
                input_tokens: input,
                output_tokens: estimate_tokens(&text),
                ..Usage::default()
            },
            text,
            stop_reason: if tool_uses.is_empty() {
                "end_turn".into()
            } else {
                "tool_use".into()
            },
            tool_uses,
            model: "scripted".into(),
            scripted: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallMeta;

    fn request(skill: &str, revision: u32) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            system: "sys".into(),
            messages: vec![],
            max_tokens: 10,
            tools: vec![],
            meta: CallMeta {
                role: "agent".into(),
                skill: skill.into(),
                revision,
                ..CallMeta::default()
            },
        }
    }

    fn script(body: &str) -> (tempfile::TempDir, ScriptedModel) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.yaml"), body).unwrap();
        std::fs::create_dir(dir.path().join("r")).unwrap();
        std::fs::write(dir.path().join("r/seo-audit.md"), "# Audit").unwrap();
        let m = ScriptedModel::load(&dir.path().join("s.yaml")).unwrap();
        (dir, m)
    }

    #[tokio::test]
    async fn the_first_matching_reply_wins_and_files_expand_the_skill() {
        let (_d, m) = script(
            "replies:\n  - { skill: copywriting, revision: 0, text: draft }\n  - { skill: '*', file: 'r/{skill}.md' }\n",
        );
        assert_eq!(
            m.complete(&request("copywriting", 0)).await.unwrap().text,
            "draft"
        );
        let r = m.complete(&request("seo-audit", 1)).await.unwrap();
        assert_eq!(r.text, "# Audit");
        assert!(r.scripted);
        assert!(r.usage.input_tokens > 0);
    }

    #[tokio::test]
    async fn a_missing_reply_is_a_permanent_error_naming_the_skill() {
        let (_d, m) = script("replies:\n  - { skill: copywriting, text: x }\n");
        let err = m.complete(&request("seo-audit", 0)).await.unwrap_err();
        assert!(
            matches!(err, LlmError::Permanent(ref s) if s.contains("skill seo-audit")),
            "{err}"
        );
    }

    #[test]
    fn a_reply_needs_text_or_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.yaml"), "replies:\n  - { skill: x }\n").unwrap();
        let err = ScriptedModel::load(&dir.path().join("s.yaml")).unwrap_err();
        assert!(err
            .to_string()
            .contains("reply 1 needs exactly one of text or file"));
    }
}
