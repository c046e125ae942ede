//! Fuzzing the intake: random bodies and headers never panic and always get
//! a defined answer; a body signed correctly is accepted exactly when it is
//! a JSON object with a type and an id, and nothing reaches the bus
//! otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::TenantId;
use mktg_testkit::memory_deps;
use proptest::prelude::*;
use webhook_intake::{intake, sign, WebhookSecrets};

const NOW: i64 = 1_700_000_000;

fn secrets() -> WebhookSecrets {
    WebhookSecrets::from_vars([
        ("WEBHOOK_SECRET_GA4".to_string(), "ga4-secret".to_string()),
        (
            "WEBHOOK_SECRET_STRIPE".to_string(),
            "whsec_test".to_string(),
        ),
        ("WEBHOOK_SECRET_GITHUB".to_string(), "gh-secret".to_string()),
    ])
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

const HEADERS: [&str; 7] = [
    "x-mktg-timestamp",
    "x-mktg-signature",
    "x-mktg-delivery",
    "stripe-signature",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
];

/// Bodies that look like JSON more often than not.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        "\\{(\"[a-z]{1,6}\":(\"[ -~]{0,12}\"|[0-9]{1,4}|null|\\{\\}|\\[\\]),?){0,6}\\}"
            .prop_map(String::into_bytes),
        "[ -~]{0,200}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_deliveries_get_a_defined_answer_and_enqueue_nothing_unless_accepted(
        source in prop_oneof![Just("ga4".to_string()), Just("stripe".to_string()), Just("github".to_string()), "[a-z]{1,8}"],
        headers in proptest::collection::vec((0..HEADERS.len(), "[ -~]{0,80}"), 0..6),
        body in body(),
    ) {
        let t = memory_deps();
        let answer = rt().block_on(async {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(i, _)| HEADERS[*i] == name)
                    .map(|(_, v)| v.clone())
            };
            intake(&t.deps, &secrets(), &TenantId::new("acme"), &source, header, &body).await
        });
        prop_assert!([200, 202, 400, 401, 404, 413, 422].contains(&answer.status), "{}", answer.status);
        if answer.status >= 400 {
            prop_assert!(answer.body["error"].is_string() && answer.body["message"].is_string());
            prop_assert!(t.bus.external_events().is_empty());
        }
    }

    #[test]
    fn a_correctly_signed_body_is_accepted_exactly_when_it_is_an_object_with_type_and_id(
        body in body(),
    ) {
        let t = memory_deps();
        let sig = sign("ga4-secret", Some(NOW), &body).unwrap();
        let headers = [
            ("x-mktg-timestamp", NOW.to_string()),
            ("x-mktg-signature", format!("v1={sig}")),
        ];
        let answer = rt().block_on(async {
            let header = |name: &str| {
                headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
            };
            intake(&t.deps, &secrets(), &TenantId::new("acme"), "ga4", header, &body).await
        });
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let valid = parsed.as_ref().is_some_and(|v| {
            v.is_object()
                && v["type"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 128)
                && v["id"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 256)
        });
        if valid {
            prop_assert_eq!(answer.status, 202, "{}", answer.body);
            prop_assert_eq!(t.bus.external_events().len(), 1);
        } else {
            prop_assert!([400, 422].contains(&answer.status), "{} {}", answer.status, answer.body);
            prop_assert!(t.bus.external_events().is_empty());
        }
    }
}
