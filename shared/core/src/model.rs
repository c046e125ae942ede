//! Goals, tasks, outputs, turns and the trace of every transition.

use crate::ids::{GoalId, SkillName, TaskId, TenantId};
use crate::message::Outgoing;
use crate::review::Feedback;
use crate::status::{GoalStatus, TaskStatus, TransitionError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Work priority: P0 critical, P1 high, P2 medium (default), P3 low.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Priority {
    P0,
    P1,
    #[default]
    P2,
    P3,
}

impl Priority {
    pub fn parse(value: &str) -> Option<Priority> {
        match value.trim().to_ascii_uppercase().as_str() {
            "P0" => Some(Priority::P0),
            "P1" => Some(Priority::P1),
            "P2" => Some(Priority::P2),
            "P3" => Some(Priority::P3),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Where a goal came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GoalSource {
    /// Typed by a user (`mktg goal`).
    User,
    /// A pipeline template started directly (`mktg pipeline`).
    Pipeline,
    /// Fired by a schedule.
    Schedule { schedule: String, slot: String },
    /// Produced from a matched event.
    Event {
        event_type: String,
        event_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub tenant: TenantId,
    pub id: GoalId,
    pub text: String,
    pub category: String,
    /// The pipeline template the plan came from, if any.
    pub pipeline: Option<String>,
    pub priority: Priority,
    pub source: GoalSource,
    pub status: GoalStatus,
    /// Optimistic-concurrency version; every change bumps it.
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Why the goal failed or escalated.
    pub reason: Option<String>,
    /// Messages decided in the same write as the last change and not yet
    /// confirmed sent. A redelivered message flushes them (outbox pattern).
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
    /// Set once the director has compared the approved outputs with each
    /// other; the check runs once per goal.
    #[serde(default)]
    pub consistency_checked: bool,
}

impl Goal {
    /// Moves the goal to `to`, bumps its version and returns the trace line.
    pub fn transition(
        &mut self,
        to: GoalStatus,
        at_ms: u64,
        note: impl Into<String>,
    ) -> Result<Trace, TransitionError> {
        if !self.status.can_move_to(to) {
            return Err(TransitionError {
                subject: format!("goal {}", self.id),
                from: self.status.to_string(),
                to: to.to_string(),
            });
        }
        let from = self.status;
        self.status = to;
        self.version += 1;
        self.updated_ms = at_ms;
        Ok(Trace {
            at_ms,
            subject: "goal".into(),
            from: from.to_string(),
            to: to.to_string(),
            note: note.into(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub tenant: TenantId,
    pub goal: GoalId,
    pub id: TaskId,
    pub skill: SkillName,
    /// Tasks that must be approved before this one is released.
    pub deps: Vec<TaskId>,
    /// Plan phase (0-based), for display.
    pub phase: u32,
    pub priority: Priority,
    pub status: TaskStatus,
    /// 0 for the first attempt, +1 for each revision.
    pub revision: u32,
    pub version: u64,
    pub updated_ms: u64,
    /// Reviewer feedback gathered over all revisions, oldest first.
    #[serde(default)]
    pub feedback: Vec<Feedback>,
    /// Why the task failed, was blocked or escalated.
    pub reason: Option<String>,
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
    /// Self-healing retries so far, oldest first.
    #[serde(default)]
    pub heal: Vec<crate::heal::HealAttempt>,
    /// How the current attempt differs from the plain one.
    #[serde(default)]
    pub strategy: crate::heal::Strategy,
}

impl Task {
    /// Revisions that came from reviews (not from self-healing retries):
    /// what `max_revisions` limits.
    pub fn review_rounds(&self) -> u32 {
        self.revision
            .saturating_sub(u32::try_from(self.heal.len()).unwrap_or(u32::MAX))
    }
}

impl Task {
    /// Moves the task to `to`, bumps its version and returns the trace line.
    pub fn transition(
        &mut self,
        to: TaskStatus,
        at_ms: u64,
        note: impl Into<String>,
    ) -> Result<Trace, TransitionError> {
        if !self.status.can_move_to(to) {
            return Err(TransitionError {
                subject: format!("task {}", self.id),
                from: self.status.to_string(),
                to: to.to_string(),
            });
        }
        let from = self.status;
        self.status = to;
        self.version += 1;
        self.updated_ms = at_ms;
        Ok(Trace {
            at_ms,
            subject: self.id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            note: note.into(),
        })
    }
}

/// Token usage of one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
    }
}

/// A checkpointed model turn: written before anything else happens, so a
/// redelivered message reuses it instead of paying for the call again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub task: TaskId,
    pub revision: u32,
    pub n: u32,
    pub request_hash: String,
    pub model: String,
    /// True when the answer came from the scripted provider.
    pub scripted: bool,
    pub text: String,
    pub stop_reason: String,
    pub usage: Usage,
    /// The model tier the call was priced at (the skill's, or a tier the
    /// budget forced).
    #[serde(default)]
    pub tier: String,
    /// What the call cost, in micro-dollars (recorded once, with the turn).
    #[serde(default)]
    pub cost_micros: u64,
    /// Tools the model asked for in this turn (stop reason `tool_use`).
    #[serde(default)]
    pub tool_uses: Vec<TurnToolUse>,
    pub at_ms: u64,
}

/// One tool call the model asked for, as the turn recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnToolUse {
    pub id: String,
    pub name: String,
    /// Arguments as canonical JSON text (keys sorted).
    pub input: String,
}

/// The output of one revision of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub task: TaskId,
    pub skill: SkillName,
    pub revision: u32,
    pub body: String,
    pub model: String,
    pub scripted: bool,
    pub usage: Usage,
    #[serde(default)]
    pub cost_micros: u64,
    pub at_ms: u64,
}

/// One line of a goal's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub at_ms: u64,
    /// `goal` or a task id.
    pub subject: String,
    pub from: String,
    pub to: String,
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            tenant: "t".into(),
            goal: "g".into(),
            id: "01-copywriting".into(),
            skill: "copywriting".into(),
            deps: vec![],
            phase: 0,
            priority: Priority::P2,
            status: TaskStatus::Pending,
            revision: 0,
            version: 1,
            updated_ms: 0,
            feedback: vec![],
            reason: None,
            outbox: vec![],
            heal: Vec::new(),
            strategy: Default::default(),
        }
    }

    #[test]
    fn an_allowed_transition_bumps_the_version_and_traces_it() {
        let mut t = task();
        let trace = t.transition(TaskStatus::Assigned, 5, "released").unwrap();
        assert_eq!(t.status, TaskStatus::Assigned);
        assert_eq!(t.version, 2);
        assert_eq!(trace.from, "PENDING");
        assert_eq!(trace.to, "ASSIGNED");
    }

    #[test]
    fn a_refused_transition_changes_nothing() {
        let mut t = task();
        let err = t.transition(TaskStatus::Approved, 5, "").unwrap_err();
        assert_eq!(t.status, TaskStatus::Pending);
        assert_eq!(t.version, 1);
        assert_eq!(
            err.to_string(),
            "task 01-copywriting cannot move from PENDING to APPROVED"
        );
    }

    #[test]
    fn priorities_parse_case_insensitively() {
        assert_eq!(Priority::parse("p1"), Some(Priority::P1));
        assert_eq!(Priority::parse("P9"), None);
        assert!(Priority::P0 < Priority::P3);
    }
}
