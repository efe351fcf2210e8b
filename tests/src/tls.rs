//! TLS for the black-box tests: certificates made by `openssl` (a CA, server certificates
//! for 127.0.0.1/localhost, client certificates), and a client that verifies the server's
//! chain against a given CA, offers ALPN, optionally presents a client certificate, and
//! reports what it negotiated and which certificate the server showed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::client::{REQUEST_TIMEOUT, Response};

/// Runs `openssl ARGS...` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority in a directory: `{name}.pem`, `{name}.key`.
#[derive(Debug, Clone)]
pub struct Ca {
    pub dir: PathBuf,
    pub name: String,
}

/// A certificate and its key, issued by a [`Ca`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// The DER of the (first) certificate in the file.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_file(&self.cert)
            .expect("read certificate")
            .to_vec()
    }
}

impl Ca {
    /// A new self-signed P-256 CA `CN=Herald Test {name}`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN=Herald Test {name}"),
            ],
        );
        Ca {
            dir: dir.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A server certificate `file.pem`/`file.key` for 127.0.0.1 and localhost.
    pub fn server(&self, file: &str) -> Issued {
        self.issue(
            file,
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate with subject `subject` (openssl's `/O=shop/CN=orders` form).
    pub fn client(&self, file: &str, subject: &str) -> Issued {
        self.issue(file, subject, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, file: &str, subject: &str, extensions: &str) -> Issued {
        let ext = format!("{file}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}"),
        )
        .expect("write extensions");
        let (csr, key, cert) = (
            format!("{file}.csr"),
            format!("{file}.key"),
            format!("{file}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-set_serial",
                &format!("{}", fastrand_serial()),
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext,
            ],
        );
        Issued {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}

/// A distinct serial per certificate (nanoseconds since the epoch are unique enough here).
fn fastrand_serial() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// A client that trusts one CA only.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

/// What one connection negotiated.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub alpn: Option<Vec<u8>>,
    /// The DER of the server's leaf certificate.
    pub server_cert: Vec<u8>,
}

/// An open HTTPS connection speaking what ALPN chose.
pub struct Session {
    pub negotiated: Negotiated,
    sender: Sender,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl TlsClient {
    /// Trusts `ca`; offers `alpn` (e.g. `[b"h2", b"http/1.1"]`); presents `client` if given.
    pub fn new(ca: &Path, alpn: &[&[u8]], client: Option<&Issued>) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(issued) => {
                let chain = CertificateDer::pem_file_iter(&issued.cert)
                    .expect("client cert")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert PEM");
                let key = PrivateKeyDer::from_pem_file(&issued.key).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every connection a full handshake: a resumed session shows no certificate (rustls
        // reports the one it was made with), and the tests look at what the server sends now.
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Connects to `127.0.0.1:port` and completes the handshake. Under TLS 1.3 the server
    /// judges a client certificate after the client's side of the handshake is done: a
    /// refusal then shows as the first request failing.
    pub async fn connect(&self, port: u16) -> Result<Session, String> {
        let connecting = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(self.config.clone());
            let name = ServerName::try_from("localhost").expect("server name");
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let (_, session) = tls.get_ref();
            let negotiated = Negotiated {
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                server_cert: session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec())
                    .unwrap_or_default(),
            };
            let io = TokioIo::new(tls);
            let sender = if negotiated.alpn.as_deref() == Some(b"h2".as_slice()) {
                let (sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("h2 handshake: {e}"))?;
                tokio::spawn(connection);
                Sender::H2(sender)
            } else {
                let (sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("http1 handshake: {e}"))?;
                tokio::spawn(connection);
                Sender::H1(sender)
            };
            Ok(Session { negotiated, sender })
        };
        tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| "no handshake within 10s".to_owned())?
    }

    /// One request on a new connection.
    pub async fn request(
        &self,
        port: u16,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<(Response, Negotiated), String> {
        let mut session = self.connect(port).await?;
        let response = session.send(method, path, headers, body).await?;
        Ok((response, session.negotiated))
    }
}

impl Session {
    /// Whether the server closed this connection (HTTP/2: after GOAWAY).
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Sends one request on this connection and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"));
        if matches!(self.sender, Sender::H1(_)) {
            request = request.uri(path).header("host", "localhost");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|e| format!("{e:?}"))?;
                    s.send_request(request).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|e| format!("{e:?}"))?;
                    s.send_request(request).await
                }
            }
            .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }
}
