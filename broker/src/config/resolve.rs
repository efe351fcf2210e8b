//! Turning manifests into the model: defaults, destinations, filters, delivery policies.

use std::collections::BTreeMap;

use url::Url;

use super::load::{ConfigError, LoadOptions, Located};
use super::model::*;
use super::resources::{BrokerSpec, DeliverySpec, Destination, FilterSpec, Manifest, TriggerSpec};
use crate::filter::Filter;
use herald_sources::manifest::parse_iso8601;

/// The Knative Kafka broker's annotation for per-trigger ordering.
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
/// Herald's cap on the backoff wait (Knative has no field for it).
pub const BACKOFF_CAP_ANNOTATION: &str = "herald.dev/delivery.backoffCap";
/// A paused trigger keeps its position and delivers nothing (`"true"` or `"false"`).
pub const PAUSED_ANNOTATION: &str = "herald.dev/paused";
/// Where a new trigger starts: `latest` (default), `earliest` or an RFC 3339 time.
pub const START_FROM_ANNOTATION: &str = "herald.dev/startFrom";

#[derive(Default)]
pub(super) struct Resolver {
    /// Brokers, channels and flows' entries.
    pub(super) brokers: BTreeMap<BrokerId, BrokerConfig>,
    /// Subscriptions, written or expanded from flows, resolved in `finish`.
    pub(super) subscriptions: Vec<super::channels::SubscriptionDraft>,
    triggers: Vec<Located<Manifest<TriggerSpec>>>,
    /// Compiled sources with where they were defined (for the broker-ref check in `finish`).
    pub(super) sources: Vec<Located<SourceConfig>>,
    /// Compiled `EventPolicy` resources.
    pub(super) policies: Vec<super::EventPolicyConfig>,
    pub(super) options: LoadOptions,
}

/// `latest`, `earliest` or an RFC 3339 time (`2026-12-01T06:00:00Z`).
pub fn parse_start(text: &str) -> Result<herald_buses::StartPosition, String> {
    match text {
        "latest" => Ok(herald_buses::StartPosition::Latest),
        "earliest" => Ok(herald_buses::StartPosition::Earliest),
        other => chrono::DateTime::parse_from_rfc3339(other)
            .map(|t| herald_buses::StartPosition::Time(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                format!("must be latest, earliest or an RFC 3339 time, not {other:?} ({e})")
            }),
    }
}

