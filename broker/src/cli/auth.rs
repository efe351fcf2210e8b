//! `herald serve` flags of publisher identity (OIDC) and authorization (EventPolicy).

use std::time::Duration;

use herald::auth::oidc::{
    DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_TOKEN_CACHE_ENTRIES,
};
use herald::auth::{AuthOptions, DefaultMode, JwksSource, OidcOptions};

#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// Trust JWTs (`Authorization: Bearer`) whose `iss` is ISSUER, verified with the keys of
    /// JWKS: a file or an `https://` URL (repeatable). With any, every request to a broker
    /// needs a valid token whose `aud` is `eventing.knative.dev/broker/{namespace}/{name}`.
    /// The environment variable takes a comma-separated list.
    #[arg(long = "oidc-issuer", env = "HERALD_OIDC_ISSUERS", value_delimiter = ',', value_name = "ISSUER=JWKS", value_parser = parse_issuer)]
    oidc_issuers: Vec<(String, JwksSource)>,
    /// Longest bearer token accepted, in bytes (longer: 401 before any decoding).
    #[arg(long, env = "HERALD_OIDC_MAX_TOKEN_BYTES", default_value_t = DEFAULT_MAX_TOKEN_BYTES)]
    oidc_max_token_bytes: usize,
    /// Largest JWKS document read from a file or URL (`1Mi`).
    #[arg(long, env = "HERALD_OIDC_JWKS_MAX_BYTES", default_value_t = DEFAULT_MAX_JWKS_BYTES as u64, value_parser = herald::units::parse_bytes)]
    oidc_jwks_max_bytes: u64,
    /// Shortest time between two reloads of an issuer's JWKS, which a token with an unknown
    /// `kid` triggers.
    #[arg(long, env = "HERALD_OIDC_JWKS_REFRESH_INTERVAL", default_value = "30s", value_parser = herald::units::parse_duration)]
    oidc_jwks_refresh_interval: Duration,
    /// Every issuer's JWKS is reloaded this often, so keys the issuer withdrew stop being
    /// trusted (and tokens they signed leave the cache).
    #[arg(long, env = "HERALD_OIDC_JWKS_MAX_AGE", default_value = "10m", value_parser = herald::units::parse_duration)]
    oidc_jwks_max_age: Duration,
    /// A PEM file of CA certificates trusted for JWKS URLs besides the system's roots (a
    /// cluster's own CA, for its `/openid/v1/jwks`).
    #[arg(long, env = "HERALD_OIDC_CA", value_name = "FILE")]
    oidc_ca: Option<std::path::PathBuf>,
    /// Time a JWKS URL has to answer.
    #[arg(long, env = "HERALD_OIDC_JWKS_TIMEOUT", default_value = "10s", value_parser = herald::units::parse_duration)]
    oidc_jwks_timeout: Duration,
    /// Verified tokens remembered until they expire (0: verify every request).
    #[arg(long, env = "HERALD_OIDC_TOKEN_CACHE_ENTRIES", default_value_t = DEFAULT_TOKEN_CACHE_ENTRIES)]
    oidc_token_cache_entries: usize,
    /// Who may publish to a broker no EventPolicy selects (when authorization applies: an
    /// issuer, client certificates or a policy is configured).
    #[arg(long, env = "HERALD_DEFAULT_AUTHORIZATION_MODE", value_enum, default_value_t = DefaultMode::AllowSameNamespace)]
    default_authorization_mode: DefaultMode,
}

impl AuthArgs {
    pub fn options(&self) -> AuthOptions {
        AuthOptions {
            oidc: OidcOptions {
                issuers: self.oidc_issuers.clone(),
                max_token_bytes: self.oidc_max_token_bytes,
                max_jwks_bytes: usize::try_from(self.oidc_jwks_max_bytes).unwrap_or(usize::MAX),
                refresh_interval: self.oidc_jwks_refresh_interval,
                max_age: self.oidc_jwks_max_age,
                fetch_timeout: self.oidc_jwks_timeout,
                cache_entries: self.oidc_token_cache_entries,
                ca_file: self.oidc_ca.clone(),
            },
            default_mode: self.default_authorization_mode,
            client_certificates: false,
        }
    }
}

/// `ISSUER=JWKS`, split at the last `=`: an issuer may contain `=`, a JWKS location may not.
fn parse_issuer(text: &str) -> Result<(String, JwksSource), String> {
    let (issuer, jwks) = text
        .rsplit_once('=')
        .filter(|(issuer, jwks)| !issuer.is_empty() && !jwks.is_empty())
        .ok_or_else(|| format!("{text:?} is not ISSUER=JWKS"))?;
    Ok((issuer.to_owned(), JwksSource::parse(jwks)?))
}
