//! Prometheus metrics, served as text at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub broker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub broker: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub trigger: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `namespace/name`.
    pub source: String,
    /// `GitHubSource`, `PingSource` or `ApiServerSource`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceReasonLabels {
    pub source: String,
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

/// Counters the bus keeps itself, read at each scrape: `herald_events_expired_total{topic}`
/// ([`herald_buses::Bus::expired_events`]). Empty until [`Metrics::read_bus_counters`].
#[derive(Default)]
struct BusCounters {
    bus: std::sync::OnceLock<std::sync::Arc<dyn herald_buses::Bus>>,
}

impl std::fmt::Debug for BusCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusCounters")
    }
}

impl prometheus_client::collector::Collector for BusCounters {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let expired = self
            .bus
            .get()
            .map(|b| b.expired_events())
            .unwrap_or_default();
        if expired.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "events_expired",
            "Events the bus's retention deleted before every trigger consumed them",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (topic, count) in expired {
            let labels = TopicLabels { topic };
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplyRejectLabels {
    pub trigger: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    /// `trigger ns/name`, `redrive ns/name` or `source ns/name`: from configuration.
    pub task: String,
}

/// `loaded` or `failed`: the outcome of re-reading changed `--tls-cert`/`--tls-key` files.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsReloadLabels {
    pub outcome: &'static str,
}

/// `result` of `herald_config_reloads_total`: `applied` or `invalid` (a closed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// Why a TLS handshake did not give a connection: `timeout`, `failed` (not TLS, no common
/// protocol, a client certificate refused by the verifier), `client_certificate` (verified but
/// its subject unreadable).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsHandshakeLabels {
    pub reason: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~52 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

pub struct Metrics {
    registry: Registry,
    pub events_accepted: Family<BrokerLabels, Counter>,
    pub events_rejected: Family<RejectLabels, Counter>,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub retries: Family<TriggerLabels, Counter>,
    pub dead_lettered: Family<TriggerLabels, Counter>,
    pub delivery_latency: Family<TriggerLabels, Histogram, fn() -> Histogram>,
    pub bus_append_latency: Histogram,
    pub in_flight: Family<TriggerLabels, Gauge>,
    pub lag_seconds: Family<TriggerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub ttl_dropped: Family<TriggerLabels, Counter>,
    pub filter_errors: Family<TriggerLabels, Counter>,
    pub source_received: Family<SourceLabels, Counter>,
    pub source_emitted: Family<SourceLabels, Counter>,
    pub source_rejected: Family<SourceReasonLabels, Counter>,
    pub source_sink_failures: Family<SourceReasonLabels, Counter>,
    bus_counters: std::sync::Arc<BusCounters>,
    pub parked: Family<TriggerLabels, Counter>,
    pub replies_rejected: Family<ReplyRejectLabels, Counter>,
    pub bus_corrupt_records: Family<TopicLabels, Counter>,
    pub trigger_subscribed: Family<TriggerLabels, Gauge>,
    pub task_running: Family<TaskLabels, Gauge>,
    pub task_restarts: Family<TaskLabels, Counter>,
    pub tls_reloads: Family<TlsReloadLabels, Counter>,
    /// `herald_delivery_failures_total{sender, reason}`: failed HTTP attempts (outbound).
    pub delivery_failures: Family<crate::outbound::FailureLabels, Counter>,
    pub config_reloads: Family<ReloadLabels, Counter>,
    pub tls_handshake_failures: Family<TlsHandshakeLabels, Counter>,
    pub trigger_paused: Family<TriggerLabels, Gauge>,
    pub backlog_events: Family<TriggerLabels, Gauge>,
    /// Background tasks not doing their job now (not subscribed, ended, panicked), with why;
    /// `/readyz` answers 503 naming them.
    pub unready_tasks: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let m = Metrics {
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            deliveries: Family::default(),
            retries: Family::default(),
            dead_lettered: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            bus_append_latency: latency_histogram(),
            in_flight: Family::default(),
            lag_seconds: Family::default(),
            ttl_dropped: Family::default(),
            filter_errors: Family::default(),
            source_received: Family::default(),
            source_emitted: Family::default(),
            source_rejected: Family::default(),
            source_sink_failures: Family::default(),
            bus_counters: Default::default(),
            parked: Family::default(),
            replies_rejected: Family::default(),
            bus_corrupt_records: Family::default(),
            trigger_subscribed: Family::default(),
            task_running: Family::default(),
            task_restarts: Family::default(),
            tls_reloads: Family::default(),
            delivery_failures: Family::default(),
            config_reloads: Family::default(),
            tls_handshake_failures: Family::default(),
            trigger_paused: Family::default(),
            backlog_events: Family::default(),
            unready_tasks: Default::default(),
            registry: Registry::default(),
        };
        registry.register_collector(Box::new(m.bus_counters.clone()));
        registry.register(
            "events_accepted",
            "Events made durable by ingress",
            m.events_accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused by ingress, by reason",
            m.events_rejected.clone(),
        );
        registry.register("deliveries", "Events finished by a trigger, by outcome (delivered, dead_lettered, parked, filtered; exhausted counts events whose attempts all failed, which then go to the dead-letter sink or the parking lot)", m.deliveries.clone());
        registry.register(
            "delivery_retries",
            "Delivery attempts after the first",
            m.retries.clone(),
        );
        registry.register(
            "dead_lettered",
            "Events sent to a dead-letter sink",
            m.dead_lettered.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from arrival at ingress to successful delivery",
            m.delivery_latency.clone(),
        );
        registry.register(
            "bus_append_latency_seconds",
            "Time for the bus to make a publish durable",
            m.bus_append_latency.clone(),
        );
        registry.register(
            "trigger_in_flight_events",
            "Events a trigger took from the bus and has not finished",
            m.in_flight.clone(),
        );
        registry.register("trigger_lag_seconds", "Age of the newest event a trigger took from the bus, when taken; while it takes nothing (paused, stuck) and its backlog is not empty, grows with the time since", m.lag_seconds.clone());
        registry.register(
            "ttl_dropped",
            "Reply events dropped by the knativebrokerttl loop guard",
            m.ttl_dropped.clone(),
        );
        registry.register(
            "source_events_received",
            "Events a source received or produced (webhook requests, object changes, scheduled \
             times), before filtering",
            m.source_received.clone(),
        );
        registry.register(
            "source_events_emitted",
            "Events a source's sink accepted",
            m.source_emitted.clone(),
        );
        registry.register(
            "source_events_rejected",
            "Events a source did not emit, by reason (signature, filtered, duplicate, ...)",
            m.source_rejected.clone(),
        );
        registry.register(
            "source_sink_failures",
            "Sends to a source's sink that failed, by reason (each attempt of a source counts)",
            m.source_sink_failures.clone(),
        );
        registry.register(
            "parked_events",
            "Events written to a trigger's parking lot (attempts and dead-letter sink exhausted)",
            m.parked.clone(),
        );
        registry.register(
            "replies_rejected",
            "Subscriber replies not published, by reason (batch, invalid, unreadable, \
             refused_by_broker); the delivery itself counts as delivered",
            m.replies_rejected.clone(),
        );
        registry.register(
            "bus_corrupt_records",
            "Stored records that could not be decoded, skipped and acknowledged",
            m.bus_corrupt_records.clone(),
        );
        registry.register(
            "trigger_subscribed",
            "1 while a trigger's bus subscription is open (its own topic and its redrive topic)",
            m.trigger_subscribed.clone(),
        );
        registry.register(
            "task_running",
            "1 while a background task (trigger dispatcher, redrive reader, source) runs",
            m.task_running.clone(),
        );
        registry.register(
            "task_restarts",
            "Background tasks restarted after they ended or panicked before shutdown",
            m.task_restarts.clone(),
        );
        registry.register(
            "tls_reloads",
            "Changed --tls-cert/--tls-key files re-read, by outcome (loaded; failed: the previous \
             certificate stays in use)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "delivery_failures",
            "Failed HTTP delivery attempts of a trigger or source, by reason (egress_denied, \
             connect, timeout, status)",
            m.delivery_failures.clone(),
        );
        registry.register(
            "config_reloads",
            "Reloads of the -f files (watched or SIGHUP) by result: applied or invalid",
            m.config_reloads.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS connections closed before HTTP, by reason (timeout, failed, client_certificate)",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "trigger_paused",
            "1 while a trigger is paused (herald.dev/paused or herald pause): it delivers nothing",
            m.trigger_paused.clone(),
        );
        registry.register(
            "trigger_backlog_events",
            "Events of a trigger's consumer group not acknowledged yet, as the bus tells (embedded, memory, NATS), every --lag-probe-interval",
            m.backlog_events.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Reads `bus`'s own counters at every scrape from now on (once; later calls are ignored).
    pub fn read_bus_counters(&self, bus: std::sync::Arc<dyn herald_buses::Bus>) {
        let _ = self.bus_counters.bus.set(bus);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn reply_rejected(&self, trigger: &str, reason: &'static str) {
        self.replies_rejected
            .get_or_create(&ReplyRejectLabels {
                trigger: trigger.to_owned(),
                reason,
            })
            .inc();
    }

    pub fn corrupt_record(&self, topic: &str) {
        self.bus_corrupt_records
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// Marks `task` as not doing its job (`Some(why)`) or doing it (`None`).
    pub fn set_unready(&self, task: &str, why: Option<String>) {
        let mut tasks = self.unready_tasks.lock().unwrap();
        match why {
            Some(why) => tasks.insert(task.to_owned(), why),
            None => tasks.remove(task),
        };
    }

    /// `task: why` for every task not doing its job, in name order.
    pub fn unready(&self) -> Vec<String> {
        let tasks = self.unready_tasks.lock().unwrap();
        tasks.iter().map(|(t, why)| format!("{t}: {why}")).collect()
    }

    pub fn trigger(&self, trigger: &str) -> TriggerLabels {
        TriggerLabels {
            trigger: trigger.to_owned(),
        }
    }
}

/// One trigger's metric handles, looked up once so the delivery path only touches atomics.
#[derive(Clone)]
pub struct TriggerMetrics {
    pub delivered: Counter,
    pub filtered: Counter,
    pub exhausted: Counter,
    pub dead_lettered: Counter,
    pub dead_lettered_total: Counter,
    pub retries: Counter,
    pub latency: Histogram,
    pub in_flight: Gauge,
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub ttl_dropped: Counter,
    pub filter_errors: Counter,
    pub parked: Counter,
    pub parked_outcome: Counter,
}

impl TriggerMetrics {
    pub fn new(metrics: &Metrics, trigger: &str) -> Self {
        let labels = metrics.trigger(trigger);
        let outcome = |outcome: &'static str| {
            metrics
                .deliveries
                .get_or_create(&OutcomeLabels {
                    trigger: trigger.to_owned(),
                    outcome,
                })
                .clone()
        };
        Self {
            delivered: outcome("delivered"),
            filtered: outcome("filtered"),
            exhausted: outcome("exhausted"),
            dead_lettered: outcome("dead_lettered"),
            dead_lettered_total: metrics.dead_lettered.get_or_create(&labels).clone(),
            retries: metrics.retries.get_or_create(&labels).clone(),
            latency: metrics.delivery_latency.get_or_create(&labels).clone(),
            in_flight: metrics.in_flight.get_or_create(&labels).clone(),
            lag_seconds: metrics.lag_seconds.get_or_create(&labels).clone(),
            ttl_dropped: metrics.ttl_dropped.get_or_create(&labels).clone(),
            filter_errors: metrics.filter_errors.get_or_create(&labels).clone(),
            parked: metrics.parked.get_or_create(&labels).clone(),
            parked_outcome: outcome("parked"),
        }
    }
}

/// One source's metric handles.
#[derive(Clone)]
pub struct SourceMetrics {
    source: String,
    kind: &'static str,
    metrics: std::sync::Arc<Metrics>,
    pub received: Counter,
    pub emitted: Counter,
}

impl SourceMetrics {
    pub fn new(metrics: std::sync::Arc<Metrics>, source: String, kind: &'static str) -> Self {
        let labels = SourceLabels {
            source: source.clone(),
            kind,
        };
        let received = metrics.source_received.get_or_create(&labels).clone();
        let emitted = metrics.source_emitted.get_or_create(&labels).clone();
        Self {
            received,
            emitted,
            source,
            kind,
            metrics,
        }
    }

    fn labels(&self, reason: &'static str) -> SourceReasonLabels {
        SourceReasonLabels {
            source: self.source.clone(),
            kind: self.kind,
            reason,
        }
    }

    pub fn rejected(&self, reason: &'static str) {
        self.metrics
            .source_rejected
            .get_or_create(&self.labels(reason))
            .inc();
    }

    pub fn sink_failed(&self, reason: &'static str) {
        self.metrics
            .source_sink_failures
            .get_or_create(&self.labels(reason))
            .inc();
    }
}
