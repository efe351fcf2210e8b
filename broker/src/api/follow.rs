//! Following a shared store (NATS bucket, Kafka topic): other replicas' changes applied here.

use std::sync::Arc;

use super::kinds;
use super::registry::{Change, Registry, WatchEvent, revision_of};
use super::store::StoreChange;
use crate::live::ApiDocument;

/// How long following a shared store waits before watching again after an error.
const REWATCH: std::time::Duration = std::time::Duration::from_secs(1);

impl Registry {
    /// Follows a shared store's changes (other replicas' writes) until `stop`, applying each
    /// to the running broker; re-watches from the last change seen after an error, every
    /// [`REWATCH`]. Returns at once for a store only this process writes.
    pub async fn follow(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let from = self.state().followed;
            match self.store.changes(from).await {
                Ok(None) => return,
                Ok(Some(mut changes)) => loop {
                    let next = tokio::select! {
                        next = futures_util::StreamExt::next(&mut changes) => next,
                        _ = stop.wait_for(|stopped| *stopped) => return,
                    };
                    match next {
                        Some(Ok(change)) => self.apply_change(change).await,
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "following the API store failed; watching again");
                            break;
                        }
                        None => {
                            tracing::warn!("the API store's change stream ended; watching again");
                            break;
                        }
                    }
                },
                Err(e) => tracing::error!(error = %e, "cannot follow the API store; trying again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(REWATCH) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// One change from the shared store: applied unless this replica has it already.
    async fn apply_change(&self, change: StoreChange) {
        let _writing = self.writing.lock().await;
        let (mut next, kind) = {
            let mut state = self.state();
            state.followed = state.followed.max(change.revision);
            let known = state.store_revisions.get(&change.key).copied().unwrap_or(0);
            if change.revision <= known || state.objects.get(&change.key) == change.object.as_ref()
            {
                state
                    .store_revisions
                    .insert(change.key.clone(), known.max(change.revision));
                return;
            }
            let kind = kinds::KINDS
                .iter()
                .find(|k| k.group == change.key.group && k.plural == change.key.plural);
            (state.objects.clone(), kind)
        };
        let Some(kind) = kind else {
            tracing::warn!(key = ?change.key, "the API store holds an object of no served kind: skipped");
            return;
        };
        let previous = match &change.object {
            Some(object) => next.insert(change.key.clone(), object.clone()),
            None => next.remove(&change.key),
        };
        let documents: Vec<ApiDocument> = next.values().cloned().collect();
        if let Err(e) = self.apply.set_api_documents(documents).await {
            // The other replica validated it against its files; these differ. Keep running
            // what runs here, and say so.
            tracing::error!(key = ?change.key, error = %e, "a change from another replica does not apply here; keeping the running configuration");
            self.state()
                .store_revisions
                .insert(change.key, change.revision);
            return;
        }
        let mut state = self.state();
        let revision = (state.revision + 1).max(change.object.as_ref().map_or(0, revision_of));
        let (change_kind, object) = match (change.object, previous) {
            (Some(object), None) => (Change::Added, object),
            (Some(object), Some(_)) => (Change::Modified, object),
            (None, Some(previous)) => (Change::Deleted, previous),
            (None, None) => return,
        };
        tracing::info!(kind = kind.kind, key = ?change.key, change = change_kind.as_str(), "applied a change from the API store");
        state.objects = next;
        state.revision = revision;
        state
            .store_revisions
            .insert(change.key.clone(), change.revision);
        self.publish(
            &mut state,
            WatchEvent {
                revision,
                change: change_kind,
                key: change.key,
                object,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use futures_util::StreamExt;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;
    use crate::api::store::{Changes, Loaded, ObjectKey, Store, StoreError};
    use crate::api::tests::FakeApply;

    /// A shared store in memory: every write comes back on the change stream (as NATS and
    /// Kafka echo them), and a test can inject other replicas' changes.
    struct SharedFake {
        revision: AtomicU64,
        sender: mpsc::UnboundedSender<StoreChange>,
        receiver: Mutex<Option<mpsc::UnboundedReceiver<StoreChange>>>,
    }

    impl SharedFake {
        fn new() -> Arc<Self> {
            let (sender, receiver) = mpsc::unbounded_channel();
            Arc::new(Self {
                revision: AtomicU64::new(0),
                sender,
                receiver: Mutex::new(Some(receiver)),
            })
        }

        fn echo(&self, key: &ObjectKey, object: Option<Value>) -> u64 {
            let revision = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
            let _ = self.sender.send(StoreChange {
                revision,
                key: key.clone(),
                object,
            });
            revision
        }
    }

    #[async_trait]
    impl Store for SharedFake {
        async fn load(&self) -> Result<Loaded, StoreError> {
            Ok(Loaded::default())
        }
        async fn put(
            &self,
            key: &ObjectKey,
            object: &Value,
            _expected: Option<u64>,
        ) -> Result<u64, StoreError> {
            Ok(self.echo(key, Some(object.clone())))
        }
        async fn delete(&self, key: &ObjectKey, _expected: Option<u64>) -> Result<u64, StoreError> {
            Ok(self.echo(key, None))
        }
        async fn changes(&self, _revision: u64) -> Result<Option<Changes>, StoreError> {
            let receiver = self.receiver.lock().unwrap().take();
            Ok(receiver.map(|r| {
                futures_util::stream::unfold(r, |mut r| async move {
                    r.recv().await.map(|c| (Ok(c), r))
                })
                .boxed()
            }))
        }
    }

    fn trigger(name: &str, uri: &str) -> Value {
        json!({
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "broker": "default", "subscriber": { "uri": uri } },
        })
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn other_replicas_changes_apply_and_own_echoes_never_roll_back() {
        let store = SharedFake::new();
        let apply = Arc::new(FakeApply::default());
        let registry = Arc::new(Registry::open(apply.clone(), store.clone()).await.unwrap());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(registry.clone().follow(stop_rx));
        let kind = kinds::by_plural("eventing.knative.dev", "v1", "triggers").unwrap();
        let (_, mut events) = registry.watch_from(registry.revision()).unwrap();

        // Two quick local writes: their echoes arrive after both, and must not bring v1 back.
        registry
            .create(kind, "ns", trigger("t", "http://v1/"))
            .await
            .unwrap();
        let current = registry.get(kind, "ns", "t").unwrap();
        let mut v2 = current.clone();
        v2["spec"]["subscriber"]["uri"] = json!("http://v2/");
        registry.replace(kind, "ns", "t", v2).await.unwrap();

        // Another replica creates `remote`: it is applied here and watchers see it.
        let remote_key = crate::api::registry::object_key(kind, "ns", "remote");
        let mut remote = trigger("remote", "http://r/");
        remote["metadata"]["resourceVersion"] = json!("50");
        store.echo(&remote_key, Some(remote));
        until("the remote trigger applied", || {
            apply
                .applied
                .lock()
                .unwrap()
                .iter()
                .any(|d| d["metadata"]["name"] == "remote")
        })
        .await;
        assert_eq!(
            registry.get(kind, "ns", "t").unwrap()["spec"]["subscriber"]["uri"],
            "http://v2/"
        );
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push((event.change, event.key.name));
        }
        assert_eq!(
            seen,
            [
                (Change::Added, "t".to_owned()),
                (Change::Modified, "t".to_owned()),
                (Change::Added, "remote".to_owned()),
            ]
        );
        assert!(
            registry.revision() >= 50,
            "the remote version moves the counter on"
        );

        // And deletes it again.
        store.echo(&remote_key, None);
        until("the remote trigger removed", || {
            registry.get(kind, "ns", "remote").is_err()
        })
        .await;
        assert!(
            !apply
                .applied
                .lock()
                .unwrap()
                .iter()
                .any(|d| d["metadata"]["name"] == "remote")
        );
        let _ = stop.send(true);
        follower.await.unwrap();
    }
}
