//! Property: whatever order the queues deliver a goal's messages in, with
//! duplicates and delays, the goal ends exactly as a clean run does. SQS
//! standard queues promise neither order nor single delivery; this drives
//! the real handlers through random schedules of both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::HandlerError;
use mktg_cli::dispatch;
use mktg_core::{Envelope, GoalId, Message, QueueName, TenantId};
use mktg_llm::ScriptedModel;
use mktg_store::{GoalKey, GoalState};
use mktg_testkit::{memory_deps_with, real_config, TestDeps};
use mktg_tools::{McpHost, ToolHost};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// What must not depend on delivery order: statuses, revisions, outputs,
/// review decisions, tool calls, model calls and their cost.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    goal: String,
    tasks: Vec<(String, String, u32)>,
    outputs: Vec<(String, u32, usize)>,
    reviews: Vec<(String, u32, String, String)>,
    calls: Vec<(String, String)>,
    turns: usize,
    cost_calls: u64,
    cost_micros: u64,
}

fn outcome(s: &GoalState) -> Outcome {
    let mut o = Outcome {
        goal: s
            .goal
            .as_ref()
            .map(|g| g.status.to_string())
            .unwrap_or_default(),
        tasks: s
            .tasks
            .iter()
            .map(|t| (t.id.to_string(), t.status.to_string(), t.revision))
            .collect(),
        outputs: s
            .outputs
            .iter()
            .map(|o| (o.task.to_string(), o.revision, o.body.len()))
            .collect(),
        reviews: s
            .reviews
            .iter()
            .map(|r| {
                (
                    r.task.to_string(),
                    r.revision,
                    r.reviewer.clone(),
                    r.decision.to_string(),
                )
            })
            .collect(),
        calls: s
            .calls
            .iter()
            .map(|c| (c.reference(), c.status.to_string()))
            .collect(),
        turns: s.turns.len(),
        cost_calls: s.cost.calls,
        cost_micros: s.cost.micros,
    };
    o.tasks.sort();
    o.outputs.sort();
    o.reviews.sort();
    o.calls.sort();
    o
}

/// One set of tool-server processes for every case.
fn host() -> Arc<dyn ToolHost> {
    static HOST: OnceLock<Arc<dyn ToolHost>> = OnceLock::new();
    HOST.get_or_init(|| Arc::new(McpHost::new(real_config().tools.clone())))
        .clone()
}

fn world() -> TestDeps {
    let config = real_config();
    let model = ScriptedModel::load(&config.models.scripted_script).unwrap();
    let mut t = memory_deps_with(config, Arc::new(model));
    t.deps.tools = host();
    t
}

fn submit() -> Envelope {
    Envelope::new(
        TenantId::new("t"),
        GoalId::new("g"),
        Message::GoalSubmitted {
            text: "Write a blog post about receipts".into(),
            pipeline: None,
            priority: Default::default(),
            source: None,
            submitted_ms: 1,
        },
    )
}

/// One scheduling choice: which pending message, and what the queue does
/// with it.
#[derive(Clone, Copy, Debug)]
enum Act {
    Deliver,
    /// Deliver, and deliver it again later.
    Duplicate,
    /// Hold it back; something else goes first.
    Delay,
}

fn act() -> impl Strategy<Value = (usize, Act)> {
    (
        any::<usize>(),
        prop_oneof![6 => Just(Act::Deliver), 2 => Just(Act::Duplicate), 2 => Just(Act::Delay)],
    )
}

async fn run(t: &TestDeps, schedule: &[(usize, Act)]) -> GoalState {
    let mut pool: Vec<Envelope> = vec![submit()];
    let mut choices = schedule.iter();
    for _ in 0..50_000 {
        for q in QueueName::ALL {
            while let Some(env) = t.bus.pop(q) {
                pool.push(env);
            }
        }
        if pool.is_empty() {
            break;
        }
        let (i, what) = match choices.next() {
            Some((pick, what)) => (pick % pool.len(), *what),
            None => (0, Act::Deliver),
        };
        let env = pool.remove(i);
        match what {
            Act::Delay => {
                pool.push(env);
                continue;
            }
            Act::Duplicate => pool.push(env.clone()),
            Act::Deliver => {}
        }
        match dispatch(&t.deps, env.message.queue(), env.clone()).await {
            Ok(()) => {}
            Err(HandlerError::Retry(_)) => {
                t.clock.advance(60_000);
                pool.push(env);
            }
            Err(HandlerError::Fail(why)) => panic!("{}: {why}", env.message.kind()),
        }
    }
    assert!(pool.is_empty(), "messages never settled: {}", pool.len());
    t.deps
        .store
        .goal_state(&GoalKey::new("t".into(), "g".into()))
        .await
        .unwrap()
}

/// One runtime for every case: the tool servers' connections live on it.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn clean() -> &'static Outcome {
    static CLEAN: OnceLock<Outcome> = OnceLock::new();
    CLEAN.get_or_init(|| {
        rt().block_on(async {
            let t = world();
            let s = run(&t, &[]).await;
            assert_eq!(s.goal.as_ref().unwrap().status.to_string(), "COMPLETED");
            outcome(&s)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_order_with_duplicates_and_delays_ends_as_the_clean_run(
        schedule in proptest::collection::vec(act(), 0..300)
    ) {
        let want = clean();
        let got = rt().block_on(async {
            let t = world();
            outcome(&run(&t, &schedule).await)
        });
        prop_assert_eq!(&got, want);
    }
}
