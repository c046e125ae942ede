//! Read views of a tenant's configuration and state, as the dashboard and
//! the CLI show them: schedules with their next fire times, event mappings,
//! escalated tasks, learnings and patterns, metric series, cost by skill.

use crate::ActionError;
use mktg_boot::Deps;
use mktg_config::{Config, ScheduleTarget};
use mktg_core::events::{Op, Test};
use mktg_core::{GoalStatus, TaskStatus, TenantId};
use mktg_store::GoalKey;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub id: String,
    pub cron: String,
    pub timezone: String,
    /// `goal`, `pipeline` or `job`.
    pub kind: &'static str,
    pub what: String,
    pub priority: String,
    pub enabled: bool,
    /// The next fire times, RFC 3339 in UTC.
    pub next: Vec<String>,
    /// The tenant's own (not schedules.yaml's).
    pub own: bool,
    /// Why an own schedule does not run any more (the configuration
    /// changed under it, e.g. its pipeline was removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn target(t: &ScheduleTarget) -> (&'static str, String) {
    match t {
        ScheduleTarget::Goal(g) => ("goal", g.clone()),
        ScheduleTarget::Pipeline(p) => ("pipeline", p.clone()),
        ScheduleTarget::Job(j) => ("job", j.name().to_string()),
    }
}

/// The deployment's schedules, and with `own` a tenant's settings, the
/// tenant's switches applied and its own schedules after them; a schedule
/// that is off has no next fire times.
pub fn schedules(
    config: &Config,
    own: Option<&mktg_boot::tenant::TenantSettings>,
    now: chrono::DateTime<chrono::Utc>,
    next: usize,
) -> Vec<ScheduleView> {
    let view = |s: &mktg_config::Schedule, enabled: bool, is_own: bool| {
        let (kind, what) = target(&s.target);
        ScheduleView {
            name: s.name.clone(),
            id: s.id.clone(),
            cron: s.cron.pattern.to_string(),
            timezone: s.timezone.to_string(),
            kind,
            what,
            priority: s.priority.to_string(),
            enabled,
            next: if enabled {
                scheduler_tick::next_fires(s, now, next)
                    .iter()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .collect()
            } else {
                Vec::new()
            },
            own: is_own,
            error: None,
        }
    };
    let mut out: Vec<ScheduleView> = config
        .schedules
        .list
        .iter()
        .map(|s| {
            view(
                s,
                s.enabled && own.is_none_or(|o| o.schedule_enabled(&s.id)),
                false,
            )
        })
        .collect();
    for (id, o) in own.map(|o| &o.own_schedules).into_iter().flatten() {
        match o.to_schedule(id, config) {
            Ok(s) => out.push(view(&s, o.enabled, true)),
            // Listed with the reason, so it can be mended or deleted.
            Err(why) => out.push(ScheduleView {
                name: o.name.clone(),
                id: id.clone(),
                cron: o.cron.clone(),
                timezone: o.timezone.clone(),
                kind: if o.pipeline.is_some() {
                    "pipeline"
                } else {
                    "goal"
                },
                what: o
                    .pipeline
                    .clone()
                    .or_else(|| o.goal.clone())
                    .unwrap_or_default(),
                priority: o
                    .priority
                    .clone()
                    .unwrap_or_else(|| mktg_core::Priority::default().to_string()),
                enabled: false,
                next: Vec::new(),
                own: true,
                error: Some(why),
            }),
        }
    }
    out
}

fn describe(test: &Test) -> String {
    match test {
        Test::Cmp(op, v) => {
            let op = match op {
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Eq => "==",
                Op::Ne => "!=",
            };
            format!("{op} {v}")
        }
        Test::Equals(s) => format!("== \"{s}\""),
    }
}

