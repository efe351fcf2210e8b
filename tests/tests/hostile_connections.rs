//! Hostile connections against the built binary: slow headers, endless bodies, descriptor
//! exhaustion and half-sent bodies (issue 9, item 6). Timeouts are made small with the
//! listener's flags so each test runs in seconds.

use std::time::Duration;

use bytes::Bytes;
use herald_tests::client::post_chunked;
use herald_tests::fixtures::{binary_body, binary_headers, borrow};
use herald_tests::{Client, Herald, HeraldOptions, Subscriber, manifests};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a test waits for herald to close a connection before failing.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

async fn herald_with_args(args: &[&str], nofile: Option<u64>) -> Herald {
    Herald::start_with(
        "embedded",
        &manifests::yaml(&[manifests::broker("default")]),
        HeraldOptions {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            nofile,
            ..Default::default()
        },
    )
    .await
}

/// Reads until the peer closes (or resets) the connection; returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut piece = [0u8; 4096];
    let outcome = tokio::time::timeout(CLOSE_DEADLINE, async {
        loop {
            match stream.read(&mut piece).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&piece[..n]),
            }
        }
    })
    .await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        outcome.is_ok(),
        "herald kept the connection open for {CLOSE_DEADLINE:?}; it sent {seen:?}"
    );
    seen
}

