//! The tick with in-memory adapters and the shipped schedules.yaml.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use mktg_core::{GoalStatus, Message, QueueName, TenantId};
use mktg_store::GoalKey;
use mktg_testkit::{memory_deps, TestDeps};
use scheduler_tick::{due_slots, next_fires, tick};

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis() as u64
}

fn schedule<'a>(t: &'a TestDeps, id: &str) -> &'a mktg_config::Schedule {
    t.deps
        .config
        .schedules
        .list
        .iter()
        .find(|s| s.id == id)
        .unwrap()
}

async fn run_director(t: &TestDeps) {
    while let Some(env) = t.bus.pop(QueueName::Director) {
        director::on_message(&t.deps, env).await.unwrap();
    }
}

#[test]
fn slots_are_due_within_the_catch_up_window_only() {
    let t = memory_deps();
    let s = schedule(&t, "daily-social");
    let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 25, h, m, 30).unwrap();
    assert_eq!(
        due_slots(s, at(6, 0), 60),
        vec![Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap()]
    );
    assert_eq!(
        due_slots(s, at(6, 59), 60).len(),
        1,
        "caught up later within the window"
    );
    assert!(
        due_slots(s, at(7, 1), 60).is_empty(),
        "outside the window it is not caught up"
    );
    assert!(due_slots(s, at(5, 59), 60).is_empty());
    let next = next_fires(schedule(&t, "weekly-content"), at(12, 0), 2);
    // 2026-11-30 is a Monday.
    assert_eq!(
        next[0],
        Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
    );
    assert_eq!(next[1], Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap());
}

#[test]
fn a_schedule_fires_in_its_own_timezone() {
    let mut config = mktg_testkit::real_config();
    let s = config
        .schedules
        .list
        .iter_mut()
        .find(|s| s.id == "daily-social")
        .unwrap();
    s.timezone = "Europe/Berlin".parse().unwrap();
    let s = s.clone();
    // 06:00 in Berlin in November (CET, UTC+1) is 05:00 UTC.
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 5, 0, 10).unwrap();
    assert_eq!(
        due_slots(&s, now, 5),
        vec![Utc.with_ymd_and_hms(2026, 11, 25, 5, 0, 0).unwrap()]
    );
}

#[tokio::test]
async fn two_ticks_at_once_start_one_goal() {
    let t = memory_deps();
    let tenant = TenantId::new("acme");
    let now = ms(2026, 11, 25, 6, 0);
    let (a, b) = tokio::join!(tick(&t.deps, &tenant, now), tick(&t.deps, &tenant, now));
    let (a, b) = (a.unwrap(), b.unwrap());
    // The metrics job is due at 06:00 too; count the goal schedule only.
    let social = |r: &scheduler_tick::TickReport| {
        r.fired
            .iter()
            .chain(&r.already)
            .filter(|k| k.contains("daily-social"))
            .count()
    };
    assert_eq!(social(&a) + social(&b), 2);
    run_director(&t).await;
    let goals = t.deps.store.goals(&tenant, 10).await.unwrap();
    assert_eq!(goals.len(), 1, "{goals:?}");
    assert_eq!(goals[0].id.as_str(), "s-daily-social-202611250600");
    assert_eq!(
        goals[0].text,
        "Generate social media content for 2026-11-25"
    );
    assert_eq!(goals[0].status, GoalStatus::Running);
    // A later tick in the same window starts nothing new.
    let again = tick(&t.deps, &tenant, now + 30 * 60_000).await.unwrap();
    assert!(again.fired.is_empty());
    // (the sweeper's later slots run as jobs; no goal schedule fires again)
    assert!(again
        .already
        .contains(&"daily-social@20261125T0600Z".to_string()));
}

