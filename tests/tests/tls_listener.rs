//! HTTPS on the listener, end to end with the built `herald` binary: certificates made by
//! `openssl`, clients that verify the chain (the harness's rustls client and `curl`), ALPN,
//! plain HTTP and a handshake slowloris closed, HTTP/2 held to the listener's limits, and
//! start-up errors of a bad certificate pair.

use std::time::Duration;

use herald_tests::fixtures::{binary_body, binary_headers, borrow};
use herald_tests::https::{BOTH, https_herald, metric, publish, tls_args};
use herald_tests::manifests::one_trigger;
use herald_tests::tls::{Ca, TlsClient};
use herald_tests::{Subscriber, eventually};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn https_publish_is_verified_and_alpn_picks_h2_or_http1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let sub = Subscriber::start().await;
    let h2_client = TlsClient::new(&ca.pem(), BOTH, None);
    let herald = https_herald(
        &one_trigger(&sub.url("/")),
        h2_client.clone(),
        tls_args(&server, &[]),
    )
    .await;
    let port = herald.port();

    assert_eq!(
        publish(&h2_client, port, "over-h2").await.unwrap(),
        (202, Some(b"h2".to_vec()))
    );
    let h1_client = TlsClient::new(&ca.pem(), &[b"http/1.1"], None);
    assert_eq!(
        publish(&h1_client, port, "over-http1").await.unwrap(),
        (202, Some(b"http/1.1".to_vec()))
    );
    // A client that offers no ALPN at all speaks HTTP/1.1.
    let no_alpn = TlsClient::new(&ca.pem(), &[], None);
    assert_eq!(
        publish(&no_alpn, port, "no-alpn").await.unwrap(),
        (202, None)
    );
    // An independent client: curl verifying the chain with --cacert, over HTTP/2.
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(ca.pem())
        .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
        .args([
            "-H",
            "ce-specversion: 1.0",
            "-H",
            "ce-id: by-curl",
            "-H",
            "ce-type: t",
        ])
        .args([
            "-H",
            "ce-source: /curl",
            "-H",
            "content-type: application/json",
        ])
        .args(["--data", "{}"])
        .arg(format!("https://localhost:{port}/default/default"))
        .output()
        .await
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "202 2",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let got = sub.wait_for(4, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, ["by-curl", "no-alpn", "over-h2", "over-http1"]);

    // A client trusting another CA refuses Herald's certificate.
    let other = Ca::new(dir.path(), "other");
    let stranger = TlsClient::new(&other.pem(), BOTH, None);
    let err = publish(&stranger, port, "x").await.unwrap_err();
    assert!(err.contains("handshake"), "{err}");
}

