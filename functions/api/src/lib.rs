//! The REST API and the dashboard it serves: goals (submit, plan preview
//! with a cost forecast, list, get, cancel), tasks, outputs, reviews,
//! traces and their live stream, approvals and escalations, cost, budget
//! and billing, learnings, schedules, events, metrics, the product context,
//! tool connections, health, and the OpenAPI document.
//!
//! Auth: `Authorization: Bearer <key>`. Keys are configured as
//! `MKTG_API_KEYS=tenant:role:sha256hex,...` (the SHA-256 of each key, so
//! the environment holds no key). The tenant of every read and write is the
//! key's, never one from the path or the body. Roles: `viewer` reads,
//! `editor` also submits, cancels and decides, `owner` also sets the budget
//! and the plan.
//!
//! `route` is the JSON API, free of HTTP types so tests call it directly;
//! `serve` adds the static dashboard and the event stream; `handle` is the
//! Lambda (function URL) entry point and `mktg serve` the local one.

pub mod accounts;
pub mod connections;
pub mod oidc;
pub mod stream;
pub mod web;

use lambda_http::{Body, Request, Response};
use mktg_actions::approvals::{self, ApprovalError};
use mktg_actions::ActionError;
use mktg_boot::context::ProductContext;
use mktg_boot::Deps;
use mktg_core::{Envelope, GoalId, Message, Priority, Resolution, TaskStatus, TenantId};
use mktg_store::GoalKey;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The OpenAPI document, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Largest page of `GET /goals`.
pub const MAX_PAGE: usize = 100;

/// Sign-ups an hour across a deployment whose sign-up is open, unless
/// `MKTG_SIGNUPS_PER_HOUR` says otherwise.
pub const SIGNUPS_PER_HOUR: u32 = 30;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Editor,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub role: Role,
    /// `api_key` or `oidc`.
    pub via: &'static str,
    /// Who signed in (an ID token's email or subject), for the record.
    pub who: Option<String>,
}

