//! `mktg`: submit goals and pipelines, watch them, inspect results, validate
//! the configuration, and run every function locally against the emulator.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mktg_boot::{Deps, Settings};
use mktg_bus::SqsConsumer;
use mktg_cli::{dev, show};
use mktg_core::{Envelope, GoalId, GoalSource, Message, Priority, TaskId, TenantId};
use mktg_store::GoalKey;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "mktg",
    version,
    about = "An AI marketing team on serverless AWS: state a goal, get planned, reviewed work.",
    long_about = "An AI marketing team on serverless AWS. A goal is planned into tasks for specialist \
skills, each task's output is reviewed and revised, and everything is durable state in DynamoDB.\n\n\
Against the local emulator: run `localstack/up` first; it writes .mktg/emulator.env, which this tool \
reads. Typical session:\n  mktg validate\n  mktg goal \"Write a blog post about our new invoicing feature\" --wait --workers\n  \
mktg status\n  mktg trace <goal>",
    after_help = "Environment: TABLE_NAME, EVENT_BUS_NAME and the *_QUEUE_URL variables name the resources \
(from .mktg/emulator.env or a deployed stack); AWS_ENDPOINT_URL points at the emulator; MKTG_TENANT \
picks the tenant (default \"default\"); ANTHROPIC_API_KEY or MKTG_PROVIDER choose the model provider."
)]
struct Cli {
    /// Repository root holding config/ and skills/.
    #[arg(long, global = true, env = "MKTG_ROOT", default_value = ".")]
    root: PathBuf,
    /// Env file with the emulator's resource names.
    #[arg(long, global = true, default_value = ".mktg/emulator.env")]
    env_file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check config/ and skills/; print every error with file:line.
    Validate,
    /// Submit a goal in plain words; the director plans it.
    Goal {
        /// What you want, e.g. "Launch the new pricing page".
        text: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Start a pipeline template directly, e.g. "Content Production".
    Pipeline {
        /// Template name from config/pipelines.yaml (case and dashes ignored).
        template: String,
        /// Goal text for the run (default: "Run the <template> pipeline").
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// List goals, or show one goal's plan and progress.
    Status {
        goal: Option<String>,
        /// Also print reviews and outputs.
        #[arg(long)]
        full: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print the timeline of every transition of a goal.
    Trace { goal: String },
    /// Print one task's output in full (latest revision unless --revision).
    Output {
        goal: String,
        task: String,
        #[arg(long)]
        revision: Option<u32>,
    },
    /// List schedules with their next fire times (UTC).
    Schedules {
        /// How many upcoming fire times to show per schedule.
        #[arg(long, default_value_t = 3)]
        next: usize,
    },
    /// Print the headers (and a curl command) of a correctly signed test
    /// webhook in our generic format.
    WebhookSign {
        /// Source name, e.g. ga4; its secret is WEBHOOK_SECRET_<SOURCE>.
        #[arg(long)]
        source: String,
        /// The JSON body to send (needs "type" and "id").
        #[arg(long)]
        body: String,
        /// Where the webhook function listens.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        url: String,
    },
    /// Run one scheduler tick now (what the every-minute rule does).
    Tick,
    /// MCP tool servers of config/tools.yaml. `tools check` starts or
    /// reaches every server and lists its tools, or says exactly why not;
    /// `tools list` shows which skills may use which servers, with policies.
    Tools {
        #[command(subcommand)]
        action: ToolsAction,
    },
    /// List what waits for a person: tool calls that write or spend, and
    /// budget-shift proposals (shift-…).
    Approvals,
    /// Learnings: `learnings report` shows, per skill and learning, the mean
    /// review score with and without it, samples and a 95% interval;
    /// `learnings list` shows their text.
    Learnings {
        #[command(subcommand)]
        action: LearningsAction,
    },
    /// Tasks that reached their revision limit (or were rejected) and need
    /// a person, with the reviewers' last word on each.
    Escalations {
        /// How many recent goals to look through.
        #[arg(long, default_value_t = 200)]
        goals: usize,
    },
    /// Approve a waiting tool call (it then runs exactly once) or a budget
    /// shift (shift-…: the channel allocation changes and a goal to apply it
    /// starts). CALL is the reference from `mktg approvals` (the call id
    /// alone is enough).
    Approve {
        call: String,
        /// Who approves, for the record.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// Deny a waiting tool call (the agent is told why and continues
    /// without it) or a budget shift (nothing changes).
    Deny {
        call: String,
        /// Why, in words the agent will read.
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// Cancel a running or escalated goal: its unfinished tasks stop and
    /// its tool calls waiting for approval are denied.
    Cancel {
        goal: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// Decide an escalated task (see `mktg escalations`): `accept` its last
    /// output as it is, `retry` once more with --note as feedback, or
    /// `cancel` the goal.
    Resolve {
        goal: String,
        task: String,
        #[arg(value_parser = ["accept", "retry", "cancel"])]
        action: String,
        /// What to change (read by the agent on a retry).
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// Dead-letter queues: `dlq list` shows each dead message with its task;
    /// `dlq redrive` sends them all back to their queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Spend by month: total, per goal, per skill and per model.
    Cost {
        /// Only this goal's cost.
        #[arg(long)]
        goal: Option<String>,
        /// Month as yyyy-mm (default: this month, UTC).
        #[arg(long)]
        month: Option<String>,
    },
    /// Show the budget in force, this month's spend and level, and parked
    /// tasks; `budget set` changes it and resumes parked tasks.
    Budget {
        #[command(subcommand)]
        action: Option<BudgetAction>,
    },
    /// Run every function's handler in this process, polling the emulator's
    /// queues like Lambda's SQS event source mapping. Stops on Ctrl-C.
    Dev {
        /// Records per receive (Lambda's batch size), 1-10.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
        batch_size: i32,
    },
    /// Serve the dashboard and the REST API on a local port, over the
    /// emulator, with every function's handler running in this process
    /// (as `mktg dev`). Keys come from MKTG_API_KEYS; without it an owner
    /// key for the tenant is made once and kept in .mktg/api-key.
    /// Stops on Ctrl-C.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Serve only; run no handlers (when `mktg dev` runs elsewhere).
        #[arg(long)]
        no_workers: bool,
        /// Serve the dashboard's files from this directory, read at each
        /// request (default: web/ of the checkout when present; else the
        /// copies compiled into the binary).
        #[arg(long)]
        web_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LearningsAction {
    /// Mean score with and without each learning, samples, interval, pruned.
    Report {
        /// Only this skill.
        #[arg(long)]
        skill: Option<String>,
    },
    /// Every learning with its source and score.
    List {
        #[arg(long)]
        skill: Option<String>,
    },
    /// Patterns: validated learnings that held across at least two goals,
    /// as the compound-learnings job (schedules.yaml) last aggregated them.
    Patterns {
        #[arg(long)]
        skill: Option<String>,
        /// Aggregate now instead of showing the last run.
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(Subcommand)]
enum ToolsAction {
    /// Connect to each server (or one) and list its tools.
    Check {
        /// Only this server.
        server: Option<String>,
    },
    /// Servers, the skills that may use them, effects, approvals, limits.
    List,
}

#[derive(Subcommand)]
enum DlqAction {
    /// Show dead messages (not consumed).
    List {
        #[arg(long, default_value_t = 50)]
        max: usize,
    },
    /// Send every dead message back to its queue; safe, handlers dedupe.
    Redrive,
}

#[derive(Subcommand)]
enum BudgetAction {
    /// Set the tenant's budget (overrides budget.yaml) and resume every task
    /// the budget gate parked.
    Set {
        /// Monthly budget in US dollars.
        #[arg(long)]
        monthly: f64,
        /// Budget per goal in US dollars (default: budget.yaml's).
        #[arg(long)]
        per_goal: Option<f64>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Wait for the goal to settle, showing progress, then print the plan,
    /// reviews and outputs.
    #[arg(long)]
    wait: bool,
    /// While waiting, also run the functions in this process (as `mktg dev`
    /// would), so no separate worker is needed.
    #[arg(long, requires = "wait")]
    workers: bool,
    /// Show the plan and a cost forecast without running anything.
    #[arg(long, conflicts_with = "wait")]
    dry_run: bool,
    /// P0 (critical) to P3 (low); default: the template's.
    #[arg(long, value_parser = parse_priority)]
    priority: Option<Priority>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Lines of each output to print at the end.
    #[arg(long, default_value_t = 12)]
    lines: usize,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    Priority::parse(s).ok_or_else(|| format!("\"{s}\" is not a priority; use P0, P1, P2 or P3"))
}

fn main() {
    let cli = Cli::parse();
    // Loaded before any thread starts, so setting variables is sound.
    let env_file = if cli.env_file.is_absolute() {
        cli.env_file.clone()
    } else {
        cli.root.join(&cli.env_file)
    };
    if let Err(e) = mktg_cli::load_env_file(&env_file) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    if std::env::var_os("MKTG_ROOT").is_none() {
        std::env::set_var("MKTG_ROOT", &cli.root);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Validate = cli.command {
        return validate(&cli.root);
    }
    if let Command::Schedules { next } = cli.command {
        return schedules(&cli.root, next);
    }
    if let Command::WebhookSign { source, body, url } = &cli.command {
        return webhook_sign(source, body, url);
    }
    if let Command::Tools { action } = &cli.command {
        return tools_command(&cli.root, action).await;
    }
    if std::env::var("MKTG_LOG").is_ok()
        || matches!(cli.command, Command::Dev { .. } | Command::Serve { .. })
    {
        std::env::set_var(
            "RUST_LOG",
            std::env::var("MKTG_LOG").unwrap_or_else(|_| "info".into()),
        );
        mktg_boot::init_tracing();
    }
    let settings = Settings::from_env()?;
    let deps = Deps::build(&settings).await?;
    let provider_note = deps.model_note.clone();
    let tenant = TenantId::new(settings.tenant.clone());
    if let Command::Pipeline { template, .. } = &cli.command {
        if deps.config.pipeline(template).is_none() {
            let known: Vec<&str> = deps
                .config
                .pipelines
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            bail!(
                "unknown pipeline template \"{template}\"; known templates: {}",
                known.join(", ")
            );
        }
    }
    ensure_reachable(&deps, &tenant).await?;

    match cli.command {
        Command::Validate
        | Command::Schedules { .. }
        | Command::WebhookSign { .. }
        | Command::Tools { .. } => Ok(()),
        Command::Learnings {
            action: LearningsAction::Patterns { skill, refresh },
        } => {
            if refresh {
                let summary = scheduler_tick::jobs::run(
                    &deps,
                    &tenant,
                    mktg_config::Job::CompoundLearnings,
                    chrono::Utc::now(),
                )
                .await?;
                println!("aggregated: {summary}");
            }
            let docs = deps
                .store
                .docs(&tenant, scheduler_tick::jobs::PATTERNS)
                .await?;
            print!("{}", show::patterns(&docs, skill.as_deref()));
            Ok(())
        }
        Command::Learnings { action } => {
            let (skill_filter, report) = match &action {
                LearningsAction::Report { skill } => (skill.clone(), true),
                LearningsAction::List { skill } => (skill.clone(), false),
                LearningsAction::Patterns { .. } => unreachable!("handled above"),
            };
            if let Some(s) = &skill_filter {
                if deps
                    .config
                    .skill(&mktg_core::SkillName::new(s.clone()))
                    .is_none()
                {
                    bail!("unknown skill \"{s}\" (see config/skills.yaml)");
                }
            }
            let mut any = false;
            for skill in deps.config.skills.keys() {
                if skill_filter.as_deref().is_some_and(|f| f != skill.as_str()) {
                    continue;
                }
                let (learnings, uses) = deps.store.learnings(&tenant, skill.as_str()).await?;
                if learnings.is_empty() {
                    continue;
                }
                any = true;
                print!(
                    "{}",
                    show::learnings(skill.as_str(), &learnings, &uses, report)
                );
            }
            if !any {
                println!("no learnings yet: they are distilled when outputs are approved");
            }
            Ok(())
        }
        Command::Escalations { goals } => {
            let list = mktg_actions::views::escalations(&deps, &tenant, goals).await?;
            for e in &list {
                println!(
                    "{} / {}  ({}, revision {})  {}",
                    e.goal, e.task, e.skill, e.revision, e.reason
                );
                if let Some(last) = &e.last_review {
                    println!(
                        "    last review ({} on revision {}): {} {}",
                        last["reviewer"].as_str().unwrap_or_default(),
                        last["revision"],
                        last["decision"].as_str().unwrap_or_default(),
                        last["summary"].as_str().unwrap_or_default()
                    );
                }
                println!("    see: mktg status {} --full", e.goal);
            }
            if list.is_empty() {
                println!("no escalated tasks");
            }
            Ok(())
        }
        Command::Cancel { goal, reason, by } => {
            mktg_actions::human::cancel(&deps, &tenant, &goal, &by, &reason).await?;
            println!("cancelling goal {goal}: the director stops its unfinished tasks (mktg status {goal})");
            Ok(())
        }
        Command::Resolve {
            goal,
            task,
            action,
            note,
            by,
        } => {
            let Some(resolution) = mktg_core::Resolution::parse(&action) else {
                bail!("action \"{action}\" is not accept, retry or cancel");
            };
            mktg_actions::human::resolve(&deps, &tenant, &goal, &task, resolution, &by, &note)
                .await?;
            println!("{action} sent for {goal} / {task} (mktg trace {goal})");
            Ok(())
        }
        Command::Approvals => {
            let pending = mktg_cli::approvals::list(&deps, &tenant).await?;
            let shifts = mktg_cli::approvals::pending_shifts(&deps, &tenant).await?;
            if pending.is_empty() && shifts.is_empty() {
                println!("nothing is waiting for approval");
            }
            for p in &shifts {
                let s = &p["shift"];
                let id = p["id"].as_str().unwrap_or("?");
                println!(
                    "{id}  budget shift: move {} USD/month from {} ({} revenue per dollar) to {} ({})\n    before: {}  after: {}\n    mktg approve {id}   |   mktg deny {id} --reason \"...\"",
                    s["amount"], s["from"].as_str().unwrap_or("?"), s["from_roi"], s["to"].as_str().unwrap_or("?"), s["to_roi"], s["before"], s["after"]
                );
            }
            for a in pending {
                println!(
                    "{}  {} ({})  goal {}  task {}\n    arguments: {}\n    mktg approve {}   |   mktg deny {} --reason \"...\"",
                    a.reference, a.tool, a.effect, a.goal, a.task, a.input, a.call, a.call
                );
            }
            Ok(())
        }
        Command::Approve { call, by } if mktg_cli::approvals::is_shift(&call) => {
            let p = mktg_cli::approvals::decide_shift(&deps, &tenant, &call, true, &by, "").await?;
            println!(
                "approved {call}: the allocation is now {}; a goal to carry it out in the ad platforms starts (its spend tools still ask for approval)",
                p["shift"]["after"]
            );
            Ok(())
        }
        Command::Deny { call, reason, by } if mktg_cli::approvals::is_shift(&call) => {
            mktg_cli::approvals::decide_shift(&deps, &tenant, &call, false, &by, &reason).await?;
            println!("denied {call}; the allocation stays as it is");
            Ok(())
        }
        Command::Approve { call, by } => {
            let c = mktg_cli::approvals::approve(&deps, &tenant, &call, &by).await?;
            println!(
                "approved {} ({}); it is queued and runs once (watch: mktg status)",
                c.reference(),
                c.name
            );
            Ok(())
        }
        Command::Deny { call, reason, by } => {
            let c = mktg_cli::approvals::deny(&deps, &tenant, &call, &by, &reason).await?;
            println!(
                "denied {} ({}); the agent continues without it",
                c.reference(),
                c.name
            );
            Ok(())
        }
        Command::Tick => {
            let report = scheduler_tick::tick(&deps, &tenant, deps.clock.now_ms()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Goal { text, run } => {
            submit(&deps, &settings, &tenant, &provider_note, text, None, run).await
        }
        Command::Pipeline {
            template,
            text,
            run,
        } => {
            let text = text.unwrap_or_else(|| format!("Run the {template} pipeline"));
            submit(
                &deps,
                &settings,
                &tenant,
                &provider_note,
                text,
                Some(template),
                run,
            )
            .await
        }
        Command::Status {
            goal: None, limit, ..
        } => {
            let goals = deps.store.goals(&tenant, limit).await?;
            if goals.is_empty() {
                println!("no goals yet for tenant {tenant}; submit one with: mktg goal \"...\" --wait --workers");
            } else {
                println!("{}", show::goals(&goals));
            }
            Ok(())
        }
        Command::Status {
            goal: Some(goal),
            full,
            ..
        } => {
            let state = load(&deps, &tenant, &goal).await?;
            if let Some(g) = &state.goal {
                println!("{}\n", show::header(g));
            }
            println!("{}", show::plan(&state));
            println!("{}", show::cost_line(&state));
            let calls = show::tool_calls(&state);
            if !calls.is_empty() {
                println!("\nTool calls\n{calls}");
            }
            if full {
                println!("\nReviews\n{}", show::reviews(&state));
                println!("Outputs\n{}", show::outputs(&state, usize::MAX));
            }
            Ok(())
        }
        Command::Cost {
            goal: Some(goal), ..
        } => {
            let state = load(&deps, &tenant, &goal).await?;
            println!("{}", show::plan(&state));
            println!("{}", show::cost_line(&state));
            Ok(())
        }
        Command::Cost { goal: None, month } => {
            let month = month.unwrap_or_else(|| mktg_boot::month_of(deps.clock.now_ms()));
            let rows = deps.store.costs(&tenant, &month).await?;
            print!("{}", show::costs(&month, &rows));
            Ok(())
        }
        Command::Dlq { action } => {
            if settings.dlq_urls.is_empty() {
                bail!("no dead-letter queue URLs (DIRECTOR_DLQ_URL, ...) in the environment; localstack/up writes them to .mktg/emulator.env");
            }
            let consumer = SqsConsumer::new(sqs_client().await);
            match action {
                DlqAction::List { max } => {
                    let dead = mktg_cli::dlq::list(
                        &consumer,
                        deps.store.as_ref(),
                        &settings.dlq_urls,
                        max,
                    )
                    .await?;
                    if dead.is_empty() {
                        println!("every dead-letter queue is empty");
                    }
                    for d in dead {
                        println!(
                            "{:<8} {}  received {}x  {}{}",
                            d.queue.as_str(),
                            d.message_id,
                            d.receive_count,
                            d.what,
                            d.task_state
                                .map(|s| format!("  [task now {s}]"))
                                .unwrap_or_default()
                        );
                    }
                }
                DlqAction::Redrive => {
                    let moved =
                        mktg_cli::dlq::redrive(&consumer, &settings.queue_urls, &settings.dlq_urls)
                            .await?;
                    println!("redrove {moved} message(s) to their queues");
                }
            }
            Ok(())
        }
        Command::Budget { action: None } => budget_show(&deps, &tenant).await,
        Command::Budget {
            action: Some(BudgetAction::Set { monthly, per_goal }),
        } => budget_set(&deps, &tenant, monthly, per_goal).await,
        Command::Trace { goal } => {
            let state = load(&deps, &tenant, &goal).await?;
            print!("{}", show::trace(&state));
            Ok(())
        }
        Command::Output {
            goal,
            task,
            revision,
        } => {
            let key = GoalKey::new(tenant.clone(), GoalId::new(goal.clone()));
            let state = deps.store.goal_state(&key).await?;
            let task_id = TaskId::new(task.clone());
            let output = state
                .outputs
                .iter()
                .filter(|o| o.task == task_id && revision.is_none_or(|r| r == o.revision))
                .max_by_key(|o| o.revision)
                .with_context(|| format!("no output for task \"{task}\" of goal \"{goal}\" (see: mktg status {goal})"))?;
            println!(
                "<!-- {} · revision {} · {} -->\n{}",
                output.task,
                output.revision,
                show::provenance(output),
                output.body
            );
            Ok(())
        }
        Command::Serve {
            listen,
            no_workers,
            web_dir,
        } => {
            let dir = web_dir.unwrap_or_else(|| cli.root.join("web"));
            if dir.join("index.html").is_file() {
                api::web::serve_files_from(dir);
            }
            serve(&cli.root, deps, &settings, listen, !no_workers).await
        }
        Command::Dev { batch_size } => {
            println!("mktg dev: running director, agent-executor, reviewer and tool-invoker against the emulator; using the {provider_note}. Ctrl-C stops.");
            let workers = dev::Workers::start(
                deps.clone(),
                SqsConsumer::new(sqs_client().await),
                settings.queue_urls.clone(),
                batch_size,
            );
            tokio::signal::ctrl_c().await?;
            let stats = workers.stop().await?;
            println!(
                "stopped: {} handled, {} failed, {} retried",
                stats.handled.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed),
                stats.retried.load(Ordering::Relaxed)
            );
            Ok(())
        }
    }
}

/// The API keys `mktg serve` accepts: MKTG_API_KEYS, or a local owner key
/// for the tenant, made once and kept (mode 0600) in .mktg/api-key.
fn local_keys(root: &std::path::Path, tenant: &TenantId) -> Result<(api::ApiKeys, Option<String>)> {
    if let Ok(spec) = std::env::var("MKTG_API_KEYS") {
        return Ok((
            api::ApiKeys::parse(&spec).map_err(|e| anyhow::anyhow!(e))?,
            None,
        ));
    }
    let path = root.join(".mktg/api-key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
        _ => {
            let key = format!("mktg_local_{}", uuid::Uuid::new_v4().simple());
            std::fs::create_dir_all(root.join(".mktg"))?;
            std::fs::write(&path, &key).with_context(|| format!("writing {}", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            key
        }
    };
    let spec = api::ApiKeys::entry(tenant.as_str(), api::Role::Owner, &key);
    Ok((
        api::ApiKeys::parse(&spec).map_err(|e| anyhow::anyhow!(e))?,
        Some(key),
    ))
}

async fn serve(
    root: &std::path::Path,
    deps: Deps,
    settings: &Settings,
    listen: std::net::SocketAddr,
    workers: bool,
) -> Result<()> {
    let tenant = TenantId::new(settings.tenant.clone());
    let (mut keys, local) = local_keys(root, &tenant)?;
    if let Some(oidc) = api::oidc::Oidc::from_env().map_err(|e| anyhow::anyhow!(e))? {
        println!("  sign-in: OpenID Connect provider {}", oidc.issuer);
        keys = keys.with_oidc(oidc);
    }
    if let Some(per_hour) = api::ApiKeys::signup_from_env().map_err(|e| anyhow::anyhow!(e))? {
        println!("  sign-up: open (MKTG_SIGNUP=open): anyone who reaches this address may create a tenant ({per_hour} an hour)");
        keys = keys.with_signup_limit(Some(per_hour));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (is another mktg serve running? use --listen)")
        })?;
    let handle = if workers {
        Some(dev::Workers::start(
            deps.clone(),
            SqsConsumer::new(sqs_client().await),
            settings.queue_urls.clone(),
            10,
        ))
    } else {
        None
    };
    println!("mktg serve: the dashboard and the REST API at http://{listen}/ (OpenAPI at /openapi.json); {}.", deps.model_note);
    if workers {
        println!("  every function's handler runs in this process, polling the emulator's queues");
    }
    match local {
        Some(key) => println!(
            "  sign in with the owner key of tenant {tenant} (kept in .mktg/api-key): {key}\n  or open http://{listen}/#key={key}"
        ),
        None => println!("  keys: MKTG_API_KEYS"),
    }
    println!("  Ctrl-C stops.");
    mktg_cli::serve::run(deps, keys, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(h) = handle {
        h.stop().await?;
    }
    Ok(())
}

fn validate(root: &std::path::Path) -> Result<()> {
    match mktg_config::load(&mktg_config::Paths::under(root)) {
        Ok(cfg) => {
            println!(
                "config OK: {} skills in {} squads, {} pipelines, {} categories, {} budget levels, {} model tiers, {} tool servers",
                cfg.skills.len(),
                cfg.squads.len(),
                cfg.pipelines.len(),
                cfg.categories.len(),
                cfg.budget.levels.len(),
                cfg.models.tiers.len(),
                cfg.tools.servers.len()
            );
            for skill in cfg.skills.values() {
                if !cfg.rubrics.list.is_empty() && cfg.rubric_for(&skill.name).is_none() {
                    println!(
                        "note: skill {} has no rubric (rubrics.yaml, or rubric: in skills.yaml); its outputs get structural review only",
                        skill.name
                    );
                }
                for cap in &skill.capabilities {
                    if cfg.tools.provider_of(cap, &skill.name).is_none() {
                        println!(
                            "note: skill {} can use {cap}, but no server in {} provides it (see tools.catalog.yaml)",
                            skill.name,
                            cfg.tools.file.display()
                        );
                    }
                }
            }
            // Credentials are read when a server starts: missing ones are
            // warnings here, since the deployment may provide them.
            for s in cfg.tools.servers.values() {
                let missing: Vec<String> = s
                    .credential_vars()
                    .into_iter()
                    .filter(|v| std::env::var_os(v).is_none())
                    .collect();
                if !missing.is_empty() {
                    println!(
                        "warning: {}: tool server \"{}\" needs {} (not set here)",
                        cfg.tools.file.display(),
                        s.name,
                        missing.join(", ")
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    }
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&aws)
}

/// Fails early, with the fix, when the AWS endpoint cannot be reached.
async fn ensure_reachable(deps: &Deps, tenant: &TenantId) -> Result<()> {
    if let Err(e) = deps.store.goals(tenant, 1).await {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "the default AWS endpoint".into());
        bail!(
            "cannot reach DynamoDB at {endpoint} ({e}).\nIs the local emulator running? Start it with: localstack/up\n(or point AWS_ENDPOINT_URL and TABLE_NAME at a deployed stack)"
        );
    }
    Ok(())
}

async fn load(deps: &Deps, tenant: &TenantId, goal: &str) -> Result<mktg_store::GoalState> {
    let key = GoalKey::new(tenant.clone(), GoalId::new(goal));
    let state = deps.store.goal_state(&key).await?;
    if state.goal.is_none() {
        bail!("no goal \"{goal}\" for tenant {tenant}; list goals with: mktg status");
    }
    Ok(state)
}

fn new_goal_id() -> GoalId {
    let id = uuid::Uuid::new_v4().simple().to_string();
    GoalId::new(format!(
        "g-{}-{}",
        chrono::Utc::now().format("%Y%m%d"),
        &id[..8]
    ))
}

async fn submit(
    deps: &Deps,
    settings: &Settings,
    tenant: &TenantId,
    provider_note: &str,
    text: String,
    pipeline: Option<String>,
    run: RunArgs,
) -> Result<()> {
    if text.trim().is_empty() {
        bail!("the goal text is empty; say what you want, e.g. mktg goal \"Launch the new pricing page\"");
    }
    if run.dry_run {
        return dry_run(
            deps,
            tenant,
            &text,
            pipeline.as_deref(),
            run.priority.unwrap_or_default(),
        )
        .await;
    }
    let goal = new_goal_id();
    let now = deps.clock.now_ms();
    let source = if pipeline.is_some() {
        GoalSource::Pipeline
    } else {
        GoalSource::User
    };
    let env = Envelope::new(
        tenant.clone(),
        goal.clone(),
        Message::GoalSubmitted {
            text,
            pipeline,
            priority: run.priority.unwrap_or_default(),
            source: Some(source),
            submitted_ms: now,
        },
    );
    deps.bus.send(&env).await?;
    println!("submitted goal {goal} (tenant {tenant})");
    println!("model: {provider_note}");
    if !run.wait {
        println!("follow it with: mktg status {goal}   or   mktg trace {goal}");
        return Ok(());
    }
    let worker = if run.workers {
        Some(dev::Workers::start(
            deps.clone(),
            SqsConsumer::new(sqs_client().await),
            settings.queue_urls.clone(),
            10,
        ))
    } else {
        println!("waiting; make sure `mktg dev` (or the deployed functions) are running");
        None
    };
    let result = watch(deps, tenant, &goal, &run).await;
    if let Some(w) = worker {
        w.stop().await?;
    }
    result
}

/// Streams every new transition until the goal settles, then prints the
/// plan, the reviews and the outputs.
async fn watch(deps: &Deps, tenant: &TenantId, goal: &GoalId, run: &RunArgs) -> Result<()> {
    let key = GoalKey::new(tenant.clone(), goal.clone());
    let start = Instant::now();
    let mut seen = 0usize;
    let mut printed_plan = false;
    loop {
        let state = deps.store.goal_state(&key).await?;
        let mut traces = state.traces.clone();
        traces.sort_by_key(|t| t.at_ms);
        for t in traces.iter().skip(seen) {
            println!(
                "  {}  {:<24} {:>12} → {:<12} {}",
                show::time(t.at_ms),
                t.subject,
                t.from,
                t.to,
                t.note
            );
        }
        if traces.len() > seen {
            seen = traces.len();
            if !printed_plan && !state.tasks.is_empty() {
                printed_plan = true;
            }
            println!(
                "  [{:>5.1}s] {}",
                start.elapsed().as_secs_f64(),
                show::progress(&state)
            );
        }
        if let Some(g) = state.goal.as_ref().filter(|g| g.status.is_settled()) {
            println!(
                "\n{}\n\nPlan\n{}\n\nReviews\n{}",
                show::header(g),
                show::plan(&state),
                show::reviews(&state)
            );
            let calls = show::tool_calls(&state);
            if !calls.is_empty() {
                println!("Tool calls\n{calls}");
            }
            println!("Outputs\n{}", show::outputs(&state, run.lines));
            println!(
                "goal {} finished {} in {:.1}s",
                g.id,
                g.status,
                start.elapsed().as_secs_f64()
            );
            if g.status != mktg_core::GoalStatus::Completed {
                std::process::exit(3);
            }
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(run.timeout) {
            bail!(
                "goal {goal} has not settled after {}s ({}); see: mktg trace {goal}",
                run.timeout,
                show::progress(&state)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn tools_command(root: &std::path::Path, action: &ToolsAction) -> Result<()> {
    let config = match mktg_config::load(&mktg_config::Paths::under(root)) {
        Ok(c) => c,
        Err(errors) => bail!("config is invalid (run mktg validate):\n{errors}"),
    };
    let tools = &config.tools;
    if tools.servers.is_empty() {
        println!(
            "no tool servers: {} does not exist or lists none (copy entries from config/tools.catalog.yaml)",
            tools.file.display()
        );
        return Ok(());
    }
    match action {
        ToolsAction::List => {
            for s in tools.servers.values() {
                let how = match &s.transport {
                    mktg_config::ToolTransport::Stdio { command, args } => {
                        format!("stdio: {command} {}", args.join(" "))
                    }
                    mktg_config::ToolTransport::Http { url, .. } => format!("http: {url}"),
                };
                let policy = s.policy("");
                println!(
                    "{}  ({how})\n    skills: {}\n    default effect {}, approval {:?}, timeout {} ms{}",
                    s.name,
                    s.skills.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                    policy.effect,
                    policy.approval,
                    policy.timeout_ms,
                    if s.capabilities.is_empty() {
                        String::new()
                    } else {
                        format!(", provides {}", s.capabilities.join(", "))
                    }
                );
            }
            Ok(())
        }
        ToolsAction::Check { server } => {
            let names: Vec<String> = match server {
                Some(name) => {
                    if !tools.servers.contains_key(name) {
                        let known: Vec<&str> = tools.servers.keys().map(String::as_str).collect();
                        bail!(
                            "no server \"{name}\" in {}; known: {}",
                            tools.file.display(),
                            known.join(", ")
                        );
                    }
                    vec![name.clone()]
                }
                None => tools.servers.keys().cloned().collect(),
            };
            let host = mktg_tools::McpHost::new(tools.clone());
            let mut failed = 0;
            for name in names {
                let Some(s) = tools.servers.get(&name) else {
                    continue;
                };
                let missing: Vec<String> = s
                    .credential_vars()
                    .into_iter()
                    .filter(|v| std::env::var_os(v).is_none())
                    .collect();
                if !missing.is_empty() {
                    println!(
                        "! {name}: environment variables not set: {}",
                        missing.join(", ")
                    );
                }
                let started = Instant::now();
                match mktg_tools::ToolHost::list_server(&host, &name).await {
                    Ok(defs) => {
                        println!(
                            "ok {name}: {} tool(s) in {} ms",
                            defs.len(),
                            started.elapsed().as_millis()
                        );
                        for d in defs {
                            println!(
                                "    {:<44} {:<5} {:?}",
                                d.name,
                                d.policy.effect.to_string(),
                                d.policy.approval
                            );
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        println!("FAILED {name}: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} tool server(s) could not be listed");
            }
            Ok(())
        }
    }
}

async fn budget_show(deps: &Deps, tenant: &TenantId) -> Result<()> {
    let v = mktg_actions::budget::view(deps, tenant).await?;
    println!(
        "budget for tenant {tenant} ({}{}): {} a month, {} per goal",
        if v.source == "tenant" {
            "set with mktg budget set"
        } else {
            "from config/budget.yaml"
        },
        v.plan
            .as_deref()
            .map(|p| format!(", capped by plan {p}"))
            .unwrap_or_default(),
        show::dollars((v.monthly_usd * 1e6) as u64),
        show::dollars((v.per_goal_usd * 1e6) as u64)
    );
    println!(
        "{}: spent {} ({:.1}%), level {}",
        v.month,
        show::usd((v.spent_usd * 1e6).round() as u64),
        v.percent_used,
        v.level
    );
    if v.parked.is_empty() {
        println!("no tasks are parked by the budget");
    } else {
        println!("{} parked task(s):", v.parked.len());
        for p in v.parked {
            println!(
                "  {} {} (revision {}): {}",
                p.goal, p.task, p.revision, p.reason
            );
        }
    }
    Ok(())
}

async fn budget_set(
    deps: &Deps,
    tenant: &TenantId,
    monthly: f64,
    per_goal: Option<f64>,
) -> Result<()> {
    let resumed = mktg_actions::budget::set(deps, tenant, monthly, per_goal).await?;
    let v = mktg_actions::budget::view(deps, tenant).await?;
    println!(
        "budget for tenant {tenant}: ${monthly:.2} a month, ${:.2} per goal",
        per_goal.unwrap_or(deps.config.budget.per_goal_usd)
    );
    if let Some(plan) = &v.plan {
        println!(
            "  plan {plan} caps it at ${:.2} a month, ${:.2} per goal",
            v.monthly_usd, v.per_goal_usd
        );
    }
    for p in &resumed {
        println!("  resuming {} {} (was: {})", p.goal, p.task, p.reason);
    }
    if resumed.is_empty() {
        println!("no parked tasks to resume");
    }
    Ok(())
}

async fn dry_run(
    deps: &Deps,
    tenant: &TenantId,
    text: &str,
    pipeline: Option<&str>,
    priority: Priority,
) -> Result<()> {
    let f = match mktg_actions::forecast::forecast(deps, tenant, text, pipeline, priority).await {
        Ok(f) => f,
        Err(e) => bail!("{e}"),
    };
    println!(
        "dry run: no goal is stored or sent (a real model's planning call is costed like any other)\n{}\n",
        f.note
    );
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "task",
        "skill",
        "after",
        "tier",
        "est. tokens in/out",
        "est. cost",
        "basis",
    ]);
    for t in &f.tasks {
        table.add_row([
            t.id.clone(),
            t.skill.clone(),
            if t.deps.is_empty() {
                "-".to_string()
            } else {
                t.deps.join(", ")
            },
            t.tier.clone(),
            format!("{}/{}", t.input_tokens, t.output_tokens),
            show::usd(t.micros),
            t.basis.clone(),
        ]);
    }
    println!("{table}");
    println!(
        "forecast: {} for {} task(s) at one call each, before revisions (prices from config/models.yaml)",
        show::usd(f.total_micros),
        f.tasks.len()
    );
    Ok(())
}

fn schedules(root: &std::path::Path, next: usize) -> Result<()> {
    let cfg = match mktg_config::load(&mktg_config::Paths::under(root)) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    };
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        "schedule",
        "cron",
        "timezone",
        "prio",
        "starts",
        "next (UTC)",
    ]);
    for s in mktg_actions::views::schedules(&cfg, None, chrono::Utc::now(), next) {
        let fires: Vec<String> = s
            .next
            .iter()
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.format("%a %Y-%m-%d %H:%M").to_string())
            .collect();
        t.add_row([
            if s.enabled {
                s.id
            } else {
                format!("{} (disabled)", s.id)
            },
            s.cron,
            s.timezone,
            s.priority,
            format!("{}: {}", s.kind, s.what),
            fires.join("\n"),
        ]);
    }
    println!("{t}");
    println!(
        "slots missed while nothing ran are caught up within {} minutes",
        cfg.schedules.catch_up_minutes
    );
    Ok(())
}

fn webhook_sign(source: &str, body: &str, url: &str) -> Result<()> {
    let var = format!("WEBHOOK_SECRET_{}", source.to_uppercase().replace('-', "_"));
    let secret = std::env::var(&var)
        .with_context(|| format!("set {var} to the secret of source \"{source}\""))?;
    serde_json::from_str::<serde_json::Value>(body).with_context(|| "--body must be JSON")?;
    let ts = chrono::Utc::now().timestamp();
    let sig =
        webhook_intake::sign(&secret, Some(ts), body.as_bytes()).map_err(anyhow::Error::msg)?;
    println!("x-mktg-timestamp: {ts}\nx-mktg-signature: v1={sig}\n");
    println!(
        "curl -sS -X POST '{}/{source}' -H 'content-type: application/json' -H 'x-mktg-timestamp: {ts}' -H 'x-mktg-signature: v1={sig}' --data-binary '{}'",
        url.trim_end_matches('/'),
        body.replace('\'', "'\\''")
    );
    println!("(valid for 5 minutes)");
    Ok(())
}
