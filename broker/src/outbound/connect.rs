//! The TCP connector of every outbound client: resolve, check each address against the
//! [`EgressPolicy`], and dial exactly the addresses that passed.
//!
//! hyper-util's `HttpConnector` cannot do this: a custom resolver is skipped for IP literals,
//! and a check in the resolver would be separated from the dial by a second resolution.
//! Here the address checked is the address dialled, and a denied one is never dialled.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::egress::EgressPolicy;

/// How long one TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every address the host resolved to is denied by the egress policy.
    #[error("egress_denied: {host} resolves to {addr}, denied by {rule}")]
    EgressDenied {
        host: String,
        addr: IpAddr,
        rule: String,
    },
    #[error("{uri} has no host")]
    NoHost { uri: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

impl ConnectError {
    /// Finds a [`ConnectError::EgressDenied`] in an error's source chain (hyper and
    /// hyper-rustls wrap the connector's error).
    pub fn egress_denied_in<'a>(
        error: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a ConnectError> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found @ ConnectError::EgressDenied { .. }) =
                e.downcast_ref::<ConnectError>()
            {
                return Some(found);
            }
            next = e.source();
        }
        None
    }
}

/// A `tower::Service<Uri>` for hyper-util's legacy client (wrapped by hyper-rustls for TLS).
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    policy: Arc<EgressPolicy>,
    connect_timeout: Duration,
}

impl GuardedConnector {
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self {
            policy,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let host = uri.host().ok_or_else(|| ConnectError::NoHost {
            uri: uri.to_string(),
        })?;
        // `Uri::host` keeps the brackets of an IPv6 literal.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.clone(),
                    source,
                })?
                .collect(),
        };
        let mut denied = None;
        let allowed: Vec<SocketAddr> = candidates
            .into_iter()
            .filter(|addr| match self.policy.denies(addr.ip()) {
                Some(rule) => {
                    denied.get_or_insert((addr.ip(), rule.to_string()));
                    false
                }
                None => true,
            })
            .collect();
        let mut last = match denied {
            Some((addr, rule)) => ConnectError::EgressDenied {
                host: host.clone(),
                addr,
                rule,
            },
            None => ConnectError::NoAddress { host: host.clone() },
        };
        if !allowed.is_empty() && matches!(last, ConnectError::EgressDenied { .. }) {
            tracing::debug!(host = ?host, "some addresses of the host are denied by the egress policy; trying the others");
        }
        for addr in allowed {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Events are small writes answered at once: no Nagle delay.
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(source)) => last = ConnectError::Connect { addr, source },
                Err(_) => {
                    last = ConnectError::Timeout {
                        addr,
                        timeout: self.connect_timeout,
                    }
                }
            }
        }
        Err(last)
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::egress::Cidr;
    use tower_service::Service;

    fn policy(deny: &[&str]) -> Arc<EgressPolicy> {
        let deny: Vec<Cidr> = deny.iter().map(|c| c.parse().unwrap()).collect();
        Arc::new(EgressPolicy::new(&deny, &[]))
    }

    #[tokio::test]
    async fn a_denied_literal_address_is_never_dialled() {
        // Listening on the denied address proves the refusal is the policy's, not the network's.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connector = GuardedConnector::new(policy(&["127.0.0.1/32"]));
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let error = connector.call(uri).await.unwrap_err();
        assert!(
            matches!(error, ConnectError::EgressDenied { .. }),
            "{error}"
        );
        // The backlog is first in, first out: had the connector dialled, its connection
        // would be accepted before this probe's.
        let probe = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, probe.local_addr().unwrap(), "a connection was made");
    }

    #[tokio::test]
    async fn a_hostname_is_checked_on_the_address_it_resolves_to() {
        let mut connector = GuardedConnector::new(policy(&["127.0.0.0/8", "::1/128"]));
        let uri: Uri = "http://localhost:9/".parse().unwrap();
        let error = connector.call(uri).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("egress_denied: localhost resolves to"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_allowed_address_is_dialled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connector = GuardedConnector::new(policy(&["127.0.0.2/32"]));
        let uri: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        connector.call(uri).await.unwrap();
        listener.accept().await.unwrap();
    }

    #[test]
    fn egress_denial_is_found_through_wrapping_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapper(#[source] Box<dyn std::error::Error + Send + Sync>);
        let inner = ConnectError::EgressDenied {
            host: "h".into(),
            addr: "169.254.169.254".parse().unwrap(),
            rule: "default deny 169.254.0.0/16".into(),
        };
        let wrapped = Wrapper(Box::new(inner));
        assert!(ConnectError::egress_denied_in(&wrapped).is_some());
        let other = Wrapper(Box::new(ConnectError::NoAddress { host: "h".into() }));
        assert!(ConnectError::egress_denied_in(&other).is_none());
    }
}