/// Who may call: the configured API keys (SHA-256 of the key → principal),
/// and the OpenID Connect provider people sign in with, if one is set.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys(
    Vec<(String, Principal)>,
    Option<std::sync::Arc<oidc::Oidc>>,
    /// Sign-ups an hour, when sign-up is open.
    Option<u32>,
);

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
            let Some(role) = Role::parse(role) else {
                return Err(format!(
                    "MKTG_API_KEYS entry for tenant {tenant}: role \"{role}\" is not viewer, editor or owner"
                ));
            };
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "MKTG_API_KEYS entry for tenant {tenant}: the hash must be 64 hex digits (sha256 of the key)"
                ));
            }
            if *tenant == mktg_boot::tenant::REGISTRY {
                return Err(format!(
                    "MKTG_API_KEYS: \"{tenant}\" is reserved for the tenant registry"
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
                    via: "api_key",
                    who: None,
                },
            ));
        }
        Ok(ApiKeys(keys, None, None))
    }

    /// These keys, and ID tokens of this provider.
    pub fn with_oidc(mut self, oidc: oidc::Oidc) -> ApiKeys {
        self.1 = Some(std::sync::Arc::new(oidc));
        self
    }

    pub fn oidc(&self) -> Option<&oidc::Oidc> {
        self.1.as_deref()
    }

    /// Whether anyone may sign up (create a tenant), at most
    /// [`SIGNUPS_PER_HOUR`] an hour.
    pub fn with_signup(self, open: bool) -> ApiKeys {
        self.with_signup_limit(open.then_some(SIGNUPS_PER_HOUR))
    }

    /// Sign-up open with this many sign-ups an hour, or closed (`None`).
    pub fn with_signup_limit(mut self, per_hour: Option<u32>) -> ApiKeys {
        self.2 = per_hour;
        self
    }

    pub fn signup_open(&self) -> bool {
        self.2.is_some()
    }

    pub fn signup_per_hour(&self) -> u32 {
        self.2.unwrap_or(0)
    }

    /// `MKTG_SIGNUP`: `open`, or `closed` (the default); with
    /// `MKTG_SIGNUPS_PER_HOUR` (default [`SIGNUPS_PER_HOUR`]).
    pub fn signup_from_env() -> Result<Option<u32>, String> {
        let open = match std::env::var("MKTG_SIGNUP").as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("closed") => false,
            Ok("open") => true,
            Ok(other) => return Err(format!("MKTG_SIGNUP is \"{other}\"; use open or closed")),
        };
        let per_hour = match std::env::var("MKTG_SIGNUPS_PER_HOUR") {
            Err(_) => SIGNUPS_PER_HOUR,
            Ok(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("MKTG_SIGNUPS_PER_HOUR is \"{v}\"; use a whole number above 0")
            })?,
        };
        Ok(open.then_some(per_hour))
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

    /// The `MKTG_API_KEYS` entry for `key`.
    pub fn entry(tenant: &str, role: Role, key: &str) -> String {
        format!(
            "{tenant}:{}:{}",
            role.as_str(),
            hex::encode(Sha256::digest(key.as_bytes()))
        )
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

fn unavailable(e: impl std::fmt::Display) -> Answer {
    error(503, "unavailable", format!("try again: {e}"))
}

fn action_error(e: ActionError) -> Answer {
    match e {
        ActionError::Invalid(m) => error(400, "bad_request", m),
        ActionError::NotFound(m) => error(404, "not_found", m),
        ActionError::Conflict(m) => error(409, "conflict", m),
        ActionError::Unavailable(m) => error(503, "unavailable", m),
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

/// A goal as submitted or previewed, checked.
struct GoalRequest {
    text: String,
    pipeline: Option<String>,
    priority: Priority,
}

fn goal_request(deps: &Deps, body: &[u8]) -> Result<GoalRequest, Answer> {
    let new: NewGoal = parse(body, "a goal")?;
    if new.text.trim().is_empty() || new.text.chars().count() > 4_000 {
        return Err(error(
            400,
            "bad_request",
            "text must be 1 to 4,000 characters",
        ));
    }
    if let Some(p) = &new.pipeline {
        if deps.config.pipeline(p).is_none() {
            return Err(error(
                400,
                "bad_request",
                format!("unknown pipeline \"{p}\""),
            ));
        }
    }
    let priority = match new.priority.as_deref() {
        None => Priority::default(),
        Some(p) => Priority::parse(p)
            .ok_or_else(|| error(400, "bad_request", format!("priority \"{p}\" is not P0-P3")))?,
    };
    Ok(GoalRequest {
        text: new.text,
        pipeline: new.pipeline,
        priority,
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Answer> {
    serde_json::from_slice(body)
        .map_err(|e| error(400, "bad_request", format!("the body is not {what}: {e}")))
}

/// A query parameter, decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Who a request is from: its bearer API key's principal, or the signed-in
/// person's (an ID token of the configured OIDC provider).
pub async fn authenticate(
    deps: &Deps,
    keys: &ApiKeys,
    authorization: Option<&str>,
) -> Result<Principal, Answer> {
    let Some(bearer) = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(error(
            401,
            "unauthorized",
            "send Authorization: Bearer <API key or ID token>",
        ));
    };
    if let Some(p) = keys.principal(bearer) {
        return Ok(p);
    }
    // A JWT has three dot-separated parts; an API key has none.
    match keys.oidc() {
        Some(oidc) if bearer.split('.').count() == 3 => {
            let id = oidc
                .identity(bearer)
                .await
                .map_err(|why| error(401, "unauthorized", why))?;
            if id.tenant.is_some() {
                return oidc
                    .principal_of(id)
                    .map_err(|why| error(401, "unauthorized", why));
            }
            // No tenant claim: the tenant this person signed up.
            match accounts::member(deps, &id).await {
                Ok(Some(p)) => Ok(p),
                Ok(None) => Err(error(401, "no_tenant", oidc.no_tenant(&id.who))),
                Err(e) => Err(unavailable(e)),
            }
        }
        _ => match accounts::stored_key(deps, bearer).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(error(
                401,
                "unauthorized",
                "that API key is not valid (send Authorization: Bearer <API key or ID token>)",
            )),
            Err(e) => Err(unavailable(e)),
        },
    }
}

/// The whole JSON API, free of HTTP types so it is tested directly.
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
        ("GET", ["openapi.json"]) => return ok(200, openapi(deps)),
        ("GET", ["auth", "config"]) => {
            return ok(
                200,
                json!({"oidc": keys.oidc().map(oidc::Oidc::public_config), "signup": keys.signup_open()}),
            )
        }
        ("POST", ["signup"]) => {
            if body.len() > MAX_BODY {
                return error(413, "body_too_large", "the body is too large");
            }
            return accounts::signup(deps, keys, authorization, body).await;
        }
        _ => {}
    }
    if let Some(allowed) = allowed_methods(&segments) {
        if !allowed.contains(&method) {
            return error(
                405,
                "method_not_allowed",
                format!(
                    "{method} is not allowed on {path}; allowed: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    let principal = match authenticate(deps, keys, authorization).await {
        Ok(p) => p,
        Err(a) => return a,
    };
    if body.len() > MAX_BODY {
        return error(
            413,
            "body_too_large",
            format!("the body is {} bytes; at most {MAX_BODY}", body.len()),
        );
    }
    let tenant = &principal.tenant;
    let needs = |role: Role| -> Option<Answer> {
        (principal.role < role).then(|| {
            error(
                403,
                "forbidden",
                format!(
                    "this key's role ({}) cannot do that; it needs {} or above",
                    principal.role.as_str(),
                    role.as_str()
                ),
            )
        })
    };
    let by = match &principal.who {
        Some(who) => format!("{who} (signed in, {tenant} {})", principal.role.as_str()),
        None => format!("api key ({tenant} {})", principal.role.as_str()),
    };
    macro_rules! need {
        ($role:expr) => {
            if let Some(no) = needs($role) {
                return no;
            }
        };
    }
    macro_rules! try_answer {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(a) => return a,
            }
        };
    }
    match (method, segments.as_slice()) {
        ("GET", ["me"]) => ok(
            200,
            json!({"tenant": tenant, "role": principal.role.as_str(), "auth": principal.via}),
        ),
        ("GET", ["goals"]) => list_goals(deps, tenant, query).await,
        ("POST", ["goals"]) => {
            need!(Role::Editor);
            let new = try_answer!(goal_request(deps, body));
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
                    priority: new.priority,
                    source: None,
                    submitted_ms: deps.clock.now_ms(),
                },
            );
            // The tick runs the schedules of registered tenants.
            if let Err(e) = mktg_boot::tenant::register(deps, tenant).await {
                return unavailable(e);
            }
            match deps.bus.send(&env).await {
                Ok(()) => ok(202, json!({"goal_id": id, "status": "submitted"})),
                Err(e) => error(503, "unavailable", format!("the goal was not queued: {e}")),
            }
        }
        ("POST", ["plan-preview"]) => {
            need!(Role::Editor);
            let new = try_answer!(goal_request(deps, body));
            match mktg_actions::forecast::forecast(
                deps,
                tenant,
                &new.text,
                new.pipeline.as_deref(),
                new.priority,
            )
            .await
            {
                Ok(f) => ok(200, serde_json::to_value(f).unwrap_or_default()),
                Err(e) => action_error(e),
            }
        }
        ("GET", ["goals", id, rest @ ..]) if rest.len() <= 1 => {
            let key = GoalKey::new(tenant.clone(), GoalId::new(*id));
            let state = match deps.store.goal_state(&key).await {
                Ok(s) => s,
                Err(e) => return unavailable(e),
            };
            let Some(goal) = state.goal else {
                return error(404, "not_found", format!("no goal \"{id}\""));
            };
            match rest {
                [] => ok(
                    200,
                    json!({
                        "id": goal.id, "text": goal.text, "status": goal.status.to_string(),
                        "reason": goal.reason, "pipeline": goal.pipeline,
                        "priority": goal.priority.to_string(), "created_ms": goal.created_ms,
                        "tasks": state.tasks.iter().map(|t| json!({
                            "id": t.id, "skill": t.skill, "status": t.status.to_string(),
                            "revision": t.revision, "deps": t.deps, "reason": t.reason,
                        })).collect::<Vec<_>>(),
                        "cost_usd": state.cost.micros as f64 / 1e6,
                    }),
                ),
                ["outputs"] => ok(
                    200,
                    json!({"outputs": state.outputs.iter().map(|o| json!({
                        "task": o.task, "skill": o.skill, "revision": o.revision,
                        "body": o.body, "scripted": o.scripted,
                    })).collect::<Vec<_>>()}),
                ),
                ["reviews"] => ok(
                    200,
                    json!({"reviews": state.reviews.iter().map(|r| json!({
                        "task": r.task, "revision": r.revision, "reviewer": r.reviewer,
                        "decision": r.decision.to_string(), "summary": r.summary,
                        "overall": r.overall, "scores": r.scores,
                        "findings": r.findings,
                        "at_ms": r.at_ms,
                    })).collect::<Vec<_>>()}),
                ),
                ["trace"] => ok(
                    200,
                    json!({"trace": state.traces.iter().map(stream::trace_json).collect::<Vec<_>>()}),
                ),
                _ => error(404, "not_found", format!("no route {method} {path}")),
            }
        }
        ("POST", ["goals", id, "cancel"]) => {
            need!(Role::Editor);
            #[derive(Deserialize, Default)]
            #[serde(deny_unknown_fields)]
            struct Cancel {
                #[serde(default)]
                reason: Option<String>,
            }
            let cancel: Cancel = if body.iter().all(u8::is_ascii_whitespace) {
                Cancel::default()
            } else {
                try_answer!(parse(body, "{\"reason\": \"...\"} or empty"))
            };
            let reason = cancel.reason.unwrap_or_default();
            match mktg_actions::human::cancel(deps, tenant, id, &by, &reason).await {
                Ok(goal) => ok(202, json!({"goal_id": goal, "status": "cancelling"})),
                Err(e) => action_error(e),
            }
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
                (Err(e), _) | (_, Err(e)) => unavailable(e),
            }
        }
        ("POST", ["approvals", reference, verb @ ("approve" | "deny")]) => {
            need!(Role::Editor);
            decide_approval(deps, tenant, &by, reference, *verb == "approve", body).await
        }
        ("GET", ["escalations"]) => {
            match mktg_actions::views::escalations(deps, tenant, 50).await {
                Ok(list) => ok(200, json!({"escalations": list})),
                Err(e) => action_error(e),
            }
        }
        ("POST", ["escalations", goal, task, "resolve"]) => {
            need!(Role::Editor);
            resolve_escalation(deps, tenant, &by, goal, task, body).await
        }
        ("GET", ["cost"]) => match mktg_actions::views::cost(deps, tenant).await {
            Ok(v) => ok(200, v),
            Err(e) => action_error(e),
        },
        ("GET", ["budget"]) => budget_answer(deps, tenant).await,
        ("PUT", ["budget"]) => {
            need!(Role::Owner);
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct SetBudget {
                monthly_usd: f64,
                #[serde(default)]
                per_goal_usd: Option<f64>,
            }
            let set: SetBudget = try_answer!(parse(body, "a budget"));
            if let Err(e) =
                mktg_actions::budget::set(deps, tenant, set.monthly_usd, set.per_goal_usd).await
            {
                return action_error(e);
            }
            budget_answer(deps, tenant).await
        }
        ("GET", ["billing"]) => billing_answer(deps, tenant).await,
        ("PUT", ["billing", "plan"]) => {
            need!(Role::Owner);
            let plan: Value = try_answer!(parse(body, "{\"plan\": \"...\"}"));
            let Some(name) = plan["plan"].as_str() else {
                return error(400, "bad_request", "send {\"plan\": \"<plan name>\"}");
            };
            if let Err(e) = mktg_actions::budget::set_plan(deps, tenant, name).await {
                return action_error(e);
            }
            billing_answer(deps, tenant).await
        }
        ("PUT", ["billing", "customer"]) => {
            need!(Role::Owner);
            let c: Value = try_answer!(parse(body, "{\"customer\": \"cus_...\"}"));
            let Some(customer) = c["customer"].as_str() else {
                return error(400, "bad_request", "send {\"customer\": \"cus_...\"}");
            };
            if let Err(e) = mktg_actions::billing::set_customer(deps, tenant, customer).await {
                return action_error(e.into());
            }
            billing_answer(deps, tenant).await
        }
        ("GET", ["learnings"]) => match mktg_actions::views::learnings(deps, tenant).await {
            Ok(v) => ok(200, v),
            Err(e) => action_error(e),
        },
        ("GET", ["schedules"]) => {
            let own = match mktg_boot::tenant::load(deps, tenant).await {
                Ok(o) => o,
                Err(e) => return unavailable(e),
            };
            let list =
                mktg_actions::views::schedules(&deps.config, Some(&own), chrono_now(deps), 3);
            ok(200, json!({ "schedules": list }))
        }
        ("PUT", ["schedules", id]) => {
            need!(Role::Editor);
            let schedule: mktg_boot::tenant::OwnSchedule = try_answer!(parse(
                body,
                "{\"name\", \"cron\", \"timezone\", \"priority\", and \"goal\" or \"pipeline\"}"
            ));
            match mktg_actions::schedules::put(deps, tenant, id, schedule).await {
                Ok(()) => own_schedule_answer(deps, tenant, id).await,
                Err(e) => action_error(e),
            }
        }
        ("DELETE", ["schedules", id]) => {
            need!(Role::Editor);
            match mktg_actions::schedules::delete(deps, tenant, id).await {
                Ok(()) => ok(200, json!({"id": id, "deleted": true})),
                Err(e) => action_error(e),
            }
        }
        ("GET", ["events"]) => ok(
            200,
            json!({"mappings": mktg_actions::views::events(&deps.config)}),
        ),
        ("GET", ["metrics"]) => match mktg_actions::views::metrics(deps, tenant).await {
            Ok(v) => ok(200, json!({"metrics": v})),
            Err(e) => action_error(e),
        },
        ("GET", ["context"]) => match mktg_boot::tenant::load(deps, tenant).await {
            Ok(own) => ok(
                200,
                json!({"context": own.context, "updated_ms": own.context_updated_ms}),
            ),
            Err(e) => unavailable(e),
        },
        ("PUT", ["context"]) => {
            need!(Role::Editor);
            let context: ProductContext = try_answer!(parse(body, "a product context"));
            if let Err(why) = context.validate() {
                return error(400, "bad_request", why);
            }
            match mktg_boot::context::save(deps, tenant, &context, &by).await {
                Ok(()) => ok(
                    200,
                    json!({"context": context, "updated_ms": deps.clock.now_ms()}),
                ),
                Err(e) => unavailable(e),
            }
        }
        ("GET", ["settings"]) => settings_answer(deps, tenant).await,
        ("PUT", ["settings", kind @ ("skills" | "schedules" | "tools"), name]) => {
            need!(Role::Owner);
            if let Err(a) = put_setting(deps, tenant, &by, kind, name, body).await {
                return a;
            }
            settings_answer(deps, tenant).await
        }
        ("GET", ["onboarding"]) => onboarding(deps, tenant).await,
        ("POST", ["onboarding", "sample-data"]) => {
            need!(Role::Editor);
            match mktg_actions::sample::load(deps, tenant).await {
                Ok(loaded) => ok(200, serde_json::to_value(loaded).unwrap_or_default()),
                Err(e) => action_error(e),
            }
        }
        ("GET", ["tools"]) => {
            let servers = match mktg_boot::tenant::load(deps, tenant).await {
                Ok(own) => connections::tool_servers(deps, &own),
                Err(e) => return unavailable(e),
            };
            ok(200, json!({ "servers": servers }))
        }
        ("POST", ["tools", server, "test"]) => {
            need!(Role::Editor);
            connections::test(deps, tenant, server).await
        }
        ("GET", ["keys"]) => {
            need!(Role::Owner);
            accounts::list(deps, tenant).await
        }
        ("POST", ["keys"]) => {
            need!(Role::Owner);
            accounts::create(deps, tenant, &by, body).await
        }
        ("DELETE", ["keys", id]) => {
            need!(Role::Owner);
            accounts::revoke(deps, tenant, id).await
        }
        ("PUT", ["tools", server, "connection"]) => {
            need!(Role::Owner);
            connections::connect(deps, tenant, &by, server, body).await
        }
        ("DELETE", ["tools", server, "connection"]) => {
            need!(Role::Owner);
            connections::disconnect(deps, tenant, server).await
        }
        _ => error(404, "not_found", format!("no route {method} {path}")),
    }
}

