//! Reading the files and checking them against each other.

use crate::error::{ConfigError, ConfigErrors};
use crate::files::{
    BudgetFile, CondValue, EventsFile, MetricsFile, ModelsFile, PipelinesFile, RateEntry,
    RoutingFile, RubricsFile, SchedulesFile, SkillsFile, StepEntry, ToolsFile, S,
};
use crate::{
    closest, Budget, Category, Chain, Config, Dimension, Job, Mapping, Metric, MetricSource,
    Metrics, Models, OAuth, Paths, Pipeline, Reallocation, Rubric, Rubrics, Schedule,
    ScheduleTarget, Schedules, Skill, ToolOverride, ToolServer, ToolTransport, Tools,
};
use mktg_core::ids::is_valid_id;
use mktg_core::model::Priority;
use mktg_core::plan::Step;
use mktg_core::review::StructuralRules;
use mktg_core::tools::{Approval, Effect, Rate};
use mktg_core::SkillName;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Collects errors while loading, each tied to a file.
struct Errors(Vec<ConfigError>);

impl Errors {
    fn at<T>(&mut self, file: &Path, spanned: &S<T>, message: impl Into<String>) {
        let loc = spanned.referenced;
        self.0.push(ConfigError {
            file: file.to_path_buf(),
            line: (loc.line() > 0).then(|| loc.line() as u32),
            column: (loc.column() > 0).then(|| loc.column() as u32),
            message: message.into(),
        });
    }

    fn file(&mut self, file: &Path, message: impl Into<String>) {
        self.0.push(ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        });
    }
}

fn read_yaml<T: DeserializeOwned>(path: &Path, errors: &mut Errors) -> Option<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.file(path, format!("cannot read: {e}"));
            return None;
        }
    };
    match serde_saphyr::from_str::<T>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = e.location();
            let message = e.to_string();
            // The library's message may already start with a position; keep
            // only its first line so the file:line prefix stays readable.
            let first = message.lines().next().unwrap_or("invalid YAML");
            let first = strip_position(first).to_string();
            errors.0.push(ConfigError {
                file: path.to_path_buf(),
                line: loc.map(|l| l.line() as u32).filter(|l| *l > 0),
                column: loc.map(|l| l.column() as u32).filter(|c| *c > 0),
                message: first,
            });
            None
        }
    }
}

fn hint(wanted: &str, known: &BTreeSet<String>) -> String {
    match closest(wanted, known.iter().map(String::as_str)) {
        Some(k) => format!(" (did you mean \"{k}\"?)"),
        None => String::new(),
    }
}

