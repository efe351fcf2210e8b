//! The bus contract, run against the embedded bus. A restart drops the bus (which persists its
//! cursors and releases the directory) and reopens the same directory.

use std::sync::Arc;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::embedded::{EmbeddedBus, EmbeddedConfig};
use herald_buses::{Bus, bus_contract_tests};

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn open(&self) -> Arc<dyn Bus> {
        let mut config = EmbeddedConfig::new(self.dir.path());
        config.segment_bytes = 4096; // many segments, so reads cross segment boundaries
        Arc::new(EmbeddedBus::open(config).unwrap())
    }
}

#[async_trait]
impl Harness for Embedded {
    async fn start(&self) -> Arc<dyn Bus> {
        self.open()
    }
    async fn restart(&self, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
        // The last handle: dropping it persists cursors and releases the directory's lock.
        assert_eq!(Arc::strong_count(&bus), 1, "the test still holds the bus");
        drop(bus);
        self.open()
    }
    fn durable(&self) -> bool {
        true
    }
}

bus_contract_tests!(Embedded::new());
bus_contract_tests!(@cases Embedded::new(); a_forgotten_group_loses_its_position);
bus_contract_tests!(@cases Embedded::new(); a_groups_backlog_counts_what_it_has_not_acknowledged);
