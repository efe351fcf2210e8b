//! mTLS and `--admin-listen` end to end with the built `herald` binary.

use herald_tests::https::{BOTH, https_herald, metric, publish, tls_args};
use herald_tests::tls::{Ca, TlsClient};
use herald_tests::{Herald, HeraldOptions, process::free_port};
use http::Method;

const MTLS_POLICY: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: default}
---
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata: {name: shop-orders, namespace: default}
spec:
  from:
    - sub: "CN=orders,O=shop"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn mtls_refuses_missing_and_foreign_client_certificates_and_accepts_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let clients = Ca::new(dir.path(), "clients");
    let valid = clients.client("orders", "/O=shop/CN=orders");
    let foreign = Ca::new(dir.path(), "foreign").client("intruder", "/CN=intruder");
    let good = TlsClient::new(&ca.pem(), BOTH, Some(&valid));
    let client_ca = clients.pem().display().to_string();
    // A verified certificate is an identity (its RFC 4514 subject) that authorization
    // decides on: this policy admits `orders` only, so `billing` (same CA) is refused.
    let herald = https_herald(
        MTLS_POLICY,
        good.clone(),
        tls_args(&server, &["--tls-client-ca", &client_ca]),
    )
    .await;
    let port = herald.port();

    assert_eq!(publish(&good, port, "with-cert").await.unwrap().0, 202);
    let billing = clients.client("billing", "/O=shop/CN=billing");
    let other = TlsClient::new(&ca.pem(), BOTH, Some(&billing));
    assert_eq!(publish(&other, port, "other-subject").await.unwrap().0, 403);
    for (what, client) in [
        (
            "no client certificate",
            TlsClient::new(&ca.pem(), BOTH, None),
        ),
        (
            "a certificate of another CA",
            TlsClient::new(&ca.pem(), BOTH, Some(&foreign)),
        ),
    ] {
        // Under TLS 1.3 the refusal arrives after the client's side of the handshake: the
        // connection or its first request fails; never an HTTP answer.
        let outcome = publish(&client, port, "refused").await;
        assert!(outcome.is_err(), "{what}: got {outcome:?}");
    }
    // An independent client without a certificate (curl) is refused as well.
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.pem())
        .arg(format!("https://localhost:{port}/readyz"))
        .output()
        .await
        .expect("run curl");
    assert!(
        !curl.status.success(),
        "curl without a client certificate got through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_serves_metrics_and_health_which_the_public_port_no_longer_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = TlsClient::new(&ca.pem(), BOTH, None);
    let admin_port = free_port();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "an-admin-token-of-some-length").unwrap();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let token_arg = token_file.display().to_string();
    let herald = Herald::start_with(
        "memory",
        "",
        HeraldOptions {
            args: tls_args(
                &server,
                &[
                    "--admin-listen",
                    &admin_addr,
                    "--admin-token-file",
                    &token_arg,
                ],
            ),
            https: Some(client.clone()),
            ready_port: Some(admin_port),
            ..Default::default()
        },
    )
    .await;
    let public = herald.port();

    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/admin/triggers/default/t/parked",
    ] {
        let (response, _) = client
            .request(public, Method::GET, path, &[], "")
            .await
            .unwrap();
        assert_eq!(
            response.status,
            404,
            "{path} on the public port: {}",
            response.text()
        );
        let (response, _) = client
            .request(admin_port, Method::GET, path, &[], "")
            .await
            .unwrap();
        assert_ne!(response.status, 404, "{path} on the admin port");
    }
    assert_eq!(publish(&client, public, "public").await.unwrap().0, 202);
    let accepted = metric(&client, admin_port, "herald_events_accepted_total").await;
    assert_eq!(accepted, 1);
    // Events are not taken on the admin port.
    assert_eq!(publish(&client, admin_port, "admin").await.unwrap().0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_works_without_tls_too() {
    let admin_port = free_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let herald = Herald::start_with(
        "memory",
        "",
        HeraldOptions {
            args: vec!["--admin-listen".into(), admin_addr],
            ready_port: Some(admin_port),
            ..Default::default()
        },
    )
    .await;
    let client = herald_tests::Client::new();
    assert_eq!(client.get(&herald.url("/metrics")).await.status, 404);
    let metrics = client
        .get(&format!("http://127.0.0.1:{admin_port}/metrics"))
        .await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("herald_"), "{}", metrics.text());
}
