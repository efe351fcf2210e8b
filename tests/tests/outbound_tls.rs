//! A destination's `CACerts`: an HTTPS subscriber whose certificate comes from a CA made here
//! with `openssl` is trusted through `CACerts` only; the same URL without it fails the TLS
//! handshake (unknown issuer) and the event is parked.

mod outbound_common;

use herald_tests::Herald;
use herald_tests::manifests::{broker, trigger, yaml};
use outbound_common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_self_made_ca_is_trusted_only_where_the_destination_names_it() {
    let pki = Pki::new();
    let receiver = Receiver::start(&[
        "--tls",
        path_str(&pki.server.cert),
        path_str(&pki.server.key),
    ]);
    let url = format!("https://127.0.0.1:{}/", receiver.port);
    let mut trusted = trigger("trusted", "default", &format!("{url}trusted"));
    trusted["spec"]["subscriber"]["CACerts"] = json!(pki.ca_pem());
    let mut untrusted = trigger("untrusted", "default", &format!("{url}untrusted"));
    untrusted["spec"]["delivery"]["retry"] = 0.into();
    let herald = Herald::start("embedded", &yaml(&[broker("default"), trusted, untrusted])).await;
    publish(&herald, "e1").await;
    let requests = receiver.wait_for(1).await;
    assert_eq!(requests[0]["path"], "/trusted");
    assert_eq!(requests[0]["headers"]["ce-id"], "e1");
    let line = log_line(&herald, &["event parked", "default/untrusted"]).await;
    assert!(
        line.contains("UnknownIssuer") || line.contains("certificate"),
        "{line}"
    );
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r["path"] != "/untrusted"),
        "a request reached the receiver without its CA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cacerts_that_is_not_a_certificate_fails_the_start_naming_the_field() {
    let mut t = trigger("t", "default", "https://127.0.0.1:9/");
    t["spec"]["subscriber"]["CACerts"] = json!("not a certificate");
    let manifests = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifests.path(), yaml(&[broker("default"), t])).unwrap();
    let out = herald_tests::process::run_cli(
        &[
            "serve",
            "-f",
            path_str(manifests.path()),
            "--bus",
            "memory",
            "--listen",
            "127.0.0.1:0",
        ],
        WAIT,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("spec.subscriber.CACerts") && out.stderr.contains("no PEM certificate"),
        "{}",
        out.stderr
    );
}
