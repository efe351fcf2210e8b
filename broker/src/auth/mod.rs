//! Who may publish: bearer-token authentication (Knative `authentication-oidc`) and
//! authorization by `EventPolicy` (Knative `authorization`).
//!
//! # Layout
//! - [`admin`]: who may use the management API (admin token, or allowed OIDC subjects).
//! - [`jwt`]: the JWT compact form, parsed strictly and verified with `ring`.
//! - [`jwks`]: JSON Web Key Sets into verifying keys (RSA, P-256, Ed25519).
//! - [`fetch`]: reading a JWKS from a file or an `https` URL.
//! - [`cache`]: verified tokens until they expire.
//! - [`oidc`]: trusted issuers and the check of a request's `Authorization` header.
//! - [`policy`]: EventPolicies compiled per broker, the default mode, and the decision on
//!   each event of a request; swappable at runtime.

pub mod admin;
pub mod cache;
pub mod fetch;
pub mod jwks;
pub mod jwt;
pub mod oidc;
pub mod policy;

pub use oidc::{Authenticator, JwksSource, OidcOptions};
pub use policy::{AccessTable, Authorizer, DefaultMode, Denial};

/// Why a bearer token was not accepted; each answers `401` with [`AuthError::code`] in the
/// body and the `WWW-Authenticate` header. No message ever contains the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send Authorization: Bearer <JWT>")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token of {length} bytes is longer than the limit of {limit} (--oidc-max-token-bytes)")]
    TooLong { length: usize, limit: usize },
    #[error("token algorithm {0:?} is not accepted (RS256, ES256 or EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("token issuer {0:?} is not trusted (--oidc-issuer)")]
    UntrustedIssuer(String),
    #[error("the issuer's JWKS has no key {kid:?} for this token")]
    UnknownKey { kid: Option<String> },
    #[error("the token's algorithm does not fit key {kid:?}")]
    AlgorithmMismatch { kid: Option<String> },
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired (exp {exp})")]
    Expired { exp: i64 },
    #[error("token not valid yet (nbf {nbf})")]
    NotYetValid { nbf: i64 },
    #[error("token audience does not include {expected:?}")]
    WrongAudience { expected: String },
    #[error("keys from {location} unavailable: {message}")]
    JwksUnavailable { location: String, message: String },
}

impl AuthError {
    /// A short code for the body and logs, from a closed set.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Malformed(_) => "malformed_token",
            AuthError::TooLong { .. } => "token_too_long",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::UntrustedIssuer(_) => "untrusted_issuer",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::WrongAudience { .. } => "wrong_audience",
            AuthError::JwksUnavailable { .. } => "jwks_unavailable",
        }
    }
}

/// The audience Knative gives a broker: `eventing.knative.dev/broker/{namespace}/{name}`,
/// lower-case (`auth.GetAudienceDirect` of the Broker's group and kind); likewise
/// `messaging.knative.dev/channel/...` for every channel kind (Herald keeps one), and
/// `flows.knative.dev/sequence/...`, `flows.knative.dev/parallel/...`.
pub fn broker_audience(broker: &crate::config::BrokerId) -> String {
    use crate::config::AddressKind;
    let group_kind = match broker.kind {
        AddressKind::Broker => "eventing.knative.dev/broker",
        AddressKind::Channel | AddressKind::FlowChannel => "messaging.knative.dev/channel",
        AddressKind::Sequence => "flows.knative.dev/sequence",
        AddressKind::Parallel => "flows.knative.dev/parallel",
    };
    format!("{group_kind}/{}/{}", broker.namespace, broker.name).to_lowercase()
}

/// Everything `herald serve` needs to authenticate and authorize senders.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// `--oidc-*`: trusted issuers and token limits.
    pub oidc: OidcOptions,
    /// `--default-authorization-mode`.
    pub default_mode: DefaultMode,
    /// Client certificates identify senders (`--tls-client-ca`): authorization applies even
    /// without issuers or policies.
    pub client_certificates: bool,
}

impl AuthOptions {
    /// Whether any sender authentication is configured.
    pub fn authenticates(&self) -> bool {
        !self.oidc.issuers.is_empty() || self.client_certificates
    }

    /// The ingress side: the authenticator (when issuers are configured, their keys loaded)
    /// and the policies of `config` compiled.
    pub async fn start(
        &self,
        config: &crate::config::Config,
    ) -> Result<crate::ingress::IngressAuth, AuthError> {
        let authenticator = if self.oidc.issuers.is_empty() {
            None
        } else {
            let authenticator = std::sync::Arc::new(Authenticator::start(self.oidc.clone()).await?);
            authenticator.spawn_max_age_reload();
            Some(authenticator)
        };
        let table = AccessTable::compile(
            &config.brokers,
            &config.policies,
            self.default_mode,
            self.authenticates(),
        );
        Ok(crate::ingress::IngressAuth {
            authenticator,
            authorizer: std::sync::Arc::new(Authorizer::new(table)),
        })
    }
}
