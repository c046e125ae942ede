//! Our REST-wrapping MCP server, started as a real stdio server through the
//! tool host, against a mock of each vendor's API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mktg_config::{ToolServer, ToolTransport, Tools};
use mktg_core::tools::Rate;
use mktg_core::Effect;
use mktg_tools::{McpHost, ToolError, ToolHost};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn host(name: &str, vendor: &str, env: &[(&str, String)]) -> McpHost {
    let server = ToolServer {
        name: name.into(),
        description: String::new(),
        transport: ToolTransport::Stdio {
            command: env!("CARGO_BIN_EXE_mktg-rest-mcp").into(),
            args: vec![vendor.into()],
        },
        env: env.iter().map(|(k, _)| k.to_string()).collect(),
        skills: vec!["social-content".into()],
        capabilities: vec![],
        effect: Effect::Write,
        approval: None,
        rate: Rate::default(),
        timeout_ms: 10_000,
        connect_timeout_ms: 20_000,
        max_result_bytes: 20_000,
        overrides: BTreeMap::new(),
        oauth: None,
    };
    let vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    McpHost::with_env(
        Tools {
            file: PathBuf::from("tools.yaml"),
            servers: [(name.to_string(), server)].into_iter().collect(),
        },
        Arc::new(move |k: &str| vars.get(k).cloned()),
    )
}

#[tokio::test]
async fn x_posts_and_metrics_reach_the_api_with_the_token() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/tweets"))
        .and(header("authorization", "Bearer x-token"))
        .and(body_partial_json(
            serde_json::json!({"text": "Receipts, captured."}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            serde_json::json!({"data": {"id": "1890", "text": "Receipts, captured."}}),
        ))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/2/tweets/1890"))
        .and(query_param("tweet.fields", "public_metrics,created_at"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {"id": "1890", "public_metrics": {"impression_count": 512, "like_count": 9}}})))
        .mount(&api)
        .await;
    let host = host(
        "twitter",
        "twitter",
        &[
            ("X_BEARER_TOKEN", "x-token".into()),
            ("X_API_BASE", api.uri()),
        ],
    );
    let names: Vec<String> = host
        .list_server("twitter")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(
        names.contains(&"twitter__create_post".to_string())
            && names.contains(&"twitter__post_metrics".to_string()),
        "{names:?}"
    );
    let out = host
        .invoke(
            "twitter",
            "create_post",
            serde_json::json!({"text": "Receipts, captured."}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(
        !out.is_error && out.text.contains("\"id\":\"1890\""),
        "{out:?}"
    );
    let out = host
        .invoke(
            "twitter",
            "post_metrics",
            serde_json::json!({"id": "1890"}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.text.contains("impression_count"), "{out:?}");
}

#[tokio::test]
async fn a_vendor_refusal_is_an_error_result_the_agent_can_read() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/posts"))
        .and(header("x-restli-protocol-version", "2.0.0"))
        .and(body_partial_json(
            serde_json::json!({"author": "urn:li:organization:42", "commentary": "Hello"}),
        ))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "{\"message\":\"Not enough permissions to access: w_organization_social\"}",
        ))
        .mount(&api)
        .await;
    let host = host(
        "linkedin",
        "linkedin",
        &[
            ("LINKEDIN_ACCESS_TOKEN", "li-token".into()),
            ("LINKEDIN_AUTHOR_URN", "urn:li:organization:42".into()),
            ("LINKEDIN_API_BASE", api.uri()),
        ],
    );
    let out = host
        .invoke(
            "linkedin",
            "create_post",
            serde_json::json!({"text": "Hello"}),
            "k",
            10_000,
        )
        .await
        .unwrap();
    assert!(out.is_error, "{out:?}");
    assert!(
        out.text.contains("403") && out.text.contains("w_organization_social"),
        "{}",
        out.text
    );
}

#[tokio::test]
async fn a_missing_token_stops_the_server_before_the_handshake() {
    let host = host("twitter", "twitter", &[]);
    let err = host.list_server("twitter").await.unwrap_err();
    assert!(matches!(err, ToolError::Connect { .. }), "{err}");
}
