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
