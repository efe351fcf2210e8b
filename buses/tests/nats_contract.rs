//! The bus contract, run against the NATS bus on a `nats-server` of its own per test. A restart
//! drops the bus (its subscriptions hand back what they did not deliver) and connects a new one
//! to the same server.

#![cfg(feature = "nats")]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::nats::testing::NatsServer;
use herald_buses::nats::{NatsBus, NatsConfig};
use herald_buses::{Bus, bus_contract_tests};

struct Nats {
    server: NatsServer,
    /// Resolves once the current bus handed everything back (see `NatsBus::flushed`).
    flushed: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Nats {
    fn new() -> Self {
        Self {
            server: NatsServer::start(),
            flushed: Mutex::default(),
        }
    }

    async fn connect(&self) -> Arc<dyn Bus> {
        let bus = NatsBus::connect(NatsConfig::new(self.server.url()))
            .await
            .expect("connects");
        *self.flushed.lock().unwrap() = Some(Box::pin(bus.flushed()));
        Arc::new(bus)
    }
}

#[async_trait]
impl Harness for Nats {
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

bus_contract_tests!(Nats::new());
bus_contract_tests!(@cases Nats::new(); a_forgotten_group_loses_its_position);
bus_contract_tests!(@cases Nats::new(); a_groups_backlog_counts_what_it_has_not_acknowledged);
