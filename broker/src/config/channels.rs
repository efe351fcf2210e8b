//! Channels, Subscriptions, Sequences and Parallels, compiled into the machinery brokers and
//! triggers already have.
//!
//! - A channel (`Channel`, `InMemoryChannel`, `KafkaChannel`) is a [`BrokerConfig`] of
//!   [`AddressKind::Channel`]: a topic on the bus (`knative-channel-{ns}-{name}`) served at
//!   `/channels/{ns}/{name}`.
//! - A `Subscription` is a [`TriggerConfig`] of [`DispatcherKind::Subscription`]: no filter, the
//!   channel's `spec.delivery` as its fallback, the reply to `spec.reply` or dropped.
//! - A `Sequence` or `Parallel` is expanded (in [`super::flows`]), as Knative's reconcilers do, into internal channels
//!   and subscriptions with Knative's names, plus an entry address of its own (an alias of its
//!   first channel's topic): every hop is durable and retried on its own.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::load::{ConfigError, Located};
use super::model::*;
use super::resolve::{Resolver, check_name, destination, dispatch_settings, namespace, overrides};
use super::resources::{DeliverySpec, Destination, KReference, Manifest};
use crate::filter::Filter;

/// The `kind` of a `ref` Herald resolves in-process, as the address it names.
pub fn address_kind(kind: &str) -> Option<AddressKind> {
    match kind {
        "Broker" => Some(AddressKind::Broker),
        "Channel" | "InMemoryChannel" | "KafkaChannel" => Some(AddressKind::Channel),
        "Sequence" => Some(AddressKind::Sequence),
        "Parallel" => Some(AddressKind::Parallel),
        _ => None,
    }
}

/// `spec` of `Channel`, `InMemoryChannel` and `KafkaChannel`.
#[allow(
    dead_code,
    reason = "fields Herald accepts and has no use for are read to be checked"
)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelSpec {
    /// `Channel` only: the backing channel's kind; Herald maps every kind onto its bus.
    #[serde(default)]
    pub channel_template: Option<ChannelTemplate>,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
    /// Written by Knative's subscription controller; Herald reads `Subscription`s instead.
    #[serde(default)]
    pub subscribers: Option<IgnoredAny>,
    /// `KafkaChannel` sizing: the bus's own configuration decides these in Herald.
    #[serde(default)]
    pub num_partitions: Option<IgnoredAny>,
    #[serde(default)]
    pub replication_factor: Option<IgnoredAny>,
    #[serde(default)]
    pub retention_duration: Option<IgnoredAny>,
}

