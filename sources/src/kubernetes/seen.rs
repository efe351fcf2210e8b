//! What the watcher has seen of one resource type, persisted so missed changes can be found.
//!
//! Invariants, for the state as last written to disk:
//! - `objects` holds every object whose add or update may have reached the sink, at the
//!   resourceVersion of its latest such change, and no object whose delete may have.
//! - `pending` (the journal) holds, in order, the changes of the batch being sent: written
//!   before the first sink call of the batch, cleared once the sink took all of them. A change
//!   the sink may have accepted is therefore always in `objects` already, so a crash right after
//!   the sink took an add still knows the object and a later relist emits its delete.
//!
//! After a restart, [`SeenState::pending`] is re-sent first (duplicates, with the same ids: the
//! sink may have taken them), then [`SeenState::diff`] of a fresh list yields the changes missed:
//! unknown uids were added, known uids with another resourceVersion were updated, and known
//! uids absent from the list were deleted (sent with their last known state).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Change, Mode};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenState {
    /// uid -> last known state, including changes still being sent.
    pub objects: BTreeMap<String, Value>,
    /// Changes possibly sent but not yet confirmed, in order (absent in files written before
    /// the journal existed, which had nothing pending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
}

/// One change whose event may or may not have reached the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub change: Change,
    /// What [`to_event`](super::to_event) needs: the stored form of the object (for a delete,
    /// its last known state).
    pub object: Value,
}

pub fn uid(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

pub fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

impl SeenState {
    /// The change `object` represents relative to what was seen (`None`: nothing new).
    pub fn classify(&self, object: &Value) -> Option<Change> {
        match self.objects.get(uid(object)?) {
            None => Some(Change::Added),
            Some(seen) if resource_version(seen) != resource_version(object) => {
                Some(Change::Updated)
            }
            Some(_) => None,
        }
    }

    /// The changes that turn the seen state into `listed`, deletes last.
    pub fn diff(&self, listed: &[Value]) -> Vec<(Change, Value)> {
        let mut changes: Vec<(Change, Value)> = listed
            .iter()
            .filter_map(|o| Some((self.classify(o)?, o.clone())))
            .collect();
        let present: std::collections::HashSet<&str> = listed.iter().filter_map(uid).collect();
        for (id, last) in &self.objects {
            if !present.contains(id.as_str()) {
                changes.push((Change::Deleted, last.clone()));
            }
        }
        changes
    }

    /// Records a change about to be sent: the object's new state, and the change in the journal.
    /// Reference mode keeps only what its events need, so the file stays small; Resource mode
    /// keeps the object, to send it again on a missed delete.
    pub fn begin(&mut self, change: Change, object: &Value, mode: Mode) {
        let Some(id) = uid(object) else { return };
        let object = stored(object, mode);
        if change == Change::Deleted {
            self.objects.remove(id);
        } else {
            self.objects.insert(id.to_owned(), object.clone());
        }
        self.pending.push(Pending { change, object });
    }

    /// Takes the journal to send it; the state stays "pending" on disk until written again.
    pub fn take_pending(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.pending)
    }

    /// Adopts a fresh list, journalling the changes that lead to it from the state (see
    /// [`SeenState::diff`]) to be sent.
    pub fn relist(&mut self, listed: &[Value], mode: Mode) {
        let changes = self.diff(listed);
        self.replace(listed, mode);
        self.pending
            .extend(changes.into_iter().map(|(change, object)| Pending {
                change,
                object: stored(&object, mode),
            }));
    }

    /// Replaces everything with a fresh list (the first start records without emitting).
    pub fn replace(&mut self, listed: &[Value], mode: Mode) {
        self.objects = listed
            .iter()
            .filter_map(|o| Some((uid(o)?.to_owned(), stored(o, mode))))
            .collect();
    }
}

