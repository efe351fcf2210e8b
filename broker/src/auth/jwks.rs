//! JSON Web Key Sets (RFC 7517) into keys `ring` verifies with: RSA from `n`/`e`, P-256
//! from `x`/`y`, Ed25519 from `x`. Keys of other types or curves, and encryption keys, are
//! skipped (an issuer may publish them for others); a supported key that is malformed fails
//! the whole set, so a broken JWKS never half-loads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::AuthError;
use super::jwt::Algorithm;

/// A public key ready to verify, with its `kid`.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    material: Material,
}

#[derive(Debug, Clone)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed SEC1 point `04 || x || y`.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// The keys of one issuer.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerifyingKey>,
}

#[derive(Debug, Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// Errors of a key set, naming the key (index and kid) and the problem.
#[derive(Debug, thiserror::Error)]
#[error("key {index}{}: {message}", kid.as_deref().map(|k| format!(" (kid {k:?})")).unwrap_or_default())]
pub struct JwksError {
    pub index: usize,
    pub kid: Option<String>,
    pub message: String,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        let document: Document = serde_json::from_slice(bytes).map_err(|e| JwksError {
            index: 0,
            kid: None,
            message: format!("not a JWKS document: {e}"),
        })?;
        let mut keys = Vec::new();
        for (index, jwk) in document.keys.into_iter().enumerate() {
            let fail = |message: String| JwksError {
                index,
                kid: jwk.kid.clone(),
                message,
            };
            if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let field = |name: &str, value: &Option<String>| -> Result<Vec<u8>, JwksError> {
                let text = value
                    .as_deref()
                    .ok_or_else(|| fail(format!("{} key without {name}", jwk.kty)))?;
                URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|e| fail(format!("{name} is not unpadded base64url: {e}")))
            };
            let (material, alg) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
                ("RSA", _) => {
                    let n = field("n", &jwk.n)?;
                    let e = field("e", &jwk.e)?;
                    if n.len() < 256 {
                        return Err(fail(format!(
                            "RSA modulus of {} bits, at least 2048 needed",
                            n.len() * 8
                        )));
                    }
                    (Material::Rsa { n, e }, "RS256")
                }
                ("EC", Some("P-256")) => {
                    let x = field("x", &jwk.x)?;
                    let y = field("y", &jwk.y)?;
                    if x.len() != 32 || y.len() != 32 {
                        return Err(fail("P-256 coordinates must be 32 bytes each".to_owned()));
                    }
                    let mut point = Vec::with_capacity(65);
                    point.push(4);
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    (Material::P256(point), "ES256")
                }
                ("OKP", Some("Ed25519")) => {
                    let x = field("x", &jwk.x)?;
                    if x.len() != 32 {
                        return Err(fail("an Ed25519 key is 32 bytes".to_owned()));
                    }
                    (Material::Ed25519(x), "EdDSA")
                }
                // Other types and curves: not Herald's to verify with.
                _ => continue,
            };
            if let Some(declared) = jwk.alg.as_deref()
                && declared != alg
            {
                return Err(fail(format!(
                    "alg {declared:?} does not fit a {} key (expected {alg})",
                    jwk.kty
                )));
            }
            keys.push(VerifyingKey {
                kid: jwk.kid.clone(),
                material,
            });
        }
        Ok(KeySet { keys })
    }

    /// The keys a token with `kid` and `algorithm` may be signed with: the one with that kid,
    /// or, for a token without kid, every key of the algorithm's type.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        algorithm: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys.iter().filter(move |k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => k.fits(algorithm),
        })
    }

    /// Every key's kid and material, to tell whether a reload changed anything.
    pub fn fingerprint(&self) -> Vec<(Option<&str>, &[u8])> {
        self.keys
            .iter()
            .map(|k| {
                let bytes: &[u8] = match &k.material {
                    Material::Rsa { n, .. } => n,
                    Material::P256(point) => point,
                    Material::Ed25519(x) => x,
                };
                (k.kid.as_deref(), bytes)
            })
            .collect()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

impl VerifyingKey {
    fn fits(&self, algorithm: Algorithm) -> bool {
        matches!(
            (&self.material, algorithm),
            (Material::Rsa { .. }, Algorithm::Rs256)
                | (Material::P256(_), Algorithm::Es256)
                | (Material::Ed25519(_), Algorithm::EdDsa)
        )
    }

    /// Verifies `signature` over `message`; the token's `alg` must fit this key's type.
    pub fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        if !self.fits(algorithm) {
            return Err(AuthError::AlgorithmMismatch {
                kid: self.kid.clone(),
            });
        }
        let valid = match &self.material {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        };
        if valid {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn supported_keys_load_and_others_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&[1; 32])},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&[2; 32]), "y": b64(&[3; 32])},
            {"kty": "RSA", "kid": "rsa", "n": b64(&[0xc1; 256]), "e": "AQAB", "alg": "RS256"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(&[2; 48]), "y": b64(&[3; 48])},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AA", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["ed", "ec", "rsa"]);
    }

    #[test]
    fn a_malformed_supported_key_fails_the_set_naming_it() {
        for (key, expected) in [
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64(&[1; 31])}),
                "32 bytes",
            ),
            (
                serde_json::json!({"kty": "RSA", "kid": "k", "n": b64(&[1; 128]), "e": "AQAB"}),
                "2048",
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64(&[1; 32]), "alg": "RS256"}),
                "does not fit",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": "AA=="}),
                "base64url",
            ),
        ] {
            let doc = serde_json::json!({ "keys": [key] });
            let error = KeySet::parse(doc.to_string().as_bytes()).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(error.to_string().contains("kid \"k\""), "{error}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = KeySet::parse(&bytes);
        }

        /// A token signed with ring verifies; changing any byte of what it signs breaks it.
        #[test]
        fn a_changed_signed_byte_fails_verification(sub in "[a-z:]{1,30}", flip in proptest::prelude::any::<proptest::sample::Index>()) {
            use ring::signature::{Ed25519KeyPair, KeyPair};
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
            let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let doc = serde_json::json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64(key.public_key().as_ref())}
            ]});
            let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
            let claims = serde_json::json!({"iss": "i", "sub": sub, "aud": "a", "exp": 1});
            let signed = format!("{}.{}", b64(br#"{"alg":"EdDSA","kid":"k"}"#), b64(claims.to_string().as_bytes()));
            let text = format!("{signed}.{}", b64(key.sign(signed.as_bytes()).as_ref()));
            let token = super::super::jwt::parse(&text, 8192).unwrap();
            proptest::prop_assert!(token.verify(&set.keys[0]).is_ok());
            let mut bytes = signed.into_bytes();
            let at = flip.index(bytes.len());
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let changed = format!("{}.{}", String::from_utf8(bytes).unwrap(), text.rsplit('.').next().unwrap());
            if let Ok(token) = super::super::jwt::parse(&changed, 8192) {
                proptest::prop_assert!(token.verify(&set.keys[0]).is_err());
            }
        }
    }

    #[test]
    fn a_key_refuses_a_token_of_another_algorithm() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&[1; 32])}
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(matches!(
            set.keys[0].verify(Algorithm::Rs256, b"m", b"s"),
            Err(AuthError::AlgorithmMismatch { .. })
        ));
    }
}
