//! Loads and validates the YAML in `config/` and the SKILL.md files in
//! `skills/`, reporting every problem with its file and line.
//!
//! This crate reads files and nothing else: no network, no AWS.

mod error;
mod files;
mod load;

pub use error::{ConfigError, ConfigErrors};
pub use files::{LearningsEntry as Learnings, SelfHealEntry as SelfHeal, TierEntry};
pub use load::load;

use mktg_core::model::Priority;
use mktg_core::plan::{CategoryRule, Step};
use mktg_core::review::StructuralRules;
use mktg_core::tools::{Approval, Effect, Rate};
use mktg_core::SkillName;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the configuration lives.
#[derive(Clone, Debug)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub skills_dir: PathBuf,
}

impl Paths {
    /// `config/` and `skills/` under `root`.
    pub fn under(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Paths {
            config_dir: root.join("config"),
            skills_dir: root.join("skills"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Skill {
    pub name: SkillName,
    pub squad: String,
    pub description: String,
    pub tier: String,
    pub inputs_from: Vec<SkillName>,
    /// Loop-back edges: skills whose findings it revises with.
    pub feedback_from: Vec<SkillName>,
    /// Tool capabilities it needs (e.g. `email.send`), routed to whichever
    /// configured server provides them.
    pub capabilities: Vec<String>,
    /// Its rubric, named in skills.yaml (otherwise rubrics.yaml lists it).
    pub rubric: Option<String>,
    pub review: StructuralRules,
    /// The full SKILL.md text: the agent's instructions.
    pub instructions: String,
}

#[derive(Clone, Debug)]
pub struct Pipeline {
    pub name: String,
    pub priority: Priority,
    pub trigger: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug)]
pub struct Category {
    pub name: String,
    pub keywords: Vec<String>,
    pub pipeline: Option<String>,
    pub routes: Vec<Step>,
}

#[derive(Clone, Debug)]
pub struct Budget {
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    pub levels: Vec<mktg_core::cost::Level>,
    pub billing: Billing,
}

/// Plans a hosted tenant can be on, and how usage is billed (budget.yaml
/// `billing:`). With no plans every tenant is limited by its budget only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Billing {
    /// The event name of the Stripe meter usage is reported to.
    pub meter_event: String,
    /// The plan of a tenant that chose none (none: no plan cap).
    pub default_plan: Option<String>,
    pub plans: BTreeMap<String, Plan>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// Caps on the tenant's model spend; the budget gate enforces the lower
    /// of these and the tenant's own budget.
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    /// Billed amount per dollar of model cost.
    pub markup: f64,
}

impl Billing {
    /// The plan a tenant is on: the one it chose, else the default.
    pub fn plan_of(&self, chosen: Option<&str>) -> Option<&Plan> {
        chosen
            .or(self.default_plan.as_deref())
            .and_then(|p| self.plans.get(p))
    }
}

#[derive(Clone, Debug)]
pub struct Models {
    pub provider: String,
    pub max_output_tokens: u32,
    pub request_timeout_secs: u64,
    pub tiers: BTreeMap<String, TierEntry>,
    /// Absolute path of the scripted provider's script.
    pub scripted_script: PathBuf,
    /// `auto` (real providers only), `always` or `never`.
    pub plan_with_model: String,
}

/// What a schedule starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleTarget {
    /// A goal; `{date}` is replaced by the slot's date.
    Goal(String),
    /// A pipeline template by name.
    Pipeline(String),
    /// A job of the system itself, run by the tick.
    Job(Job),
}

/// The system's own scheduled jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Pull the metrics of metrics.yaml that have a source and check them
    /// for anomalies.
    CheckMetrics,
    /// Aggregate validated learnings into patterns per skill.
    CompoundLearnings,
    /// Propose budget shifts between channels from their return.
    ProposeBudgetShifts,
    /// Re-send the message that drives work which made no progress for
    /// `stale_after_minutes` (a crashed invocation, a lost message).
    SweepStuckWork,
    /// Report the month's unreported usage to the Stripe meter.
    ReportUsage,
}

