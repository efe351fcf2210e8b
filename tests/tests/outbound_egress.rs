//! The egress policy (`--egress-deny`/`--egress-allow`): a denied destination is never
//! connected to, fails like an unreachable one (retries, then the parking lot) with reason
//! `egress_denied` in the log and in `herald_delivery_failures_total`, and other destinations
//! are unaffected.

mod outbound_common;

use herald_tests::manifests::{broker, trigger, yaml};
use herald_tests::{Herald, HeraldOptions, Subscriber};
use outbound_common::*;
use tokio::net::{TcpListener, TcpStream};

fn deny(cidrs: &[&str]) -> HeraldOptions {
    HeraldOptions {
        args: cidrs
            .iter()
            .flat_map(|c| ["--egress-deny".to_owned(), (*c).to_owned()])
            .collect(),
        ..HeraldOptions::default()
    }
}

/// Asserts nothing connected to `listener` so far: the backlog is first in, first out, so a
/// connection made before this probe would be accepted first.
async fn assert_never_connected(listener: &TcpListener) {
    let probe = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (_, peer) = listener.accept().await.unwrap();
    assert_eq!(
        peer,
        probe.local_addr().unwrap(),
        "herald connected to a denied address"
    );
}

async fn assert_parked_as_denied(herald: &Herald, trigger: &str, attempts: u64) {
    let line = log_line(herald, &["event parked", trigger]).await;
    assert!(line.contains("egress_denied"), "{line}");
    let denied = format!(
        r#"herald_delivery_failures_total{{sender="trigger {trigger}",reason="egress_denied"}}"#
    );
    assert_eq!(series(herald, &denied).await, attempts);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_subscriber_receives_nothing_while_an_allowed_one_receives() {
    let denied = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let allowed = Subscriber::start().await;
    let docs = [
        broker("default"),
        trigger(
            "denied",
            "default",
            &format!("http://{}/", denied.local_addr().unwrap()),
        ),
        trigger("allowed", "default", &allowed.url("/")),
    ];
    let herald = Herald::start_with("embedded", &yaml(&docs), deny(&["127.0.0.2/32"])).await;
    publish(&herald, "e1").await;
    let received = allowed.wait_for(1, WAIT).await;
    assert_eq!(received[0].id(), "e1");
    // fast_delivery: retry 3, so four attempts, every one refused before connecting.
    assert_parked_as_denied(&herald, "default/denied", 4).await;
    assert_never_connected(&denied).await;
    let line = log_line(&herald, &["refused by the egress policy", "default/denied"]).await;
    assert!(line.contains("--egress-deny 127.0.0.2/32"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_literal_ip_and_a_hostname_resolving_to_a_denied_address_are_both_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut literal = trigger("literal", "default", &format!("http://127.0.0.1:{port}/"));
    let mut hostname = trigger("hostname", "default", &format!("http://localhost:{port}/"));
    for t in [&mut literal, &mut hostname] {
        t["spec"]["delivery"]["retry"] = 0.into();
    }
    let docs = [broker("default"), literal, hostname];
    let herald =
        Herald::start_with("embedded", &yaml(&docs), deny(&["127.0.0.0/8", "::1/128"])).await;
    publish(&herald, "e1").await;
    assert_parked_as_denied(&herald, "default/literal", 1).await;
    assert_parked_as_denied(&herald, "default/hostname", 1).await;
    let line = log_line(
        &herald,
        &["refused by the egress policy", "default/hostname"],
    )
    .await;
    assert!(line.contains("localhost resolves to"), "{line}");
    assert_never_connected(&listener).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_metadata_is_denied_by_default_without_a_connection_attempt() {
    let mut metadata = trigger(
        "metadata",
        "default",
        "http://169.254.169.254/latest/meta-data/",
    );
    metadata["spec"]["delivery"]["retry"] = 1.into();
    let docs = [broker("default"), metadata];
    // No flag at all: the built-in default denies link-local.
    let herald = Herald::start("embedded", &yaml(&docs)).await;
    publish(&herald, "e1").await;
    assert_parked_as_denied(&herald, "default/metadata", 2).await;
    let line = log_line(
        &herald,
        &["refused by the egress policy", "default/metadata"],
    )
    .await;
    assert!(line.contains("default deny 169.254.0.0/16"), "{line}");
    // Refused by the policy, so never a connection error or a timeout.
    for reason in ["connect", "timeout"] {
        let series_name = format!(
            r#"herald_delivery_failures_total{{sender="trigger default/metadata",reason="{reason}"}}"#
        );
        assert_eq!(series(&herald, &series_name).await, 0, "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_more_specific_allow_overrides_a_deny() {
    // Loopback only: the override of the built-in link-local deny is a unit test
    // (`outbound::egress`), since reaching 169.254.169.254 would leave the machine.
    let sub = Subscriber::start().await;
    let docs = [
        broker("default"),
        trigger("allowed", "default", &sub.url("/")),
    ];
    let options = HeraldOptions {
        args: [
            "--egress-deny",
            "127.0.0.0/8",
            "--egress-allow",
            "127.0.0.1/32",
        ]
        .map(String::from)
        .to_vec(),
        ..HeraldOptions::default()
    };
    let herald = Herald::start_with("embedded", &yaml(&docs), options).await;
    publish(&herald, "e1").await;
    assert_eq!(sub.wait_for(1, WAIT).await[0].id(), "e1");
    let denied = r#"herald_delivery_failures_total{sender="trigger default/allowed",reason="egress_denied"}"#;
    assert_eq!(series(&herald, denied).await, 0);
}
