//! Herald as an OIDC issuer for its outbound identity, as Knative's `authentication-oidc`
//! feature does with service-account tokens: a delivery to a destination with `audience` set
//! carries `Authorization: Bearer <JWT>` signed with Herald's Ed25519 key.
//!
//! Claims: `iss` (`--issuer-url`), `sub` (the trigger's or source's service-account subject,
//! `system:serviceaccount:{namespace}:herald-{kind}-{name}`), `aud`, `iat`, `exp`
//! (`--token-lifetime` later); the header carries `alg: EdDSA` and `kid` (the key's RFC 7638
//! thumbprint). Tokens are cached per (subject, audience) and re-minted once four fifths of
//! their lifetime have passed. `/.well-known/openid-configuration` and
//! `/.well-known/jwks.json` publish the public key, so another Herald (or any OIDC verifier)
//! can trust these tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// `--token-lifetime` unless set: Kubernetes' default for projected service-account tokens.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Cached tokens beyond which expired ones are swept at the next insertion.
const CACHE_SWEEP_AT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("--issuer-url {url:?} is not an http or https URL")]
    Url { url: String },
    #[error("signing key {path}: {reason}")]
    Key { path: String, reason: String },
}

struct Cached {
    token: Arc<str>,
    /// Unix seconds after which a new token is minted.
    renew_at: i64,
}

/// Herald's signing identity.
pub struct Issuer {
    url: String,
    key: Ed25519KeyPair,
    kid: String,
    lifetime: Duration,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer over a PKCS#8 Ed25519 key (DER; v1 as `openssl genpkey` writes, or v2).
    pub fn new(url: &str, pkcs8: &[u8], lifetime: Duration) -> Result<Self, IssuerError> {
        let parsed = url::Url::parse(url).ok();
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(IssuerError::Url {
                url: url.to_owned(),
            });
        }
        let key =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| IssuerError::Key {
                path: String::new(),
                reason: format!("not a PKCS#8 Ed25519 private key ({e})"),
            })?;
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        // RFC 7638: SHA-256 over the required members in lexicographic order, no white space.
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let digest = ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes());
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            key,
            lifetime,
            cache: Mutex::default(),
        })
    }

    /// An issuer with a key generated now and kept in memory only (tests, and a data
    /// directory that cannot be written).
    pub fn ephemeral(url: &str, lifetime: Duration) -> Self {
        let pkcs8 = generate_pkcs8();
        Self::new(url, &pkcs8, lifetime).expect("a generated key and a checked URL")
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A token for `subject` to present to `audience`: the cached one while it has more than
    /// a fifth of its lifetime left, else a new one.
    pub fn token(&self, subject: &str, audience: &str) -> Arc<str> {
        let now = chrono::Utc::now().timestamp();
        let key = (subject.to_owned(), audience.to_owned());
        let mut cache = self.cache.lock().unwrap();
        if let Some(cached) = cache.get(&key)
            && now < cached.renew_at
        {
            return cached.token.clone();
        }
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let token: Arc<str> = self.mint(subject, audience, now, lifetime).into();
        if cache.len() >= CACHE_SWEEP_AT {
            cache.retain(|_, c| c.renew_at > now);
        }
        let renew_at = now.saturating_add(lifetime.saturating_mul(4) / 5);
        cache.insert(
            key,
            Cached {
                token: token.clone(),
                renew_at,
            },
        );
        token
    }

    fn mint(&self, subject: &str, audience: &str, now: i64, lifetime: i64) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// The JSON Web Key Set with Herald's public key (RFC 8037 `OKP`/`Ed25519`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
    }

    /// The OpenID Provider metadata a verifier discovers the key set from.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{}{JWKS_PATH}", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
        })
    }
}

/// A new Ed25519 key as PKCS#8 v2 DER.
pub fn generate_pkcs8() -> Vec<u8> {
    let random = ring::rand::SystemRandom::new();
    Ed25519KeyPair::generate_pkcs8(&random)
        .expect("the system's random source works")
        .as_ref()
        .to_vec()
}

/// `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`: fixed documents,
/// serialised once.
pub fn router(issuer: Arc<Issuer>) -> Router {
    let json = |value: Value| {
        let body = value.to_string();
        move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }
    };
    Router::new()
        .route(
            OPENID_CONFIGURATION_PATH,
            get(json(issuer.openid_configuration())),
        )
        .route(JWKS_PATH, get(json(issuer.jwks())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token: &str) -> Value {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    }

    #[test]
    fn a_token_verifies_with_the_published_key_and_carries_the_claims() {
        let issuer = Issuer::ephemeral("http://herald.example:8080/", DEFAULT_TOKEN_LIFETIME);
        let token = issuer.token(
            "system:serviceaccount:shop:herald-trigger-orders",
            "billing",
        );
        let (input, signature) = token.rsplit_once('.').unwrap();
        let x = issuer.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            URL_SAFE_NO_PAD.decode(x).unwrap(),
        );
        public
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .unwrap();
        let claims = claims(&token);
        assert_eq!(claims["iss"], "http://herald.example:8080");
        assert_eq!(
            claims["sub"],
            "system:serviceaccount:shop:herald-trigger-orders"
        );
        assert_eq!(claims["aud"], "billing");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
        assert_eq!(
            issuer.openid_configuration()["jwks_uri"],
            "http://herald.example:8080/.well-known/jwks.json"
        );
    }

    #[test]
    fn tokens_are_cached_per_subject_and_audience() {
        let issuer = Issuer::ephemeral("https://herald.example", DEFAULT_TOKEN_LIFETIME);
        let a = issuer.token("s", "one");
        assert!(Arc::ptr_eq(&a, &issuer.token("s", "one")));
        assert!(!Arc::ptr_eq(&a, &issuer.token("s", "two")));
        assert!(!Arc::ptr_eq(&a, &issuer.token("t", "one")));
        // A lifetime of zero renews at once: every call mints.
        let short = Issuer::ephemeral("https://herald.example", Duration::ZERO);
        assert!(!Arc::ptr_eq(&short.token("s", "a"), &short.token("s", "a")));
    }

    #[test]
    fn bad_urls_and_keys_are_refused() {
        let key = generate_pkcs8();
        assert!(matches!(
            Issuer::new("herald.example", &key, DEFAULT_TOKEN_LIFETIME),
            Err(IssuerError::Url { .. })
        ));
        assert!(matches!(
            Issuer::new("https://h", b"not a key", DEFAULT_TOKEN_LIFETIME),
            Err(IssuerError::Key { .. })
        ));
    }
}
