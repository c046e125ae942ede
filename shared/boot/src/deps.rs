//! The dependencies of every handler, built once per cold start.

use crate::settings::{Secret, Settings};
use mktg_bus::{Bus, QueueUrls, SqsEventBridgeBus};
use mktg_config::{Config, Paths};
use mktg_llm::{
    AnthropicModel, AnthropicSettings, BedrockModel, ChatModel, RetryPolicy, ScriptedModel,
};
use mktg_store::{DynamoStore, Store};
use mktg_tools::{McpHost, ToolHost};
use std::collections::HashMap;
use std::sync::Arc;

/// Time comes from here, never from the system clock inside rules.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
    }
}

#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub model: Arc<dyn ChatModel>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    /// The MCP servers of tools.yaml (connected on first use).
    pub tools: Arc<dyn ToolHost>,
    /// Which model provider runs and why, in plain words, for banners.
    pub model_note: String,
    /// Tenants' own tool credentials (Secrets Manager when deployed).
    pub vault: Arc<dyn crate::vault::Vault>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Settings(#[from] crate::SettingsError),
    #[error("{0}")]
    Config(#[from] mktg_config::ConfigErrors),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Secret(String),
    #[error("{0}")]
    Budget(String),
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        model: Arc<dyn ChatModel>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let model_note = format!("{} model provider", model.provider());
        let tools: Arc<dyn ToolHost> = Arc::new(McpHost::new(config.tools.clone()));
        Deps {
            store,
            bus,
            model,
            config,
            clock,
            tools,
            model_note,
            vault: Arc::new(crate::vault::MemoryVault::default()),
        }
    }

    /// Loads the AWS config once (it honours `AWS_ENDPOINT_URL`), derives
    /// every client from it, loads and validates the YAML config and picks
    /// the model provider.
    pub async fn build(settings: &Settings) -> Result<Deps, BootError> {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Deps::build_with_secrets(settings, &aws, &|k: &str| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
        .await
    }

    /// As `build_with`, first reading secrets the environment names by
    /// reference: `ANTHROPIC_API_KEY_SECRET_ID`, and for each credential
    /// variable `X` of tools.yaml that is unset, `X_SECRET_ID`. Values go
    /// to the model client and the tool host only, never to logs.
    pub async fn build_with_secrets(
        settings: &Settings,
        aws: &aws_config::SdkConfig,
        lookup: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    ) -> Result<Deps, BootError> {
        let secrets = aws_sdk_secretsmanager::Client::new(aws);
        let mut settings = settings.clone();
        if settings.anthropic_api_key.is_none() {
            if let Some(id) = &settings.anthropic_api_key_secret_id {
                settings.anthropic_api_key = Some(Secret(
                    crate::secrets::fetch(&secrets, id, "ANTHROPIC_API_KEY").await?,
                ));
            }
        }
        let mut deps = Deps::build_with(&settings, aws)?;
        let vars: Vec<String> = deps
            .config
            .tools
            .servers
            .values()
            .flat_map(|s| s.credential_vars())
            .collect();
        let overlay = crate::secrets::credential_overlay(&vars, lookup, &secrets).await?;
        // The catalogue's OAuth servers too: a tenant's connection mints
        // tokens that warm functions share through Secrets Manager.
        let oauth = deps
            .config
            .tools
            .servers
            .values()
            .chain(deps.config.catalog.servers.values())
            .any(|s| s.oauth.is_some());
        if !overlay.is_empty() || oauth {
            let process_env: HashMap<String, String> = vars
                .iter()
                .chain(
                    mktg_tools::PASS_THROUGH
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .iter(),
                )
                .filter_map(|k| lookup(k).map(|v| (k.clone(), v)))
                .collect();
            let env: mktg_tools::EnvLookup = Arc::new(move |k: &str| {
                overlay
                    .get(k)
                    .map(|s| s.0.clone())
                    .or_else(|| process_env.get(k).cloned())
            });
            let mut host = McpHost::with_env(deps.config.tools.clone(), env);
            if oauth {
                host = host.with_token_store(Arc::new(crate::secrets::SecretsTokenStore {
                    client: secrets.clone(),
                    prefix: settings.secrets_prefix.clone(),
                }));
            }
            deps.tools = Arc::new(host);
        }
        Ok(deps)
    }

    /// As `build`, with an AWS config made by the caller (tests point it at
    /// the emulator without touching the process environment).
    pub fn build_with(settings: &Settings, aws: &aws_config::SdkConfig) -> Result<Deps, BootError> {
        let mut config = mktg_config::load(&Paths {
            config_dir: settings.config_dir.clone(),
            skills_dir: settings.skills_dir.clone(),
        })?;
        apply_budget_overrides(&mut config, settings)?;
        let config = Arc::new(config);
        let (model, note) = choose_model(&config, settings, aws)?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &settings.table_name);
        let bus = SqsEventBridgeBus::new(
            aws_sdk_sqs::Client::new(aws),
            aws_sdk_eventbridge::Client::new(aws),
            QueueUrls(settings.queue_urls.clone()),
            &settings.event_bus_name,
        );
        let mut deps = Deps::new(
            Arc::new(store),
            Arc::new(bus),
            model,
            config,
            Arc::new(SystemClock),
        );
        deps.model_note = note;
        deps.vault = Arc::new(crate::vault::SecretsVault::new(
            aws_sdk_secretsmanager::Client::new(aws),
            &settings.secrets_prefix,
        ));
        Ok(deps)
    }
}