impl Job {
    pub const ALL: [(&'static str, Job); 5] = [
        ("check-metrics", Job::CheckMetrics),
        ("compound-learnings", Job::CompoundLearnings),
        ("propose-budget-shifts", Job::ProposeBudgetShifts),
        ("sweep-stuck-work", Job::SweepStuckWork),
        ("report-usage", Job::ReportUsage),
    ];

    pub fn name(self) -> &'static str {
        Job::ALL
            .iter()
            .find(|(_, j)| *j == self)
            .map(|(n, _)| *n)
            .unwrap_or("job")
    }
}

/// A metric the anomaly check watches (metrics.yaml).
#[derive(Clone, Debug)]
pub struct Metric {
    pub id: String,
    pub name: String,
    pub unit: String,
    pub watch: mktg_core::anomaly::Watch,
    /// The smallest absolute change that may count, in the metric's unit.
    pub min_change: f64,
    /// Series of the metric (channels, pages); empty: one series.
    pub dimensions: Vec<String>,
    pub source: Option<MetricSource>,
}

/// Where the check pulls a metric from: a read tool of tools.yaml.
#[derive(Clone, Debug)]
pub struct MetricSource {
    /// `server__tool`, as agents see it.
    pub tool: String,
    pub arguments: serde_json::Value,
    /// JSON pointer to the number in the tool's JSON result.
    pub value: String,
}

/// Channels whose return decides budget-shift proposals.
#[derive(Clone, Debug)]
pub struct Reallocation {
    pub channels: BTreeMap<String, f64>,
    pub spend_metric: String,
    pub revenue_metric: String,
    pub window_days: u32,
    pub min_roi_gap: f64,
    pub max_shift_percent: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub method: mktg_core::anomaly::Method,
    pub list: Vec<Metric>,
    pub reallocation: Option<Reallocation>,
}

impl Metrics {
    pub fn get(&self, id: &str) -> Option<&Metric> {
        self.list.iter().find(|m| m.id == id)
    }
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
    pub priority: Priority,
    pub target: ScheduleTarget,
    pub enabled: bool,
}

/// An event mapping from events.yaml.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub id: String,
    pub event: String,
    pub conditions: Vec<mktg_core::events::Condition>,
    pub target: ScheduleTarget,
    pub priority: Priority,
    pub cooldown_minutes: u32,
}

#[derive(Clone, Debug)]
pub struct Schedules {
    pub catch_up_minutes: u32,
    /// Work with no progress for this long is resumed by the sweeper.
    pub stale_after_minutes: u32,
    pub list: Vec<Schedule>,
}

/// The whole validated configuration: the skill registry, routing,
/// pipelines, budget and models.
#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    pub max_revisions: u32,
    pub max_turns: u32,
    pub max_repeated_tool_calls: u32,
    pub learnings: Learnings,
    pub self_heal: SelfHeal,
    pub squads: BTreeMap<String, String>,
    pub skills: BTreeMap<SkillName, Skill>,
    pub fallback_category: String,
    pub categories: Vec<Category>,
    pub pipelines: Vec<Pipeline>,
    pub budget: Budget,
    pub models: Models,
    pub schedules: Schedules,
    pub mappings: Vec<Mapping>,
    pub metrics: Metrics,
    pub tools: Tools,
    /// tools.catalog.yaml: servers a tenant may connect from the dashboard
    /// with its own credentials (optional; the operator's vetted list).
    pub catalog: Tools,
    pub rubrics: Rubrics,
}

/// A schedule a tenant defines for itself, as the API receives it.
#[derive(Clone, Debug, Default)]
pub struct ScheduleSpec<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub cron: &'a str,
    pub timezone: &'a str,
    pub priority: Option<&'a str>,
    pub goal: Option<&'a str>,
    pub pipeline: Option<&'a str>,
    pub enabled: bool,
}

/// Least time between two fires of a tenant's own schedule.
pub const MIN_TENANT_SCHEDULE_GAP_MINUTES: i64 = 60;

