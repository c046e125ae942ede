//! Every way a delivery is accepted or refused, with in-memory adapters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_core::TenantId;
use mktg_testkit::{memory_deps, TestDeps};
use serde_json::Value;
use webhook_intake::{intake, sign, Answer, WebhookSecrets, MAX_BODY};

/// The memory deps' clock starts at 1_700_000_000_000 ms.
const NOW: i64 = 1_700_000_000;

fn secrets() -> WebhookSecrets {
    WebhookSecrets::from_vars([
        ("WEBHOOK_SECRET_GA4".to_string(), "ga4-secret".to_string()),
        (
            "WEBHOOK_SECRET_STRIPE".to_string(),
            "whsec_test".to_string(),
        ),
        ("WEBHOOK_SECRET_GITHUB".to_string(), "gh-secret".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ])
}

async fn send(t: &TestDeps, source: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    intake(
        &t.deps,
        &secrets(),
        &TenantId::new("acme"),
        source,
        header,
        body,
    )
    .await
}

fn generic(secret: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-mktg-timestamp", ts.to_string()),
        (
            "x-mktg-signature",
            format!("v1={}", sign(secret, Some(ts), body).unwrap()),
        ),
    ]
}

type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

const DROP: &[u8] = br#"{"id":"evt-1","type":"traffic_drop","percentageDrop":32}"#;

#[tokio::test]
async fn a_signed_delivery_goes_on_the_bus_and_gets_202_with_the_event_id() {
    let t = memory_deps();
    let a = send(&t, "ga4", &generic("ga4-secret", NOW, DROP), DROP).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["event_id"], "ga4:evt-1");
    let events = t.bus.external_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source, "mktg.webhook");
    assert_eq!(events[0].detail_type, "traffic_drop");
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["data"]["percentageDrop"], 32);
    assert_eq!(detail["tenant"], "acme");
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_once() {
    let t = memory_deps();
    assert_eq!(
        send(&t, "ga4", &generic("ga4-secret", NOW, DROP), DROP)
            .await
            .status,
        202
    );
    let again = send(&t, "ga4", &generic("ga4-secret", NOW + 1, DROP), DROP).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(t.bus.external_events().len(), 1);
}

#[tokio::test]
async fn every_bad_delivery_gets_its_4xx_and_puts_nothing() {
    let t = memory_deps();
    // (source, headers, body, expected status, expected error code)
    let cases: Vec<Case> = vec![
        (
            "ga4",
            generic("wrong", NOW, DROP),
            DROP.to_vec(),
            401,
            "bad_signature",
        ),
        (
            "ga4",
            generic("ga4-secret", NOW - 301, DROP),
            DROP.to_vec(),
            401,
            "stale_timestamp",
        ),
        ("ga4", vec![], DROP.to_vec(), 401, "bad_signature"),
        (
            "hubspot",
            generic("x", NOW, DROP),
            DROP.to_vec(),
            404,
            "unknown_source",
        ),
        (
            "ga4",
            generic("ga4-secret", NOW, b"{oops"),
            b"{oops".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "ga4",
            generic("ga4-secret", NOW, b"[1]"),
            b"[1]".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "ga4",
            generic("ga4-secret", NOW, br#"{"id":"x"}"#),
            br#"{"id":"x"}"#.to_vec(),
            422,
            "missing_type",
        ),
        (
            "ga4",
            generic("ga4-secret", NOW, br#"{"type":"x"}"#),
            br#"{"type":"x"}"#.to_vec(),
            422,
            "missing_delivery_id",
        ),
    ];
    for (source, headers, body, status, code) in cases {
        let a = send(&t, source, &headers, &body).await;
        assert_eq!(
            (a.status, a.body["error"].as_str().unwrap()),
            (status, code),
            "{}",
            a.body
        );
    }
    let big = vec![b' '; MAX_BODY + 1];
    assert_eq!(
        send(&t, "ga4", &generic("ga4-secret", NOW, &big), &big)
            .await
            .status,
        413
    );
    assert!(t.bus.external_events().is_empty());
}

#[tokio::test]
async fn stripe_and_github_formats_are_verified_their_way() {
    let t = memory_deps();
    let stripe_body = br#"{"id":"evt_1Q","type":"invoice.payment_failed","data":{}}"#;
    let sig = sign("whsec_test", Some(NOW), stripe_body).unwrap();
    let a = send(
        &t,
        "stripe",
        &[("Stripe-Signature", format!("t={NOW},v1={sig}"))],
        stripe_body,
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["event_id"], "stripe:evt_1Q");

    let gh_body = br#"{"action":"published","release":{"tag_name":"v2.0"}}"#;
    let gh_sig = sign("gh-secret", None, gh_body).unwrap();
    let headers = [
        ("X-Hub-Signature-256", format!("sha256={gh_sig}")),
        ("X-GitHub-Event", "release".to_string()),
        ("X-GitHub-Delivery", "72d3162e".to_string()),
    ];
    let a = send(&t, "github", &headers, gh_body).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(t.bus.external_events()[1].detail_type, "release");
}
