//! Acknowledgements: from [`Delivery::ack`](crate::Delivery::ack) to `:acknowledge`.
//!
//! Every pulled message carries a [`MessageAcker`] from the moment it arrives (buffered or
//! handed out). While it is held, a ticker extends its ack deadline (`:modifyAckDeadline`)
//! every third of the deadline, so a long retry cycle in the broker is not redelivered behind
//! its back (the NATS bus's `+WPI`); a killed process stops the ticker and its messages come
//! back after the deadline. A delivery dropped unacknowledged stops being extended and comes
//! back after the deadline, or at once (deadline 0, a "nack") if its subscription is already
//! gone. One task per bus sends the requests in order, batched per subscription, and ends
//! (after sending what is queued) once the bus and every delivery are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::client::Api;
use crate::Acknowledge;

/// Ack ids one request carries at most (Pub/Sub bounds a request's size).
const MAX_IDS_PER_REQUEST: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Ack,
    /// Deadline 0: redeliver at once.
    Nack,
    /// Extend the deadline by the subscription's ack deadline.
    Extend,
}

type Op = (Arc<str>, String, Kind);
/// Requests to one subscription of one kind.
type Group = (Arc<str>, Kind);

/// The request channel and the registry of held messages, shared by a bus and all it handed out.
pub(super) struct Acks {
    tx: mpsc::UnboundedSender<Op>,
    held: Mutex<HashMap<u64, (Arc<str>, String)>>,
    next_key: AtomicU64,
}

impl Acks {
    /// Starts the sending task and the deadline ticker on the current runtime. `done` turns
    /// true once every handle is gone and the last requests were sent.
    pub fn start(
        api: Arc<Api>,
        ack_deadline: Duration,
        request_timeout: Duration,
        done: watch::Sender<bool>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let acks = Arc::new(Self {
            tx,
            held: Mutex::default(),
            next_key: AtomicU64::new(0),
        });
        let seconds = ack_deadline.as_secs().clamp(10, 600);
        tokio::spawn(async move {
            send(api, rx, seconds, request_timeout).await;
            done.send_replace(true);
        });
        tokio::spawn(keep_alive(Arc::downgrade(&acks), ack_deadline / 3));
        acks
    }

    pub fn send(&self, subscription: Arc<str>, ack_id: String, kind: Kind) {
        // Fails only once the task is gone (runtime shutting down): Pub/Sub redelivers after
        // the deadline.
        let _ = self.tx.send((subscription, ack_id, kind));
    }
}

async fn send(
    api: Arc<Api>,
    mut rx: mpsc::UnboundedReceiver<Op>,
    deadline_seconds: u64,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_IDS_PER_REQUEST);
    while rx.recv_many(&mut batch, MAX_IDS_PER_REQUEST).await > 0 {
        // Grouped in first-seen order, so acks and nacks keep their relative order per kind.
        let mut groups: Vec<(Group, Vec<String>)> = Vec::new();
        for (subscription, ack_id, kind) in batch.drain(..) {
            let key = (subscription, kind);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(ack_id),
                None => groups.push((key, vec![ack_id])),
            }
        }
        for ((subscription, kind), ids) in groups {
            let (verb, body) = match kind {
                Kind::Ack => ("acknowledge", json!({ "ackIds": ids })),
                Kind::Nack => (
                    "modifyAckDeadline",
                    json!({ "ackIds": ids, "ackDeadlineSeconds": 0 }),
                ),
                Kind::Extend => (
                    "modifyAckDeadline",
                    json!({ "ackIds": ids, "ackDeadlineSeconds": deadline_seconds }),
                ),
            };
            let path = format!("{subscription}:{verb}");
            if let Err(e) = api.call("POST", &path, &body, timeout).await {
                tracing::debug!(error = %e, "{verb} not sent; Pub/Sub redelivers after the deadline");
            }
        }
    }
}

async fn keep_alive(acks: Weak<Acks>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Some(acks) = acks.upgrade() else { return };
        let held: Vec<(Arc<str>, String)> = acks.held.lock().unwrap().values().cloned().collect();
        for (subscription, ack_id) in held {
            acks.send(subscription, ack_id, Kind::Extend);
        }
    }
}

/// What a subscription hands back when it is dropped.
#[derive(Default)]
pub(super) struct SubscriptionState {
    inner: Mutex<(bool, Vec<(u64, String)>)>,
}

impl SubscriptionState {
    /// Marks the subscription gone and takes the messages dropped unacknowledged while it lived.
    pub fn close(&self) -> Vec<(u64, String)> {
        let mut inner = self.inner.lock().unwrap();
        inner.0 = true;
        std::mem::take(&mut inner.1)
    }
}

/// The [`Acknowledge`] of one pulled message.
pub(super) struct MessageAcker {
    acks: Arc<Acks>,
    state: Arc<SubscriptionState>,
    subscription: Arc<str>,
    key: u64,
    position: u64,
    ack_id: String,
    done: AtomicBool,
}

impl MessageAcker {
    pub fn new(
        acks: Arc<Acks>,
        state: Arc<SubscriptionState>,
        subscription: Arc<str>,
        position: u64,
        ack_id: String,
    ) -> Self {
        let key = acks.next_key.fetch_add(1, Ordering::Relaxed);
        acks.held
            .lock()
            .unwrap()
            .insert(key, (subscription.clone(), ack_id.clone()));
        Self {
            acks,
            state,
            subscription,
            key,
            position,
            ack_id,
            done: AtomicBool::new(false),
        }
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Stops keeping the message alive and returns its ack id, for the subscription's own
    /// hand-back (`None` if it was already acknowledged or handed back).
    pub fn release(&self) -> Option<(u64, String)> {
        if self.done.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.acks.held.lock().unwrap().remove(&self.key);
        Some((self.position, self.ack_id.clone()))
    }
}

impl Acknowledge for MessageAcker {
    fn ack(&self, _position: u64) {
        if let Some((_, ack_id)) = self.release() {
            self.acks.send(self.subscription.clone(), ack_id, Kind::Ack);
        }
    }
}

impl Drop for MessageAcker {
    fn drop(&mut self) {
        let Some(entry) = self.release() else { return };
        let mut inner = self.state.inner.lock().unwrap();
        if inner.0 {
            self.acks
                .send(self.subscription.clone(), entry.1, Kind::Nack);
        } else {
            inner.1.push(entry);
        }
    }
}
