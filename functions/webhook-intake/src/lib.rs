//! Webhook intake behind a Lambda function URL: authenticates each delivery
//! with its source's secret (HMAC-SHA256; our generic format, Stripe's and
//! GitHub's), refuses replays, oversized and malformed bodies, drops
//! duplicate deliveries for 24 hours, puts the event on the bus and answers
//! 202 with the event id. Bodies and secrets are never logged.

mod verify;

pub use verify::{sign, verify, Scheme};

use lambda_http::{Body, Request, Response};
use mktg_boot::{Deps, Secret};
use mktg_core::TenantId;
use mktg_store::{GoalKey, StoreError, Write};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Largest body accepted, in bytes.
pub const MAX_BODY: usize = 256 * 1024;
/// How far a signed timestamp may be from now.
pub const REPLAY_WINDOW_SECS: i64 = 300;
/// How long a delivery id is remembered.
pub const DEDUPE_SECS: u64 = 24 * 3600;
/// The EventBridge source of webhook events.
pub const EVENT_SOURCE: &str = "mktg.webhook";

/// Per-source secrets, from `WEBHOOK_SECRET_<SOURCE>` variables.
#[derive(Clone, Debug, Default)]
pub struct WebhookSecrets(pub HashMap<String, Secret>);

impl WebhookSecrets {
    /// Collects `WEBHOOK_SECRET_<SOURCE>` (source lower-cased, `_` → `-`).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        WebhookSecrets(
            vars.into_iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("WEBHOOK_SECRET_")
                        .filter(|_| !v.is_empty())
                        .map(|s| (s.to_lowercase().replace('_', "-"), Secret(v)))
                })
                .collect(),
        )
    }
}

/// An answer: status and JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

fn reject(status: u16, code: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({"error": code, "message": message.into()}),
    }
}

/// The whole intake, free of HTTP types so it is tested directly.
pub async fn intake(
    deps: &Deps,
    secrets: &WebhookSecrets,
    tenant: &TenantId,
    source: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Answer {
    if body.len() > MAX_BODY {
        return reject(
            413,
            "body_too_large",
            format!("body is {} bytes; the limit is {MAX_BODY}", body.len()),
        );
    }
    let Some(secret) = secrets.0.get(source) else {
        return reject(
            404,
            "unknown_source",
            format!(
                "no webhook source \"{source}\" is configured (set WEBHOOK_SECRET_{})",
                source.to_uppercase().replace('-', "_")
            ),
        );
    };
    let scheme = if header("stripe-signature").is_some() {
        Scheme::Stripe
    } else if header("x-hub-signature-256").is_some() {
        Scheme::GitHub
    } else {
        Scheme::Generic
    };
    let verified = match verify(scheme, &secret.0, &header, body) {
        Ok(v) => v,
        Err(why) => {
            tracing::warn!(%source, ?scheme, %why, "webhook refused");
            return reject(401, "bad_signature", why);
        }
    };
    let now_secs = i64::try_from(deps.clock.now_ms() / 1000).unwrap_or(i64::MAX);
    if let Some(ts) = verified.timestamp {
        if (now_secs - ts).abs() > REPLAY_WINDOW_SECS {
            return reject(
                401,
                "stale_timestamp",
                format!("timestamp {ts} is more than {REPLAY_WINDOW_SECS}s from now"),
            );
        }
    }
    let payload: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(_) => return reject(400, "malformed_json", "the body must be a JSON object"),
        Err(e) => {
            return reject(
                400,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
        }
    };
    let (event_type, delivery) = match scheme {
        Scheme::GitHub => (header("x-github-event"), header("x-github-delivery")),
        _ => (
            payload
                .get("type")
                .and_then(Value::as_str)
                .map(String::from),
            header("x-mktg-delivery")
                .or_else(|| payload.get("id").and_then(Value::as_str).map(String::from)),
        ),
    };
    let Some(event_type) = event_type.filter(|t| !t.is_empty() && t.len() <= 128) else {
        return reject(
            422,
            "missing_type",
            "the event needs a \"type\" (GitHub: the X-GitHub-Event header)",
        );
    };
    let Some(delivery) = delivery.filter(|d| !d.is_empty() && d.len() <= 256) else {
        return reject(
            422,
            "missing_delivery_id",
            "the event needs an \"id\" or an x-mktg-delivery header",
        );
    };
    let event_id = format!("{source}:{delivery}");
    // At least once, deduplicated: a delivery seen before is answered as a
    // duplicate; the event goes on the bus before the delivery is
    // remembered, so a crash in between makes the sender's retry put it
    // again, and consumers key their work by the event id.
    match deps.store.claimed(tenant, "webhook", &event_id).await {
        Ok(true) => {
            return Answer {
                status: 200,
                body: json!({"status": "duplicate", "event_id": event_id}),
            }
        }
        Ok(false) => {}
        Err(e) => return reject(503, "unavailable", format!("try again later: {e}")),
    }
    let detail = json!({"id": event_id, "tenant": tenant, "source": source, "type": event_type, "received_ms": deps.clock.now_ms(), "data": payload});
    if let Err(e) = deps
        .bus
        .put_external(EVENT_SOURCE, &event_type, &detail.to_string())
        .await
    {
        tracing::error!(%source, error = %e, "could not put the event on the bus");
        return reject(
            503,
            "unavailable",
            "the event bus is unavailable; retry the delivery",
        );
    }
    let expires_at = u64::try_from(now_secs).unwrap_or(0) + DEDUPE_SECS;
    let claim = Write::Claim {
        tenant: tenant.clone(),
        kind: "webhook".into(),
        key: event_id.clone(),
        expires_at,
    };
    match deps
        .store
        .commit(&GoalKey::tenant_only(tenant.clone()), vec![claim])
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not remember the delivery; a redelivery will be put again")
        }
    }
    tracing::info!(%source, %event_type, %event_id, "webhook accepted");
    Answer {
        status: 202,
        body: json!({"status": "accepted", "event_id": event_id}),
    }
}

/// Lambda entry point (function URL). The source is the last path segment,
/// e.g. POST /stripe.
pub async fn handle(
    deps: &Deps,
    secrets: &WebhookSecrets,
    tenant: &TenantId,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let source = request
        .uri()
        .path()
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let headers = request.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let answer = if request.method() != lambda_http::http::Method::POST {
        reject(405, "method_not_allowed", "send webhooks with POST")
    } else {
        intake(
            deps,
            secrets,
            tenant,
            &source,
            header,
            request.body().as_ref(),
        )
        .await
    };
    Ok(Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Body::Text(answer.body.to_string()))?)
}
