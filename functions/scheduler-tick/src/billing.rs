//! Billing: usage metered per tenant from the cost ledger, and reported to
//! a Stripe meter (usage-based billing).
//!
//! What is billed for a month is the tenant's model cost times its plan's
//! markup, in cents, rounded down: a running total that only grows. Each
//! report sends the difference between that total and what was reported
//! before, so nothing is billed twice and rounding never drifts.
//!
//! Exactly once, across crashes: the report is first written down (base,
//! value, identifier) in the tenant's billing document, then sent to
//! Stripe, then marked sent. A report found written but not marked is sent
//! again with the same identifier and value, and Stripe drops a meter event
//! whose identifier it has seen.

use mktg_boot::Deps;
use mktg_core::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const COLLECTION: &str = "billing";

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The store or Stripe did not answer as hoped; try again.
    #[error("{0}")]
    Unavailable(String),
}

impl From<mktg_store::StoreError> for BillingError {
    fn from(e: mktg_store::StoreError) -> Self {
        BillingError::Unavailable(e.to_string())
    }
}
const ACCOUNT: &str = "account";

/// The tenant's billing document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The tenant's Stripe customer id (`cus_…`).
    #[serde(default)]
    pub customer: Option<String>,
    /// Per month: the cents reported to Stripe so far.
    #[serde(default)]
    pub reported: std::collections::BTreeMap<String, u64>,
    /// A report written down but not yet confirmed sent.
    #[serde(default)]
    pub pending: Option<Report>,
    #[serde(default)]
    pub last_report_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub month: String,
    /// Cents reported before this one.
    pub base: u64,
    /// Cents this report adds.
    pub value: u64,
    /// Stripe's idempotency identifier of the meter event.
    pub identifier: String,
    pub at_ms: u64,
}

pub async fn account(deps: &Deps, tenant: &TenantId) -> Result<Account, BillingError> {
    Ok(deps
        .store
        .docs(tenant, COLLECTION)
        .await?
        .into_iter()
        .find(|(id, _)| id == ACCOUNT)
        .and_then(|(_, b)| serde_json::from_value(b).ok())
        .unwrap_or_default())
}

async fn save(deps: &Deps, tenant: &TenantId, account: &Account) -> Result<(), BillingError> {
    let body = serde_json::to_value(account).unwrap_or(Value::Null);
    mktg_boot::tenant::put_doc(deps, tenant, COLLECTION, ACCOUNT, body).await?;
    Ok(())
}

/// Links the tenant to its Stripe customer.
pub async fn set_customer(
    deps: &Deps,
    tenant: &TenantId,
    customer: &str,
) -> Result<Account, BillingError> {
    let ok = customer.starts_with("cus_")
        && customer.len() <= 64
        && customer[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok || customer.len() < 5 {
        return Err(BillingError::Invalid(format!(
            "\"{customer}\" is not a Stripe customer id (cus_ followed by letters and digits)"
        )));
    }
    let mut acc = account(deps, tenant).await?;
    acc.customer = Some(customer.to_string());
    save(deps, tenant, &acc).await?;
    Ok(acc)
}

/// The TOTAL row of a month's ledger rows.
pub fn totals_of(rows: &[(String, mktg_store::CostTotals)]) -> mktg_store::CostTotals {
    rows.iter()
        .find(|(k, _)| k == "TOTAL")
        .map(|(_, t)| *t)
        .unwrap_or_default()
}

/// The month's billable amount so far, in cents: model cost × markup.
pub fn billable_cents(cost_micros: u64, markup: f64) -> u64 {
    // micro-dollars → cents is / 10_000; the markup is applied on the
    // exact figure and the result rounded down once.
    ((cost_micros as f64 * markup) / 10_000.0).floor() as u64
}

/// The tenant's usage and plan, as `GET /billing` shows it.
pub async fn overview(deps: &Deps, tenant: &TenantId) -> Result<Value, BillingError> {
    let billing = &deps.config.budget.billing;
    let own = deps.store.budget(tenant).await?;
    let plan = billing.plan_of(own.as_ref().and_then(|b| b.plan.as_deref()));
    let month = mktg_boot::month_of(deps.clock.now_ms());
    let rows = deps.store.costs(tenant, &month).await?;
    let total = totals_of(&rows);
    let goals = rows.iter().filter(|(k, _)| k.starts_with("GOAL#")).count();
    let acc = account(deps, tenant).await?;
    let plan_json = |p: &mktg_config::Plan| {
        json!({"name": p.name, "description": p.description, "monthly_usd_limit": p.monthly_usd,
               "per_goal_usd_limit": p.per_goal_usd, "markup": p.markup})
    };
    Ok(json!({
        "plan": plan.map(plan_json),
        "plans": billing.plans.values().map(plan_json).collect::<Vec<_>>(),
        "usage": {
            "month": month, "goals": goals, "calls": total.calls,
            "model_usd": total.micros as f64 / 1e6,
            "billable_cents": plan.map(|p| billable_cents(total.micros, p.markup)),
            "reported_cents": acc.reported.get(&month).copied().unwrap_or(0),
        },
        "stripe": {"customer": acc.customer, "meter_event": billing.meter_event, "last_report_ms": acc.last_report_ms},
    }))
}

/// Where Stripe's API is and the key to call it with.
#[derive(Clone, Debug)]
pub struct Stripe {
    pub base_url: String,
    pub secret_key: String,
}

static CONFIGURED: std::sync::OnceLock<Stripe> = std::sync::OnceLock::new();

impl Stripe {
    /// Sets the Stripe key read at cold start (from Secrets Manager).
    pub fn configure(stripe: Stripe) {
        let _ = CONFIGURED.set(stripe);
    }

    /// The configured Stripe, else the environment's.
    pub fn current() -> Option<Stripe> {
        CONFIGURED.get().cloned().or_else(Stripe::from_env)
    }

    /// From `STRIPE_SECRET_KEY` (and `STRIPE_API_BASE`, for a mock); none
    /// when no key is set.
    pub fn from_env() -> Option<Stripe> {
        let secret_key = std::env::var("STRIPE_SECRET_KEY")
            .ok()
            .filter(|k| !k.is_empty())?;
        Some(Stripe::with_key(secret_key))
    }

    /// Stripe's API (or `STRIPE_API_BASE`, for a mock) with this key.
    pub fn with_key(secret_key: String) -> Stripe {
        Stripe {
            base_url: std::env::var("STRIPE_API_BASE")
                .unwrap_or_else(|_| "https://api.stripe.com".into()),
            secret_key,
        }
    }
}

/// What one report did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Nothing new to bill, or no customer or plan.
    Nothing(String),
    Sent {
        cents: u64,
        identifier: String,
    },
}