/// One of the tenant's own schedules as `GET /schedules` shows it.
async fn own_schedule_answer(deps: &Deps, tenant: &TenantId, id: &str) -> Answer {
    let own = match mktg_boot::tenant::load(deps, tenant).await {
        Ok(o) => o,
        Err(e) => return unavailable(e),
    };
    mktg_actions::views::schedules(&deps.config, Some(&own), chrono_now(deps), 3)
        .into_iter()
        .find(|s| s.own && s.id == id)
        .map_or_else(
            || error(404, "not_found", format!("no schedule \"{id}\"")),
            |v| ok(200, serde_json::to_value(v).unwrap_or_default()),
        )
}

/// The OpenAPI document as this deployment serves it: the pipelines, plans
/// and model tiers of its configuration are the values those fields accept.
pub fn openapi(deps: &Deps) -> Value {
    let mut doc: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
    let pipelines: Vec<&str> = deps
        .config
        .pipelines
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut accepted: Vec<Value> = pipelines.into_iter().map(Value::from).collect();
    accepted.push(Value::Null);
    doc["components"]["schemas"]["NewGoal"]["properties"]["pipeline"] = json!({ "enum": accepted });
    let plans: Vec<&str> = deps
        .config
        .budget
        .billing
        .plans
        .keys()
        .map(String::as_str)
        .collect();
    doc["paths"]["/billing/plan"]["put"]["requestBody"]["content"]["application/json"]["schema"]
        ["properties"]["plan"] = json!({"enum": plans});
    let mut tiers: Vec<Value> = deps.config.models.tiers.keys().map(|t| json!(t)).collect();
    tiers.push(Value::Null);
    doc["paths"]["/settings/skills/{skill}"]["put"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["tier"] = json!({ "enum": tiers });
    doc
}

/// The methods a known path allows, from the OpenAPI document; `None` for
/// a path it does not have.
fn allowed_methods(segments: &[&str]) -> Option<Vec<&'static str>> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| serde_json::from_str(OPENAPI).unwrap_or(Value::Null));
    let paths = doc["paths"].as_object()?;
    for (template, ops) in paths {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(segments)
                .all(|(p, s)| p.starts_with('{') || p == s);
        if matches {
            let methods = ops.as_object()?;
            return Some(
                ["GET", "POST", "PUT", "DELETE", "PATCH"]
                    .into_iter()
                    .filter(|m| methods.contains_key(&m.to_lowercase()))
                    .collect(),
            );
        }
    }
    None
}

