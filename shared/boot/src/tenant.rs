//! A tenant's own settings, over the deployment's configuration: its
//! product marketing context, per-skill overrides (model tier, extra
//! instructions), schedules it turned off, and tool servers it turned off.
//! All are documents of the tenant's `settings` collection, read by one
//! query. And the registry of tenants, which the scheduler tick runs for.

use crate::context::ProductContext;
use crate::Deps;
use mktg_core::TenantId;
use mktg_store::{GoalKey, StoreError, Write};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The collection of a tenant's settings documents.
pub const SETTINGS: &str = "settings";

/// Longest extra instructions for one skill, in characters.
pub const MAX_INSTRUCTIONS: usize = 4_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillOverride {
    /// A model tier of models.yaml instead of the skill's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Appended to the skill's instructions for this tenant's agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    pub enabled: bool,
}

/// The tenant's settings of one tool server: on or off, and whether its
/// writes ask a person first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSetting {
    #[serde(default = "on")]
    pub enabled: bool,
    /// `ask`: every write and spend of the server waits for a person;
    /// `auto`: its writes run without asking (spends still ask unless
    /// tools.yaml says otherwise); absent: as tools.yaml says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<mktg_core::tools::Approval>,
}

impl Default for ToolSetting {
    fn default() -> Self {
        ToolSetting {
            enabled: true,
            approval: None,
        }
    }
}

impl ToolSetting {
    /// The approval a tool of this server needs for this tenant, given
    /// its effect and what tools.yaml says.
    pub fn approval(
        &self,
        effect: mktg_core::tools::Effect,
        configured: mktg_core::tools::Approval,
    ) -> mktg_core::tools::Approval {
        use mktg_core::tools::{Approval, Effect};
        match (self.approval, effect) {
            (_, Effect::Read) => configured,
            (Some(Approval::Ask), _) => Approval::Ask,
            (Some(Approval::Auto), Effect::Write) => Approval::Auto,
            _ => configured,
        }
    }
}

/// A catalogue (or tools.yaml) server the tenant connected with its own
/// credentials; the values are in the vault, only their names are here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConnection {
    /// When it was (re)connected, in ms: the credentials' version.
    pub version: u64,
    /// The variables the tenant set.
    pub vars: Vec<String>,
    pub by: String,
}

/// A schedule the tenant defined for itself (the fields of a
/// schedules.yaml entry, without jobs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnSchedule {
    pub name: String,
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default = "on")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn on() -> bool {
    true
}

/// Most schedules a tenant may define.
pub const MAX_OWN_SCHEDULES: usize = 25;

impl OwnSchedule {
    /// As a schedule the tick runs, checked against the configuration.
    pub fn to_schedule(
        &self,
        id: &str,
        config: &mktg_config::Config,
    ) -> Result<mktg_config::Schedule, String> {
        config.tenant_schedule(&mktg_config::ScheduleSpec {
            id,
            name: &self.name,
            cron: &self.cron,
            timezone: &self.timezone,
            priority: self.priority.as_deref(),
            goal: self.goal.as_deref(),
            pipeline: self.pipeline.as_deref(),
            enabled: self.enabled,
        })
    }
}

/// Everything a tenant set for itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantSettings {
    pub context: Option<ProductContext>,
    pub context_updated_ms: Option<u64>,
    pub skills: BTreeMap<String, SkillOverride>,
    pub schedules: BTreeMap<String, Switch>,
    pub tools: BTreeMap<String, ToolSetting>,
    pub connections: BTreeMap<String, ToolConnection>,
    /// Schedules the tenant defined, by id.
    pub own_schedules: BTreeMap<String, OwnSchedule>,
}

impl TenantSettings {
    /// The tenant's override of `skill`, if any.
    pub fn skill(&self, skill: &str) -> Option<&SkillOverride> {
        self.skills.get(skill)
    }

    /// Whether the tenant turned a schedule off (on unless it did).
    pub fn schedule_enabled(&self, id: &str) -> bool {
        self.schedules.get(id).is_none_or(|s| s.enabled)
    }

    /// Whether the tenant turned a tool server off (on unless it did).
    pub fn tool_enabled(&self, server: &str) -> bool {
        self.tools.get(server).is_none_or(|s| s.enabled)
    }

    /// The tenant's settings of a tool server (defaults when it set none).
    pub fn tool(&self, server: &str) -> ToolSetting {
        self.tools.get(server).copied().unwrap_or_default()
    }

