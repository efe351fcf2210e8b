//! The bus contract, run against the Kafka bus on librdkafka's mock cluster (in-process, one per
//! test): the same suite as on tansu, with a second, independent Kafka protocol implementation.

#![cfg(feature = "kafka")]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::kafka::{KafkaBus, KafkaConfig};
use herald_buses::{Bus, bus_contract_tests};
use rdkafka::mocking::MockCluster;

struct Kafka {
    /// The cluster lives on a thread of its own (its handle is neither `Send` nor `Sync`) until
    /// this sender is dropped.
    _keep: std::sync::mpsc::Sender<()>,
    brokers: String,
    /// Resolves once the current bus closed its consumers (see `KafkaBus::flushed`).
    flushed: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Kafka {
    fn new() -> Self {
        let (keep, alive) = std::sync::mpsc::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let cluster = MockCluster::new(1).expect("mock cluster");
            tx.send(cluster.bootstrap_servers()).unwrap();
            let _ = alive.recv(); // until the harness is dropped
        });
        Self {
            brokers: rx.recv().expect("mock cluster started"),
            _keep: keep,
            flushed: Mutex::default(),
        }
    }

    async fn connect(&self) -> Arc<dyn Bus> {
        let mut config = KafkaConfig::new(&self.brokers);
        config.partitions = 3;
        // The mock cluster forgets members only when their session times out.
        config
            .extra
            .insert("consumer.session.timeout.ms".into(), "6000".into());
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

bus_contract_tests!(Kafka::new(), no_time_index);
