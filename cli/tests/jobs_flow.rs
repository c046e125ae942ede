//! The feedback loops through the real handlers (memory adapters): metrics
//! pushed by webhook or pulled through a real MCP server raise anomalies
//! that start work; learnings compound into patterns; budget shifts are
//! proposed and wait for a person.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use mktg_boot::metrics::{self, date_of_day, day_of_ms, Observation, Observed};
use mktg_boot::HandlerError;
use mktg_cli::{approvals, dispatch};
use mktg_core::learn::Learning;
use mktg_core::message::goal_for_event;
use mktg_core::{Envelope, GoalSource, GoalStatus, Message, Priority, QueueName, TenantId};
use mktg_llm::ScriptedModel;
use mktg_store::{GoalKey, Write};
use mktg_testkit::{config_copy, mcp_python, memory_deps_with, TestDeps};
use std::sync::Arc;

struct World {
    t: TestDeps,
    routed: std::sync::Mutex<usize>,
    _dir: tempfile::TempDir,
}

/// The real config, with `files` (name, text) written over it.
fn world(files: &[(&str, String)]) -> World {
    let dir = config_copy();
    // The shipped tools.yaml names servers under the repo's .mktg/.
    let tools = dir.path().join("config/tools.yaml");
    let text = std::fs::read_to_string(&tools).unwrap().replace(
        ".mktg/",
        &format!("{}/.mktg/", mktg_testkit::repo_root().display()),
    );
    std::fs::write(&tools, text).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("config").join(name), text).unwrap();
    }
    let config = mktg_config::load(&mktg_config::Paths::under(dir.path()))
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
    let model = ScriptedModel::load(&config.models.scripted_script).unwrap();
    World {
        t: memory_deps_with(config, Arc::new(model)),
        routed: std::sync::Mutex::new(0),
        _dir: dir,
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme")
}

fn ms_at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    u64::try_from(
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_millis(),
    )
    .unwrap()
}

/// What the incoming-events rule does: external events on the bus become
/// messages of the director queue (through the same decoder Lambda uses).
async fn route_events(w: &World) -> usize {
    let events = w.t.bus.external_events();
    let start = {
        let mut routed = w.routed.lock().unwrap();
        std::mem::replace(&mut *routed, events.len())
    };
    let fresh = &events[start..];
    for e in fresh {
        let body = serde_json::json!({
            "version": "0", "id": "x", "source": e.source, "detail-type": e.detail_type,
            "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap(),
        });
        let env = mktg_boot::decode(&body.to_string()).unwrap();
        w.t.bus.send_now(&env).await;
    }
    fresh.len()
}

/// Runs every queue (and the event routing) until nothing is left.
async fn drain(w: &World) {
    for _ in 0..10_000 {
        let mut any = route_events(w).await > 0;
        for q in QueueName::ALL {
            while let Some(env) = w.t.bus.pop(q) {
                any = true;
                match dispatch(&w.t.deps, q, env.clone()).await {
                    Ok(()) => {}
                    Err(HandlerError::Fail(why) | HandlerError::Retry(why)) => {
                        panic!("{} failed: {why}", env.message.kind())
                    }
                }
            }
        }
        if !any {
            return;
        }
    }
    panic!("queues never drained");
}

/// A `metric.observed` webhook as the director receives it.
fn observed(id: &str, data: serde_json::Value) -> Envelope {
    Envelope::new(
        tenant(),
        goal_for_event(id),
        Message::EventReceived {
            event_id: id.into(),
            event_type: "metric.observed".into(),
            data_json: data.to_string(),
            received_ms: 0,
        },
    )
}

/// A normal conversion rate around 3.0 %, varying a little by day.
fn normal_rate(day: i64) -> f64 {
    3.0 + 0.1 * ((day % 3) as f64 - 1.0)
}

fn anomalies(w: &World) -> Vec<serde_json::Value> {
    w.t.bus
        .external_events()
        .into_iter()
        .filter(|e| e.detail_type == "analytics.anomaly")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect()
}

async fn goals(w: &World) -> Vec<mktg_core::Goal> {
    w.t.deps.store.goals(&tenant(), 100).await.unwrap()
}