fn chrono_now(deps: &Deps) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(deps.clock.now_ms()).unwrap_or(0))
        .unwrap_or_default()
}

async fn list_goals(deps: &Deps, tenant: &TenantId, query: &str) -> Answer {
    let limit = match query_param(query, "limit").as_deref() {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    400,
                    "bad_request",
                    format!("limit \"{l}\" is not a number from 1 to {MAX_PAGE}"),
                )
            }
        },
    };
    // The cursor is the last goal's place in creation order,
    // `{created_ms}.{goal id}`: goals created in the same millisecond are
    // neither skipped nor repeated.
    let after = match query_param(query, "cursor").as_deref() {
        None => String::new(),
        Some(c) => match c.split_once('.') {
            Some((ms, goal))
                if !ms.is_empty()
                    && ms.len() <= 13
                    && ms.bytes().all(|b| b.is_ascii_digit())
                    && mktg_core::ids::is_valid_id(goal) =>
            {
                mktg_store::keys::goals_by_tenant_sk(ms.parse().unwrap_or(0), &GoalId::new(goal))
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
        Err(e) => unavailable(e),
    }
}

/// The tenant's overrides, and what may be overridden.
async fn settings_answer(deps: &Deps, tenant: &TenantId) -> Answer {
    let own = match mktg_boot::tenant::load(deps, tenant).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let cfg = &deps.config;
    ok(
        200,
        json!({
            "skills": cfg.skills.values().map(|k| {
                let o = own.skill(k.name.as_str());
                json!({"name": k.name, "squad": k.squad, "tier": k.tier,
                       "override": o.map(|o| json!({"tier": o.tier, "instructions": o.instructions}))})
            }).collect::<Vec<_>>(),
            "schedules": cfg.schedules.list.iter().map(|s| json!({
                "id": s.id, "name": s.name, "enabled": s.enabled && own.schedule_enabled(&s.id),
                "configured": s.enabled,
            })).collect::<Vec<_>>(),
            "tools": cfg.tools.servers.values()
                .chain(cfg.catalog.servers.values().filter(|t| own.connections.contains_key(&t.name) && !cfg.tools.servers.contains_key(&t.name)))
                .map(|t| json!({
                    "name": t.name, "enabled": own.tool_enabled(&t.name),
                    "approval": own.tool(&t.name).approval,
                })).collect::<Vec<_>>(),
            "tiers": cfg.models.tiers.keys().collect::<Vec<_>>(),
        }),
    )
}

/// `PUT /settings/tools/{server}`: the fields to change; `approval: null`
/// (present) goes back to tools.yaml's, absent keeps the current choice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSettingChange {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    approval: Option<Option<mktg_core::tools::Approval>>,
}