#[tokio::test]
async fn a_pipeline_schedule_starts_its_template() {
    let t = memory_deps();
    let tenant = TenantId::new("acme");
    // Monday 2026-11-30 00:00 UTC: weekly-content.
    let report = tick(&t.deps, &tenant, ms(2026, 11, 30, 0, 0))
        .await
        .unwrap();
    assert_eq!(report.fired, ["s-weekly-content-202611300000"]);
    let env = t.bus.pop(QueueName::Director).unwrap();
    match env.message {
        Message::GoalSubmitted {
            pipeline, priority, ..
        } => {
            assert_eq!(pipeline.as_deref(), Some("Content Production"));
            assert_eq!(priority, mktg_core::Priority::P2);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_throttled_budget_skips_low_priority_schedules() {
    use mktg_store::{CostEntry, TenantBudget, Write};
    let t = memory_deps();
    let tenant = TenantId::new("acme");
    let now = ms(2026, 11, 25, 6, 0);
    let scope = GoalKey::tenant_only(tenant.clone());
    t.deps
        .store
        .commit(
            &scope,
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget: TenantBudget {
                    monthly_usd: 1.0,
                    per_goal_usd: 1.0,
                    updated_ms: 0,
                    plan: None,
                },
            }],
        )
        .await
        .unwrap();
    let spend = CostEntry {
        tenant: tenant.clone(),
        goal: "x".into(),
        month: "2026-11".into(),
        skill: "s".into(),
        model: "m".into(),
        usage: Default::default(),
        micros: 920_000,
    };
    t.deps
        .store
        .commit(
            &GoalKey::new(tenant.clone(), "x".into()),
            vec![Write::AddCost(spend)],
        )
        .await
        .unwrap();
    let report = tick(&t.deps, &tenant, now).await.unwrap();
    assert!(report.fired.is_empty());
    assert_eq!(
        report.skipped,
        [(
            "daily-social".to_string(),
            "budget level throttle does not allow P2 work".to_string()
        )]
    );
}

#[tokio::test]
async fn the_tick_runs_every_registered_tenant_with_its_own_schedule_switches() {
    use mktg_boot::tenant::{self, Kind, Switch};
    let t = memory_deps();
    let deployment = TenantId::new("acme");
    let (beta, gamma) = (TenantId::new("beta"), TenantId::new("gamma"));
    tenant::register(&t.deps, &beta).await.unwrap();
    tenant::register(&t.deps, &beta).await.unwrap(); // idempotent
    let context: mktg_boot::context::ProductContext = serde_json::from_value(
        serde_json::json!({"product": "Receipts app", "audience": "Freelancers"}),
    )
    .unwrap();
    for t_ in [&beta, &gamma] {
        mktg_boot::context::save(&t.deps, t_, &context, "test")
            .await
            .unwrap();
    }
    // delta signed up and did nothing yet: no paid work starts for it.
    let delta = TenantId::new("delta");
    tenant::register(&t.deps, &delta).await.unwrap();
    // gamma turned the daily social post off for itself.
    let off =
        std::collections::BTreeMap::from([("daily-social".to_string(), Switch { enabled: false })]);
    tenant::save(&t.deps, &gamma, Kind::Schedules, &off, "test")
        .await
        .unwrap();
    let now = ms(2026, 11, 25, 6, 0);
    let report = scheduler_tick::tick_all(&t.deps, &deployment, now)
        .await
        .unwrap();
    let social: Vec<&String> = report
        .fired
        .iter()
        .filter(|k| k.contains("daily-social"))
        .collect();
    assert_eq!(
        social,
        [
            "s-daily-social-202611250600",
            "beta/s-daily-social-202611250600"
        ],
        "acme and beta, not gamma"
    );
    run_director(&t).await;
    assert!(report
        .skipped
        .iter()
        .any(|(k, why)| k == "delta/daily-social" && why.contains("no product context")));
    for (tenant, goals) in [(&deployment, 1), (&beta, 1), (&gamma, 0), (&delta, 0)] {
        let found = t.deps.store.goals(tenant, 10).await.unwrap();
        assert_eq!(found.len(), goals, "{tenant}");
    }
    // A second tick in the same minute starts nothing new for anyone.
    let again = scheduler_tick::tick_all(&t.deps, &deployment, now)
        .await
        .unwrap();
    assert!(!again.fired.iter().any(|k| k.contains("daily-social")));
}
