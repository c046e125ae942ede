//! The REST API, first slice: health, the OpenAPI document, goals (submit,
//! list with pagination, get with its tasks), a goal's outputs, the
//! month's cost, and approvals (tool calls and budget shifts: list, approve,
//! deny). Every other route answers 404 with a JSON error.
//!
//! Auth: `Authorization: Bearer <key>`. Keys are configured as
//! `MKTG_API_KEYS=tenant:role:sha256hex,...` (the SHA-256 of each key, so
//! the environment holds no key). The tenant of every read and write is the
//! key's, never one from the path or the body. Roles: `viewer` reads,
//! `editor` also submits, `owner` may do everything.

use lambda_http::{Body, Request, Response};
use mktg_actions::approvals::{self, ApprovalError};
use mktg_boot::Deps;
use mktg_core::{Envelope, GoalId, Message, Priority, TenantId};
use mktg_store::GoalKey;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The OpenAPI document, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Largest page of `GET /goals`.
pub const MAX_PAGE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Editor,
    Owner,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub role: Role,
}

/// The configured keys: SHA-256 of the key → principal.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys(Vec<(String, Principal)>);

impl ApiKeys {
    /// Parses `tenant:role:sha256hex,...`; an entry that does not parse is
    /// an error naming it (the function does not start half-configured).
    pub fn parse(spec: &str) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = entry.split(':').collect();
            let [tenant, role, hash] = parts.as_slice() else {
                return Err(format!(
                    "MKTG_API_KEYS entry \"{entry}\" is not tenant:role:sha256hex"
                ));
            };
            let role = match *role {
                "viewer" => Role::Viewer,
                "editor" => Role::Editor,
                "owner" => Role::Owner,
                other => {
                    return Err(format!(
                        "MKTG_API_KEYS entry for tenant {tenant}: role \"{other}\" is not viewer, editor or owner"
                    ))
                }
            };
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "MKTG_API_KEYS entry for tenant {tenant}: the hash must be 64 hex digits (sha256 of the key)"
                ));
            }
            if !mktg_core::ids::is_valid_id(tenant) {
                return Err(format!(
                    "MKTG_API_KEYS: tenant \"{tenant}\" is not a valid id"
                ));
            }
            keys.push((
                hash.to_lowercase(),
                Principal {
                    tenant: TenantId::new(*tenant),
                    role,
                },
            ));
        }
        Ok(ApiKeys(keys))
    }

    /// The principal a presented key stands for. The comparison is of
    /// hashes, so timing reveals nothing about a key.
    pub fn principal(&self, key: &str) -> Option<Principal> {
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        self.0
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, p)| p.clone())
    }
}

/// An answer: status and JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

