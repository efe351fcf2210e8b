//! The management API (and the `/admin/` endpoints beside it) accepts OIDC tokens — minted by
//! PyJWT, an independent implementation — of a trusted issuer, for the API's audience, whose
//! subject is listed with `--api-subject`; anything else is `401` naming why. The admin token
//! keeps working, and no subject is allowed by default.

mod oidc_common;

use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::process::run_cli;
use herald_tests::{Client, Herald, HeraldOptions, Response, Subscriber};
use http::Method;
use oidc_common::{Keys, audience, claims, spec};

const ADMIN_TOKEN: &str = "ops-oidc-admin-token-0123456789";
const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/default/triggers";

async fn start(keys: &Keys, dir: &std::path::Path, extra: &[&str]) -> Herald {
    let token_file = dir.join("token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let mut args = keys.issuer_flag();
    args.extend([
        "--default-authorization-mode".into(),
        "allow-all".into(),
        "--admin-token-file".into(),
        token_file.display().to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let sub = Subscriber::start().await;
    let docs = [broker("default"), trigger("t", "default", &sub.url("/"))];
    Herald::start_with(
        "memory",
        &yaml(&docs),
        HeraldOptions {
            args,
            ..Default::default()
        },
    )
    .await
}

async fn call(herald: &Herald, method: Method, path: &str, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    Client::new()
        .request(
            method,
            &herald.url(path),
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/json"),
            ],
            "{}",
        )
        .await
}

fn token(keys: &Keys, sub: &str, aud: &str) -> String {
    keys.mint(&[spec("ed", "EdDSA", "ed", claims(sub, aud))])
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_subjects_token_for_the_api_audience_is_accepted_and_others_are_401() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let herald = start(&keys, dir.path(), &["--api-subject", "ops-alice"]).await;
    let alice = token(&keys, "ops-alice", "herald.dev/api");

    let r = call(&herald, Method::GET, TRIGGERS, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"t\""), "{}", r.text());
    let pause = "/apis/herald.dev/v1alpha1/namespaces/default/triggers/t/pause";
    let r = call(&herald, Method::POST, pause, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let parked = "/apis/herald.dev/v1alpha1/namespaces/default/triggers/t/parked";
    let r = call(&herald, Method::GET, parked, &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&herald, Method::GET, TRIGGERS, ADMIN_TOKEN).await;
    assert_eq!(r.status, 200, "the admin token keeps working: {}", r.text());

    // The CLI carries the token like any other.
    let server = herald.url("");
    let out = run_cli(
        &["get", "triggers", "--server", &server, "--token", &alice],
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("t"), "{}", out.stdout);

    let refused = [
        (
            token(&keys, "ops-bob", "herald.dev/api"),
            "is not allowed to use the management API",
        ),
        (
            token(&keys, "ops-alice", &audience("default", "default")),
            "audience",
        ),
        (
            keys.mint(&[spec(
                "rogue",
                "EdDSA",
                "ed",
                claims("ops-alice", "herald.dev/api"),
            )])
            .remove(0),
            "signature",
        ),
        ("not-a-token".to_owned(), "--admin-token-file"),
    ];
    for (bad, why) in &refused {
        for path in [TRIGGERS, parked] {
            let r = call(&herald, Method::GET, path, bad).await;
            assert_eq!(r.status, 401, "{path}: {}", r.text());
            assert!(
                r.text().contains(why),
                "{path}: expected {why:?} in {}",
                r.text()
            );
            assert!(!r.text().contains(bad.as_str()), "a token in an error body");
        }
        let r = call(&herald, Method::POST, pause, bad).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_api_subject_no_token_grants_the_api() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let herald = start(&keys, dir.path(), &[]).await;
    let alice = token(&keys, "ops-alice", "herald.dev/api");
    let r = call(&herald, Method::GET, TRIGGERS, &alice).await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_subject_without_a_trusted_issuer_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let token_file = token_file.display().to_string();
    let out = run_cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--bus",
            "memory",
            "--admin-token-file",
            &token_file,
            "--api-subject",
            "ops-alice",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--api-subject needs --oidc-issuer"),
        "{}",
        out.stderr
    );
}