pub(super) fn namespace(meta: &super::resources::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

impl Resolver {
    pub fn new(options: LoadOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    pub fn add_broker(
        &mut self,
        broker: Located<Manifest<Option<BrokerSpec>>>,
    ) -> Result<(), ConfigError> {
        let manifest = &broker.value;
        let id = BrokerId::new(namespace(&manifest.metadata), &manifest.metadata.name);
        check_name(&broker, &id.name)?;
        let spec = manifest.spec.as_ref();
        let mut delivery = match spec.and_then(|s| s.delivery.as_ref()) {
            Some(d) => overrides(&broker, &id.namespace, d)?,
            None => DeliveryOverrides::default(),
        };
        delivery.backoff_cap = backoff_cap(&broker, &manifest.metadata.annotations)?;
        if self.brokers.contains_key(&id) {
            return Err(broker.error("metadata.name", format!("broker {id} is defined twice")));
        }
        self.brokers.insert(
            id.clone(),
            BrokerConfig {
                id,
                delivery,
                labels: manifest.metadata.labels.clone(),
            },
        );
        Ok(())
    }

    pub fn add_trigger(
        &mut self,
        trigger: Located<Manifest<TriggerSpec>>,
    ) -> Result<(), ConfigError> {
        check_name(&trigger, &trigger.value.metadata.name)?;
        self.triggers.push(trigger);
        Ok(())
    }

    pub fn finish(self) -> Result<Config, ConfigError> {
        let mut triggers: Vec<TriggerConfig> = Vec::new();
        for located in &self.triggers {
            let manifest = &located.value;
            let ns = namespace(&manifest.metadata);
            let name = manifest.metadata.name.clone();
            let broker_id = BrokerId::new(&ns, &manifest.spec.broker);
            let Some(broker) = self.brokers.get(&broker_id) else {
                return Err(located.error(
                    "spec.broker",
                    format!("broker {broker_id} is not defined in the configuration"),
                ));
            };
            if triggers.iter().any(|t| t.namespace == ns && t.name == name) {
                return Err(located.error(
                    "metadata.name",
                    format!("trigger {ns}/{name} is defined twice"),
                ));
            }
            let mut delivery = match &manifest.spec.delivery {
                Some(d) => overrides(located, &ns, d)?,
                None => DeliveryOverrides::default(),
            };
            let subscriber =
                destination(located, "spec.subscriber", &ns, &manifest.spec.subscriber)?;
            let filter = trigger_filter(located, &manifest.spec)?;
            let settings =
                dispatch_settings(located, &manifest.metadata.annotations, &self.options)?;
            delivery.backoff_cap = settings.backoff_cap;
            triggers.push(TriggerConfig {
                namespace: ns,
                name,
                kind: DispatcherKind::Trigger,
                broker: broker_id,
                reply: ReplyTo::Source,
                filter,
                subscriber,
                delivery: delivery.resolve(&broker.delivery),
                ordering: settings.ordering,
                signer: settings.signer,
                paused: settings.paused,
                start_from: settings.start_from,
            });
        }
        super::channels::resolve_subscriptions(&self.subscriptions, &self.brokers, &mut triggers)?;
        let known = |target: &Option<Target>| match target {
            Some(Target::Broker(id)) => self.brokers.contains_key(id),
            _ => true,
        };
        // A ref's target named in the error: a broker as before, a channel or flow by path.
        let undefined = |target: &Target| match target {
            Target::Broker(id) if id.kind == AddressKind::Broker => {
                "refers to an undefined broker".to_owned()
            }
            other => format!("refers to {other}, which is not defined in the configuration"),
        };
        for (trigger, located) in triggers.iter().zip(&self.triggers) {
            if !known(&Some(trigger.subscriber.clone())) {
                return Err(located.error("spec.subscriber.ref", undefined(&trigger.subscriber)));
            }
            if let Some(dead_letter) = &trigger.delivery.dead_letter
                && !known(&trigger.delivery.dead_letter)
            {
                return Err(
                    located.error("spec.delivery.deadLetterSink.ref", undefined(dead_letter))
                );
            }
        }
        for source in &self.sources {
            if let Target::Broker(id) = &source.value.sink
                && !self.brokers.contains_key(id)
            {
                return Err(source.error(
                    "spec.sink.ref",
                    format!(
                        "{} is not defined in the configuration",
                        Target::Broker(id.clone())
                    ),
                ));
            }
        }
        Ok(Config {
            brokers: self.brokers.into_values().collect(),
            triggers,
            sources: self.sources.into_iter().map(|s| s.value).collect(),
            policies: self.policies,
        })
    }
}

/// The annotations a trigger or subscription reads besides its spec.
pub(super) struct DispatchSettings {
    pub ordering: Ordering,
    pub signer: Option<std::sync::Arc<crate::outbound::WebhookSigner>>,
    pub paused: bool,
    pub start_from: herald_buses::StartPosition,
    pub backoff_cap: Option<std::time::Duration>,
}

pub(super) fn dispatch_settings<T>(
    located: &Located<T>,
    annotations: &BTreeMap<String, String>,
    options: &LoadOptions,
) -> Result<DispatchSettings, ConfigError> {
    let ordering = match annotations.get(DELIVERY_ORDER_ANNOTATION) {
        None => Ordering::Unordered,
        Some(v) if v == "unordered" => Ordering::Unordered,
        Some(v) if v == "ordered" => Ordering::Ordered,
        Some(v) => {
            return Err(located.error(
                &format!("metadata.annotations.{DELIVERY_ORDER_ANNOTATION}"),
                format!("must be ordered or unordered, not {v:?}"),
            ));
        }
    };
    let paused = match annotations.get(PAUSED_ANNOTATION) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            return Err(located.error(
                &format!("metadata.annotations.{PAUSED_ANNOTATION}"),
                format!("must be \"true\" or \"false\", not {v:?}"),
            ));
        }
    };
    let start_from = match annotations.get(START_FROM_ANNOTATION) {
        None => herald_buses::StartPosition::Latest,
        Some(v) => parse_start(v).map_err(|message| {
            located.error(
                &format!("metadata.annotations.{START_FROM_ANNOTATION}"),
                message,
            )
        })?,
    };
    Ok(DispatchSettings {
        ordering,
        signer: signer(located, annotations, options)?,
        paused,
        start_from,
        backoff_cap: backoff_cap(located, annotations)?,
    })
}

