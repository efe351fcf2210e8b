//! `herald serve` flags of the outbound side: egress policy and Herald's OIDC issuer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald::outbound::egress::{Cidr, EgressPolicy};
use herald::outbound::key_file::{IssuerOptions, load_issuer};
use herald::outbound::tls::Clients;
use herald::outbound::{Outbound, default_issuer_url};

#[derive(Debug, Clone, clap::Args)]
pub struct OutboundArgs {
    /// Refuse deliveries to addresses in this CIDR prefix (repeatable), checked on the
    /// resolved address at connect time. The most specific matching prefix wins; at equal
    /// length deny wins. 169.254.0.0/16, fe80::/10 and fd00:ec2::254/128 are denied unless
    /// allowed explicitly. The environment variable takes a comma-separated list.
    #[arg(long = "egress-deny", env = "HERALD_EGRESS_DENY", value_delimiter = ',', value_name = "CIDR", value_parser = parse_cidr)]
    egress_deny: Vec<Cidr>,
    /// Allow deliveries to addresses in this CIDR prefix (repeatable), overriding a less
    /// specific deny and the built-in defaults of the same prefix.
    #[arg(long = "egress-allow", env = "HERALD_EGRESS_ALLOW", value_delimiter = ',', value_name = "CIDR", value_parser = parse_cidr)]
    egress_allow: Vec<Cidr>,
    /// `iss` of the tokens Herald sends to destinations with an `audience`; its JWKS is served
    /// at /.well-known/jwks.json. Default: http:// and the --listen address (0.0.0.0 read as
    /// localhost).
    #[arg(long, env = "HERALD_ISSUER_URL", value_name = "URL")]
    issuer_url: Option<String>,
    /// PKCS#8 Ed25519 private key (PEM or DER) Herald signs its tokens with. Default: a key
    /// generated once into {--data-dir}/issuer/ed25519.pk8 (mode 0600).
    #[arg(long, env = "HERALD_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Lifetime of the tokens Herald sends (`1h`, `10m`); each is reused per subject and
    /// audience until four fifths of it have passed.
    #[arg(long, env = "HERALD_TOKEN_LIFETIME", default_value = "1h", value_parser = parse_lifetime)]
    token_lifetime: Duration,
}

impl OutboundArgs {
    /// Reads the system roots and the signing key (on the blocking pool).
    pub async fn load(&self, listen: &str, data_dir: &Path) -> anyhow::Result<Outbound> {
        let policy = EgressPolicy::new(&self.egress_deny, &self.egress_allow);
        let options = IssuerOptions {
            url: self
                .issuer_url
                .clone()
                .unwrap_or_else(|| default_issuer_url(listen)),
            signing_key: self.signing_key.clone(),
            data_dir: data_dir.to_owned(),
            lifetime: self.token_lifetime,
        };
        let (clients, issuer) =
            tokio::task::spawn_blocking(move || (Clients::load(policy), load_issuer(&options)))
                .await?;
        Ok(Outbound {
            clients: Arc::new(clients),
            issuer: Arc::new(issuer?),
        })
    }
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse()
        .map_err(|e: herald::outbound::egress::CidrError| e.to_string())
}

/// At least one second: a token must outlive the request it rides on.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = herald::units::parse_duration(text)?;
    if lifetime < Duration::from_secs(1) {
        return Err(format!("{text:?} is shorter than one second"));
    }
    Ok(lifetime)
}
