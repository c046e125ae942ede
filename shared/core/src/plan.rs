//! Plans: a pipeline's steps become tasks whose dependencies are the tasks of
//! the step before. Also the goal-text → category rule.

use crate::ids::{GoalId, SkillName, TaskId, TenantId};
use crate::model::{Priority, Task};
use crate::status::TaskStatus;

/// One step of a plan: a single skill or a group that runs in parallel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub skills: Vec<SkillName>,
}

/// Materialises the tasks of a plan. Every task of step n depends on every
/// task of step n-1; ids are `NN-skill`, stable for the goal.
pub fn tasks_for_steps(
    tenant: &TenantId,
    goal: &GoalId,
    steps: &[Step],
    priority: Priority,
    now_ms: u64,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    let mut previous: Vec<TaskId> = Vec::new();
    let mut n = 0usize;
    for (phase, step) in steps.iter().enumerate() {
        let mut current = Vec::new();
        for skill in &step.skills {
            n += 1;
            let id = TaskId::new(format!("{n:02}-{skill}"));
            current.push(id.clone());
            tasks.push(Task {
                tenant: tenant.clone(),
                goal: goal.clone(),
                id,
                skill: skill.clone(),
                deps: previous.clone(),
                phase: u32::try_from(phase).unwrap_or(u32::MAX),
                priority,
                status: TaskStatus::Pending,
                revision: 0,
                version: 1,
                updated_ms: now_ms,
                feedback: vec![],
                reason: None,
                outbox: vec![],
                heal: Vec::new(),
                strategy: Default::default(),
            });
        }
        previous = current;
    }
    tasks
}

/// Pending tasks whose dependencies are all approved, given the statuses of
/// every task of the goal.
pub fn releasable(tasks: &[Task]) -> Vec<&Task> {
    tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Pending)
        .filter(|t| {
            t.deps.iter().all(|d| {
                tasks
                    .iter()
                    .any(|o| &o.id == d && o.status == TaskStatus::Approved)
            })
        })
        .collect()
}

/// A category and the word stems that select it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryRule {
    pub category: String,
    pub keywords: Vec<String>,
}

/// The first rule with a keyword that starts a word of the text wins (so the
/// stem `conver` matches "conversion"); no match gives `fallback`.
/// Keywords with a space or `/` must appear as a phrase.
pub fn infer_category(text: &str, rules: &[CategoryRule], fallback: &str) -> String {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '/' || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    for rule in rules {
        for kw in &rule.keywords {
            let kw = kw.to_lowercase();
            let hit = if kw.contains(' ') {
                lower.contains(&kw)
            } else {
                words.iter().any(|w| w.starts_with(kw.as_str()))
            };
            if hit {
                return rule.category.clone();
            }
        }
    }
    fallback.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(groups: &[&[&str]]) -> Vec<Step> {
        groups
            .iter()
            .map(|g| Step {
                skills: g.iter().map(|s| SkillName::new(*s)).collect(),
            })
            .collect()
    }

    #[test]
    fn each_step_depends_on_the_whole_previous_step() {
        let tasks = tasks_for_steps(
            &"t".into(),
            &"g".into(),
            &steps(&[
                &["launch-strategy"],
                &["copywriting", "paid-ads"],
                &["ab-test-setup"],
            ]),
            Priority::P1,
            0,
        );
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "01-launch-strategy",
                "02-copywriting",
                "03-paid-ads",
                "04-ab-test-setup"
            ]
        );
        assert!(tasks[0].deps.is_empty());
        assert_eq!(tasks[1].deps, vec![TaskId::new("01-launch-strategy")]);
        assert_eq!(tasks[3].deps.len(), 2);
        assert_eq!(tasks[3].phase, 2);
    }

    #[test]
    fn only_pending_tasks_with_all_dependencies_approved_are_released() {
        let mut tasks = tasks_for_steps(
            &"t".into(),
            &"g".into(),
            &steps(&[&["a", "b"], &["c"]]),
            Priority::P2,
            0,
        );
        let ids = |v: Vec<&Task>| v.iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(releasable(&tasks)), ["01-a", "02-b"]);
        tasks[0].status = TaskStatus::Approved;
        tasks[1].status = TaskStatus::InReview;
        assert!(releasable(&tasks).is_empty());
        tasks[1].status = TaskStatus::Approved;
        assert_eq!(ids(releasable(&tasks)), ["03-c"]);
    }

    #[test]
    fn categories_match_word_stems_in_rule_order() {
        let rules = vec![
            CategoryRule {
                category: "competitive".into(),
                keywords: vec!["competitor".into(), "vs".into()],
            },
            CategoryRule {
                category: "optimization".into(),
                keywords: vec!["conver".into(), "signup".into()],
            },
            CategoryRule {
                category: "measurement".into(),
                keywords: vec!["seo audit".into()],
            },
        ];
        assert_eq!(
            infer_category("Increase conversion rate", &rules, "strategic"),
            "optimization"
        );
        assert_eq!(
            infer_category("Answer our competitors", &rules, "strategic"),
            "competitive"
        );
        assert_eq!(
            infer_category("Run an SEO audit", &rules, "strategic"),
            "measurement"
        );
        assert_eq!(
            infer_category("Grow revenue", &rules, "strategic"),
            "strategic"
        );
        // "vs" must start a word: "canvas" does not match.
        assert_eq!(
            infer_category("Paint a canvas", &rules, "strategic"),
            "strategic"
        );
    }
}

/// One task of a plan made by the model: a skill and the indexes of the
/// tasks it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTask {
    pub skill: SkillName,
    pub deps: Vec<usize>,
}

