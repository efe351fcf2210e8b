//! Channels, Subscriptions, Sequences and Parallels, compiled into the machinery brokers and
//! triggers already have.
//!
//! - A channel (`Channel`, `InMemoryChannel`, `KafkaChannel`) is a [`BrokerConfig`] of
//!   [`AddressKind::Channel`]: a topic on the bus (`knative-channel-{ns}-{name}`) served at
//!   `/channels/{ns}/{name}`.
//! - A `Subscription` is a [`TriggerConfig`] of [`DispatcherKind::Subscription`]: no filter, the
//!   channel's `spec.delivery` as its fallback, the reply to `spec.reply` or dropped.
//! - A `Sequence` or `Parallel` is expanded, as Knative's reconcilers do, into internal channels
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

/// `spec.channelTemplate.spec.delivery`, resolved.
fn template_delivery<T>(
    at: &Located<T>,
    ns: &str,
    template: &Option<ChannelTemplate>,
) -> Result<DeliveryOverrides, ConfigError> {
    match template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.delivery.as_ref())
    {
        Some(d) => overrides(at, ns, d),
        None => Ok(DeliveryOverrides::default()),
    }
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
    at: Located<()>,
    /// Where the resource's fields are in its manifest (`spec`, `spec.steps[1]`, ...).
    field: String,
    namespace: String,
    name: String,
    channel: BrokerId,
    subscriber: Target,
    reply: ReplyTo,
    /// Where `reply` was written (`spec.reply`, `spec.branches[1].reply`).
    reply_field: String,
    delivery: DeliveryOverrides,
    settings: super::resolve::DispatchSettings,
}

fn located<T>(at: &Located<T>) -> Located<()> {
    Located {
        file: at.file.clone(),
        document: at.document,
        value: (),
    }
}

