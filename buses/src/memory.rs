//! The in-process bus: no durability, bounded, for tests and demos.
//!
//! Each topic is a queue of events with one cursor per consumer group. Events every group has
//! acknowledged are dropped; when a topic holds `capacity` unacknowledged events, publishing
//! answers [`BusError::Overloaded`] instead of growing without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::ack::AckTracker;
use crate::{Bus, BusError, Delivery, Event, StartPosition, Subscription};

/// Default bound on events a topic keeps for its slowest group: with 1 KiB events about
/// 15 MiB of events, so an overloaded memory bus answers 503 long before memory runs short.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct MemoryBus {
    capacity: usize,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

#[derive(Debug)]
struct Topic {
    log: Mutex<TopicLog>,
    /// Position after the last published event; subscribers wait on it.
    end: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct TopicLog {
    /// Position of `events[0]`.
    base: u64,
    events: VecDeque<Event>,
    groups: HashMap<String, Arc<AckTracker>>,
}

impl TopicLog {
    fn end(&self) -> u64 {
        self.base + self.events.len() as u64
    }

    /// Drops events every group acknowledged.
    fn trim(&mut self) {
        let floor = self
            .groups
            .values()
            .map(|g| g.committed())
            .min()
            .unwrap_or_else(|| self.end());
        while self.base < floor && self.events.pop_front().is_some() {
            self.base += 1;
        }
    }
}

impl MemoryBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = self.topics.lock().unwrap();
        topics
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Topic {
                    log: Mutex::new(TopicLog::default()),
                    end: watch::Sender::new(0),
                })
            })
            .clone()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        let topic = self.topic(topic);
        let end = {
            let mut log = topic.log.lock().unwrap();
            log.trim();
            if log.events.len() + events.len() > self.capacity {
                return Err(BusError::Overloaded {
                    reason: format!("topic holds {} unacknowledged events", log.events.len()),
                });
            }
            log.events.extend(events.iter().cloned());
            log.end()
        };
        topic.end.send_replace(end);
        Ok(())
    }

    async fn backlog(&self, topic: &str, group: &str) -> Result<Option<u64>, BusError> {
        let topic = self.topic(topic);
        let log = topic.log.lock().unwrap();
        Ok(log
            .groups
            .get(group)
            .map(|g| log.end().saturating_sub(g.committed())))
    }

    async fn forget_group(&self, topic: &str, group: &str) -> Result<(), BusError> {
        self.topic(topic).log.lock().unwrap().groups.remove(group);
        Ok(())
    }

    async fn forget_other_groups(
        &self,
        topic: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, BusError> {
        Ok(self.forget(topic, keep))
    }

    /// `Earliest` is the oldest event some group has not acknowledged: the memory bus keeps
    /// nothing else.
    async fn subscribe_from(
        &self,
        topic_name: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let topic = self.topic(topic_name);
        let tracker = {
            let mut log = topic.log.lock().unwrap();
            let first = match start {
                StartPosition::Latest => log.end(),
                StartPosition::Earliest => log.base,
                StartPosition::Time(time) => log
                    .events
                    .iter()
                    .position(|e| crate::arrival_time(e).is_some_and(|t| t >= time))
                    .map_or(log.end(), |i| log.base + i as u64),
            };
            log.groups
                .entry(group.to_owned())
                .or_insert_with(|| Arc::new(AckTracker::new(first)))
                .clone()
        };
        Ok(Box::new(MemorySubscription {
            next: tracker.committed(),
            end: topic.end.subscribe(),
            topic,
            tracker,
        }))
    }
}

impl MemoryBus {
    fn forget(&self, topic_name: &str, keep: &[&str]) -> Vec<String> {
        let topic = self.topic(topic_name);
        let mut log = topic.log.lock().unwrap();
        let mut forgotten: Vec<String> = log
            .groups
            .keys()
            .filter(|g| !keep.contains(&g.as_str()))
            .cloned()
            .collect();
        forgotten.sort();
        for group in &forgotten {
            log.groups.remove(group);
        }
        forgotten
    }
}

struct MemorySubscription {
    topic: Arc<Topic>,
    tracker: Arc<AckTracker>,
    end: watch::Receiver<u64>,
    next: u64,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            {
                let log = self.topic.log.lock().unwrap();
                if self.next < log.base {
                    self.next = log.base;
                }
                if self.next < log.end() {
                    let event = log.events[(self.next - log.base) as usize].clone();
                    let position = self.next;
                    self.next += 1;
                    return Ok(Delivery::new(event, position, self.tracker.clone()));
                }
            }
            self.end
                .changed()
                .await
                .map_err(|_| BusError::unavailable("memory bus dropped"))?;
        }
    }
}

impl crate::Acknowledge for AckTracker {
    fn ack(&self, position: u64) {
        AckTracker::ack(self, position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fixtures::event;

    #[tokio::test]
    async fn publish_beyond_capacity_is_refused_not_queued() {
        let bus = MemoryBus::new(2);
        let _sub = bus.subscribe("t", "g").await.unwrap();
        bus.publish("t", &[event(1), event(2)]).await.unwrap();
        let err = bus.publish("t", &[event(3)]).await.unwrap_err();
        assert!(matches!(err, BusError::Overloaded { .. }));
    }
}
