//! Trigger filters: Knative's `spec.filter.attributes` and the Subscriptions API dialects of
//! `spec.filters`, compiled once at config load.

use std::borrow::Cow;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Event};

#[derive(Debug, Clone)]
pub enum Filter {
    /// Every listed attribute equals its value (case-sensitive).
    Exact(Vec<(String, String)>),
    /// Every listed attribute starts with its value. An empty prefix means "exists".
    Prefix(Vec<(String, String)>),
    /// Every listed attribute ends with its value.
    Suffix(Vec<(String, String)>),
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Matches everything (a trigger without filters).
    pub fn everything() -> Self {
        Filter::All(Vec::new())
    }

    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Exact(pairs) => pairs.iter().all(|(name, value)| {
                attribute(event, name).is_some_and(|actual| actual == value.as_str())
            }),
            Filter::Prefix(pairs) => pairs.iter().all(|(name, value)| {
                attribute(event, name).is_some_and(|actual| actual.starts_with(value.as_str()))
            }),
            Filter::Suffix(pairs) => pairs.iter().all(|(name, value)| {
                attribute(event, name).is_some_and(|actual| actual.ends_with(value.as_str()))
            }),
            Filter::All(filters) => filters.iter().all(|f| f.matches(event)),
            Filter::Any(filters) => filters.iter().any(|f| f.matches(event)),
            Filter::Not(filter) => !filter.matches(event),
        }
    }
}

/// The string form of a context attribute or extension, as filters compare it.
pub fn attribute<'e>(event: &'e Event, name: &str) -> Option<Cow<'e, str>> {
    Some(match name {
        "specversion" => Cow::Owned(event.specversion().as_str().to_owned()),
        "id" => Cow::Borrowed(event.id()),
        "source" => Cow::Borrowed(event.source().as_str()),
        "type" => Cow::Borrowed(event.ty()),
        "datacontenttype" => Cow::Borrowed(event.datacontenttype()?),
        "dataschema" => Cow::Borrowed(event.dataschema()?.as_str()),
        "subject" => Cow::Borrowed(event.subject()?),
        "time" => Cow::Owned(
            event
                .time()?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        _ => match event.extension(name)? {
            ExtensionValue::String(s) => Cow::Borrowed(s.as_str()),
            ExtensionValue::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            ExtensionValue::Integer(i) => Cow::Owned(i.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("https://github.com/cloudevents/spec")
            .ty("com.github.push")
            .extension("count", 3i64)
            .build()
            .unwrap()
    }

    fn pair(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.into(), v.into())]
    }

    #[test]
    fn dialects_follow_the_subscriptions_api() {
        let e = event();
        assert!(Filter::Exact(pair("type", "com.github.push")).matches(&e));
        assert!(!Filter::Exact(pair("type", "com.github")).matches(&e));
        assert!(Filter::Prefix(pair("source", "https://github.com/")).matches(&e));
        assert!(Filter::Suffix(pair("source", "/spec")).matches(&e));
        assert!(Filter::Exact(pair("count", "3")).matches(&e));
        assert!(
            !Filter::Exact(pair("subject", "x")).matches(&e),
            "missing attribute"
        );
        assert!(Filter::Not(Box::new(Filter::Exact(pair("subject", "x")))).matches(&e));
        let any = Filter::Any(vec![
            Filter::Exact(pair("type", "nope")),
            Filter::Exact(pair("type", "com.github.push")),
        ]);
        assert!(any.matches(&e));
        assert!(
            !Filter::Any(vec![]).matches(&e),
            "empty any matches nothing"
        );
        assert!(Filter::everything().matches(&e));
    }

    #[test]
    fn empty_prefix_means_the_attribute_exists() {
        let e = event();
        assert!(Filter::Prefix(pair("count", "")).matches(&e));
        assert!(!Filter::Prefix(pair("subject", "")).matches(&e));
    }
}
