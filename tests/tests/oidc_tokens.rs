//! Publisher identity (OIDC): tokens minted by PyJWT, an independent implementation, with keys
//! Herald reads from a JWKS file or fetches from a local https URL.

mod oidc_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber};
use oidc_common::{ISSUER, Keys, audience, claims, event, post, reason, spec};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn start(keys: &Keys, sub: &Subscriber, extra: &[&str]) -> Herald {
    let mut args = keys.issuer_flag();
    args.extend(["--default-authorization-mode".into(), "allow-all".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
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

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_each_algorithm_publish_and_each_bad_token_is_401_naming_why() {
    let keys = Keys::new();
    let sub = Subscriber::start().await;
    let herald = start(&keys, &sub, &[]).await;
    let url = herald.broker_url("default", "default");
    let aud = audience("default", "default");
    let client = Client::new();

    let good = keys.mint(&[
        spec("rsa", "RS256", "rsa", claims("alice", &aud)),
        spec("ec", "ES256", "ec", claims("alice", &aud)),
        spec("ed", "EdDSA", "ed", claims("alice", &aud)),
        // Without kid: any key of the algorithm's type may have signed it.
        spec("ed", "EdDSA", "", claims("alice", &aud)),
    ]);
    for (i, token) in good.iter().enumerate() {
        let answer = post(&client, &url, Some(token), &event(&format!("ok-{i}"), "t")).await;
        assert_eq!(answer.status, 202, "token {i}: {}", answer.text());
        // A cached token is accepted again.
        let again = post(
            &client,
            &url,
            Some(token),
            &event(&format!("again-{i}"), "t"),
        )
        .await;
        assert_eq!(again.status, 202);
    }
    sub.wait_for(2 * good.len(), WAIT).await;

    let now_claims = |extra: serde_json::Value| {
        let mut c = claims("alice", &aud);
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        (
            "expired",
            spec("ed", "EdDSA", "ed", now_claims(json!({"exp_in": -120}))),
        ),
        (
            "not_yet_valid",
            spec("ed", "EdDSA", "ed", now_claims(json!({"nbf_in": 300}))),
        ),
        (
            "bad_signature",
            spec("rogue", "EdDSA", "ed", claims("alice", &aud)),
        ),
        (
            "unknown_key",
            spec("rogue", "EdDSA", "rogue", claims("alice", &aud)),
        ),
        (
            "wrong_audience",
            spec(
                "ed",
                "EdDSA",
                "ed",
                claims("alice", &audience("default", "other")),
            ),
        ),
        (
            "untrusted_issuer",
            spec(
                "ed",
                "EdDSA",
                "ed",
                now_claims(json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "unsupported_algorithm",
            spec("none", "none", "ed", claims("alice", &aud)),
        ),
        (
            "unsupported_algorithm",
            spec("hmac", "HS256", "ed", claims("alice", &aud)),
        ),
        // An RSA key named for an Ed25519 signature.
        (
            "algorithm_mismatch",
            spec("ed", "EdDSA", "rsa", claims("alice", &aud)),
        ),
    ];
    let specs: Vec<_> = cases.iter().map(|(_, s)| s.clone()).collect();
    let tokens = keys.mint(&specs);
    let mut refusals = Vec::new();
    for ((expected, _), token) in cases.iter().zip(&tokens) {
        refusals.push((
            *expected,
            post(&client, &url, Some(token), &event("x", "t")).await,
        ));
    }
    // Still within the 60 s leeway: expired 30 s ago is accepted.
    let lenient = keys.mint(&[spec(
        "ed",
        "EdDSA",
        "ed",
        now_claims(json!({"exp_in": -30})),
    )]);
    assert_eq!(
        post(&client, &url, Some(&lenient[0]), &event("late", "t"))
            .await
            .status,
        202
    );

    let malformed = [
        "abc.def",
        "not-a-jwt",
        "eyJhbGciOiJFZERTQSJ9.e30=.c2ln",
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln.x",
    ];
    for token in malformed {
        refusals.push((
            "malformed_token",
            post(&client, &url, Some(token), &event("x", "t")).await,
        ));
    }
    let long = "a".repeat(9000);
    refusals.push((
        "token_too_long",
        post(&client, &url, Some(&long), &event("x", "t")).await,
    ));
    refusals.push((
        "missing_token",
        post(&client, &url, None, &event("x", "t")).await,
    ));
    for (expected, answer) in &refusals {
        assert_eq!(answer.status, 401, "{expected}: {}", answer.text());
        assert_eq!(reason(answer), *expected, "{}", answer.text());
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        // The token never comes back in the answer.
        assert!(!answer.text().contains("eyJ"), "{}", answer.text());
    }
    let metrics = client.get(&herald.url("/metrics")).await.text();
    let line = metrics
        .lines()
        .find(|l| {
            l.contains("herald_events_rejected_total") && l.contains("reason=\"unauthenticated\"")
        })
        .unwrap_or_else(|| panic!("no unauthenticated series in\n{metrics}"));
    assert!(line.ends_with(&format!(" {}", refusals.len())), "{line}");
    assert!(
        herald
            .stderr()
            .contains("request refused: not authenticated")
    );
    // Nothing refused was delivered.
    let delivered = sub.settle(Duration::from_millis(300), WAIT).await;
    assert_eq!(delivered.len(), 2 * good.len() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_a_new_kid_reloads_the_jwks_file() {
    let keys = Keys::new();
    let sub = Subscriber::start().await;
    let herald = start(&keys, &sub, &["--oidc-jwks-refresh-interval", "1ms"]).await;
    let url = herald.broker_url("default", "default");
    let client = Client::new();
    keys.add_key("late");
    let token = keys.mint(&[spec(
        "late",
        "EdDSA",
        "late",
        claims("alice", &audience("default", "default")),
    )]);
    let answer = post(&client, &url, Some(&token[0]), &event("rotated", "t")).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    sub.wait_for(1, WAIT).await;
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_served_over_https_is_fetched_and_refetched_for_a_new_kid() {
    let keys = Keys::new();
    let tls = tempfile::tempdir().unwrap();
    let ca = herald_tests::tls::Ca::new(tls.path(), "ca");
    let served = ca.server("server");
    let mut server = Child(
        Command::new("python3")
            .arg(oidc_common::interop("jwks_server.py"))
            .arg(keys.path())
            .arg(&served.cert)
            .arg(&served.key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first
        .strip_prefix("listening ")
        .expect("server prints its port");
    let sub = Subscriber::start().await;
    let docs = [broker("default"), trigger("t", "default", &sub.url("/"))];
    let herald = Herald::start_with(
        "memory",
        &yaml(&docs),
        HeraldOptions {
            args: vec![
                "--oidc-issuer".into(),
                format!("{ISSUER}=https://127.0.0.1:{port}/jwks.json"),
                "--oidc-jwks-refresh-interval".into(),
                "1ms".into(),
                "--default-authorization-mode".into(),
                "allow-all".into(),
                "--oidc-ca".into(),
                ca.pem().display().to_string(),
            ],
            ..Default::default()
        },
    )
    .await;
    let url = herald.broker_url("default", "default");
    let client = Client::new();
    let aud = audience("default", "default");
    let token = keys.mint(&[spec("ec", "ES256", "ec", claims("alice", &aud))]);
    let answer = post(&client, &url, Some(&token[0]), &event("https-1", "t")).await;
    assert_eq!(answer.status, 202, "{}\n{}", answer.text(), herald.stderr());
    keys.add_key("next");
    let token = keys.mint(&[spec("next", "EdDSA", "next", claims("alice", &aud))]);
    let answer = post(&client, &url, Some(&token[0]), &event("https-2", "t")).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    sub.wait_for(2, WAIT).await;

    // Without --oidc-ca the issuer's certificate is not trusted: the keys cannot be fetched,
    // and the refusal says so.
    let untrusting = Herald::start_with(
        "memory",
        &yaml(&[broker("default")]),
        HeraldOptions {
            args: vec![
                "--oidc-issuer".into(),
                format!("{ISSUER}=https://127.0.0.1:{port}/jwks.json"),
                "--default-authorization-mode".into(),
                "allow-all".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    let url = untrusting.broker_url("default", "default");
    let answer = post(&client, &url, Some(&token[0]), &event("https-3", "t")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(reason(&answer), "jwks_unavailable", "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_withdrawn_from_the_jwks_stops_being_trusted_after_the_max_age() {
    let keys = Keys::new();
    let sub = Subscriber::start().await;
    let herald = start(&keys, &sub, &["--oidc-jwks-max-age", "200ms"]).await;
    let url = herald.broker_url("default", "default");
    let client = Client::new();
    let token = keys.token_for("alice", "default", "default");
    assert_eq!(
        post(&client, &url, Some(&token), &event("before", "t"))
            .await
            .status,
        202
    );
    // The issuer withdraws key "ed" (atomically, as a config-map update would).
    let mut jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.jwks()).unwrap()).unwrap();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != "ed");
    let staged = keys.path().join("jwks.staged");
    std::fs::write(&staged, jwks.to_string()).unwrap();
    std::fs::rename(&staged, keys.jwks()).unwrap();
    let mut n = 0;
    herald_tests::eventually(WAIT, "the withdrawn key to be refused", || {
        n += 1;
        let (client, url, token) = (&client, url.clone(), token.clone());
        async move {
            let answer = post(
                client,
                &url,
                Some(&token),
                &event(&format!("after-{n}"), "t"),
            )
            .await;
            (answer.status == 401).then(|| oidc_common::reason(&answer))
        }
    })
    .await;
}
