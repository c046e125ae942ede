//! Self-serve accounts: signing up creates a tenant with its first owner
//! (an API key shown once, or the signed-in person); owners make and
//! revoke API keys for machines.
//!
//! All of it lives in the registry partition (`mktg-registry`), which no
//! key or token may name as its tenant: `keys` maps the SHA-256 of a key
//! to its tenant and role (the key itself is never stored), `members` maps
//! a person (`issuer|subject`, hashed) to a tenant and role, and `tenants`
//! is the registry the scheduler tick already runs. A signed-up tenant's
//! id is its name's slug plus a random suffix, so signing up can never
//! claim a tenant that exists (one named by the deployment's keys or an
//! identity provider's claims).

use crate::{error, ok, parse, unavailable, Answer, ApiKeys, Principal, Role};
use mktg_boot::tenant::REGISTRY;
use mktg_boot::Deps;
use mktg_core::TenantId;
use mktg_store::{GoalKey, StoreError, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Registry collection of stored API keys, by the key's SHA-256.
pub const KEYS: &str = "keys";
/// Registry collection of people bound to a tenant, by SHA-256 of
/// `issuer|subject`.
pub const MEMBERS: &str = "members";
/// Most active (not revoked) keys a tenant may hold.
pub const MAX_KEYS: usize = 50;

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A stored API key's record (never the key).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    tenant: String,
    role: String,
    label: String,
    created_ms: u64,
    created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Member {
    tenant: String,
    role: String,
    who: String,
    since_ms: u64,
}

fn registry() -> TenantId {
    TenantId::new(REGISTRY)
}

fn registry_doc(collection: &str, id: &str, body: Value, new_only: bool) -> Write {
    Write::Doc {
        tenant: registry(),
        collection: collection.into(),
        id: id.into(),
        body,
        new_only,
        ttl: None,
    }
}

/// The principal of a key an owner made (not revoked), if `bearer` is one.
pub async fn stored_key(deps: &Deps, bearer: &str) -> Result<Option<Principal>, StoreError> {
    let Some(body) = deps.store.doc(&registry(), KEYS, &sha(bearer)).await? else {
        return Ok(None);
    };
    let Ok(k) = serde_json::from_value::<StoredKey>(body) else {
        return Ok(None);
    };
    Ok(match (k.revoked_ms, Role::parse(&k.role)) {
        (None, Some(role)) => Some(Principal {
            tenant: TenantId::new(k.tenant),
            role,
            via: "api_key",
            who: Some(format!("key \"{}\"", k.label)),
        }),
        _ => None,
    })
}

/// The tenant and role a signed-in person was bound to at sign-up.
pub async fn member(
    deps: &Deps,
    id: &crate::oidc::Identity,
) -> Result<Option<Principal>, StoreError> {
    let Some(body) = deps
        .store
        .doc(&registry(), MEMBERS, &sha(&id.subject))
        .await?
    else {
        return Ok(None);
    };
    let Ok(m) = serde_json::from_value::<Member>(body) else {
        return Ok(None);
    };
    Ok(Role::parse(&m.role).map(|role| Principal {
        tenant: TenantId::new(m.tenant),
        role,
        via: "oidc",
        who: Some(id.who.clone()),
    }))
}

/// A new API key: 256 random bits, prefixed so it is recognisable in a
/// secret scanner's findings.
fn new_key() -> String {
    format!(
        "mk_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The slug of a display name: lowercase letters, digits and dashes.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 24 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    /// The organisation's name, shown in the dashboard.
    name: String,
}

/// `POST /signup`: creates a tenant. Signed in with an ID token (of the
/// configured provider), that person becomes its owner; otherwise the
/// answer carries the tenant's first owner API key, shown this once.
pub async fn signup(
    deps: &Deps,
    keys: &ApiKeys,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    if !keys.signup_open() {
        return error(
            403,
            "signup_closed",
            "sign-up is closed on this deployment (the operator opens it with the SignUp parameter, MKTG_SIGNUP=open)",
        );
    }
    let req: SignUp = match parse(body, "{\"name\": \"Your organisation\"}") {
        Ok(r) => r,
        Err(a) => return a,
    };
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return error(
            400,
            "bad_request",
            "name must be 1 to 80 characters on one line",
        );
    }
    // The id: the name's slug, or `org` when it has too few letters or
    // digits for one, then a random suffix.
    let base = Some(slug(name))
        .filter(|b| b.len() >= 2)
        .unwrap_or_else(|| "org".into());
    // Signed in: the person must be verified, and not already a member.
    let bearer = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let person = match (bearer, keys.oidc()) {
        (Some(token), Some(oidc)) if token.split('.').count() == 3 => {
            match oidc.identity(token).await {
                Ok(id) => Some(id),
                Err(why) => return error(401, "unauthorized", why),
            }
        }
        (Some(_), _) => {
            return error(
                403,
                "forbidden",
                "an API key cannot sign up: sign up with no Authorization (or a signed-in person's ID token), then make keys",
            )
        }
        (None, _) => None,
    };
    if let Some(id) = &person {
        if let Some(t) = &id.tenant {
            return error(
                409,
                "conflict",
                format!(
                    "{} already belongs to tenant {t} (the sign-in provider says so)",
                    id.who
                ),
            );
        }
        match member(deps, id).await {
            Ok(Some(p)) => {
                return error(
                    409,
                    "conflict",
                    format!("{} already belongs to tenant {}", id.who, p.tenant),
                )
            }
            Ok(None) => {}
            Err(e) => return unavailable(e),
        }
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let tenant = format!("{base}-{}", &suffix[..8]);
    let now = deps.clock.now_ms();
    let (by, owner_write, key) = match &person {
        Some(id) => (
            id.who.clone(),
            registry_doc(
                MEMBERS,
                &sha(&id.subject),
                json!(Member {
                    tenant: tenant.clone(),
                    role: "owner".into(),
                    who: id.who.clone(),
                    since_ms: now,
                }),
                true,
            ),
            None,
        ),
        None => {
            let key = new_key();
            (
                "sign-up".to_string(),
                registry_doc(
                    KEYS,
                    &sha(&key),
                    json!(StoredKey {
                        tenant: tenant.clone(),
                        role: "owner".into(),
                        label: "first owner key (sign-up)".into(),
                        created_ms: now,
                        created_by: "sign-up".into(),
                        revoked_ms: None,
                    }),
                    true,
                ),
                Some(key),
            )
        }
    };
    // At most `signup_per_hour` sign-ups an hour across the deployment.
    let hour = 3_600_000;
    let writes = vec![
        Write::TakeRate {
            tenant: registry(),
            bucket: "signup".into(),
            window: mktg_core::tools::window_key("hour", hour, now),
            limit: keys.signup_per_hour(),
            expires_at: (now + hour) / 1000 + 3600,
        },
        registry_doc(
            "tenants",
            &tenant,
            json!({"since_ms": now, "name": name, "signed_up_by": by}),
            true,
        ),
        owner_write,
    ];
    match deps
        .store
        .commit(&GoalKey::tenant_only(registry()), writes)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            // The tenant id is random and the person was checked above: the
            // hour's sign-ups are used up (or a double submit raced).
            return error(
                429,
                "too_many_signups",
                format!(
                    "this deployment takes {} sign-ups an hour and has had them; try again later",
                    keys.signup_per_hour()
                ),
            );
        }
        Err(e) => return unavailable(e),
    }
    tracing::info!(%tenant, by, "tenant signed up");
    let mut answer = json!({"tenant": tenant, "name": name, "role": "owner"});
    if let Some(key) = key {
        answer["key"] = json!(key);
        answer["note"] = json!("keep this key: it is shown once and signs you in as the owner");
    }
    ok(201, answer)
}

