//! Shared by the OIDC tests: keys and tokens minted by PyJWT (tests/interop/jwt_mint.py), an
//! issuer name, and publishing with a bearer token.

#![allow(dead_code, reason = "each test file uses part of it")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herald_tests::{Client, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ISSUER: &str = "https://issuer.herald.test";

pub fn interop(script: &str) -> String {
    format!("{}/interop/{script}", env!("CARGO_MANIFEST_DIR"))
}

/// A directory with private keys (rsa, ec, ed, rogue) and `jwks.json` (rsa, ec, ed public).
pub struct Keys {
    pub dir: TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let dir = tempfile::Builder::new()
            .prefix("herald-oidc-")
            .tempdir()
            .unwrap();
        let status = Command::new("python3")
            .args([&interop("jwt_mint.py"), "keys"])
            .arg(dir.path())
            .status()
            .expect("python3 runs");
        assert!(
            status.success(),
            "minting keys failed: pip install -r tests/interop/requirements.txt"
        );
        Keys { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn jwks(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    /// `--oidc-issuer ISSUER=<jwks.json>`.
    pub fn issuer_flag(&self) -> Vec<String> {
        vec![
            "--oidc-issuer".into(),
            format!("{ISSUER}={}", self.jwks().display()),
        ]
    }

    /// Adds an Ed25519 key `kid` to jwks.json.
    pub fn add_key(&self, kid: &str) {
        let status = Command::new("python3")
            .args([&interop("jwt_mint.py"), "addkey"])
            .arg(self.dir.path())
            .arg(kid)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// One token per spec (see jwt_mint.py).
    pub fn mint(&self, specs: &[Value]) -> Vec<String> {
        let mut child = Command::new("python3")
            .args([&interop("jwt_mint.py"), "tokens"])
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(Value::Array(specs.to_vec()).to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "minting tokens failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// A valid Ed25519 token for `sub` to broker `namespace/name`, valid for an hour.
    pub fn token_for(&self, sub: &str, namespace: &str, name: &str) -> String {
        self.mint(&[spec(
            "ed",
            "EdDSA",
            "ed",
            claims(sub, &audience(namespace, name)),
        )])
        .remove(0)
    }
}

/// Knative's broker audience.
pub fn audience(namespace: &str, name: &str) -> String {
    format!("eventing.knative.dev/broker/{namespace}/{name}")
}

/// Claims valid for an hour.
pub fn claims(sub: &str, aud: &str) -> Value {
    json!({"iss": ISSUER, "sub": sub, "aud": aud, "exp_in": 3600})
}

pub fn spec(key: &str, alg: &str, kid: &str, claims: Value) -> Value {
    json!({"key": key, "alg": alg, "kid": kid, "claims": claims})
}

pub fn event(id: &str, ty: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/oidc-test", "type": ty})
}

/// POSTs `body` (a structured event or a batch) with `Authorization: Bearer {token}`.
pub async fn post(client: &Client, url: &str, token: Option<&str>, body: &Value) -> Response {
    let content_type = if body.is_array() {
        "application/cloudevents-batch+json"
    } else {
        "application/cloudevents+json"
    };
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", content_type)];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    client.post(url, &headers, body.to_string()).await
}

/// The JSON body of a refusal.
pub fn reason(response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    body["reason"].as_str().unwrap_or_default().to_owned()
}
