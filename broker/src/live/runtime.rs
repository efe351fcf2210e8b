//! The running set: brokers in ingress, one pair of dispatchers per trigger, the sources.
//!
//! [`Runtime::apply`] takes a whole new [`Config`] and changes only what differs:
//! - a trigger whose resolved configuration is identical is not touched (its dispatchers
//!   keep their subscription, nothing is redelivered or skipped);
//! - a changed trigger is stopped the way shutdown stops it (no new reads, in-flight
//!   deliveries settle within [`SHUTDOWN_GRACE`](crate::dispatch::SHUTDOWN_GRACE), what did
//!   not settle stays unacknowledged) and started again with the same consumer group, so the
//!   new filter/subscriber/delivery takes over at the first event the old one did not finish;
//! - a removed trigger is stopped and its cursor forgotten (its parking lot and redrive
//!   topics stay on the bus, listable with `herald parked`);
//! - a paused trigger (`herald.dev/paused`) runs no dispatcher: its group keeps its position;
//! - brokers: new ones are served at once, removed ones answer 404;
//! - sources: if any source changed, all of them are stopped and started again (their state
//!   — GitHub delivery ids, Ping progress — is on disk, so nothing is emitted twice).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use herald_buses::Bus;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, SourceConfig, SourceKind, TriggerConfig};
use crate::dispatch::health::{HealthTable, LastError};
use crate::dispatch::parked::ParkingLot;
use crate::dispatch::supervise::{self, DispatcherSpec};
use crate::dispatch::{TriggerContext, admin::TriggerNames, sender::Sender};
use crate::ingress::Ingress;
use crate::sources::{self, SourceEnv, github::LiveEndpoints};

/// How long starting a trigger waits for its first subscription before going on without it
/// (it keeps trying in the background; `/readyz` names it meanwhile).
const FIRST_SUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the runtime starts things with.
pub struct RuntimeEnv {
    pub bus: Arc<dyn Bus>,
    pub ingress: Arc<Ingress>,
    pub sender: Sender,
    pub window: usize,
    pub jitter: bool,
    pub sources: SourceEnv,
    /// The GitHub webhook route's endpoints, replaced when the sources restart.
    pub github: Arc<LiveEndpoints>,
    /// The admin endpoints' list of triggers.
    pub trigger_names: TriggerNames,
    /// Turns true at shutdown; every dispatcher and source stops then.
    pub stop: watch::Receiver<bool>,
    /// How often each trigger's backlog is asked for (`--lag-probe-interval`; 0 never).
    pub lag_probe: std::time::Duration,
}

