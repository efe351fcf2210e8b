//! Sequence and Parallel, expanded as Knative's reconcilers expand them: internal channels
//! (`AddressKind::FlowChannel`) and subscriptions with Knative's names, plus an entry address
//! of the flow's own (an alias of its first channel's topic).

use std::collections::BTreeMap;

use super::channels::{
    ChannelTemplate, ParallelSpec, SequenceSpec, SubscriptionDraft, address_kind, located,
};
use super::load::{ConfigError, Located};
use super::model::*;
use super::resolve::{Resolver, check_name, destination, dispatch_settings, namespace, overrides};
use super::resources::{Destination, Manifest};

impl Resolver {
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

/// `spec.channelTemplate.spec.delivery`, resolved.
pub(super) fn template_delivery<T>(
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