#[allow(
    dead_code,
    reason = "fields Herald accepts and has no use for are read to be checked"
)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelTemplate {
    pub api_version: String,
    pub kind: String,
    /// The created channels' spec, as Knative copies it: its `delivery` is the default of
    /// the channel's (the flow's hops') subscriptions.
    #[serde(default)]
    pub spec: Option<Box<ChannelSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub channel: KReference,
    #[serde(default)]
    pub subscriber: Option<Destination>,
    #[serde(default)]
    pub reply: Option<Destination>,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

/// A Sequence step: a destination with its own `delivery` (Knative inlines the destination).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default, rename = "ref")]
    pub reference: Option<KReference>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default, rename = "CACerts")]
    pub ca_certs: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceSpec {
    pub steps: Vec<StepSpec>,
    #[serde(default)]
    pub channel_template: Option<ChannelTemplate>,
    #[serde(default)]
    pub reply: Option<Destination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BranchSpec {
    #[serde(default)]
    pub filter: Option<Destination>,
    pub subscriber: Destination,
    #[serde(default)]
    pub reply: Option<Destination>,
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelSpec {
    pub branches: Vec<BranchSpec>,
    #[serde(default)]
    pub channel_template: Option<ChannelTemplate>,
    #[serde(default)]
    pub reply: Option<Destination>,
}

/// A subscription with its destinations resolved, waiting for its channel's delivery.
pub(super) struct SubscriptionDraft {
    pub(super) at: Located<()>,
    /// Where the resource's fields are in its manifest (`spec`, `spec.steps[1]`, ...).
    pub(super) field: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) channel: BrokerId,
    pub(super) subscriber: Target,
    pub(super) reply: ReplyTo,
    /// Where `reply` was written (`spec.reply`, `spec.branches[1].reply`).
    pub(super) reply_field: String,
    pub(super) delivery: DeliveryOverrides,
    pub(super) settings: super::resolve::DispatchSettings,
}

pub(super) fn located<T>(at: &Located<T>) -> Located<()> {
    Located {
        file: at.file.clone(),
        document: at.document,
        value: (),
    }
}

impl Resolver {
    /// Adds a channel (or a flow's internal one) as an address with its topic.
    pub(super) fn insert_address<T>(
        &mut self,
        at: &Located<T>,
        id: BrokerId,
        delivery: DeliveryOverrides,
        labels: BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        // A user's channel and a flow's internal one of the same name share a path and a
        // topic: compared by path.
        let path = id.to_string();
        if self.brokers.keys().any(|k| k.to_string() == path) {
            return Err(at.error("metadata.name", format!("{id} is defined twice")));
        }
        self.brokers.insert(
            id.clone(),
            BrokerConfig {
                id,
                delivery,
                labels,
            },
        );
        Ok(())
    }

    pub fn add_channel(
        &mut self,
        at: Located<Manifest<Option<ChannelSpec>>>,
    ) -> Result<(), ConfigError> {
        let meta = &at.value.metadata;
        let default = ChannelSpec::default();
        let spec = at.value.spec.as_ref().unwrap_or(&default);
        check_name(&at, &meta.name)?;
        let ns = namespace(meta);
        if let Some(template) = &spec.channel_template
            && address_kind(&template.kind) != Some(AddressKind::Channel)
        {
            return Err(at.error(
                "spec.channelTemplate.kind",
                format!(
                    "{:?} is not a channel kind (InMemoryChannel, KafkaChannel)",
                    template.kind
                ),
            ));
        }
        let delivery = match &spec.delivery {
            Some(d) => overrides(&at, &ns, d)?,
            None => super::flows::template_delivery(&at, &ns, &spec.channel_template)?,
        };
        let id = BrokerId::channel(&ns, &meta.name);
        self.insert_address(&at, id, delivery, meta.labels.clone())
    }

    pub fn add_subscription(
        &mut self,
        at: Located<Manifest<SubscriptionSpec>>,
    ) -> Result<(), ConfigError> {
        let meta = &at.value.metadata;
        check_name(&at, &meta.name)?;
        let ns = namespace(meta);
        let spec = &at.value.spec;
        if address_kind(&spec.channel.kind) != Some(AddressKind::Channel) {
            // A flow's internal channels are its own: not a Subscription's channel.
            return Err(at.error(
                "spec.channel.kind",
                format!(
                    "{:?} is not a channel kind (Channel, InMemoryChannel, KafkaChannel)",
                    spec.channel.kind
                ),
            ));
        }
        let channel_ns = spec.channel.namespace.clone().unwrap_or_else(|| ns.clone());
        let channel = BrokerId::channel(channel_ns, &spec.channel.name);
        let reply = spec
            .reply
            .as_ref()
            .map(|d| destination(&at, "spec.reply", &ns, d))
            .transpose()?;
        // Knative: without a subscriber, the channel's events go straight to `reply`.
        let (subscriber, reply) = match (&spec.subscriber, reply) {
            (Some(d), reply) => (
                destination(&at, "spec.subscriber", &ns, d)?,
                reply.map_or(ReplyTo::Drop, ReplyTo::Target),
            ),
            (None, Some(reply)) => (reply, ReplyTo::Drop),
            (None, None) => {
                return Err(at.error("spec", "needs a subscriber, a reply, or both"));
            }
        };
        let delivery = match &spec.delivery {
            Some(d) => overrides(&at, &ns, d)?,
            None => DeliveryOverrides::default(),
        };
        let settings = dispatch_settings(&at, &meta.annotations, &self.options)?;
        self.subscriptions.push(SubscriptionDraft {
            at: located(&at),
            field: "spec".into(),
            namespace: ns,
            name: meta.name.clone(),
            channel,
            subscriber,
            reply,
            reply_field: "spec.reply".into(),
            delivery,
            settings,
        });
        Ok(())
    }
}

/// Subscriptions into dispatchers: each needs its channel (whose `spec.delivery` fills what it
/// leaves unset) and addresses that exist.
pub(super) fn resolve_subscriptions(
    drafts: &[SubscriptionDraft],
    addresses: &BTreeMap<BrokerId, BrokerConfig>,
    dispatchers: &mut Vec<TriggerConfig>,
) -> Result<(), ConfigError> {
    for draft in drafts {
        let at = &draft.at;
        let Some(channel) = addresses.get(&draft.channel) else {
            return Err(at.error(
                &format!("{}.channel", draft.field),
                format!("{} is not defined in the configuration", draft.channel),
            ));
        };
        let duplicate = dispatchers.iter().any(|d| {
            d.kind == DispatcherKind::Subscription
                && d.namespace == draft.namespace
                && d.name == draft.name
        });
        if duplicate {
            return Err(at.error(
                "metadata.name",
                format!(
                    "subscription {}/{} is defined twice",
                    draft.namespace, draft.name
                ),
            ));
        }
        let mut delivery = draft.delivery.clone();
        delivery.backoff_cap = draft.settings.backoff_cap.or(delivery.backoff_cap);
        let delivery = delivery.resolve(&channel.delivery);
        let reply_target = match &draft.reply {
            ReplyTo::Target(t) => Some(t.clone()),
            _ => None,
        };
        let checks = [
            (
                format!("{}.subscriber", draft.field),
                Some(draft.subscriber.clone()),
            ),
            (draft.reply_field.clone(), reply_target),
            (
                format!("{}.delivery.deadLetterSink", draft.field),
                delivery.dead_letter.clone(),
            ),
        ];
        for (field, target) in checks {
            if let Some(Target::Broker(id)) = target
                && !addresses.contains_key(&id)
            {
                return Err(at.error(
                    &format!("{field}.ref"),
                    format!("{id} is not defined in the configuration"),
                ));
            }
        }
        dispatchers.push(TriggerConfig {
            namespace: draft.namespace.clone(),
            name: draft.name.clone(),
            kind: DispatcherKind::Subscription,
            broker: draft.channel.clone(),
            reply: draft.reply.clone(),
            filter: Filter::everything(),
            subscriber: draft.subscriber.clone(),
            delivery,
            ordering: draft.settings.ordering,
            signer: draft.settings.signer.clone(),
            paused: draft.settings.paused,
            start_from: draft.settings.start_from,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