/// Sends `bytes` on a raw TCP connection and reads until the server closes it; returns what
/// came back. Panics if the connection is still open after `deadline`.
async fn raw_until_closed(port: u16, bytes: &[u8], deadline: Duration) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    if !bytes.is_empty() {
        stream.write_all(bytes).await.unwrap();
    }
    let mut seen = Vec::new();
    let read = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {deadline:?}");
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_and_a_stalled_handshake_get_no_service_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = TlsClient::new(&ca.pem(), BOTH, None);
    let herald = https_herald(
        "",
        client.clone(),
        tls_args(&server, &["--tls-handshake-timeout", "1s"]),
    )
    .await;
    let port = herald.port();

    let answer = raw_until_closed(
        port,
        b"GET /readyz HTTP/1.1\r\nhost: localhost\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "plain HTTP got an HTTP answer: {answer:?}"
    );

    // A slowloris on the handshake: the first bytes of a ClientHello, then nothing.
    let started = tokio::time::Instant::now();
    raw_until_closed(port, &[0x16, 0x03, 0x01, 0x02], Duration::from_secs(20)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the handshake timeout"
    );
    // Nothing sent at all: closed too.
    raw_until_closed(port, &[], Duration::from_secs(20)).await;
    // Service goes on for proper clients; the refusals are counted.
    assert_eq!(publish(&client, port, "after").await.unwrap().0, 202);
    let failures = "herald_tls_handshake_failures_total";
    let failed = metric(&client, port, &format!("{failures}{{reason=\"failed\"}}")).await;
    let timed_out = metric(&client, port, &format!("{failures}{{reason=\"timeout\"}}")).await;
    assert_eq!((failed, timed_out), (1, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_streams_are_held_to_the_body_budget_and_the_header_list_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = TlsClient::new(&ca.pem(), &[b"h2"], None);
    let herald = https_herald(
        "",
        client.clone(),
        tls_args(
            &server,
            &[
                "--max-body-bytes-in-flight",
                "4096",
                "--h2-max-header-list-size",
                "4096",
            ],
        ),
    )
    .await;
    let mut session = client.connect(herald.port()).await.unwrap();
    assert_eq!(session.negotiated.alpn.as_deref(), Some(b"h2".as_slice()));
    let headers = binary_headers("small");
    let small = session
        .send(
            Method::POST,
            "/default/default",
            &borrow(&headers),
            binary_body("small"),
        )
        .await
        .unwrap();
    assert_eq!(small.status, 202, "{}", small.text());
    // 3000 bytes cost 6000 of the 4096-byte budget while they stream in: refused up front.
    let big_body = format!("{{\"pad\": \"{}\"}}", "x".repeat(3000));
    let headers = binary_headers("big");
    let big = session
        .send(
            Method::POST,
            "/default/default",
            &borrow(&headers),
            big_body,
        )
        .await
        .unwrap();
    assert_eq!(big.status, 503, "{}", big.text());
    assert!(big.header("retry-after").is_some());
    // A header list over 4 KiB: 431, and the connection goes on.
    let padding = "y".repeat(8192);
    let owned = binary_headers("huge-head");
    let mut headers = borrow(&owned);
    headers.push(("x-padding", &padding));
    let huge = session
        .send(
            Method::POST,
            "/default/default",
            &headers,
            binary_body("huge-head"),
        )
        .await
        .unwrap();
    assert_eq!(huge.status, 431);
    let headers = binary_headers("after");
    let after = session
        .send(
            Method::POST,
            "/default/default",
            &borrow(&headers),
            binary_body("after"),
        )
        .await
        .unwrap();
    assert_eq!(after.status, 202, "{}", after.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = TlsClient::new(&ca.pem(), &[b"h2"], None);
    let herald = https_herald(
        "",
        client.clone(),
        tls_args(&server, &["--header-read-timeout", "1s"]),
    )
    .await;
    // One connection that never sends a request, one that sends one and then goes quiet.
    let silent = client.connect(herald.port()).await.unwrap();
    let mut quiet = client.connect(herald.port()).await.unwrap();
    let started = tokio::time::Instant::now();
    let headers = binary_headers("one");
    let response = quiet
        .send(
            Method::POST,
            "/default/default",
            &borrow(&headers),
            binary_body("one"),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    let (silent, quiet) = (&silent, &quiet);
    eventually(
        Duration::from_secs(20),
        "both idle connections closed",
        || async move { (silent.is_closed() && quiet.is_closed()).then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_and_key_that_do_not_belong_together_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (one, other) = (ca.server("one"), ca.server("other"));
    let key_text = std::fs::read_to_string(&other.key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap().to_owned();
    let (cert, key) = (
        one.cert.display().to_string(),
        other.key.display().to_string(),
    );
    let out = herald_tests::process::run_cli(
        &[
            "serve",
            "--bus",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--tls-key") && out.stderr.contains("does not belong to --tls-cert"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&key_body),
        "key material printed: {}",
        out.stderr
    );
    // A key file that is not PEM at all.
    std::fs::write(&other.key, "not a key").unwrap();
    let out = herald_tests::process::run_cli(
        &[
            "serve",
            "--bus",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        out.stderr.contains("no PEM PRIVATE KEY block"),
        "{}",
        out.stderr
    );
}
