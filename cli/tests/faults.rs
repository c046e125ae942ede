//! Crashes at step boundaries, simulated with adapters that fail once at a
//! chosen point; the redelivered message must repair the state without
//! losing work or paying for a model call twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use mktg_boot::{Deps, HandlerError};
use mktg_bus::{Bus, BusError, MemoryBus};
use mktg_cli::dispatch;
use mktg_core::{
    DomainEvent, Envelope, GoalId, GoalStatus, Message, QueueName, TaskStatus, TenantId,
};
use mktg_llm::ChatModel;
use mktg_store::{
    CostTotals, GoalKey, GoalState, MemoryStore, Parked, Store, StoreError, TenantBudget, Write,
};
use mktg_testkit::counting::CountingModel;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Fails the `n`-th send (1-based) as a crash right after the commit that
/// decided it would.
struct CrashingBus {
    inner: Arc<MemoryBus>,
    sends: AtomicUsize,
    crash_at: usize,
    /// Also fail every `n`-th send (SQS errors); 0 for never.
    every: usize,
}

#[async_trait]
impl Bus for CrashingBus {
    async fn send(&self, envelope: &Envelope) -> Result<(), BusError> {
        let n = self.sends.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.crash_at {
            return Err(BusError::Transient("injected crash before send".into()));
        }
        if self.every > 0 && n % self.every == 0 {
            return Err(BusError::Transient(
                "injected SQS error: ServiceUnavailable".into(),
            ));
        }
        self.inner.send(envelope).await
    }
    async fn publish(&self, event: &DomainEvent) -> Result<(), BusError> {
        self.inner.publish(event).await
    }
    async fn put_external(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), BusError> {
        self.inner.put_external(source, detail_type, detail).await
    }
}

/// Fails the first commit that stores an output: a crash after the model
/// answered and the turn was checkpointed. With `throttle_every` > 0 it
/// also throttles every n-th commit and goal read, as DynamoDB does
/// (ProvisionedThroughputExceeded), which the adapter reports as transient.
struct CrashingStore {
    inner: MemoryStore,
    crashed: AtomicUsize,
    throttle_every: usize,
    ops: AtomicUsize,
}

impl CrashingStore {
    fn new(throttle_every: usize) -> Self {
        CrashingStore {
            inner: MemoryStore::new(),
            crashed: AtomicUsize::new(0),
            throttle_every,
            ops: AtomicUsize::new(0),
        }
    }