/// Loads and validates everything. Returns every error found, not only the
/// first.
pub fn load(paths: &Paths) -> Result<Config, ConfigErrors> {
    let mut errors = Errors(Vec::new());
    let dir = &paths.config_dir;
    let skills_path = dir.join("skills.yaml");
    let routing_path = dir.join("routing.yaml");
    let pipelines_path = dir.join("pipelines.yaml");
    let budget_path = dir.join("budget.yaml");
    let models_path = dir.join("models.yaml");

    let skills_file: Option<SkillsFile> = read_yaml(&skills_path, &mut errors);
    let routing_file: Option<RoutingFile> = read_yaml(&routing_path, &mut errors);
    let pipelines_file: Option<PipelinesFile> = read_yaml(&pipelines_path, &mut errors);
    let budget_file: Option<BudgetFile> = read_yaml(&budget_path, &mut errors);
    let models_file: Option<ModelsFile> = read_yaml(&models_path, &mut errors);
    let schedules_path = dir.join("schedules.yaml");
    let schedules_file: Option<SchedulesFile> = read_yaml(&schedules_path, &mut errors);
    let events_path = dir.join("events.yaml");
    let events_file: Option<EventsFile> = read_yaml(&events_path, &mut errors);

    let root = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.clone());
    let known_skills: BTreeSet<String> = skills_file
        .as_ref()
        .map(|sf| sf.skills.iter().map(|s| s.name.value.clone()).collect())
        .unwrap_or_default();
    let tools = load_tools(&dir.join("tools.yaml"), &root, &known_skills, &mut errors);
    let catalog = load_tools(
        &dir.join("tools.catalog.yaml"),
        &root,
        &known_skills,
        &mut errors,
    );
    let rubrics = load_rubrics(&dir.join("rubrics.yaml"), &known_skills, &mut errors);
    let metrics = load_metrics(&dir.join("metrics.yaml"), &tools, &catalog, &mut errors);

    let (Some(sf), Some(rf), Some(pf), Some(bf), Some(mf), Some(schf), Some(evf)) = (
        skills_file,
        routing_file,
        pipelines_file,
        budget_file,
        models_file,
        schedules_file,
        events_file,
    ) else {
        return Err(ConfigErrors(errors.0));
    };

    let tiers: BTreeSet<String> = mf.tiers.keys().cloned().collect();
    let skill_names: BTreeSet<String> = sf.skills.iter().map(|s| s.name.value.clone()).collect();

    // skills.yaml
    let mut skills = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for entry in &sf.skills {
        let name = &entry.name.value;
        if !seen.insert(name.clone()) {
            errors.at(
                &skills_path,
                &entry.name,
                format!("skill \"{name}\" is defined twice"),
            );
        }
        if !is_valid_id(name) {
            errors.at(
                &skills_path,
                &entry.name,
                format!("skill name \"{name}\" may use only letters, digits, '-', '_' and '.'"),
            );
        }
        if !sf.squads.contains_key(&entry.squad.value) {
            let known: BTreeSet<String> = sf.squads.keys().cloned().collect();
            errors.at(
                &skills_path,
                &entry.squad,
                format!(
                    "skill \"{name}\" names unknown squad \"{}\"{}",
                    entry.squad.value,
                    hint(&entry.squad.value, &known)
                ),
            );
        }
        if !tiers.contains(&entry.tier.value) {
            errors.at(
                &skills_path,
                &entry.tier,
                format!(
                    "skill \"{name}\" names unknown model tier \"{}\" (tiers in models.yaml: {})",
                    entry.tier.value,
                    tiers.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        for input in entry.inputs_from.iter().chain(&entry.feedback_from) {
            if !skill_names.contains(&input.value) {
                errors.at(
                    &skills_path,
                    input,
                    format!(
                        "skill \"{name}\" reads from unknown skill \"{}\"{}",
                        input.value,
                        hint(&input.value, &skill_names)
                    ),
                );
            }
        }
        let md = paths.skills_dir.join(name).join("SKILL.md");
        let instructions = match std::fs::read_to_string(&md) {
            Ok(text) => {
                check_skill_md(&md, name, &text, &mut errors);
                text
            }
            Err(e) => {
                errors.at(
                    &skills_path,
                    &entry.name,
                    format!(
                        "skill \"{name}\" has no instructions: cannot read {}: {e}",
                        md.display()
                    ),
                );
                String::new()
            }
        };
        skills.insert(
            SkillName::new(name.clone()),
            Skill {
                name: SkillName::new(name.clone()),
                squad: entry.squad.value.clone(),
                description: entry.description.clone(),
                tier: entry.tier.value.clone(),
                inputs_from: entry
                    .inputs_from
                    .iter()
                    .map(|s| SkillName::new(s.value.clone()))
                    .collect(),
                capabilities: entry.capabilities.iter().map(|c| c.value.clone()).collect(),
                rubric: entry.rubric.as_ref().map(|r| r.value.clone()),
                feedback_from: entry
                    .feedback_from
                    .iter()
                    .map(|s| SkillName::new(s.value.clone()))
                    .collect(),
                review: StructuralRules {
                    required_sections: entry.review.required_sections.clone(),
                    min_words: entry.review.min_words,
                },
                instructions,
            },
        );
    }
    check_acyclic(&sf, &skills_path, &mut errors);
    for squad in sf.squads.keys() {
        if !sf.skills.iter().any(|s| &s.squad.value == squad) {
            errors.file(&skills_path, format!("squad \"{squad}\" has no skills"));
        }
    }

    // pipelines.yaml
    let mut pipelines = Vec::new();
    let mut pipeline_names = BTreeSet::new();
    let check_skill =
        |errors: &mut Errors, file: &Path, at: &S<StepEntry>, skill: &str, pipeline: &str| {
            if !skill_names.contains(skill) {
                errors.at(
                    file,
                    at,
                    format!(
                        "unknown skill \"{skill}\" in pipeline \"{pipeline}\"{}",
                        hint(skill, &skill_names)
                    ),
                );
            }
        };
    for entry in &pf.pipelines {
        let pname = entry.name.value.clone();
        if !pipeline_names.insert(pname.clone()) {
            errors.at(
                &pipelines_path,
                &entry.name,
                format!("pipeline \"{pname}\" is defined twice"),
            );
        }
        let priority = match &entry.priority {
            None => Priority::default(),
            Some(p) => Priority::parse(&p.value).unwrap_or_else(|| {
                errors.at(
                    &pipelines_path,
                    p,
                    format!(
                        "priority \"{}\" of pipeline \"{pname}\" is not one of P0, P1, P2, P3",
                        p.value
                    ),
                );
                Priority::default()
            }),
        };
        if entry.steps.is_empty() {
            errors.at(
                &pipelines_path,
                &entry.name,
                format!("pipeline \"{pname}\" has no steps"),
            );
        }
        let mut steps: Vec<Step> = Vec::new();
        for step in &entry.steps {
            match &step.value {
                StepEntry::One(skill) => {
                    check_skill(&mut errors, &pipelines_path, step, skill, &pname);
                    steps.push(Step {
                        skills: vec![SkillName::new(skill.clone())],
                    });
                }
                StepEntry::Parallel(group) => {
                    if group.is_empty() {
                        errors.at(
                            &pipelines_path,
                            step,
                            format!("empty parallel step in pipeline \"{pname}\""),
                        );
                    }
                    for skill in group {
                        check_skill(&mut errors, &pipelines_path, step, skill, &pname);
                    }
                    steps.push(Step {
                        skills: group.iter().map(|s| SkillName::new(s.clone())).collect(),
                    });
                }
                StepEntry::Review { review } => {
                    // `director` is the reviewer function's own approval of
                    // the previous step, which every task gets anyway.
                    if review != "director" {
                        check_skill(&mut errors, &pipelines_path, step, review, &pname);
                        steps.push(Step {
                            skills: vec![SkillName::new(review.clone())],
                        });
                    }
                }
            }
        }
        pipelines.push(Pipeline {
            name: pname,
            priority,
            trigger: entry.trigger.clone(),
            steps,
        });
    }

    // routing.yaml
    let mut categories = Vec::new();
    let mut category_names = BTreeSet::new();
    for cat in &rf.categories {
        let cname = cat.name.value.clone();
        if !category_names.insert(cname.clone()) {
            errors.at(
                &routing_path,
                &cat.name,
                format!("category \"{cname}\" is defined twice"),
            );
        }
        if let Some(p) = &cat.pipeline {
            if !pipeline_names.contains(&p.value) {
                errors.at(
                    &routing_path,
                    p,
                    format!(
                        "category \"{cname}\" names unknown pipeline \"{}\"{}",
                        p.value,
                        hint(&p.value, &pipeline_names)
                    ),
                );
            }
        }
        if cat.pipeline.is_none() && cat.routes.is_empty() {
            errors.at(
                &routing_path,
                &cat.name,
                format!("category \"{cname}\" has neither a pipeline nor routes"),
            );
        }
        let mut routes = Vec::new();
        for route in &cat.routes {
            if !sf.squads.contains_key(&route.squad.value) {
                errors.at(
                    &routing_path,
                    &route.squad,
                    format!(
                        "unknown squad \"{}\" in category \"{cname}\"",
                        route.squad.value
                    ),
                );
            }
            for skill in &route.skills {
                if !skill_names.contains(&skill.value) {
                    errors.at(
                        &routing_path,
                        skill,
                        format!(
                            "unknown skill \"{}\" in category \"{cname}\"{}",
                            skill.value,
                            hint(&skill.value, &skill_names)
                        ),
                    );
                }
            }
            routes.push(Step {
                skills: route
                    .skills
                    .iter()
                    .map(|s| SkillName::new(s.value.clone()))
                    .collect(),
            });
        }
        categories.push(Category {
            name: cname,
            keywords: cat.keywords.clone(),
            pipeline: cat.pipeline.as_ref().map(|p| p.value.clone()),
            routes,
        });
    }
    if !category_names.contains(&rf.fallback_category.value) {
        errors.at(
            &routing_path,
            &rf.fallback_category,
            format!(
                "fallback category \"{}\" is not defined under categories",
                rf.fallback_category.value
            ),
        );
    }

    // budget.yaml
    if !(bf.monthly_usd >= 0.0 && bf.monthly_usd.is_finite()) {
        errors.file(
            &budget_path,
            format!(
                "monthly_usd must be a non-negative number, got {}",
                bf.monthly_usd
            ),
        );
    }
    if !(bf.per_goal_usd >= 0.0 && bf.per_goal_usd.is_finite()) {
        errors.file(
            &budget_path,
            format!(
                "per_goal_usd must be a non-negative number, got {}",
                bf.per_goal_usd
            ),
        );
    }
    let mut billing = crate::Billing::default();
    if let Some(b) = &bf.billing {
        let entry = &b.value;
        if entry.meter_event.trim().is_empty() {
            errors.at(
                &budget_path,
                b,
                "billing.meter_event must name the Stripe meter's event",
            );
        }
        for (name, p) in &entry.plans {
            for (what, v) in [
                ("monthly_usd", p.monthly_usd),
                ("per_goal_usd", p.per_goal_usd),
                ("markup", p.markup),
            ] {
                if !(v >= 0.0 && v.is_finite()) {
                    errors.at(
                        &budget_path,
                        b,
                        format!("plan \"{name}\": {what} must be a non-negative number, got {v}"),
                    );
                }
            }
            billing.plans.insert(
                name.clone(),
                crate::Plan {
                    name: name.clone(),
                    description: p.description.clone(),
                    monthly_usd: p.monthly_usd,
                    per_goal_usd: p.per_goal_usd,
                    markup: p.markup,
                },
            );
        }
        if let Some(d) = &entry.default_plan {
            if !entry.plans.contains_key(d) {
                let known: Vec<&str> = entry.plans.keys().map(String::as_str).collect();
                errors.at(
                    &budget_path,
                    b,
                    format!(
                        "billing.default_plan \"{d}\" is not a plan; plans: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        billing.meter_event = entry.meter_event.clone();
        billing.default_plan = entry.default_plan.clone();
    }
    let mut levels = Vec::new();
    let mut last = f64::MIN;
    for level in &bf.levels {
        let l = &level.value;
        if l.at_percent <= last {
            errors.at(
                &budget_path,
                level,
                format!(
                    "level \"{}\" at {}% must come after a lower percentage (previous {last}%)",
                    l.name, l.at_percent
                ),
            );
        }
        last = l.at_percent;
        let mut allowed = Vec::new();
        for p in &l.allowed_priorities {
            match Priority::parse(p) {
                Some(p) => allowed.push(p),
                None => errors.at(
                    &budget_path,
                    level,
                    format!("level \"{}\" allows unknown priority \"{p}\"", l.name),
                ),
            }
        }
        if let Some(t) = &l.force_tier {
            if !tiers.contains(t) {
                errors.at(
                    &budget_path,
                    level,
                    format!("level \"{}\" forces unknown tier \"{t}\"", l.name),
                );
            }
        }
        levels.push(mktg_core::cost::Level {
            name: l.name.clone(),
            at_percent: l.at_percent,
            allowed_priorities: allowed,
            force_tier: l.force_tier.clone(),
        });
    }

    // models.yaml
    const PROVIDERS: [&str; 4] = ["auto", "anthropic", "bedrock", "scripted"];
    if !PROVIDERS.contains(&mf.provider.value.as_str()) {
        errors.at(
            &models_path,
            &mf.provider,
            format!(
                "provider \"{}\" is not one of {}",
                mf.provider.value,
                PROVIDERS.join(", ")
            ),
        );
    }
    let script: PathBuf = dir.join(&mf.scripted_script);
    let plan_with_model = match &mf.plan_with_model {
        None => "auto".to_string(),
        Some(v) if ["auto", "always", "never"].contains(&v.value.as_str()) => v.value.clone(),
        Some(v) => {
            errors.at(
                &models_path,
                v,
                format!(
                    "plan_with_model \"{}\" is not one of auto, always, never",
                    v.value
                ),
            );
            "auto".to_string()
        }
    };

    // schedules.yaml
    let mut schedules = Vec::new();
    let mut schedule_ids = BTreeSet::new();
    for entry in &schf.schedules {
        let e = &entry.value;
        if !schedule_ids.insert(e.id.clone()) {
            errors.at(
                &schedules_path,
                entry,
                format!("schedule \"{}\" is defined twice", e.id),
            );
        }
        if !is_valid_id(&e.id) {
            errors.at(
                &schedules_path,
                entry,
                format!(
                    "schedule id \"{}\" may use only letters, digits, '-', '_' and '.'",
                    e.id
                ),
            );
        }
        let cron = match e.cron.parse::<croner::Cron>() {
            Ok(c) => Some(c),
            Err(err) => {
                errors.at(
                    &schedules_path,
                    entry,
                    format!(
                        "schedule \"{}\": cron \"{}\" is invalid: {err}",
                        e.id, e.cron
                    ),
                );
                None
            }
        };
        let tz = match e.timezone.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.at(&schedules_path, entry, format!("schedule \"{}\": unknown timezone \"{}\" (use an IANA name such as Europe/Berlin)", e.id, e.timezone));
                None
            }
        };
        let priority = match &e.priority {
            None => Priority::default(),
            Some(p) => Priority::parse(p).unwrap_or_else(|| {
                errors.at(
                    &schedules_path,
                    entry,
                    format!(
                        "schedule \"{}\": priority \"{p}\" is not one of P0, P1, P2, P3",
                        e.id
                    ),
                );
                Priority::default()
            }),
        };
        let target = match (&e.goal, &e.pipeline, &e.job) {
            (None, None, Some(j)) => match Job::ALL.iter().find(|(n, _)| n == j) {
                Some((_, job)) => Some(ScheduleTarget::Job(*job)),
                None => {
                    let names: BTreeSet<String> =
                        Job::ALL.iter().map(|(n, _)| n.to_string()).collect();
                    errors.at(
                        &schedules_path,
                        entry,
                        format!(
                            "schedule \"{}\": unknown job \"{j}\"{} (jobs: {})",
                            e.id,
                            hint(j, &names),
                            names.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    None
                }
            },
            (Some(g), None, None) => Some(ScheduleTarget::Goal(g.clone())),
            (None, Some(p), None) => {
                if !pipeline_names.contains(p) {
                    errors.at(
                        &schedules_path,
                        entry,
                        format!(
                            "schedule \"{}\" names unknown pipeline \"{p}\"{}",
                            e.id,
                            hint(p, &pipeline_names)
                        ),
                    );
                }
                Some(ScheduleTarget::Pipeline(p.to_string()))
            }
            _ => {
                errors.at(
                    &schedules_path,
                    entry,
                    format!(
                        "schedule \"{}\" needs exactly one of goal, pipeline or job",
                        e.id
                    ),
                );
                None
            }
        };
        if let (Some(cron), Some(timezone), Some(target)) = (cron, tz, target) {
            schedules.push(Schedule {
                id: e.id.clone(),
                name: e.name.clone().unwrap_or_else(|| e.id.clone()),
                cron,
                timezone,
                priority,
                target,
                enabled: e.enabled,
            });
        }
    }

    // events.yaml
    let mut mappings = Vec::new();
    let mut mapping_ids = BTreeSet::new();
    for entry in &evf.mappings {
        let m = &entry.value;
        if !mapping_ids.insert(m.id.clone()) {
            errors.at(
                &events_path,
                entry,
                format!("mapping \"{}\" is defined twice", m.id),
            );
        }
        if !is_valid_id(&m.id) {
            errors.at(
                &events_path,
                entry,
                format!(
                    "mapping id \"{}\" may use only letters, digits, '-', '_' and '.'",
                    m.id
                ),
            );
        }
        let mut conditions = Vec::new();
        for (field, value) in &m.when {
            let test = match value {
                CondValue::Num(n) => {
                    Ok(mktg_core::events::Test::Cmp(mktg_core::events::Op::Eq, *n))
                }
                CondValue::Bool(b) => Ok(mktg_core::events::Test::Equals(b.to_string())),
                CondValue::Str(s) => mktg_core::events::parse_test(s),
            };
            match test {
                Ok(test) => conditions.push(mktg_core::events::Condition {
                    field: field.clone(),
                    test,
                }),
                Err(why) => errors.at(
                    &events_path,
                    entry,
                    format!("mapping \"{}\": condition on {field}: {why}", m.id),
                ),
            }
        }
        let priority = match &m.priority {
            None => Priority::default(),
            Some(p) => Priority::parse(p).unwrap_or_else(|| {
                errors.at(
                    &events_path,
                    entry,
                    format!(
                        "mapping \"{}\": priority \"{p}\" is not one of P0, P1, P2, P3",
                        m.id
                    ),
                );
                Priority::default()
            }),
        };
        let target = match (&m.goal, &m.pipeline) {
            (Some(g), None) => Some(ScheduleTarget::Goal(g.clone())),
            (None, Some(p)) => {
                if !pipeline_names.contains(p) {
                    errors.at(
                        &events_path,
                        entry,
                        format!(
                            "mapping \"{}\" names unknown pipeline \"{p}\"{}",
                            m.id,
                            hint(p, &pipeline_names)
                        ),
                    );
                }
                Some(ScheduleTarget::Pipeline(p.to_string()))
            }
            _ => {
                errors.at(
                    &events_path,
                    entry,
                    format!("mapping \"{}\" needs exactly one of goal or pipeline", m.id),
                );
                None
            }
        };
        if let Some(target) = target {
            mappings.push(Mapping {
                id: m.id.clone(),
                event: m.event.clone(),
                conditions,
                target,
                priority,
                cooldown_minutes: m.cooldown_minutes,
            });
        }
    }

    if !rubrics.list.is_empty() {
        let names: BTreeSet<String> = rubrics.list.iter().map(|r| r.name.clone()).collect();
        for entry in &sf.skills {
            if let Some(r) = &entry.rubric {
                if !names.contains(&r.value) {
                    errors.at(
                        &skills_path,
                        r,
                        format!(
                            "skill \"{}\": unknown rubric \"{}\"{}",
                            entry.name.value,
                            r.value,
                            hint(&r.value, &names)
                        ),
                    );
                }
            }
        }
    }
    if !errors.0.is_empty() {
        return Err(ConfigErrors(errors.0));
    }
    let skills_for_routing: Vec<(SkillName, Vec<String>)> = skills
        .values()
        .map(|s: &Skill| (s.name.clone(), s.capabilities.clone()))
        .collect();
    Ok(Config {
        paths: paths.clone(),
        max_revisions: sf.defaults.max_revisions,
        max_turns: sf.defaults.max_turns,
        max_repeated_tool_calls: sf.defaults.max_repeated_tool_calls,
        learnings: sf.defaults.learnings,
        self_heal: sf.defaults.self_heal,
        squads: sf.squads,
        skills,
        fallback_category: rf.fallback_category.value,
        categories,
        pipelines,
        budget: Budget {
            monthly_usd: bf.monthly_usd,
            per_goal_usd: bf.per_goal_usd,
            levels,
            billing,
        },
        models: Models {
            provider: mf.provider.value,
            max_output_tokens: mf.max_output_tokens,
            request_timeout_secs: mf.request_timeout_secs,
            tiers: mf.tiers,
            scripted_script: script,
            plan_with_model,
        },
        schedules: Schedules {
            catch_up_minutes: schf.catch_up_minutes,
            stale_after_minutes: schf.stale_after_minutes,
            list: schedules,
        },
        mappings,
        metrics,
        tools: route_capabilities(tools, &skills_for_routing),
        catalog: route_capabilities(catalog, &skills_for_routing),
        rubrics,
    })
}

/// The `inputs_from` graph must be acyclic; a cycle is reported at the
/// edge that closes it, with the loop spelled out.
fn check_acyclic(sf: &SkillsFile, path: &Path, errors: &mut Errors) {
    let edges: BTreeMap<&str, Vec<&S<String>>> = sf
        .skills
        .iter()
        .map(|s| (s.name.value.as_str(), s.inputs_from.iter().collect()))
        .collect();
    // Depth-first search; state 1 = on the stack, 2 = done.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a S<String>>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        found: &mut Vec<(&'a S<String>, String)>,
    ) {
        state.insert(node, 1);
        stack.push(node);
        for edge in edges.get(node).into_iter().flatten() {
            let next = edge.value.as_str();
            match state.get(next).copied() {
                Some(1) => {
                    let from = stack.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].to_vec();
                    cycle.push(next);
                    // Edges point from consumer to input; show the flow.
                    cycle.reverse();
                    found.push((*edge, cycle.join(" → ")));
                }
                Some(_) => {}
                None => {
                    if edges.contains_key(next) {
                        visit(next, edges, state, stack, found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    for (edge, cycle) in found {
        errors.at(
            path,
            edge,
            format!("inputs_from makes a cycle: {cycle}; move the edge that closes the loop to feedback_from"),
        );
    }
}

/// rubrics.yaml is optional: without it, reviews are structural only.
/// metrics.yaml (optional): the anomaly method, the watched metrics and
/// the channels of budget-shift proposals.
fn load_metrics(path: &Path, tools: &Tools, catalog: &Tools, errors: &mut Errors) -> Metrics {
    use mktg_core::anomaly::{Method, Watch};
    let mut metrics = Metrics::default();
    if !path.exists() {
        return metrics;
    }
    let Some(file): Option<MetricsFile> = read_yaml(path, errors) else {
        return metrics;
    };
    let m = &file.method;
    let weekly = match m.seasonality.as_str() {
        "weekly" => true,
        "none" => false,
        other => {
            errors.file(
                path,
                format!("method.seasonality \"{other}\" is not weekly or none"),
            );
            true
        }
    };
    if m.window_days < 7 || m.min_points < 2 || m.z_threshold <= 0.0 {
        errors.file(
            path,
            format!(
                "method needs window_days >= 7, min_points >= 2 and z_threshold > 0 (got {}, {}, {})",
                m.window_days, m.min_points, m.z_threshold
            ),
        );
    }
    metrics.method = Method {
        window_days: m.window_days,
        weekly,
        min_points: m.min_points,
        z_threshold: m.z_threshold,
    };
    let mut seen = BTreeSet::new();
    for entry in &file.metrics {
        let e = &entry.value;
        if !seen.insert(e.id.clone()) {
            errors.at(path, entry, format!("metric \"{}\" is defined twice", e.id));
        }
        if !is_valid_id(&e.id) || e.dimensions.iter().any(|d| !is_valid_id(d)) {
            errors.at(
                path,
                entry,
                format!(
                    "metric \"{}\": ids and dimensions may use only letters, digits, '-', '_' and '.'",
                    e.id
                ),
            );
        }
        let watch = match e.watch.as_str() {
            "drop" => Watch::Drop,
            "spike" => Watch::Spike,
            "both" => Watch::Both,
            other => {
                errors.at(
                    path,
                    entry,
                    format!(
                        "metric \"{}\": watch \"{other}\" is not drop, spike or both",
                        e.id
                    ),
                );
                Watch::Both
            }
        };
        if e.min_change.is_nan() || e.min_change < 0.0 {
            errors.at(
                path,
                entry,
                format!("metric \"{}\": min_change must be 0 or more", e.id),
            );
        }
        let source = e.source.as_ref().map(|src| {
            let server = src.tool.split("__").next().unwrap_or_default();
            match tools.servers.get(server).or_else(|| catalog.servers.get(server)) {
                None => errors.at(
                    path,
                    entry,
                    format!(
                        "metric \"{}\": tool \"{}\" names server \"{server}\", which neither tools.yaml nor tools.catalog.yaml defines (tools are named server__tool)",
                        e.id, src.tool
                    ),
                ),
                Some(s) => {
                    let tool = src.tool.split_once("__").map(|(_, t)| t).unwrap_or_default();
                    if s.policy(tool).effect != Effect::Read {
                        errors.at(
                            path,
                            entry,
                            format!(
                                "metric \"{}\": tool \"{}\" is not a read tool; the metrics check only reads",
                                e.id, src.tool
                            ),
                        );
                    }
                }
            }
            if !src.value.is_empty() && !src.value.starts_with('/') {
                errors.at(
                    path,
                    entry,
                    format!(
                        "metric \"{}\": value \"{}\" must be a JSON pointer such as /rows/0/value",
                        e.id, src.value
                    ),
                );
            }
            MetricSource {
                tool: src.tool.clone(),
                arguments: serde_json::Value::Object(
                    src.arguments.clone().into_iter().collect(),
                ),
                value: src.value.clone(),
            }
        });
        metrics.list.push(Metric {
            id: e.id.clone(),
            name: e.name.clone().unwrap_or_else(|| e.id.clone()),
            unit: e.unit.clone().unwrap_or_default(),
            watch,
            min_change: e.min_change,
            dimensions: e.dimensions.clone(),
            source,
        });
    }
    if let Some(r) = &file.reallocation {
        let v = &r.value;
        for (what, metric) in [
            ("spend_metric", &v.spend_metric),
            ("revenue_metric", &v.revenue_metric),
        ] {
            match metrics.get(metric) {
                None => errors.at(
                    path,
                    r,
                    format!("reallocation.{what} \"{metric}\" is not a metric of this file"),
                ),
                Some(m) => {
                    for ch in v.channels.keys().filter(|c| !m.dimensions.contains(c)) {
                        errors.at(
                            path,
                            r,
                            format!(
                                "reallocation channel \"{ch}\" is not a dimension of metric \"{metric}\""
                            ),
                        );
                    }
                }
            }
        }
        if v.channels.len() < 2 || v.channels.values().any(|usd| usd.is_nan() || *usd < 0.0) {
            errors.at(
                path,
                r,
                "reallocation needs at least two channels, each with a budget of 0 USD or more",
            );
        }
        if !(0.0..=100.0).contains(&v.max_shift_percent) || v.min_roi_gap < 0.0 {
            errors.at(
                path,
                r,
                "reallocation.max_shift_percent must be 0-100 and min_roi_gap 0 or more",
            );
        }
        metrics.reallocation = Some(Reallocation {
            channels: v.channels.clone(),
            spend_metric: v.spend_metric.clone(),
            revenue_metric: v.revenue_metric.clone(),
            window_days: v.window_days,
            min_roi_gap: v.min_roi_gap,
            max_shift_percent: v.max_shift_percent,
        });
    }
    metrics
}

fn load_rubrics(path: &Path, skill_names: &BTreeSet<String>, errors: &mut Errors) -> Rubrics {
    let mut rubrics = Rubrics::default();
    if !path.exists() {
        return rubrics;
    }
    let Some(file): Option<RubricsFile> = read_yaml(path, errors) else {
        return rubrics;
    };
    if !(1..=10).contains(&file.pass_overall) {
        errors.file(
            path,
            format!(
                "pass_overall is {}; use a score from 1 to 10",
                file.pass_overall
            ),
        );
    }
    rubrics.pass_overall = file.pass_overall;
    rubrics.consistency_check = file.consistency_check;
    if let Some(r) = &file.on_reject {
        match r.value.as_str() {
            "fail" => {}
            "replan" => rubrics.replan_on_reject = true,
            other => errors.at(
                path,
                r,
                format!("on_reject \"{other}\" is not fail or replan"),
            ),
        }
    }
    for (skill, entry) in &file.chains {
        let e = &entry.value;
        if !skill_names.contains(skill) {
            errors.at(
                path,
                entry,
                format!(
                    "chain for unknown skill \"{skill}\"{}",
                    hint(skill, skill_names)
                ),
            );
        }
        if e.steps.is_empty() {
            errors.at(path, entry, format!("chain for \"{skill}\" has no steps"));
        }
        for step in &e.steps {
            let known = step.value == "semantic"
                || step.value == "director"
                || skill_names.contains(&step.value);
            if !known {
                errors.at(
                    path,
                    step,
                    format!(
                        "chain for \"{skill}\": step \"{}\" is not a skill, semantic or director{}",
                        step.value,
                        hint(&step.value, skill_names)
                    ),
                );
            }
        }
        let restart = e
            .restart
            .as_ref()
            .map(|r| r.value.as_str())
            .unwrap_or("first");
        if !matches!(restart, "first" | "failed") {
            if let Some(r) = &e.restart {
                errors.at(
                    path,
                    r,
                    format!("chain for \"{skill}\": restart \"{restart}\" is not first or failed"),
                );
            }
        }
        rubrics.chains.insert(
            SkillName::new(skill.clone()),
            Chain {
                steps: e.steps.iter().map(|s| s.value.clone()).collect(),
                restart_at_failed: restart == "failed",
            },
        );
    }
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (name, entry) in &file.rubrics {
        let e = &entry.value;
        let mut skills = Vec::new();
        for skill in &e.skills {
            if !skill_names.contains(&skill.value) {
                errors.at(
                    path,
                    skill,
                    format!(
                        "rubric \"{name}\": unknown skill \"{}\"{}",
                        skill.value,
                        hint(&skill.value, skill_names)
                    ),
                );
                continue;
            }
            if let Some(other) = owner.insert(skill.value.clone(), name.clone()) {
                errors.at(path, skill, format!("skill \"{}\" is in rubric \"{other}\" and in \"{name}\"; give it one rubric", skill.value));
            }
            skills.push(SkillName::new(skill.value.clone()));
        }
        if e.dimensions.is_empty() {
            errors.at(path, entry, format!("rubric \"{name}\" has no dimensions"));
        }
        let mut dimensions = Vec::new();
        let mut seen = BTreeSet::new();
        for d in &e.dimensions {
            let v = &d.value;
            if !seen.insert(v.name.clone()) {
                errors.at(
                    path,
                    d,
                    format!("rubric \"{name}\": dimension \"{}\" appears twice", v.name),
                );
            }
            let missing: Vec<String> = [2u8, 5, 8, 10]
                .iter()
                .filter(|l| !v.levels.contains_key(l))
                .map(u8::to_string)
                .collect();
            if !missing.is_empty() {
                errors.at(path, d, format!("rubric \"{name}\", dimension \"{}\": describe levels 2, 5, 8 and 10 (missing {})", v.name, missing.join(", ")));
            }
            if let Some(bad) = v.levels.keys().find(|l| !(1..=10).contains(*l)) {
                errors.at(
                    path,
                    d,
                    format!(
                        "rubric \"{name}\", dimension \"{}\": level {bad} is outside 1-10",
                        v.name
                    ),
                );
            }
            dimensions.push(Dimension {
                name: v.name.clone(),
                description: v.description.clone(),
                levels: v.levels.clone(),
            });
        }
        rubrics.list.push(Rubric {
            name: name.clone(),
            description: e.description.clone(),
            skills,
            dimensions,
        });
    }
    rubrics
}

/// A skill that needs a capability may use every configured server that
/// provides it: switching the tenant's ESP from Mailchimp to Resend is a
/// tools.yaml change, and no skill changes.
fn route_capabilities(mut tools: Tools, skills: &[(SkillName, Vec<String>)]) -> Tools {
    for server in tools.servers.values_mut() {
        for (skill, caps) in skills {
            let provides = caps.iter().any(|c| server.capabilities.contains(c));
            if provides && !server.skills.contains(skill) {
                server.skills.push(skill.clone());
            }
        }
    }
    tools
}

/// tools.yaml is optional: without it agents have no tools.
fn load_tools(
    path: &Path,
    root: &Path,
    skill_names: &BTreeSet<String>,
    errors: &mut Errors,
) -> Tools {
    let mut tools = Tools {
        file: path.to_path_buf(),
        servers: BTreeMap::new(),
    };
    if !path.exists() {
        return tools;
    }
    let Some(file): Option<ToolsFile> = read_yaml(path, errors) else {
        return tools;
    };
    let connect_timeout_ms = file.defaults.connect_timeout_ms.unwrap_or(20_000);
    let timeout_ms = file.defaults.timeout_ms.unwrap_or(30_000);
    let max_result_bytes = file.defaults.max_result_bytes.unwrap_or(20_000);
    for (name, entry) in &file.servers {
        let e = &entry.value;
        if !is_valid_id(name)
            && !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            errors.at(
                path,
                entry,
                format!("server name \"{name}\" may use only letters, digits, '-' and '_'"),
            );
        }
        let transport = match (&e.command, &e.url) {
            (Some(cmd), None) => {
                // A relative path with a slash is relative to the project
                // root, so `.mktg/mcp/bin/x` works from any directory.
                let command = if cmd.value.contains('/') && !cmd.value.starts_with('/') {
                    root.join(&cmd.value).display().to_string()
                } else {
                    cmd.value.clone()
                };
                ToolTransport::Stdio {
                    command,
                    args: e.args.clone(),
                }
            }
            (None, Some(url)) => {
                if !(url.value.starts_with("https://") || url.value.starts_with("http://")) {
                    errors.at(path, url, format!("server \"{name}\": url \"{}\" must start with https:// (or http:// for a local server)", url.value));
                }
                ToolTransport::Http {
                    url: url.value.clone(),
                    headers: e.headers.clone(),
                }
            }
            (Some(_), Some(url)) => {
                errors.at(path, url, format!("server \"{name}\": give either command (stdio) or url (streamable HTTP), not both"));
                continue;
            }
            (None, None) => {
                errors.at(path, entry, format!("server \"{name}\": needs a command (stdio server) or a url (streamable HTTP server)"));
                continue;
            }
        };
        for var in &e.env {
            if !is_env_name(&var.value) {
                errors.at(path, var, format!("server \"{name}\": \"{}\" is not an environment variable name (use A-Z, 0-9, _)", var.value));
            }
        }
        let mut skills = Vec::new();
        for skill in &e.skills {
            if skill_names.contains(&skill.value) {
                skills.push(SkillName::new(skill.value.clone()));
            } else {
                errors.at(
                    path,
                    skill,
                    format!(
                        "server \"{name}\": unknown skill \"{}\"{}",
                        skill.value,
                        hint(&skill.value, skill_names)
                    ),
                );
            }
        }
        let mut capabilities = Vec::new();
        for cap in &e.capabilities {
            let parts: Vec<&str> = cap.value.split('.').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                errors.at(path, cap, format!("server \"{name}\": capability \"{}\" should look like area.action, e.g. email.send", cap.value));
            }
            capabilities.push(cap.value.clone());
        }
        let effect = parse_effect(path, name, e.effect.as_ref(), errors).unwrap_or_default();
        let approval = parse_approval(path, name, e.approval.as_ref(), errors);
        check_rate(path, name, entry, &e.rate, errors);
        let mut overrides = BTreeMap::new();
        for (tool, t) in &e.tools {
            if let Some(rate) = &t.value.rate {
                check_rate(path, name, t, rate, errors);
            }
            overrides.insert(
                tool.clone(),
                ToolOverride {
                    effect: parse_effect(path, name, t.value.effect.as_ref(), errors),
                    approval: parse_approval(path, name, t.value.approval.as_ref(), errors),
                    rate: t.value.rate.map(rate_of),
                    timeout_ms: t.value.timeout_ms,
                },
            );
        }
        let oauth = e.oauth.as_ref().map(|o| {
            let v = &o.value;
            if !(v.token_url.starts_with("https://") || v.token_url.starts_with("http://")) {
                errors.at(path, o, format!("server \"{name}\": oauth token_url \"{}\" must be an http(s) URL", v.token_url));
            }
            for var in [&v.client_id_env, &v.client_secret_env, &v.refresh_token_env, &v.access_token_env] {
                if !is_env_name(&var.value) {
                    errors.at(path, var, format!("server \"{name}\": \"{}\" is not an environment variable name (use A-Z, 0-9, _)", var.value));
                }
            }
            OAuth {
                token_url: v.token_url.clone(),
                client_id_env: v.client_id_env.value.clone(),
                client_secret_env: v.client_secret_env.value.clone(),
                refresh_token_env: v.refresh_token_env.value.clone(),
                access_token_env: v.access_token_env.value.clone(),
                scopes: v.scopes.clone(),
            }
        });
        tools.servers.insert(
            name.clone(),
            ToolServer {
                name: name.clone(),
                description: e.description.clone(),
                transport,
                env: e.env.iter().map(|v| v.value.clone()).collect(),
                skills,
                capabilities,
                effect,
                approval,
                rate: rate_of(e.rate),
                timeout_ms: e.timeout_ms.unwrap_or(timeout_ms),
                connect_timeout_ms,
                max_result_bytes,
                overrides,
                oauth,
            },
        );
    }
    tools
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn rate_of(r: RateEntry) -> Rate {
    Rate {
        per_second: r.per_second,
        per_minute: r.per_minute,
        per_day: r.per_day,
    }
}

fn check_rate<T>(path: &Path, server: &str, at: &S<T>, rate: &RateEntry, errors: &mut Errors) {
    for (label, v) in [
        ("per_second", rate.per_second),
        ("per_minute", rate.per_minute),
        ("per_day", rate.per_day),
    ] {
        if v == Some(0) {
            errors.at(path, at, format!("server \"{server}\": rate {label} is 0, which would block every call (remove it for no limit)"));
        }
    }
}

fn parse_effect(
    path: &Path,
    server: &str,
    value: Option<&S<String>>,
    errors: &mut Errors,
) -> Option<Effect> {
    let v = value?;
    let parsed = Effect::parse(&v.value);
    if parsed.is_none() {
        errors.at(
            path,
            v,
            format!(
                "server \"{server}\": effect \"{}\" is not one of read, write, spend",
                v.value
            ),
        );
    }
    parsed
}

fn parse_approval(
    path: &Path,
    server: &str,
    value: Option<&S<String>>,
    errors: &mut Errors,
) -> Option<Approval> {
    let v = value?;
    let parsed = Approval::parse(&v.value);
    if parsed.is_none() {
        errors.at(
            path,
            v,
            format!(
                "server \"{server}\": approval \"{}\" is not one of auto, ask",
                v.value
            ),
        );
    }
    parsed
}

/// A SKILL.md starts with front matter naming the skill.
fn check_skill_md(path: &Path, name: &str, text: &str, errors: &mut Errors) {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("---") {
        errors.0.push(ConfigError {
            file: path.to_path_buf(),
            line: Some(1),
            column: None,
            message: "SKILL.md must start with '---' front matter".into(),
        });
        return;
    }
    for (i, line) in lines.enumerate() {
        if line.trim() == "---" {
            break;
        }
        if let Some(v) = line.strip_prefix("name:") {
            if v.trim() != name {
                errors.0.push(ConfigError {
                    file: path.to_path_buf(),
                    line: Some(u32::try_from(i + 2).unwrap_or(u32::MAX)),
                    column: None,
                    message: format!(
                        "front matter names \"{}\" but the folder is for \"{name}\"",
                        v.trim()
                    ),
                });
            }
        }
    }
}

/// Drops a leading "error: line N column M: " that the YAML library adds, since
/// the error already carries file:line:column.
fn strip_position(message: &str) -> &str {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    if rest.starts_with("line ") {
        if let Some(i) = rest.find(": ") {
            return &rest[i + 2..];
        }
    }
    rest
}
