//! Signature schemes. Every comparison of a signature is constant-time
//! (`Mac::verify_slice`); secrets never leave this module.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Which sender format a request uses, from its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Ours: `x-mktg-timestamp` + `x-mktg-signature: v1=<hex>` over `{ts}.{body}`.
    Generic,
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`.
    Stripe,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body.
    GitHub,
}

/// What a valid signature tells us.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Signed timestamp (seconds), when the scheme has one.
    pub timestamp: Option<i64>,
}

fn mac(secret: &str) -> Result<HmacSha256, String> {
    HmacSha256::new_from_slice(secret.as_bytes())
        .map_err(|_| "webhook secret is unusable".to_string())
}

/// Hex HMAC-SHA256 of `{ts}.{body}` (generic and Stripe) or of the body.
pub fn sign(secret: &str, timestamp: Option<i64>, body: &[u8]) -> Result<String, String> {
    let mut m = mac(secret)?;
    if let Some(ts) = timestamp {
        m.update(format!("{ts}.").as_bytes());
    }
    m.update(body);
    Ok(hex::encode(m.finalize().into_bytes()))
}

fn check(secret: &str, timestamp: Option<i64>, body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut m) = mac(secret) else {
        return false;
    };
    if let Some(ts) = timestamp {
        m.update(format!("{ts}.").as_bytes());
    }
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

/// Verifies a request; `header` reads one header (case-insensitive).
pub fn verify(
    scheme: Scheme,
    secret: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<Verified, String> {
    match scheme {
        Scheme::Generic => {
            let ts: i64 = header("x-mktg-timestamp")
                .ok_or("missing x-mktg-timestamp header")?
                .trim()
                .parse()
                .map_err(|_| "x-mktg-timestamp is not a number of seconds")?;
            let sig = header("x-mktg-signature").ok_or("missing x-mktg-signature header")?;
            let ok = sig
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("v1="))
                .any(|h| check(secret, Some(ts), body, h));
            if ok {
                Ok(Verified {
                    timestamp: Some(ts),
                })
            } else {
                Err("signature does not match".into())
            }
        }
        Scheme::Stripe => {
            let h = header("stripe-signature").ok_or("missing Stripe-Signature header")?;
            let mut ts = None;
            let mut sigs = Vec::new();
            for part in h.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => ts = v.parse::<i64>().ok(),
                    Some(("v1", v)) => sigs.push(v.to_string()),
                    _ => {}
                }
            }
            let ts = ts.ok_or("Stripe-Signature has no timestamp")?;
            if sigs.iter().any(|s| check(secret, Some(ts), body, s)) {
                Ok(Verified {
                    timestamp: Some(ts),
                })
            } else {
                Err("signature does not match".into())
            }
        }
        Scheme::GitHub => {
            let h = header("x-hub-signature-256").ok_or("missing X-Hub-Signature-256 header")?;
            let hex_sig = h
                .trim()
                .strip_prefix("sha256=")
                .ok_or("X-Hub-Signature-256 must start with sha256=")?;
            if check(secret, None, body, hex_sig) {
                Ok(Verified { timestamp: None })
            } else {
                Err("signature does not match".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn each_scheme_accepts_its_own_signature_and_refuses_a_changed_body() {
        let body = br#"{"type":"traffic_drop","id":"d1"}"#;
        let sig = sign("s3cret", Some(1_700_000_000), body).unwrap();
        let generic = [
            ("x-mktg-timestamp", "1700000000".to_string()),
            ("x-mktg-signature", format!("v1={sig}")),
        ];
        assert_eq!(
            verify(Scheme::Generic, "s3cret", headers(&generic), body),
            Ok(Verified {
                timestamp: Some(1_700_000_000)
            })
        );
        assert!(verify(Scheme::Generic, "s3cret", headers(&generic), b"{}").is_err());
        assert!(verify(Scheme::Generic, "other", headers(&generic), body).is_err());

        let stripe = [(
            "Stripe-Signature",
            format!("t=1700000000,v1=deadbeef,v1={sig}"),
        )];
        assert!(verify(Scheme::Stripe, "s3cret", headers(&stripe), body).is_ok());

        let gh = [(
            "X-Hub-Signature-256",
            format!("sha256={}", sign("s3cret", None, body).unwrap()),
        )];
        assert_eq!(
            verify(Scheme::GitHub, "s3cret", headers(&gh), body),
            Ok(Verified { timestamp: None })
        );
        assert_eq!(
            verify(Scheme::GitHub, "s3cret", headers(&[]), body),
            Err("missing X-Hub-Signature-256 header".into())
        );
    }
}
