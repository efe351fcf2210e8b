//! Signed GitHub deliveries built from the fixture files.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use herald_sources::github::{GitHubConfig, Mapping, Unverified};
use herald_sources::manifest::{GitHubSourceSpec, SourceMeta};
use hmac::{Hmac, KeyInit, Mac};

pub const SECRET: &[u8] = b"It's a Secret to Everybody";

/// An expected extension value.
#[derive(Debug, Clone)]
pub enum V {
    S(&'static str),
    B(bool),
    I(i64),
}

impl From<V> for ExtensionValue {
    fn from(v: V) -> Self {
        match v {
            V::S(s) => ExtensionValue::String(s.to_owned()),
            V::B(b) => ExtensionValue::Boolean(b),
            V::I(i) => ExtensionValue::Integer(i),
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github")
}

pub fn fixture(event: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("{event}.json"))).unwrap()
}

/// The event names of all fixture files.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-01T10:15:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sign256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

pub fn sign1(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha1={}", hex(&mac.finalize().into_bytes()))
}

/// A delivery with the headers GitHub sends, signed with [`SECRET`].
pub fn delivery(event: &str, body: &[u8], id: &str) -> Unverified {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-github-event", event.parse().unwrap());
    headers.insert("x-github-delivery", id.parse().unwrap());
    headers.insert("x-github-hook-id", "109948940".parse().unwrap());
    headers.insert("user-agent", "GitHub-Hookshot/044aadd".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert(
        "x-hub-signature-256",
        sign256(SECRET, body).parse().unwrap(),
    );
    Unverified::new(headers, body.to_vec().into())
}

/// A compiled GitHubSource for `octo-org/hello-world` whose secret file holds [`SECRET`].
pub fn config(mapping: Mapping, event_types: &[&str]) -> GitHubConfig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh-secret")).unwrap();
    // A trailing newline, as `echo` leaves it, must not become part of the secret.
    std::fs::write(dir.path().join("gh-secret/token"), [SECRET, b"\n"].concat()).unwrap();
    let yaml = format!(
        "ownerAndRepository: octo-org/hello-world\neventTypes: [{}]\n\
         secretToken: {{secretKeyRef: {{name: gh-secret, key: token}}}}\nsink: {{uri: http://x}}\n",
        event_types.join(", ")
    );
    let spec: GitHubSourceSpec = serde_saphyr::from_str(&yaml).unwrap();
    let mut meta = SourceMeta {
        namespace: "ns".into(),
        name: "gh".into(),
        ..Default::default()
    };
    if mapping == Mapping::CloudEventsAdapter {
        meta.annotations.insert(
            "herald.dev/github.mapping".into(),
            "cloudevents-adapter".into(),
        );
    }
    spec.compile(&meta, dir.path()).unwrap()
}