fn key_id(hash: &str) -> &str {
    &hash[..16.min(hash.len())]
}

async fn tenant_keys(
    deps: &Deps,
    tenant: &TenantId,
) -> Result<Vec<(String, StoredKey)>, StoreError> {
    Ok(deps
        .store
        .docs(&registry(), KEYS)
        .await?
        .into_iter()
        .filter_map(|(hash, body)| Some((hash, serde_json::from_value::<StoredKey>(body).ok()?)))
        .filter(|(_, k)| k.tenant == tenant.as_str())
        .collect())
}

fn key_view(hash: &str, k: &StoredKey) -> Value {
    json!({"id": key_id(hash), "role": k.role, "label": k.label, "created_ms": k.created_ms,
           "created_by": k.created_by, "revoked_ms": k.revoked_ms})
}

/// `GET /keys`: the tenant's stored keys (never the keys themselves).
pub async fn list(deps: &Deps, tenant: &TenantId) -> Answer {
    match tenant_keys(deps, tenant).await {
        Ok(keys) => ok(
            200,
            json!({"keys": keys.iter().map(|(h, k)| key_view(h, k)).collect::<Vec<_>>()}),
        ),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    role: String,
    label: String,
}

/// `POST /keys`: a new key for a machine, shown once.
pub async fn create(deps: &Deps, tenant: &TenantId, by: &str, body: &[u8]) -> Answer {
    let req: NewKey = match parse(
        body,
        "{\"role\": \"viewer|editor|owner\", \"label\": \"...\"}",
    ) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if Role::parse(&req.role).is_none() {
        return error(
            400,
            "bad_request",
            format!("role \"{}\" is not viewer, editor or owner", req.role),
        );
    }
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 80 || label.chars().any(char::is_control) {
        return error(
            400,
            "bad_request",
            "label must be 1 to 80 characters on one line",
        );
    }
    match tenant_keys(deps, tenant).await {
        Ok(k) if k.iter().filter(|(_, k)| k.revoked_ms.is_none()).count() >= MAX_KEYS => {
            return error(
                409,
                "conflict",
                format!("this tenant holds {MAX_KEYS} active keys already; revoke one first"),
            )
        }
        Ok(_) => {}
        Err(e) => return unavailable(e),
    }
    let key = new_key();
    let hash = sha(&key);
    let stored = StoredKey {
        tenant: tenant.to_string(),
        role: req.role,
        label: label.to_string(),
        created_ms: deps.clock.now_ms(),
        created_by: by.to_string(),
        revoked_ms: None,
    };
    let write = registry_doc(KEYS, &hash, json!(stored), true);
    if let Err(e) = deps
        .store
        .commit(&GoalKey::tenant_only(registry()), vec![write])
        .await
    {
        return unavailable(e);
    }
    let mut view = key_view(&hash, &stored);
    view["key"] = json!(key);
    ok(201, view)
}

/// `DELETE /keys/{id}`: revokes one of the tenant's keys at once (the
/// record stays, marked, for the audit trail).
pub async fn revoke(deps: &Deps, tenant: &TenantId, id: &str) -> Answer {
    let keys = match tenant_keys(deps, tenant).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    let Some((hash, mut k)) = keys.into_iter().find(|(h, _)| key_id(h) == id) else {
        return error(
            404,
            "not_found",
            format!("no key \"{id}\" of this tenant (see GET /keys)"),
        );
    };
    if k.revoked_ms.is_none() {
        k.revoked_ms = Some(deps.clock.now_ms());
        let write = registry_doc(KEYS, &hash, json!(k), false);
        if let Err(e) = deps
            .store
            .commit(&GoalKey::tenant_only(registry()), vec![write])
            .await
        {
            return unavailable(e);
        }
    }
    ok(200, key_view(&hash, &k))
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_keep_letters_digits_and_single_dashes() {
        assert_eq!(slug("  Acme Co. (EU) "), "acme-co-eu");
        assert_eq!(slug("Ünïcode — Shop 42"), "n-code-shop-42");
        assert_eq!(slug("!!!"), "");
        assert_eq!(
            slug("a very long organisation name indeed"),
            "a-very-long-organisation"
        );
    }
}