/// A field that is present (even as null) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Sets one override of the tenant: a skill's tier and instructions (an
/// empty body removes it), a schedule or a tool server on or off.
async fn put_setting(
    deps: &Deps,
    tenant: &TenantId,
    by: &str,
    kind: &str,
    name: &str,
    body: &[u8],
) -> Result<(), Answer> {
    use mktg_boot::tenant::{self, Item, Kind, SkillOverride, Switch, ToolSetting};
    let mut own = tenant::load(deps, tenant).await.map_err(unavailable)?;
    let saved = match kind {
        "skills" => {
            if deps
                .config
                .skill(&mktg_core::SkillName::new(name))
                .is_none()
            {
                return Err(error(
                    404,
                    "not_found",
                    format!("no skill \"{name}\" (see GET /settings)"),
                ));
            }
            let o: SkillOverride = parse(body, "{\"tier\": \"...\", \"instructions\": \"...\"}")?;
            if let Some(t) = &o.tier {
                if !deps.config.models.tiers.contains_key(t) {
                    let known: Vec<&String> = deps.config.models.tiers.keys().collect();
                    return Err(error(
                        400,
                        "bad_request",
                        format!("tier \"{t}\" is not one of {known:?}"),
                    ));
                }
            }
            if o.instructions
                .as_ref()
                .is_some_and(|i| i.chars().count() > tenant::MAX_INSTRUCTIONS)
            {
                return Err(error(
                    400,
                    "bad_request",
                    format!(
                        "instructions are at most {} characters",
                        tenant::MAX_INSTRUCTIONS
                    ),
                ));
            }
            if o == SkillOverride::default() {
                own.skills.remove(name);
            } else {
                own.skills.insert(name.to_string(), o);
            }
            tenant::save(deps, tenant, Kind::Skills, &own.skills, by).await
        }
        "schedules" | "tools" => {
            let known = if kind == "schedules" {
                deps.config.schedules.list.iter().any(|s| s.id == name)
            } else {
                deps.config.connectable(name).is_some()
            };
            if !known {
                return Err(error(
                    404,
                    "not_found",
                    format!(
                        "no {} \"{name}\" (see GET /settings)",
                        &kind[..kind.len() - 1]
                    ),
                ));
            }
            if kind == "tools" {
                // A change of the fields given; the others stay as they are.
                let change: ToolSettingChange = parse(
                    body,
                    "{\"enabled\": true|false, \"approval\": \"ask\"|\"auto\"|null}",
                )?;
                let mut setting = own.tool(name);
                if let Some(enabled) = change.enabled {
                    setting.enabled = enabled;
                }
                if let Some(approval) = change.approval {
                    setting.approval = approval;
                }
                let saved = if setting == ToolSetting::default() {
                    tenant::delete_item(deps, tenant, Item::Tool, name).await
                } else {
                    tenant::put_item(deps, tenant, Item::Tool, name, &setting).await
                };
                return saved.map_err(unavailable);
            }
            let switch: Switch = parse(body, "{\"enabled\": true|false}")?;
            if switch.enabled {
                own.schedules.remove(name);
            } else {
                own.schedules.insert(name.to_string(), switch);
            }
            tenant::save(deps, tenant, Kind::Schedules, &own.schedules, by).await
        }
        _ => {
            return Err(error(
                404,
                "not_found",
                format!("no settings of kind {kind}"),
            ))
        }
    };
    saved.map_err(unavailable)
}