/// Kubernetes names (RFC 1123 labels) keep topic and group names valid on every bus.
pub(super) fn check_name<T>(at: &Located<T>, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(at.error(
            "metadata.name",
            format!("{name:?} is not a valid name (lowercase letters, digits, '-', '.')"),
        ))
    }
}

fn duration<T>(
    at: &Located<T>,
    field: &str,
    value: &Option<String>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    value
        .as_deref()
        .map(parse_iso8601)
        .transpose()
        .map_err(|e| at.error(field, e))
}

fn backoff_cap<T>(
    at: &Located<T>,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    duration(
        at,
        &format!("metadata.annotations.{BACKOFF_CAP_ANNOTATION}"),
        &annotations.get(BACKOFF_CAP_ANNOTATION).cloned(),
    )
}

pub(super) fn overrides<T>(
    at: &Located<T>,
    ns: &str,
    spec: &DeliverySpec,
) -> Result<DeliveryOverrides, ConfigError> {
    let retry = match spec.retry {
        None => None,
        Some(n) if (0..=i64::from(u16::MAX)).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(at.error(
                "spec.delivery.retry",
                format!("{n} is not between 0 and 65535"),
            ));
        }
    };
    let backoff_policy = match spec.backoff_policy.as_deref() {
        None => None,
        Some("exponential") => Some(BackoffPolicy::Exponential),
        Some("linear") => Some(BackoffPolicy::Linear),
        Some(other) => {
            return Err(at.error(
                "spec.delivery.backoffPolicy",
                format!("must be exponential or linear, not {other:?}"),
            ));
        }
    };
    let format = match spec.format.as_deref() {
        None => None,
        Some("binary") => Some(Format::Binary),
        Some("json") => Some(Format::Structured),
        Some(other) => {
            return Err(at.error(
                "spec.delivery.format",
                format!("must be binary or json, not {other:?}"),
            ));
        }
    };
    let timeout = duration(at, "spec.delivery.timeout", &spec.timeout)?;
    if timeout.is_some_and(|t| t.is_zero()) {
        return Err(at.error("spec.delivery.timeout", "must be greater than zero"));
    }
    Ok(DeliveryOverrides {
        retry,
        backoff_policy,
        backoff_delay: duration(at, "spec.delivery.backoffDelay", &spec.backoff_delay)?,
        backoff_cap: None,
        timeout,
        retry_after_max: duration(at, "spec.delivery.retryAfterMax", &spec.retry_after_max)?,
        dead_letter: spec
            .dead_letter_sink
            .as_ref()
            .map(|d| destination(at, "spec.delivery.deadLetterSink", ns, d))
            .transpose()?,
        format,
    })
}

