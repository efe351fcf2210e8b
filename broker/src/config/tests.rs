//! Loading Knative manifests: what resolves to what, and errors that say where.
#![allow(
    clippy::disallowed_methods,
    reason = "tests set up and inspect files directly"
)]

use std::time::Duration;

use super::*;

const FULL: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: team
spec:
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT0.5S
    deadLetterSink:
      uri: http://dls.example/events
---
# a comment-only document follows
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders
  namespace: team
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  broker: default
  filter:
    attributes:
      type: order.created
      subject: ""
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: billing
    uri: /hooks
  delivery:
    retry: 1
    timeout: PT2S
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: forward
  namespace: team
spec:
  broker: default
  filters:
    - any:
        - prefix: { type: "com.github." }
        - not: { exact: { source: "/x" } }
  subscriber:
    ref: { kind: Broker, name: default }
  delivery:
    format: json
"#;

#[test]
fn a_full_manifest_resolves_with_trigger_broker_default_fallbacks() {
    let config = load_str("full.yaml", FULL).unwrap();
    assert_eq!(config.brokers.len(), 1);
    let orders = &config.triggers[0];
    assert_eq!(orders.group(), "knative-trigger-team-orders");
    assert_eq!(orders.broker.topic(), "knative-broker-team-default");
    assert_eq!(orders.ordering, Ordering::Ordered);
    assert_eq!(
        orders.subscriber,
        Target::Url(
            "http://billing.team.svc.cluster.local/hooks"
                .parse()
                .unwrap()
        )
    );
    let d = &orders.delivery;
    assert_eq!(d.retry, 1, "trigger's own value");
    assert_eq!(d.backoff_policy, BackoffPolicy::Linear, "broker's value");
    assert_eq!(d.backoff_delay, Duration::from_millis(500));
    assert_eq!(d.timeout, Duration::from_secs(2));
    assert_eq!(
        d.dead_letter,
        Some(Target::Url("http://dls.example/events".parse().unwrap()))
    );
    let forward = &config.triggers[1];
    assert_eq!(
        forward.subscriber,
        Target::Broker(BrokerId::new("team", "default"))
    );
    assert_eq!(forward.delivery.format, Format::Structured);
}

#[test]
fn unset_delivery_falls_back_to_knative_defaults() {
    let p = DeliveryPolicy::default();
    assert_eq!(
        (p.retry, p.backoff_policy, p.backoff_delay),
        (10, BackoffPolicy::Exponential, Duration::from_millis(200))
    );
    assert_eq!(p.timeout, Duration::from_secs(30));
}

fn error(yaml: &str) -> String {
    load_str("bad.yaml", yaml).unwrap_err().to_string()
}

const TRIGGER_HEAD: &str = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n";

#[test]
fn errors_name_file_document_and_field() {
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: http://x}}\n  delivery: {{backoffDelay: 5s}}\n"
    ));
    assert!(
        e.contains("bad.yaml, document 2, field spec.delivery.backoffDelay"),
        "{e}"
    );
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: http://x}}\n  filterz: {{}}\n"
    ));
    assert!(e.contains("document 2") && e.contains("filterz"), "{e}");
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: nope\n  subscriber: {{uri: http://x}}\n"
    ));
    assert!(
        e.contains("field spec.broker") && e.contains("default/nope"),
        "{e}"
    );
    let e = error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert!(e.contains("unknown kind ConfigMap"), "{e}");
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: /relative}}\n"
    ));
    assert!(e.contains("spec.subscriber.uri"), "{e}");
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: http://x}}\n  filters: [{{exact: {{type: a}}, prefix: {{type: b}}}}]\n"
    ));
    assert!(
        e.contains("spec.filters[0]") && e.contains("exactly one"),
        "{e}"
    );
}

#[test]
fn cesql_filters_compile_at_load_and_bad_ones_fail_with_their_position() {
    let ok = format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: http://x}}\n  filters: [{{cesql: \"type = 'a' AND source LIKE '/x/%'\"}}]\n"
    );
    assert!(load_str("ok.yaml", &ok).is_ok());
    let e = error(&format!(
        "{TRIGGER_HEAD}spec:\n  broker: b\n  subscriber: {{uri: http://x}}\n  filters: [{{cesql: \"type = \"}}]\n"
    ));
    assert!(
        e.contains("field spec.filters[0].cesql") && e.contains("1:"),
        "{e}"
    );
}

const SOURCES: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: { name: default, namespace: team }
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: { name: tick, namespace: team }
spec:
  schedule: "*/5 * * * *"
  timezone: Europe/Paris
  data: hello
  sink:
    ref: { apiVersion: v1, kind: Service, name: ticker }
    uri: /in
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: { name: pods, namespace: team }
spec:
  mode: Resource
  resources:
    - apiVersion: v1
      kind: Pod
      selector: { matchLabels: { app: web } }
  filters:
    - any:
        - exact: { type: dev.knative.apiserver.resource.delete }
        - cesql: "name LIKE 'web-%'"
  sink:
    uri: https://events.example/k8s
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: { name: repo, namespace: team }
spec:
  ownerAndRepository: octo-org/hello-world
  eventTypes: [push, pull_request]
  secretToken: { secretKeyRef: { name: gh, key: token } }
  sink:
    ref: { apiVersion: eventing.knative.dev/v1, kind: Broker, name: default }