/// The event mappings of events.yaml.
pub fn events(config: &Config) -> Vec<Value> {
    config
        .mappings
        .iter()
        .map(|m| {
            let (kind, what) = target(&m.target);
            json!({
                "name": m.id, "event": m.event, "kind": kind, "what": what,
                "priority": m.priority.to_string(), "cooldown_minutes": m.cooldown_minutes,
                "conditions": m.conditions.iter().map(|c| format!("{} {}", c.field, describe(&c.test))).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct Escalation {
    pub goal: String,
    pub goal_text: String,
    pub task: String,
    pub skill: String,
    pub revision: u32,
    pub reason: String,
    pub last_review: Option<Value>,
}

/// Escalated tasks among the tenant's latest `goals` goals.
pub async fn escalations(
    deps: &Deps,
    tenant: &TenantId,
    goals: usize,
) -> Result<Vec<Escalation>, ActionError> {
    let mut found = Vec::new();
    for g in deps.store.goals(tenant, goals).await? {
        if g.status != GoalStatus::Escalated {
            continue;
        }
        let state = deps
            .store
            .goal_state(&GoalKey::new(tenant.clone(), g.id.clone()))
            .await?;
        for t in state
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Escalated)
        {
            let last = state
                .reviews
                .iter()
                .filter(|r| r.task == t.id)
                .max_by_key(|r| (r.revision, r.at_ms))
                .map(|r| json!({"reviewer": r.reviewer, "revision": r.revision, "decision": r.decision.to_string(), "summary": r.summary, "overall": r.overall}));
            found.push(Escalation {
                goal: g.id.to_string(),
                goal_text: g.text.clone(),
                task: t.id.to_string(),
                skill: t.skill.to_string(),
                revision: t.revision,
                reason: t.reason.clone().unwrap_or_default(),
                last_review: last,
            });
        }
    }
    Ok(found)
}

/// Every learning of the tenant and the patterns the nightly job found.
pub async fn learnings(deps: &Deps, tenant: &TenantId) -> Result<Value, ActionError> {
    let pass = deps.config.rubrics.pass_overall.max(1);
    let mut learnings = Vec::new();
    for skill in deps.config.skills.keys() {
        let (ls, uses) = deps.store.learnings(tenant, skill.as_str()).await?;
        if ls.is_empty() {
            continue;
        }
        for l in &ls {
            learnings.push(json!({
                "id": l.id, "skill": l.skill, "text": l.text, "score": l.score,
                "evidence": l.evidence, "source_goal": l.source_goal, "created_ms": l.created_ms,
                "pruned": l.pruned, "validated": mktg_core::learn::validated(l, &uses, pass),
            }));
        }
    }
    let mut patterns = Vec::new();
    for (_, body) in deps
        .store
        .docs(tenant, scheduler_tick::jobs::PATTERNS)
        .await?
    {
        if let Some(list) = body["patterns"].as_array() {
            patterns.extend(list.iter().cloned());
        }
    }
    Ok(json!({"learnings": learnings, "patterns": patterns}))
}

/// Every configured metric series with its stored daily values.
pub async fn metrics(deps: &Deps, tenant: &TenantId) -> Result<Vec<Value>, ActionError> {
    let mut out = Vec::new();
    for m in &deps.config.metrics.list {
        let dims: Vec<Option<&str>> = if m.dimensions.is_empty() {
            vec![None]
        } else {
            m.dimensions.iter().map(|d| Some(d.as_str())).collect()
        };
        for d in dims {
            let series = mktg_boot::metrics::series(&m.id, d);
            let points = mktg_boot::metrics::history(deps, tenant, &series).await?;
            out.push(json!({
                "series": series, "metric": m.id, "name": m.name, "unit": m.unit, "dimension": d,
                "points": points.iter().map(|(day, v)| json!({"day": mktg_boot::metrics::date_of_day(*day), "value": v})).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(out)
}

/// The month's model cost, in all and by skill.
pub async fn cost(deps: &Deps, tenant: &TenantId) -> Result<Value, ActionError> {
    let month = mktg_boot::month_of(deps.clock.now_ms());
    let rows = deps.store.costs(tenant, &month).await?;
    let total = crate::billing::totals_of(&rows);
    let mut by_skill: Vec<Value> = rows
        .iter()
        .filter_map(|(k, c)| {
            k.strip_prefix("SKILL#").map(|s| {
                json!({"skill": s, "usd": c.micros as f64 / 1e6, "calls": c.calls,
                       "input_tokens": c.input_tokens, "output_tokens": c.output_tokens})
            })
        })
        .collect();
    by_skill.sort_by(|a, b| {
        b["usd"]
            .as_f64()
            .partial_cmp(&a["usd"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(json!({
        "month": month, "usd": total.micros as f64 / 1e6, "calls": total.calls,
        "input_tokens": total.input_tokens, "output_tokens": total.output_tokens,
        "by_skill": by_skill,
    }))
}