#[tokio::test]
async fn a_drop_in_a_pushed_metric_series_starts_the_conversion_sprint_once() {
    let w = world(&[]);
    let today = day_of_ms(ms_at(2026, 11, 25, 12, 0));
    for day in today - 28..today {
        let env = observed(
            &format!("ga4:{day}"),
            serde_json::json!({"metric": "conversion_rate", "value": normal_rate(day), "day": date_of_day(day)}),
        );
        mktg_director_deliver(&w, env).await;
    }
    assert!(anomalies(&w).is_empty(), "a normal month raises nothing");
    // A spike on a metric that watches drops raises nothing either.
    mktg_director_deliver(
        &w,
        observed("ga4:spike", serde_json::json!({"metric": "conversion_rate", "value": 9.0, "day": date_of_day(today + 1)})),
    )
    .await;
    assert!(anomalies(&w).is_empty());

    let drop =
        serde_json::json!({"metric": "conversion_rate", "value": 1.6, "day": date_of_day(today)});
    mktg_director_deliver(&w, observed("ga4:drop", drop.clone())).await;
    // The same value delivered again (a webhook retried by its sender).
    mktg_director_deliver(&w, observed("ga4:drop-again", drop)).await;
    let found = anomalies(&w);
    assert_eq!(found.len(), 2, "each delivery reports it...");
    assert_eq!(found[0]["id"], found[1]["id"], "...under one event id");
    let data = &found[0]["data"];
    assert_eq!(data["metric"], "conversion_rate");
    assert_eq!(data["direction"], "drop");
    assert_eq!(
        data["seasonal"], true,
        "four weeks give four same-weekday points"
    );
    assert!(data["percentageDrop"].as_f64().unwrap() > 40.0, "{data}");
    assert!(data["z"].as_f64().unwrap() < -3.0, "{data}");

    drain(&w).await;
    let gs = goals(&w).await;
    assert_eq!(gs.len(), 1, "{gs:?}");
    let g = &gs[0];
    assert_eq!(g.pipeline.as_deref(), Some("Conversion Sprint"));
    assert_eq!(g.priority, Priority::P0);
    assert_eq!(g.status, GoalStatus::Completed, "{:?}", g.reason);
    assert_eq!(
        g.source,
        GoalSource::Event {
            event_type: "analytics.anomaly".into(),
            event_id: format!("anomaly:conversion_rate:{}", date_of_day(today)),
        }
    );
}

async fn mktg_director_deliver(w: &World, env: Envelope) {
    director::on_message(&w.t.deps, env).await.unwrap();
}

