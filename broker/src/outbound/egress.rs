//! The egress policy: which resolved addresses Herald may connect to for a delivery.
//!
//! Rules are CIDR prefixes that deny or allow. The most specific prefix matching an address
//! decides; at equal length an operator's rule beats a built-in default, and deny beats allow.
//! An address no rule matches is allowed. The built-in defaults deny link-local and cloud
//! metadata ranges, so a subscriber URL cannot reach `169.254.169.254` unless an operator
//! allows it explicitly.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Denied unless an operator allows them: IPv4 and IPv6 link-local (cloud metadata services
/// answer on `169.254.169.254`) and AWS's IPv6 metadata address.
pub const DEFAULT_DENY: [&str; 3] = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"];

/// An IP prefix such as `10.0.0.0/8` or `fd00::/8`; a bare address is its host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{text:?} is not an IP address or prefix (like 10.0.0.0/8 or fd00::/8)")]
    Syntax { text: String },
    #[error("{text:?}: prefix length {len} is longer than {max} bits")]
    TooLong { text: String, len: u32, max: u32 },
    #[error("{text:?} has bits set after the prefix; the network is {network}/{len}")]
    HostBits {
        text: String,
        network: IpAddr,
        len: u8,
    },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax {
            text: text.to_owned(),
        };
        let (addr, len) = match text.trim().split_once('/') {
            Some((addr, len)) => {
                let len: u32 = len.parse().map_err(|_| syntax())?;
                (addr, Some(len))
            }
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| syntax())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(CidrError::TooLong {
                text: text.to_owned(),
                len,
                max,
            });
        }
        let cidr = Cidr {
            network,
            len: len as u8,
        };
        let masked = cidr.masked(network);
        if masked != network {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                network: masked,
                len: cidr.len,
            });
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl Cidr {
    /// `addr` with the bits after this prefix's length cleared.
    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.network.is_ipv4() && self.masked(addr) == self.network
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// One rule and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub cidr: Cidr,
    pub action: Action,
    /// A built-in default (loses to an operator's rule of the same length).
    pub default: bool,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        };
        let origin = if self.default {
            "default "
        } else {
            "--egress-"
        };
        write!(f, "{origin}{action} {}", self.cidr)
    }
}

/// `--egress-deny`, `--egress-allow` and the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    rules: Vec<Rule>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self::new(&[], &[])
    }
}

impl EgressPolicy {
    pub fn new(deny: &[Cidr], allow: &[Cidr]) -> Self {
        let defaults = DEFAULT_DENY.iter().map(|text| Rule {
            cidr: text.parse().expect("built-in prefixes parse"),
            action: Action::Deny,
            default: true,
        });
        let operator = |cidrs: &[Cidr], action| {
            cidrs
                .iter()
                .map(move |cidr| Rule {
                    cidr: *cidr,
                    action,
                    default: false,
                })
                .collect::<Vec<_>>()
        };
        let mut rules: Vec<Rule> = defaults.collect();
        rules.extend(operator(deny, Action::Deny));
        rules.extend(operator(allow, Action::Allow));
        Self { rules }
    }

    /// The rule that denies `addr`, if one does. IPv4-mapped IPv6 addresses
    /// (`::ffff:169.254.169.254`) are checked as the IPv4 address they reach.
    pub fn denies(&self, addr: IpAddr) -> Option<&Rule> {
        let addr = addr.to_canonical();
        let winner = self
            .rules
            .iter()
            .filter(|r| r.cidr.contains(addr))
            .max_by_key(|r| (r.cidr.len, !r.default, r.action == Action::Deny))?;
        (winner.action == Action::Deny).then_some(winner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_and_bad_ones_are_named() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.2".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.2/32"
        );
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert!(matches!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits { .. })
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::TooLong { .. })
        ));
        for bad in ["", "10.0.0/8", "10.0.0.0/", "example.com/8", "10.0.0.0/-1"] {
            assert!(
                matches!(bad.parse::<Cidr>(), Err(CidrError::Syntax { .. })),
                "{bad}"
            );
        }
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::1")));
    }

    #[test]
    fn metadata_and_link_local_are_denied_by_default() {
        let policy = EgressPolicy::default();
        for denied in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(policy.denies(ip(denied)).is_some(), "{denied}");
        }
        for allowed in ["127.0.0.1", "10.1.2.3", "::1", "fd00:ec2::253"] {
            assert!(policy.denies(ip(allowed)).is_none(), "{allowed}");
        }
    }

    #[test]
    fn the_most_specific_prefix_wins_and_deny_wins_a_tie() {
        let policy = EgressPolicy::new(
            &cidrs(&["10.0.0.0/8", "10.1.1.1/32"]),
            &cidrs(&["10.1.0.0/16", "10.1.1.1/32"]),
        );
        assert!(policy.denies(ip("10.2.0.1")).is_some());
        assert!(policy.denies(ip("10.1.0.1")).is_none());
        assert_eq!(
            policy.denies(ip("10.1.1.1")).unwrap().to_string(),
            "--egress-deny 10.1.1.1/32"
        );
    }

    #[test]
    fn an_explicit_allow_overrides_a_default_deny() {
        let policy = EgressPolicy::new(&[], &cidrs(&["169.254.0.0/16"]));
        assert!(policy.denies(ip("169.254.169.254")).is_none());
        let narrow = EgressPolicy::new(&[], &cidrs(&["169.254.10.0/24"]));
        assert!(narrow.denies(ip("169.254.10.7")).is_none());
        assert!(narrow.denies(ip("169.254.169.254")).is_some());
    }

    proptest::proptest! {
        /// A prefix prints as it parses, and contains exactly the addresses that share its
        /// first `len` bits.
        #[test]
        fn prefixes_round_trip_and_contain_what_shares_their_bits(
            network in proptest::prelude::any::<u32>(),
            len in 0u8..=32,
            probe in proptest::prelude::any::<u32>(),
        ) {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let text = format!("{}/{len}", std::net::Ipv4Addr::from(network & mask));
            let cidr: Cidr = text.parse().unwrap();
            proptest::prop_assert_eq!(cidr.to_string(), text);
            let inside = (probe & mask) == (network & mask);
            proptest::prop_assert_eq!(cidr.contains(IpAddr::V4(probe.into())), inside);
        }

        #[test]
        fn ipv6_prefixes_round_trip_and_contain_what_shares_their_bits(
            network in proptest::prelude::any::<u128>(),
            len in 0u8..=128,
            probe in proptest::prelude::any::<u128>(),
        ) {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let cidr: Cidr = format!("{}/{len}", std::net::Ipv6Addr::from(network & mask)).parse().unwrap();
            let inside = (probe & mask) == (network & mask);
            proptest::prop_assert_eq!(cidr.contains(IpAddr::V6(probe.into())), inside);
        }
    }
}
