//! Rendering goals, plans, reviews, outputs and traces for the terminal.

use chrono::{TimeZone, Utc};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use mktg_core::{Goal, Output, TaskStatus};
use mktg_store::GoalState;
use std::fmt::Write as _;

pub fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn date(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub fn goals(goals: &[Goal]) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(["goal", "status", "created (UTC)", "plan", "text"]);
    for g in goals {
        let text: String = g.text.chars().take(60).collect();
        t.add_row([
            g.id.to_string(),
            g.status.to_string(),
            date(g.created_ms),
            g.pipeline.clone().unwrap_or_else(|| g.category.clone()),
            text,
        ]);
    }
    t.to_string()
}

pub fn header(goal: &Goal) -> String {
    let mut s = format!(
        "goal {}  [{}]  tenant {}\n  \"{}\"\n  plan: {}  priority {}",
        goal.id,
        goal.status,
        goal.tenant,
        goal.text,
        goal.pipeline.as_deref().map_or_else(
            || format!("{} routes", goal.category),
            |p| format!("template \"{p}\"")
        ),
        goal.priority
    );
    if let Some(r) = &goal.reason {
        let _ = write!(s, "\n  reason: {r}");
    }
    s
}

/// Micro-dollars as dollars, precise enough for single calls.
pub fn usd(micros: u64) -> String {
    format!("${:.4}", mktg_core::cost::micros_to_usd(micros))
}

/// Micro-dollars as whole cents, for budgets.
pub fn dollars(micros: u64) -> String {
    format!("${:.2}", mktg_core::cost::micros_to_usd(micros))
}

/// Total cost line of a goal; scripted runs are priced as if the skill's
/// model tier had answered, and say so.
pub fn cost_line(state: &GoalState) -> String {
    let c = &state.cost;
    let scripted = state.turns.iter().any(|t| t.scripted);
    format!(
        "cost: {} over {} model calls ({} input, {} output, {} cache-write, {} cache-read tokens){}",
        usd(c.micros),
        c.calls,
        c.input_tokens,
        c.output_tokens,
        c.cache_write_tokens,
        c.cache_read_tokens,
        if scripted { "; scripted replies, priced at each skill's model tier" } else { "" }
    )
}

/// The plan as a table: one row per task, in plan order.
pub fn plan(state: &GoalState) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header([
        "task",
        "skill",
        "step",
        "after",
        "status",
        "rev",
        "words",
        "tokens in/out",
    ]);
    let mut tasks = state.tasks.clone();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    for task in &tasks {
        let out = latest_output(state, &task.id);
        t.add_row([
            task.id.to_string(),
            task.skill.to_string(),
            (task.phase + 1).to_string(),
            if task.deps.is_empty() {
                "-".into()
            } else {
                task.deps
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            task.status.to_string(),
            task.revision.to_string(),
            out.map(|o| mktg_core::review::word_count(&o.body).to_string())
                .unwrap_or_default(),
            out.map(|o| format!("{}/{}", o.usage.input_tokens, o.usage.output_tokens))
                .unwrap_or_default(),
        ]);
    }
    t.to_string()
}

fn latest_output<'a>(state: &'a GoalState, task: &mktg_core::TaskId) -> Option<&'a Output> {
    state
        .outputs
        .iter()
        .filter(|o| &o.task == task)
        .max_by_key(|o| o.revision)
}

pub fn reviews(state: &GoalState) -> String {
    let mut reviews = state.reviews.clone();
    reviews.sort_by(|a, b| {
        (a.task.as_str(), a.revision, a.at_ms).cmp(&(b.task.as_str(), b.revision, b.at_ms))
    });
    let mut s = String::new();
    for r in &reviews {
        let _ = writeln!(
            s,
            "  {} rev {}  {}  by {}: {}",
            r.task, r.revision, r.decision, r.reviewer, r.summary
        );
        if let Some(overall) = r.overall {
            let dims: Vec<String> = r.scores.iter().map(|(d, n)| format!("{d} {n}")).collect();
            let _ = writeln!(
                s,
                "      scores: overall {overall}/10  ({})",
                dims.join(", ")
            );
        }
        for f in &r.findings {
            match &f.quote {
                Some(q) => {
                    let _ = writeln!(
                        s,
                        "      - [{:?}] \"{}\": {} → {}",
                        f.severity, q, f.problem, f.fix
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "      - [{:?}] {}: {} → {}",
                        f.severity, f.section, f.problem, f.fix
                    );
                }
            }
        }
    }
    if s.is_empty() {
        s.push_str("  (no reviews yet)\n");
    }
    s
}

