//! Sign-in through an OpenID Connect provider (Amazon Cognito or any other):
//! the dashboard gets an ID token by the authorization-code flow with PKCE
//! and sends it as the bearer token; the API verifies it against the
//! provider's published keys (JWKS): signature, issuer, audience, expiry.
//! The tenant and role come from the token's claims, never from the
//! request: `custom:tenant` and `custom:role` by default (a role may also
//! come from `cognito:groups`, the highest of viewer/editor/owner).
//!
//! Configured by environment (the template's Oidc* parameters):
//! `MKTG_OIDC_ISSUER`, `MKTG_OIDC_AUDIENCE` (the app client id),
//! `MKTG_OIDC_JWKS_URL` (default `{issuer}/.well-known/jwks.json`, Cognito's
//! place), `MKTG_OIDC_TENANT_CLAIM`, `MKTG_OIDC_ROLE_CLAIM`, and for the
//! dashboard's sign-in button `MKTG_OIDC_AUTHORIZE_URL`,
//! `MKTG_OIDC_TOKEN_URL` and `MKTG_OIDC_SCOPES`.

use crate::{Principal, Role};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use mktg_core::TenantId;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// The keys are fetched again at most this often (a token with an unknown
/// key id after a rotation), so bad tokens cannot hammer the provider.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);

pub struct Oidc {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    pub tenant_claim: String,
    pub role_claim: String,
    /// What the dashboard needs to start a sign-in (none: keys only).
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: String,
    /// See [`REFETCH_AFTER`].
    pub refetch_after: Duration,
    http: reqwest::Client,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    pub fn new(issuer: &str, audience: &str, jwks_url: Option<&str>) -> Oidc {
        let issuer = issuer.trim_end_matches('/').to_string();
        Oidc {
            jwks_url: jwks_url
                .map(str::to_string)
                .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json")),
            issuer,
            audience: audience.to_string(),
            tenant_claim: "custom:tenant".into(),
            role_claim: "custom:role".into(),
            authorize_url: None,
            token_url: None,
            scopes: "openid email".into(),
            refetch_after: REFETCH_AFTER,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
        }
    }

    /// From the environment; none without `MKTG_OIDC_ISSUER`. An issuer
    /// without an audience is an error naming the variable.
    pub fn from_env() -> Result<Option<Oidc>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(issuer) = var("MKTG_OIDC_ISSUER") else {
            return Ok(None);
        };
        let audience = var("MKTG_OIDC_AUDIENCE").ok_or(
            "MKTG_OIDC_ISSUER is set but MKTG_OIDC_AUDIENCE (the app client id tokens are issued for) is not",
        )?;
        let mut o = Oidc::new(&issuer, &audience, var("MKTG_OIDC_JWKS_URL").as_deref());
        if let Some(c) = var("MKTG_OIDC_TENANT_CLAIM") {
            o.tenant_claim = c;
        }
        if let Some(c) = var("MKTG_OIDC_ROLE_CLAIM") {
            o.role_claim = c;
        }
        o.authorize_url = var("MKTG_OIDC_AUTHORIZE_URL");
        o.token_url = var("MKTG_OIDC_TOKEN_URL");
        if let Some(s) = var("MKTG_OIDC_SCOPES") {
            o.scopes = s;
        }
        Ok(Some(o))
    }

    /// What `GET /auth/config` tells the dashboard.
    pub fn public_config(&self) -> Value {
        json!({
            "issuer": self.issuer, "client_id": self.audience,
            "authorize_url": self.authorize_url, "token_url": self.token_url,
            "scopes": self.scopes,
        })
    }

    async fn fetch_keys(&self) -> Result<(), String> {
        let mut guard = self.keys.write().await;
        if guard.1.is_some_and(|at| at.elapsed() < self.refetch_after) {
            return Ok(());
        }
        guard.1 = Some(Instant::now());
        let set: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot read the sign-in provider's keys: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the sign-in provider's keys are not a JWKS: {e}"))?;
        guard.0 = set;
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<Option<jsonwebtoken::jwk::Jwk>, String> {
        if let Some(k) = self.keys.read().await.0.find(kid) {
            return Ok(Some(k.clone()));
        }
        self.fetch_keys().await?;
        Ok(self.keys.read().await.0.find(kid).cloned())
    }

    /// Who an ID token is (its signature, issuer, audience and expiry
    /// checked), with the tenant and role its claims give, if any.
    pub async fn identity(&self, token: &str) -> Result<Identity, String> {
        let header = decode_header(token).map_err(|e| format!("not a valid token: {e}"))?;
        let kid = header.kid.ok_or("the token names no signing key (kid)")?;
        let jwk = self
            .key(&kid)
            .await?
            .ok_or_else(|| format!("the token's key \"{kid}\" is not one of the provider's"))?;
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key \"{kid}\": {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Value>(token, &key, &validation)
            .map_err(|e| format!("token refused: {e}"))?
            .claims;
        let tenant = claims[&self.tenant_claim]
            .as_str()
            .filter(|t| mktg_core::ids::is_valid_id(t) && *t != mktg_boot::tenant::REGISTRY)
            .map(TenantId::new);
        let role = claims[&self.role_claim]
            .as_str()
            .and_then(Role::parse)
            .or_else(|| {
                claims["cognito:groups"].as_array().and_then(|g| {
                    g.iter()
                        .filter_map(|v| v.as_str())
                        .filter_map(Role::parse)
                        .max()
                })
            });
        let sub = claims["sub"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or("the token has no subject (sub)")?;
        Ok(Identity {
            subject: format!("{}|{sub}", self.issuer),
            who: claims["email"].as_str().unwrap_or(sub).to_string(),
            tenant,
            role,
        })
    }

    /// Why an identity's claims name no tenant, in words for the person.
    pub fn no_tenant(&self, who: &str) -> String {
        format!(
            "the token has no valid \"{}\" claim naming the tenant, and {who} belongs to no tenant here: create one (sign up) or ask an owner of yours",
            self.tenant_claim
        )
    }

    /// The principal an ID token stands for by its claims alone, or why it
    /// is refused.
    pub async fn principal(&self, token: &str) -> Result<Principal, String> {
        self.principal_of(self.identity(token).await?)
    }

    /// The principal of a verified identity by its claims alone.
    pub fn principal_of(&self, id: Identity) -> Result<Principal, String> {
        let tenant = id.tenant.ok_or_else(|| self.no_tenant(&id.who))?;
        let role = id.role.ok_or_else(|| {
            format!(
                "the token gives no role: \"{}\" or cognito:groups must name viewer, editor or owner",
                self.role_claim
            )
        })?;
        Ok(Principal {
            tenant,
            role,
            via: "oidc",
            who: Some(id.who),
        })
    }
}

/// A verified ID token's person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `issuer|sub`: the same person across sign-ins.
    pub subject: String,
    /// The email, else the subject: for the record.
    pub who: String,
    pub tenant: Option<TenantId>,
    pub role: Option<Role>,
}