    fn throttle(&self) -> Result<(), StoreError> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if self.throttle_every > 0 && n % self.throttle_every == 0 {
            return Err(StoreError::Transient(
                "injected ProvisionedThroughputExceededException".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for CrashingStore {
    async fn commit(&self, key: &GoalKey, writes: Vec<Write>) -> Result<(), StoreError> {
        self.throttle()?;
        if self.throttle_every == 0
            && writes.iter().any(|w| matches!(w, Write::NewOutput(_)))
            && self.crashed.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Err(StoreError::Transient(
                "injected crash before storing the output".into(),
            ));
        }
        self.inner.commit(key, writes).await
    }
    async fn goal(&self, key: &GoalKey) -> Result<Option<mktg_core::Goal>, StoreError> {
        self.throttle()?;
        self.inner.goal(key).await
    }
    async fn task(
        &self,
        key: &GoalKey,
        task: &mktg_core::TaskId,
    ) -> Result<Option<mktg_core::Task>, StoreError> {
        self.inner.task(key, task).await
    }
    async fn turn(
        &self,
        key: &GoalKey,
        task: &mktg_core::TaskId,
        rev: u32,
        n: u32,
    ) -> Result<Option<mktg_core::Turn>, StoreError> {
        self.inner.turn(key, task, rev, n).await
    }
    async fn output(
        &self,
        key: &GoalKey,
        task: &mktg_core::TaskId,
        rev: u32,
    ) -> Result<Option<mktg_core::Output>, StoreError> {
        self.inner.output(key, task, rev).await
    }
    async fn goal_state(&self, key: &GoalKey) -> Result<GoalState, StoreError> {
        self.throttle()?;
        self.inner.goal_state(key).await
    }
    async fn goals(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<mktg_core::Goal>, StoreError> {
        self.inner.goals(tenant, limit).await
    }
    async fn costs(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(String, CostTotals)>, StoreError> {
        self.inner.costs(tenant, month).await
    }
    async fn cost_row(&self, pk: &str, sk: &str) -> Result<CostTotals, StoreError> {
        self.inner.cost_row(pk, sk).await
    }
    async fn budget(&self, tenant: &TenantId) -> Result<Option<TenantBudget>, StoreError> {
        self.inner.budget(tenant).await
    }
    async fn parked(&self, tenant: &TenantId) -> Result<Vec<Parked>, StoreError> {
        self.inner.parked(tenant).await
    }
    async fn call(
        &self,
        key: &GoalKey,
        task: &mktg_core::TaskId,
        revision: u32,
        turn: u32,
        id: &str,
    ) -> Result<Option<mktg_core::ToolCall>, StoreError> {
        self.inner.call(key, task, revision, turn, id).await
    }
    async fn approvals(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<mktg_store::PendingApproval>, StoreError> {
        self.inner.approvals(tenant).await
    }
    async fn learnings(
        &self,
        tenant: &TenantId,
        skill: &str,
    ) -> Result<
        (
            Vec<mktg_core::learn::Learning>,
            Vec<mktg_core::learn::LearningUse>,
        ),
        StoreError,
    > {
        self.inner.learnings(tenant, skill).await
    }
    async fn goals_after(
        &self,
        tenant: &TenantId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<mktg_core::Goal>, StoreError> {
        self.inner.goals_after(tenant, after, limit).await
    }
    async fn docs(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.inner.docs(tenant, collection).await
    }
    async fn claimed(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.inner.claimed(tenant, kind, key).await
    }
    async fn lease_holder(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.lease_holder(tenant, kind, key).await
    }
}

/// Counts model calls.
fn submit(deps: &Deps) -> Envelope {
    Envelope::new(
        TenantId::new("t"),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: "Write a blog post".into(),
            pipeline: None,
            priority: Default::default(),
            source: None,
            submitted_ms: deps.clock.now_ms(),
        },
    )
}

/// Delivers messages; a retried message goes back to its queue, as SQS
/// redelivers it after the visibility timeout.
async fn drain(deps: &Deps, bus: &MemoryBus) -> usize {
    let mut retries = 0;
    for _ in 0..10_000 {
        let mut any = false;
        for q in QueueName::ALL {
            while let Some(env) = bus.pop(q) {
                any = true;
                match dispatch(deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Retry(_)) => {
                        retries += 1;
                        bus.send_now(&env).await;
                    }
                    Err(HandlerError::Fail(why)) => panic!("{}: {why}", env.message.kind()),
                }
            }
        }
        if !any {
            return retries;
        }
    }
    panic!("never drained");
}

fn deps_with(store: Arc<dyn Store>, bus: Arc<dyn Bus>, model: Arc<dyn ChatModel>) -> Deps {
    let config = mktg_testkit::real_config();
    Deps::new(
        store,
        bus,
        model,
        Arc::new(config),
        Arc::new(mktg_testkit::StepClock::new(1)),
    )
}

fn counting_model() -> Arc<CountingModel> {
    CountingModel::demo()
}

#[tokio::test]
async fn a_crash_between_any_commit_and_its_send_is_repaired_by_redelivery() {
    // A clean run sends 28 messages (6 ready, 6 outputs, 6 review requests,
    // 6 decisions, the content strategist's tool call and its ToolsDone, and
    // the two next-step messages of the copywriting review chain; the submit
    // is sent by the test itself); crash at each send in turn.
    for crash_at in 1..=28 {
        let inner = Arc::new(MemoryBus::new());
        let bus = Arc::new(CrashingBus {
            inner: inner.clone(),
            sends: AtomicUsize::new(0),
            crash_at,
            every: 0,
        });
        let store = Arc::new(MemoryStore::new());
        let model = counting_model();
        let deps = deps_with(store.clone(), bus, model.clone());
        inner.send_now(&submit(&deps)).await;
        let retries = drain(&deps, &inner).await;
        let s = store
            .goal_state(&GoalKey::new("t".into(), "g".into()))
            .await
            .unwrap();
        let goal = s.goal.unwrap();
        assert_eq!(
            goal.status,
            GoalStatus::Completed,
            "crash at send {crash_at}"
        );
        assert!(
            s.tasks.iter().all(|t| t.status == TaskStatus::Approved),
            "crash at send {crash_at}"
        );
        assert_eq!(
            s.outputs.len(),
            6,
            "crash at send {crash_at}: no output lost or doubled"
        );
        assert_eq!(
            model.calls.load(Ordering::SeqCst),
            20,
            "crash at send {crash_at}: no model call paid twice (7 agent turns, 7 reviews, 5 distillations, 1 consistency check)"
        );
        assert!(
            goal.outbox.is_empty() && s.tasks.iter().all(|t| t.outbox.is_empty()),
            "crash at send {crash_at}: outboxes flushed"
        );
        assert_eq!(retries, 1, "crash at send {crash_at}");
        assert_eq!(
            s.cost.calls, 20,
            "crash at send {crash_at}: each call's cost recorded once"
        );
        assert!(
            s.calls.len() == 1 && s.calls[0].status == mktg_core::CallStatus::Done,
            "crash at send {crash_at}: the tool call ran and finished"
        );
    }
}

#[tokio::test]
async fn a_crash_after_the_model_answered_reuses_the_checkpointed_answer() {
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(CrashingStore::new(0));
    let model = counting_model();
    let deps = deps_with(store.clone(), bus.clone(), model.clone());
    bus.send_now(&submit(&deps)).await;
    let retries = drain(&deps, &bus).await;
    assert_eq!(retries, 1);
    let s = store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap();
    assert_eq!(s.goal.unwrap().status, GoalStatus::Completed);
    assert_eq!(
        model.calls.load(Ordering::SeqCst),
        20,
        "the redelivery reused the stored turn"
    );
    assert_eq!(s.turns.len(), 20);
    assert_eq!(s.cost.calls, 20, "each call's cost recorded exactly once");
    assert_eq!(
        s.cost.micros,
        s.turns.iter().map(|t| t.cost_micros).sum::<u64>()
    );
    assert!(s.cost.micros > 0);
}

/// An SQS event as Lambda delivers it, with the receive count SQS reports.
fn sqs_event(env: &Envelope, receive_count: u32) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
    record.message_id = Some("m-1".into());
    record.body = Some(serde_json::to_string(env).unwrap());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![record];
    event
}

#[tokio::test]
async fn a_message_on_its_last_delivery_before_the_dlq_fails_its_task_with_the_cause() {
    use mktg_boot::dead_letter::MAX_RECEIVE_COUNT;
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(MemoryStore::new());
    let deps = deps_with(store.clone(), bus.clone(), counting_model());
    // Run the goal until its first task is ready, then make its handler
    // fail every time (a poison message).
    bus.send_now(&submit(&deps)).await;
    let director = bus.pop(QueueName::Director).unwrap();
    dispatch(&deps, QueueName::Director, director)
        .await
        .unwrap();
    let ready = bus.pop(QueueName::Agent).unwrap();
    let poison = |_env: Envelope| async {
        Err::<(), _>(HandlerError::Retry(
            "the model endpoint keeps timing out".into(),
        ))
    };

    // Earlier deliveries: retried, nothing recorded.
    let r = mktg_boot::run_sqs_batch_with(&deps, sqs_event(&ready, MAX_RECEIVE_COUNT - 1), poison)
        .await;
    assert_eq!(r.batch_item_failures.len(), 1);
    let key = GoalKey::new("t".into(), "g".into());
    let task_id = ready.message.task().unwrap().clone();
    assert_ne!(
        store.task(&key, &task_id).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );

    // The last one: still reported (SQS moves it to the DLQ), and the task
    // is FAILED with the cause; the director then fails the goal.
    let r =
        mktg_boot::run_sqs_batch_with(&deps, sqs_event(&ready, MAX_RECEIVE_COUNT), poison).await;
    assert_eq!(
        r.batch_item_failures.len(),
        1,
        "the message still goes to the DLQ"
    );
    let task = store.task(&key, &task_id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    let reason = task.reason.unwrap();
    assert!(
        reason.contains("dead-letter queue") && reason.contains("keeps timing out"),
        "{reason}"
    );
    drain(&deps, &bus).await;
    let goal = store.goal(&key).await.unwrap().unwrap();
    assert_eq!(goal.status, GoalStatus::Failed);
    assert!(goal.reason.unwrap().contains("dead-letter queue"));
}

#[test]
fn every_queue_in_the_template_dead_letters_after_the_count_the_runner_assumes() {
    let template =
        std::fs::read_to_string(mktg_testkit::repo_root().join("infra/template.yaml")).unwrap();
    let counts: Vec<&str> = template
        .match_indices("maxReceiveCount: ")
        .map(|(i, m)| {
            template[i + m.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.len(), 4, "one redrive policy per queue");
    let expected = mktg_boot::dead_letter::MAX_RECEIVE_COUNT.to_string();
    assert!(counts.iter().all(|c| *c == expected), "{counts:?}");
}

#[tokio::test]
async fn throttled_dynamodb_and_failing_sqs_sends_lose_and_double_nothing() {
    // Every 7th store operation is throttled and every 5th send fails, for
    // a whole goal; each failure is retried the way SQS redelivers.
    let inner = Arc::new(MemoryBus::new());
    let bus = Arc::new(CrashingBus {
        inner: inner.clone(),
        sends: AtomicUsize::new(0),
        crash_at: 0,
        every: 5,
    });
    let store = Arc::new(CrashingStore::new(7));
    let model = counting_model();
    let deps = deps_with(store.clone(), bus, model.clone());
    inner.send_now(&submit(&deps)).await;
    let retries = drain(&deps, &inner).await;
    let s = store
        .inner
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap();
    let goal = s.goal.unwrap();
    assert_eq!(goal.status, GoalStatus::Completed, "{:?}", goal.reason);
    assert!(s.tasks.iter().all(|t| t.status == TaskStatus::Approved));
    assert_eq!(s.outputs.len(), 6, "no output lost or doubled");
    assert!(
        retries > 20,
        "the faults really happened: {retries} retries"
    );
    // A throttled checkpoint loses that answer (the model is asked again);
    // what is stored is paid once.
    assert_eq!(s.turns.len(), 20);
    assert_eq!(s.cost.calls, 20, "each stored call's cost recorded once");
    assert!(model.calls.load(Ordering::SeqCst) >= 20);
    assert!(goal.outbox.is_empty() && s.tasks.iter().all(|t| t.outbox.is_empty()));
    assert!(s.calls.len() == 1 && s.calls[0].status == mktg_core::CallStatus::Done);
}
