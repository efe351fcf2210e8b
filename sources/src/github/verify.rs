//! The type step: an [`Unverified`] delivery becomes [`Verified`] only once its HMAC matches.
//!
//! GitHub signs the raw body with the webhook secret: `X-Hub-Signature-256: sha256=<hex>`
//! (HMAC-SHA256) and, for old integrations, `X-Hub-Signature: sha1=<hex>` (HMAC-SHA1). Herald
//! checks SHA-256; SHA-1 only when the source allows it and no SHA-256 header was sent (a
//! wrong SHA-256 signature is never rescued by a SHA-1 one).
//!
//! During a secret rotation a source has two secrets (`herald.dev/github.previousSecret`): a
//! signature made with either is accepted. Every secret is checked (in constant time), so the
//! time taken does not tell which one matched.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{GithubError, WebhookSecret};

const SIG256: &str = "x-hub-signature-256";
const SIG1: &str = "x-hub-signature";
const EVENT: &str = "x-github-event";
const DELIVERY: &str = "x-github-delivery";
/// GitHub's event names are at most ~40 characters (`branch_protection_configuration`).
const MAX_EVENT_NAME: usize = 100;

/// A webhook request as received: headers and the raw, size-limited body.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A delivery whose signature matched; the only thing [`Verified::to_event`] accepts.
#[derive(Debug, Clone)]
pub struct Verified {
    event: String,
    delivery: String,
    /// The JSON document: the raw body, or the `payload` field of a form-encoded delivery.
    json: Bytes,
    /// The signature that matched, as GitHub writes it (`sha256=<lowercase hex>`).
    signature: String,
}

impl Unverified {
    pub fn new(headers: HeaderMap, body: Bytes) -> Self {
        Self { headers, body }
    }

    /// Checks the signature over the raw body in constant time, then the required headers.
    pub fn verify(self, secret: &WebhookSecret, allow_sha1: bool) -> Result<Verified, GithubError> {
        self.verify_any(&[secret], allow_sha1)
    }

    /// Like [`Unverified::verify`], accepting a signature made with any of `secrets` (the
    /// current one and, during a rotation, the previous one).
    pub fn verify_any(
        self,
        secrets: &[&WebhookSecret],
        allow_sha1: bool,
    ) -> Result<Verified, GithubError> {
        let signature = if let Some(value) = self.headers.get(SIG256) {
            let expected = parse_signature(value.as_bytes(), "sha256=", 32).ok_or(
                GithubError::MalformedSignature {
                    header: "X-Hub-Signature-256",
                },
            )?;
            let digests = secrets.iter().map(|secret| {
                let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(&self.body);
                mac.finalize().into_bytes().to_vec()
            });
            check_any(digests, &expected)?;
            format!("sha256={}", hex(&expected))
        } else if let (true, Some(value)) = (allow_sha1, self.headers.get(SIG1)) {
            let expected = parse_signature(value.as_bytes(), "sha1=", 20).ok_or(
                GithubError::MalformedSignature {
                    header: "X-Hub-Signature",
                },
            )?;
            let digests = secrets.iter().map(|secret| {
                let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(&self.body);
                mac.finalize().into_bytes().to_vec()
            });
            check_any(digests, &expected)?;
            format!("sha1={}", hex(&expected))
        } else {
            return Err(GithubError::MissingSignature);
        };

        let event = header(&self.headers, EVENT, "X-GitHub-Event")?;
        // The name becomes the event type and a log field: a short word, nothing else.
        if event.len() > MAX_EVENT_NAME
            || !event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(GithubError::InvalidHeader {
                header: "X-GitHub-Event",
                message: format!(
                    "{:?} is not an event name (at most {MAX_EVENT_NAME} of a-z, 0-9, _)",
                    event.chars().take(MAX_EVENT_NAME).collect::<String>()
                ),
            });
        }
        let delivery = header(&self.headers, DELIVERY, "X-GitHub-Delivery")?;
        // The id goes into a line-oriented log and an event id: keep it to a GUID's alphabet.
        if delivery.len() > 128
            || !delivery
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(GithubError::InvalidHeader {
                header: "X-GitHub-Delivery",
                message: "expected a GUID".into(),
            });
        }
        let json = json_document(&self.headers, self.body)?;
        Ok(Verified {
            event,
            delivery,
            json,
            signature,
        })
    }
}

impl Verified {
    /// `X-GitHub-Event`, e.g. `pull_request`.
    pub fn event_name(&self) -> &str {
        &self.event
    }

    /// `X-GitHub-Delivery`, a GUID unique per delivery and kept by redeliveries.
    pub fn delivery_id(&self) -> &str {
        &self.delivery
    }

    /// The signature that matched, `sha256=<lowercase hex>` (or `sha1=`): the same body
    /// replayed under another delivery id carries the same one.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The JSON payload bytes, exactly as GitHub sent them.
    pub fn json_body(&self) -> &Bytes {
        &self.json
    }
}

/// Whether any digest equals `expected`; every one is compared (in constant time), so the
/// time taken does not depend on which matched.
fn check_any(actual: impl Iterator<Item = Vec<u8>>, expected: &[u8]) -> Result<(), GithubError> {
    // All are fixed-length digests, so only the contents are compared.
    let matched = actual.fold(subtle::Choice::from(0), |found, digest| {
        found | digest.ct_eq(expected)
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(GithubError::WrongSignature)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<lowercase or uppercase hex>` -> the digest bytes.
fn parse_signature(value: &[u8], prefix: &str, len: usize) -> Option<Vec<u8>> {
    let hex = value.strip_prefix(prefix.as_bytes())?;
    if hex.len() != len * 2 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

fn header(headers: &HeaderMap, name: &str, display: &'static str) -> Result<String, GithubError> {
    let value = headers
        .get(name)
        .ok_or(GithubError::MissingHeader { header: display })?;
    let text = value.to_str().map_err(|_| GithubError::InvalidHeader {
        header: display,
        message: "not ASCII".into(),
    })?;
    if text.trim().is_empty() {
        return Err(GithubError::MissingHeader { header: display });
    }
    Ok(text.trim().to_owned())
}

/// GitHub sends JSON bodies, or `application/x-www-form-urlencoded` with the JSON in the
/// `payload` field when the hook was created with that content type.
fn json_document(headers: &HeaderMap, body: Bytes) -> Result<Bytes, GithubError> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body);
    }
    url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Bytes::from(v.into_owned()))
        .ok_or(GithubError::InvalidPayload {
            message: "form body without `payload`".into(),
        })
}