/// Where the tenant is on the way to its first reviewed output: product
/// context written, sample data or a tool, first goal, first approval.
async fn onboarding(deps: &Deps, tenant: &TenantId) -> Answer {
    let context = match mktg_boot::tenant::load(deps, tenant).await {
        Ok(own) => own.context_updated_ms,
        Err(e) => return unavailable(e),
    };
    let sample = match mktg_boot::metrics::history(deps, tenant, "sessions").await {
        Ok(points) => !points.is_empty(),
        Err(e) => return unavailable(e),
    };
    let first = match deps.store.goals(tenant, 1).await {
        Ok(g) => g.into_iter().next(),
        Err(e) => return unavailable(e),
    };
    let mut first_approved_ms = None;
    if let Some(g) = &first {
        match deps
            .store
            .goal_state(&GoalKey::new(tenant.clone(), g.id.clone()))
            .await
        {
            Ok(state) => {
                first_approved_ms = state
                    .traces
                    .iter()
                    .filter(|t| t.to == TaskStatus::Approved.to_string())
                    .map(|t| t.at_ms)
                    .min();
            }
            Err(e) => return unavailable(e),
        }
    }
    ok(
        200,
        json!({
            "context_written_ms": context,
            "sample_data": sample,
            "first_goal": first.as_ref().map(|g| json!({"id": g.id, "status": g.status.to_string(), "created_ms": g.created_ms})),
            "first_approved_ms": first_approved_ms,
            "minutes_to_first_approval": match (context, first_approved_ms) {
                (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 60_000.0),
                _ => None,
            },
        }),
    )
}