impl Resolver {
    /// Adds a channel (or a flow's internal one) as an address with its topic.
    fn insert_address<T>(
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
            None => template_delivery(&at, &ns, &spec.channel_template)?,
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
        let Some(subscriber) = &spec.subscriber else {
            return Err(at.error(
                "spec.subscriber",
                "is required (Herald has no reply-only subscriptions)",
            ));
        };
        let subscriber = destination(&at, "spec.subscriber", &ns, subscriber)?;
        let reply = match &spec.reply {
            Some(d) => ReplyTo::Target(destination(&at, "spec.reply", &ns, d)?),
            None => ReplyTo::Drop,
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

    /// Channels `{name}-kn-sequence-{i}`, one per step, each read by subscription
    /// `{name}-kn-sequence-{i}` whose reply goes to the next channel (the last one's to
    /// `spec.reply`).
    pub fn add_sequence(&mut self, at: Located<Manifest<SequenceSpec>>) -> Result<(), ConfigError> {
        let meta = &at.value.metadata;
        check_name(&at, &meta.name)?;
        let ns = namespace(meta);
        let spec = &at.value.spec;
        check_template(&at, &spec.channel_template)?;
        let defaults = template_delivery(&at, &ns, &spec.channel_template)?;
        if spec.steps.is_empty() {
            return Err(at.error("spec.steps", "needs at least one step"));
        }
        let channel = |i: usize| {
            BrokerId::of(
                AddressKind::FlowChannel,
                &ns,
                format!("{}-kn-sequence-{i}", meta.name),
            )
        };
        let last_reply = match &spec.reply {
            Some(d) => ReplyTo::Target(destination(&at, "spec.reply", &ns, d)?),
            None => ReplyTo::Drop,
        };
        let entry = BrokerId::of(AddressKind::Sequence, &ns, &meta.name);
        self.insert_address(
            &at,
            entry,
            DeliveryOverrides::default(),
            meta.labels.clone(),
        )?;
        for (i, step) in spec.steps.iter().enumerate() {
            let field = format!("spec.steps[{i}]");
            self.insert_address(&at, channel(i), defaults.clone(), BTreeMap::new())?;
            let dest = Destination {
                reference: step.reference.clone(),
                uri: step.uri.clone(),
                ca_certs: step.ca_certs.clone(),
                audience: step.audience.clone(),
            };
            let subscriber = destination(&at, &field, &ns, &dest)?;
            let reply = if i + 1 < spec.steps.len() {
                ReplyTo::Target(Target::Broker(channel(i + 1)))
            } else {
                last_reply.clone()
            };
            let delivery = match &step.delivery {
                Some(d) => overrides(&at, &ns, d)?,
                None => DeliveryOverrides::default(),
            };
            self.subscriptions.push(SubscriptionDraft {
                at: located(&at),
                field,
                namespace: ns.clone(),
                name: format!("{}-kn-sequence-{i}", meta.name),
                channel: channel(i),
                subscriber,
                reply,
                reply_field: "spec.reply".into(),
                delivery,
                settings: dispatch_settings(&at, &meta.annotations, &self.options)?,
            });
        }
        Ok(())
    }

    /// Channel `{name}-kn-parallel` fans out to one subscription per branch,
    /// `{name}-kn-parallel-filter-{i}` (to the branch's filter, whose reply goes on to channel
    /// `{name}-kn-parallel-{i}`; without a filter, straight to that channel), and subscription
    /// `{name}-kn-parallel-{i}` sends the branch channel's events to the branch's subscriber,
    /// replying to the branch's `reply`, else the Parallel's.
    pub fn add_parallel(&mut self, at: Located<Manifest<ParallelSpec>>) -> Result<(), ConfigError> {
        let meta = &at.value.metadata;
        check_name(&at, &meta.name)?;
        let ns = namespace(meta);
        let spec = &at.value.spec;
        check_template(&at, &spec.channel_template)?;
        let defaults = template_delivery(&at, &ns, &spec.channel_template)?;
        if spec.branches.is_empty() {
            return Err(at.error("spec.branches", "needs at least one branch"));
        }
        let parallel_reply = match &spec.reply {
            Some(d) => ReplyTo::Target(destination(&at, "spec.reply", &ns, d)?),
            None => ReplyTo::Drop,
        };
        let entry = BrokerId::of(AddressKind::Parallel, &ns, &meta.name);
        self.insert_address(
            &at,
            entry,
            DeliveryOverrides::default(),
            meta.labels.clone(),
        )?;
        let ingress = BrokerId::of(
            AddressKind::FlowChannel,
            &ns,
            format!("{}-kn-parallel", meta.name),
        );
        self.insert_address(&at, ingress.clone(), defaults.clone(), BTreeMap::new())?;
        for (i, branch) in spec.branches.iter().enumerate() {
            let field = format!("spec.branches[{i}]");
            let branch_channel = BrokerId::of(
                AddressKind::FlowChannel,
                &ns,
                format!("{}-kn-parallel-{i}", meta.name),
            );
            self.insert_address(
                &at,
                branch_channel.clone(),
                defaults.clone(),
                BTreeMap::new(),
            )?;
            let delivery = match &branch.delivery {
                Some(d) => overrides(&at, &ns, d)?,
                None => DeliveryOverrides::default(),
            };
            let (filter_target, filter_reply) = match &branch.filter {
                Some(f) => (
                    destination(&at, &format!("{field}.filter"), &ns, f)?,
                    ReplyTo::Target(Target::Broker(branch_channel.clone())),
                ),
                None => (Target::Broker(branch_channel.clone()), ReplyTo::Drop),
            };
            let filter_field = format!("{field}.filter");
            let (reply, reply_field) = match &branch.reply {
                Some(d) => (
                    ReplyTo::Target(destination(&at, &format!("{field}.reply"), &ns, d)?),
                    format!("{field}.reply"),
                ),
                None => (parallel_reply.clone(), "spec.reply".to_owned()),
            };
            let subscriber =
                destination(&at, &format!("{field}.subscriber"), &ns, &branch.subscriber)?;
            let settings = || dispatch_settings(&at, &meta.annotations, &self.options);
            let hops = [
                (
                    format!("{}-kn-parallel-filter-{i}", meta.name),
                    ingress.clone(),
                    filter_target,
                    filter_reply,
                    filter_field,
                ),
                (
                    format!("{}-kn-parallel-{i}", meta.name),
                    branch_channel,
                    subscriber,
                    reply,
                    reply_field,
                ),
            ];
            for (name, channel, subscriber, reply, reply_field) in hops {
                let settings = settings()?;
                self.subscriptions.push(SubscriptionDraft {
                    at: located(&at),
                    field: field.clone(),
                    namespace: ns.clone(),
                    name,
                    channel,
                    subscriber,
                    reply,
                    reply_field,
                    delivery: delivery.clone(),
                    settings,
                });
            }
        }
        Ok(())
    }
}

fn check_template<T>(
    at: &Located<T>,
    template: &Option<ChannelTemplate>,
) -> Result<(), ConfigError> {
    match template {
        Some(t) if address_kind(&t.kind) != Some(AddressKind::Channel) => Err(at.error(
            "spec.channelTemplate.kind",
            format!(
                "{:?} is not a channel kind (InMemoryChannel, KafkaChannel)",
                t.kind
            ),
        )),
        _ => Ok(()),
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
