//! The bus contract, run against the Kafka bus on a `tansu` broker of its own per test. A restart
//! drops the bus (its consumers commit what was acknowledged and leave their groups) and connects
//! a new one to the same broker.

#![cfg(feature = "kafka")]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::kafka::KafkaBus;
use herald_buses::kafka::testing::Tansu;
use herald_buses::{Bus, bus_contract_tests};

struct Kafka {
    broker: Tansu,
    /// Resolves once the current bus closed its consumers (see `KafkaBus::flushed`).
    flushed: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Kafka {
    fn new() -> Self {
        Self {
            broker: Tansu::start(),
            flushed: Mutex::default(),
        }
    }

    async fn connect(&self) -> Arc<dyn Bus> {
        let mut config = self.broker.config();
        config.partitions = 3;
        let bus = KafkaBus::connect(config).await.expect("connects");
        *self.flushed.lock().unwrap() = Some(Box::pin(bus.flushed()));
        Arc::new(bus)
    }
}

#[async_trait]
impl Harness for Kafka {
    async fn start(&self) -> Arc<dyn Bus> {
        self.connect().await
    }
    async fn restart(&self, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
        assert_eq!(Arc::strong_count(&bus), 1, "the test still holds the bus");
        drop(bus);
        let flushed = self.flushed.lock().unwrap().take().expect("started");
        tokio::time::timeout(Duration::from_secs(30), flushed)
            .await
            .expect("the dropped bus closes its consumers");
        self.connect().await
    }
    fn durable(&self) -> bool {
        true
    }
}

bus_contract_tests!(Kafka::new());
