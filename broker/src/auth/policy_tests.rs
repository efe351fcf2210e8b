use cloudevents::{Event, EventBuilder, EventBuilderV10};

use super::*;
use crate::config::{Config, load_str};

/// Knative's documented EventPolicy example (docs/eventing/features/authorization.md),
/// unchanged, with the brokers it names.
const KNATIVE_EXAMPLE: &str = r#"
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata:
  name: my-event-policy
  namespace: default
spec:
  to:
    - ref:
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        name: my-broker
    - selector:
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        matchLabels:
          app: special-app
  from:
    - ref:
        apiVersion: sources.knative.dev/v1
        kind: PingSource
        name: my-source
        namespace: another-namespace
    - sub: system:serviceaccount:default:trusted-app
    - sub: "system:serviceaccount:default:other-*"
  filters:
    - cesql: "type IN ('order.created', 'order.updated', 'order.canceled')"
    - exact:
        type: com.github.push
"#;

const BROKERS: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: my-broker, namespace: default}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: labelled, namespace: default, labels: {app: special-app}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: plain, namespace: default}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: plain, namespace: other}
"#;

fn config(policies: &str) -> Config {
    load_str("test.yaml", &format!("{BROKERS}\n---\n{policies}")).unwrap()
}

fn table(config: &Config, mode: DefaultMode) -> AccessTable {
    AccessTable::compile(&config.brokers, &config.policies, mode, true)
}

fn event(kind: &str) -> Event {
    EventBuilderV10::new()
        .id("1")
        .source("/s")
        .ty(kind)
        .build()
        .unwrap()
}

fn subject(sub: &str) -> SenderIdentity {
    SenderIdentity {
        subject: sub.to_owned(),
        origin: crate::identity::IdentityOrigin::Oidc {
            issuer: "https://issuer".into(),
        },
    }
}

fn broker(ns: &str, name: &str) -> BrokerId {
    BrokerId::new(ns, name)
}

#[test]
fn knatives_documented_example_loads_and_selects_by_ref_and_label() {
    let config = config(KNATIVE_EXAMPLE);
    let table = table(&config, DefaultMode::AllowAll);
    let trusted = subject("system:serviceaccount:default:trusted-app");
    // Both filters must hold (they AND): no type is both an order and a push.
    for target in [
        broker("default", "my-broker"),
        broker("default", "labelled"),
    ] {
        assert!(matches!(
            table.decide(&target, Some(&trusted), &[event("order.created")]),
            Err(Denial::Forbidden(_))
        ));
        assert!(table.may_send(&target, Some(&trusted)));
    }
    // Not selected: the default mode applies.
    assert_eq!(
        table.decide(&broker("default", "plain"), None, &[event("x")]),
        Ok(())
    );
}

#[test]
fn from_sub_wildcard_ref_and_filters_decide_per_event_all_or_nothing() {
    let config = config(
        r#"
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata: {name: orders, namespace: default}
spec:
  to: [{ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: my-broker}}]
  from:
    - sub: "system:serviceaccount:default:other-*"
    - ref: {apiVersion: sources.knative.dev/v1, kind: PingSource, name: tick}
  filters:
    - cesql: "type LIKE 'order.%'"
"#,
    );
    let table = table(&config, DefaultMode::DenyAll);
    let target = broker("default", "my-broker");
    let other = subject("system:serviceaccount:default:other-app");
    let ping = SenderIdentity::resource("PingSource", "default", "tick");
    for who in [&other, &ping] {
        assert_eq!(
            table.decide(&target, Some(who), &[event("order.a"), event("order.b")]),
            Ok(())
        );
        let Err(Denial::Forbidden(why)) =
            table.decide(&target, Some(who), &[event("order.a"), event("nope")])
        else {
            panic!("a batch with one refused event must be refused");
        };
        assert!(why.contains("event 1"), "{why}");
    }
    let stranger = subject("system:serviceaccount:default:others");
    assert!(matches!(
        table.decide(&target, Some(&stranger), &[event("order.a")]),
        Err(Denial::Forbidden(_))
    ));
    assert_eq!(
        table.decide(&target, None, &[event("order.a")]),
        Err(Denial::Unauthenticated)
    );
    // deny-all for what no policy selects.
    assert!(matches!(
        table.decide(&broker("default", "plain"), Some(&other), &[event("x")]),
        Err(Denial::Forbidden(_))
    ));
}