/// Every tool call of the goal: who called what, its fate and its answer.
pub fn tool_calls(state: &GoalState) -> String {
    let mut calls = state.calls.clone();
    calls.sort_by(|a, b| {
        (a.task.as_str(), a.revision, a.turn, &a.id).cmp(&(
            b.task.as_str(),
            b.revision,
            b.turn,
            &b.id,
        ))
    });
    let mut s = String::new();
    for c in &calls {
        let answer: String = c
            .result
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(100)
            .collect();
        let _ = writeln!(
            s,
            "  {} turn {}  {} {}  [{}{}]{}\n      args {}{}",
            c.task,
            c.turn,
            c.name,
            c.effect,
            c.status,
            if c.is_error { ", error" } else { "" },
            c.decided_by
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default(),
            c.input,
            if answer.is_empty() {
                String::new()
            } else {
                format!("\n      → {answer}")
            }
        );
        if c.status == mktg_core::CallStatus::AwaitingApproval {
            let _ = writeln!(
                s,
                "      waiting: mktg approve {}  |  mktg deny {} --reason \"...\"",
                c.id, c.id
            );
        }
    }
    s
}

/// The label every scripted output carries wherever it is shown.
pub fn provenance(o: &Output) -> String {
    if o.scripted {
        "SCRIPTED — replayed from the scripted provider's script, not written by a model".into()
    } else {
        format!("model {}", o.model)
    }
}

/// The latest output of each task; at most `max_lines` lines of each.
pub fn outputs(state: &GoalState, max_lines: usize) -> String {
    let mut s = String::new();
    let mut tasks = state.tasks.clone();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    for task in &tasks {
        let Some(o) = latest_output(state, &task.id) else {
            continue;
        };
        let _ = writeln!(
            s,
            "──── {} · revision {} · {} · {}",
            task.id,
            o.revision,
            task.status,
            provenance(o)
        );
        let lines: Vec<&str> = o.body.lines().collect();
        for line in lines.iter().take(max_lines) {
            let _ = writeln!(s, "  {line}");
        }
        if lines.len() > max_lines {
            let _ = writeln!(
                s,
                "  … {} more lines: mktg output {} {}",
                lines.len() - max_lines,
                task.goal,
                task.id
            );
        }
    }
    s
}

pub fn trace(state: &GoalState) -> String {
    let mut traces = state.traces.clone();
    traces.sort_by_key(|t| t.at_ms);
    let mut s = String::new();
    for t in &traces {
        let _ = writeln!(
            s,
            "{}  {:<24} {:>14} → {:<14} {}",
            time(t.at_ms),
            t.subject,
            t.from,
            t.to,
            t.note
        );
    }
    s
}

/// Counts for a one-line progress summary.
pub fn progress(state: &GoalState) -> String {
    let n = state.tasks.len();
    let count = |s: TaskStatus| state.tasks.iter().filter(|t| t.status == s).count();
    let mut line = format!(
        "{}/{} approved, {} running, {} in review, {} revising",
        count(TaskStatus::Approved),
        n,
        count(TaskStatus::InProgress) + count(TaskStatus::Assigned),
        count(TaskStatus::InReview) + count(TaskStatus::Completed),
        count(TaskStatus::Revision)
    );
    let tools = count(TaskStatus::AwaitingTools);
    if tools > 0 {
        let _ = write!(line, ", {tools} using tools");
    }
    let approval = count(TaskStatus::AwaitingApproval);
    if approval > 0 {
        let _ = write!(line, ", {approval} waiting for approval (mktg approvals)");
    }
    line
}