/// Checks a model-made plan: at least one task, known skills, dependencies
/// that exist, no cycles, and every dependency allowed by `allowed(dep,
/// consumer)`. Returns every problem, worded for the model to fix.
pub fn validate_dag(
    tasks: &[PlannedTask],
    is_known: impl Fn(&SkillName) -> bool,
    allowed: impl Fn(&SkillName, &SkillName) -> bool,
    max_tasks: usize,
) -> Vec<String> {
    let mut errors = Vec::new();
    if tasks.is_empty() {
        errors.push("the plan has no tasks".to_string());
    }
    if tasks.len() > max_tasks {
        errors.push(format!(
            "the plan has {} tasks; at most {max_tasks} are allowed",
            tasks.len()
        ));
    }
    for (i, t) in tasks.iter().enumerate() {
        if !is_known(&t.skill) {
            errors.push(format!("task {} uses unknown skill \"{}\"", i + 1, t.skill));
        }
        for &d in &t.deps {
            match tasks.get(d) {
                None => errors.push(format!("task {} depends on task {} which does not exist", i + 1, d + 1)),
                Some(_) if d == i => errors.push(format!("task {} depends on itself", i + 1)),
                Some(dep) if is_known(&dep.skill) && is_known(&t.skill) && !allowed(&dep.skill, &t.skill) => errors.push(format!(
                    "task {} ({}) may not depend on task {} ({}): the skill registry has no such input",
                    i + 1,
                    t.skill,
                    d + 1,
                    dep.skill
                )),
                Some(_) => {}
            }
        }
    }
    if errors.is_empty() && depths(tasks).is_none() {
        errors.push("the dependencies form a cycle".to_string());
    }
    errors
}

/// The depth of each task (0 for tasks without dependencies), or `None`
/// when the dependencies contain a cycle.
pub fn depths(tasks: &[PlannedTask]) -> Option<Vec<u32>> {
    let mut depth: Vec<Option<u32>> = vec![None; tasks.len()];
    for _ in 0..=tasks.len() {
        let mut changed = false;
        for (i, t) in tasks.iter().enumerate() {
            if depth[i].is_some() {
                continue;
            }
            let ds: Option<Vec<u32>> = t
                .deps
                .iter()
                .map(|&d| depth.get(d).copied().flatten())
                .collect();
            if let Some(ds) = ds {
                depth[i] = Some(ds.into_iter().max().map_or(0, |m| m + 1));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth.into_iter().collect()
}

/// Materialises a validated model plan; ids are `NN-skill` like template
/// plans, phases are dependency depths.
pub fn tasks_for_dag(
    tenant: &TenantId,
    goal: &GoalId,
    planned: &[PlannedTask],
    priority: Priority,
    now_ms: u64,
) -> Vec<Task> {
    let depth = depths(planned).unwrap_or_else(|| vec![0; planned.len()]);
    let ids: Vec<TaskId> = planned
        .iter()
        .enumerate()
        .map(|(i, t)| TaskId::new(format!("{:02}-{}", i + 1, t.skill)))
        .collect();
    planned
        .iter()
        .enumerate()
        .map(|(i, t)| Task {
            tenant: tenant.clone(),
            goal: goal.clone(),
            id: ids[i].clone(),
            skill: t.skill.clone(),
            deps: t.deps.iter().filter_map(|&d| ids.get(d).cloned()).collect(),
            phase: depth[i],
            priority,
            status: TaskStatus::Pending,
            revision: 0,
            version: 1,
            updated_ms: now_ms,
            feedback: vec![],
            reason: None,
            outbox: vec![],
            heal: Vec::new(),
            strategy: Default::default(),
        })
        .collect()
}

#[cfg(test)]
mod dag_tests {
    use super::*;

    fn t(skill: &str, deps: &[usize]) -> PlannedTask {
        PlannedTask {
            skill: SkillName::new(skill),
            deps: deps.to_vec(),
        }
    }

    fn check(tasks: &[PlannedTask]) -> Vec<String> {
        validate_dag(
            tasks,
            |s| s.as_str() != "growth-hacking",
            |dep, _| dep.as_str() != "seo-audit",
            25,
        )
    }

    #[test]
    fn a_valid_dag_passes_and_gets_depths_as_phases() {
        let plan = [
            t("launch-strategy", &[]),
            t("copywriting", &[0]),
            t("paid-ads", &[0]),
            t("analytics-tracking", &[1, 2]),
        ];
        assert!(check(&plan).is_empty());
        let tasks = tasks_for_dag(&"t".into(), &"g".into(), &plan, Priority::P1, 0);
        let phases: Vec<u32> = tasks.iter().map(|t| t.phase).collect();
        assert_eq!(phases, [0, 1, 1, 2]);
        assert_eq!(
            tasks[3].deps,
            vec![TaskId::new("02-copywriting"), TaskId::new("03-paid-ads")]
        );
    }

    #[test]
    fn every_problem_is_reported_in_words_the_model_can_act_on() {
        let errs = check(&[t("growth-hacking", &[5]), t("copywriting", &[1])]);
        assert_eq!(
            errs,
            [
                "task 1 uses unknown skill \"growth-hacking\"",
                "task 1 depends on task 6 which does not exist",
                "task 2 depends on itself",
            ]
        );
        assert_eq!(check(&[]), ["the plan has no tasks"]);
    }

    #[test]
    fn cycles_and_disallowed_edges_are_refused() {
        assert_eq!(
            check(&[t("copywriting", &[1]), t("page-cro", &[0])]),
            ["the dependencies form a cycle"]
        );
        assert_eq!(
            check(&[t("seo-audit", &[]), t("copywriting", &[0])]),
            ["task 2 (copywriting) may not depend on task 1 (seo-audit): the skill registry has no such input"]
        );
    }
}
