//! Sign-in with an OpenID Connect provider: ID tokens signed with a key
//! made for the test (openssl), published as a JWKS by a mock provider
//! (wiremock). The tenant and role come from the token's claims; a token
//! of another issuer or audience, expired, tampered with, without a
//! tenant or role, or signed by an unknown key is refused with the reason;
//! a rotated key is fetched once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api::oidc::Oidc;
use api::{route, ApiKeys};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An RSA key made with openssl: its PEM and its public JWK.
fn rsa_key(dir: &std::path::Path, kid: &str) -> (Vec<u8>, Value) {
    let pem = dir.join(format!("{kid}.pem"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed")
        .success();
    assert!(ok);
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex_n = text.trim().trim_start_matches("Modulus=");
    let n = hex::decode(hex_n).unwrap();
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                     "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
    (std::fs::read(&pem).unwrap(), jwk)
}

fn token(pem: &[u8], kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn id_tokens_of_the_provider_sign_people_in_with_their_tenant_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, jwk) = rsa_key(dir.path(), "k1");
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk]})))
        .up_to_n_times(1)
        .mount(&provider)
        .await;
    let issuer = format!("{}/pool-1", provider.uri());
    let oidc = Oidc::new(
        &issuer,
        "client-abc",
        Some(&format!("{}/jwks", provider.uri())),
    );
    let keys = ApiKeys::parse("").unwrap().with_oidc(oidc);
    let t = mktg_testkit::memory_deps();
    let me = |bearer: String| {
        let (deps, keys) = (&t.deps, &keys);
        async move {
            route(
                deps,
                keys,
                "GET",
                "/me",
                "",
                Some(&format!("Bearer {bearer}")),
                b"",
            )
            .await
        }
    };
    let good = json!({"sub": "u1", "iss": issuer, "aud": "client-abc", "exp": now() + 600,
                      "custom:tenant": "acme", "cognito:groups": ["viewer", "editor"]});
    let a = me(token(&pem, "k1", good.clone())).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"tenant": "acme", "role": "editor", "auth": "oidc"})
    );
    let mut owner = good.clone();
    owner["custom:role"] = json!("owner");
    assert_eq!(me(token(&pem, "k1", owner)).await.body["role"], "owner");

    let refused = [
        (
            "iss",
            json!("https://elsewhere.example/pool"),
            "InvalidIssuer",
        ),
        ("aud", json!("another-client"), "InvalidAudience"),
        ("exp", json!(now() - 3600), "ExpiredSignature"),
        ("custom:tenant", Value::Null, "custom:tenant"),
        ("cognito:groups", json!(["admins"]), "no role"),
    ];
    for (claim, value, why) in refused {
        let mut c = good.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(claim);
        } else {
            c[claim] = value;
        }
        let a = me(token(&pem, "k1", c)).await;
        assert_eq!(a.status, 401, "{claim}");
        assert!(
            a.body["message"].as_str().unwrap().contains(why),
            "{claim}: {}",
            a.body
        );
    }
    // A tampered payload breaks the signature.
    let t1 = token(&pem, "k1", good.clone());
    let parts: Vec<&str> = t1.split('.').collect();
    let mut forged: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    forged["custom:tenant"] = json!("victim");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    let a = me(forged).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("InvalidSignature"),
        "{}",
        a.body
    );

    // The provider rotates to a new key: fetched once, then accepted.
    let (pem2, jwk2) = rsa_key(dir.path(), "k2");
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk2]})))
        .mount(&provider)
        .await;
    // (The first fetch was under a minute ago: an unknown key waits for
    // the refetch window rather than hammering the provider.)
    let a = me(token(&pem2, "k2", good.clone())).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["message"].as_str().unwrap().contains("\"k2\""),
        "{}",
        a.body
    );
    let fetches = provider.received_requests().await.unwrap().len();
    assert_eq!(
        fetches, 1,
        "keys fetched once at first use, not per request"
    );

    // A person the provider knows but no tenant claims signs up: they own
    // the new tenant from then on, and cannot sign up twice.
    let signup_keys = keys.clone().with_signup(true);
    let mut newcomer = good.clone();
    newcomer.as_object_mut().unwrap().remove("custom:tenant");
    newcomer["sub"] = json!("u-new");
    newcomer["email"] = json!("noor@example.com");
    let bearer = format!("Bearer {}", token(&pem, "k1", newcomer));
    let a = route(&t.deps, &signup_keys, "GET", "/me", "", Some(&bearer), b"").await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("no_tenant")),
        "{}",
        a.body
    );
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains("noor@example.com"));
    let made = route(
        &t.deps,
        &signup_keys,
        "POST",
        "/signup",
        "",
        Some(&bearer),
        br#"{"name": "Noor Labs"}"#,
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(
        made.body.get("key").is_none(),
        "a person signs in, no key needed"
    );
    let tenant = made.body["tenant"].as_str().unwrap();
    assert!(tenant.starts_with("noor-labs-"));
    let a = route(&t.deps, &signup_keys, "GET", "/me", "", Some(&bearer), b"").await;
    assert_eq!(
        a.body,
        json!({"tenant": tenant, "role": "owner", "auth": "oidc"})
    );
    let twice = route(
        &t.deps,
        &signup_keys,
        "POST",
        "/signup",
        "",
        Some(&bearer),
        br#"{"name": "Again"}"#,
    )
    .await;
    assert_eq!(twice.status, 409);
    assert!(twice.body["message"].as_str().unwrap().contains(tenant));
    // A person the provider already puts in a tenant cannot make another
    // (which the claim would always win over, unreachable).
    let claimed = format!("Bearer {}", token(&pem, "k1", good.clone()));
    let a = route(
        &t.deps,
        &signup_keys,
        "POST",
        "/signup",
        "",
        Some(&claimed),
        br#"{"name": "Side"}"#,
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body["message"].as_str().unwrap().contains("acme"));
    // A token with an empty subject is no one.
    let mut nobody = good.clone();
    nobody.as_object_mut().unwrap().remove("custom:tenant");
    nobody["sub"] = json!("");
    let a = route(
        &t.deps,
        &signup_keys,
        "GET",
        "/me",
        "",
        Some(&format!("Bearer {}", token(&pem, "k1", nobody))),
        b"",
    )
    .await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["message"].as_str().unwrap().contains("no subject"),
        "{}",
        a.body
    );

    // API keys still work beside tokens, and /auth/config tells the
    // dashboard where to sign in.
    let cfg = route(&t.deps, &keys, "GET", "/auth/config", "", None, b"").await;
    assert_eq!(cfg.body["oidc"]["client_id"], "client-abc");
    assert_eq!(cfg.body["oidc"]["issuer"], issuer);
}

#[tokio::test]
async fn keys_are_found_under_the_issuer_by_default_and_a_rotation_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, jwk) = rsa_key(dir.path(), "new");
    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk]})))
        .mount(&provider)
        .await;
    // The JWKS place defaults to Cognito's, under the issuer.
    let oidc = Oidc::new(&provider.uri(), "client-abc", None);
    let claims = json!({"sub": "u1", "iss": provider.uri(), "aud": "client-abc", "exp": now() + 600,
                        "custom:tenant": "acme", "custom:role": "viewer"});
    let p = oidc.principal(&token(&pem, "new", claims)).await.unwrap();
    assert_eq!(
        (p.tenant.as_str(), p.role, p.via),
        ("acme", api::Role::Viewer, "oidc")
    );
    assert!(
        Oidc::from_env().unwrap().is_none(),
        "off unless MKTG_OIDC_ISSUER is set"
    );
}
