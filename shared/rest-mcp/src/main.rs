//! `mktg-rest-mcp <vendor>`: a small MCP server over stdio for the vendors
//! of the tool catalogue that publish no MCP server of their own: `linkedin`
//! (company-page posts and their statistics) and `twitter` (X: posts and
//! their metrics). Each tool is one REST call with the vendor's bearer
//! token; the vendor's answer (or its error, as an error result) goes back
//! to the agent as text.
//!
//! Environment: LINKEDIN_ACCESS_TOKEN and LINKEDIN_AUTHOR_URN, or
//! X_BEARER_TOKEN; LINKEDIN_API_BASE / X_API_BASE point at another host
//! (a proxy, or a mock in tests).

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;

/// One vendor's REST API.
#[derive(Clone)]
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn from_env(base_var: &str, default_base: &str, token_var: &str) -> Result<Api, String> {
        let token = std::env::var(token_var)
            .map_err(|_| format!("{token_var} is not set (the vendor's access token)"))?;
        let base = std::env::var(base_var).unwrap_or_else(|_| default_base.to_string());
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// Sends the request; a vendor error becomes an error result the agent
    /// reads (status and body), a transport failure a protocol error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<CallToolResult, ErrorData> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            ErrorData::internal_error(format!("request to the vendor failed: {e}"), None)
        })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(CallToolResult::success(vec![ContentBlock::text(body)]))
        } else {
            Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "the vendor answered {status}: {body}"
            ))]))
        }
    }
}

/// A URL with its query parameters encoded.
fn url_with(base: &str, params: &[(&str, &str)]) -> Result<reqwest::Url, ErrorData> {
    reqwest::Url::parse_with_params(base, params)
        .map_err(|e| ErrorData::internal_error(format!("bad vendor URL {base}: {e}"), None))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct PostText {
    /// The post's text, as it will appear.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct PostId {
    /// The id the vendor gave the post.
    id: String,
}

#[derive(Clone)]
struct LinkedIn {
    api: Api,
    author: String,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl LinkedIn {
    #[tool(description = "Publish a post on the company page (a write: it is public at once).")]
    async fn create_post(
        &self,
        Parameters(p): Parameters<PostText>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = serde_json::json!({
            "author": self.author,
            "commentary": p.text,
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false
        });
        let request = self
            .api
            .http
            .post(format!("{}/rest/posts", self.api.base))
            .header("X-Restli-Protocol-Version", "2.0.0")
            .json(&body);
        self.api.send(request).await
    }

    #[tool(description = "Impressions, clicks, reactions and shares of the company page's posts.")]
    async fn page_statistics(&self) -> Result<CallToolResult, ErrorData> {
        let url = url_with(
            &format!("{}/rest/organizationalEntityShareStatistics", self.api.base),
            &[
                ("q", "organizationalEntity"),
                ("organizationalEntity", self.author.as_str()),
            ],
        )?;
        let request = self
            .api
            .http
            .get(url)
            .header("X-Restli-Protocol-Version", "2.0.0");
        self.api.send(request).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LinkedIn {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[derive(Clone)]
struct Twitter {
    api: Api,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Twitter {
    #[tool(description = "Publish a post on X (a write: it is public at once).")]
    async fn create_post(
        &self,
        Parameters(p): Parameters<PostText>,
    ) -> Result<CallToolResult, ErrorData> {
        let request = self
            .api
            .http
            .post(format!("{}/2/tweets", self.api.base))
            .json(&serde_json::json!({ "text": p.text }));
        self.api.send(request).await
    }

    #[tool(description = "A post's public metrics: impressions, likes, reposts, replies.")]
    async fn post_metrics(
        &self,
        Parameters(p): Parameters<PostId>,
    ) -> Result<CallToolResult, ErrorData> {
        let url = url_with(
            &format!("{}/2/tweets/{}", self.api.base, p.id),
            &[("tweet.fields", "public_metrics,created_at")],
        )?;
        let request = self.api.http.get(url);
        self.api.send(request).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Twitter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

const USAGE: &str = "usage: mktg-rest-mcp <linkedin|twitter>  (an MCP server on stdin/stdout)";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("mktg-rest-mcp: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let vendor = std::env::args().nth(1).ok_or_else(|| USAGE.to_string())?;
    let io = rmcp::transport::stdio();
    let running = match vendor.as_str() {
        "linkedin" => {
            let api = Api::from_env(
                "LINKEDIN_API_BASE",
                "https://api.linkedin.com",
                "LINKEDIN_ACCESS_TOKEN",
            )?;
            let author = std::env::var("LINKEDIN_AUTHOR_URN").map_err(|_| {
                "LINKEDIN_AUTHOR_URN is not set (e.g. urn:li:organization:123)".to_string()
            })?;
            LinkedIn {
                api,
                author,
                tool_router: LinkedIn::tool_router(),
            }
            .serve(io)
            .await
            .map_err(|e| e.to_string())?
            .waiting()
            .await
        }
        "twitter" | "x" => {
            let api = Api::from_env("X_API_BASE", "https://api.x.com", "X_BEARER_TOKEN")?;
            Twitter {
                api,
                tool_router: Twitter::tool_router(),
            }
            .serve(io)
            .await
            .map_err(|e| e.to_string())?
            .waiting()
            .await
        }
        other => return Err(format!("unknown vendor \"{other}\"; {USAGE}")),
    };
    running.map(|_| ()).map_err(|e| e.to_string())
}
