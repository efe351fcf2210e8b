//! Certificate rotation end to end with the built `herald` binary: the served pair replaced
//! while a keep-alive HTTP/2 client publishes, then a broken pair refused.

use std::time::Duration;

use herald_tests::eventually;
use herald_tests::fixtures::{binary_body, binary_headers, borrow};
use herald_tests::https::{BOTH, https_herald, metric, tls_args};
use herald_tests::tls::{Ca, Issued, TlsClient};
use http::Method;

/// Writes a new certificate pair over the served one: key and certificate each replaced
/// whole (written beside, then renamed), the key first.
fn replace_pair(served: &Issued, new: &Issued) {
    for (from, to) in [(&new.key, &served.key), (&new.cert, &served.cert)] {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_rotate_under_a_publishing_client_and_a_broken_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let served = ca.server("served");
    let first_der = served.der();
    let second = ca.server("second");
    let client = TlsClient::new(&ca.pem(), BOTH, None);
    let herald = https_herald(
        "",
        client.clone(),
        tls_args(&served, &["--tls-reload-interval", "100ms"]),
    )
    .await;
    let port = herald.port();

    // One keep-alive HTTP/2 connection keeps publishing through the rotation.
    let mut session = client.connect(port).await.unwrap();
    assert_eq!(session.negotiated.server_cert, first_der);
    // It goes on until the rotation was seen plus 20 more requests (at most 3000 in all).
    let rotated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_rotation = rotated.clone();
    let publishing = tokio::spawn(async move {
        let (mut statuses, mut after) = (Vec::new(), 0);
        for n in 0..3000 {
            let id = format!("kept-{n}");
            let headers = binary_headers(&id);
            let status = session
                .send(
                    Method::POST,
                    "/default/default",
                    &borrow(&headers),
                    binary_body(&id),
                )
                .await
                .map(|r| r.status);
            statuses.push(status);
            if seen_rotation.load(std::sync::atomic::Ordering::Acquire) {
                after += 1;
                if after == 20 {
                    break;
                }
            }
        }
        (session, statuses, after)
    });
    replace_pair(&served, &second);
    let (client_ref, second_der) = (&client, second.der());
    eventually(
        Duration::from_secs(20),
        "a new handshake with the new certificate",
        || {
            let want = second_der.clone();
            async move {
                let session = client_ref.connect(port).await.ok()?;
                (session.negotiated.server_cert == want).then_some(())
            }
        },
    )
    .await;
    rotated.store(true, std::sync::atomic::Ordering::Release);
    let (mut session, statuses, after) = publishing.await.unwrap();
    assert_eq!(
        after, 20,
        "the client published before and after the rotation"
    );
    let failed: Vec<_> = statuses.iter().filter(|s| !matches!(s, Ok(202))).collect();
    assert!(
        failed.is_empty(),
        "requests of the running client failed: {failed:?}"
    );
    // The old connection still works, with the session it negotiated.
    let headers = binary_headers("old-session-after");
    let status = session
        .send(
            Method::POST,
            "/default/default",
            &borrow(&headers),
            binary_body("x"),
        )
        .await
        .unwrap()
        .status;
    assert_eq!(status, 202);
    let client_ref = &client;
    eventually(
        Duration::from_secs(10),
        "the reload counted",
        || async move {
            let loaded = metric(
                client_ref,
                port,
                "herald_tls_reloads_total{outcome=\"loaded\"}",
            )
            .await;
            (loaded >= 1).then_some(())
        },
    )
    .await;

    // A broken pair (a key of another certificate): logged, counted, the current one stays.
    let failed_before = metric(
        &client,
        port,
        "herald_tls_reloads_total{outcome=\"failed\"}",
    )
    .await;
    let stranger = ca.server("stranger");
    std::fs::copy(&stranger.key, served.key.with_extension("staged")).unwrap();
    std::fs::rename(served.key.with_extension("staged"), &served.key).unwrap();
    let client_ref = &client;
    eventually(
        Duration::from_secs(20),
        "the broken pair counted",
        || async move {
            let now = metric(
                client_ref,
                port,
                "herald_tls_reloads_total{outcome=\"failed\"}",
            )
            .await;
            (now > failed_before).then_some(())
        },
    )
    .await;
    let fresh = client.connect(port).await.unwrap();
    assert_eq!(fresh.negotiated.server_cert, second.der());
    let stderr = herald.stderr();
    assert!(stderr.contains("TLS certificate not reloaded"), "{stderr}");
    assert!(
        !stderr.contains("PRIVATE KEY"),
        "key material in the log: {stderr}"
    );
}
