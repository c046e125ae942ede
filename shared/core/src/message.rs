//! The wire format between functions. A serialized type is a compatibility
//! promise: add optional fields, never rename or remove one.

use crate::ids::{GoalId, TaskId, TenantId};
use crate::keys;
use crate::model::Priority;
use crate::review::Decision;
use serde::{Deserialize, Serialize};

/// Every queue message: who it is for, what it means, and the key that makes
/// handling it twice harmless.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub idempotency_key: String,
    pub tenant: TenantId,
    pub goal: GoalId,
    pub message: Message,
    /// Deliver no sooner than this many seconds after sending (SQS caps it
    /// at 900); 0 for now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_secs: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    /// A new goal: free text, or a pipeline template started directly.
    GoalSubmitted {
        text: String,
        #[serde(default)]
        pipeline: Option<String>,
        #[serde(default)]
        priority: Priority,
        #[serde(default)]
        source: Option<crate::model::GoalSource>,
        submitted_ms: u64,
    },
    /// A task (at a revision) may run its next turn.
    TaskReady { task: TaskId, revision: u32 },
    /// The agent stored an output for the revision.
    TaskOutput { task: TaskId, revision: u32 },
    /// The director asks for a review of the revision's output.
    ReviewRequested { task: TaskId, revision: u32 },
    /// An event from outside (webhook) or from measurement, to be matched
    /// against events.yaml. `data_json` is the event's data object as JSON.
    EventReceived {
        event_id: String,
        event_type: String,
        data_json: String,
        received_ms: u64,
    },
    /// Try a task the budget gate parked again (the budget was raised).
    ResumeTask { task: TaskId, revision: u32 },
    /// A task failed permanently outside review (model or input error).
    TaskFailed { task: TaskId, reason: String },
    /// The reviewer decided.
    ReviewDecided {
        task: TaskId,
        revision: u32,
        decision: Decision,
    },
    /// Run one stored tool call (`ToolCall` item `call` of the turn).
    ToolCall {
        task: TaskId,
        revision: u32,
        turn: u32,
        call: String,
    },
    /// The next step of a review chain (step index into the skill's steps).
    ReviewStep {
        task: TaskId,
        revision: u32,
        step: u32,
    },
    /// Every call of the turn has a result: the agent may take its next turn.
    ToolsDone {
        task: TaskId,
        revision: u32,
        turn: u32,
    },
    /// A person cancels the goal: unfinished tasks stop, calls waiting for
    /// approval are denied.
    CancelGoal { by: String, reason: String },
    /// A person decides an escalated task.
    ResolveEscalation {
        task: TaskId,
        /// The escalated revision decided on.
        revision: u32,
        action: Resolution,
        by: String,
        #[serde(default)]
        note: String,
    },
}

/// What a person decided for an escalated task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The last output is good enough: approve it as it is.
    Accept,
    /// One more revision, with the person's note as feedback.
    Retry,
    /// Stop the goal.
    Cancel,
}

impl Resolution {
    pub fn parse(s: &str) -> Option<Resolution> {
        match s {
            "accept" => Some(Resolution::Accept),
            "retry" => Some(Resolution::Retry),
            "cancel" => Some(Resolution::Cancel),
            _ => None,
        }
    }
}

/// The queues of the system; each is consumed by one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QueueName {
    Director,
    Agent,
    Review,
    Tool,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Director,
        QueueName::Agent,
        QueueName::Review,
        QueueName::Tool,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Director => "director",
            QueueName::Agent => "agent",
            QueueName::Review => "review",
            QueueName::Tool => "tool",
        }
    }
}

impl Message {
    /// The queue whose consumer handles this message.
    pub fn queue(&self) -> QueueName {
        match self {
            Message::GoalSubmitted { .. }
            | Message::TaskOutput { .. }
            | Message::TaskFailed { .. }
            | Message::ResumeTask { .. }
            | Message::EventReceived { .. }
            | Message::CancelGoal { .. }
            | Message::ResolveEscalation { .. }
            | Message::ReviewDecided { .. } => QueueName::Director,
            Message::TaskReady { .. } | Message::ToolsDone { .. } => QueueName::Agent,
            Message::ReviewRequested { .. } | Message::ReviewStep { .. } => QueueName::Review,
            Message::ToolCall { .. } => QueueName::Tool,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::GoalSubmitted { .. } => "GoalSubmitted",
            Message::TaskReady { .. } => "TaskReady",
            Message::TaskOutput { .. } => "TaskOutput",
            Message::ReviewRequested { .. } => "ReviewRequested",
            Message::TaskFailed { .. } => "TaskFailed",
            Message::ResumeTask { .. } => "ResumeTask",
            Message::EventReceived { .. } => "EventReceived",
            Message::ReviewDecided { .. } => "ReviewDecided",
            Message::ToolCall { .. } => "ToolCall",
            Message::ReviewStep { .. } => "ReviewStep",
            Message::ToolsDone { .. } => "ToolsDone",
            Message::CancelGoal { .. } => "CancelGoal",
            Message::ResolveEscalation { .. } => "ResolveEscalation",
        }
    }

