//! The API through its router with memory adapters: auth and roles, the
//! tenant always from the key (another tenant's goal is not found),
//! pagination, JSON errors, and every answer declared in the OpenAPI
//! document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use api::{ApiKeys, OPENAPI};
use common::{keys, Client};
use mktg_core::{Message, QueueName};
use mktg_testkit::memory_deps;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn keys_roles_tenants_pagination_and_errors() {
    let t = memory_deps();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(OPENAPI).unwrap(),
    };
    // Open routes.
    assert_eq!(
        c.call("GET", "/health", None, Value::Null).await.status,
        200
    );
    let doc = c.call("GET", "/openapi.json", None, Value::Null).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    // No key, a wrong key.
    assert_eq!(c.call("GET", "/goals", None, Value::Null).await.status, 401);
    assert_eq!(
        c.call("GET", "/goals", Some("guess"), Value::Null)
            .await
            .status,
        401
    );
    // A viewer cannot submit.
    let no = c
        .call(
            "POST",
            "/goals",
            Some("alpha-viewer-key"),
            json!({"text": "Write a blog post"}),
        )
        .await;
    assert_eq!(
        (no.status, no.body["code"].as_str()),
        (403, Some("forbidden"))
    );
    // Bad bodies, with the reason.
    for (body, why) in [
        (json!({"text": ""}), "text must be"),
        (
            json!({"text": "x", "pipeline": "Nope"}),
            "unknown pipeline \"Nope\"",
        ),
        (json!({"text": "x", "priority": "P9"}), "P9"),
        (json!({"goal": "x"}), "not a goal"),
    ] {
        let a = c
            .call("POST", "/goals", Some("alpha-editor-key"), body)
            .await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(
            a.body["message"].as_str().unwrap().contains(why),
            "{}",
            a.body
        );
    }
    assert!(
        t.bus.pending(QueueName::Director).is_empty(),
        "nothing queued by refused requests"
    );

    // Five goals for alpha; the tenant comes from the key, whatever the body says.
    let mut ids = Vec::new();
    for i in 0..5 {
        t.clock.advance(1_000);
        let a = c
            .call(
                "POST",
                "/goals",
                Some("alpha-editor-key"),
                json!({"text": format!("Write blog post {i} about receipts")}),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        ids.push(a.body["goal_id"].as_str().unwrap().to_string());
    }
    let queued = t.bus.pending(QueueName::Director);
    assert!(queued.iter().all(
        |e| e.tenant.as_str() == "alpha" && matches!(e.message, Message::GoalSubmitted { .. })
    ));
    c.plan().await;

    // Pages of two, by cursor.
    let mut seen = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let q = if next.is_empty() {
            "/goals?limit=2".to_string()
        } else {
            format!("/goals?limit=2&cursor={next}")
        };
        let page = c
            .call("GET", &q, Some("alpha-viewer-key"), Value::Null)
            .await;
        assert_eq!(page.status, 200);
        pages += 1;
        for g in page.body["goals"].as_array().unwrap() {
            seen.push(g["id"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(cur) => next = cur.to_string(),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    let bad = c
        .call(
            "GET",
            "/goals?cursor=yesterday",
            Some("alpha-viewer-key"),
            Value::Null,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(seen, ids, "every goal once, oldest first");

    // A goal with its tasks, for its tenant only.
    let mine = c
        .call(
            "GET",
            &format!("/goals/{}", ids[0]),
            Some("alpha-viewer-key"),
            Value::Null,
        )
        .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["status"], "RUNNING");
    assert!(!mine.body["tasks"].as_array().unwrap().is_empty());
    let outputs = c
        .call(
            "GET",
            &format!("/goals/{}/outputs", ids[0]),
            Some("alpha-viewer-key"),
            Value::Null,
        )
        .await;
    assert_eq!(outputs.status, 200);
    // beta (even as owner) does not see alpha's goals.
    let theirs = c
        .call(
            "GET",
            &format!("/goals/{}", ids[0]),
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(theirs.status, 404);
    let theirs = c
        .call(
            "GET",
            &format!("/goals/{}/outputs", ids[0]),
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(theirs.status, 404);
    let list = c
        .call("GET", "/goals", Some("beta-owner-key"), Value::Null)
        .await;
    assert_eq!(list.body["goals"].as_array().unwrap().len(), 0);
    // Cost, and an unknown route.
    let cost = c
        .call("GET", "/cost", Some("beta-owner-key"), Value::Null)
        .await;
    assert_eq!(cost.status, 200);
    assert_eq!(cost.body["calls"], 0);
    let not_allowed = c
        .call("DELETE", "/goals", Some("beta-owner-key"), Value::Null)
        .await;
    assert_eq!(not_allowed.status, 405);
    assert!(not_allowed.body["message"]
        .as_str()
        .unwrap()
        .contains("allowed: GET, POST"));
    assert_eq!(
        c.call("GET", "/nowhere", Some("beta-owner-key"), Value::Null)
            .await
            .status,
        404
    );
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    let mut served = common::ROUTES.to_vec();
    served.sort_unstable();
    assert_eq!(paths, served);
}

#[test]
fn bad_key_configuration_is_refused_naming_the_entry() {
    let good = hex::encode(Sha256::digest(b"k"));
    assert!(ApiKeys::parse("").is_ok());
    let e = ApiKeys::parse(&format!("alpha:admin:{good}")).unwrap_err();
    assert!(e.contains("role \"admin\""), "{e}");
    let e = ApiKeys::parse("alpha:viewer:abc").unwrap_err();
    assert!(e.contains("64 hex digits"), "{e}");
    let e = ApiKeys::parse("alpha-viewer").unwrap_err();
    assert!(e.contains("\"alpha-viewer\""), "{e}");
    assert!(!e.contains(&good));
}

#[tokio::test]
async fn budget_shifts_are_listed_and_decided_by_editors_of_their_tenant_only() {
    let t = memory_deps();
    let c = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(OPENAPI).unwrap(),
    };
    let proposal = json!({
        "id": "shift-2026-11-30", "status": "pending", "created_ms": 1,
        "shift": {"from": "linkedin_ads", "to": "google_ads", "amount": 200.0, "from_roi": 0.9, "to_roi": 4.0,
                  "before": {"google_ads": 3000.0, "linkedin_ads": 1000.0},
                  "after": {"google_ads": 3200.0, "linkedin_ads": 800.0}},
    });
    t.deps
        .store
        .commit(
            &mktg_store::GoalKey::tenant_only("alpha".into()),
            vec![mktg_store::Write::Doc {
                tenant: "alpha".into(),
                collection: "proposals".into(),
                id: "shift-2026-11-30".into(),
                body: proposal,
                new_only: true,
                ttl: None,
            }],
        )
        .await
        .unwrap();
    let listed = c
        .call("GET", "/approvals", Some("alpha-viewer-key"), Value::Null)
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["budget_shifts"][0]["id"], "shift-2026-11-30");
    assert_eq!(listed.body["tool_calls"].as_array().unwrap().len(), 0);
    // Another tenant sees nothing and cannot decide it.
    let beta = c
        .call("GET", "/approvals", Some("beta-owner-key"), Value::Null)
        .await;
    assert!(beta.body["budget_shifts"].as_array().unwrap().is_empty());
    let no = c
        .call(
            "POST",
            "/approvals/shift-2026-11-30/approve",
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(no.status, 404, "{}", no.body);
    // A viewer cannot decide; a denial needs a reason.
    let no = c
        .call(
            "POST",
            "/approvals/shift-2026-11-30/approve",
            Some("alpha-viewer-key"),
            Value::Null,
        )
        .await;
    assert_eq!(no.status, 403);
    let no = c
        .call(
            "POST",
            "/approvals/shift-2026-11-30/deny",
            Some("alpha-editor-key"),
            json!({}),
        )
        .await;
    assert_eq!(no.status, 400);
    // The editor approves: the allocation changes once.
    let yes = c
        .call(
            "POST",
            "/approvals/shift-2026-11-30/approve",
            Some("alpha-editor-key"),
            Value::Null,
        )
        .await;
    assert_eq!(yes.status, 200, "{}", yes.body);
    assert_eq!(yes.body["status"], "approved");
    assert_eq!(yes.body["allocation"]["linkedin_ads"], 800.0);
    assert_eq!(
        t.bus.external_events().len(),
        1,
        "budget.shift_approved on the bus"
    );
    let late = c
        .call(
            "POST",
            "/approvals/shift-2026-11-30/deny",
            Some("alpha-editor-key"),
            json!({"reason": "too late"}),
        )
        .await;
    assert_eq!(late.status, 409, "{}", late.body);
    let unknown = c
        .call(
            "POST",
            "/approvals/t1.0.0.toolu_x/approve",
            Some("alpha-editor-key"),
            Value::Null,
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn sign_up_creates_a_tenant_whose_owner_makes_and_revokes_keys() {
    let t = memory_deps();
    let closed = Client {
        t: &t,
        keys: keys(),
        doc: serde_json::from_str(OPENAPI).unwrap(),
    };
    let no = closed
        .call("POST", "/signup", None, json!({"name": "Acme Co"}))
        .await;
    assert_eq!(
        (no.status, no.body["code"].as_str()),
        (403, Some("signup_closed"))
    );
    let c = Client {
        t: &t,
        keys: keys().with_signup(true),
        doc: serde_json::from_str(OPENAPI).unwrap(),
    };
    let cfg = c.call("GET", "/auth/config", None, Value::Null).await;
    assert_eq!(cfg.body["signup"], true);
    for bad in [
        json!({"name": "  "}),
        json!({"name": "Acme\nCo"}),
        json!({"name": "Acme", "tenant": "alpha"}),
        json!({}),
    ] {
        let a = c.call("POST", "/signup", None, bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    // A name with too few letters for a slug still makes a tenant.
    let odd = c.call("POST", "/signup", None, json!({"name": "!!"})).await;
    assert_eq!(odd.status, 201, "{}", odd.body);
    assert!(odd.body["tenant"].as_str().unwrap().starts_with("org-"));
    // An API key cannot sign up (a person signs up, then makes keys).
    let a = c
        .call(
            "POST",
            "/signup",
            Some("beta-owner-key"),
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(a.status, 403);

    let made = c
        .call("POST", "/signup", None, json!({"name": "Acme Co"}))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let tenant = made.body["tenant"].as_str().unwrap().to_string();
    assert!(
        tenant.starts_with("acme-co-") && tenant.len() == "acme-co-".len() + 8,
        "{tenant}"
    );
    let owner = made.body["key"].as_str().unwrap().to_string();
    assert!(owner.starts_with("mk_") && owner.len() == 67, "{owner}");
    // The same name again is another tenant: no sign-up can take one.
    let again = c
        .call("POST", "/signup", None, json!({"name": "Acme Co"}))
        .await;
    assert_ne!(again.body["tenant"], made.body["tenant"]);
    // The key is the owner of the new tenant, which sees nothing of others.
    let me = c.call("GET", "/me", Some(&owner), Value::Null).await;
    assert_eq!(me.body["tenant"], tenant.as_str());
    assert_eq!(me.body["role"], "owner");
    let goals = c.call("GET", "/goals", Some(&owner), Value::Null).await;
    assert_eq!(goals.body["goals"], json!([]));
    // Registered: the scheduler tick runs its schedules.
    let registered = mktg_boot::tenant::registered(&t.deps).await.unwrap();
    assert!(registered.iter().any(|r| r.as_str() == tenant));

    // A viewer key for a dashboard screen: shown once, listed without it.
    let viewer = c
        .call(
            "POST",
            "/keys",
            Some(&owner),
            json!({"role": "viewer", "label": "lobby screen"}),
        )
        .await;
    assert_eq!(viewer.status, 201, "{}", viewer.body);
    let viewer_key = viewer.body["key"].as_str().unwrap().to_string();
    let id = viewer.body["id"].as_str().unwrap().to_string();
    let me = c.call("GET", "/me", Some(&viewer_key), Value::Null).await;
    assert_eq!(
        (me.body["tenant"].as_str(), me.body["role"].as_str()),
        (Some(tenant.as_str()), Some("viewer"))
    );
    let no = c
        .call(
            "POST",
            "/keys",
            Some(&viewer_key),
            json!({"role": "owner", "label": "escalate"}),
        )
        .await;
    assert_eq!(no.status, 403);
    let listed = c.call("GET", "/keys", Some(&owner), Value::Null).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 2);
    assert!(
        !listed.body.to_string().contains(&viewer_key) && !listed.body.to_string().contains(&owner)
    );
    let bad = c
        .call(
            "POST",
            "/keys",
            Some(&owner),
            json!({"role": "admin", "label": "x"}),
        )
        .await;
    assert!(bad.body["message"].as_str().unwrap().contains("\"admin\""));
    // Another tenant cannot revoke it; its owner can, at once.
    let other = c
        .call(
            "DELETE",
            &format!("/keys/{id}"),
            Some("beta-owner-key"),
            Value::Null,
        )
        .await;
    assert_eq!(other.status, 404);
    let revoked = c
        .call("DELETE", &format!("/keys/{id}"), Some(&owner), Value::Null)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body["revoked_ms"].is_u64());
    let me = c.call("GET", "/me", Some(&viewer_key), Value::Null).await;
    assert_eq!(me.status, 401);
    let me = c.call("GET", "/me", Some(&owner), Value::Null).await;
    assert_eq!(me.status, 200);
    // Open sign-up is rate limited across the deployment.
    let t2 = memory_deps();
    let limited = Client {
        t: &t2,
        keys: keys().with_signup_limit(Some(2)),
        doc: serde_json::from_str(OPENAPI).unwrap(),
    };
    let mut statuses = Vec::new();
    for n in 0..3 {
        let a = limited
            .call(
                "POST",
                "/signup",
                None,
                json!({"name": format!("Team {n}")}),
            )
            .await;
        statuses.push(a.status);
    }
    assert_eq!(statuses, [201, 201, 429]);
}