"#;

fn secrets_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("gh")).unwrap();
    std::fs::write(dir.path().join("gh/token"), "s3cret\n").unwrap();
    dir
}

fn load_sources(yaml: &str, secrets: &std::path::Path) -> Result<Config, ConfigError> {
    let options = LoadOptions {
        secrets_dir: secrets.to_owned(),
    };
    load_str_with("sources.yaml", yaml, &options)
}

#[test]
fn source_kinds_load_with_sinks_resolved_like_trigger_destinations() {
    let secrets = secrets_dir();
    let config = load_sources(SOURCES, secrets.path()).unwrap();
    let kinds: Vec<_> = config.sources.iter().map(|s| s.kind_name()).collect();
    assert_eq!(kinds, ["PingSource", "ApiServerSource", "GitHubSource"]);
    let sinks: Vec<_> = config.sources.iter().map(|s| s.sink.clone()).collect();
    assert_eq!(
        sinks,
        [
            Target::Url("http://ticker.team.svc.cluster.local/in".parse().unwrap()),
            Target::Url("https://events.example/k8s".parse().unwrap()),
            Target::Broker(BrokerId::new("team", "default")),
        ]
    );
    let SourceKind::ApiServer(api, filter) = &config.sources[1].kind else {
        panic!("second source is the ApiServerSource")
    };
    assert_eq!(api.mode, herald_sources::kubernetes::Mode::Resource);
    assert!(matches!(filter, crate::filter::Filter::All(f) if f.len() == 1));
    let SourceKind::GitHub(gh) = &config.sources[2].kind else {
        panic!("third source is the GitHubSource")
    };
    assert_eq!(gh.source, "https://github.com/octo-org/hello-world");
    assert!(gh.event_types.allows("push") && !gh.event_types.allows("issues"));
}

#[test]
fn source_errors_name_file_document_and_field() {
    let secrets = secrets_dir();
    let e = |yaml: String| load_sources(&yaml, secrets.path()).unwrap_err().to_string();
    let bad_schedule = SOURCES.replace("*/5 * * * *", "every tuesday");
    assert!(
        e(bad_schedule).contains("sources.yaml, document 2, field spec.schedule"),
        "schedule"
    );
    let missing_secret = SOURCES.replace("key: token", "key: nope");
    let msg = e(missing_secret);
    assert!(
        msg.contains("document 4, field spec.secretToken.secretKeyRef") && msg.contains("nope"),
        "{msg}"
    );
    let bad_cesql = SOURCES.replace("name LIKE 'web-%'", "name LIKE");
    let msg = e(bad_cesql);
    assert!(
        msg.contains("document 3, field spec.filters[0].any[1].cesql"),
        "{msg}"
    );
    let unknown_broker = SOURCES.replace("kind: Broker, name: default", "kind: Broker, name: gone");
    let msg = e(unknown_broker);
    assert!(
        msg.contains("document 4, field spec.sink.ref") && msg.contains("team/gone"),
        "{msg}"
    );
    let typo = SOURCES.replace("timezone:", "timeZone:");
    assert!(e(typo).contains("timeZone"), "unknown fields are errors");
    let version = SOURCES.replace("sources.knative.dev/v1alpha1", "sources.knative.dev/v1");
    let msg = e(version);
    assert!(
        msg.contains("field apiVersion") && msg.contains("sources.knative.dev/v1alpha1"),
        "{msg}"
    );
    let twice = format!("{SOURCES}---\n{}", SOURCES.split("---").nth(1).unwrap());
    assert!(e(twice).contains("defined twice"));
}

const PUBSUB_SOURCE: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: team}
---
apiVersion: events.cloud.google.com/v1
kind: CloudPubSubSource
metadata: {name: orders, namespace: team}
spec:
  project: my-proj
  topic: orders
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
  ceOverrides: {extensions: {team: billing}}
"#;

#[test]
fn cloud_pubsub_sources_load_and_name_what_is_wrong() {
    let secrets = secrets_dir();
    let config = load_sources(PUBSUB_SOURCE, secrets.path()).unwrap();
    let SourceKind::CloudPubSub(source) = &config.sources[0].kind else {
        panic!("a CloudPubSubSource: {:?}", config.sources[0].kind_name());
    };
    assert_eq!(config.sources[0].kind_name(), "CloudPubSubSource");
    assert_eq!(source.subscription, "herald-source-team-orders");
    assert_eq!(
        source.event_source(),
        "//pubsub.googleapis.com/projects/my-proj/topics/orders"
    );
    assert_eq!(
        config.sources[0].sink,
        Target::Broker(BrokerId::new("team", "default"))
    );
    let e = |yaml: String| load_sources(&yaml, secrets.path()).unwrap_err().to_string();
    let msg = e(PUBSUB_SOURCE.replace("  project: my-proj\n", ""));
    assert!(msg.contains("spec.project"), "{msg}");
    let msg = e(PUBSUB_SOURCE.replace("topic: orders", "topic: projects/x/topics/orders"));
    assert!(msg.contains("spec.topic"), "{msg}");
    let msg = e(PUBSUB_SOURCE.replace(
        "events.cloud.google.com/v1",
        "events.cloud.google.com/v1beta1",
    ));
    assert!(msg.contains("events.cloud.google.com/v1"), "{msg}");
}
