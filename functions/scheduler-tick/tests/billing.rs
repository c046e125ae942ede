//! Usage billing against a Stripe mock (wiremock): the month's model cost
//! times the plan's markup is reported as meter events whose sum is exactly
//! what is billable, each identified so Stripe can drop a repeat, and a
//! report interrupted after Stripe got it is sent again unchanged, never
//! recomputed into a second charge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::{GoalId, TenantId, Usage};
use mktg_store::{CostEntry, GoalKey, Write};
use mktg_testkit::{memory_deps, TestDeps};
use scheduler_tick::billing::{self, Reported, Stripe};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn spend(t: &TestDeps, tenant: &TenantId, micros: u64) {
    let month = mktg_boot::month_of(t.deps.clock.now_ms());
    t.deps
        .store
        .commit(
            &GoalKey::new(tenant.clone(), GoalId::new("g1")),
            vec![Write::AddCost(CostEntry {
                tenant: tenant.clone(),
                goal: GoalId::new("g1"),
                month,
                skill: "copywriting".into(),
                model: "claude".into(),
                usage: Usage::default(),
                micros,
            })],
        )
        .await
        .unwrap();
}

fn form(r: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&r.body).into_owned().collect()
}

fn field(r: &Request, name: &str) -> String {
    form(r)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[tokio::test]
async fn usage_is_reported_once_and_exactly_even_across_a_crash() {
    let t = memory_deps();
    let tenant = TenantId::new("acme");
    let stripe_mock = MockServer::start().await;
    let stripe = Stripe {
        base_url: stripe_mock.uri(),
        secret_key: "sk_test_mock".into(),
    };
    let http = reqwest::Client::new();
    // No customer, no plan: nothing is reported.
    spend(&t, &tenant, 1_234_567).await;
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(matches!(r, Reported::Nothing(ref why) if why.contains("customer")));
    billing::set_customer(&t.deps, &tenant, "cus_Acme1")
        .await
        .unwrap();
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(matches!(r, Reported::Nothing(ref why) if why.contains("plan")));
    put_on_plan(&t, &tenant, "starter").await;

    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .and(header("authorization", "Bearer sk_test_mock"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"object": "billing.meter_event"})),
        )
        .mount(&stripe_mock)
        .await;
    // $1.234567 of model cost at starter's markup 1.3: 160 cents.
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(matches!(r, Reported::Sent { cents: 160, .. }), "{r:?}");
    let again = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(
        matches!(again, Reported::Nothing(_)),
        "nothing new, nothing sent"
    );

    // More spend; Stripe fails after the report was written down.
    spend(&t, &tenant, 1_000_000).await;
    stripe_mock.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .up_to_n_times(1)
        .mount(&stripe_mock)
        .await;
    let err = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    let pending = billing::account(&t.deps, &tenant)
        .await
        .unwrap()
        .pending
        .unwrap();
    assert_eq!((pending.base, pending.value), (160, 130));
    // Spend grows before the retry: the retry still sends the written-down
    // report unchanged, and the next run reports the rest.
    spend(&t, &tenant, 500_000).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&stripe_mock)
        .await;
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(
        matches!(r, Reported::Sent { cents: 130, ref identifier } if *identifier == pending.identifier),
        "{r:?}"
    );
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &http)
        .await
        .unwrap();
    assert!(matches!(r, Reported::Sent { cents: 65, .. }), "{r:?}");

    // What Stripe saw: the failed attempt and its retry share an
    // identifier and a value; all accepted values sum to the billable total.
    let seen = stripe_mock.received_requests().await.unwrap();
    let values: Vec<(String, u64)> = seen
        .iter()
        .map(|r| {
            (
                field(r, "identifier"),
                field(r, "payload[value]").parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values[0], values[1],
        "the retry repeats the interrupted report"
    );
    for r in &seen {
        assert_eq!(field(r, "event_name"), "mktg_model_usage");
        assert_eq!(field(r, "payload[stripe_customer_id]"), "cus_Acme1");
        assert_eq!(
            r.headers.get("idempotency-key").unwrap().to_str().unwrap(),
            field(r, "identifier")
        );
    }
    let accepted: u64 = 160 + values[1..].iter().map(|(_, v)| v).sum::<u64>();
    assert_eq!(accepted, billing::billable_cents(2_734_567, 1.3));
    let month = mktg_boot::month_of(t.deps.clock.now_ms());
    assert_eq!(
        billing::account(&t.deps, &tenant).await.unwrap().reported[&month],
        355
    );
}

#[tokio::test]
async fn a_repeat_stripe_already_has_counts_as_sent() {
    let t = memory_deps();
    let tenant = TenantId::new("acme");
    let stripe_mock = MockServer::start().await;
    let stripe = Stripe {
        base_url: stripe_mock.uri(),
        secret_key: "sk_test_mock".into(),
    };
    billing::set_customer(&t.deps, &tenant, "cus_Acme1")
        .await
        .unwrap();
    put_on_plan(&t, &tenant, "team").await;
    spend(&t, &tenant, 10_000_000).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {"message": "An event with identifier mktg-acme already exists."}})))
        .mount(&stripe_mock)
        .await;
    let r = billing::report_usage(&t.deps, &tenant, &stripe, &reqwest::Client::new())
        .await
        .unwrap();
    assert!(matches!(r, Reported::Sent { cents: 1200, .. }), "{r:?}");
    assert!(billing::account(&t.deps, &tenant)
        .await
        .unwrap()
        .pending
        .is_none());
}

/// Puts the tenant on a plan the way `PUT /billing/plan` does.
async fn put_on_plan(t: &TestDeps, tenant: &TenantId, plan: &str) {
    t.deps
        .store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Budget {
                tenant: tenant.clone(),
                budget: mktg_store::TenantBudget {
                    monthly_usd: 1000.0,
                    per_goal_usd: 25.0,
                    updated_ms: 0,
                    plan: Some(plan.into()),
                },
            }],
        )
        .await
        .unwrap();
}
