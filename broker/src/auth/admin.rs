//! Who may use the management API and the `/admin/` endpoints: the bearer token of
//! `--admin-token-file` (compared in constant time), and, when OIDC issuers are trusted
//! (`--oidc-issuer`), a JWT of one of them whose audience includes the API's
//! (`--api-audience`, default [`DEFAULT_API_AUDIENCE`]) and whose subject is listed with
//! `--api-subject`. Without a listed subject no token grants access: trusting an issuer for
//! publishers never makes its every subject an administrator by accident.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::Authenticator;

/// The audience a token for the management API must carry, unless `--api-audience` says
/// otherwise.
pub const DEFAULT_API_AUDIENCE: &str = "herald.dev/api";

/// `--api-audience` and `--api-subject`.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    pub audience: String,
    /// Subjects (`sub`) allowed, exactly as the issuer writes them.
    pub subjects: BTreeSet<String>,
}

impl Default for ApiAccess {
    fn default() -> Self {
        Self {
            audience: DEFAULT_API_AUDIENCE.to_owned(),
            subjects: BTreeSet::new(),
        }
    }
}

/// The admin credentials check, cheap to clone.
#[derive(Clone)]
pub struct AdminAuth(Arc<Inner>);

struct Inner {
    token: String,
    /// Present when issuers are trusted and at least one subject is allowed.
    oidc: Option<(Arc<Authenticator>, ApiAccess)>,
}

/// Why a request was refused (the message never contains the token).
#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    #[error("missing or wrong bearer token (see --admin-token-file)")]
    WrongToken,
    #[error("bearer token refused: {0} (see --api-audience)")]
    Token(#[from] super::AuthError),
    #[error("token subject {0:?} is not allowed to use the management API (see --api-subject)")]
    Subject(String),
}

impl AdminAuth {
    /// `token` only, or also OIDC tokens of `authenticator`'s issuers for `access`.
    pub fn new(token: String, oidc: Option<(Arc<Authenticator>, ApiAccess)>) -> Self {
        let oidc = oidc.filter(|(_, access)| !access.subjects.is_empty());
        Self(Arc::new(Inner { token, oidc }))
    }

    /// Whether the request's `Authorization: Bearer` is the admin token, or an accepted JWT.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), AdminRefusal> {
        let value = headers.get(header::AUTHORIZATION);
        let given = value
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        if bool::from(given.as_bytes().ct_eq(self.0.token.as_bytes())) {
            return Ok(());
        }
        // Only something shaped like a JWT is worth verifying; anything else is a wrong token.
        let Some((authenticator, access)) = &self.0.oidc else {
            return Err(AdminRefusal::WrongToken);
        };
        if given.split('.').count() != 3 {
            return Err(AdminRefusal::WrongToken);
        }
        let identity = authenticator.authenticate(value, &access.audience).await?;
        if !access.subjects.contains(&identity.subject) {
            tracing::warn!(subject = ?identity.subject, "management API refused a token's subject");
            return Err(AdminRefusal::Subject(identity.subject));
        }
        Ok(())
    }
}

impl From<String> for AdminAuth {
    fn from(token: String) -> Self {
        Self::new(token, None)
    }
}

impl From<&str> for AdminAuth {
    fn from(token: &str) -> Self {
        Self::new(token.to_owned(), None)
    }
}
