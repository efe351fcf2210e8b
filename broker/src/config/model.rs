//! Herald's resolved configuration: brokers, triggers and delivery policies as typed values.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use herald_sources::github::GitHubConfig;
use herald_sources::kubernetes::ApiServerConfig;
use herald_sources::ping::PingConfig;

use crate::filter::Filter;

/// Knative's `config-br-defaults`: retry 10, exponential, PT0.2S.
pub const DEFAULT_RETRY: u32 = 10;
pub const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(200);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Knative's default TTL for the loop guard.
pub const DEFAULT_TTL: i64 = 255;

/// What an ingress address is: a Broker, a Channel, or the entry of a Sequence or Parallel
/// (which is the topic of its first internal channel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKind {
    #[default]
    Broker,
    /// `Channel`, `InMemoryChannel` or `KafkaChannel`: all the same topic on the bus.
    Channel,
    /// A Sequence's or Parallel's internal channel: a channel's topic, published to by the
    /// flow's own subscriptions only (not served over HTTP, selected by no EventPolicy).
    FlowChannel,
    Sequence,
    Parallel,
}

/// An address events are published to in-process or over HTTP: a broker, a channel, or a
/// flow's entry (see [`AddressKind`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerId {
    pub namespace: String,
    pub name: String,
    pub kind: AddressKind,
}

impl BrokerId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::of(AddressKind::Broker, namespace, name)
    }

    pub fn of(kind: AddressKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            kind,
        }
    }

    pub fn channel(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::of(AddressKind::Channel, namespace, name)
    }

    /// The bus topic: a broker's is named like the Knative Kafka broker's, a channel's
    /// `knative-channel-{ns}-{name}`; a flow's entry is its first internal channel's topic.
    pub fn topic(&self) -> String {
        let (ns, name) = (&self.namespace, &self.name);
        match self.kind {
            AddressKind::Broker => format!("knative-broker-{ns}-{name}"),
            AddressKind::Channel | AddressKind::FlowChannel => {
                format!("knative-channel-{ns}-{name}")
            }
            AddressKind::Sequence => format!("knative-channel-{ns}-{name}-kn-sequence-0"),
            AddressKind::Parallel => format!("knative-channel-{ns}-{name}-kn-parallel"),
        }
    }

    /// Whether this address is another name of a channel's topic (a flow's entry), which
    /// has no consumer groups of its own.
    pub fn is_alias(&self) -> bool {
        matches!(self.kind, AddressKind::Sequence | AddressKind::Parallel)
    }
}

/// The ingress path without its leading `/`: `ns/name` for a broker, `channels/ns/name`,
/// `flows/sequences/ns/name`, `flows/parallels/ns/name`.
impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            AddressKind::Broker => "",
            AddressKind::Channel | AddressKind::FlowChannel => "channels/",
            AddressKind::Sequence => "flows/sequences/",
            AddressKind::Parallel => "flows/parallels/",
        };
        write!(f, "{prefix}{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Brokers, channels (internal ones of flows included) and flows' entries.
    pub brokers: Vec<BrokerConfig>,
    /// Triggers and subscriptions (internal ones of flows included).
    pub triggers: Vec<TriggerConfig>,
    /// `PingSource`, `ApiServerSource` and `GitHubSource` resources, compiled.
    pub sources: Vec<SourceConfig>,
    /// `EventPolicy` resources, compiled.
    pub policies: Vec<super::EventPolicyConfig>,
}

impl Config {
    /// What `herald serve` runs without `-f`: broker `default/default`, no triggers.
    pub fn default_broker() -> Self {
        Self {
            brokers: vec![BrokerConfig {
                id: BrokerId::new("default", "default"),
                delivery: DeliveryOverrides::default(),
                labels: Default::default(),
            }],
            triggers: Vec::new(),
            sources: Vec::new(),
            policies: Vec::new(),
        }
    }

    pub fn broker(&self, id: &BrokerId) -> Option<&BrokerConfig> {
        self.brokers.iter().find(|b| &b.id == id)
    }
}

/// A source resource: what it watches or serves, compiled by `herald-sources`, and where its
/// events go.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub namespace: String,
    pub name: String,
    /// `spec.sink`, resolved like a trigger's subscriber.
    pub sink: Target,
    pub kind: SourceKind,
    /// `herald.dev/delivery.signingSecret`: Standard Webhooks signatures on its sink requests.
    pub signer: Option<Arc<crate::outbound::WebhookSigner>>,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Ping(Arc<PingConfig>),
    /// With its `spec.filters`, compiled by the broker's filter compiler.
    ApiServer(Arc<ApiServerConfig>, Filter),
    GitHub(Arc<GitHubConfig>),
    CloudPubSub(Arc<herald_sources::pubsub::PubsubSourceConfig>),
}

impl SourceConfig {
    /// The Knative kind, the `kind` label of the source metrics.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SourceKind::Ping(_) => "PingSource",
            SourceKind::ApiServer(..) => "ApiServerSource",
            SourceKind::GitHub(_) => "GitHubSource",
            SourceKind::CloudPubSub(_) => "CloudPubSubSource",
        }
    }
}