    /// The schedules the scheduler tick runs for this tenant: the
    /// deployment's it did not turn off, and its own that are on. An own
    /// schedule the configuration no longer accepts (a pipeline removed)
    /// comes back as an error naming it.
    pub fn schedules(
        &self,
        config: &mktg_config::Config,
    ) -> (Vec<mktg_config::Schedule>, Vec<(String, String)>) {
        let mut out: Vec<mktg_config::Schedule> = config
            .schedules
            .list
            .iter()
            .filter(|s| s.enabled && self.schedule_enabled(&s.id))
            .cloned()
            .collect();
        let mut refused = Vec::new();
        for (id, own) in self.own_schedules.iter().filter(|(_, o)| o.enabled) {
            match own.to_schedule(id, config) {
                Ok(s) => out.push(s),
                Err(why) => refused.push((id.clone(), why)),
            }
        }
        (out, refused)
    }
}

/// Why a tenant's own credentials could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The connection is recorded but the vault has no secret for it
    /// (deleted by hand, or a disconnect half done): connect it again.
    #[error("{0}")]
    Missing(String),
    /// The vault did not answer: try again.
    #[error("{0}")]
    Unavailable(String),
}

/// How a tenant reaches one tool server.
#[derive(Clone, Debug)]
pub struct ToolRoute<'a> {
    /// tools.yaml's definition, or the catalogue's for a server the tenant
    /// connected.
    pub server: &'a mktg_config::ToolServer,
    /// The tenant's own credentials; `None`: the deployment's.
    pub creds: Option<mktg_tools::Credentials>,
    /// Whether the tenant left it on.
    pub enabled: bool,
}

impl TenantSettings {
    /// The tenant's own credentials for a server it connected, from the
    /// vault; `None` when it did not connect that server (the deployment's
    /// credentials apply).
    pub async fn credentials(
        &self,
        deps: &Deps,
        tenant: &TenantId,
        server: &str,
    ) -> Result<Option<mktg_tools::Credentials>, CredentialsError> {
        let Some(conn) = self.connections.get(server) else {
            return Ok(None);
        };
        let values = deps
            .vault
            .get(tenant, server, conn.version)
            .await
            .map_err(CredentialsError::Unavailable)?
            .ok_or_else(|| {
                CredentialsError::Missing(format!("{tenant}'s credentials for tool server {server} are missing from the vault; connect it again"))
            })?;
        Ok(Some(mktg_tools::Credentials {
            tenant: tenant.to_string(),
            version: conn.version,
            values: values.into_iter().collect(),
        }))
    }

    /// How this tenant reaches `server`: with its own credentials when it
    /// connected it (tools.yaml's or the catalogue's definition), else
    /// tools.yaml's with the deployment's; `None` when it cannot (unknown,
    /// or a catalogue server it did not connect). Every path to a tool
    /// (the agent's offer, the tool invoker, the metrics check, the
    /// connection test) goes through here.
    pub async fn route<'a>(
        &self,
        deps: &'a Deps,
        tenant: &TenantId,
        server: &str,
    ) -> Result<Option<ToolRoute<'a>>, CredentialsError> {
        let def = if self.connections.contains_key(server) {
            deps.config.connectable(server)
        } else {
            deps.config.tools.servers.get(server)
        };
        let Some(def) = def else {
            return Ok(None);
        };
        Ok(Some(ToolRoute {
            server: def,
            creds: self.credentials(deps, tenant, server).await?,
            enabled: self.tool_enabled(server),
        }))
    }
}

fn map<T: serde::de::DeserializeOwned>(body: &Value) -> BTreeMap<String, T> {
    serde_json::from_value(body["entries"].clone()).unwrap_or_default()
}

/// The tenant's settings (all defaults when it set none).
pub async fn load(deps: &Deps, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
    let mut s = TenantSettings::default();
    for (id, body) in deps.store.docs(tenant, SETTINGS).await? {
        match id.as_str() {
            crate::context::ID => {
                s.context = serde_json::from_value(body["context"].clone()).ok();
                s.context_updated_ms = body["updated_ms"].as_u64();
            }
            "skills" => s.skills = map(&body),
            "schedules" => s.schedules = map(&body),
            other => {
                // One document per tool server, connection and schedule,
                // so that two people changing two of them both win.
                match Item::of_doc(other) {
                    Some((Item::Tool, name)) => put_parsed(&mut s.tools, name, body),
                    Some((Item::Connection, name)) => put_parsed(&mut s.connections, name, body),
                    Some((Item::Schedule, name)) => put_parsed(&mut s.own_schedules, name, body),
                    None => {}
                }
            }
        }
    }
    Ok(s)
}

