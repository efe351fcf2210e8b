//! Authentication and authorization at ingress: the sender's identity (a client
//! certificate's, in the request's extensions, or a bearer token's) and the EventPolicy
//! decision on each event, with an audit line per denial.

use std::sync::Arc;

use axum::http::header;
use axum::http::request::Parts;
use cloudevents::Event;

use super::{BrokerEntry, Ingress, IngressError};
use crate::auth::{AuthError, Authenticator, Authorizer, Denial};
use crate::identity::SenderIdentity;

/// What ingress checks senders with; the default checks nothing.
#[derive(Default)]
pub struct IngressAuth {
    /// Trusted issuers (`--oidc-issuer`); without any, no token is read.
    pub authenticator: Option<Arc<Authenticator>>,
    /// The EventPolicies, swapped on reload.
    pub authorizer: Arc<Authorizer>,
}

impl Ingress {
    /// The sender of a request to `entry`: a valid bearer token's identity when issuers are
    /// configured and the request carries `Authorization`, else the client certificate's
    /// identity the listener put in the extensions, else none (an error when issuers are
    /// configured: a token is then required).
    pub async fn authenticate(
        &self,
        entry: &BrokerEntry,
        parts: &Parts,
    ) -> Result<Option<SenderIdentity>, IngressError> {
        let certificate = parts.extensions.get::<SenderIdentity>().cloned();
        let Some(authenticator) = &self.auth.authenticator else {
            return Ok(certificate);
        };
        let header = parts.headers.get(header::AUTHORIZATION);
        if header.is_none()
            && let Some(identity) = certificate
        {
            return Ok(Some(identity));
        }
        match authenticator.authenticate(header, &entry.audience).await {
            Ok(identity) => Ok(Some(identity)),
            Err(error) => {
                tracing::warn!(target: "herald::audit", broker = %entry.id, reason = error.code(),
                    error = ?error.to_string(), "request refused: not authenticated");
                Err(IngressError::Unauthenticated(error))
            }
        }
    }

    /// Whether `identity` may publish `events` to `entry` (every one of them).
    pub(super) fn authorize(
        &self,
        entry: &BrokerEntry,
        identity: Option<&SenderIdentity>,
        events: &[Event],
    ) -> Result<(), IngressError> {
        if !self.auth.authorizer.enforced() {
            return Ok(());
        }
        let denial = match self
            .auth
            .authorizer
            .current()
            .decide(&entry.id, identity, events)
        {
            Ok(()) => return Ok(()),
            Err(denial) => denial,
        };
        let subject = identity.map(|i| i.subject.as_str());
        match denial {
            Denial::Unauthenticated => {
                tracing::warn!(target: "herald::audit", broker = %entry.id, subject = ?subject,
                    reason = "unauthenticated", "request refused: an identity is required");
                Err(IngressError::Unauthenticated(AuthError::Missing))
            }
            Denial::Forbidden(why) => {
                tracing::warn!(target: "herald::audit", broker = %entry.id, subject = ?subject,
                    reason = "forbidden", why = ?why, "request refused by authorization");
                Err(IngressError::Forbidden(why))
            }
        }
    }

    /// The webhook handshake reflects the policy: it succeeds only for a sender that may
    /// publish to the broker at all.
    pub(super) async fn handshake_allowed(
        &self,
        entry: &BrokerEntry,
        parts: &Parts,
    ) -> Result<(), IngressError> {
        let table = self.auth.authorizer.current();
        if !table.enforced() {
            return Ok(());
        }
        let identity = self.authenticate(entry, parts).await?;
        if table.may_send(&entry.id, identity.as_ref()) {
            Ok(())
        } else if identity.is_none() {
            Err(IngressError::Unauthenticated(AuthError::Missing))
        } else {
            Err(IngressError::Forbidden(format!(
                "subject may not publish to broker {}",
                entry.id
            )))
        }
    }
}

/// `WWW-Authenticate` of a 401 (RFC 6750 §3): no error code when no token was sent.
pub(super) fn www_authenticate(error: &IngressError) -> axum::http::HeaderValue {
    match error {
        IngressError::Unauthenticated(AuthError::Missing) | IngressError::Forbidden(_) => {
            axum::http::HeaderValue::from_static("Bearer")
        }
        IngressError::Unauthenticated(e) => {
            // The code is from a closed set; the description stays in the body.
            axum::http::HeaderValue::from_str(&format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.code()
            ))
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("Bearer"))
        }
        _ => axum::http::HeaderValue::from_static("Bearer"),
    }
}
