//! Signed deliveries (Standard Webhooks, <https://www.standardwebhooks.com>): every attempt
//! to a trigger's or source's destination carries `webhook-id` (the event id),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, one per secret, space-separated).
//!
//! The annotation `herald.dev/delivery.signingSecret: {secretName}/{key}[, ...]` names one or
//! more files `{--secrets-dir}/{secretName}/{key}`, each holding one or more `whsec_<base64>`
//! secrets separated by white space or commas: during a rotation the receiver accepts any one
//! of the signatures. Secret values never reach a log line or an error message.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The annotation on a Trigger or a source that turns signing on.
pub const SIGNING_SECRET_ANNOTATION: &str = "herald.dev/delivery.signingSecret";
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The spec's bounds for a secret's decoded length.
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(
        "{reference:?} is not {{secretName}}/{{key}}: {reason} \
         (names and keys are letters, digits, '-', '_', '.'; no '/' inside, no '..')"
    )]
    Reference {
        reference: String,
        reason: &'static str,
    },
    #[error("names no secret")]
    NoReference,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: holds no secret")]
    Empty { path: PathBuf },
    /// Says which secret of the file and why, never what it holds.
    #[error("{path}: secret {index} {reason}")]
    Secret {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

/// The keys a destination's deliveries are signed with (several during a rotation).
pub struct WebhookSigner {
    keys: Vec<hmac::Key>,
    /// SHA-256 over the length-prefixed secrets: tells a live reload whether the secrets
    /// changed without keeping them in a comparable form (ring's keys cannot be compared).
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSigner({} keys)", self.keys.len())
    }
}

impl WebhookSigner {
    /// The signer an annotation value names, reading its files under `secrets_dir`.
    /// Blocking (small file reads): runs where configuration is loaded.
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration loading: runs off the async workers"
    )]
    pub fn load(annotation: &str, secrets_dir: &Path) -> Result<Self, SigningError> {
        let mut all = Vec::new();
        let references = split_list(annotation);
        if references.is_empty() {
            return Err(SigningError::NoReference);
        }
        for reference in references {
            let (name, key) = parse_reference(reference)?;
            let path = secrets_dir.join(name).join(key);
            let text = std::fs::read_to_string(&path).map_err(|source| SigningError::Read {
                path: path.clone(),
                source,
            })?;
            let secrets = parse_secrets(&text, &path)?;
            all.extend(secrets);
        }
        Ok(Self::from_secrets(&all))
    }

    /// A signer over raw secret bytes (tests, and callers that hold decoded secrets).
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for secret in secrets {
            let secret = secret.as_ref();
            digest.update(&(secret.len() as u64).to_be_bytes());
            digest.update(secret);
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.finish().as_ref());
        Self {
            keys: secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_ref()))
                .collect(),
            fingerprint,
        }
    }

    /// Whether `other` signs with the same secrets, in the same order.
    pub fn same_as(&self, other: &WebhookSigner) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.fingerprint[..], &other.fingerprint[..]).into()
    }

    /// The `webhook-signature` value for one attempt.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let prefix = format!("{id}.{timestamp}.");
        self.keys
            .iter()
            .map(|key| {
                let mut context = hmac::Context::with_key(key);
                context.update(prefix.as_bytes());
                context.update(body);
                format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The signer a resource's annotations ask for, if any.
pub fn from_annotations(
    annotations: &std::collections::BTreeMap<String, String>,
    secrets_dir: &Path,
) -> Result<Option<std::sync::Arc<WebhookSigner>>, SigningError> {
    annotations
        .get(SIGNING_SECRET_ANNOTATION)
        .map(|value| WebhookSigner::load(value, secrets_dir).map(std::sync::Arc::new))
        .transpose()
}

fn split_list(text: &str) -> Vec<&str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `{secretName}/{key}`, each a Kubernetes-style name that cannot leave `--secrets-dir`.
fn parse_reference(reference: &str) -> Result<(&str, &str), SigningError> {
    let error = |reason| SigningError::Reference {
        reference: reference.to_owned(),
        reason,
    };
    let (name, key) = reference.split_once('/').ok_or_else(|| error("no '/'"))?;
    for part in [name, key] {
        if part.is_empty() {
            return Err(error("an empty part"));
        }
        if part.contains('/') {
            return Err(error("more than one '/'"));
        }
        if part.contains("..") || part == "." {
            return Err(error("'.' or '..' would leave the secrets directory"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !part.chars().all(allowed) {
            return Err(error("a character outside the allowed set"));
        }
    }
    Ok((name, key))
}

/// The decoded secrets of one file.
fn parse_secrets(text: &str, path: &Path) -> Result<Vec<Vec<u8>>, SigningError> {
    let items = split_list(text);
    if items.is_empty() {
        return Err(SigningError::Empty {
            path: path.to_owned(),
        });
    }
    let error = |index, reason: String| SigningError::Secret {
        path: path.to_owned(),
        index,
        reason,
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let encoded = item
                .strip_prefix(SECRET_PREFIX)
                .ok_or_else(|| error(index, format!("does not start with {SECRET_PREFIX}")))?;
            let secret = STANDARD
                .decode(encoded)
                .map_err(|_| error(index, format!("is not base64 after {SECRET_PREFIX}")))?;
            if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len()) {
                return Err(error(
                    index,
                    format!(
                        "decodes to {} bytes; Standard Webhooks secrets have {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}",
                        secret.len()
                    ),
                ));
            }
            Ok(secret)
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write secret files directly"
)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_signature_matches_the_spec_example() {
        // The Standard Webhooks specification's worked example.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signer = WebhookSigner::from_secrets(&[secret]);
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn several_secrets_give_several_signatures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hooks")).unwrap();
        std::fs::write(dir.path().join("hooks/current"), format!("{SECRET}\n")).unwrap();
        let other = format!("{SECRET_PREFIX}{}", STANDARD.encode([7u8; 32]));
        std::fs::write(dir.path().join("hooks/next"), format!("{other}, {SECRET}")).unwrap();
        let signer = WebhookSigner::load("hooks/current, hooks/next", dir.path()).unwrap();
        let signature = signer.signature("id", 1, b"{}");
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(parts[0], parts[2]);
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn references_that_leave_the_secrets_dir_are_refused() {
        for bad in [
            "hooks",
            "../etc/passwd",
            "hooks/../x",
            "a/b/c",
            "/abs",
            "..//x",
            "a/.",
            "a b/c",
        ] {
            let error = WebhookSigner::load(bad, Path::new("/nonexistent")).unwrap_err();
            assert!(
                matches!(error, SigningError::Reference { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn bad_secrets_are_named_without_their_value() {
        let path = Path::new("/s/k");
        let short = format!("{SECRET_PREFIX}{}", STANDARD.encode([1u8; 8]));
        for (text, expect) in [
            ("", "holds no secret"),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "does not start with whsec_",
            ),
            ("whsec_%%%notbase64", "is not base64"),
            (short.as_str(), "decodes to 8 bytes"),
        ] {
            let message = parse_secrets(text, path).unwrap_err().to_string();
            assert!(message.contains(expect), "{message}");
            if !text.is_empty() {
                assert!(!message.contains(text), "the secret leaked: {message}");
            }
        }
    }
}
