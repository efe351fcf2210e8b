//! The `status` of every running resource, with Knative's condition names.
//!
//! Broker: `Ready`, `Addressable`. Trigger: `Ready`, `BrokerReady`, `SubscriberResolved`,
//! `DependencyReady`, `SubscriptionReady` (Knative's `TriggerCondition*` names), and Herald's
//! own `Paused` and `Delivering` (its last delivery error). Channel, Sequence, Parallel:
//! `Ready`, `Addressable`. Subscription: `Ready`, `ReferencesResolved`, `ChannelReady`,
//! `AddedToChannel` (and `Paused`, `Delivering`). Sources: `Ready`, `SinkProvided`. Everything in a running configuration was
//! resolved (brokers exist, subscribers and sinks resolved), so those conditions are `True`;
//! what can be false is whether the dispatchers are subscribed (`/readyz`'s reasons).

use super::{Condition, ResourceStatus};
use crate::config::{AddressKind, Config, DispatcherKind};
use crate::dispatch::health::LastError;
use crate::dispatch::supervise;

const EVENTING: &str = "eventing.knative.dev";
const SOURCES: &str = "sources.knative.dev";
const MESSAGING: &str = "messaging.knative.dev";
const FLOWS: &str = "flows.knative.dev";

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message,
    }
}

fn ok(kind: &str) -> Condition {
    condition(kind, true, None, None)
}

/// The status of every resource of `config`; `unready` is `/readyz`'s `task: reason` lines,
/// `base` where brokers are reachable (`http://host:port`), `last_error` a trigger's last
/// failed delivery attempt (by `namespace/name`).
pub fn of(
    config: &Config,
    unready: &[String],
    base: Option<&str>,
    last_error: &dyn Fn(&str) -> Option<LastError>,
) -> Vec<ResourceStatus> {
    let mut all = Vec::new();
    for broker in &config.brokers {
        // The id's Display is its ingress path (`ns/name`, `channels/ns/name`, ...).
        // A flow's internal channel is not served over HTTP: no address.
        let address = base
            .filter(|_| broker.id.kind != AddressKind::FlowChannel)
            .map(|b| format!("{b}/{}", broker.id));
        let (group, kind) = match broker.id.kind {
            AddressKind::Broker => (EVENTING, "Broker"),
            AddressKind::Channel | AddressKind::FlowChannel => (MESSAGING, "Channel"),
            AddressKind::Sequence => (FLOWS, "Sequence"),
            AddressKind::Parallel => (FLOWS, "Parallel"),
        };
        all.push(ResourceStatus {
            group: group.into(),
            kind: kind.into(),
            namespace: broker.id.namespace.clone(),
            name: broker.id.name.clone(),
            conditions: vec![ok("Ready"), ok("Addressable")],
            address,
        });
    }
    for trigger in &config.triggers {
        let label = trigger.to_string();
        let reasons: Vec<&str> = supervise::task_names(&label)
            .iter()
            .flat_map(|task| {
                let prefix = format!("{task}: ");
                unready
                    .iter()
                    .filter_map(move |line| line.strip_prefix(&prefix).map(|_| line.as_str()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let subscribed = reasons.is_empty();
        let message = (!subscribed).then(|| reasons.join("; "));
        let mut conditions = vec![condition(
            "Ready",
            subscribed,
            (!subscribed).then_some("NotSubscribed"),
            message.clone(),
        )];
        let subscription = trigger.kind == DispatcherKind::Subscription;
        // Knative's SubscriptionCondition* names for a subscription.
        let resolved: &[&str] = if subscription {
            &["ReferencesResolved", "ChannelReady"]
        } else {
            &["BrokerReady", "SubscriberResolved", "DependencyReady"]
        };
        conditions.extend(resolved.iter().map(|kind| ok(kind)));
        conditions.push(condition(
            if subscription {
                "AddedToChannel"
            } else {
                "SubscriptionReady"
            },
            subscribed,
            (!subscribed).then_some("NotSubscribed"),
            message,
        ));
        conditions.push(condition(
            "Paused",
            trigger.paused,
            Some(if trigger.paused { "Paused" } else { "Running" }),
            trigger
                .paused
                .then(|| "herald.dev/paused is \"true\": nothing is delivered".to_owned()),
        ));
        conditions.push(delivering(last_error(&label)));
        all.push(ResourceStatus {
            group: if subscription { MESSAGING } else { EVENTING }.into(),
            kind: trigger.kind.name().into(),
            namespace: trigger.namespace.clone(),
            name: trigger.name.clone(),
            conditions,
            address: None,
        });
    }
    let sources_down = unready.iter().any(|l| l.starts_with("sources: "));
    for source in &config.sources {
        all.push(ResourceStatus {
            group: SOURCES.into(),
            kind: source.kind_name().into(),
            namespace: source.namespace.clone(),
            name: source.name.clone(),
            conditions: vec![
                condition(
                    "Ready",
                    !sources_down,
                    sources_down.then_some("SourceTaskStopped"),
                    None,
                ),
                ok("SinkProvided"),
            ],
            address: None,
        });
    }
    all
}

/// Herald's `Delivering` condition (Knative has none for it): `False` with reason
/// `DeliveryFailed` while no delivery succeeded since the last failed attempt, whose error is
/// the message; `True` otherwise, the message keeping the last error if there was one.
fn delivering(last_error: Option<LastError>) -> Condition {
    match last_error {
        None => condition("Delivering", true, None, None),
        Some(e) => {
            let at = e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if e.failing {
                condition(
                    "Delivering",
                    false,
                    Some("DeliveryFailed"),
                    Some(format!("last attempt failed at {at}: {}", e.message)),
                )
            } else {
                condition(
                    "Delivering",
                    true,
                    Some("Recovered"),
                    Some(format!("last error at {at}: {}", e.message)),
                )
            }
        }
    }
}
