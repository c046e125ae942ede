//! Every environment variable is read here, once. Tests pass a map.

use mktg_core::QueueName;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    pub table_name: String,
    pub queue_urls: HashMap<QueueName, String>,
    /// Dead-letter queue URLs (optional: only operators' tools need them).
    pub dlq_urls: HashMap<QueueName, String>,
    pub event_bus_name: String,
    pub config_dir: PathBuf,
    pub skills_dir: PathBuf,
    /// `MKTG_PROVIDER`, overriding models.yaml.
    pub provider: Option<String>,
    /// `MKTG_SCRIPT`, overriding models.yaml's scripted script.
    pub script: Option<PathBuf>,
    /// `ANTHROPIC_API_KEY`; never printed (its Debug is redacted).
    pub anthropic_api_key: Option<Secret>,
    /// `ANTHROPIC_API_KEY_SECRET_ID`: a Secrets Manager secret holding the
    /// key, read at cold start when `ANTHROPIC_API_KEY` is not set.
    pub anthropic_api_key_secret_id: Option<String>,
    /// `MKTG_SECRETS_PREFIX`: secrets this deployment may read and write
    /// (OAuth access tokens go under `{prefix}oauth/`), default `mktg/`.
    pub secrets_prefix: String,
    /// `ANTHROPIC_BASE_URL`, for a proxy or a mock server.
    pub anthropic_base_url: Option<String>,
    /// `MKTG_TENANT`, the default tenant of CLI commands.
    pub tenant: String,
    /// `MKTG_MONTHLY_BUDGET_USD` and `MKTG_GOAL_BUDGET_USD`: the deployment's
    /// default budgets (template parameters), overriding budget.yaml; a
    /// tenant's `mktg budget set` still overrides both.
    pub monthly_budget_usd: Option<String>,
    pub goal_budget_usd: Option<String>,
}

/// A secret value whose Debug output is redacted, so it cannot reach logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("missing environment variables: {}. They are set by infra/template.yaml when deployed; locally `localstack/up` writes them to .mktg/emulator.env", missing.join(", "))]
pub struct SettingsError {
    pub missing: Vec<String>,
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads every variable through `lookup`; one error names all missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let mut missing = Vec::new();
        let mut need = |name: &str| {
            lookup(name).unwrap_or_else(|| {
                missing.push(name.to_string());
                String::new()
            })
        };
        let table_name = need("TABLE_NAME");
        let event_bus_name = need("EVENT_BUS_NAME");
        let mut queue_urls = HashMap::new();
        for (q, var) in [
            (QueueName::Director, "DIRECTOR_QUEUE_URL"),
            (QueueName::Agent, "AGENT_QUEUE_URL"),
            (QueueName::Review, "REVIEW_QUEUE_URL"),
            (QueueName::Tool, "TOOL_QUEUE_URL"),
        ] {
            queue_urls.insert(q, need(var));
        }
        if !missing.is_empty() {
            return Err(SettingsError { missing });
        }
        let dlq_urls = [
            (QueueName::Director, "DIRECTOR_DLQ_URL"),
            (QueueName::Agent, "AGENT_DLQ_URL"),
            (QueueName::Review, "REVIEW_DLQ_URL"),
            (QueueName::Tool, "TOOL_DLQ_URL"),
        ]
        .into_iter()
        .filter_map(|(q, var)| lookup(var).map(|url| (q, url)))
        .collect();
        let root = lookup("MKTG_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Settings {
            table_name,
            queue_urls,
            dlq_urls,
            event_bus_name,
            config_dir: lookup("MKTG_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("config")),
            skills_dir: lookup("MKTG_SKILLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("skills")),
            provider: lookup("MKTG_PROVIDER"),
            script: lookup("MKTG_SCRIPT").map(PathBuf::from),
            anthropic_api_key: lookup("ANTHROPIC_API_KEY").map(Secret),
            anthropic_api_key_secret_id: lookup("ANTHROPIC_API_KEY_SECRET_ID"),
            secrets_prefix: lookup("MKTG_SECRETS_PREFIX").unwrap_or_else(|| "mktg/".into()),
            anthropic_base_url: lookup("ANTHROPIC_BASE_URL"),
            tenant: lookup("MKTG_TENANT").unwrap_or_else(|| "default".into()),
            monthly_budget_usd: lookup("MKTG_MONTHLY_BUDGET_USD"),
            goal_budget_usd: lookup("MKTG_GOAL_BUDGET_USD"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_names_every_missing_variable() {
        let env: HashMap<&str, &str> = [("TABLE_NAME", "t")].into();
        let err = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(
            err.missing,
            [
                "EVENT_BUS_NAME",
                "DIRECTOR_QUEUE_URL",
                "AGENT_QUEUE_URL",
                "REVIEW_QUEUE_URL",
                "TOOL_QUEUE_URL"
            ]
        );
        assert!(err.to_string().contains("localstack/up"));
    }

    #[test]
    fn paths_default_under_the_root() {
        let env: HashMap<&str, &str> = [
            ("TABLE_NAME", "t"),
            ("EVENT_BUS_NAME", "b"),
            ("DIRECTOR_QUEUE_URL", "d"),
            ("AGENT_QUEUE_URL", "a"),
            ("REVIEW_QUEUE_URL", "r"),
            ("TOOL_QUEUE_URL", "x"),
            ("MKTG_ROOT", "/opt"),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.config_dir, PathBuf::from("/opt/config"));
        assert_eq!(s.queue_urls[&QueueName::Agent], "a");
        assert!(s.anthropic_api_key.is_none());
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn the_api_key_is_redacted_in_debug_output() {
        let env: HashMap<&str, &str> = [
            ("TABLE_NAME", "t"),
            ("EVENT_BUS_NAME", "b"),
            ("DIRECTOR_QUEUE_URL", "d"),
            ("AGENT_QUEUE_URL", "a"),
            ("REVIEW_QUEUE_URL", "r"),
            ("TOOL_QUEUE_URL", "x"),
            ("ANTHROPIC_API_KEY", "sk-ant-very-secret"),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
