//! Authorization: the EventPolicies selecting each broker, the default mode for brokers none
//! selects, and the decision on a request's events (all or nothing).
//!
//! The compiled table sits behind [`Authorizer`], which a configuration reload swaps whole
//! ([`Authorizer::replace`]): a request sees either the old or the new table, never a mix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use cloudevents::{AttributesReader, Event};

use crate::config::policies::{EventPolicyConfig, PolicyTarget};
use crate::config::{BrokerConfig, BrokerId};
use crate::identity::SenderIdentity;

/// `--default-authorization-mode`: what applies to a broker no EventPolicy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DefaultMode {
    AllowAll,
    /// Knative's default: subjects `system:serviceaccount:{namespace}:...` of the broker's
    /// namespace (Herald's own resources there included).
    #[default]
    AllowSameNamespace,
    DenyAll,
}

impl DefaultMode {
    fn name(self) -> &'static str {
        match self {
            DefaultMode::AllowAll => "allow-all",
            DefaultMode::AllowSameNamespace => "allow-same-namespace",
            DefaultMode::DenyAll => "deny-all",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No identity where one is needed (401).
    Unauthenticated,
    /// An identity the policies do not admit, or an event their filters refuse (403).
    Forbidden(String),
}

/// The policies of every broker, compiled once per configuration.
#[derive(Debug, Default)]
pub struct AccessTable {
    /// Off when no authentication is configured and no policy exists: Herald accepts every
    /// request as before authorization existed.
    enforce: bool,
    /// Senders are authenticated (issuers or client certificates): kept across reloads.
    authentication: bool,
    mode: DefaultMode,
    per_broker: HashMap<BrokerId, Vec<Arc<EventPolicyConfig>>>,
}

impl AccessTable {
    /// `authentication`: an `--oidc-issuer` or client certificates are configured.
    pub fn compile(
        brokers: &[BrokerConfig],
        policies: &[EventPolicyConfig],
        mode: DefaultMode,
        authentication: bool,
    ) -> Self {
        let policies: Vec<Arc<EventPolicyConfig>> =
            policies.iter().cloned().map(Arc::new).collect();
        let mut per_broker = HashMap::new();
        for broker in brokers {
            let selecting: Vec<_> = policies
                .iter()
                .filter(|p| selects(p, broker))
                .cloned()
                .collect();
            if !selecting.is_empty() {
                per_broker.insert(broker.id.clone(), selecting);
            }
        }
        Self {
            enforce: authentication || !policies.is_empty(),
            authentication,
            mode,
            per_broker,
        }
    }

    /// Whether authorization applies at all.
    pub fn enforced(&self) -> bool {
        self.enforce
    }

    /// May `identity` publish `events` to `broker`? Every event must be admitted.
    pub fn decide(
        &self,
        broker: &BrokerId,
        identity: Option<&SenderIdentity>,
        events: &[Event],
    ) -> Result<(), Denial> {
        if !self.enforce || internal_hop(broker) {
            return Ok(());
        }
        let Some(policies) = self.per_broker.get(broker) else {
            return self.default_decision(broker, identity);
        };
        let identity = identity.ok_or(Denial::Unauthenticated)?;
        let admitting: Vec<&EventPolicyConfig> = policies
            .iter()
            .filter(|p| p.from.iter().any(|m| m.matches(&identity.subject)))
            .map(|p| p.as_ref())
            .collect();
        if admitting.is_empty() {
            return Err(Denial::Forbidden(format!(
                "no EventPolicy selecting broker {broker} admits subject {:?}",
                identity.subject
            )));
        }
        for (index, event) in events.iter().enumerate() {
            if !admitting.iter().any(|p| p.filter.matches(event)) {
                return Err(Denial::Forbidden(format!(
                    "event {index} (id {:?}) does not pass the filters of the EventPolicies \
                     admitting subject {:?} to broker {broker}",
                    event.id(),
                    identity.subject
                )));
            }
        }
        Ok(())
    }