fn ok(status: u16, body: Value) -> Answer {
    Answer { status, body }
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({"code": code, "message": message.into()}),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGoal {
    text: String,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    priority: Option<String>,
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The whole API, free of HTTP types so it is tested directly.
pub async fn route(
    deps: &Deps,
    keys: &ApiKeys,
    method: &str,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (method, segments.as_slice()) {
        ("GET", ["health"]) => return ok(200, json!({"status": "ok"})),
        ("GET", ["openapi.json"]) => {
            return ok(200, serde_json::from_str(OPENAPI).unwrap_or(Value::Null))
        }
        _ => {}
    }
    let Some(principal) = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|k| keys.principal(k.trim()))
    else {
        return error(401, "unauthorized", "send Authorization: Bearer <API key>");
    };
    let tenant = &principal.tenant;
    let needs = |role: Role| -> Option<Answer> {
        (principal.role < role).then(|| {
            error(
                403,
                "forbidden",
                format!("this key's role cannot do that; it needs {role:?} or above"),
            )
        })
    };
    match (method, segments.as_slice()) {
        ("GET", ["goals"]) => {
            let limit = query_param(query, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(20)
                .clamp(1, MAX_PAGE);
            // The cursor is the last goal's place in creation order,
            // `{created_ms}.{goal id}`: goals created in the same
            // millisecond are neither skipped nor repeated.
            let after = match query_param(query, "cursor") {
                None => String::new(),
                Some(c) => match c.split_once('.') {
                    Some((ms, goal))
                        if !ms.is_empty()
                            && ms.bytes().all(|b| b.is_ascii_digit())
                            && mktg_core::ids::is_valid_id(goal) =>
                    {
                        mktg_store::keys::goals_by_tenant_sk(
                            ms.parse().unwrap_or(0),
                            &GoalId::new(goal),
                        )
                    }
                    _ => {
                        return error(
                            400,
                            "bad_request",
                            format!("cursor \"{c}\" is not a next_cursor this API gave"),
                        )
                    }
                },
            };
            match deps.store.goals_after(tenant, &after, limit).await {
                Ok(page) => {
                    let next = (page.len() == limit)
                        .then(|| {
                            page.last()
                                .map(|g| format!("{:013}.{}", g.created_ms, g.id))
                        })
                        .flatten();
                    ok(
                        200,
                        json!({
                            "goals": page.iter().map(|g| json!({
                                "id": g.id, "text": g.text, "status": g.status.to_string(),
                                "pipeline": g.pipeline, "priority": g.priority.to_string(),
                                "created_ms": g.created_ms,
                            })).collect::<Vec<_>>(),
                            "next_cursor": next,
                        }),
                    )
                }
                Err(e) => error(503, "unavailable", format!("try again: {e}")),
            }
        }
        ("POST", ["goals"]) => {
            if let Some(no) = needs(Role::Editor) {
                return no;
            }
            let new: NewGoal = match serde_json::from_slice(body) {
                Ok(n) => n,
                Err(e) => return error(400, "bad_request", format!("the body is not a goal: {e}")),
            };
            if new.text.trim().is_empty() || new.text.len() > 4_000 {
                return error(400, "bad_request", "text must be 1 to 4,000 characters");
            }
            if let Some(p) = &new.pipeline {
                if deps.config.pipeline(p).is_none() {
                    return error(400, "bad_request", format!("unknown pipeline \"{p}\""));
                }
            }
            let priority = match new.priority.as_deref() {
                None => Priority::default(),
                Some(p) => match Priority::parse(p) {
                    Some(p) => p,
                    None => {
                        return error(400, "bad_request", format!("priority \"{p}\" is not P0-P3"))
                    }
                },
            };
            let id = GoalId::new(format!(
                "g-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ));
            let env = Envelope::new(
                tenant.clone(),
                id.clone(),
                Message::GoalSubmitted {
                    text: new.text,
                    pipeline: new.pipeline,
                    priority,
                    source: None,
                    submitted_ms: deps.clock.now_ms(),
                },
            );
            match deps.bus.send(&env).await {
                Ok(()) => ok(202, json!({"goal_id": id, "status": "submitted"})),
                Err(e) => error(503, "unavailable", format!("the goal was not queued: {e}")),
            }
        }
        ("GET", ["goals", id]) | ("GET", ["goals", id, "outputs"]) => {
            let key = GoalKey::new(tenant.clone(), GoalId::new(*id));
            let state = match deps.store.goal_state(&key).await {
                Ok(s) => s,
                Err(e) => return error(503, "unavailable", format!("try again: {e}")),
            };
            let Some(goal) = state.goal else {
                return error(404, "not_found", format!("no goal \"{id}\""));
            };
            if segments.len() == 3 {
                return ok(
                    200,
                    json!({"outputs": state.outputs.iter().map(|o| json!({
                        "task": o.task, "skill": o.skill, "revision": o.revision,
                        "body": o.body, "scripted": o.scripted,
                    })).collect::<Vec<_>>()}),
                );
            }
            ok(
                200,
                json!({
                    "id": goal.id, "text": goal.text, "status": goal.status.to_string(),
                    "reason": goal.reason, "pipeline": goal.pipeline,
                    "tasks": state.tasks.iter().map(|t| json!({
                        "id": t.id, "skill": t.skill, "status": t.status.to_string(),
                        "revision": t.revision, "deps": t.deps,
                    })).collect::<Vec<_>>(),
                    "cost_usd": state.cost.micros as f64 / 1e6,
                }),
            )
        }
        ("GET", ["approvals"]) => {
            let calls = approvals::list(deps, tenant).await;
            let shifts = approvals::pending_shifts(deps, tenant).await;
            match (calls, shifts) {
                (Ok(calls), Ok(shifts)) => ok(
                    200,
                    json!({
                        "tool_calls": calls.iter().map(|a| json!({
                            "reference": a.reference, "tool": a.tool, "effect": a.effect,
                            "goal": a.goal, "task": a.task, "input": a.input, "at_ms": a.at_ms,
                        })).collect::<Vec<_>>(),
                        "budget_shifts": shifts,
                    }),
                ),
                (Err(e), _) | (_, Err(e)) => error(503, "unavailable", format!("try again: {e}")),
            }
        }
        ("POST", ["approvals", reference, verb @ ("approve" | "deny")]) => {
            if let Some(no) = needs(Role::Editor) {
                return no;
            }
            let approve = *verb == "approve";
            let reason = if approve {
                String::new()
            } else {
                match serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|b| b["reason"].as_str().map(str::trim).map(String::from))
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => r,
                    None => {
                        return error(
                            400,
                            "bad_request",
                            "a denial needs {\"reason\": \"...\"}, which the agent reads",
                        )
                    }
                }
            };
            let by = format!("api key ({} {:?})", tenant, principal.role);
            let decided = if approvals::is_shift(reference) {
                approvals::decide_shift(deps, tenant, reference, approve, &by, &reason)
                    .await
                    .map(|p| json!({"reference": reference, "status": p["status"], "allocation": p["shift"]["after"]}))
            } else if approve {
                approvals::approve(deps, tenant, reference, &by)
                    .await
                    .map(|c| json!({"reference": c.reference(), "status": c.status.to_string()}))
            } else {
                approvals::deny(deps, tenant, reference, &by, &reason)
                    .await
                    .map(|c| json!({"reference": c.reference(), "status": c.status.to_string()}))
            };
            match decided {
                Ok(body) => ok(200, body),
                Err(e @ ApprovalError::NotPending { .. }) => error(404, "not_found", e.to_string()),
                Err(e @ (ApprovalError::Raced(_) | ApprovalError::Handler(_))) => {
                    error(409, "conflict", e.to_string())
                }
                Err(e @ ApprovalError::Store(_)) => error(503, "unavailable", e.to_string()),
            }
        }
        ("GET", ["cost"]) => {
            let month = mktg_boot::month_of(deps.clock.now_ms());
            match deps.store.costs(tenant, &month).await {
                Ok(rows) => {
                    let total = rows
                        .iter()
                        .find(|(k, _)| k == "TOTAL")
                        .map(|(_, t)| *t)
                        .unwrap_or_default();
                    ok(
                        200,
                        json!({"month": month, "usd": total.micros as f64 / 1e6, "calls": total.calls,
                               "input_tokens": total.input_tokens, "output_tokens": total.output_tokens}),
                    )
                }
                Err(e) => error(503, "unavailable", format!("try again: {e}")),
            }
        }
        _ => error(404, "not_found", format!("no route {method} {path}")),
    }
}

/// Lambda entry point (function URL).
pub async fn handle(
    deps: &Deps,
    keys: &ApiKeys,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let answer = route(
        deps,
        keys,
        request.method().as_str(),
        request.uri().path(),
        request.uri().query().unwrap_or_default(),
        authorization.as_deref(),
        request.body().as_ref(),
    )
    .await;
    Ok(Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Body::Text(answer.body.to_string()))?)
}
