//! The service-account assertion checked against an independent RSA implementation (`openssl`)
//! with a key `openssl` generated.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn key_file(dir: &std::path::Path) -> Vec<u8> {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
        dir,
    );
    openssl(
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
        dir,
    );
    let pem = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    json!({
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "kid-123",
        "private_key": pem,
        "client_email": "herald@proj.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.example.test/token",
    })
    .to_string()
    .into_bytes()
}

#[test]
fn the_assertion_is_an_rs256_jwt_for_the_pubsub_scope_that_openssl_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = ServiceAccountKey::parse("key.json", &key_file(dir.path())).unwrap();
    let jwt = key.assertion(1_700_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode =
        |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    assert_eq!(
        decode(parts[0]),
        json!({"alg": "RS256", "typ": "JWT", "kid": "kid-123"})
    );
    assert_eq!(
        decode(parts[1]),
        json!({
            "iss": "herald@proj.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/pubsub",
            "aud": "https://oauth2.example.test/token",
            "iat": 1_700_000_000u64,
            "exp": 1_700_003_600u64,
        })
    );
    std::fs::write(
        dir.path().join("input"),
        format!("{}.{}", parts[0], parts[1]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sig"),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
    .unwrap();
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "input",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
}

#[test]
fn key_files_that_cannot_sign_are_refused_without_echoing_the_key() {
    let not_sa = json!({"type": "authorized_user"}).to_string();
    let e = ServiceAccountKey::parse("k.json", not_sa.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("service_account"), "{e}");
    let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END PRIVATE KEY-----";
    let bad_key = json!({
        "type": "service_account",
        "private_key": secret,
        "private_key_id": "k",
        "client_email": "a@b",
    })
    .to_string();
    let e = ServiceAccountKey::parse("k.json", bad_key.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("not a usable RSA key"), "{e}");
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
}

#[test]
fn token_answers_are_read() {
    let (token, lifetime) = parse_token_response(
        br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
    )
    .unwrap();
    assert_eq!(token, "ya29.x");
    assert_eq!(lifetime, Duration::from_secs(3599));
    assert!(parse_token_response(br#"{"error":"invalid_grant"}"#).is_err());
}
