//! The YAML shapes of the files in `config/`, as written by users. Values
//! that validation refers back to are `Spanned` so errors carry their line.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillsFile {
    pub defaults: Defaults,
    pub squads: BTreeMap<String, String>,
    pub skills: Vec<SkillEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub max_revisions: u32,
    pub max_turns: u32,
    /// How many times an agent may repeat the same tool call (same tool,
    /// same arguments) within one revision before the loop guard blocks it.
    #[serde(default = "two")]
    pub max_repeated_tool_calls: u32,
    #[serde(default)]
    pub learnings: LearningsEntry,
    #[serde(default)]
    pub self_heal: SelfHealEntry,
}

/// Self-healing: how many adjusted retries a failed task gets before its
/// goal fails, and how long a rate-limited retry waits.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelfHealEntry {
    #[serde(default = "two")]
    pub max_attempts: u32,
    #[serde(default = "sixty")]
    pub rate_limit_delay_secs: u32,
}

impl Default for SelfHealEntry {
    fn default() -> Self {
        SelfHealEntry {
            max_attempts: 2,
            rate_limit_delay_secs: 60,
        }
    }
}

fn forty_five() -> u32 {
    45
}

fn sixty() -> u32 {
    60
}

/// Learnings: how many go into a prompt, the share of task revisions run
/// without them (the control group), and after how many uses a learning
/// that does not help is pruned. `enabled: false` turns them off.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LearningsEntry {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "three")]
    pub per_prompt: usize,
    #[serde(default = "twenty")]
    pub control_percent: u8,
    #[serde(default = "ten")]
    pub prune_after: usize,
}

impl Default for LearningsEntry {
    fn default() -> Self {
        LearningsEntry {
            enabled: true,
            per_prompt: 3,
            control_percent: 20,
            prune_after: 10,
        }
    }
}

fn three() -> usize {
    3
}

fn twenty() -> u8 {
    20
}

fn ten() -> usize {
    10
}

