//! Idempotency keys. A key is derived from what a message means, never minted
//! when it is sent, so a re-send of the same step carries the same key.

use crate::ids::{GoalId, TaskId, TenantId};

/// Key of the message that submits a goal.
pub fn goal_submitted(tenant: &TenantId, goal: &GoalId) -> String {
    format!("{tenant}:{goal}:submitted")
}

/// Key of a per-task step, e.g. `ready`, `output`, `review`, `decided`.
pub fn task_step(tenant: &TenantId, goal: &GoalId, task: &TaskId, step: &str, rev: u32) -> String {
    format!("{tenant}:{goal}:{task}:{step}:{rev}")
}

/// Key of a domain event about a goal or task.
pub fn domain_event(tenant: &TenantId, goal: &GoalId, subject: &str, kind: &str) -> String {
    format!("{tenant}:{goal}:{subject}:{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_step_always_gets_the_same_key() {
        let (t, g, k) = (
            TenantId::new("t"),
            GoalId::new("g"),
            TaskId::new("01-seo-audit"),
        );
        assert_eq!(
            task_step(&t, &g, &k, "ready", 1),
            task_step(&t, &g, &k, "ready", 1)
        );
        assert_ne!(
            task_step(&t, &g, &k, "ready", 1),
            task_step(&t, &g, &k, "ready", 2)
        );
        assert_eq!(goal_submitted(&t, &g), "t:g:submitted");
    }
}