/// One trigger as it runs.
struct RunningTrigger {
    config: TriggerConfig,
    /// Stops this trigger's dispatchers only (shutdown is forwarded to it).
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningTrigger {
    /// Stops the dispatchers and waits until their in-flight deliveries settled (or were
    /// handed back unacknowledged after the grace period).
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

struct RunningSources {
    configs: Vec<SourceConfig>,
    stop: watch::Sender<bool>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

/// The running set, changed by [`Runtime::apply`] one configuration at a time.
pub struct Runtime {
    env: RuntimeEnv,
    state: tokio::sync::Mutex<State>,
    /// The configuration applied last, readable without waiting for an apply in progress.
    current: std::sync::RwLock<Option<Config>>,
    /// Every trigger's lag and last error, kept across its restarts.
    health: HealthTable,
}

#[derive(Default)]
struct State {
    triggers: HashMap<String, RunningTrigger>,
    sources: Option<RunningSources>,
}

/// What one [`Runtime::apply`] changed (logged, and returned for tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: usize,
    pub sources_restarted: bool,
}

impl Runtime {
    pub fn new(env: RuntimeEnv) -> Self {
        Self {
            env,
            state: tokio::sync::Mutex::new(State::default()),
            current: std::sync::RwLock::default(),
            health: HealthTable::default(),
        }
    }

    /// The configuration applied last (`None` before the first apply).
    pub fn config_now(&self) -> Option<Config> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn has_config(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The trigger's last failed delivery attempt (`namespace/name`), if any.
    pub fn last_error(&self, trigger: &str) -> Option<LastError> {
        self.health.last_error(trigger)
    }

    pub fn bus(&self) -> Arc<dyn Bus> {
        self.env.bus.clone()
    }

    /// `/readyz`'s reasons now (`task: reason` lines).
    pub fn unready(&self) -> Vec<String> {
        self.env.ingress.metrics.unready()
    }

    /// Switches to `config` (already validated): see the module documentation.
    pub async fn apply(&self, config: Config) -> anyhow::Result<Changes> {
        let mut state = self.state.lock().await;
        if *self.env.stop.borrow() {
            anyhow::bail!("shutting down: configuration not applied");
        }
        let mut changes = Changes::default();
        let wanted: HashMap<String, &TriggerConfig> =
            config.triggers.iter().map(|t| (t.to_string(), t)).collect();
        // Stop what is removed or changed first: a removed broker's triggers are gone before
        // the broker is, and a changed trigger's old dispatcher never overlaps the new one.
        let names: Vec<String> = state.triggers.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(&name)
                .is_some_and(|t| same_trigger(t, &state.triggers[&name].config));
            if keep {
                changes.unchanged += 1;
                continue;
            }
            let running = state.triggers.remove(&name).expect("listed above");
            running.stop().await;
            if wanted.contains_key(&name) {
                changes.restarted.push(name);
            } else {
                let metrics = &self.env.ingress.metrics;
                metrics.trigger_paused.remove(&metrics.trigger(&name));
                metrics.backlog_events.remove(&metrics.trigger(&name));
                self.health.remove(&name);
                changes.stopped.push(name);
            }
        }
        // A restarted trigger may have moved to another broker: its group on the old topic
        // goes like a removed trigger's.
        let gone = changes.stopped.len() + changes.restarted.len();
        self.forget_removed(&config, gone).await;
        // EventPolicies are swapped before the broker table: a broker that appears is never
        // reachable under the previous policies.
        self.env.ingress.authorizer().reload(&config);
        self.env
            .ingress
            .set_brokers(config.brokers.iter().map(|b| b.id.clone()));
        for trigger in &config.triggers {
            let name = trigger.to_string();
            if state.triggers.contains_key(&name) {
                continue;
            }
            let running = self.start_trigger(trigger.clone()).await;
            if !changes.restarted.contains(&name) {
                changes.started.push(name.clone());
            }
            state.triggers.insert(name, running);
        }
        *self
            .env
            .trigger_names
            .write()
            .unwrap_or_else(|e| e.into_inner()) = wanted.keys().cloned().collect();
        let sources_changed = match &state.sources {
            None => true,
            Some(running) => !same_sources(&running.configs, &config.sources),
        };
        if sources_changed {
            if let Some(running) = state.sources.take() {
                let _ = running.stop.send(true);
                if let Some(watcher) = running.watcher {
                    let _ = watcher.await;
                }
            }
            state.sources = Some(self.start_sources(&config.sources).await?);
            changes.sources_restarted = true;
        }
        tracing::info!(started = ?changes.started, restarted = ?changes.restarted,
            stopped = ?changes.stopped, unchanged = changes.unchanged,
            sources_restarted = changes.sources_restarted, "configuration applied");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(changes)
    }

    /// Stops every dispatcher and source (after the shutdown signal), waiting for in-flight
    /// deliveries to settle.
    pub async fn stop_all(&self) {
        let mut state = self.state.lock().await;
        for (_, running) in state.triggers.drain() {
            running.stop().await;
        }
        if let Some(running) = state.sources.take() {
            let _ = running.stop.send(true);
            if let Some(watcher) = running.watcher {
                let _ = watcher.await;
            }
        }
    }

    /// After `gone` triggers stopped or restarted, forgets the groups of every broker's topic
    /// that no configured trigger of that broker keeps.
    async fn forget_removed(&self, config: &Config, gone: usize) {
        if gone == 0 {
            return;
        }
        let mut topics = HashSet::new();
        // A flow's entry is another name of its first channel's topic, whose groups the
        // channel's own entry keeps.
        for broker in config.brokers.iter().filter(|b| !b.id.is_alias()) {
            topics.insert(broker.id.clone());
        }
        for broker in topics {
            let groups: Vec<String> = config
                .triggers
                .iter()
                .filter(|t| t.broker == broker)
                .map(TriggerConfig::group)
                .collect();
            let keep: Vec<&str> = groups.iter().map(String::as_str).collect();
            match self
                .env
                .bus
                .forget_other_groups(&broker.topic(), &keep)
                .await
            {
                Ok(forgotten) => {
                    for group in forgotten {
                        tracing::info!(%group, %broker, "forgot the cursor of a removed trigger");
                    }
                }
                Err(e) => {
                    tracing::warn!(%broker, error = %e, "forgetting removed triggers' cursors failed")
                }
            }
        }
    }

    async fn start_trigger(&self, trigger: TriggerConfig) -> RunningTrigger {
        let (stop_tx, stop_rx) = watch::channel(false);
        forward_shutdown(self.env.stop.clone(), stop_tx.clone());
        let mut tasks = JoinSet::new();
        let bus = &self.env.bus;
        let metrics = &self.env.ingress.metrics;
        metrics
            .trigger_paused
            .get_or_create(&metrics.trigger(&trigger.to_string()))
            .set(i64::from(trigger.paused));
        let health = self.health.of(metrics, &trigger.to_string());
        tasks.spawn(health.lag.clone().probe(
            bus.clone(),
            trigger.broker.topic(),
            trigger.group(),
            self.env.lag_probe,
            stop_rx.clone(),
        ));
        if trigger.paused {
            // The group must exist to keep a position from now on: join it once, read nothing.
            let first = tokio::time::timeout(
                FIRST_SUBSCRIBE,
                bus.subscribe_from(
                    &trigger.broker.topic(),
                    &trigger.group(),
                    trigger.start_from,
                ),
            )
            .await;
            if let Ok(Err(e)) = &first {
                tracing::warn!(trigger = %trigger, error = %e, "joining the paused trigger's group failed; it starts where the group is when resumed");
            }
            tracing::info!(trigger = %trigger, "trigger paused: nothing is delivered until it is resumed");
            return RunningTrigger {
                config: trigger,
                stop: stop_tx,
                tasks,
            };
        }
        let config = trigger.clone();
        let lot = ParkingLot::of(&trigger);
        let ctx = Arc::new(
            TriggerContext::new(
                trigger,
                self.env.sender.clone(),
                self.env.ingress.clone(),
                bus.clone(),
                self.env.jitter,
            )
            .with_health(health),
        );
        let [main_task, redrive_task] = supervise::task_names(&ctx.label);
        let specs = [
            DispatcherSpec {
                ctx: ctx.clone(),
                bus: bus.clone(),
                topic: ctx.trigger.broker.topic(),
                group: ctx.trigger.group(),
                task: main_task,
                window: self.env.window,
                lot: Some(lot.clone()),
                start: ctx.trigger.start_from,
                abandon: self.env.stop.clone(),
            },
            // Redriven parked events come back to this trigger only, through its own topic.
            DispatcherSpec {
                ctx: ctx.clone(),
                bus: bus.clone(),
                topic: lot.redrive.clone(),
                group: lot.redrive.clone(),
                task: redrive_task,
                window: self.env.window,
                lot: None,
                start: herald_buses::StartPosition::Latest,
                abandon: self.env.stop.clone(),
            },
        ];
        for spec in specs {
            // The first subscription is awaited (briefly) so that a new trigger on a local bus
            // counts every event accepted once it is applied; a network bus that cannot
            // assign the group yet must not block: it keeps trying in the background, and
            // /readyz answers 503 naming it meanwhile.
            let first = tokio::time::timeout(
                FIRST_SUBSCRIBE,
                bus.subscribe_from(&spec.topic, &spec.group, spec.start),
            )
            .await;
            // A configuration that was valid never fails to apply because of the bus: a name
            // the bus refuses is retried slowly and shown in /readyz, like a bus that is down.
            let first = match first {
                Ok(Ok(subscription)) => Some(subscription),
                outcome => {
                    let why = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {FIRST_SUBSCRIBE:?}"),
                    };
                    tracing::warn!(task = %spec.task, error = %why, "trigger not subscribed yet; retrying in the background");
                    None
                }
            };
            supervise::spawn(&mut tasks, spec, first, stop_rx.clone());
        }
        RunningTrigger {
            config,
            stop: stop_tx,
            tasks,
        }
    }

    async fn start_sources(&self, configs: &[SourceConfig]) -> anyhow::Result<RunningSources> {
        let (stop_tx, stop_rx) = watch::channel(false);
        forward_shutdown(self.env.stop.clone(), stop_tx.clone());
        let mut started = sources::start(configs, &self.env.sources, stop_rx.clone()).await?;
        self.env.github.replace(started.github.clone());
        let watcher = crate::server::watch_sources(
            std::mem::take(&mut started.tasks),
            self.env.ingress.metrics.clone(),
            stop_rx,
        );
        Ok(RunningSources {
            configs: configs.to_vec(),
            stop: stop_tx,
            watcher: Some(watcher),
        })
    }
}

/// Sets `stop` when `shutdown` turns true; ends early once nobody listens to `stop`.
fn forward_shutdown(mut shutdown: watch::Receiver<bool>, stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => { let _ = stop.send(true); }
            _ = stop.closed() => {}
        }
    });
}

