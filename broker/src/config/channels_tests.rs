//! Channels, subscriptions and flows as the configuration resolves them.

use super::*;
use crate::config::load_str;

/// Knative's documentation example, unchanged (steps and reply are Knative Services).
const DOCS_SEQUENCE: &str = "
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: sequence
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
  steps:
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: first
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: second
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: third
  reply:
    ref:
      kind: Service
      apiVersion: serving.knative.dev/v1
      name: event-display
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: ping-source
spec:
  schedule: \"*/1 * * * *\"
  contentType: \"application/json\"
  data: '{\"message\": \"Hello world!\"}'
  sink:
    ref:
      apiVersion: flows.knative.dev/v1
      kind: Sequence
      name: sequence
";

/// Knative's documentation example, unchanged.
const DOCS_PARALLEL: &str = "
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: odd-even-parallel
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
  branches:
    - filter:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: even-filter
      subscriber:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: even-transformer
    - filter:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: odd-filter
      subscriber:
        ref:
          apiVersion: serving.knative.dev/v1
          kind: Service
          name: odd-transformer
  reply:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
";

fn names(config: &Config) -> Vec<String> {
    config.triggers.iter().map(|t| t.to_string()).collect()
}

fn url(target: &Target) -> String {
    match target {
        Target::Url(endpoint) => endpoint.to_string(),
        other => panic!("not a URL: {other}"),
    }
}

#[test]
fn the_docs_sequence_expands_into_knatives_channels_and_subscriptions() {
    let config = load_str("sequence.yaml", DOCS_SEQUENCE).unwrap();
    let channels: Vec<String> = config.brokers.iter().map(|b| b.id.to_string()).collect();
    assert_eq!(
        channels,
        [
            "flows/sequences/default/sequence",
            "channels/default/sequence-kn-sequence-0",
            "channels/default/sequence-kn-sequence-1",
            "channels/default/sequence-kn-sequence-2",
        ]
    );
    assert_eq!(
        names(&config),
        [
            "subscriptions/default/sequence-kn-sequence-0",
            "subscriptions/default/sequence-kn-sequence-1",
            "subscriptions/default/sequence-kn-sequence-2",
        ]
    );
    let hops = &config.triggers;
    assert_eq!(
        hops[0].broker.topic(),
        "knative-channel-default-sequence-kn-sequence-0"
    );
    assert_eq!(
        hops[0].group(),
        "knative-subscription-default-sequence-kn-sequence-0"
    );
    assert!(url(&hops[0].subscriber).starts_with("http://first.default.svc.cluster.local"));
    assert_eq!(
        hops[0].reply,
        ReplyTo::Target(Target::Broker(BrokerId::of(
            AddressKind::FlowChannel,
            "default",
            "sequence-kn-sequence-1"
        )))
    );
    match &hops[2].reply {
        ReplyTo::Target(t) => assert!(url(t).starts_with("http://event-display.default.svc")),
        other => panic!("last reply: {other:?}"),
    }
    // The entry is an alias of the first channel's topic.
    let entry = BrokerId::of(AddressKind::Sequence, "default", "sequence");
    assert_eq!(entry.topic(), hops[0].broker.topic());
    assert_eq!(config.sources[0].sink, Target::Broker(entry));
}

#[test]
fn the_docs_parallel_expands_into_a_fan_out_channel_and_two_hops_per_branch() {
    let config = load_str("parallel.yaml", DOCS_PARALLEL).unwrap();
    assert_eq!(
        names(&config),
        [
            "subscriptions/default/odd-even-parallel-kn-parallel-filter-0",
            "subscriptions/default/odd-even-parallel-kn-parallel-0",
            "subscriptions/default/odd-even-parallel-kn-parallel-filter-1",
            "subscriptions/default/odd-even-parallel-kn-parallel-1",
        ]
    );
    let internal = |name: &str| BrokerId::of(AddressKind::FlowChannel, "default", name);
    let fan_out = internal("odd-even-parallel-kn-parallel");
    let branch = internal("odd-even-parallel-kn-parallel-0");
    let filter = &config.triggers[0];
    assert_eq!(filter.broker, fan_out);
    assert!(url(&filter.subscriber).starts_with("http://even-filter.default.svc"));
    assert_eq!(
        filter.reply,
        ReplyTo::Target(Target::Broker(branch.clone()))
    );
    assert_eq!(config.triggers[1].broker, branch);
    let entry = BrokerId::of(AddressKind::Parallel, "default", "odd-even-parallel");
    assert_eq!(entry.topic(), fan_out.topic());
}