/// Resolves a Knative destination: a `Broker` ref is Herald's own broker; other refs are the
/// Kubernetes Service DNS name of the object (plus `uri` as a path); a bare `uri` is used as is.
pub(super) fn destination<T>(
    at: &Located<T>,
    field: &str,
    ns: &str,
    dest: &Destination,
) -> Result<Target, ConfigError> {
    match (&dest.reference, &dest.uri) {
        (None, None) => Err(at.error(field, "needs ref or uri")),
        (None, Some(uri)) => {
            let url = Url::parse(uri).map_err(|e| {
                at.error(
                    &format!("{field}.uri"),
                    format!("{uri:?} is not an absolute URL: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(at.error(
                    &format!("{field}.uri"),
                    format!("scheme {:?} is not http or https", url.scheme()),
                ));
            }
            endpoint(at, field, url, dest)
        }
        (Some(r), uri) => {
            let ref_ns = r.namespace.clone().unwrap_or_else(|| ns.to_owned());
            if let Some(kind) = super::channels::address_kind(&r.kind) {
                if uri.is_some() {
                    return Err(at.error(
                        &format!("{field}.uri"),
                        format!("a {} ref takes no uri", r.kind),
                    ));
                }
                return Ok(Target::Broker(BrokerId::of(kind, ref_ns, &r.name)));
            }
            let base = format!("http://{}.{}.svc.cluster.local", r.name, ref_ns);
            let path = uri.as_deref().unwrap_or("");
            let joined = if path.is_empty() || path.starts_with('/') {
                format!("{base}{path}")
            } else {
                format!("{base}/{path}")
            };
            let url = Url::parse(&joined)
                .map_err(|e| at.error(field, format!("cannot build URL {joined:?}: {e}")))?;
            endpoint(at, field, url, dest)
        }
    }
}

/// A URL destination with its `audience` and `CACerts` (checked here, so a bad PEM fails the
/// load naming the field).
fn endpoint<T>(
    at: &Located<T>,
    field: &str,
    url: Url,
    dest: &Destination,
) -> Result<Target, ConfigError> {
    crate::outbound::Endpoint::with_destination(
        url,
        dest.audience.as_deref(),
        dest.ca_certs.as_deref(),
    )
    .map(Target::Url)
    .map_err(|(name, message)| at.error(&format!("{field}.{name}"), message))
}

/// `herald.dev/delivery.signingSecret`, read through `--secrets-dir`.
pub(super) fn signer<T>(
    at: &Located<T>,
    annotations: &BTreeMap<String, String>,
    options: &LoadOptions,
) -> Result<Option<std::sync::Arc<crate::outbound::WebhookSigner>>, ConfigError> {
    use crate::outbound::signing::{SIGNING_SECRET_ANNOTATION, from_annotations};
    from_annotations(annotations, &options.secrets_dir).map_err(|e| {
        at.error(
            &format!("metadata.annotations.{SIGNING_SECRET_ANNOTATION}"),
            e.to_string(),
        )
    })
}

fn trigger_filter<T>(at: &Located<T>, spec: &TriggerSpec) -> Result<Filter, ConfigError> {
    // Knative: when `filters` is set, the legacy `filter` is ignored.
    if !spec.filters.is_empty() {
        let filters = spec
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| filter(at, &format!("spec.filters[{i}]"), f))
            .collect::<Result<_, _>>()?;
        return Ok(Filter::All(filters));
    }
    let Some(legacy) = &spec.filter else {
        return Ok(Filter::everything());
    };
    // Legacy attributes: exact match, and an empty value means "exists and is non-empty".
    let filters = legacy
        .attributes
        .iter()
        .map(|(k, v)| {
            let pair = vec![(k.clone(), v.clone())];
            if v.is_empty() {
                // exists (any prefix) and is not the empty string
                Filter::All(vec![
                    Filter::Prefix(pair.clone()),
                    Filter::Not(Box::new(Filter::Exact(pair))),
                ])
            } else {
                Filter::Exact(pair)
            }
        })
        .collect();
    Ok(Filter::All(filters))
}

pub(super) fn filter<T>(
    at: &Located<T>,
    field: &str,
    spec: &FilterSpec,
) -> Result<Filter, ConfigError> {
    let set = [
        spec.exact.is_some(),
        spec.prefix.is_some(),
        spec.suffix.is_some(),
        spec.all.is_some(),
        spec.any.is_some(),
        spec.not.is_some(),
        spec.cesql.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(at.error(
            field,
            "needs exactly one of exact, prefix, suffix, all, any, not, cesql",
        ));
    }
    let pairs = |dialect: &str,
                 map: &BTreeMap<String, String>|
     -> Result<Vec<(String, String)>, ConfigError> {
        if map.is_empty() {
            return Err(at.error(
                &format!("{field}.{dialect}"),
                "needs at least one attribute",
            ));
        }
        for (k, v) in map {
            if v.is_empty() {
                return Err(at.error(&format!("{field}.{dialect}.{k}"), "value must not be empty"));
            }
        }
        Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let list = |dialect: &str, items: &[FilterSpec]| -> Result<Vec<Filter>, ConfigError> {
        items
            .iter()
            .enumerate()
            .map(|(i, f)| filter(at, &format!("{field}.{dialect}[{i}]"), f))
            .collect()
    };
    Ok(if let Some(map) = &spec.exact {
        Filter::Exact(pairs("exact", map)?)
    } else if let Some(map) = &spec.prefix {
        Filter::Prefix(pairs("prefix", map)?)
    } else if let Some(map) = &spec.suffix {
        Filter::Suffix(pairs("suffix", map)?)
    } else if let Some(items) = &spec.all {
        Filter::All(list("all", items)?)
    } else if let Some(items) = &spec.any {
        Filter::Any(list("any", items)?)
    } else if let Some(inner) = &spec.not {
        Filter::Not(Box::new(filter(at, &format!("{field}.not"), inner)?))
    } else {
        let text = spec.cesql.as_deref().unwrap_or_default();
        let expression = cesql::Expression::compile(text).map_err(|e| {
            at.error(
                &format!("{field}.cesql"),
                format!("invalid CESQL expression: {e}"),
            )
        })?;
        Filter::Cesql(expression)
    })
}