async fn billing_answer(deps: &Deps, tenant: &TenantId) -> Answer {
    match mktg_actions::billing::overview(deps, tenant).await {
        Ok(v) => ok(200, v),
        Err(e) => action_error(e.into()),
    }
}

async fn budget_answer(deps: &Deps, tenant: &TenantId) -> Answer {
    match mktg_actions::budget::view(deps, tenant).await {
        Ok(v) => ok(200, serde_json::to_value(v).unwrap_or_default()),
        Err(e) => action_error(e),
    }
}

async fn decide_approval(
    deps: &Deps,
    tenant: &TenantId,
    by: &str,
    reference: &str,
    approve: bool,
    body: &[u8],
) -> Answer {
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
    let decided = if approvals::is_shift(reference) {
        approvals::decide_shift(deps, tenant, reference, approve, by, &reason)
            .await
            .map(|p| json!({"reference": reference, "status": p["status"], "allocation": p["shift"]["after"]}))
    } else if approve {
        approvals::approve(deps, tenant, reference, by)
            .await
            .map(|c| json!({"reference": c.reference(), "status": c.status.to_string()}))
    } else {
        approvals::deny(deps, tenant, reference, by, &reason)
            .await
            .map(|c| json!({"reference": c.reference(), "status": c.status.to_string()}))
    };
    match decided {
        Ok(body) => ok(200, body),
        Err(e @ ApprovalError::NotPending { .. }) => error(404, "not_found", e.to_string()),
        Err(e @ (ApprovalError::Raced(_) | ApprovalError::Handler(_))) => {
            error(409, "conflict", e.to_string())
        }
        Err(e @ ApprovalError::Store(_)) => unavailable(e),
    }
}