#[test]
fn a_subscription_takes_its_channels_delivery_and_drops_replies_without_spec_reply() {
    let config = load_str(
        "sub.yaml",
        "
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: orders, namespace: shop}
spec:
  numPartitions: 3
  replicationFactor: 1
  delivery: {retry: 2, backoffDelay: PT1S}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: audit, namespace: shop}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: orders}
  subscriber: {uri: 'http://audit.example/'}
  delivery: {retry: 5}
",
    )
    .unwrap();
    let sub = &config.triggers[0];
    assert_eq!(sub.kind, DispatcherKind::Subscription);
    assert_eq!(sub.delivery.retry, 5, "its own setting wins");
    assert_eq!(
        sub.delivery.backoff_delay,
        std::time::Duration::from_secs(1),
        "the channel's"
    );
    assert_eq!(sub.reply, ReplyTo::Drop);
    assert_eq!(sub.broker.topic(), "knative-channel-shop-orders");
    assert_eq!(sub.group(), "knative-subscription-shop-audit");
}

fn error(yaml: &str) -> String {
    load_str("bad.yaml", yaml).unwrap_err().to_string()
}

#[test]
fn channel_and_flow_errors_name_the_field() {
    let undefined = error(
        "
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: missing}
  subscriber: {uri: 'http://a.example/'}
",
    );
    assert!(
        undefined.contains("field spec.channel") && undefined.contains("channels/default/missing"),
        "{undefined}"
    );
    let kind = error(
        "
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b}
  subscriber: {uri: 'http://a.example/'}
",
    );
    assert!(kind.contains("field spec.channel.kind"), "{kind}");
    let empty = error(
        "
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: s}
spec: {steps: []}
",
    );
    assert!(
        empty.contains("field spec.steps: needs at least one step"),
        "{empty}"
    );
    let reply = error(
        "
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: s}
spec:
  steps: [{uri: 'http://a.example/'}]
  reply: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: nope}}
",
    );
    assert!(
        reply.contains("spec.reply.ref") && reply.contains("channels/default/nope"),
        "{reply}"
    );
    let twice = error(
        "
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: s-kn-sequence-0}
---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: s}
spec:
  steps: [{uri: 'http://a.example/'}]
",
    );
    assert!(
        twice.contains("document 2") && twice.contains("defined twice"),
        "{twice}"
    );
    let template = error(
        "
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c}
spec:
  channelTemplate: {apiVersion: v1, kind: ConfigMap}
",
    );
    assert!(
        template.contains("field spec.channelTemplate.kind"),
        "{template}"
    );
}

#[test]
fn event_policies_select_channels_and_flows_and_internal_hops_pass() {
    use crate::auth::{AccessTable, DefaultMode};
    use crate::identity::SenderIdentity;
    let config = load_str(
        "policy.yaml",
        "
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: orders}
---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: flow}
spec:
  steps: [{uri: 'http://a.example/'}, {uri: 'http://b.example/'}]
---
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata: {name: only-shop}
spec:
  to:
    - ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
    - ref: {apiVersion: flows.knative.dev/v1, kind: Sequence, name: flow}
  from:
    - sub: system:serviceaccount:default:shop
