//! The resource kinds the management API serves, as Kubernetes discovery describes them.
//!
//! Adding a kind (EventPolicy, channels, flows) is one entry in [`KINDS`] once the loader
//! reads it: discovery, CRUD, watch and storage follow from the table.

/// One served resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// URL segment, e.g. `triggers`.
    pub plural: &'static str,
    pub singular: &'static str,
    /// As Knative's CRDs declare them.
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
}

impl Kind {
    /// `group/version`, the manifest's `apiVersion`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

const EVENTING: &str = "eventing.knative.dev";
const SOURCES: &str = "sources.knative.dev";
const MESSAGING: &str = "messaging.knative.dev";
const FLOWS: &str = "flows.knative.dev";

/// Every kind the API serves.
pub const KINDS: &[Kind] = &[
    Kind {
        group: EVENTING,
        version: "v1",
        kind: "Broker",
        plural: "brokers",
        singular: "broker",
        short_names: &[],
        categories: &["all", "knative", "eventing"],
    },
    Kind {
        group: EVENTING,
        version: "v1",
        kind: "Trigger",
        plural: "triggers",
        singular: "trigger",
        short_names: &[],
        categories: &["all", "knative", "eventing"],
    },
    Kind {
        group: SOURCES,
        version: "v1",
        kind: "PingSource",
        plural: "pingsources",
        singular: "pingsource",
        short_names: &[],
        categories: &["all", "knative", "sources"],
    },
    Kind {
        group: SOURCES,
        version: "v1",
        kind: "ApiServerSource",
        plural: "apiserversources",
        singular: "apiserversource",
        short_names: &[],
        categories: &["all", "knative", "sources"],
    },
    Kind {
        group: SOURCES,
        version: "v1alpha1",
        kind: "GitHubSource",
        plural: "githubsources",
        singular: "githubsource",
        short_names: &[],
        categories: &["all", "knative", "sources"],
    },
    Kind {
        group: EVENTING,
        version: "v1alpha1",
        kind: "EventPolicy",
        plural: "eventpolicies",
        singular: "eventpolicy",
        short_names: &[],
        categories: &["all", "knative", "eventing"],
    },
    Kind {
        group: MESSAGING,
        version: "v1",
        kind: "Channel",
        plural: "channels",
        singular: "channel",
        short_names: &["ch"],
        categories: &["all", "knative", "messaging", "channel"],
    },
    Kind {
        group: MESSAGING,
        version: "v1",
        kind: "InMemoryChannel",
        plural: "inmemorychannels",
        singular: "inmemorychannel",
        short_names: &["imc"],
        categories: &["all", "knative", "messaging", "channel"],
    },
    Kind {
        group: MESSAGING,
        version: "v1beta1",
        kind: "KafkaChannel",
        plural: "kafkachannels",
        singular: "kafkachannel",
        short_names: &["kc"],
        categories: &["all", "knative", "messaging", "channel"],
    },
    Kind {
        group: MESSAGING,
        version: "v1",
        kind: "Subscription",
        plural: "subscriptions",
        singular: "subscription",
        short_names: &["sub"],
        categories: &["all", "knative", "messaging"],
    },
    Kind {
        group: FLOWS,
        version: "v1",
        kind: "Sequence",
        plural: "sequences",
        singular: "sequence",
        short_names: &[],
        categories: &["all", "knative", "flows"],
    },
    Kind {
        group: FLOWS,
        version: "v1",
        kind: "Parallel",
        plural: "parallels",
        singular: "parallel",
        short_names: &[],
        categories: &["all", "knative", "flows"],
    },
];

/// The kind served at `/apis/{group}/{version}/.../{plural}`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The kind a manifest names with `apiVersion` and `kind`.
pub fn by_manifest(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// The kind a user names on the command line: plural, singular, short name or kind, in any
/// case (`triggers`, `trigger`, `Trigger`).
pub fn by_name(name: &str) -> Option<&'static Kind> {
    let name = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        k.plural == name
            || k.singular == name
            || k.kind.eq_ignore_ascii_case(&name)
            || k.short_names.contains(&name.as_str())
    })
}

/// The groups served, each with its versions, in a stable order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for kind in KINDS {
        match groups.iter_mut().find(|(g, _)| *g == kind.group) {
            Some((_, versions)) if !versions.contains(&kind.version) => versions.push(kind.version),
            Some(_) => {}
            None => groups.push((kind.group, vec![kind.version])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_plural_and_by_manifest() {
        for kind in KINDS {
            assert_eq!(by_plural(kind.group, kind.version, kind.plural), Some(kind));
            assert_eq!(by_manifest(&kind.api_version(), kind.kind), Some(kind));
        }
        assert_eq!(by_manifest("eventing.knative.dev/v1beta1", "Trigger"), None);
    }

    #[test]
    fn messaging_group_lists_both_versions() {
        let groups = groups();
        let messaging = groups.iter().find(|(g, _)| *g == MESSAGING).unwrap();
        assert_eq!(messaging.1, vec!["v1", "v1beta1"]);
    }

    #[test]
    fn sources_group_lists_both_versions() {
        let groups = groups();
        let sources = groups.iter().find(|(g, _)| *g == SOURCES).unwrap();
        assert_eq!(sources.1, vec!["v1", "v1alpha1"]);
    }
}
