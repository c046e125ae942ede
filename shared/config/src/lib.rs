//! Loads and validates the YAML in `config/` and the SKILL.md files in
//! `skills/`, reporting every problem with its file and line.
//!
//! This crate reads files and nothing else: no network, no AWS.

mod error;
mod files;
mod load;

pub use error::{ConfigError, ConfigErrors};
pub use files::TierEntry;
pub use load::load;

use mktg_core::model::Priority;
use mktg_core::plan::{CategoryRule, Step};
use mktg_core::review::StructuralRules;
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
    pub list: Vec<Schedule>,
}

/// The whole validated configuration: the skill registry, routing,
/// pipelines, budget and models.
#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    pub max_revisions: u32,
    pub max_turns: u32,
    pub squads: BTreeMap<String, String>,
    pub skills: BTreeMap<SkillName, Skill>,
    pub fallback_category: String,
    pub categories: Vec<Category>,
    pub pipelines: Vec<Pipeline>,
    pub budget: Budget,
    pub models: Models,
    pub schedules: Schedules,
    pub mappings: Vec<Mapping>,
}

impl Models {
    /// Prices of a tier, as the cost rule wants them.
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