impl Config {
    /// A tenant's own schedule, checked as schedules.yaml's are (id, cron,
    /// IANA timezone, priority, exactly one of a goal or a known pipeline),
    /// and more strictly: no jobs, an id unlike the deployment's
    /// schedules, a goal of at most 4,000 characters, and at least an hour
    /// between fires.
    pub fn tenant_schedule(&self, spec: &ScheduleSpec) -> Result<Schedule, String> {
        let id = spec.id;
        if !mktg_core::ids::is_valid_id(id) || id.len() > 64 {
            return Err(format!(
                "schedule id \"{id}\" may use only letters, digits, '-', '_' and '.' (at most 64)"
            ));
        }
        if self.schedules.list.iter().any(|s| s.id == id) {
            return Err(format!(
                "\"{id}\" is a schedule of the deployment (schedules.yaml): turn it off in settings, or pick another id"
            ));
        }
        let name = spec.name.trim();
        if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
            return Err("name must be 1 to 120 characters on one line".into());
        }
        let cron = spec
            .cron
            .parse::<croner::Cron>()
            .map_err(|e| format!("cron \"{}\" is invalid: {e}", spec.cron))?;
        let timezone = spec.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "unknown timezone \"{}\" (use an IANA name such as Europe/Berlin)",
                spec.timezone
            )
        })?;
        let priority = match spec.priority {
            None => mktg_core::Priority::default(),
            Some(p) => mktg_core::Priority::parse(p)
                .ok_or_else(|| format!("priority \"{p}\" is not one of P0, P1, P2, P3"))?,
        };
        let target = match (spec.goal, spec.pipeline) {
            (Some(g), None) => {
                if g.trim().is_empty() || g.chars().count() > 4_000 {
                    return Err("goal must be 1 to 4,000 characters".into());
                }
                ScheduleTarget::Goal(g.to_string())
            }
            (None, Some(p)) => {
                if self.pipeline(p).is_none() {
                    let known: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
                    return Err(format!(
                        "unknown pipeline \"{p}\" (pipelines: {})",
                        known.join(", ")
                    ));
                }
                ScheduleTarget::Pipeline(p.to_string())
            }
            _ => return Err("give exactly one of goal or pipeline".into()),
        };
        // The shortest gap over the next hundred fires.
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0)
            .unwrap_or_default()
            .with_timezone(&timezone);
        let fires: Vec<_> = cron.iter_after(start).take(100).collect();
        if fires.is_empty() {
            return Err(format!("cron \"{}\" never fires", spec.cron));
        }
        if let Some(gap) = fires
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .min()
            .filter(|g| *g < MIN_TENANT_SCHEDULE_GAP_MINUTES)
        {
            return Err(format!(
                "cron \"{}\" fires {gap} minutes apart; a tenant's schedule may fire at most once an hour",
                spec.cron
            ));
        }
        Ok(Schedule {
            id: id.to_string(),
            name: name.to_string(),
            cron,
            timezone,
            priority,
            target,
            enabled: spec.enabled,
        })
    }

    /// The definition of a server a tenant may connect: tools.yaml's when
    /// the deployment has one by that name, else the catalogue's.
    pub fn connectable(&self, server: &str) -> Option<&ToolServer> {
        self.tools
            .servers
            .get(server)
            .or_else(|| self.catalog.servers.get(server))
    }
}

/// One scored dimension of a rubric, with what a 2, 5, 8 and 10 look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimension {
    pub name: String,
    pub description: String,
    pub levels: BTreeMap<u8, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rubric {
    pub name: String,
    pub description: String,
    pub skills: Vec<SkillName>,
    pub dimensions: Vec<Dimension>,
}

/// rubrics.yaml: how the semantic reviewer scores each kind of output.
/// Without the file, reviews are structural only.
#[derive(Clone, Debug, Default)]
pub struct Rubrics {
    pub pass_overall: u8,
    pub list: Vec<Rubric>,
    /// Review chains by the skill whose output they review.
    pub chains: BTreeMap<SkillName, Chain>,
    /// Whether the director compares a goal's approved outputs with each
    /// other before completing it (once per goal).
    pub consistency_check: bool,
    /// REJECT re-plans the task (a fresh attempt, counted as a revision)
    /// instead of failing it.
    pub replan_on_reject: bool,
}

