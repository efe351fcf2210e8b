//! What Herald adds to the HTTP requests it makes to configured destinations (triggers'
//! subscribers, dead-letter sinks, sources' sinks): who it is, a signature, which CAs it
//! trusts, and where it may connect.
//!
//! # Layout
//! - [`egress`]: `--egress-deny`/`--egress-allow` CIDR rules and their precedence.
//! - [`connect`]: the connector that checks the resolved address and dials exactly it.
//! - [`tls`]: a destination's `CACerts` and one client per distinct CA set.
//! - [`signing`]: Standard Webhooks signatures (`herald.dev/delivery.signingSecret`).
//! - [`issuer`], [`key_file`]: Herald's Ed25519 OIDC issuer, its key, its `/.well-known` routes.

pub mod connect;
pub mod egress;
pub mod issuer;
pub mod key_file;
pub mod signing;
pub mod tls;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use url::Url;

use crate::identity::SenderIdentity;
pub use signing::WebhookSigner;
pub use tls::CaCerts;

/// A URL destination with Knative's `Destination.audience` and `Destination.CACerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Url,
    /// The `aud` of the bearer token sent with each request; none: no token.
    pub audience: Option<String>,
    /// Certificates trusted for this destination besides the system roots.
    pub ca_certs: Option<CaCerts>,
}

impl Endpoint {
    /// `url` with a destination's `audience` and `CACerts`; an error names the field
    /// (`audience` or `CACerts`) and the problem.
    pub fn with_destination(
        url: Url,
        audience: Option<&str>,
        ca_certs: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        if let Some(audience) = audience
            && (audience.is_empty() || audience.chars().any(char::is_control))
        {
            return Err((
                "audience",
                "must be non-empty text without control characters".into(),
            ));
        }
        let ca_certs = ca_certs
            .map(CaCerts::from_pem)
            .transpose()
            .map_err(|e| ("CACerts", e.to_string()))?;
        Ok(Self {
            url,
            audience: audience.map(str::to_owned),
            ca_certs,
        })
    }
}

impl From<Url> for Endpoint {
    fn from(url: Url) -> Self {
        Self {
            url,
            audience: None,
            ca_certs: None,
        }
    }
}

impl FromStr for Endpoint {
    type Err = url::ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Url::parse(text).map(Self::from)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}

/// On whose behalf a request is made: the token's subject, the metric label, the signer.
#[derive(Debug, Clone)]
pub struct SendAs {
    /// `system:serviceaccount:{ns}:herald-{kind}-{name}`.
    pub subject: String,
    /// `trigger NS/NAME` or `source NS/NAME`: the `sender` label of delivery failure metrics.
    pub label: String,
    pub signer: Option<Arc<WebhookSigner>>,
}

impl SendAs {
    /// For a Herald resource (`Trigger`, `PingSource`, ...); `role` is `trigger` or `source`.
    pub fn resource(
        kind: &str,
        namespace: &str,
        name: &str,
        role: &str,
        signer: Option<Arc<WebhookSigner>>,
    ) -> Self {
        Self {
            subject: SenderIdentity::resource(kind, namespace, name).subject,
            label: format!("{role} {namespace}/{name}"),
            signer,
        }
    }
}

/// Labels of `herald_delivery_failures_total`: the sender from configuration, a closed reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct FailureLabels {
    /// `trigger NS/NAME` or `source NS/NAME`.
    pub sender: String,
    /// `egress_denied`, `connect`, `timeout` or `status`.
    pub reason: &'static str,
}

/// The outbound side `herald serve` builds from its flags (blocking: system roots, key file).
#[derive(Debug, Clone)]
pub struct Outbound {
    pub clients: Arc<tls::Clients>,
    pub issuer: Arc<issuer::Issuer>,
}

/// The sender of a running Herald, with a client already built for every CA set the
/// configuration names; without `outbound`, the defaults and an in-memory issuer key.
pub async fn sender_for(
    outbound: Option<Outbound>,
    metrics: &crate::metrics::Metrics,
    config: &crate::config::Config,
) -> anyhow::Result<crate::dispatch::sender::Sender> {
    let outbound = match outbound {
        Some(o) => o,
        None => {
            let clients =
                tokio::task::spawn_blocking(|| tls::Clients::load(Default::default())).await?;
            Outbound {
                clients: Arc::new(clients),
                issuer: Arc::new(issuer::Issuer::ephemeral(
                    "http://localhost",
                    issuer::DEFAULT_TOKEN_LIFETIME,
                )),
            }
        }
    };
    let sender = crate::dispatch::sender::Sender::new(
        outbound.clients,
        outbound.issuer,
        metrics.delivery_failures.clone(),
    );
    let triggers = config
        .triggers
        .iter()
        .flat_map(|t| [Some(&t.subscriber), t.delivery.dead_letter.as_ref()]);
    let sources = config.sources.iter().map(|s| Some(&s.sink));
    for target in triggers.chain(sources).flatten() {
        if let crate::config::Target::Url(endpoint) = target {
            sender.prepare(endpoint);
        }
    }
    Ok(sender)
}

/// `--issuer-url` unless set: `http://` and the `--listen` address, an unspecified IP
/// (`0.0.0.0`, `[::]`) read as `localhost`.
pub fn default_issuer_url(listen: &str) -> String {
    let host_port = match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => format!("localhost:{}", addr.port()),
        Ok(addr) => addr.to_string(),
        Err(_) => listen.to_owned(),
    };
    format!("http://{host_port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_issuer_url_follows_the_listen_address() {
        assert_eq!(default_issuer_url("0.0.0.0:8080"), "http://localhost:8080");
        assert_eq!(default_issuer_url("[::]:9000"), "http://localhost:9000");
        assert_eq!(
            default_issuer_url("127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn a_destination_audience_must_be_plain_text() {
        let url: Url = "http://h/".parse().unwrap();
        for bad in ["", "a\nb"] {
            let error = Endpoint::with_destination(url.clone(), Some(bad), None).unwrap_err();
            assert_eq!(error.0, "audience");
        }
        let ok = Endpoint::with_destination(url, Some("billing"), None).unwrap();
        assert_eq!(ok.audience.as_deref(), Some("billing"));
    }
}