",
    )
    .unwrap();
    let table = AccessTable::compile(
        &config.brokers,
        &config.policies,
        DefaultMode::DenyAll,
        true,
    );
    let shop = SenderIdentity::resource("ServiceAccount", "default", "x");
    let shop = SenderIdentity {
        subject: "system:serviceaccount:default:shop".into(),
        ..shop
    };
    let other = SenderIdentity::resource("Trigger", "default", "t");
    let channel = BrokerId::channel("default", "orders");
    let sequence = BrokerId::of(AddressKind::Sequence, "default", "flow");
    for target in [&channel, &sequence] {
        assert!(table.decide(target, Some(&shop), &[]).is_ok(), "{target}");
        assert!(table.decide(target, Some(&other), &[]).is_err(), "{target}");
    }
    // The broker of the same name is not selected: deny-all applies.
    assert!(
        table
            .decide(&BrokerId::new("default", "orders"), Some(&shop), &[])
            .is_err()
    );
    // The flow's own hop between its internal channels is admitted even under deny-all.
    let hop = SenderIdentity::resource("Subscription", "default", "flow-kn-sequence-0");
    let internal = BrokerId::of(AddressKind::FlowChannel, "default", "flow-kn-sequence-1");
    assert!(table.decide(&internal, Some(&hop), &[]).is_ok());
    let wrong = error(
        "
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata: {name: p}
spec:
  to: [{ref: {apiVersion: v1, kind: Service, name: s}}]
",
    );
    assert!(wrong.contains("field spec.to[0].ref.kind"), "{wrong}");
}

#[test]
fn a_channel_templates_delivery_is_the_default_of_a_flows_hops() {
    let config = load_str(
        "template.yaml",
        "
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: s}
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
    spec:
      delivery: {retry: 7, deadLetterSink: {uri: 'http://dls.example/'}}
  steps:
    - uri: 'http://a.example/'
    - uri: 'http://b.example/'
      delivery: {retry: 1}
",
    )
    .unwrap();
    assert_eq!(config.triggers[0].delivery.retry, 7, "the template's");
    assert_eq!(config.triggers[1].delivery.retry, 1, "the step's own wins");
    assert!(
        config.triggers[1].delivery.dead_letter.is_some(),
        "the rest from the template"
    );
    let audiences: Vec<String> = [
        BrokerId::new("ns", "b"),
        BrokerId::channel("ns", "c"),
        BrokerId::of(AddressKind::Sequence, "ns", "s"),
    ]
    .iter()
    .map(crate::auth::broker_audience)
    .collect();
    assert_eq!(
        audiences,
        [
            "eventing.knative.dev/broker/ns/b",
            "messaging.knative.dev/channel/ns/c",
            "flows.knative.dev/sequence/ns/s"
        ]
    );
}

#[test]
fn status_lists_channels_flows_and_subscriptions_with_knatives_conditions() {
    let config = load_str(
        "status.yaml",
        "
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: c}
---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: s}
spec:
  steps: [{uri: 'http://a.example/'}]
",
    )
    .unwrap();
    let all = crate::live::status::of(&config, &[], Some("http://127.0.0.1:8080"), &|_| None);
    let find = |kind: &str, name: &str| {
        all.iter()
            .find(|s| s.kind == kind && s.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {all:?}"))
    };
    let channel = find("Channel", "c");
    assert_eq!(channel.group, "messaging.knative.dev");
    assert_eq!(
        channel.address.as_deref(),
        Some("http://127.0.0.1:8080/channels/default/c")
    );
    let sequence = find("Sequence", "s");
    assert_eq!(sequence.group, "flows.knative.dev");
    assert_eq!(
        sequence.address.as_deref(),
        Some("http://127.0.0.1:8080/flows/sequences/default/s")
    );
    assert_eq!(find("Channel", "s-kn-sequence-0").address, None, "internal");
    let hop = find("Subscription", "s-kn-sequence-0");
    let conditions: Vec<&str> = hop.conditions.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        conditions,
        [
            "Ready",
            "ReferencesResolved",
            "ChannelReady",
            "AddedToChannel",
            "Paused",
            "Delivering"
        ]
    );
    assert!(hop.conditions.iter().take(4).all(|c| c.status == "True"));
}

#[test]
fn a_subscription_without_subscriber_forwards_to_its_reply() {
    let channels = "
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: a}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: b}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: a}
";
    let config = load_str(
        "forward.yaml",
        &format!("{channels}  reply: {{ref: {{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: b}}}}\n"),
    )
    .unwrap();
    assert_eq!(
        config.triggers[0].subscriber,
        Target::Broker(BrokerId::channel("default", "b"))
    );
    assert_eq!(config.triggers[0].reply, ReplyTo::Drop);
    let neither = error(channels);
    assert!(
        neither.contains("field spec: needs a subscriber, a reply, or both"),
        "{neither}"
    );
}
