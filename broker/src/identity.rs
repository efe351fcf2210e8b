//! Who sent a request: the identity authorization decides on.
//!
//! Established by the listener (a client certificate's subject under mTLS), by token
//! validation (an OIDC JWT's `iss` and `sub`), or by Herald itself for what it publishes
//! in-process (a source's events, a trigger's replies). Handlers find it in the request's
//! extensions (`axum::Extension<SenderIdentity>`); in-process publishers pass it along.

/// Where an identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityOrigin {
    /// A client certificate verified against `--tls-client-ca`; the subject is the
    /// certificate's subject distinguished name (RFC 4514 form).
    ClientCertificate,
    /// A JWT verified against a trusted `--oidc-issuer`.
    Oidc { issuer: String },
    /// Herald publishing on behalf of one of its own resources (a source's events, a
    /// trigger's or subscription's replies).
    Resource {
        kind: String,
        namespace: String,
        name: String,
    },
}

/// An authenticated sender: its subject (`sub` claim, certificate subject, or a Herald
/// resource's service-account subject `system:serviceaccount:{namespace}:herald-{kind}-{name}`,
/// kind lower-case) and where it was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdentity {
    pub subject: String,
    pub origin: IdentityOrigin,
}

impl SenderIdentity {
    /// The identity of one of Herald's own resources (kind as in its manifest, e.g.
    /// `PingSource`, `Trigger`).
    pub fn resource(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            subject: format!(
                "system:serviceaccount:{namespace}:herald-{}-{name}",
                kind.to_ascii_lowercase()
            ),
            origin: IdentityOrigin::Resource {
                kind: kind.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_identity_is_a_service_account_subject() {
        let id = SenderIdentity::resource("Trigger", "shop", "orders");
        assert_eq!(
            id.subject,
            "system:serviceaccount:shop:herald-trigger-orders"
        );
    }
}