fn stored(object: &Value, mode: Mode) -> Value {
    match mode {
        Mode::Resource => object.clone(),
        Mode::Reference => json!({
            "apiVersion": object.get("apiVersion"),
            "kind": object.get("kind"),
            "metadata": {
                "name": object.pointer("/metadata/name"),
                "namespace": object.pointer("/metadata/namespace"),
                "uid": object.pointer("/metadata/uid"),
                "resourceVersion": object.pointer("/metadata/resourceVersion"),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, uid: &str, rv: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv},
               "data": {"k": rv}})
    }

    #[test]
    fn diff_finds_missed_adds_updates_and_deletes() {
        let mut seen = SeenState::default();
        seen.replace(
            &[
                obj("a", "1", "10"),
                obj("b", "2", "11"),
                obj("c", "3", "12"),
            ],
            Mode::Resource,
        );
        let listed = [
            obj("a", "1", "10"),
            obj("b", "2", "15"),
            obj("d", "4", "16"),
        ];
        let changes: Vec<(Change, String)> = seen
            .diff(&listed)
            .into_iter()
            .map(|(c, o)| {
                (
                    c,
                    o.pointer("/metadata/name")
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (Change::Updated, "b".into()),
                (Change::Added, "d".into()),
                (Change::Deleted, "c".into())
            ]
        );
    }

    #[test]
    fn a_missed_delete_carries_the_last_known_state_in_resource_mode() {
        let mut seen = SeenState::default();
        seen.begin(Change::Added, &obj("a", "1", "10"), Mode::Resource);
        seen.take_pending();
        let (change, last) = seen.diff(&[]).pop().unwrap();
        assert_eq!(change, Change::Deleted);
        assert_eq!(last["data"]["k"], "10");
    }

    #[test]
    fn reference_mode_stores_only_the_reference_fields() {
        let mut seen = SeenState::default();
        seen.begin(Change::Added, &obj("a", "1", "10"), Mode::Reference);
        assert!(seen.objects["1"].get("data").is_none());
        assert!(seen.pending[0].object.get("data").is_none());
        assert_eq!(seen.classify(&obj("a", "1", "10")), None);
        assert_eq!(seen.classify(&obj("a", "1", "11")), Some(Change::Updated));
    }

    #[test]
    fn a_change_being_sent_is_already_known_to_a_reloaded_state() {
        let mut seen = SeenState::default();
        seen.begin(Change::Added, &obj("a", "1", "10"), Mode::Reference);
        seen.begin(Change::Deleted, &obj("a", "1", "11"), Mode::Reference);
        seen.begin(Change::Added, &obj("b", "2", "12"), Mode::Reference);
        // As written before the sink call, then read after a crash.
        let reloaded: SeenState =
            serde_json::from_str(&serde_json::to_string(&seen).unwrap()).unwrap();
        let journal: Vec<(Change, &str)> = reloaded
            .pending
            .iter()
            .map(|p| (p.change, resource_version(&p.object).unwrap()))
            .collect();
        assert_eq!(
            journal,
            [
                (Change::Added, "10"),
                (Change::Deleted, "11"),
                (Change::Added, "12")
            ]
        );
        // b is gone by the restart: its delete is found although its add was never confirmed.
        let changes: Vec<Change> = reloaded.diff(&[]).into_iter().map(|(c, _)| c).collect();
        assert_eq!(changes, [Change::Deleted]);
    }

    #[test]
    fn relist_journals_the_diff_and_adopts_the_list() {
        let mut seen = SeenState::default();
        seen.replace(&[obj("a", "1", "10"), obj("b", "2", "11")], Mode::Resource);
        seen.relist(&[obj("a", "1", "13"), obj("c", "3", "14")], Mode::Resource);
        let journal: Vec<(Change, &str)> = seen
            .pending
            .iter()
            .map(|p| (p.change, resource_version(&p.object).unwrap()))
            .collect();
        assert_eq!(
            journal,
            [
                (Change::Updated, "13"),
                (Change::Added, "14"),
                (Change::Deleted, "11")
            ]
        );
        assert_eq!(seen.objects.keys().collect::<Vec<_>>(), ["1", "3"]);
    }

    #[test]
    fn state_files_from_before_the_journal_load_with_nothing_pending() {
        let old = r#"{"objects": {"1": {"metadata": {"uid": "1", "resourceVersion": "10"}}}}"#;
        let seen: SeenState = serde_json::from_str(old).unwrap();
        assert!(seen.pending.is_empty());
        assert_eq!(seen.objects.len(), 1);
        assert!(!serde_json::to_string(&seen).unwrap().contains("pending"));
    }
}
