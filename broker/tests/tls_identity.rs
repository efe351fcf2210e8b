//! mTLS puts the client certificate's subject (RFC 4514) in every request's extensions as a
//! `SenderIdentity`, over HTTP/1.1 and HTTP/2: the listener's serve loop with a router that
//! echoes what it finds, certificates made by `openssl`, a rustls client.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use herald::identity::{IdentityOrigin, SenderIdentity};
use herald::listener::{ListenerOptions, TlsOptions, serve};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ca.pem`/`ca.key`, then `{name}.pem`/`{name}.key` signed by it with `subject` and `ext`.
#[allow(
    clippy::disallowed_methods,
    reason = "test setup: files written before any server runs"
)]
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend(["-subj", "/CN=Identity Test CA"]);
    openssl(dir, &ca);
    for (name, subject, ext) in [
        (
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        // Most specific last in openssl's form, first in RFC 4514; a comma to escape.
        (
            "client",
            "/C=DE/O=Shop\\, Inc./OU=billing/CN=orders",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut req = vec!["req", "-keyout", &key, "-out", &csr, "-subj", subject];
        req.extend(ec);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ],
        );
    }
}

async fn who(identity: Option<axum::Extension<SenderIdentity>>) -> String {
    match identity {
        Some(axum::Extension(SenderIdentity {
            subject,
            origin: IdentityOrigin::ClientCertificate,
        })) => subject,
        Some(other) => format!("unexpected {other:?}"),
        None => "anonymous".into(),
    }
}

async fn ask(dir: &Path, port: u16, alpn: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    let io = TokioIo::new(tls);
    let request = http::Request::get("https://localhost/who")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if alpn == b"h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_certificate_subject_is_the_sender_identity_over_http1_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let mut tls = TlsOptions::new(dir.path().join("server.pem"), dir.path().join("server.key"));
    tls.client_ca = Some(dir.path().join("ca.pem"));
    let tls = Arc::new(
        herald::listener::TlsServer::load(tls, Default::default())
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/who", get(who));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        app,
        ListenerOptions::default(),
        1 << 20,
        Some(tls),
        async move {
            let _ = stopped.await;
        },
    ));
    let expected = "CN=orders,OU=billing,O=Shop\\, Inc.,C=DE";
    assert_eq!(ask(dir.path(), port, b"http/1.1").await, expected);
    assert_eq!(ask(dir.path(), port, b"h2").await, expected);
    let _ = stop.send(());
    server.await.unwrap();
}
