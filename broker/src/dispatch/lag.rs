//! A trigger's lag (`herald_trigger_lag_seconds`) kept honest when it takes nothing.
//!
//! The dispatcher sets the lag to the age of each event it takes from the bus. A trigger that
//! takes nothing — paused, or stuck with its in-flight window full of retrying deliveries —
//! would show the age of the last event it took, forever. So a probe asks the bus every
//! `--lag-probe-interval` how many events the trigger's group has not acknowledged
//! ([`Bus::backlog`], `herald_trigger_backlog_events`):
//! - none: the trigger is caught up, its lag is 0;
//! - some, and the dispatcher took an event within the last interval: it is moving, its own
//!   measure stands;
//! - some, and it took nothing since: the lag grows with the time since the last event was
//!   taken (from the lag it had then), so it keeps rising until the trigger reads again.
//!
//! Buses that cannot tell their backlog (Kafka) keep the dispatcher's measure only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_buses::Bus;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often a trigger's backlog is asked for, by default.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

type SecondsGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// One trigger's lag, shared by its dispatchers and its probe.
pub struct Lag {
    gauge: SecondsGauge,
    backlog: Gauge,
    /// When the lag was last measured from an event (or the probe started counting), and the
    /// lag then.
    taken: Mutex<Option<(Instant, f64)>>,
}

impl Lag {
    pub fn new(gauge: SecondsGauge, backlog: Gauge) -> Arc<Self> {
        Arc::new(Self {
            gauge,
            backlog,
            taken: Mutex::new(None),
        })
    }

    /// The dispatcher took an event that arrived `age` seconds ago.
    pub fn taken(&self, age: f64) {
        let age = age.max(0.0);
        self.gauge.set(age);
        *self.taken.lock().unwrap() = Some((Instant::now(), age));
    }

    /// The bus says `backlog` events are not acknowledged; `stale` is how long without a
    /// taken event counts as taking nothing.
    fn observe(&self, backlog: u64, stale: Duration) {
        self.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let mut taken = self.taken.lock().unwrap();
        if backlog == 0 {
            self.gauge.set(0.0);
            *taken = None;
            return;
        }
        let now = Instant::now();
        match *taken {
            Some((at, age)) if now.duration_since(at) > stale => {
                self.gauge.set(age + now.duration_since(at).as_secs_f64());
            }
            Some(_) => {}
            // Nothing taken since the probe started: count from now, from the lag shown.
            None => *taken = Some((now, self.gauge.get())),
        }
    }

    /// Asks `bus` for the backlog of `group` on `topic` every `interval` until `stop`.
    pub async fn probe(
        self: Arc<Self>,
        bus: Arc<dyn Bus>,
        topic: String,
        group: String,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        if interval.is_zero() {
            return;
        }
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match bus.backlog(&topic, &group).await {
                Ok(Some(backlog)) => self.observe(backlog, interval),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(%group, error = %e, "asking the bus for a backlog failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag() -> Arc<Lag> {
        Lag::new(SecondsGauge::default(), Gauge::default())
    }

    #[tokio::test(start_paused = true)]
    async fn lag_grows_while_nothing_is_taken_and_falls_to_zero_when_caught_up() {
        let lag = lag();
        lag.taken(0.5);
        let stale = Duration::from_secs(1);
        tokio::time::advance(Duration::from_secs(3)).await;
        lag.observe(10, stale);
        assert!((lag.gauge.get() - 3.5).abs() < 1e-6, "{}", lag.gauge.get());
        assert_eq!(lag.backlog.get(), 10);
        tokio::time::advance(Duration::from_secs(2)).await;
        lag.observe(10, stale);
        assert!((lag.gauge.get() - 5.5).abs() < 1e-6);
        lag.observe(0, stale);
        assert_eq!(lag.gauge.get(), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_trigger_keeps_its_own_measure() {
        let lag = lag();
        lag.taken(0.2);
        tokio::time::advance(Duration::from_millis(500)).await;
        lag.observe(3, Duration::from_secs(1));
        assert!((lag.gauge.get() - 0.2).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_trigger_counts_from_the_first_probe_that_sees_a_backlog() {
        let lag = lag();
        lag.observe(4, Duration::from_secs(1));
        assert_eq!(lag.gauge.get(), 0.0);
        tokio::time::advance(Duration::from_secs(2)).await;
        lag.observe(5, Duration::from_secs(1));
        assert!((lag.gauge.get() - 2.0).abs() < 1e-6);
    }
}