/// The review steps after the structural check: `semantic` (the skill's
/// own bar), another skill's name (reviewing through that specialist's
/// eyes), or `director` (final approval against the goal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub steps: Vec<String>,
    /// The next revision restarts at the step that sent it back (`true`),
    /// or at the first step.
    pub restart_at_failed: bool,
}

impl Rubrics {
    pub fn for_skill(&self, skill: &SkillName) -> Option<&Rubric> {
        self.list.iter().find(|r| r.skills.contains(skill))
    }
}

/// How the tool host reaches an MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolTransport {
    /// A child process speaking MCP over stdin/stdout.
    Stdio { command: String, args: Vec<String> },
    /// A streamable HTTP endpoint. Header values may name `${VAR}`s, read
    /// from the environment when connecting.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// The policy of one tool (server defaults with the tool's overrides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolPolicy {
    pub effect: Effect,
    pub approval: Approval,
    pub rate: Rate,
    pub timeout_ms: u64,
}

/// One MCP server from tools.yaml.
#[derive(Clone, Debug)]
pub struct ToolServer {
    pub name: String,
    pub description: String,
    pub transport: ToolTransport,
    /// Environment variables passed to a stdio server (credentials).
    pub env: Vec<String>,
    /// Skills whose agents may call this server's tools.
    pub skills: Vec<SkillName>,
    /// Capabilities it provides, e.g. `email.send`.
    pub capabilities: Vec<String>,
    pub effect: Effect,
    pub approval: Option<Approval>,
    pub rate: Rate,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_result_bytes: usize,
    /// Per-tool overrides, by the server's own tool name.
    pub overrides: BTreeMap<String, ToolOverride>,
    pub oauth: Option<OAuth>,
}

/// Where a server's OAuth2 refresh flow reads its credentials (env names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth {
    pub token_url: String,
    pub client_id_env: String,
    pub client_secret_env: String,
    pub refresh_token_env: String,
    pub access_token_env: String,
    pub scopes: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToolOverride {
    pub effect: Option<Effect>,
    pub approval: Option<Approval>,
    pub rate: Option<Rate>,
    pub timeout_ms: Option<u64>,
}

impl ToolServer {
    pub fn policy(&self, tool: &str) -> ToolPolicy {
        let o = self.overrides.get(tool).copied().unwrap_or_default();
        let effect = o.effect.unwrap_or(self.effect);
        ToolPolicy {
            effect,
            approval: o
                .approval
                .or(self.approval)
                .unwrap_or_else(|| Approval::default_for(effect)),
            rate: o.rate.unwrap_or(self.rate),
            timeout_ms: o.timeout_ms.unwrap_or(self.timeout_ms),
        }
    }

    pub fn allows(&self, skill: &SkillName) -> bool {
        self.skills.contains(skill)
    }

    /// Every environment variable the server needs: `env` plus the
    /// `${VAR}`s its headers name.
    pub fn credential_vars(&self) -> Vec<String> {
        let mut vars = self.env.clone();
        if let ToolTransport::Http { headers, .. } = &self.transport {
            for value in headers.values() {
                vars.extend(env_refs(value));
            }
        }
        if let Some(o) = &self.oauth {
            // The access token is minted, not configured.
            vars.retain(|v| v != &o.access_token_env);
            vars.extend([
                o.client_id_env.clone(),
                o.client_secret_env.clone(),
                o.refresh_token_env.clone(),
            ]);
        }
        vars.sort();
        vars.dedup();
        vars
    }
}

/// The `${VAR}` names in a header value.
pub fn env_refs(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// tools.yaml: the MCP servers agents may use.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    pub file: PathBuf,
    pub servers: BTreeMap<String, ToolServer>,
}

impl Tools {
    /// The servers a skill may use.
    pub fn for_skill<'a>(&'a self, skill: &'a SkillName) -> impl Iterator<Item = &'a ToolServer> {
        self.servers.values().filter(move |s| s.allows(skill))
    }

    /// The server providing a capability (`email.send`) to a skill, if one
    /// is configured: skills ask for what they need, the tenant's config
    /// says which vendor does it.
    pub fn provider_of<'a>(
        &'a self,
        capability: &str,
        skill: &'a SkillName,
    ) -> Option<&'a ToolServer> {
        self.for_skill(skill)
            .find(|s| s.capabilities.iter().any(|c| c == capability))
    }
}

