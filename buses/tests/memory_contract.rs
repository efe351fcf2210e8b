//! The bus contract, run against the memory bus.

use std::sync::Arc;

use async_trait::async_trait;
use herald_buses::contract::Harness;
use herald_buses::memory::MemoryBus;
use herald_buses::{Bus, bus_contract_tests};

struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn start(&self) -> Arc<dyn Bus> {
        Arc::new(MemoryBus::default())
    }
    async fn restart(&self, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
        bus
    }
    fn durable(&self) -> bool {
        false
    }
}

bus_contract_tests!(Memory, not_durable);
bus_contract_tests!(@cases Memory; a_forgotten_group_loses_its_position);
bus_contract_tests!(@cases Memory; a_groups_backlog_counts_what_it_has_not_acknowledged);