/// Picks the model provider and says in plain words which one and why.
pub fn choose_model(
    config: &Config,
    settings: &Settings,
    aws: &aws_config::SdkConfig,
) -> Result<(Arc<dyn ChatModel>, String), BootError> {
    let provider = settings
        .provider
        .clone()
        .unwrap_or_else(|| config.models.provider.clone());
    let script = settings
        .script
        .clone()
        .unwrap_or_else(|| config.models.scripted_script.clone());
    let scripted = |why: &str| -> Result<(Arc<dyn ChatModel>, String), BootError> {
        let model = ScriptedModel::load(&script).map_err(|e| BootError::Model(e.to_string()))?;
        Ok((
            Arc::new(model),
            format!(
                "scripted model provider ({why}); replies come from {}, not from a model",
                script.display()
            ),
        ))
    };
    let anthropic = |key: &str| -> Result<(Arc<dyn ChatModel>, String), BootError> {
        let base_url = settings
            .anthropic_base_url
            .clone()
            .unwrap_or_else(|| "https://api.anthropic.com".into());
        let model = AnthropicModel::new(AnthropicSettings {
            api_key: key.to_string(),
            base_url: base_url.clone(),
            request_timeout: std::time::Duration::from_secs(config.models.request_timeout_secs),
            retry: RetryPolicy::default(),
        })
        .map_err(|e| BootError::Model(e.to_string()))?;
        Ok((
            Arc::new(model),
            format!("Anthropic Messages API at {base_url} (ANTHROPIC_API_KEY is set)"),
        ))
    };
    match (provider.as_str(), &settings.anthropic_api_key) {
        ("scripted", _) => scripted("chosen by configuration"),
        ("auto" | "anthropic", Some(key)) => anthropic(&key.0),
        ("auto", None) => scripted("no ANTHROPIC_API_KEY or Bedrock configuration found"),
        ("anthropic", None) => Err(BootError::Model(
            "provider anthropic needs ANTHROPIC_API_KEY in the environment".into(),
        )),
        ("bedrock", _) => Ok((
            Arc::new(BedrockModel::new(aws_sdk_bedrockruntime::Client::new(aws))),
            "Amazon Bedrock Converse API in this AWS account (MKTG_PROVIDER=bedrock)".into(),
        )),
        (other, _) => Err(BootError::Model(format!(
            "unknown model provider \"{other}\" (from MKTG_PROVIDER or models.yaml); use auto, anthropic, bedrock or scripted"
        ))),
    }
}

/// The deployment's default budgets from the environment (template
/// parameters `MonthlyBudgetUsd`, `GoalBudgetUsd`); empty or absent keeps
/// budget.yaml's.
pub fn apply_budget_overrides(config: &mut Config, settings: &Settings) -> Result<(), BootError> {
    let parse = |name: &str, raw: &Option<String>| -> Result<Option<f64>, BootError> {
        match raw.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|usd| usd.is_finite() && *usd > 0.0)
                .map(Some)
                .ok_or_else(|| {
                    BootError::Budget(format!(
                        "{name}={v} is not an amount of dollars above 0 (set by the template parameter or your environment)"
                    ))
                }),
        }
    };
    if let Some(usd) = parse("MKTG_MONTHLY_BUDGET_USD", &settings.monthly_budget_usd)? {
        config.budget.monthly_usd = usd;
    }
    if let Some(usd) = parse("MKTG_GOAL_BUDGET_USD", &settings.goal_budget_usd)? {
        config.budget.per_goal_usd = usd;
    }
    Ok(())
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn settings(monthly: &str, goal: &str) -> Settings {
        let env: HashMap<&str, String> = [
            ("TABLE_NAME", "t".to_string()),
            ("EVENT_BUS_NAME", "b".to_string()),
            ("DIRECTOR_QUEUE_URL", "q".to_string()),
            ("AGENT_QUEUE_URL", "q".to_string()),
            ("REVIEW_QUEUE_URL", "q".to_string()),
            ("TOOL_QUEUE_URL", "q".to_string()),
            ("MKTG_MONTHLY_BUDGET_USD", monthly.to_string()),
            ("MKTG_GOAL_BUDGET_USD", goal.to_string()),
        ]
        .into();
        Settings::from_lookup(|k| env.get(k).cloned().filter(|v| !v.is_empty()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn config() -> Config {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        mktg_config::load(&Paths::under(&root)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn template_budgets_override_budget_yaml_and_bad_values_are_named() {
        let mut c = config();
        let yaml = (c.budget.monthly_usd, c.budget.per_goal_usd);
        apply_budget_overrides(&mut c, &settings("", "")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.budget.monthly_usd, c.budget.per_goal_usd), yaml);
        apply_budget_overrides(&mut c, &settings("250", "4.5")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.budget.monthly_usd, c.budget.per_goal_usd), (250.0, 4.5));
        let err = apply_budget_overrides(&mut c, &settings("lots", "")).unwrap_err();
        assert!(
            err.to_string().contains("MKTG_MONTHLY_BUDGET_USD=lots"),
            "{err}"
        );
        assert!(apply_budget_overrides(&mut c, &settings("", "-1")).is_err());
    }
}