/// Two resolved triggers run the same way. Compared through `Debug`, which prints every
/// field of the resolved model (filters included), so a new model field is compared without
/// anyone remembering to; the signing secrets, which `Debug` hides, are compared apart.
fn same_trigger(a: &TriggerConfig, b: &TriggerConfig) -> bool {
    same_signer(a.signer.as_deref(), b.signer.as_deref()) && format!("{a:?}") == format!("{b:?}")
}

/// Two source lists run the same way: the same `Debug` and the same secrets `Debug` hides
/// (GitHub webhook secrets, current and previous; delivery signing secrets).
fn same_sources(a: &[SourceConfig], b: &[SourceConfig]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let secrets = match (&x.kind, &y.kind) {
                (SourceKind::GitHub(x), SourceKind::GitHub(y)) => {
                    x.secret.same_as(&y.secret)
                        && match (&x.previous_secret, &y.previous_secret) {
                            (Some(x), Some(y)) => x.same_as(y),
                            (None, None) => true,
                            _ => false,
                        }
                }
                _ => true,
            };
            secrets
                && same_signer(x.signer.as_deref(), y.signer.as_deref())
                && format!("{x:?}") == format!("{y:?}")
        })
}

fn same_signer(
    a: Option<&crate::outbound::WebhookSigner>,
    b: Option<&crate::outbound::WebhookSigner>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    }
}
