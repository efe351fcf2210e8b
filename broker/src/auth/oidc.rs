//! Trusted issuers (`--oidc-issuer ISSUER=JWKS`) and the check of a request's bearer token.
//!
//! Each issuer's key set is loaded at start-up and reloaded when a token names a `kid` the
//! set does not have, at most once per `--oidc-jwks-refresh-interval` (an attacker sending
//! random kids cannot make Herald hammer the issuer). Verified tokens are cached until they
//! expire, so a publisher reusing its token costs one hash-map lookup per request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use tokio::time::Instant;
use url::Url;

use super::AuthError;
use super::cache::{CachedToken, TokenCache};
use super::fetch::JwksFetcher;
use super::jwks::KeySet;
use super::jwt;
use crate::identity::{IdentityOrigin, SenderIdentity};

/// Clock skew tolerated on `exp` and `nbf`, as Knative's token verifier allows.
pub const LEEWAY_SECS: i64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_JWKS_BYTES: usize = 1 << 20;
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(600);
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Where an issuer's keys are: a JWKS file or an `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(Url),
}

impl JwksSource {
    /// `https://...` is fetched; anything else is a file path. Plain `http` is refused: keys
    /// fetched without TLS could be anyone's.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("http://") {
            return Err(format!("{text:?}: a JWKS URL must be https"));
        }
        if text.starts_with("https://") {
            return Url::parse(text)
                .map(JwksSource::Url)
                .map_err(|e| format!("{text:?} is not a URL: {e}"));
        }
        if text.is_empty() {
            return Err("empty JWKS location".to_owned());
        }
        Ok(JwksSource::File(PathBuf::from(text)))
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => write!(f, "{url}"),
        }
    }
}

/// `--oidc-*` settings.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    pub issuers: Vec<(String, JwksSource)>,
    pub max_token_bytes: usize,
    pub max_jwks_bytes: usize,
    pub refresh_interval: Duration,
    /// Every issuer's keys are reloaded this often, so a key the issuer withdrew stops being
    /// trusted (`--oidc-jwks-max-age`).
    pub max_age: Duration,
    pub fetch_timeout: Duration,
    pub cache_entries: usize,
    /// `--oidc-ca`: a PEM file of CAs trusted for JWKS URLs besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_jwks_bytes: DEFAULT_MAX_JWKS_BYTES,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            max_age: DEFAULT_JWKS_MAX_AGE,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            cache_entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            ca_file: None,
        }
    }
}

struct Issuer {
    source: JwksSource,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last (re)loaded or tried; held while reloading so concurrent
    /// requests wait for one fetch instead of each starting their own.
    last_load: tokio::sync::Mutex<Option<Instant>>,
    /// Why the last load failed, while it did: a token whose key is missing then says so.
    last_error: RwLock<Option<String>>,
}

/// Verifies bearer tokens against the trusted issuers.
pub struct Authenticator {
    issuers: HashMap<String, Issuer>,
    cache: TokenCache,
    fetcher: JwksFetcher,
    options: OidcOptions,
}

impl Authenticator {
    /// Loads every issuer's keys. A JWKS file that cannot be read or parsed fails start-up; an
    /// unreachable URL is logged and fetched again when a token needs it.
    pub async fn start(options: OidcOptions) -> Result<Self, AuthError> {
        let extra_ca = match &options.ca_file {
            Some(path) => tokio::fs::read(path)
                .await
                .map_err(|e| AuthError::JwksUnavailable {
                    location: path.display().to_string(),
                    message: format!("--oidc-ca: {e}"),
                })?,
            None => Vec::new(),
        };
        let fetcher = JwksFetcher::new(options.max_jwks_bytes, options.fetch_timeout, &extra_ca)?;
        let mut issuers = HashMap::new();
        for (name, source) in &options.issuers {
            let (keys, failed) = match fetcher.load(source).await {
                Ok(keys) => (keys, None),
                Err(e) if matches!(source, JwksSource::File(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(issuer = ?name, error = %e, "JWKS not loaded yet; fetched again when a token needs it");
                    (KeySet::default(), Some(e.to_string()))
                }
            };
            tracing::info!(issuer = ?name, jwks = %source, keys = keys.keys.len(), "trusting OIDC issuer");
            issuers.insert(
                name.clone(),
                Issuer {
                    source: source.clone(),
                    keys: RwLock::new(Arc::new(keys)),
                    last_load: tokio::sync::Mutex::new(Some(Instant::now())),
                    last_error: RwLock::new(failed),
                },
            );
        }
        Ok(Self {
            issuers,
            cache: TokenCache::new(options.cache_entries),
            fetcher,
            options,
        })
    }

    /// The identity of the `Authorization` header's bearer token, if it is valid for
    /// `audience` now.
    pub async fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
        audience: &str,
    ) -> Result<SenderIdentity, AuthError> {
        let text = bearer(authorization)?;
        let now = unix_now();
        if let Some(cached) = self.cache.get(text) {
            return cached.check(now, audience);
        }
        let token = jwt::parse(text, self.options.max_token_bytes)?;
        let issuer = self
            .issuers
            .get(&token.claims.iss)
            .ok_or_else(|| AuthError::UntrustedIssuer(token.claims.iss.clone()))?;
        let mut keys = issuer.keys.read().expect("not poisoned").clone();
        let missing = match token.kid.as_deref() {
            Some(kid) => !keys.has_kid(kid),
            None => keys.candidates(None, token.algorithm).next().is_none(),
        };
        if missing {
            keys = self.reload(&token.claims.iss, issuer).await;
        }
        let mut outcome = Err(AuthError::UnknownKey {
            kid: token.kid.clone(),
        });
        for key in keys.candidates(token.kid.as_deref(), token.algorithm) {
            outcome = token.verify(key);
            if outcome.is_ok() {
                break;
            }
        }
        if let Err(AuthError::UnknownKey { .. }) = &outcome
            && let Some(message) = issuer.last_error.read().expect("not poisoned").clone()
        {
            return Err(AuthError::JwksUnavailable {
                location: issuer.source.to_string(),
                message,
            });
        }
        outcome?;
        let verified = CachedToken {
            identity: SenderIdentity {
                subject: token.claims.sub.clone(),
                origin: IdentityOrigin::Oidc {
                    issuer: token.claims.iss.clone(),
                },
            },
            audience: token.claims.aud.clone(),
            expires: token.claims.exp,
            not_before: token.claims.nbf,
        };
        let result = verified.check(now, audience);
        // An expired token is not worth remembering; a wrong audience is (the same token
        // sent to the same broker is refused again without verifying).
        if !matches!(result, Err(AuthError::Expired { .. })) {
            self.cache.insert(text, verified);
        }
        result
    }