#[tokio::test]
async fn bad_observations_are_refused_with_the_reason_and_store_nothing() {
    let w = world(&[]);
    let cases = [
        (
            serde_json::json!({"metric": "revenu", "value": 1.0}),
            "unknown metric \"revenu\"",
        ),
        (
            serde_json::json!({"metric": "revenue", "value": 1.0}),
            "needs a dimension",
        ),
        (
            serde_json::json!({"metric": "revenue", "dimension": "tv", "value": 1.0}),
            "no dimension \"tv\"",
        ),
        (
            serde_json::json!({"metric": "sessions", "value": "many"}),
            "numeric \"value\"",
        ),
    ];
    for (i, (data, want)) in cases.into_iter().enumerate() {
        let err = director::on_message(&w.t.deps, observed(&format!("bad:{i}"), data))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(want), "{err} should say {want}");
    }
    assert!(w
        .t
        .deps
        .store
        .docs(&tenant(), "metric#revenue")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_metrics_job_pulls_through_a_real_mcp_server_and_raises_the_anomaly() {
    let fixture = mktg_testkit::repo_root().join("tests/fixtures/mcp/metrics.py");
    let values = tempfile::NamedTempFile::new().unwrap();
    // The shipped tools.yaml (other skills use its servers) plus ours.
    let shipped = std::fs::read_to_string(mktg_testkit::repo_root().join("config/tools.yaml"))
        .unwrap()
        .replace(
            ".mktg/",
            &format!("{}/.mktg/", mktg_testkit::repo_root().display()),
        );
    let tools = format!(
        "{shipped}\n  analytics:\n    command: {}\n    args: [\"{}\", \"{}\"]\n    skills: [analytics-tracking]\n    effect: read\n    timeout_ms: 15000\n",
        mcp_python(),
        fixture.display(),
        values.path().display()
    );
    let metrics_yaml = "method: {window_days: 28, seasonality: weekly, min_points: 4, z_threshold: 3.0}\nmetrics:\n  - id: conversion_rate\n    watch: drop\n    min_change: 0.3\n    source: {tool: analytics__read_metric, arguments: {metric: conversion_rate, date: \"{date}\"}, value: /value}\n  - id: sessions\n    watch: drop\n    min_change: 100\n    source: {tool: analytics__read_metric, arguments: {metric: sessions, date: \"{date}\"}, value: /value}\n".to_string();
    let w = world(&[("tools.yaml", tools), ("metrics.yaml", metrics_yaml)]);
    let now = ms_at(2026, 11, 25, 6, 0);
    let yesterday = day_of_ms(now) - 1;
    for day in yesterday - 28..yesterday {
        let obs = Observation {
            metric: "conversion_rate".into(),
            dimension: None,
            day,
            value: normal_rate(day),
        };
        assert!(!matches!(
            metrics::observe(&w.t.deps, &tenant(), &obs).await.unwrap(),
            Observed::Anomaly { .. }
        ));
    }
    // The analytics server knows yesterday's conversion rate (a drop) and
    // has no sessions figure: that series fails alone.
    std::fs::write(
        values.path(),
        serde_json::json!({"conversion_rate": {date_of_day(yesterday): 1.5}}).to_string(),
    )
    .unwrap();
    let report = scheduler_tick::tick(&w.t.deps, &tenant(), now)
        .await
        .unwrap();
    let (key, summary) = report
        .jobs
        .iter()
        .find(|(k, _)| k.starts_with("metrics-check@"))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(key, "metrics-check@20261125T0600Z");
    assert!(
        summary.starts_with("1 series read for 2026-11-24, 1 anomalies, 1 unreadable"),
        "{summary}"
    );
    assert!(summary.contains("sessions: "), "{summary}");
    let found = anomalies(&w);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], "anomaly:conversion_rate:2026-11-24");
    // A second tick in the window does not run the job again.
    let again = scheduler_tick::tick(&w.t.deps, &tenant(), now + 20 * 60_000)
        .await
        .unwrap();
    assert!(
        again
            .jobs
            .iter()
            .all(|(k, _)| !k.starts_with("metrics-check@")),
        "{again:?}"
    );
    assert!(again
        .already
        .contains(&"metrics-check@20261125T0600Z".to_string()));
    drain(&w).await;
    let started: Vec<_> = goals(&w)
        .await
        .into_iter()
        .filter(|g| matches!(&g.source, GoalSource::Event { event_type, .. } if event_type == "analytics.anomaly"))
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].pipeline.as_deref(), Some("Conversion Sprint"));
}

fn learning(id: &str, goal: &str, text: &str, score: u8) -> Write {
    Write::NewLearning {
        tenant: tenant(),
        learning: Learning {
            id: id.into(),
            skill: "copywriting".into(),
            text: text.into(),
            evidence: "approved".into(),
            score,
            source_goal: goal.into(),
            source_task: "t3".into(),
            created_ms: 1,
            pruned: None,
        },
    }
}

