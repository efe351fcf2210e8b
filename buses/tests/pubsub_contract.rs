//! The bus contract, run against the Pub/Sub bus on an emulator of its own per test. A restart
//! drops the bus (its subscriptions hand back what they did not deliver) and connects a new one
//! to the same emulator.
//!
//! Message ordering is off here: the emulator does not implement `seek` on ordered
//! subscriptions, which the start-position cases need. `pubsub_failures.rs` checks ordering
//! keys on ordered subscriptions.

#![cfg(feature = "pubsub")]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::pubsub::testing::PubsubEmulator;
use herald_buses::pubsub::{Endpoint, PubsubBus, PubsubConfig};
use herald_buses::{Bus, bus_contract_tests};

struct Pubsub {
    emulator: PubsubEmulator,
    flushed: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Pubsub {
    fn new() -> Self {
        Self {
            emulator: PubsubEmulator::start(),
            flushed: Mutex::default(),
        }
    }

    async fn connect(&self) -> Arc<dyn Bus> {
        let mut config = PubsubConfig::new(
            "herald-test",
            Endpoint::Emulator {
                host: self.emulator.host(),
            },
        );
        config.message_ordering = false;
        let bus = PubsubBus::connect(config).await.expect("connects");
        *self.flushed.lock().unwrap() = Some(Box::pin(bus.flushed()));
        Arc::new(bus)
    }
}

#[async_trait]
impl Harness for Pubsub {
    async fn start(&self) -> Arc<dyn Bus> {
        self.connect().await
    }
    async fn restart(&self, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
        assert_eq!(Arc::strong_count(&bus), 1, "the test still holds the bus");
        drop(bus);
        let flushed = self.flushed.lock().unwrap().take().expect("started");
        tokio::time::timeout(Duration::from_secs(10), flushed)
            .await
            .expect("the dropped bus flushes its acknowledgements");
        self.connect().await
    }
    fn durable(&self) -> bool {
        true
    }
}

bus_contract_tests!(Pubsub::new());
bus_contract_tests!(@cases Pubsub::new(); a_forgotten_group_loses_its_position);