#[test]
fn an_empty_to_selects_every_broker_of_the_namespace_only() {
    let config = config(
        r#"
apiVersion: eventing.knative.dev/v1alpha1
kind: EventPolicy
metadata: {name: all, namespace: default}
spec:
  from: [{sub: "alice"}]
"#,
    );
    let table = table(&config, DefaultMode::AllowAll);
    let bob = subject("bob");
    for name in ["my-broker", "labelled", "plain"] {
        assert!(
            table
                .decide(&broker("default", name), Some(&bob), &[event("x")])
                .is_err()
        );
    }
    assert_eq!(
        table.decide(&broker("other", "plain"), Some(&bob), &[event("x")]),
        Ok(())
    );
}

#[test]
fn allow_same_namespace_admits_service_accounts_of_the_brokers_namespace() {
    let config = config("");
    let table = table(&config, DefaultMode::AllowSameNamespace);
    let target = broker("default", "plain");
    let own = SenderIdentity::resource("Trigger", "default", "t");
    let foreign = SenderIdentity::resource("Trigger", "other", "t");
    assert_eq!(table.decide(&target, Some(&own), &[event("x")]), Ok(()));
    assert!(matches!(
        table.decide(&target, Some(&foreign), &[event("x")]),
        Err(Denial::Forbidden(_))
    ));
    assert!(!table.may_send(&target, Some(&foreign)));
}

#[test]
fn without_authentication_or_policies_nothing_is_checked() {
    let config = config("");
    let table = AccessTable::compile(&config.brokers, &[], DefaultMode::DenyAll, false);
    assert_eq!(
        table.decide(&broker("default", "plain"), None, &[event("x")]),
        Ok(())
    );
}

#[test]
fn a_replaced_table_applies_to_the_next_decision() {
    let config = config("");
    let authorizer = Authorizer::new(table(&config, DefaultMode::AllowAll));
    assert!(
        authorizer
            .current()
            .may_send(&broker("default", "plain"), None)
    );
    authorizer.replace(table(&config, DefaultMode::DenyAll));
    assert!(
        !authorizer
            .current()
            .may_send(&broker("default", "plain"), None)
    );
    // A reload with a policy admitting alice to plain keeps deny-all for the other brokers.
    authorizer.reload(&self::config(
        "apiVersion: eventing.knative.dev/v1alpha1\nkind: EventPolicy\nmetadata: {name: p}\nspec:\n  to: [{ref: {kind: Broker, name: plain}}]\n  from: [{sub: alice}]\n",
    ));
    let alice = subject("alice");
    let now = authorizer.current();
    assert!(now.may_send(&broker("default", "plain"), Some(&alice)));
    assert!(!now.may_send(&broker("default", "my-broker"), Some(&alice)));
}

#[test]
fn policy_errors_name_the_field() {
    for (spec, field) in [
        (
            "to: [{ref: {kind: Service, name: c}}]",
            "spec.to[0].ref.kind",
        ),
        ("from: [{sub: \"a*b\"}]", "spec.from[0].sub"),
        ("from: [{}]", "spec.from[0]"),
        (
            "to: [{selector: {matchExpressions: [{key: a, operator: Has}]}}]",
            "spec.to[0].selector.matchExpressions[0].operator",
        ),
        ("filters: [{cesql: \"type =\"}]", "spec.filters[0].cesql"),
        ("form: []", "form"),
    ] {
        let text = format!(
            "apiVersion: eventing.knative.dev/v1alpha1\nkind: EventPolicy\nmetadata: {{name: p}}\nspec:\n  {spec}\n"
        );
        let error = load_str("p.yaml", &text).unwrap_err();
        assert_eq!(error.field, field, "{error}");
    }
}
