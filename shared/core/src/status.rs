//! Task and goal status as explicit state machines.
//!
//! The task statuses are the reference system's (pending, assigned,
//! in_progress, completed, in_review, approved, revision, blocked, deferred,
//! failed, cancelled) plus what a durable, tool-using, budgeted design needs:
//! awaiting_tools, awaiting_approval, budget_blocked and escalated.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Planned; waits for its dependencies to be approved.
    Pending,
    /// Released to the agent queue; no turn has started yet.
    Assigned,
    /// An agent turn is running or checkpointed.
    InProgress,
    /// The agent asked for tool calls; the last result resumes it.
    AwaitingTools,
    /// A tool call that writes or spends waits for a human decision.
    AwaitingApproval,
    /// The agent produced an output for the current revision.
    Completed,
    /// A reviewer is judging the output.
    InReview,
    /// A reviewer asked for changes; the next revision is queued.
    Revision,
    /// Held by a human or a policy; resumes as pending.
    Blocked,
    /// Held because its priority is not allowed at the budget level.
    Deferred,
    /// Held because the budget stops new model calls.
    BudgetBlocked,
    /// Revisions ran out; a human decides.
    Escalated,
    Approved,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 15] = [
        TaskStatus::Pending,
        TaskStatus::Assigned,
        TaskStatus::InProgress,
        TaskStatus::AwaitingTools,
        TaskStatus::AwaitingApproval,
        TaskStatus::Completed,
        TaskStatus::InReview,
        TaskStatus::Revision,
        TaskStatus::Blocked,
        TaskStatus::Deferred,
        TaskStatus::BudgetBlocked,
        TaskStatus::Escalated,
        TaskStatus::Approved,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// Every status this one may move to. Anything else is refused.
    pub fn next_allowed(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Pending => &[
                Assigned,
                InProgress,
                Blocked,
                Deferred,
                BudgetBlocked,
                Cancelled,
                Failed,
            ],
            Assigned => &[InProgress, BudgetBlocked, Cancelled, Failed],
            InProgress => &[AwaitingTools, Completed, BudgetBlocked, Failed, Cancelled],
            AwaitingTools => &[InProgress, AwaitingApproval, Failed, Cancelled],
            AwaitingApproval => &[AwaitingTools, Failed, Cancelled],
            Completed => &[InReview, Approved, Revision, Failed, Blocked],
            InReview => &[Approved, Revision, Failed, Blocked, Escalated],
            Revision => &[Assigned, InProgress, Cancelled, Failed, Escalated],
            Blocked => &[Pending, Failed],
            Deferred => &[Pending, Failed],
            BudgetBlocked => &[Pending, Assigned, Failed, Cancelled],
            Escalated => &[Assigned, Approved, Failed, Cancelled],
            // Only the director's consistency check reopens an approved task.
            Approved => &[Revision],
            // Only the director's self-healing retries a failed task.
            Failed => &[Assigned],
            Cancelled => &[],
        }
    }

    pub fn can_move_to(self, next: TaskStatus) -> bool {
        self.next_allowed().contains(&next)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Approved | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        use TaskStatus::*;
        match self {
            Pending => "PENDING",
            Assigned => "ASSIGNED",
            InProgress => "IN_PROGRESS",
            AwaitingTools => "AWAITING_TOOLS",
            AwaitingApproval => "AWAITING_APPROVAL",
            Completed => "COMPLETED",
            InReview => "IN_REVIEW",
            Revision => "REVISION",
            Blocked => "BLOCKED",
            Deferred => "DEFERRED",
            BudgetBlocked => "BUDGET_BLOCKED",
            Escalated => "ESCALATED",
            Approved => "APPROVED",
            Failed => "FAILED",
            Cancelled => "CANCELLED",
        }
    }

    pub fn parse(value: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GoalStatus {
    /// Tasks are planned and being worked on.
    Running,
    Completed,
    Failed,
    /// A task ran out of revisions; the goal waits for a human.
    Escalated,
    Cancelled,
}

impl GoalStatus {
    pub const ALL: [GoalStatus; 5] = [
        GoalStatus::Running,
        GoalStatus::Completed,
        GoalStatus::Failed,
        GoalStatus::Escalated,
        GoalStatus::Cancelled,
    ];

    pub fn next_allowed(self) -> &'static [GoalStatus] {
        use GoalStatus::*;
        match self {
            Running => &[Completed, Failed, Escalated, Cancelled],
            Escalated => &[Running, Failed, Cancelled],
            Completed | Failed | Cancelled => &[],
        }
    }

    pub fn can_move_to(self, next: GoalStatus) -> bool {
        self.next_allowed().contains(&next)
    }

    /// A goal in one of these statuses is finished; `mktg goal --wait` stops.
    pub fn is_settled(self) -> bool {
        !matches!(self, GoalStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Running => "RUNNING",
            GoalStatus::Completed => "COMPLETED",
            GoalStatus::Failed => "FAILED",
            GoalStatus::Escalated => "ESCALATED",
            GoalStatus::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionError {
    pub subject: String,
    pub from: String,
    pub to: String,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cannot move from {} to {}",
            self.subject, self.from, self.to
        )
    }
}

impl std::error::Error for TransitionError {}

#[cfg(test)]
mod tests {
    use super::TaskStatus::*;
    use super::*;

    /// The full allowed table, written out independently of `next_allowed`
    /// so a change to one without the other fails.
    const TASK_ALLOWED: &[(TaskStatus, TaskStatus)] = &[
        (Pending, Assigned),
        (Pending, InProgress),
        (Pending, Blocked),
        (Pending, Deferred),
        (Pending, BudgetBlocked),
        (Pending, Cancelled),
        (Pending, Failed),
        (Assigned, InProgress),
        (Assigned, BudgetBlocked),
        (Assigned, Cancelled),
        (Assigned, Failed),
        (InProgress, AwaitingTools),
        (InProgress, Completed),
        (InProgress, BudgetBlocked),
        (InProgress, Failed),
        (InProgress, Cancelled),
        (AwaitingTools, InProgress),
        (AwaitingTools, AwaitingApproval),
        (AwaitingTools, Failed),
        (AwaitingTools, Cancelled),
        (AwaitingApproval, AwaitingTools),
        (AwaitingApproval, Failed),
        (AwaitingApproval, Cancelled),
        (Completed, InReview),
        (Completed, Approved),
        (Completed, Revision),
        (Completed, Failed),
        (Completed, Blocked),
        (InReview, Approved),
        (InReview, Revision),
        (InReview, Failed),
        (InReview, Blocked),
        (InReview, Escalated),
        (Revision, Assigned),
        (Revision, InProgress),
        (Revision, Cancelled),
        (Revision, Failed),
        (Revision, Escalated),
        (Blocked, Pending),
        (Blocked, Failed),
        (Deferred, Pending),
        (Deferred, Failed),
        (BudgetBlocked, Pending),
        (BudgetBlocked, Assigned),
        (BudgetBlocked, Failed),
        (BudgetBlocked, Cancelled),
        (Approved, Revision),
        (Failed, Assigned),
        (Escalated, Assigned),
        (Escalated, Approved),
        (Escalated, Failed),
        (Escalated, Cancelled),
    ];

    #[test]
    fn every_task_status_pair_is_allowed_or_refused_as_the_table_says() {
        let mut allowed = 0;
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let expected = TASK_ALLOWED.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
                allowed += usize::from(expected);
            }
        }
        assert_eq!(allowed, TASK_ALLOWED.len());
        assert_eq!(15 * 15 - allowed, 173, "refused pairs");
    }

    #[test]
    fn terminal_task_statuses_allow_nothing_but_the_consistency_reopen_and_healing() {
        for s in TaskStatus::ALL {
            if s == TaskStatus::Approved {
                // Only the director's consistency check reopens an approval.
                assert_eq!(s.next_allowed(), [TaskStatus::Revision]);
                continue;
            }
            if s == TaskStatus::Failed {
                // Only the director's self-healing retries a failure.
                assert_eq!(s.next_allowed(), [TaskStatus::Assigned]);
                continue;
            }
            assert_eq!(s.is_terminal(), s.next_allowed().is_empty(), "{s}");
        }
    }

    #[test]
    fn no_task_status_moves_to_itself() {
        for s in TaskStatus::ALL {
            assert!(!s.can_move_to(s), "{s}");
        }
    }

    #[test]
    fn task_status_names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("DONE"), None);
    }

    #[test]
    fn every_goal_status_pair_is_allowed_or_refused_as_the_table_says() {
        use GoalStatus as G;
        let table = [
            (G::Running, G::Completed),
            (G::Running, G::Failed),
            (G::Running, G::Escalated),
            (G::Running, G::Cancelled),
            (G::Escalated, G::Running),
            (G::Escalated, G::Failed),
            (G::Escalated, G::Cancelled),
        ];
        for from in GoalStatus::ALL {
            for to in GoalStatus::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    table.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }
}