/// Reports the tenant's unreported usage of the current month (and first
/// any report a crash left unconfirmed).
pub async fn report_usage(
    deps: &Deps,
    tenant: &TenantId,
    stripe: &Stripe,
    http: &reqwest::Client,
) -> Result<Reported, BillingError> {
    let mut acc = account(deps, tenant).await?;
    let Some(customer) = acc.customer.clone() else {
        return Ok(Reported::Nothing("no Stripe customer linked".into()));
    };
    let billing = &deps.config.budget.billing;
    let own = deps.store.budget(tenant).await?;
    let Some(plan) = billing.plan_of(own.as_ref().and_then(|b| b.plan.as_deref())) else {
        return Ok(Reported::Nothing("no plan".into()));
    };
    let report = match acc.pending.clone() {
        Some(p) => p,
        None => {
            let month = mktg_boot::month_of(deps.clock.now_ms());
            let total = mktg_boot::budget::month_totals(deps, tenant, &month)
                .await?
                .micros;
            let billable = billable_cents(total, plan.markup);
            let base = acc.reported.get(&month).copied().unwrap_or(0);
            if billable <= base {
                return Ok(Reported::Nothing(format!(
                    "nothing new: {base} cents already reported for {month}"
                )));
            }
            let p = Report {
                identifier: format!("mktg-{tenant}-{month}-{base}"),
                month,
                base,
                value: billable - base,
                at_ms: deps.clock.now_ms(),
            };
            // Written down before it is sent.
            acc.pending = Some(p.clone());
            save(deps, tenant, &acc).await?;
            p
        }
    };
    send(
        stripe,
        http,
        &billing.meter_event,
        &customer,
        &report,
        deps.clock.now_ms(),
    )
    .await?;
    acc.reported
        .insert(report.month.clone(), report.base + report.value);
    acc.pending = None;
    acc.last_report_ms = Some(deps.clock.now_ms());
    save(deps, tenant, &acc).await?;
    Ok(Reported::Sent {
        cents: report.value,
        identifier: report.identifier,
    })
}

/// One Stripe meter event (`POST /v1/billing/meter_events`).
async fn send(
    stripe: &Stripe,
    http: &reqwest::Client,
    event: &str,
    customer: &str,
    report: &Report,
    now_ms: u64,
) -> Result<(), BillingError> {
    let url = format!(
        "{}/v1/billing/meter_events",
        stripe.base_url.trim_end_matches('/')
    );
    let form = [
        ("event_name", event.to_string()),
        ("identifier", report.identifier.clone()),
        ("timestamp", (now_ms / 1000).to_string()),
        ("payload[stripe_customer_id]", customer.to_string()),
        ("payload[value]", report.value.to_string()),
    ];
    let answer = http
        .post(&url)
        .bearer_auth(&stripe.secret_key)
        .header("idempotency-key", &report.identifier)
        .form(&form)
        .send()
        .await
        .map_err(|e| BillingError::Unavailable(format!("Stripe did not answer: {e}")))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let text = answer.text().await.unwrap_or_default();
    // Stripe refuses an identifier it has already seen: that report was
    // delivered before a crash, so it counts as sent.
    if status.as_u16() == 400 && text.contains("identifier") && text.contains("already") {
        tracing::info!(identifier = %report.identifier, "Stripe already had this meter event");
        return Ok(());
    }
    Err(BillingError::Unavailable(format!(
        "Stripe answered {status}: {}",
        text.chars().take(300).collect::<String>()
    )))
}