async fn resolve_escalation(
    deps: &Deps,
    tenant: &TenantId,
    by: &str,
    goal: &str,
    task: &str,
    body: &[u8],
) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Resolve {
        action: String,
        #[serde(default)]
        note: Option<String>,
    }
    let request: Resolve = match parse(
        body,
        "{\"action\": \"accept|retry|cancel\", \"note\": \"...\"}",
    ) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let Some(action) = Resolution::parse(&request.action) else {
        return error(
            400,
            "bad_request",
            format!(
                "action \"{}\" is not accept, retry or cancel",
                request.action
            ),
        );
    };
    let note = request.note.unwrap_or_default();
    match mktg_actions::human::resolve(deps, tenant, goal, task, action, by, &note).await {
        Ok(()) => ok(
            202,
            json!({"goal": goal, "task": task, "action": request.action}),
        ),
        Err(e) => action_error(e),
    }
}

/// An HTTP answer of any content type.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl From<Answer> for Reply {
    fn from(a: Answer) -> Reply {
        Reply {
            status: a.status,
            content_type: "application/json",
            headers: Vec::new(),
            body: a.body.to_string(),
        }
    }
}

/// Everything the API serves: the dashboard's files, a goal's event
/// stream, and the JSON API.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    deps: &Deps,
    keys: &ApiKeys,
    method: &str,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    last_event_id: Option<&str>,
    body: &[u8],
) -> Reply {
    if method == "GET" {
        if let Some(file) = web::file(path) {
            return file;
        }
    }
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(allowed) = allowed_methods(&segments) {
        if !allowed.contains(&method) {
            let mut reply: Reply = error(
                405,
                "method_not_allowed",
                format!(
                    "{method} is not allowed on {path}; allowed: {}",
                    allowed.join(", ")
                ),
            )
            .into();
            reply.headers.push(("allow", allowed.join(", ")));
            return reply;
        }
    }
    if let ("GET", ["goals", id, "stream"]) = (method, segments.as_slice()) {
        // The key or token comes in the Authorization header, never in the
        // URL (where logs and history would keep it): the dashboard reads
        // the stream with fetch, not EventSource.
        let principal = match authenticate(deps, keys, authorization).await {
            Ok(p) => p,
            Err(a) => return a.into(),
        };
        let cursor = last_event_id
            .map(str::to_string)
            .or_else(|| query_param(query, "after"));
        return stream::events(
            deps,
            &principal.tenant,
            &GoalId::new(*id),
            cursor.as_deref(),
            stream::hold(),
        )
        .await;
    }
    route(deps, keys, method, path, query, authorization, body)
        .await
        .into()
}

/// Lambda entry point (function URL).
pub async fn handle(
    deps: &Deps,
    keys: &ApiKeys,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (authorization, last_event_id) = (header("authorization"), header("last-event-id"));
    let reply = serve(
        deps,
        keys,
        request.method().as_str(),
        request.uri().path(),
        request.uri().query().unwrap_or_default(),
        authorization.as_deref(),
        last_event_id.as_deref(),
        request.body().as_ref(),
    )
    .await;
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    for (k, v) in &reply.headers {
        response = response.header(*k, v);
    }
    Ok(response.body(Body::Text(reply.body))?)
}