impl Models {
    /// The model id of a tier for a provider (`bedrock` ids or Anthropic
    /// ids); an unknown tier is passed through as the id.
    pub fn model_id(&self, tier: &str, provider: &str) -> String {
        self.tiers
            .get(tier)
            .map(|t| {
                if provider == "bedrock" {
                    t.bedrock.clone()
                } else {
                    t.anthropic.clone()
                }
            })
            .unwrap_or_else(|| tier.to_string())
    }

    /// Prices of a tier, as the cost rule wants them.
    /// Tier names from the weakest (cheapest output) to the strongest.
    pub fn tiers_by_strength(&self) -> Vec<String> {
        let mut tiers: Vec<(f64, String)> = self
            .tiers
            .iter()
            .map(|(name, t)| (t.output_per_mtok, name.clone()))
            .collect();
        tiers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        tiers.into_iter().map(|(_, n)| n).collect()
    }

    pub fn prices(&self, tier: &str) -> Option<mktg_core::cost::Prices> {
        self.tiers.get(tier).map(|t| mktg_core::cost::Prices {
            input: t.input_per_mtok,
            output: t.output_per_mtok,
            cache_write: t.cache_write_per_mtok,
            cache_read: t.cache_read_per_mtok,
        })
    }
}

impl Config {
    pub fn skill(&self, name: &SkillName) -> Option<&Skill> {
        self.skills.get(name)
    }

    /// The rubric a skill's outputs are scored on: the one skills.yaml
    /// names for it, else the rubric that lists it. `None`: structural
    /// review only.
    /// The review steps after the structural check for a skill's outputs:
    /// its chain, or the one semantic review when it has a rubric.
    pub fn review_steps(&self, skill: &SkillName) -> Vec<String> {
        if self.rubric_for(skill).is_none() {
            return Vec::new();
        }
        match self.rubrics.chains.get(skill) {
            Some(c) => c.steps.clone(),
            None => vec!["semantic".into()],
        }
    }

    pub fn rubric_for(&self, skill: &SkillName) -> Option<&Rubric> {
        match self.skill(skill).and_then(|s| s.rubric.as_deref()) {
            Some(name) => self.rubrics.list.iter().find(|r| r.name == name),
            None => self.rubrics.for_skill(skill),
        }
    }

    /// Finds a pipeline by name, ignoring case and `-`/space differences, so
    /// `content-production` finds "Content Production".
    pub fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        let norm = |s: &str| s.to_lowercase().replace(['-', '_'], " ");
        let wanted = norm(name);
        self.pipelines.iter().find(|p| norm(&p.name) == wanted)
    }

    /// Whether a task of `consumer` may build on a task of `dep`: when the
    /// registry lists `dep` among its inputs, when `dep` is strategy or the
    /// foundation (their output frames everything), or when `consumer`
    /// measures (measurement reads any output).
    pub fn dependency_allowed(&self, dep: &SkillName, consumer: &SkillName) -> bool {
        let (Some(d), Some(c)) = (self.skill(dep), self.skill(consumer)) else {
            return false;
        };
        c.inputs_from.contains(dep)
            || c.feedback_from.contains(dep)
            || matches!(d.squad.as_str(), "foundation" | "strategy")
            || c.squad == "measure"
    }

    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }

    pub fn category_rules(&self) -> Vec<CategoryRule> {
        self.categories
            .iter()
            .map(|c| CategoryRule {
                category: c.name.clone(),
                keywords: c.keywords.clone(),
            })
            .collect()
    }

    /// The plan for a goal of `category`: its pipeline template when it has
    /// one, otherwise one step per route.
    pub fn steps_for_category(&self, category: &str) -> Option<(Option<&Pipeline>, Vec<Step>)> {
        let cat = self.category(category)?;
        if let Some(p) = cat.pipeline.as_deref().and_then(|n| self.pipeline(n)) {
            return Some((Some(p), p.steps.clone()));
        }
        Some((None, cat.routes.clone()))
    }
}

/// The closest known name to `wanted`, for "did you mean" hints.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(wanted, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
