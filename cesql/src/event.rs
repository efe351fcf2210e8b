//! What an expression reads: the attributes of one event.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::value::Value;

/// The context attributes and extensions of an event, by name.
///
/// `name` is always lowercase (CloudEvents attribute names are; expressions match them
/// case-insensitively). Return strings borrowed from the event (`Value::String(Cow::Borrowed)`)
/// so evaluation does not copy them. Attributes of types CESQL lacks (timestamp, URI,
/// URI-reference, binary) are given as their canonical string form; required attributes
/// (`specversion`, `id`, `source`, `type`) must always be present, since `EXISTS id` is `true`
/// by definition (spec §3.4.4).
pub trait EventAttributes {
    /// The attribute's value, `None` if the event does not have it.
    fn attribute(&self, name: &str) -> Option<Value<'_>>;

    /// Whether the event has the attribute; override if that is cheaper than reading it.
    fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

impl<S: BuildHasher> EventAttributes for HashMap<String, Value<'_>, S> {
    fn attribute(&self, name: &str) -> Option<Value<'_>> {
        self.get(name).map(Value::borrowed)
    }

    fn has_attribute(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl EventAttributes for BTreeMap<String, Value<'_>> {
    fn attribute(&self, name: &str) -> Option<Value<'_>> {
        self.get(name).map(Value::borrowed)
    }

    fn has_attribute(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl<T: EventAttributes + ?Sized> EventAttributes for &T {
    fn attribute(&self, name: &str) -> Option<Value<'_>> {
        (**self).attribute(name)
    }

    fn has_attribute(&self, name: &str) -> bool {
        (**self).has_attribute(name)
    }
}