#[tokio::test]
async fn validated_learnings_from_two_goals_become_a_pattern() {
    let w = world(&[]);
    w.t.deps
        .store
        .commit(
            &GoalKey::tenant_only(tenant()),
            vec![
                learning(
                    "g1.t3.0",
                    "g1",
                    "Open the hero with the customer's measurable outcome, not the feature",
                    9,
                ),
                learning(
                    "g2.t3.0",
                    "g2",
                    "Open the hero with a measurable customer outcome instead of the feature",
                    8,
                ),
                learning(
                    "g2.t3.1",
                    "g2",
                    "Put pricing objections next to the call to action",
                    9,
                ),
            ],
        )
        .await
        .unwrap();
    let report = scheduler_tick::tick(&w.t.deps, &tenant(), ms_at(2026, 11, 26, 2, 30))
        .await
        .unwrap();
    let (_, summary) = report
        .jobs
        .iter()
        .find(|(k, _)| k.starts_with("learning-patterns@"))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(summary, "1 patterns over 1 skills with learnings");
    let docs = w.t.deps.store.docs(&tenant(), "patterns").await.unwrap();
    let shown = mktg_cli::show::patterns(&docs, None);
    assert!(shown.contains("copywriting"), "{shown}");
    assert!(
        shown.contains("Open the hero with the customer's measurable outcome"),
        "{shown}"
    );
    assert!(
        shown.contains("held in 2 goals, 2 learnings, mean score 8.5"),
        "{shown}"
    );
    assert!(
        !shown.contains("pricing objections"),
        "one goal is not a pattern: {shown}"
    );
}

