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