fn two() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillEntry {
    pub name: S<String>,
    pub squad: S<String>,
    pub description: String,
    pub tier: S<String>,
    #[serde(default)]
    pub inputs_from: Vec<S<String>>,
    /// Skills whose later findings this one revises with (loop-back edges,
    /// kept out of `inputs_from` so that graph stays acyclic).
    #[serde(default)]
    pub feedback_from: Vec<S<String>>,
    /// Tool capabilities the skill needs (e.g. email.send); tools.yaml says
    /// which configured server provides each.
    #[serde(default)]
    pub capabilities: Vec<S<String>>,
    /// The rubric its semantic review uses, when not listed in rubrics.yaml.
    #[serde(default)]
    pub rubric: Option<S<String>>,
    pub review: ReviewEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewEntry {
    #[serde(default)]
    pub required_sections: Vec<String>,
    pub min_words: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    pub fallback_category: S<String>,
    pub categories: Vec<CategoryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryEntry {
    pub name: S<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub pipeline: Option<S<String>>,
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub squad: S<String>,
    pub skills: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesFile {
    pub pipelines: Vec<PipelineEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineEntry {
    pub name: S<String>,
    #[serde(default)]
    pub priority: Option<S<String>>,
    #[serde(default)]
    pub trigger: Option<String>,
    pub steps: Vec<S<StepEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StepEntry {
    One(String),
    Parallel(Vec<String>),
    Review { review: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    pub levels: Vec<S<LevelEntry>>,
    #[serde(default)]
    pub billing: Option<S<BillingEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingEntry {
    pub meter_event: String,
    #[serde(default)]
    pub default_plan: Option<String>,
    pub plans: BTreeMap<String, PlanEntry>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    pub description: String,
    pub monthly_usd: f64,
    pub per_goal_usd: f64,
    pub markup: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelEntry {
    pub name: String,
    pub at_percent: f64,
    pub allowed_priorities: Vec<String>,
    #[serde(default)]
    pub force_tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsFile {
    pub provider: S<String>,
    pub max_output_tokens: u32,
    pub request_timeout_secs: u64,
    pub tiers: BTreeMap<String, TierEntry>,
    pub scripted_script: String,
    #[serde(default)]
    pub plan_with_model: Option<S<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierEntry {
    pub anthropic: String,
    pub bedrock: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cache_write_per_mtok: f64,
    pub cache_read_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesFile {
    pub catch_up_minutes: u32,
    #[serde(default = "forty_five")]
    pub stale_after_minutes: u32,
    #[serde(default)]
    pub schedules: Vec<S<ScheduleEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub goal: Option<String>,
    #[serde(default)]
    pub pipeline: Option<String>,
    /// A job of the system instead of a goal: check-metrics,
    /// compound-learnings or propose-budget-shifts.
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    #[serde(default)]
    pub mappings: Vec<S<MappingEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CondValue {
    Num(f64),
    Bool(bool),
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingEntry {
    pub id: String,
    pub event: String,
    #[serde(default)]
    pub when: BTreeMap<String, CondValue>,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub goal: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub cooldown_minutes: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    #[serde(default)]
    pub defaults: ToolDefaultsEntry,
    #[serde(default)]
    pub servers: BTreeMap<String, S<ToolServerEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDefaultsEntry {
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_result_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolServerEntry {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub command: Option<S<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub url: Option<S<String>>,
    #[serde(default)]
    pub env: Vec<S<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub skills: Vec<S<String>>,
    #[serde(default)]
    pub capabilities: Vec<S<String>>,
    #[serde(default)]
    pub effect: Option<S<String>>,
    #[serde(default)]
    pub approval: Option<S<String>>,
    #[serde(default)]
    pub rate: RateEntry,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tools: BTreeMap<String, S<ToolEntry>>,
    #[serde(default)]
    pub oauth: Option<S<OAuthEntry>>,
}

/// OAuth2 refresh-token flow for servers that take a short-lived access
/// token (the Google tools). Values are environment variable names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthEntry {
    pub token_url: String,
    pub client_id_env: S<String>,
    pub client_secret_env: S<String>,
    pub refresh_token_env: S<String>,
    /// The variable the server reads its access token from; for url
    /// servers, name it in a header as `${VAR}`.
    pub access_token_env: S<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateEntry {
    #[serde(default)]
    pub per_second: Option<u32>,
    #[serde(default)]
    pub per_minute: Option<u32>,
    #[serde(default)]
    pub per_day: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolEntry {
    #[serde(default)]
    pub effect: Option<S<String>>,
    #[serde(default)]
    pub approval: Option<S<String>>,
    #[serde(default)]
    pub rate: Option<RateEntry>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RubricsFile {
    pub pass_overall: u8,
    pub rubrics: BTreeMap<String, S<RubricEntry>>,
    #[serde(default)]
    pub chains: BTreeMap<String, S<ChainEntry>>,
    /// Compare a goal's approved outputs with each other before completing.
    #[serde(default = "yes")]
    pub consistency_check: bool,
    /// What a REJECT does: `fail` the task (and the goal), or `replan` it:
    /// the task starts over, told why the last attempt missed the task.
    #[serde(default)]
    pub on_reject: Option<S<String>>,
}

/// A review chain: after the structural check, each step reviews in turn.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    pub steps: Vec<S<String>>,
    /// Where the next revision's chain starts: `first` step, or the step
    /// that sent it back (`failed`).
    #[serde(default)]
    pub restart: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RubricEntry {
    #[serde(default)]
    pub description: String,
    pub skills: Vec<S<String>>,
    pub dimensions: Vec<S<DimensionEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionEntry {
    pub name: String,
    pub description: String,
    pub levels: BTreeMap<u8, String>,
}

/// metrics.yaml: what the anomaly check watches, and the channels whose
/// return decides budget-shift proposals.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    #[serde(default)]
    pub method: MethodEntry,
    #[serde(default)]
    pub metrics: Vec<S<MetricEntry>>,
    #[serde(default)]
    pub reallocation: Option<S<ReallocationEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodEntry {
    #[serde(default = "twenty_eight")]
    pub window_days: u32,
    #[serde(default = "weekly")]
    pub seasonality: String,
    #[serde(default = "four")]
    pub min_points: usize,
    #[serde(default = "three_f")]
    pub z_threshold: f64,
}

impl Default for MethodEntry {
    fn default() -> Self {
        MethodEntry {
            window_days: 28,
            seasonality: weekly(),
            min_points: 4,
            z_threshold: 3.0,
        }
    }
}

fn twenty_eight() -> u32 {
    28
}
fn weekly() -> String {
    "weekly".into()
}
fn four() -> usize {
    4
}
fn three_f() -> f64 {
    3.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricEntry {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default = "both")]
    pub watch: String,
    #[serde(default)]
    pub min_change: f64,
    #[serde(default)]
    pub dimensions: Vec<String>,
    #[serde(default)]
    pub source: Option<SourceEntry>,
}

fn both() -> String {
    "both".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    pub tool: String,
    #[serde(default)]
    pub arguments: BTreeMap<String, serde_json::Value>,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReallocationEntry {
    /// Monthly ad spend per channel today, in USD.
    pub channels: BTreeMap<String, f64>,
    #[serde(default = "spend")]
    pub spend_metric: String,
    #[serde(default = "revenue")]
    pub revenue_metric: String,
    #[serde(default = "twenty_eight")]
    pub window_days: u32,
    /// Propose only when the best channel's return per dollar beats the
    /// worst's by at least this much.
    pub min_roi_gap: f64,
    /// At most this share of the worst channel's budget moves at once.
    pub max_shift_percent: f64,
}

fn spend() -> String {
    "spend".into()
}
fn revenue() -> String {
    "revenue".into()
}