fn publish_head(extra: &str) -> String {
    format!(
        "POST /default/default HTTP/1.1\r\nhost: herald\r\nce-specversion: 1.0\r\nce-id: slow\r\n\
         ce-source: /s\r\nce-type: t\r\ncontent-type: application/json\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_half_sent_headers_are_closed_after_the_header_timeout() {
    let herald = herald_with_args(&["--header-read-timeout", "1s"], None).await;
    let started = Instant::now();
    let mut partial = TcpStream::connect(("127.0.0.1", herald.port()))
        .await
        .expect("connect");
    partial
        .write_all(b"POST /default/default HTTP/1.1\r\nhost: herald\r\nce-id: 1\r\n")
        .await
        .expect("write part of the headers");
    let mut silent = TcpStream::connect(("127.0.0.1", herald.port()))
        .await
        .expect("connect");
    read_until_closed(&mut partial).await;
    read_until_closed(&mut silent).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the header timeout passed"
    );

    // A kept-alive connection that goes idle after a request is closed the same way.
    let mut kept = TcpStream::connect(("127.0.0.1", herald.port()))
        .await
        .expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: herald\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_body_that_never_ends_is_answered_408_and_closed() {
    let herald = herald_with_args(&["--body-read-timeout", "1s"], None).await;
    let mut stream = TcpStream::connect(("127.0.0.1", herald.port()))
        .await
        .expect("connect");
    let head = publish_head("transfer-encoding: chunked\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(b"5\r\n{\"a\":\r\n")
        .await
        .expect("a chunk");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("--body-read-timeout"), "{answer:?}");

    // The same with a Content-Length that never arrives.
    let mut stream = TcpStream::connect(("127.0.0.1", herald.port()))
        .await
        .expect("connect");
    let head = publish_head("content-length: 100\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(b"{\"a\":")
        .await
        .expect("part of the body");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_beyond_the_in_flight_budget_are_503_with_retry_after() {
    let herald = herald_with_args(
        &["--max-body-bytes-in-flight", "1000", "--max-body", "4096"],
        None,
    )
    .await;
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let headers = binary_headers("over-budget");
    let r = client
        .try_request(
            Method::POST,
            &url,
            &borrow(&headers),
            "x".repeat(2000),
            Duration::from_secs(10),
        )
        .await
        .expect("an answer");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.error().contains("--max-body-bytes-in-flight"),
        "{}",
        r.text()
    );

    // A chunked body is counted as it arrives.
    let chunks = (0..4).map(|_| Bytes::from(vec![b' '; 400])).collect();
    let r = post_chunked(&url, &borrow(&headers), chunks).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));

    // What fits is accepted, again and again: reservations are given back.
    for i in 0..20 {
        let id = format!("fits-{i}");
        let r = client
            .post(&url, &borrow(&binary_headers(&id)), binary_body(&id))
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_descriptor_limit_do_not_stop_a_publish() {
    let sub = Subscriber::start().await;
    let herald = Herald::start_with(
        "embedded",
        &manifests::one_trigger(&sub.url("/")),
        HeraldOptions {
            args: ["--header-read-timeout", "1s"].map(String::from).to_vec(),
            nofile: Some(512),
            ..Default::default()
        },
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(
            TcpStream::connect(("127.0.0.1", herald.port()))
                .await
                .expect("connect: the listen backlog takes what herald does not accept yet"),
        );
    }
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let attempt = client
            .try_request(
                Method::POST,
                &url,
                &borrow(&binary_headers("through")),
                binary_body("through"),
                Duration::from_secs(10),
            )
            .await;
        match attempt {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => eprintln!("publish not answered yet: {e}"),
            Err(e) => panic!(
                "no publish got through within 60 s: {e}\n{}",
                herald.stderr()
            ),
        }
    };
    assert_eq!(answer.status, 202, "{}", answer.text());
    sub.wait_for(1, Duration::from_secs(10)).await;
    drop(idle);
    let log = herald.stderr();
    let cap_line = log
        .lines()
        .find(|l| l.contains("connection cap lowered below the descriptor limit"))
        .unwrap_or_else(|| panic!("herald did not lower its connection cap:\n{log}"));
    assert!(
        cap_line.contains("384"),
        "512 descriptors leave 384 connections (a quarter kept free): {cap_line}"
    );
    let accept_failures = log.matches("accept failed").count();
    assert!(
        accept_failures < 20,
        "accept failed {accept_failures} times:\n{log}"
    );
}

/// Herald's resident memory, from `/proc/PID/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_one_mib_bodies_keep_rss_under_160_mib() {
    let herald = herald_with_args(&["--body-read-timeout", "60s"], None).await;
    let port = herald.port();
    let head = publish_head(&format!("content-length: {}\r\n", 1 << 20));
    let mut senders = tokio::task::JoinSet::new();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    for _ in 0..150 {
        let head = head.clone();
        let mut release = release_rx.clone();
        senders.spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let (mut read, mut write) = stream.into_split();
            let reader = tokio::spawn(async move {
                let mut answer = Vec::new();
                let _ = read.read_to_end(&mut answer).await;
                String::from_utf8_lossy(&answer).into_owned()
            });
            let body = vec![b'x'; (1 << 20) - 1];
            let _ = write.write_all(head.as_bytes()).await;
            let _ = write.write_all(&body).await;
            (reader, async move {
                let _ = release.wait_for(|r| *r).await;
                drop(write);
            })
        });
    }
    let mut readers = Vec::new();
    let mut holders = Vec::new();
    let all_sent = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(sent) = senders.join_next().await {
            let (reader, hold) = sent.expect("sender task");
            readers.push(reader);
            holders.push(tokio::spawn(hold));
        }
    })
    .await;
    assert!(
        all_sent.is_ok(),
        "150 senders did not finish writing within 60 s"
    );
    let mut peak = 0;
    for _ in 0..5 {
        peak = peak.max(rss_bytes(herald.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "herald's peak RSS with 150 half-sent bodies: {} MiB",
        peak >> 20
    );
    assert!(
        peak < 160 << 20,
        "herald's RSS reached {} MiB with 150 half-sent 1 MiB bodies",
        peak >> 20
    );

    let _ = release_tx.send(true);
    let mut refused = 0;
    for reader in readers {
        let answer = tokio::time::timeout(CLOSE_DEADLINE, reader)
            .await
            .expect("herald closes every half-sent connection")
            .expect("reader task");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "the 64 MiB budget cannot take 150 MiB of bodies"
    );

    // The budget is back once those connections are gone.
    let client = Client::new();
    let url = herald.broker_url("default", "default");
    let r = client
        .post(
            &url,
            &borrow(&binary_headers("after")),
            binary_body("after"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}
