//! Application Default Credentials for Google Cloud: an OAuth 2 access token for the Pub/Sub
//! scope, from a service-account key (`GOOGLE_APPLICATION_CREDENTIALS`) or the metadata server.
//!
//! A service-account key is exchanged with the JWT bearer grant (RFC 7523): Herald signs a
//! JWT (`RS256`, header `kid` = `private_key_id`; claims `iss` = `client_email`, `scope`,
//! `aud` = `token_uri`, `iat`, `exp` one hour later) with the key's PKCS#8 RSA private key and
//! posts it to `token_uri`. On Google Cloud without a key file the metadata server answers
//! (`GET /computeMetadata/v1/instance/service-accounts/default/token`, `Metadata-Flavor:
//! Google`). Tokens are cached until a minute before they expire. Neither keys nor tokens are
//! ever logged or put in errors.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::HttpClient;

/// The OAuth scope of the Pub/Sub API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
const TOKEN_LIFETIME: u64 = 3600;
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("service-account key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("token request to {url} failed: {reason}")]
    Token { url: String, reason: String },
}

/// A service-account key file's fields that Herald uses.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: String,
    pub token_uri: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses a key file's JSON (`type` `service_account`); `path` only names it in errors.
    pub fn parse(path: &str, json: &[u8]) -> Result<Self, AuthError> {
        let bad = |reason: String| AuthError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let v: Value = serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("no string field {name:?}")))
        };
        if v["type"].as_str() != Some("service_account") {
            return Err(bad(format!(
                "type {:?} is not \"service_account\"",
                v["type"].as_str().unwrap_or("")
            )));
        }
        let pem = field("private_key")?;
        let der = pem_body(&pem, "PRIVATE KEY")
            .ok_or_else(|| bad("private_key is not a PEM \"PRIVATE KEY\" (PKCS#8)".into()))?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| bad(format!("private_key is not a usable RSA key: {e}")))?;
        Ok(Self {
            client_email: field("client_email")?,
            private_key_id: field("private_key_id")?,
            token_uri: v["token_uri"]
                .as_str()
                .unwrap_or("https://oauth2.googleapis.com/token")
                .to_owned(),
            key,
        })
    }

    /// The signed JWT assertion for the token request, issued at `now` (seconds since epoch).
    pub fn assertion(&self, now: u64) -> Result<String, AuthError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| AuthError::Token {
                url: self.token_uri.clone(),
                reason: "signing the assertion failed".into(),
            })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The DER public key (for tests that verify an assertion).
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }
}

/// The base64 body of the first PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// Where tokens come from.
#[derive(Debug)]
pub enum Credentials {
    ServiceAccount(Box<ServiceAccountKey>),
    /// The metadata server at this host (`GCE_METADATA_HOST`, default
    /// `metadata.google.internal`).
    Metadata {
        host: String,
    },
}

/// Hands out a cached access token, fetching a new one when it is about to expire.
#[derive(Debug)]
pub struct TokenSource {
    credentials: Credentials,
    cached: Mutex<Option<(String, Instant)>>,
}

impl TokenSource {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            cached: Mutex::default(),
        }
    }

    /// Application Default Credentials from the environment: the key file that
    /// `GOOGLE_APPLICATION_CREDENTIALS` names, else the metadata server.
    pub async fn from_env() -> Result<Self, AuthError> {
        let credentials = match std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
            Ok(path) if !path.is_empty() => {
                let json = tokio::fs::read(&path)
                    .await
                    .map_err(|e| AuthError::KeyFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                Credentials::ServiceAccount(Box::new(ServiceAccountKey::parse(&path, &json)?))
            }
            _ => Credentials::Metadata {
                host: std::env::var("GCE_METADATA_HOST")
                    .unwrap_or_else(|_| "metadata.google.internal".to_owned()),
            },
        };
        Ok(Self::new(credentials))
    }

    pub async fn token(&self, http: &HttpClient) -> Result<String, AuthError> {
        if let Some((token, until)) = self.cached.lock().unwrap().as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = tokio::time::timeout(TOKEN_TIMEOUT, self.fetch(http))
            .await
            .map_err(|_| AuthError::Token {
                url: self.url(),
                reason: format!("no answer within {TOKEN_TIMEOUT:?}"),
            })??;
        let until = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN);
        *self.cached.lock().unwrap() = Some((token.clone(), until));
        Ok(token)
    }

    fn url(&self) -> String {
        match &self.credentials {
            Credentials::ServiceAccount(key) => key.token_uri.clone(),
            Credentials::Metadata { host } => {
                format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token")
            }
        }
    }

    async fn fetch(&self, http: &HttpClient) -> Result<(String, Duration), AuthError> {
        let url = self.url();
        let failed = |reason: String| AuthError::Token {
            url: url.clone(),
            reason,
        };
        let request = match &self.credentials {
            Credentials::ServiceAccount(key) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let form = format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
                    key.assertion(now)?
                );
                http::Request::post(&url)
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(Full::new(Bytes::from(form)))
            }
            Credentials::Metadata { .. } => http::Request::get(&url)
                .header("Metadata-Flavor", "Google")
                .body(Full::new(Bytes::new())),
        }
        .map_err(|e| failed(e.to_string()))?;
        let response = http
            .request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            // The error body names the problem (`invalid_grant`, ...) and holds no secret.
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(failed(format!("HTTP {status}: {text:?}")));
        }
        parse_token_response(&body).map_err(failed)
    }
}

/// `{"access_token", "expires_in", "token_type"}` → the token and its lifetime.
pub fn parse_token_response(body: &[u8]) -> Result<(String, Duration), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("token answer is not JSON: {e}"))?;
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("token answer has no access_token")?;
    let lifetime = v["expires_in"].as_u64().unwrap_or(300);
    Ok((token.to_owned(), Duration::from_secs(lifetime)))
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