    pub fn task(&self) -> Option<&TaskId> {
        match self {
            Message::GoalSubmitted { .. }
            | Message::EventReceived { .. }
            | Message::CancelGoal { .. } => None,
            Message::ResolveEscalation { task, .. } => Some(task),
            Message::TaskReady { task, .. }
            | Message::TaskOutput { task, .. }
            | Message::ReviewRequested { task, .. }
            | Message::TaskFailed { task, .. }
            | Message::ResumeTask { task, .. }
            | Message::ReviewDecided { task, .. }
            | Message::ToolCall { task, .. }
            | Message::ReviewStep { task, .. }
            | Message::ToolsDone { task, .. } => Some(task),
        }
    }
}

impl Envelope {
    /// Builds an envelope whose key is derived from the message's meaning.
    pub fn new(tenant: TenantId, goal: GoalId, message: Message) -> Self {
        let idempotency_key = match &message {
            Message::GoalSubmitted { .. } => keys::goal_submitted(&tenant, &goal),
            Message::EventReceived { event_id, .. } => format!("{tenant}:event:{event_id}"),
            Message::TaskReady { task, revision } => {
                keys::task_step(&tenant, &goal, task, "ready", *revision)
            }
            Message::TaskOutput { task, revision } => {
                keys::task_step(&tenant, &goal, task, "output", *revision)
            }
            Message::ReviewRequested { task, revision } => {
                keys::task_step(&tenant, &goal, task, "review", *revision)
            }
            Message::TaskFailed { task, .. } => keys::task_step(&tenant, &goal, task, "failed", 0),
            // A goal is cancelled once; an escalation resolved once per
            // revision (the handler ignores a stale one).
            Message::CancelGoal { .. } => format!("{tenant}:{goal}:cancel"),
            Message::ResolveEscalation { task, revision, .. } => {
                keys::task_step(&tenant, &goal, task, "resolve", *revision)
            }
            Message::ResumeTask { task, revision } => {
                keys::task_step(&tenant, &goal, task, "resume", *revision)
            }
            Message::ReviewDecided { task, revision, .. } => {
                keys::task_step(&tenant, &goal, task, "decided", *revision)
            }
            Message::ToolCall {
                task,
                revision,
                turn,
                call,
            } => format!(
                "{}:call:{turn}:{call}",
                keys::task_step(&tenant, &goal, task, "tool", *revision)
            ),
            Message::ReviewStep {
                task,
                revision,
                step,
            } => format!(
                "{}:step:{step}",
                keys::task_step(&tenant, &goal, task, "review", *revision)
            ),
            Message::ToolsDone {
                task,
                revision,
                turn,
            } => format!(
                "{}:turn:{turn}",
                keys::task_step(&tenant, &goal, task, "tools-done", *revision)
            ),
        };
        Envelope {
            idempotency_key,
            tenant,
            goal,
            message,
            delay_secs: 0,
        }
    }

    /// The same envelope, delivered no sooner than `secs` from sending.
    pub fn delayed(mut self, secs: u32) -> Self {
        self.delay_secs = secs;
        self
    }
}

/// Something a handler decided to send, stored with the state change that
/// caused it and sent after the commit (outbox pattern).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "out", rename_all = "snake_case")]
pub enum Outgoing {
    Message(Envelope),
    Event(DomainEvent),
}

/// A fact published on the event bus for anyone to react to
/// (`goal.completed`, `task.failed`, `task.escalated`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Dotted type, used as the EventBridge detail-type.
    pub kind: String,
    pub idempotency_key: String,
    pub tenant: TenantId,
    pub goal: GoalId,
    pub task: Option<TaskId>,
    pub status: String,
    pub reason: Option<String>,
    pub at_ms: u64,
}

impl DomainEvent {
    pub fn new(
        kind: &str,
        tenant: TenantId,
        goal: GoalId,
        task: Option<TaskId>,
        status: &str,
        reason: Option<String>,
        at_ms: u64,
    ) -> Self {
        let subject = task.as_ref().map_or("goal", |t| t.as_str()).to_string();
        DomainEvent {
            kind: kind.to_string(),
            idempotency_key: keys::domain_event(&tenant, &goal, &subject, kind),
            tenant,
            goal,
            task,
            status: status.to_string(),
            reason,
            at_ms,
        }
    }
}

/// The goal an event may start: its id is derived from the event id, so
/// the same event can never start two goals.
pub fn goal_for_event(event_id: &str) -> GoalId {
    let clean: String = event_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    GoalId::new(format!("e-{clean}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_goes_to_its_consumer_queue() {
        let t = TaskId::new("01-seo-audit");
        assert_eq!(
            Message::TaskReady {
                task: t.clone(),
                revision: 0
            }
            .queue(),
            QueueName::Agent
        );
        assert_eq!(
            Message::ReviewRequested {
                task: t.clone(),
                revision: 0
            }
            .queue(),
            QueueName::Review
        );
        assert_eq!(
            Message::TaskOutput {
                task: t,
                revision: 0
            }
            .queue(),
            QueueName::Director
        );
    }

    #[test]
    fn envelopes_of_the_same_step_share_a_key_and_differ_by_revision() {
        let mk = |rev| {
            Envelope::new(
                "t".into(),
                "g".into(),
                Message::TaskReady {
                    task: "a".into(),
                    revision: rev,
                },
            )
        };
        assert_eq!(mk(0).idempotency_key, mk(0).idempotency_key);
        assert_ne!(mk(0).idempotency_key, mk(1).idempotency_key);
    }
}
