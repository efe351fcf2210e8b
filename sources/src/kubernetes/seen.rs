//! What the watcher has seen of one resource type, persisted so missed changes can be found.
//!
//! Invariant: after a change was accepted by the sink, the state holds the object's uid with
//! that resourceVersion (or no longer holds it, for a delete). After a restart or a `410 Gone`,
//! [`SeenState::diff`] of a fresh list against the state yields exactly the changes missed:
//! unknown uids were added, known uids with another resourceVersion were updated, and known
//! uids absent from the list were deleted (sent with their last known state).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Change, Mode};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenState {
    /// uid -> last known state.
    pub objects: BTreeMap<String, Value>,
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

    /// Records a change the sink accepted. Reference mode keeps only what its events need, so
    /// the file stays small; Resource mode keeps the object, to send it again on a missed delete.
    pub fn observe(&mut self, change: Change, object: &Value, mode: Mode) {
        let Some(id) = uid(object) else { return };
        if change == Change::Deleted {
            self.objects.remove(id);
        } else {
            self.objects.insert(id.to_owned(), stored(object, mode));
        }
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
        seen.observe(Change::Added, &obj("a", "1", "10"), Mode::Resource);
        let (change, last) = seen.diff(&[]).pop().unwrap();
        assert_eq!(change, Change::Deleted);
        assert_eq!(last["data"]["k"], "10");
    }

    #[test]
    fn reference_mode_stores_only_the_reference_fields() {
        let mut seen = SeenState::default();
        seen.observe(Change::Added, &obj("a", "1", "10"), Mode::Reference);
        assert!(seen.objects["1"].get("data").is_none());
        assert_eq!(seen.classify(&obj("a", "1", "10")), None);
        assert_eq!(seen.classify(&obj("a", "1", "11")), Some(Change::Updated));
    }
}
