//! Helpers of the TLS black-box tests: the flags of a Herald with a certificate, starting it
//! (readiness probed over HTTPS), publishing one event and reading a metric over HTTPS.

use http::Method;

use crate::fixtures::{binary_body, binary_headers, borrow};
use crate::tls::{Issued, TlsClient};
use crate::{Herald, HeraldOptions};

/// ALPN offering HTTP/2 first, then HTTP/1.1.
pub const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];

/// `--tls-cert`, `--tls-key` of `server`, then `more`.
pub fn tls_args(server: &Issued, more: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--tls-cert".to_owned(),
        server.cert.display().to_string(),
        "--tls-key".to_owned(),
        server.key.display().to_string(),
    ];
    args.extend(more.iter().map(|s| (*s).to_owned()));
    args
}

/// A Herald on the memory bus with `args`, ready once `client` gets `/readyz` over HTTPS.
pub async fn https_herald(manifests: &str, client: TlsClient, args: Vec<String>) -> Herald {
    Herald::start_with(
        "memory",
        manifests,
        HeraldOptions {
            args,
            https: Some(client),
            ..Default::default()
        },
    )
    .await
}

/// Publishes event `id` to `default/default` on a new connection: the status and the ALPN.
pub async fn publish(
    client: &TlsClient,
    port: u16,
    id: &str,
) -> Result<(u16, Option<Vec<u8>>), String> {
    let headers = binary_headers(id);
    let (response, negotiated) = client
        .request(
            port,
            Method::POST,
            "/default/default",
            &borrow(&headers),
            binary_body(id),
        )
        .await?;
    Ok((response.status, negotiated.alpn))
}

/// The sum of the samples of a metric line prefix, read over HTTPS.
pub async fn metric(client: &TlsClient, port: u16, prefix: &str) -> u64 {
    let (response, _) = client
        .request(port, Method::GET, "/metrics", &[], "")
        .await
        .expect("metrics over https");
    response
        .text()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