    /// Reloads an issuer's keys unless that was tried within the refresh interval.
    async fn reload(&self, name: &str, issuer: &Issuer) -> Arc<KeySet> {
        self.reload_if(name, issuer, self.options.refresh_interval)
            .await
    }

    /// Reloads every issuer's keys every `--oidc-jwks-max-age` until the authenticator is
    /// dropped (at shutdown). A reload that changes the keys empties the token cache, so a
    /// token signed with a withdrawn key is not accepted from the cache either.
    pub fn spawn_max_age_reload(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = self.options.max_age;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(this) = weak.upgrade() else { return };
                for (name, issuer) in &this.issuers {
                    this.reload_if(name, issuer, Duration::ZERO).await;
                }
            }
        });
    }

    async fn reload_if(&self, name: &str, issuer: &Issuer, min_interval: Duration) -> Arc<KeySet> {
        let mut last = issuer.last_load.lock().await;
        let due = last.is_none_or(|at| at.elapsed() >= min_interval);
        if due {
            *last = Some(Instant::now());
            match self.fetcher.load(&issuer.source).await {
                Ok(keys) => {
                    tracing::info!(issuer = ?name, keys = keys.keys.len(), "JWKS reloaded");
                    let mut current = issuer.keys.write().expect("not poisoned");
                    if current.fingerprint() != keys.fingerprint() {
                        self.cache.clear();
                    }
                    *current = Arc::new(keys);
                    *issuer.last_error.write().expect("not poisoned") = None;
                }
                Err(e) => {
                    *issuer.last_error.write().expect("not poisoned") = Some(e.to_string());
                    tracing::warn!(issuer = ?name, error = %e, "JWKS reload failed; keeping the keys loaded before")
                }
            }
        }
        issuer.keys.read().expect("not poisoned").clone()
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer(header: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let text = header
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not ASCII".to_owned()))?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(AuthError::Malformed(
            "Authorization header is not `Bearer <token>`".to_owned(),
        )),
    }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl CachedToken {
    /// Valid at `now` (with [`LEEWAY_SECS`]) and for `audience`.
    pub fn check(&self, now: i64, audience: &str) -> Result<SenderIdentity, AuthError> {
        if now > self.expires.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired { exp: self.expires });
        }
        if let Some(nbf) = self.not_before
            && now.saturating_add(LEEWAY_SECS) < nbf
        {
            return Err(AuthError::NotYetValid { nbf });
        }
        if !self.audience.contains(audience) {
            return Err(AuthError::WrongAudience {
                expected: audience.to_owned(),
            });
        }
        Ok(self.identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_locations_are_files_or_https_urls() {
        assert_eq!(
            JwksSource::parse("/etc/jwks.json").unwrap(),
            JwksSource::File("/etc/jwks.json".into())
        );
        assert!(matches!(
            JwksSource::parse("https://issuer.example/keys").unwrap(),
            JwksSource::Url(_)
        ));
        assert!(JwksSource::parse("http://issuer.example/keys").is_err());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let value = HeaderValue::from_static("bearer abc");
        assert_eq!(bearer(Some(&value)).unwrap(), "abc");
        assert!(matches!(bearer(None), Err(AuthError::Missing)));
        let basic = HeaderValue::from_static("Basic abc");
        assert!(matches!(bearer(Some(&basic)), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn expiry_and_not_before_allow_a_minute_of_skew() {
        let token = CachedToken {
            identity: SenderIdentity::resource("PingSource", "ns", "p"),
            audience: jwt::Audience::One("a".into()),
            expires: 1000,
            not_before: Some(900),
        };
        assert!(token.check(1060, "a").is_ok());
        assert!(matches!(
            token.check(1061, "a"),
            Err(AuthError::Expired { .. })
        ));
        assert!(token.check(840, "a").is_ok());
        assert!(matches!(
            token.check(839, "a"),
            Err(AuthError::NotYetValid { .. })
        ));
        assert!(matches!(
            token.check(950, "b"),
            Err(AuthError::WrongAudience { .. })
        ));
    }
}
