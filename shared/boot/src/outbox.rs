//! Sending what a commit decided. Handlers store outgoing messages on the
//! item they change, in the same conditional write, then call these to send
//! them and clear the outbox. A crash in between leaves the outbox full; the
//! redelivered message finds it and sends again (consumers dedupe).
//!
//! Clearing keeps the item's version: the consumer of the message just sent
//! may already be writing the same item conditioned on that version, and a
//! bump would make it lose the race for nothing. If the consumer wins, the
//! clear is skipped and the entries are sent once more later, which
//! consumers acknowledge as duplicates.

use crate::{Deps, HandlerError};
use mktg_core::{Goal, Outgoing, Task};
use mktg_store::{GoalKey, StoreError, Write};

async fn send_all(deps: &Deps, outbox: &[Outgoing]) -> Result<(), HandlerError> {
    for out in outbox {
        match out {
            Outgoing::Message(env) => deps.bus.send(env).await?,
            Outgoing::Event(ev) => deps.bus.publish(ev).await?,
        }
    }
    Ok(())
}

fn cleared(result: Result<(), StoreError>) -> Result<(), HandlerError> {
    match result {
        // Someone changed the item after we read it; they own its outbox
        // now and flush it themselves.
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn flush_goal(deps: &Deps, goal: &Goal) -> Result<(), HandlerError> {
    if goal.outbox.is_empty() {
        return Ok(());
    }
    // The director committed a decision and has not told anyone yet.
    crate::crash_point!("director.after_commit");
    send_all(deps, &goal.outbox).await?;
    let mut next = goal.clone();
    next.outbox.clear();
    let key = GoalKey::new(goal.tenant.clone(), goal.id.clone());
    cleared(
        deps.store
            .commit(
                &key,
                vec![Write::Goal {
                    goal: next,
                    expect_version: goal.version,
                }],
            )
            .await,
    )
}

pub async fn flush_task(deps: &Deps, task: &Task) -> Result<(), HandlerError> {
    if task.outbox.is_empty() {
        return Ok(());
    }
    // An agent stored an output, or a reviewer a decision, and the next
    // function has not heard of it yet.
    crate::crash_point!("task.after_commit");
    send_all(deps, &task.outbox).await?;
    let mut next = task.clone();
    next.outbox.clear();
    let key = GoalKey::new(task.tenant.clone(), task.goal.clone());
    cleared(
        deps.store
            .commit(
                &key,
                vec![Write::Task {
                    task: next,
                    expect_version: task.version,
                }],
            )
            .await,
    )
}