/// Spend and revenue per channel over two weeks: Google returns 4 per
/// dollar, Meta 2, LinkedIn 0.9.
async fn seed_channels(w: &World, today: i64) {
    for day in today - 14..today {
        for (channel, spend, revenue) in [
            ("google_ads", 100.0, 400.0),
            ("meta_ads", 70.0, 140.0),
            ("linkedin_ads", 35.0, 31.5),
        ] {
            for (metric, value) in [("spend", spend), ("revenue", revenue)] {
                let obs = Observation {
                    metric: metric.into(),
                    dimension: Some(channel.into()),
                    day,
                    value,
                };
                metrics::observe(&w.t.deps, &tenant(), &obs).await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_budget_shift_is_only_proposed_until_a_person_approves_it() {
    let w = world(&[]);
    let monday = ms_at(2026, 11, 30, 7, 0);
    seed_channels(&w, day_of_ms(monday)).await;
    let before = scheduler_tick::jobs::allocation(&w.t.deps, &tenant())
        .await
        .unwrap();
    let report = scheduler_tick::tick(&w.t.deps, &tenant(), monday)
        .await
        .unwrap();
    let (_, summary) = report
        .jobs
        .iter()
        .find(|(k, _)| k.starts_with("budget-shifts@"))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(
        summary.starts_with("proposed shift-2026-11-30: move 200 USD/month from linkedin_ads (0.90 per dollar) to google_ads (4.00)"),
        "{summary}"
    );
    // Proposed, not applied.
    let pending = approvals::pending_shifts(&w.t.deps, &tenant())
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        scheduler_tick::jobs::allocation(&w.t.deps, &tenant())
            .await
            .unwrap(),
        before
    );
    assert!(w.t.bus.external_events().is_empty());

    let p = approvals::decide_shift(&w.t.deps, &tenant(), "shift-2026-11-30", true, "ana", "")
        .await
        .unwrap();
    assert_eq!(p["status"], "approved");
    let after = scheduler_tick::jobs::allocation(&w.t.deps, &tenant())
        .await
        .unwrap();
    assert_eq!(after["linkedin_ads"], 800.0);
    assert_eq!(after["google_ads"], 3200.0);
    assert_eq!(after["meta_ads"], 2000.0);
    // Approving twice is harmless; denying an approved shift is refused.
    approvals::decide_shift(&w.t.deps, &tenant(), "shift-2026-11-30", true, "ana", "")
        .await
        .unwrap();
    let err = approvals::decide_shift(&w.t.deps, &tenant(), "shift-2026-11-30", false, "bo", "no")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already approved"), "{err}");
    assert!(approvals::pending_shifts(&w.t.deps, &tenant())
        .await
        .unwrap()
        .is_empty());

    // The approval starts one goal that carries the shift out.
    drain(&w).await;
    let applied: Vec<_> = goals(&w)
        .await
        .into_iter()
        .filter(|g| matches!(&g.source, GoalSource::Event { event_type, .. } if event_type == "budget.shift_approved"))
        .collect();
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(
        applied[0]
            .text
            .contains("move 200 USD a month from linkedin_ads to google_ads"),
        "{}",
        applied[0].text
    );
}

#[tokio::test]
async fn a_denied_budget_shift_changes_nothing() {
    let w = world(&[]);
    let monday = ms_at(2026, 11, 30, 7, 0);
    seed_channels(&w, day_of_ms(monday)).await;
    scheduler_tick::tick(&w.t.deps, &tenant(), monday)
        .await
        .unwrap();
    let before = scheduler_tick::jobs::allocation(&w.t.deps, &tenant())
        .await
        .unwrap();
    let p = approvals::decide_shift(
        &w.t.deps,
        &tenant(),
        "shift-2026-11-30",
        false,
        "bo",
        "brand campaign running",
    )
    .await
    .unwrap();
    assert_eq!(p["status"], "denied");
    assert_eq!(p["decided_by"], "denied by bo: brand campaign running");
    assert_eq!(
        scheduler_tick::jobs::allocation(&w.t.deps, &tenant())
            .await
            .unwrap(),
        before
    );
    assert!(w.t.bus.external_events().is_empty());
    let err = approvals::decide_shift(&w.t.deps, &tenant(), "shift-2099-01-01", true, "bo", "")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("shift-2026-11-30"),
        "names the proposals: {err}"
    );
}

#[tokio::test]
async fn the_metrics_job_reads_a_catalogue_server_with_each_tenants_own_connection() {
    let fixture = mktg_testkit::repo_root().join("tests/fixtures/mcp/metrics.py");
    // `analytics` is in the catalogue only; which account it reads is the
    // tenant's credential (here: the file of its figures).
    let catalog = format!(
        "servers:\n  analytics:\n    command: {}\n    args: [\"{}\"]\n    env: [METRICS_FILE]\n    skills: [analytics-tracking]\n    effect: read\n    timeout_ms: 15000\n",
        mcp_python(),
        fixture.display()
    );
    let metrics_yaml = "method: {window_days: 28, seasonality: weekly, min_points: 4, z_threshold: 3.0}\nmetrics:\n  - id: conversion_rate\n    watch: drop\n    min_change: 0.3\n    source: {tool: analytics__read_metric, arguments: {metric: conversion_rate, date: \"{date}\"}, value: /value}\n".to_string();
    let w = world(&[
        ("tools.catalog.yaml", catalog),
        ("metrics.yaml", metrics_yaml),
    ]);
    let now = ms_at(2026, 11, 25, 6, 0);
    let yesterday = day_of_ms(now) - 1;
    for day in yesterday - 28..yesterday {
        let obs = Observation {
            metric: "conversion_rate".into(),
            dimension: None,
            day,
            value: normal_rate(day),
        };
        metrics::observe(&w.t.deps, &tenant(), &obs).await.unwrap();
    }
    let acme_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        acme_file.path(),
        serde_json::json!({"conversion_rate": {date_of_day(yesterday): 1.5}}).to_string(),
    )
    .unwrap();
    let creds = std::collections::BTreeMap::from([(
        "METRICS_FILE".to_string(),
        acme_file.path().display().to_string(),
    )]);
    mktg_actions::connections::connect(&w.t.deps, &tenant(), "analytics", &creds, "ana")
        .await
        .unwrap();
    let job = |report: scheduler_tick::TickReport| {
        report
            .jobs
            .into_iter()
            .find(|(k, _)| k.starts_with("metrics-check@"))
            .map(|(_, summary)| summary)
            .unwrap_or_else(|| panic!("the metrics check did not run"))
    };
    // acme's connection reads acme's figures: the drop is an anomaly.
    let acme = job(scheduler_tick::tick(&w.t.deps, &tenant(), now)
        .await
        .unwrap());
    assert!(
        acme.starts_with("1 series read for 2026-11-24, 1 anomalies, 0 unreadable"),
        "{acme}"
    );
    assert_eq!(anomalies(&w).len(), 1);
    // beta never connected it: nothing is read, and that is no error.
    let beta = job(scheduler_tick::tick(&w.t.deps, &TenantId::new("beta"), now)
        .await
        .unwrap());
    assert!(
        beta.starts_with("0 series read for 2026-11-24, 0 anomalies, 0 unreadable"),
        "{beta}"
    );
}