impl fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub id: BrokerId,
    /// The broker's `spec.delivery`: fallbacks for its triggers.
    pub delivery: DeliveryOverrides,
    /// `metadata.labels`, which EventPolicy selectors match.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A dispatcher is a Knative Trigger (filtered, replies to its broker) or Subscription (no
/// filter, replies to `spec.reply` or nowhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DispatcherKind {
    #[default]
    Trigger,
    Subscription,
}

impl DispatcherKind {
    pub fn name(self) -> &'static str {
        match self {
            DispatcherKind::Trigger => "Trigger",
            DispatcherKind::Subscription => "Subscription",
        }
    }
}

/// Where a subscriber's reply event goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReplyTo {
    /// Back into the dispatcher's broker (a trigger's reply).
    #[default]
    Source,
    /// A subscription's `spec.reply`.
    Target(Target),
    /// A subscription without `spec.reply`: dropped, as Knative does.
    Drop,
}

#[derive(Debug, Clone)]
pub struct TriggerConfig {
    pub namespace: String,
    pub name: String,
    pub kind: DispatcherKind,
    /// The broker, or for a subscription its channel.
    pub broker: BrokerId,
    pub reply: ReplyTo,
    pub filter: Filter,
    pub subscriber: Target,
    pub delivery: DeliveryPolicy,
    pub ordering: Ordering,
    /// `herald.dev/delivery.signingSecret`: Standard Webhooks signatures on every attempt.
    pub signer: Option<Arc<crate::outbound::WebhookSigner>>,
    /// `herald.dev/paused: "true"`: the trigger keeps its consumer group (and position) but
    /// reads and delivers nothing until resumed.
    pub paused: bool,
    /// `herald.dev/startFrom`: where the trigger's consumer group starts if it has no
    /// position yet (a new trigger); `latest` by default.
    pub start_from: herald_buses::StartPosition,
}

impl TriggerConfig {
    /// The consumer group, named like the Knative Kafka broker's
    /// (`knative-subscription-{ns}-{name}` for a subscription).
    pub fn group(&self) -> String {
        let kind = match self.kind {
            DispatcherKind::Trigger => "trigger",
            DispatcherKind::Subscription => "subscription",
        };
        format!("knative-{kind}-{}-{}", self.namespace, self.name)
    }
}

/// `ns/name` for a trigger, `subscriptions/ns/name` for a subscription (metric labels, logs).
impl fmt::Display for TriggerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == DispatcherKind::Subscription {
            f.write_str("subscriptions/")?;
        }
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where events go: one of Herald's own brokers, channels or flows (published in-process)
/// or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Broker(BrokerId),
    /// A URL with its `audience` and `CACerts`.
    Url(crate::outbound::Endpoint),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Broker(id) if id.kind == AddressKind::Broker => write!(f, "broker {id}"),
            Target::Broker(id) => write!(f, "{id}"),
            Target::Url(url) => write!(f, "{url}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    #[default]
    Unordered,
    /// One event at a time per `partitionkey`, in bus order.
    Ordered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffPolicy {
    Exponential,
    Linear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Binary,
    /// `delivery.format: json`: structured mode.
    Structured,
}

/// A delivery setting each level may leave unset (trigger -> broker -> defaults).
#[derive(Debug, Clone, Default)]
pub struct DeliveryOverrides {
    pub retry: Option<u32>,
    pub backoff_policy: Option<BackoffPolicy>,
    pub backoff_delay: Option<Duration>,
    pub backoff_cap: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retry_after_max: Option<Duration>,
    pub dead_letter: Option<Target>,
    pub format: Option<Format>,
}

impl DeliveryOverrides {
    /// Fills what `self` leaves unset from `fallback`, then from Herald's defaults.
    pub fn resolve(&self, fallback: &DeliveryOverrides) -> DeliveryPolicy {
        DeliveryPolicy {
            retry: self.retry.or(fallback.retry).unwrap_or(DEFAULT_RETRY),
            backoff_policy: self
                .backoff_policy
                .or(fallback.backoff_policy)
                .unwrap_or(BackoffPolicy::Exponential),
            backoff_delay: self
                .backoff_delay
                .or(fallback.backoff_delay)
                .unwrap_or(DEFAULT_BACKOFF_DELAY),
            backoff_cap: self.backoff_cap.or(fallback.backoff_cap),
            timeout: self.timeout.or(fallback.timeout).unwrap_or(DEFAULT_TIMEOUT),
            retry_after_max: self.retry_after_max.or(fallback.retry_after_max),
            dead_letter: self
                .dead_letter
                .clone()
                .or_else(|| fallback.dead_letter.clone()),
            format: self.format.or(fallback.format).unwrap_or_default(),
        }
    }
}

/// A resolved `spec.delivery`; the waits between attempts are
/// [`RetryPolicy`](crate::dispatch::retry::RetryPolicy)'s.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    pub retry: u32,
    pub backoff_policy: BackoffPolicy,
    pub backoff_delay: Duration,
    pub backoff_cap: Option<Duration>,
    pub timeout: Duration,
    pub retry_after_max: Option<Duration>,
    pub dead_letter: Option<Target>,
    pub format: Format,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryOverrides::default().resolve(&DeliveryOverrides::default())
    }
}
