//! Acknowledgements: from [`Delivery::ack`](crate::Delivery::ack) to JetStream's ack subject.
//!
//! Every delivery carries a [`MessageAcker`]. `ack` sends `+ACK`. While a delivery is held, a
//! ticker sends `+WPI` ("working on it") every third of `AckWait`, so a long retry cycle in the
//! broker is not redelivered behind its back; a killed process stops the ticker and its events
//! come back after `AckWait`. A delivery dropped unacknowledged stops being kept alive and comes
//! back after `AckWait` (a rebalance, as on any bus), or at once (`-NAK`) if its subscription is
//! already gone. Acks are sent in order by one task per bus, which ends (after sending what is
//! queued) once the bus and every delivery are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::{Client, Subject};
use tokio::sync::{mpsc, watch};

use crate::Acknowledge;

pub(super) const ACK: &[u8] = b"+ACK";
pub(super) const NAK: &[u8] = b"-NAK";
/// Never redeliver (a message that is not a CloudEvent).
pub(super) const TERM: &[u8] = b"+TERM";
const PROGRESS: &[u8] = b"+WPI";

/// The ack channel and the registry of held deliveries, shared by a bus and all it handed out.
pub(super) struct Acks {
    tx: mpsc::UnboundedSender<(Subject, &'static [u8])>,
    held: Mutex<HashMap<u64, Subject>>,
    next_key: AtomicU64,
}

impl Acks {
    /// Starts the sending task and the progress ticker on the current runtime.
    /// `done` turns true once every handle is gone and the last acks were flushed.
    pub fn start(client: Client, ack_wait: Duration, done: watch::Sender<bool>) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let acks = Arc::new(Self {
            tx,
            held: Mutex::default(),
            next_key: AtomicU64::new(0),
        });
        tokio::spawn(async move {
            send_acks(client, rx).await;
            done.send_replace(true);
        });
        tokio::spawn(keep_alive(Arc::downgrade(&acks), ack_wait / 3));
        acks
    }

    pub fn send(&self, reply: Subject, kind: &'static [u8]) {
        // Fails only once the task is gone, i.e. the runtime is shutting down: the server
        // redelivers after `AckWait`.
        let _ = self.tx.send((reply, kind));
    }
}

async fn send_acks(client: Client, mut rx: mpsc::UnboundedReceiver<(Subject, &'static [u8])>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for (reply, kind) in batch.drain(..) {
            if let Err(e) = client.publish(reply, bytes::Bytes::from_static(kind)).await {
                tracing::debug!(error = %e, "acknowledgement not sent; JetStream will redeliver");
            }
        }
    }
    let _ = client.flush().await;
}

async fn keep_alive(acks: Weak<Acks>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Some(acks) = acks.upgrade() else { return };
        let held: Vec<Subject> = acks.held.lock().unwrap().values().cloned().collect();
        for reply in held {
            acks.send(reply, PROGRESS);
        }
    }
}

/// What a subscription hands back when it is dropped.
#[derive(Default)]
pub(super) struct SubscriptionState {
    inner: Mutex<(bool, Vec<(u64, Subject)>)>,
}

impl SubscriptionState {
    /// Marks the subscription gone and takes the deliveries dropped unacknowledged while it lived.
    pub fn close(&self) -> Vec<(u64, Subject)> {
        let mut inner = self.inner.lock().unwrap();
        inner.0 = true;
        std::mem::take(&mut inner.1)
    }
}

/// The [`Acknowledge`] of one delivery.
pub(super) struct MessageAcker {
    acks: Arc<Acks>,
    subscription: Arc<SubscriptionState>,
    key: u64,
    sequence: u64,
    reply: Subject,
    done: AtomicBool,
}

impl MessageAcker {
    pub fn new(
        acks: Arc<Acks>,
        subscription: Arc<SubscriptionState>,
        sequence: u64,
        reply: Subject,
    ) -> Self {
        let key = acks.next_key.fetch_add(1, Ordering::Relaxed);
        acks.held.lock().unwrap().insert(key, reply.clone());
        Self {
            acks,
            subscription,
            key,
            sequence,
            reply,
            done: AtomicBool::new(false),
        }
    }
}

impl Acknowledge for MessageAcker {
    fn ack(&self, _position: u64) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.acks.held.lock().unwrap().remove(&self.key);
            self.acks.send(self.reply.clone(), ACK);
        }
    }
}

impl Drop for MessageAcker {
    fn drop(&mut self) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        self.acks.held.lock().unwrap().remove(&self.key);
        let mut inner = self.subscription.inner.lock().unwrap();
        if inner.0 {
            self.acks.send(self.reply.clone(), NAK);
        } else {
            inner.1.push((self.sequence, self.reply.clone()));
        }
    }
}

/// The stream sequence in a JetStream ack subject: `$JS.ACK.{stream}.{consumer}.{delivered}.
/// {stream seq}.{consumer seq}.{ts}.{pending}`, or the form with domain and account hash after
/// `$JS.ACK.` (then two tokens further on).
pub(super) fn stream_sequence(reply: &str) -> Option<u64> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let index = match tokens.len() {
        7 => 3,
        n if n >= 9 => 5,
        _ => return None,
    };
    tokens[index].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::stream_sequence;

    #[test]
    fn stream_sequences_are_read_from_both_ack_subject_forms() {
        assert_eq!(stream_sequence("$JS.ACK.s.c.1.42.7.1700000000.0"), Some(42));
        assert_eq!(
            stream_sequence("$JS.ACK.dom.ACCHASH.s.c.2.43.8.1700000000.0.tok"),
            Some(43)
        );
        assert_eq!(stream_sequence("_INBOX.x"), None);
    }
}
