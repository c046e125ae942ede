//! The stuck-work sweeper: a message lost after its commit (the send
//! "succeeded" but nothing arrives) leaves a goal RUNNING with nothing in
//! flight; once the work is stale the sweeper re-sends what drives it, and
//! the goal completes with nothing done twice. Tried for every message of a
//! goal, one lost at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use mktg_boot::{Clock, Deps, HandlerError};
use mktg_bus::{Bus, BusError, MemoryBus};
use mktg_cli::dispatch;
use mktg_core::{
    DomainEvent, Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId,
};
use mktg_llm::ScriptedModel;
use mktg_store::{GoalKey, MemoryStore, Store};
use mktg_testkit::counting::CountingModel;
use mktg_testkit::{real_config, StepClock};
use mktg_tools::{McpHost, ToolHost};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Loses the `n`-th send: it reports success and delivers nothing.
struct LosingBus {
    inner: Arc<MemoryBus>,
    sends: AtomicUsize,
    lose: usize,
    lost: Mutex<Option<String>>,
}

#[async_trait]
impl Bus for LosingBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        if self.sends.fetch_add(1, Ordering::SeqCst) + 1 == self.lose {
            *self.lost.lock().unwrap() = Some(envelope.message.kind().to_string());
            return Ok(());
        }
        self.inner.send(envelope).await
    }
    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        self.inner.publish(event).await
    }
    async fn put_external(&self, s: &str, t: &str, d: &str) -> Result<(), BusError> {
        self.inner.put_external(s, t, d).await
    }
}

async fn drain(deps: &Deps, bus: &MemoryBus) {
    for _ in 0..10_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = bus.pop(q) {
                any = true;
                match dispatch(deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Retry(why) | HandlerError::Fail(why)) => {
                        panic!("{}: {why}", env.message.kind())
                    }
                }
            }
        }
        if !any {
            return;
        }
    }
    panic!("never drained");
}

#[tokio::test]
async fn a_lost_message_anywhere_in_a_goal_is_resumed_by_the_sweeper() {
    let config = Arc::new(real_config());
    let host: Arc<dyn ToolHost> = Arc::new(McpHost::new(config.tools.clone()));
    let tenant = TenantId::new("t");
    let key = GoalKey::new(tenant.clone(), GoalId::new("g"));
    let window = u64::from(config.schedules.stale_after_minutes) * 60_000;
    let mut lost_kinds = Vec::new();
    // A clean run sends 28 messages after the submit; lose each in turn.
    for lose in 1..=28 {
        let inner = Arc::new(MemoryBus::new());
        let bus = Arc::new(LosingBus {
            inner: inner.clone(),
            sends: AtomicUsize::new(0),
            lose,
            lost: Mutex::new(None),
        });
        let store = Arc::new(MemoryStore::new());
        let model =
            CountingModel::new(ScriptedModel::load(&config.models.scripted_script).unwrap());
        let clock = Arc::new(StepClock::new(1_700_000_000_000));
        let mut deps = Deps::new(
            store.clone(),
            bus.clone(),
            model.clone(),
            config.clone(),
            clock.clone(),
        );
        deps.tools = host.clone();
        inner
            .send_now(&Envelope::new(
                tenant.clone(),
                key.goal.clone(),
                Message::GoalSubmitted {
                    text: "Write a blog post about receipts".into(),
                    pipeline: None,
                    priority: Default::default(),
                    source: None,
                    submitted_ms: 1_700_000_000_000,
                },
            ))
            .await;
        drain(&deps, &inner).await;
        let lost = bus
            .lost
            .lock()
            .unwrap()
            .clone()
            .expect("a message was lost");
        let stuck = store.goal_state(&key).await.unwrap();
        assert_eq!(
            stuck.goal.as_ref().unwrap().status,
            GoalStatus::Running,
            "losing {lost} (#{lose}) leaves the goal waiting"
        );
        // Not yet stale: the sweeper leaves it alone.
        let early = scheduler_tick::sweep::run(&deps, &tenant, clock.now_ms() + 60_000)
            .await
            .unwrap();
        assert!(early.contains("0 resumed"), "#{lose}: {early}");
        // Stale: resumed, then finished by the normal flow.
        let mut sweeps = 0;
        while store.goal_state(&key).await.unwrap().goal.unwrap().status == GoalStatus::Running {
            sweeps += 1;
            assert!(
                sweeps <= 3,
                "losing {lost} (#{lose}): still stuck after 3 sweeps"
            );
            clock.advance(window + 60_000);
            let report = scheduler_tick::sweep::run(&deps, &tenant, clock.now_ms())
                .await
                .unwrap();
            assert!(report.contains("1 resumed"), "#{lose}: {report}");
            drain(&deps, &inner).await;
        }
        let s = store.goal_state(&key).await.unwrap();
        assert_eq!(
            s.goal.as_ref().unwrap().status,
            GoalStatus::Completed,
            "#{lose}"
        );
        assert!(
            s.tasks.iter().all(|t| t.status == TaskStatus::Approved),
            "#{lose}"
        );
        assert_eq!(
            s.outputs.len(),
            6,
            "losing {lost} (#{lose}): no output lost or doubled"
        );
        assert_eq!(
            model.calls.load(Ordering::SeqCst),
            20,
            "losing {lost} (#{lose}): no model call twice"
        );
        assert_eq!(s.cost.calls, 20, "#{lose}");
        assert!(
            s.traces
                .iter()
                .any(|t| t.note.starts_with("sweeper: no progress for")),
            "#{lose}: the re-send is in the trace"
        );
        lost_kinds.push(lost);
    }
    lost_kinds.sort();
    lost_kinds.dedup();
    println!("lost and resumed: {}", lost_kinds.join(", "));
}
