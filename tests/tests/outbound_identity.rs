//! Herald as an OIDC issuer: a destination with `audience` gets `Authorization: Bearer <JWT>`
//! that PyJWT verifies against Herald's `/.well-known/jwks.json` (found through
//! `/.well-known/openid-configuration`), with the trigger's service-account subject; a
//! destination without `audience` gets no token.

mod outbound_common;

use std::process::Command;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Client, Herald, Subscriber};
use outbound_common::*;
use serde_json::{Value, json};

fn verify_with_pyjwt(
    jwks_url: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    let out = Command::new("python3")
        .args([&interop("verify_jwt.py"), jwks_url, issuer, audience, token])
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("claims are JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_with_an_audience_gets_a_token_pyjwt_verifies_against_the_jwks() {
    let sub = Subscriber::start().await;
    let mut with_audience = trigger("billing", "default", &sub.url("/with"));
    with_audience["spec"]["subscriber"]["audience"] = json!("billing-subscriber");
    let without = trigger("plain", "default", &sub.url("/without"));
    let herald = Herald::start(
        "embedded",
        &yaml(&[broker("default"), with_audience, without]),
    )
    .await;

    let issuer = herald.url("");
    let discovery = Client::new()
        .get(&herald.url("/.well-known/openid-configuration"))
        .await;
    assert_eq!(discovery.status, 200);
    let discovery: Value = serde_json::from_str(&discovery.text()).unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    let jwks_url = discovery["jwks_uri"].as_str().unwrap().to_owned();
    assert_eq!(jwks_url, herald.url("/.well-known/jwks.json"));

    publish(&herald, "e1").await;
    publish(&herald, "e2").await;
    let requests = sub.wait_for(4, WAIT).await;
    let tokens: Vec<String> = requests
        .iter()
        .filter(|r| r.path == "/with")
        .map(|r| {
            let auth = r.header("authorization").expect("a bearer token");
            auth.strip_prefix("Bearer ")
                .expect("Bearer scheme")
                .to_owned()
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        tokens[0], tokens[1],
        "the token is cached per subject and audience"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.path == "/without")
            .all(|r| r.header("authorization").is_none())
    );

    let token = tokens[0].clone();
    let claims = tokio::task::spawn_blocking({
        let (jwks_url, issuer, token) = (jwks_url.clone(), issuer.clone(), token.clone());
        move || verify_with_pyjwt(&jwks_url, &issuer, "billing-subscriber", &token)
    })
    .await
    .unwrap()
    .expect("PyJWT verifies Herald's token");
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:default:herald-trigger-billing"
    );
    assert_eq!(claims["aud"], "billing-subscriber");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);

    // The same token is refused for another audience: the check is real.
    let wrong = tokio::task::spawn_blocking(move || {
        verify_with_pyjwt(&jwks_url, &issuer, "someone-else", &token)
    })
    .await
    .unwrap();
    assert!(wrong.unwrap_err().contains("InvalidAudience"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signing_key_is_generated_once_into_the_data_dir_and_kept_across_restarts() {
    let mut herald = Herald::start("embedded", "").await;
    let jwks = |h: &Herald| {
        let url = h.url("/.well-known/jwks.json");
        async move { Client::new().get(&url).await.text() }
    };
    let before = jwks(&herald).await;
    let key = herald.data_dir().join("issuer/ed25519.pk8");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{key:?}");
    herald.restart().await;
    assert_eq!(jwks(&herald).await, before);
}

/// Two Heralds trust each other: A's trigger forwards to B's broker with the audience Knative
/// gives that broker, B trusts A as an `--oidc-issuer` (A's JWKS saved to a file, since B
/// fetches keys over https only), and only A's signed hop gets through B's ingress.
#[tokio::test(flavor = "multi_thread")]
async fn a_herald_trusts_another_heralds_tokens_and_refuses_unsigned_publishers() {
    let a = Herald::start("memory", &yaml(&[broker("default")])).await;
    let issuer = a.url("");
    let jwks = Client::new().get(&a.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("herald-a.jwks.json");
    std::fs::write(&jwks_file, jwks.text()).unwrap();

    let sub = Subscriber::start().await;
    let b = Herald::start_with(
        "memory",
        &yaml(&[
            broker("default"),
            trigger("sink", "default", &sub.url("/b")),
        ]),
        herald_tests::HeraldOptions {
            args: vec![
                "--oidc-issuer".into(),
                format!("{issuer}={}", jwks_file.display()),
            ],
            ..Default::default()
        },
    )
    .await;
    let unsigned = Client::new()
        .post_structured(
            &b.broker_url("default", "default"),
            &structured_event("direct"),
        )
        .await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());

    // A learns of B live (its -f file is watched): a trigger that forwards with the audience.
    let mut forward = trigger("forward", "default", &b.broker_url("default", "default"));
    forward["spec"]["subscriber"]["audience"] =
        json!("eventing.knative.dev/broker/default/default");
    a.rewrite_manifests(&yaml(&[broker("default"), forward]));
    let a_ref = &a;
    herald_tests::eventually(WAIT, "A applied its new trigger", || async move {
        let metrics = Client::new().get(&a_ref.url("/metrics")).await.text();
        metrics
            .contains(r#"herald_config_reloads_total{result="applied"} 1"#)
            .then_some(())
    })
    .await;
    let r = Client::new()
        .post_structured(
            &a.broker_url("default", "default"),
            &structured_event("hop"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let seen = sub.wait_for(1, WAIT).await;
    assert!(
        seen.iter()
            .all(|r| r.header("ce-id").is_some_and(|id| id == "hop")),
        "only A's forwarded event reaches B's subscriber"
    );
}

fn structured_event(id: &str) -> Value {
    herald_tests::fixtures::structured(id)
}
