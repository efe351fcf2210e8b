//! The `ingest-jwt` phase's credentials: an Ed25519 key minted for the run, its JWKS file for
//! `--oidc-issuer`, and one token for broker default/default (what a Knative source sends:
//! the same token on every request until it nears expiry).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

pub const ISSUER: &str = "https://bench.herald.invalid";

pub struct BenchIssuer {
    /// `--oidc-issuer` flag value.
    pub flag: String,
    /// `Authorization` header value.
    pub authorization: String,
}

/// Writes `dir/jwks.json` and mints a token valid for an hour.
pub async fn mint(dir: &Path) -> anyhow::Result<BenchIssuer> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("reading the Ed25519 key failed"))?;
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "bench", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    }]});
    let path = dir.join("jwks.json");
    tokio::fs::write(&path, jwks.to_string()).await?;
    let now = chrono::Utc::now().timestamp();
    let header = serde_json::json!({"alg": "EdDSA", "kid": "bench", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": "system:serviceaccount:default:bench",
        "aud": herald::auth::broker_audience(&herald::config::BrokerId::new("default", "default")),
        "iat": now,
        "exp": now + 3600,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(signed.as_bytes());
    Ok(BenchIssuer {
        flag: format!("{ISSUER}={}", path.display()),
        authorization: format!(
            "Bearer {signed}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ),
    })
}