/// Which kind of override a document holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Skills,
    Schedules,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Skills => "skills",
            Kind::Schedules => "schedules",
        }
    }
}

/// Settings kept one document per name: a tool server's settings, a
/// connection, an own schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Tool,
    Connection,
    Schedule,
}

impl Item {
    const ALL: [Item; 3] = [Item::Tool, Item::Connection, Item::Schedule];

    fn kind(self) -> &'static str {
        match self {
            Item::Tool => "tool",
            Item::Connection => "connection",
            Item::Schedule => "schedule",
        }
    }

    fn doc_id(self, name: &str) -> String {
        format!("{}:{name}", self.kind())
    }

    /// The item and name a settings document id stands for.
    fn of_doc(id: &str) -> Option<(Item, &str)> {
        let (kind, name) = id.split_once(':')?;
        Item::ALL
            .into_iter()
            .find(|i| i.kind() == kind)
            .map(|i| (i, name))
    }
}

/// Adds a named setting read from its document (one that does not parse
/// is left out, as a missing one would be).
fn put_parsed<T: serde::de::DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    name: &str,
    body: Value,
) {
    if let Ok(v) = serde_json::from_value(body) {
        map.insert(name.to_string(), v);
    }
}

/// Writes (replaces) one named setting of the tenant.
pub async fn put_item<T: Serialize>(
    deps: &Deps,
    tenant: &TenantId,
    item: Item,
    name: &str,
    value: &T,
) -> Result<(), StoreError> {
    let body = serde_json::to_value(value).map_err(|e| StoreError::Permanent(e.to_string()))?;
    put_doc(deps, tenant, SETTINGS, &item.doc_id(name), body).await?;
    register(deps, tenant).await
}

/// Removes one named setting of the tenant (none there is fine).
pub async fn delete_item(
    deps: &Deps,
    tenant: &TenantId,
    item: Item,
    name: &str,
) -> Result<(), StoreError> {
    deps.store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::DeleteDoc {
                tenant: tenant.clone(),
                collection: SETTINGS.into(),
                id: item.doc_id(name),
            }],
        )
        .await
}

/// Replaces one kind of the tenant's overrides.
pub async fn save<T: Serialize>(
    deps: &Deps,
    tenant: &TenantId,
    kind: Kind,
    entries: &BTreeMap<String, T>,
    by: &str,
) -> Result<(), StoreError> {
    let body = serde_json::json!({
        "entries": entries, "updated_ms": deps.clock.now_ms(), "updated_by": by,
    });
    put_doc(deps, tenant, SETTINGS, kind.id(), body).await?;
    register(deps, tenant).await
}

/// Writes (replaces) one of the tenant's documents.
pub async fn put_doc(
    deps: &Deps,
    tenant: &TenantId,
    collection: &str,
    id: &str,
    body: Value,
) -> Result<(), StoreError> {
    deps.store
        .commit(
            &GoalKey::tenant_only(tenant.clone()),
            vec![Write::Doc {
                tenant: tenant.clone(),
                collection: collection.into(),
                id: id.into(),
                body,
                new_only: false,
                ttl: None,
            }],
        )
        .await
}

/// The partition of the tenant registry (not a tenant anyone signs in as:
/// API keys and tokens name tenants, and this one is refused there).
pub const REGISTRY: &str = "mktg-registry";

/// Records that `tenant` exists, so the scheduler tick runs its schedules.
/// Idempotent: a tenant already registered is left as it is.
pub async fn register(deps: &Deps, tenant: &TenantId) -> Result<(), StoreError> {
    let write = Write::Doc {
        tenant: TenantId::new(REGISTRY),
        collection: "tenants".into(),
        id: tenant.to_string(),
        body: serde_json::json!({"since_ms": deps.clock.now_ms()}),
        new_only: true,
        ttl: None,
    };
    match deps
        .store
        .commit(&GoalKey::tenant_only(TenantId::new(REGISTRY)), vec![write])
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every registered tenant.
pub async fn registered(deps: &Deps) -> Result<Vec<TenantId>, StoreError> {
    Ok(deps
        .store
        .docs(&TenantId::new(REGISTRY), "tenants")
        .await?
        .into_iter()
        .map(|(id, _)| TenantId::new(id))
        .collect())
}
