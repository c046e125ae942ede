//! The tool host against real MCP servers, installed by `scripts/mcp-servers`
//! (which `scripts/test` runs first): the reference "everything" server from
//! npm over stdio and over streamable HTTP, and the PyPI time server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_config::{ToolServer, ToolTransport, Tools};
use mktg_core::tools::Rate;
use mktg_core::Effect;
use mktg_tools::{McpHost, ToolError, ToolHost};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn installed(rel: &str) -> String {
    let path = root().join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/mcp-servers` first (scripts/test does)",
        path.display()
    );
    path.display().to_string()
}

fn everything_bin() -> String {
    installed(".mktg/mcp-node/node_modules/.bin/mcp-server-everything")
}

fn server(name: &str, transport: ToolTransport) -> ToolServer {
    ToolServer {
        name: name.into(),
        description: String::new(),
        transport,
        env: vec![],
        skills: vec!["seo-audit".into()],
        capabilities: vec![],
        effect: Effect::Read,
        approval: None,
        rate: Rate::default(),
        timeout_ms: 10_000,
        connect_timeout_ms: 30_000,
        max_result_bytes: 2_000,
        overrides: BTreeMap::new(),
        oauth: None,
    }
}

fn host(servers: Vec<ToolServer>) -> McpHost {
    let tools = Tools {
        file: PathBuf::from("tools.yaml"),
        servers: servers.into_iter().map(|s| (s.name.clone(), s)).collect(),
    };
    McpHost::with_env(tools, Arc::new(|k: &str| std::env::var(k).ok()))
}

fn stdio_everything() -> ToolServer {
    server(
        "everything",
        ToolTransport::Stdio {
            command: everything_bin(),
            args: vec!["stdio".into()],
        },
    )
}

#[tokio::test]
async fn stdio_server_lists_its_tools_under_claude_names_and_answers_a_call() {
    let host = host(vec![stdio_everything()]);
    let tools = host.tools_for_skill(&"seo-audit".into()).await;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    assert!(tools
        .iter()
        .all(|t| t.name.len() <= 64 && t.input_schema.is_object()));
    // A skill that tools.yaml does not name sees none of them.
    assert!(host.tools_for_skill(&"copywriting".into()).await.is_empty());

    let out = host
        .invoke(
            "everything",
            "echo",
            serde_json::json!({"message": "hello mktg"}),
            "k1",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("hello mktg"), "{out:?}");
    assert!(!out.is_error);
}

#[tokio::test]
async fn both_error_forms_reach_the_caller() {
    let host = host(vec![stdio_everything()]);
    // A tool that does not exist: a protocol error, or an error result.
    match host
        .invoke(
            "everything",
            "no-such-tool",
            serde_json::json!({}),
            "k",
            10_000,
        )
        .await
    {
        Err(ToolError::Call { reason, .. }) => assert!(!reason.is_empty()),
        Ok(out) => assert!(out.is_error, "unknown tool answered as success: {out:?}"),
        Err(other) => panic!("unexpected error {other}"),
    }
    // Wrong arguments: the same two forms.
    match host
        .invoke(
            "everything",
            "get-sum",
            serde_json::json!({"a": "x"}),
            "k",
            10_000,
        )
        .await
    {
        Err(ToolError::Call { .. }) => {}
        Ok(out) => assert!(out.is_error, "bad arguments answered as success: {out:?}"),
        Err(other) => panic!("unexpected error {other}"),
    }
    // The connection survives both.
    let out = host
        .invoke(
            "everything",
            "get-sum",
            serde_json::json!({"a": 2, "b": 3}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains('5'), "{out:?}");
}

#[tokio::test]
async fn a_hung_tool_times_out_with_a_clear_error_and_the_server_stays_usable() {
    let host = host(vec![stdio_everything()]);
    let err = host
        .invoke(
            "everything",
            "trigger-long-running-operation",
            serde_json::json!({"duration": 20, "steps": 2}),
            "k",
            500,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Timeout { ms: 500, .. }), "{err}");
    assert!(err.to_string().contains("did not answer within 500 ms"));
    let out = host
        .invoke(
            "everything",
            "echo",
            serde_json::json!({"message": "still here"}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("still here"));
}

#[tokio::test]
async fn a_server_that_cannot_start_or_dies_fails_with_its_reason() {
    let missing = server(
        "ghost",
        ToolTransport::Stdio {
            command: "/nonexistent/mcp-ghost".into(),
            args: vec![],
        },
    );
    // Exits at once without speaking MCP: a crashed server.
    let crashing = server(
        "crash",
        ToolTransport::Stdio {
            command: "sh".into(),
            args: vec!["-c".into(), "echo boom >&2; exit 3".into()],
        },
    );
    let host = host(vec![missing, crashing]);
    let err = host.list_server("ghost").await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/mcp-ghost"), "{err}");
    let err = host
        .invoke("crash", "anything", serde_json::json!({}), "k", 5_000)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("crash"), "{err}");
    let err = host.list_server("nope").await.unwrap_err();
    assert!(matches!(err, ToolError::UnknownServer(_)));
}

#[tokio::test]
async fn results_are_capped_to_the_configured_size() {
    let mut s = stdio_everything();
    s.max_result_bytes = 20;
    let host = host(vec![s]);
    let out = host
        .invoke(
            "everything",
            "echo",
            serde_json::json!({"message": "x".repeat(500)}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("[truncated: 20 of"), "{}", out.text);
    assert!(out.text.len() < 100);
}

#[tokio::test]
async fn streamable_http_server_answers_a_call() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(everything_bin())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait for the port to open.
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the everything server did not open port {port}");
    let host = host(vec![server(
        "remote",
        ToolTransport::Http {
            url: format!("http://127.0.0.1:{port}/mcp"),
            headers: BTreeMap::new(),
        },
    )]);
    let tools = host.list_server("remote").await.unwrap();
    assert!(tools.iter().any(|t| t.name == "remote__echo"));
    let out = host
        .invoke(
            "remote",
            "echo",
            serde_json::json!({"message": "over http"}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("over http"), "{out:?}");
    child.kill().await.ok();
}

#[tokio::test]
async fn pypi_time_server_answers_a_call() {
    let host = host(vec![server(
        "time",
        ToolTransport::Stdio {
            command: installed(".mktg/mcp-venv/bin/mcp-server-time"),
            args: vec!["--local-timezone".into(), "UTC".into()],
        },
    )]);
    let tools = host.list_server("time").await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "time__get_current_time"),
        "{tools:?}"
    );
    let out = host
        .invoke(
            "time",
            "get_current_time",
            serde_json::json!({"timezone": "Europe/Berlin"}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("Europe/Berlin"), "{out:?}");
}

fn env_map(pairs: &[(&str, &str)]) -> mktg_tools::EnvLookup {
    let mut map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            map.insert(k.into(), v);
        }
    }
    Arc::new(move |k: &str| map.get(k).cloned())
}

#[tokio::test]
async fn oauth_tokens_are_minted_passed_to_the_server_and_refreshed_before_expiry() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let idp = MockServer::start().await;
    for (n, token) in ["tok-1", "tok-2"].iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains("refresh_token=rt-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                // 61 s less the 60 s margin: stale one second from now.
                "expires_in": 61,
            })))
            .up_to_n_times(1)
            .with_priority(u8::try_from(n + 1).unwrap())
            .mount(&idp)
            .await;
    }
    let mut s = stdio_everything();
    s.oauth = Some(mktg_config::OAuth {
        token_url: format!("{}/token", idp.uri()),
        client_id_env: "G_CLIENT_ID".into(),
        client_secret_env: "G_CLIENT_SECRET".into(),
        refresh_token_env: "G_REFRESH_TOKEN".into(),
        access_token_env: "G_ACCESS_TOKEN".into(),
        scopes: vec!["https://www.googleapis.com/auth/analytics.readonly".into()],
    });
    let tools = Tools {
        file: PathBuf::from("tools.yaml"),
        servers: [("everything".to_string(), s)].into_iter().collect(),
    };
    let host = McpHost::with_env(
        tools,
        env_map(&[
            ("G_CLIENT_ID", "cid"),
            ("G_CLIENT_SECRET", "csecret"),
            ("G_REFRESH_TOKEN", "rt-1"),
            ("UNRELATED_SECRET", "must-not-leak"),
        ]),
    );
    let env_of = |out: mktg_tools::ToolOutcome| -> serde_json::Value {
        serde_json::from_str(&out.text).unwrap()
    };
    let first = env_of(
        host.invoke("everything", "get-env", serde_json::json!({}), "k", 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(first["G_ACCESS_TOKEN"], "tok-1");
    // Only declared variables reach a server: no refresh token, no others.
    assert!(first.get("UNRELATED_SECRET").is_none(), "{first}");
    assert!(first.get("G_REFRESH_TOKEN").is_none(), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let second = env_of(
        host.invoke("everything", "get-env", serde_json::json!({}), "k", 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(second["G_ACCESS_TOKEN"], "tok-2", "refreshed before expiry");
    assert_eq!(idp.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_rejected_refresh_token_fails_the_connection_with_the_providers_reason() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked."
        })))
        .mount(&idp)
        .await;
    let mut s = stdio_everything();
    s.oauth = Some(mktg_config::OAuth {
        token_url: format!("{}/token", idp.uri()),
        client_id_env: "G_CLIENT_ID".into(),
        client_secret_env: "G_CLIENT_SECRET".into(),
        refresh_token_env: "G_REFRESH_TOKEN".into(),
        access_token_env: "G_ACCESS_TOKEN".into(),
        scopes: vec![],
    });
    let tools = Tools {
        file: PathBuf::from("tools.yaml"),
        servers: [("ga4".to_string(), {
            s.name = "ga4".into();
            s
        })]
        .into_iter()
        .collect(),
    };
    let host = McpHost::with_env(
        tools.clone(),
        env_map(&[
            ("G_CLIENT_ID", "cid"),
            ("G_CLIENT_SECRET", "csecret"),
            ("G_REFRESH_TOKEN", "revoked"),
        ]),
    );
    let err = host.list_server("ga4").await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_grant") && err.contains("revoked"),
        "{err}"
    );
    // A missing credential names the variable.
    let host = McpHost::with_env(tools, env_map(&[("G_CLIENT_ID", "cid")]));
    let err = host.list_server("ga4").await.unwrap_err().to_string();
    assert!(err.contains("G_CLIENT_SECRET is not set"), "{err}");
}

#[tokio::test]
async fn a_server_that_died_mid_call_is_restarted_on_the_next_call() {
    let crashy = root().join("tests/fixtures/mcp/crashy.py");
    let host = host(vec![server(
        "crashy",
        ToolTransport::Stdio {
            command: installed(".mktg/mcp-venv/bin/python"),
            args: vec![crashy.display().to_string()],
        },
    )]);
    let err = host
        .invoke("crashy", "explode", serde_json::json!({}), "k", 10_000)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Call { .. }), "{err}");
    let out = host
        .invoke("crashy", "ping", serde_json::json!({}), "k", 10_000)
        .await
        .unwrap();
    assert_eq!(out.text, "pong");
}