    /// May `identity` publish anything at all to `broker` (the webhook handshake)?
    pub fn may_send(&self, broker: &BrokerId, identity: Option<&SenderIdentity>) -> bool {
        if !self.enforce || internal_hop(broker) {
            return true;
        }
        match self.per_broker.get(broker) {
            None => self.default_decision(broker, identity).is_ok(),
            Some(policies) => identity.is_some_and(|id| {
                policies
                    .iter()
                    .any(|p| p.from.iter().any(|m| m.matches(&id.subject)))
            }),
        }
    }

    fn default_decision(
        &self,
        broker: &BrokerId,
        identity: Option<&SenderIdentity>,
    ) -> Result<(), Denial> {
        match self.mode {
            DefaultMode::AllowAll => Ok(()),
            DefaultMode::DenyAll => Err(Denial::Forbidden(format!(
                "no EventPolicy selects broker {broker} and the default authorization mode is \
                 deny-all"
            ))),
            DefaultMode::AllowSameNamespace => {
                let identity = identity.ok_or(Denial::Unauthenticated)?;
                let prefix = format!("system:serviceaccount:{}:", broker.namespace);
                if identity.subject.starts_with(&prefix) {
                    Ok(())
                } else {
                    Err(Denial::Forbidden(format!(
                        "subject {:?} is not a service account of namespace {:?} (no \
                         EventPolicy selects broker {broker}; default authorization mode {})",
                        identity.subject,
                        broker.namespace,
                        self.mode.name()
                    )))
                }
            }
        }
    }
}

/// A flow's internal channel is published to by the flow's own subscriptions only (ingress
/// does not serve it): the policies of the flow's entry decided when the event came in.
fn internal_hop(broker: &BrokerId) -> bool {
    broker.kind == crate::config::AddressKind::FlowChannel
}

/// Does `policy` apply to `broker`? Only brokers of the policy's namespace; an empty `to`
/// selects all of them.
fn selects(policy: &EventPolicyConfig, broker: &BrokerConfig) -> bool {
    if policy.namespace != broker.id.namespace {
        return false;
    }
    policy.to.is_empty()
        || policy.to.iter().any(|target| match target {
            PolicyTarget::Ref(kind, name) => *kind == broker.id.kind && *name == broker.id.name,
            PolicyTarget::Selector(kind, selector) => {
                kind.is_none_or(|k| k == broker.id.kind) && selector.matches(&broker.labels)
            }
        })
}

/// The current [`AccessTable`], swappable while Herald runs.
#[derive(Debug, Default)]
pub struct Authorizer {
    table: RwLock<Arc<AccessTable>>,
    /// The table's [`AccessTable::enforced`], readable without the lock: with no
    /// authorization configured a request costs one relaxed load.
    enforced: AtomicBool,
}

impl Authorizer {
    pub fn new(table: AccessTable) -> Self {
        Self {
            enforced: AtomicBool::new(table.enforced()),
            table: RwLock::new(Arc::new(table)),
        }
    }

    /// Whether authorization applies at all (see [`AccessTable::enforced`]).
    pub fn enforced(&self) -> bool {
        self.enforced.load(Ordering::Relaxed)
    }

    pub fn current(&self) -> Arc<AccessTable> {
        self.table.read().expect("not poisoned").clone()
    }

    /// Installs a new table (a configuration reload); requests already deciding keep the old.
    pub fn replace(&self, table: AccessTable) {
        let mut current = self.table.write().expect("not poisoned");
        self.enforced.store(table.enforced(), Ordering::Relaxed);
        *current = Arc::new(table);
    }

    /// Recompiles for a new configuration (brokers and policies), keeping the default mode
    /// and whether senders are authenticated.
    pub fn reload(&self, config: &crate::config::Config) {
        let current = self.current();
        self.replace(AccessTable::compile(
            &config.brokers,
            &config.policies,
            current.mode,
            current.authentication,
        ));
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
