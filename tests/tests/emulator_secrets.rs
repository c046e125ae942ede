//! Credentials kept in Secrets Manager (the emulator's): the Anthropic key
//! and a tool server's credential, named by `*_SECRET_ID` variables and
//! read once at cold start. Needs `localstack/up` and `scripts/mcp-servers`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_boot::{Deps, Settings};
use mktg_it::{emulator, fresh_tenant};

#[tokio::test]
async fn secrets_named_by_reference_reach_the_model_client_and_the_tool_server_only() {
    let emu = emulator().await;
    let sm = aws_sdk_secretsmanager::Client::new(&emu.aws);
    let prefix = format!("mktg/{}", fresh_tenant("it-secrets"));
    for (name, value) in [
        ("anthropic", "sk-ant-from-secrets-manager"),
        ("ga4", "token-from-secrets-manager"),
    ] {
        sm.create_secret()
            .name(format!("{prefix}/{name}"))
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let (dir, _config, _model) = mktg_testkit::config_with_tools(
        &format!(
            "servers:\n  everything:\n    command: {}\n    args: [stdio]\n    env: [GA4_TOKEN]\n    skills: [analytics-tracking]\n",
            mktg_testkit::everything_server()
        ),
        "replies:\n  - {text: unused}\n",
    );
    let mut env = emu.env.clone();
    env.insert("MKTG_ROOT".into(), dir.path().display().to_string());
    env.insert("MKTG_PROVIDER".into(), "auto".into());
    env.insert(
        "ANTHROPIC_API_KEY_SECRET_ID".into(),
        format!("{prefix}/anthropic"),
    );
    env.insert("GA4_TOKEN_SECRET_ID".into(), format!("{prefix}/ga4"));
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.into(), v);
        }
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
    assert!(!format!("{settings:?}").contains("sk-ant"));
    let lookup = env.clone();
    let deps =
        Deps::build_with_secrets(&settings, &emu.aws, &move |k: &str| lookup.get(k).cloned())
            .await
            .unwrap();
    // The key from Secrets Manager selected the Anthropic provider.
    assert_eq!(deps.model.provider(), "anthropic", "{}", deps.model_note);
    assert!(!deps.model_note.contains("sk-ant"));
    // The tool server got its credential, and nothing else secret.
    let out = deps
        .tools
        .invoke("everything", "get-env", serde_json::json!({}), "k", 10_000)
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_str(&out.text).unwrap();
    assert_eq!(seen["GA4_TOKEN"], "token-from-secrets-manager");
    assert!(seen.get("ANTHROPIC_API_KEY").is_none());
    assert!(seen.get("GA4_TOKEN_SECRET_ID").is_none());

    // A secret that does not exist stops the cold start with its name.
    env.insert("GA4_TOKEN_SECRET_ID".into(), format!("{prefix}/missing"));
    let lookup = env.clone();
    let err = Deps::build_with_secrets(&settings, &emu.aws, &move |k: &str| lookup.get(k).cloned())
        .await
        .err()
        .expect("a missing secret must fail the build");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{prefix}/missing")) && msg.contains("GA4_TOKEN"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_oauth_access_token_is_stored_in_secrets_manager_and_reused_by_the_next_cold_start() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let emu = emulator().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ya29.minted-once", "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(&idp)
        .await;
    let (dir, _config, _model) = mktg_testkit::config_with_tools(
        &format!(
            "servers:\n  ga4:\n    command: {}\n    args: [stdio]\n    skills: [analytics-tracking]\n    oauth:\n      token_url: {}/token\n      client_id_env: G_CLIENT_ID\n      client_secret_env: G_CLIENT_SECRET\n      refresh_token_env: G_REFRESH_TOKEN\n      access_token_env: G_ACCESS_TOKEN\n",
            mktg_testkit::everything_server(),
            idp.uri()
        ),
        "replies:\n  - {text: unused}\n",
    );
    let prefix = format!("mktg/{}/", fresh_tenant("it-oauth"));
    let mut env = emu.env.clone();
    env.insert("MKTG_ROOT".into(), dir.path().display().to_string());
    env.insert("MKTG_SECRETS_PREFIX".into(), prefix.clone());
    for (k, v) in [
        ("G_CLIENT_ID", "cid"),
        ("G_CLIENT_SECRET", "cs"),
        ("G_REFRESH_TOKEN", "rt"),
    ] {
        env.insert(k.into(), v.into());
    }
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.into(), v);
        }
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
    let token_seen = |deps: Deps| async move {
        let out = deps
            .tools
            .invoke("ga4", "get-env", serde_json::json!({}), "k", 10_000)
            .await
            .unwrap();
        let seen: serde_json::Value = serde_json::from_str(&out.text).unwrap();
        seen["G_ACCESS_TOKEN"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for _cold_start in 0..2 {
        let lookup = env.clone();
        let deps =
            Deps::build_with_secrets(&settings, &emu.aws, &move |k: &str| lookup.get(k).cloned())
                .await
                .unwrap();
        assert_eq!(token_seen(deps).await, "ya29.minted-once");
    }
    assert_eq!(
        idp.received_requests().await.unwrap().len(),
        1,
        "the second cold start reused the stored token"
    );
    let stored = aws_sdk_secretsmanager::Client::new(&emu.aws)
        .get_secret_value()
        .secret_id(format!("{prefix}oauth/ga4"))
        .send()
        .await
        .unwrap();
    assert!(stored.secret_string().unwrap().contains("ya29.minted-once"));
}

#[tokio::test]
async fn a_tenants_tool_credentials_live_in_secrets_manager_one_secret_per_server() {
    use mktg_boot::vault::{SecretsVault, Vault};
    let emu = emulator().await;
    let sm = aws_sdk_secretsmanager::Client::new(&emu.aws);
    let prefix = format!("mktg/{}/", fresh_tenant("it-vault"));
    let vault = SecretsVault::new(sm.clone(), &prefix);
    let tenant = mktg_core::TenantId::new("acme");
    let values =
        |v: &str| std::collections::BTreeMap::from([("CRM_API_KEY".to_string(), v.to_string())]);
    assert!(vault.get(&tenant, "crm", 1).await.unwrap().is_none());
    vault.put(&tenant, "crm", &values("first")).await.unwrap();
    let name = vault.name(&tenant, "crm");
    assert_eq!(name, format!("{prefix}tenants/acme/tools/crm"));
    let stored = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(stored.secret_string(), Some(r#"{"CRM_API_KEY":"first"}"#));
    assert_eq!(
        vault.get(&tenant, "crm", 1).await.unwrap(),
        Some(values("first"))
    );
    // Replaced in place; a reader of the new version sees the new value.
    vault.put(&tenant, "crm", &values("second")).await.unwrap();
    assert_eq!(
        vault.get(&tenant, "crm", 2).await.unwrap(),
        Some(values("second"))
    );
    // An OAuth token minted for connection 2 goes with it.
    let token = format!("{prefix}oauth/crm@acme@2");
    sm.create_secret()
        .name(&token)
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    vault.delete(&tenant, "crm", 2).await.unwrap();
    assert!(vault.get(&tenant, "crm", 3).await.unwrap().is_none());
    assert!(sm
        .get_secret_value()
        .secret_id(&token)
        .send()
        .await
        .is_err());
    vault.delete(&tenant, "crm", 2).await.unwrap();
}
