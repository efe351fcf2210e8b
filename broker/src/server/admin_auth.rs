//! The admin credentials of `herald serve`: the admin token, and OIDC tokens of allowed
//! subjects when issuers are trusted (see [`crate::auth::admin`]).

use std::sync::Arc;

use super::ServeOptions;
use crate::auth::Authenticator;
use crate::auth::admin::AdminAuth;

/// `None` without `--admin-token-file` (no admin endpoints, no API). `--api-subject` without
/// a trusted issuer is refused: it would silently allow nothing.
pub fn build(
    options: &ServeOptions,
    authenticator: Option<Arc<Authenticator>>,
) -> anyhow::Result<Option<AdminAuth>> {
    let access = options.api.as_ref().map(|api| api.access.clone());
    let subjects = access.as_ref().is_some_and(|a| !a.subjects.is_empty());
    let Some(token) = options.admin_token.clone() else {
        if subjects {
            anyhow::bail!("--api-subject needs --admin-token-file (the management API is off)");
        }
        return Ok(None);
    };
    let oidc = match (authenticator, access) {
        (Some(authenticator), Some(access)) if subjects => {
            tracing::info!(audience = ?access.audience, subjects = ?access.subjects,
                "the management API accepts OIDC tokens of these subjects");
            Some((authenticator, access))
        }
        (None, _) if subjects => {
            anyhow::bail!("--api-subject needs --oidc-issuer: no issuer is trusted")
        }
        _ => None,
    };
    Ok(Some(AdminAuth::new(token, oidc)))
}
