//! The JWT compact form (RFC 7519) as Herald accepts it: three strict base64url parts, a
//! header naming one of RS256, ES256 or EdDSA, and the claims authorization needs.
//!
//! Parsing is separate from verifying: [`parse`] checks the shape and decodes the parts;
//! [`Token::verify`] checks the signature against one key. Nothing here trusts the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::AuthError;
use super::jwks::VerifyingKey;

/// The signature algorithms Herald verifies; `none` and the HMAC ones are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub fn parse(name: &str) -> Result<Self, AuthError> {
        match name {
            "RS256" => Ok(Algorithm::Rs256),
            "ES256" => Ok(Algorithm::Es256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(AuthError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Critical extensions Herald would have to understand: none are supported.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// The claims Herald reads; others are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    /// Seconds since the epoch; required (a token without an expiry is refused).
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub struct Token<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub claims: Claims,
    /// `header.payload`: the bytes the signature covers.
    signed: &'a [u8],
    signature: Vec<u8>,
}

/// Splits and decodes `text` (the part after `Bearer `), at most `max_len` bytes.
pub fn parse(text: &str, max_len: usize) -> Result<Token<'_>, AuthError> {
    if text.len() > max_len {
        return Err(AuthError::TooLong {
            length: text.len(),
            limit: max_len,
        });
    }
    let mut parts = text.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let header: Header = serde_json::from_slice(&decode("header", header)?)
        .map_err(|e| malformed(format!("header is not the expected JSON: {e}")))?;
    if header.crit.is_some() {
        return Err(malformed(
            "header has critical extensions (crit), none are supported",
        ));
    }
    let algorithm = Algorithm::parse(&header.alg)?;
    let claims: Claims = serde_json::from_slice(&decode("payload", payload)?)
        .map_err(|e| malformed(format!("claims are not the expected JSON: {e}")))?;
    let signature = decode("signature", signature)?;
    let signed_len = text.len() - signature_len(text);
    Ok(Token {
        algorithm,
        kid: header.kid,
        claims,
        signed: &text.as_bytes()[..signed_len],
        signature,
    })
}

/// Length of the last part plus its dot.
fn signature_len(text: &str) -> usize {
    text.rsplit('.').next().map_or(0, |s| s.len() + 1)
}

/// Strict base64url: no padding, no white space, no non-zero trailing bits.
fn decode(part: &str, text: &str) -> Result<Vec<u8>, AuthError> {
    if text.is_empty() {
        return Err(malformed(format!("{part} is empty")));
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| malformed(format!("{part} is not unpadded base64url: {e}")))
}

fn malformed(why: impl Into<String>) -> AuthError {
    AuthError::Malformed(why.into())
}

impl Token<'_> {
    /// Checks the signature with `key`, whose type must fit the token's algorithm.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), AuthError> {
        key.verify(self.algorithm, self.signed, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(claims.as_bytes()),
            b64(b"sig")
        )
    }

    const CLAIMS: &str = r#"{"iss":"i","sub":"s","aud":"a","exp":10}"#;

    #[test]
    fn a_well_formed_token_parses() {
        let text = token(r#"{"alg":"EdDSA","kid":"k"}"#, CLAIMS);
        let parsed = parse(&text, 8192).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::EdDsa);
        assert_eq!(parsed.kid.as_deref(), Some("k"));
        assert_eq!(parsed.claims.sub, "s");
        assert!(text.as_bytes().starts_with(parsed.signed));
        assert_eq!(parsed.signature, b"sig");
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused() {
        for alg in ["none", "HS256", "RS512", "ES384"] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), CLAIMS);
            assert!(matches!(
                parse(&text, 8192),
                Err(AuthError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn padding_trailing_bytes_and_extra_parts_are_malformed() {
        let good = token(r#"{"alg":"ES256"}"#, CLAIMS);
        for bad in [
            format!("{good}="),
            format!("{good}.x"),
            good.replacen('.', "=.", 1),
            token(r#"{"alg":"ES256"} x"#, CLAIMS),
            token(r#"{"alg":"ES256"}"#, r#"{"iss":"i","sub":"s","aud":"a"}"#),
            token(r#"{"alg":"ES256","crit":["b64"]}"#, CLAIMS),
            "a.b".to_owned(),
        ] {
            assert!(
                matches!(parse(&bad, 8192), Err(AuthError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_token_longer_than_the_limit_is_refused_before_decoding() {
        let text = token(r#"{"alg":"ES256"}"#, CLAIMS);
        assert!(matches!(
            parse(&text, 10),
            Err(AuthError::TooLong { limit: 10, .. })
        ));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = parse(&text, 8192);
        }

        #[test]
        fn claims_survive_the_encoding(sub in "[ -~]{1,40}", exp in any::<i64>()) {
            let claims = serde_json::json!({"iss": "i", "sub": sub, "aud": ["x", "a"], "exp": exp});
            let text = token(r#"{"alg":"RS256"}"#, &claims.to_string());
            let parsed = parse(&text, 8192).unwrap();
            prop_assert_eq!(parsed.claims.sub, sub);
            prop_assert_eq!(parsed.claims.exp, exp);
            prop_assert!(parsed.claims.aud.contains("a"));
        }
    }
}
