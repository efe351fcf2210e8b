//! The sender identity of an mTLS connection: the verified client certificate's subject
//! distinguished name in RFC 4514 form (`CN=orders,O=shop`, most specific first).
//!
//! rustls has already verified the chain against `--tls-client-ca` when this runs; the
//! certificate is decoded again only to read its subject (x509-cert's typed DER decoder).

use x509_cert::der::Decode;

use crate::identity::{IdentityOrigin, SenderIdentity};

/// Why a client certificate gives no identity.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("the client certificate is not decodable X.509: {0}")]
    Decode(String),
    #[error("the client certificate has an empty subject")]
    EmptySubject,
}

/// The identity of a client that presented `cert` (the DER of the leaf of its verified
/// chain).
pub fn identity_of(cert: &[u8]) -> Result<SenderIdentity, PeerError> {
    let parsed =
        x509_cert::Certificate::from_der(cert).map_err(|e| PeerError::Decode(e.to_string()))?;
    let subject = parsed.tbs_certificate.subject.to_string();
    if subject.is_empty() {
        return Err(PeerError::EmptySubject);
    }
    Ok(SenderIdentity {
        subject,
        origin: IdentityOrigin::ClientCertificate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_decode_error() {
        let err = identity_of(&[0x30, 0x03, 0x02, 0x01]).unwrap_err();
        assert!(matches!(err, PeerError::Decode(_)), "{err}");
    }
}
