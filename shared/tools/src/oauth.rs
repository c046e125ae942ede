//! OAuth2 refresh-token flow (the Google tools: GA4, Search Console, Tag
//! Manager, Ads). The `oauth2` crate builds the request and parses the
//! answer; reqwest carries it. A minted access token is kept in memory and,
//! through a `TokenStore` (Secrets Manager when deployed: encrypted at
//! rest), shared with the next cold start, which reuses it until 60 s
//! before it expires instead of refreshing again.

use mktg_config::OAuth;
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, RefreshToken, Scope, TokenResponse, TokenUrl};
use std::time::{Duration, Instant};

/// A token this close to its expiry is refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub value: String,
    /// When to stop using it (expiry less the margin); `None`: no expiry given.
    pub refresh_at: Option<Instant>,
    /// The same moment as epoch seconds, for storing.
    pub refresh_at_epoch: Option<u64>,
}

impl AccessToken {
    pub fn is_fresh(&self) -> bool {
        self.refresh_at.is_none_or(|t| Instant::now() < t)
    }

    /// A stored token, usable until `refresh_at_epoch` (epoch seconds).
    pub fn from_stored(value: String, refresh_at_epoch: Option<u64>) -> AccessToken {
        let now = epoch_now();
        AccessToken {
            value,
            refresh_at: refresh_at_epoch
                .map(|t| Instant::now() + Duration::from_secs(t.saturating_sub(now))),
            refresh_at_epoch,
        }
    }
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where minted access tokens are kept between processes, by server name.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    async fn get(&self, server: &str) -> Option<AccessToken>;
    async fn put(&self, server: &str, token: &AccessToken);
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// Exchanges the refresh token for an access token at `oauth.token_url`.
/// `env` reads the credential variables.
pub async fn refresh(
    oauth: &OAuth,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    http: &reqwest::Client,
) -> Result<AccessToken, String> {
    let var =
        |name: &str| env(name).ok_or_else(|| format!("environment variable {name} is not set"));
    let client = BasicClient::new(ClientId::new(var(&oauth.client_id_env)?))
        .set_client_secret(ClientSecret::new(var(&oauth.client_secret_env)?))
        .set_token_uri(
            TokenUrl::new(oauth.token_url.clone())
                .map_err(|e| format!("token_url \"{}\": {e}", oauth.token_url))?,
        );
    let refresh_token = RefreshToken::new(var(&oauth.refresh_token_env)?);
    let send = |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let mut req = http.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let response = req.send().await.map_err(|e| HttpError(e.to_string()))?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            builder
                .body(bytes.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        }
    };
    let mut request = client.exchange_refresh_token(&refresh_token);
    for scope in &oauth.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let token = request.request_async(&send).await.map_err(|e| {
        let detail = match &e {
            oauth2::RequestTokenError::ServerResponse(r) => format!(
                "{}{}",
                r.error(),
                r.error_description()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            other => other.to_string(),
        };
        format!("token refresh at {} failed: {detail}", oauth.token_url)
    })?;
    let usable = token.expires_in().map(|d| d.saturating_sub(REFRESH_MARGIN));
    Ok(AccessToken {
        value: token.access_token().secret().clone(),
        refresh_at: usable.map(|d| Instant::now() + d),
        refresh_at_epoch: usable.map(|d| epoch_now() + d.as_secs()),
    })
}
