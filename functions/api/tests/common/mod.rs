//! The API test client: calls the router directly and checks every answer
//! against the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use api::{route, Answer, ApiKeys};
use mktg_core::QueueName;
use mktg_testkit::TestDeps;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn keys() -> ApiKeys {
    let h = |k: &str| hex::encode(Sha256::digest(k.as_bytes()));
    ApiKeys::parse(&format!(
        "alpha:editor:{},alpha:viewer:{},beta:owner:{}",
        h("alpha-editor-key"),
        h("alpha-viewer-key"),
        h("beta-owner-key")
    ))
    .unwrap()
}

/// The path template of the OpenAPI document a concrete path matches.
pub fn template(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["goals", _] => "/goals/{id}".into(),
        ["goals", _, leaf] => format!("/goals/{{id}}/{leaf}"),
        ["approvals", _, verb] => format!("/approvals/{{reference}}/{verb}"),
        ["escalations", _, _, "resolve"] => "/escalations/{goal}/{task}/resolve".into(),
        ["tools", _, "test"] => "/tools/{server}/test".into(),
        ["tools", _, "connection"] => "/tools/{server}/connection".into(),
        ["keys", _] => "/keys/{id}".into(),
        ["schedules", _] => "/schedules/{id}".into(),
        ["onboarding", "sample-data"] => "/onboarding/sample-data".into(),
        ["settings", "skills", _] => "/settings/skills/{skill}".into(),
        ["settings", "schedules", _] => "/settings/schedules/{id}".into(),
        ["settings", "tools", _] => "/settings/tools/{server}".into(),
        _ => format!("/{}", parts.join("/")),
    }
}

/// Every path the API serves, as the OpenAPI document names them.
pub const ROUTES: [&str; 40] = [
    "/health",
    "/openapi.json",
    "/me",
    "/goals",
    "/plan-preview",
    "/goals/{id}",
    "/goals/{id}/outputs",
    "/goals/{id}/reviews",
    "/goals/{id}/trace",
    "/goals/{id}/stream",
    "/goals/{id}/cancel",
    "/approvals",
    "/approvals/{reference}/approve",
    "/approvals/{reference}/deny",
    "/escalations",
    "/escalations/{goal}/{task}/resolve",
    "/cost",
    "/budget",
    "/billing",
    "/billing/plan",
    "/billing/customer",
    "/learnings",
    "/schedules",
    "/schedules/{id}",
    "/events",
    "/metrics",
    "/context",
    "/tools",
    "/tools/{server}/test",
    "/tools/{server}/connection",
    "/onboarding",
    "/onboarding/sample-data",
    "/auth/config",
    "/signup",
    "/keys",
    "/keys/{id}",
    "/settings",
    "/settings/skills/{skill}",
    "/settings/schedules/{id}",
    "/settings/tools/{server}",
];

pub struct Client<'a> {
    pub t: &'a TestDeps,
    pub keys: ApiKeys,
    pub doc: Value,
}

impl Client<'_> {
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        key: Option<&str>,
        body: Value,
    ) -> Answer {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let auth = key.map(|k| format!("Bearer {k}"));
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let a = route(
            &self.t.deps,
            &self.keys,
            method,
            path,
            query,
            auth.as_deref(),
            &bytes,
        )
        .await;
        // Contract: the answer's status is declared for this operation,
        // and errors have the declared shape.
        let op = &self.doc["paths"][template(path)][method.to_lowercase()];
        // An operation the document does not have answers 404 (unknown
        // path) or 405 (known path, other method).
        if !(op.is_null() && matches!(a.status, 404 | 405)) {
            assert!(
                op["responses"][a.status.to_string()].is_object(),
                "{method} {path} answered {} which the OpenAPI document does not declare",
                a.status
            );
        }
        if a.status >= 400 {
            assert!(
                a.body["code"].is_string() && a.body["message"].is_string(),
                "{}",
                a.body
            );
        }
        a
    }

    /// Runs the director on what the API queued, so the goals exist.
    pub async fn plan(&self) {
        while let Some(env) = self.t.bus.pop(QueueName::Director) {
            director::on_message(&self.t.deps, env).await.unwrap();
        }
    }
}