/// The month's ledger: total, then goals, skills and models by spend.
pub fn costs(month: &str, rows: &[(String, mktg_store::CostTotals)]) -> String {
    let mut s = String::new();
    let total = rows
        .iter()
        .find(|(k, _)| k == "TOTAL")
        .map(|(_, c)| *c)
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{month}: {} over {} model calls ({} input / {} output tokens, {} cache-read)",
        usd(total.micros),
        total.calls,
        total.input_tokens,
        total.output_tokens,
        total.cache_read_tokens
    );
    for (prefix, title) in [("GOAL#", "goal"), ("SKILL#", "skill"), ("MODEL#", "model")] {
        let mut group: Vec<(&str, &mktg_store::CostTotals)> = rows
            .iter()
            .filter_map(|(k, c)| k.strip_prefix(prefix).map(|name| (name, c)))
            .collect();
        if group.is_empty() {
            continue;
        }
        group.sort_by_key(|g| std::cmp::Reverse(g.1.micros));
        let mut t = Table::new();
        t.load_style(UTF8_BORDERS_ONLY);
        t.set_header([title, "cost", "calls", "input tokens", "output tokens"]);
        for (name, c) in group {
            t.add_row([
                name.to_string(),
                usd(c.micros),
                c.calls.to_string(),
                c.input_tokens.to_string(),
                c.output_tokens.to_string(),
            ]);
        }
        let _ = writeln!(s, "{t}");
    }
    s
}

/// One skill's learnings; with `report`, each one's validation figures.
pub fn learnings(
    skill: &str,
    learnings: &[mktg_core::learn::Learning],
    uses: &[mktg_core::learn::LearningUse],
    report: bool,
) -> String {
    use mktg_core::learn::compare;
    let mut s = String::new();
    let control = mktg_core::learn::control_scores(uses);
    let _ = writeln!(
        s,
        "{skill}: {} learning(s); control group: {} scored revision(s){}",
        learnings.len(),
        control.len(),
        if control.is_empty() {
            String::new()
        } else {
            format!(
                ", mean {:.2}",
                control.iter().sum::<f64>() / control.len() as f64
            )
        }
    );
    for l in learnings {
        let _ = writeln!(
            s,
            "  {}{}  (from {}/{}, scored {}/10)\n    {}",
            l.id,
            l.pruned.as_deref().map(|_| "  [PRUNED]").unwrap_or(""),
            l.source_goal,
            l.source_task,
            l.score,
            l.text
        );
        if !report {
            continue;
        }
        let with = mktg_core::learn::scores_with(uses, |id| id == l.id);
        match compare(&with, &control) {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "    with: {:.2} (n={})  without: {:.2} (n={})  difference {:+.2}, 95% CI {:+.2} to {:+.2}",
                    c.mean_with, c.n_with, c.mean_without, c.n_without, c.diff, c.ci_low, c.ci_high
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "    with: n={}  without: n={}  (too few samples to compare; needs 2 of each)",
                    with.len(),
                    control.len()
                );
            }
        }
        if let Some(why) = &l.pruned {
            let _ = writeln!(s, "    pruned: {why}");
        }
    }
    s
}

/// The patterns of each skill (`mktg learnings patterns`).
pub fn patterns(docs: &[(String, serde_json::Value)], skill: Option<&str>) -> String {
    use mktg_core::learn::Pattern;
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut any = false;
    for (name, body) in docs {
        if skill.is_some_and(|s| s != name) {
            continue;
        }
        let list: Vec<Pattern> =
            serde_json::from_value(body["patterns"].clone()).unwrap_or_default();
        if list.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(out, "{name}");
        for p in list {
            let lift = p
                .diff
                .map(|d| format!(", {d:+.2} vs control"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  • {}\n    held in {} goals, {} learnings, mean score {:.1}{lift}",
                p.text,
                p.goals.len(),
                p.learnings.len(),
                p.mean_score
            );
        }
    }
    if !any {
        out.push_str(
            "no patterns yet: a pattern needs validated learnings from at least two goals (run `mktg learnings patterns --refresh` to aggregate now)\n",
        );
    }
    out
}
