//! `EventPolicy` (`eventing.knative.dev/v1alpha1`): who may send which events to which
//! brokers, read field for field as Knative defines it and compiled for
//! [`crate::auth::policy`].
//!
//! Knative's semantics, kept here: an empty `spec.to` selects every broker of the policy's
//! namespace; `from.ref` without a namespace is in the policy's namespace and stands for the
//! source's own identity; `from.sub` may end in one `*` (a prefix); all `spec.filters` must
//! match (they AND with `from`); several policies selecting a broker OR together.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::{ConfigError, Located};
use super::model::AddressKind;
use super::resolve::{check_name, filter, namespace};
use super::resources::{FilterSpec, Manifest};
use crate::filter::Filter;
use crate::identity::SenderIdentity;

pub const EVENT_POLICY: (&str, &str) = ("eventing.knative.dev/v1alpha1", "EventPolicy");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventPolicySpec {
    #[serde(default)]
    pub to: Vec<PolicyToSpec>,
    #[serde(default)]
    pub from: Vec<PolicyFromSpec>,
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyToSpec {
    #[serde(default, rename = "ref")]
    pub reference: Option<PolicyRefSpec>,
    #[serde(default)]
    pub selector: Option<PolicySelectorSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRefSpec {
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySelectorSpec {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelRequirementSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirementSpec {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyFromSpec {
    #[serde(default, rename = "ref")]
    pub reference: Option<PolicyRefSpec>,
    #[serde(default)]
    pub sub: Option<String>,
}

/// A compiled EventPolicy.
#[derive(Debug, Clone)]
pub struct EventPolicyConfig {
    pub namespace: String,
    pub name: String,
    /// Empty: every broker of `namespace`.
    pub to: Vec<PolicyTarget>,
    pub from: Vec<SubjectMatcher>,
    /// Every `spec.filters` entry, ANDed (matches everything when there are none).
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub enum PolicyTarget {
    /// The broker (channel, Sequence, Parallel) of this name in the policy's namespace.
    Ref(AddressKind, String),
    /// Those of the kind (all kinds if unset) whose labels match.
    Selector(Option<AddressKind>, LabelSelector),
}

#[derive(Debug, Clone, Default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelRequirement>,
}

#[derive(Debug, Clone)]
pub enum LabelRequirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Kubernetes label-selector semantics: every label and every expression must hold.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| match r {
                LabelRequirement::In(k, values) => {
                    labels.get(k).is_some_and(|v| values.contains(v))
                }
                LabelRequirement::NotIn(k, values) => {
                    labels.get(k).is_none_or(|v| !values.contains(v))
                }
                LabelRequirement::Exists(k) => labels.contains_key(k),
                LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMatcher {
    Exact(String),
    /// `sub: "prefix*"`.
    Prefix(String),
}

impl SubjectMatcher {
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            SubjectMatcher::Exact(s) => s == subject,
            SubjectMatcher::Prefix(p) => subject.starts_with(p.as_str()),
        }
    }
}

pub(super) fn compile(
    at: &Located<Manifest<EventPolicySpec>>,
) -> Result<EventPolicyConfig, ConfigError> {
    let manifest = &at.value;
    check_name(at, &manifest.metadata.name)?;
    let ns = namespace(&manifest.metadata);
    let mut to = Vec::new();
    for (i, target) in manifest.spec.to.iter().enumerate() {
        let field = format!("spec.to[{i}]");
        to.push(match (&target.reference, &target.selector) {
            (Some(r), None) => {
                let kind = target_kind(at, &format!("{field}.ref"), Some(&r.kind), &r.api_version)?
                    .unwrap_or_default();
                if r.namespace.as_ref().is_some_and(|n| *n != ns) {
                    return Err(at.error(
                        &format!("{field}.ref.namespace"),
                        "an EventPolicy applies to resources of its own namespace only",
                    ));
                }
                PolicyTarget::Ref(kind, r.name.clone())
            }
            (None, Some(s)) => {
                let kind = target_kind(
                    at,
                    &format!("{field}.selector"),
                    s.kind.as_ref(),
                    &s.api_version,
                )?;
                PolicyTarget::Selector(kind, selector(at, &format!("{field}.selector"), s)?)
            }
            _ => return Err(at.error(&field, "needs exactly one of ref or selector")),
        });
    }
    let mut from = Vec::new();
    for (i, sender) in manifest.spec.from.iter().enumerate() {
        let field = format!("spec.from[{i}]");
        from.push(match (&sender.reference, &sender.sub) {
            (Some(r), None) => {
                let ref_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                SubjectMatcher::Exact(SenderIdentity::resource(&r.kind, &ref_ns, &r.name).subject)
            }
            (None, Some(sub)) => subject(at, &format!("{field}.sub"), sub)?,
            _ => return Err(at.error(&field, "needs exactly one of ref or sub")),
        });
    }
    let filters = manifest
        .spec
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| filter(at, &format!("spec.filters[{i}]"), f))
        .collect::<Result<_, _>>()?;
    Ok(EventPolicyConfig {
        namespace: ns,
        name: manifest.metadata.name.clone(),
        to,
        from,
        filter: Filter::All(filters),
    })
}

/// The kind a policy's `to` names: Herald's policies select what it serves an address for
/// (Brokers, channels, Sequences, Parallels); an unset kind selects all of them.
fn target_kind<T>(
    at: &Located<T>,
    field: &str,
    kind: Option<&String>,
    api_version: &Option<String>,
) -> Result<Option<AddressKind>, ConfigError> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    let Some(address) = super::channels::address_kind(kind) else {
        return Err(at.error(
            &format!("{field}.kind"),
            format!(
                "Herald applies EventPolicies to Broker, Channel, InMemoryChannel, \
                 KafkaChannel, Sequence and Parallel, not {kind}"
            ),
        ));
    };
    let group = match address {
        AddressKind::Broker => "eventing.knative.dev/",
        AddressKind::Channel | AddressKind::FlowChannel => "messaging.knative.dev/",
        AddressKind::Sequence | AddressKind::Parallel => "flows.knative.dev/",
    };
    if let Some(version) = api_version
        && !version.starts_with(group)
    {
        return Err(at.error(
            &format!("{field}.apiVersion"),
            format!("a {kind} is {group}..., not {version}"),
        ));
    }
    Ok(Some(address))
}

fn selector<T>(
    at: &Located<T>,
    field: &str,
    spec: &PolicySelectorSpec,
) -> Result<LabelSelector, ConfigError> {
    let mut expressions = Vec::new();
    for (i, r) in spec.match_expressions.iter().enumerate() {
        let here = format!("{field}.matchExpressions[{i}]");
        let with_values = !r.values.is_empty();
        expressions.push(match (r.operator.as_str(), with_values) {
            ("In", true) => LabelRequirement::In(r.key.clone(), r.values.clone()),
            ("NotIn", true) => LabelRequirement::NotIn(r.key.clone(), r.values.clone()),
            ("Exists", false) => LabelRequirement::Exists(r.key.clone()),
            ("DoesNotExist", false) => LabelRequirement::DoesNotExist(r.key.clone()),
            ("In" | "NotIn", false) => {
                return Err(at.error(&format!("{here}.values"), "In and NotIn need values"));
            }
            ("Exists" | "DoesNotExist", true) => {
                return Err(at.error(
                    &format!("{here}.values"),
                    "Exists and DoesNotExist take no values",
                ));
            }
            (other, _) => {
                return Err(at.error(
                    &format!("{here}.operator"),
                    format!("must be In, NotIn, Exists or DoesNotExist, not {other:?}"),
                ));
            }
        });
    }
    Ok(LabelSelector {
        match_labels: spec.match_labels.clone(),
        match_expressions: expressions,
    })
}

/// `sub` is a subject, or a prefix ending in one `*`.
fn subject<T>(at: &Located<T>, field: &str, sub: &str) -> Result<SubjectMatcher, ConfigError> {
    let (body, wildcard) = match sub.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (sub, false),
    };
    if body.contains('*') {
        return Err(at.error(field, "a * wildcard may only end the subject"));
    }
    if sub.is_empty() {
        return Err(at.error(field, "must not be empty"));
    }
    Ok(if wildcard {
        SubjectMatcher::Prefix(body.to_owned())
    } else {
        SubjectMatcher::Exact(body.to_owned())
    })
}
