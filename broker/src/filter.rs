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
    /// A CloudEvents SQL expression; an evaluation error is "no match" (Knative).
    Cesql(cesql::Expression),
}

impl Filter {
    /// Matches everything (a trigger without filters).
    pub fn everything() -> Self {
        Filter::All(Vec::new())
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.matches_counting(event, &mut 0)
    }

    /// Like [`Filter::matches`], adding to `errors` each CESQL expression whose evaluation
    /// failed (and so did not match).
    pub fn matches_counting(&self, event: &Event, errors: &mut u32) -> bool {
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
            Filter::All(filters) => filters.iter().all(|f| f.matches_counting(event, errors)),
            Filter::Any(filters) => filters.iter().any(|f| f.matches_counting(event, errors)),
            Filter::Not(filter) => !filter.matches_counting(event, errors),
            Filter::Cesql(expression) => {
                let attributes = CesqlEvent(event);
                if expression.matches(&attributes) {
                    return true;
                }
                let evaluation = expression.evaluate(&attributes);
                if !evaluation.errors.is_empty() {
                    *errors += 1;
                    tracing::debug!(expression = %expression, errors = ?evaluation.errors, "cesql evaluation failed: no match");
                }
                false
            }
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

/// An event as CESQL reads it: strings borrowed, integers that fit 32 bits as integers.
struct CesqlEvent<'e>(&'e Event);

impl cesql::EventAttributes for CesqlEvent<'_> {
    fn attribute(&self, name: &str) -> Option<cesql::Value<'_>> {
        let event = self.0;
        if let Some(value) = event.extension(name) {
            return Some(match value {
                ExtensionValue::String(s) => cesql::Value::String(Cow::Borrowed(s)),
                ExtensionValue::Boolean(b) => cesql::Value::Boolean(*b),
                ExtensionValue::Integer(i) => match i32::try_from(*i) {
                    Ok(i) => cesql::Value::Integer(i),
                    Err(_) => cesql::Value::String(Cow::Owned(i.to_string())),
                },
            });
        }
        attribute(event, name).map(cesql::Value::String)
    }
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
    fn cesql_reads_attributes_and_extensions_with_their_types() {
        let e = event();
        let cesql = |text: &str| Filter::Cesql(cesql::Expression::compile(text).unwrap());
        assert!(
            cesql("type = 'com.github.push' AND source LIKE 'https://github.com/%'").matches(&e)
        );
        assert!(cesql("count + 1 = 4").matches(&e));
        assert!(!cesql("type = 'other'").matches(&e));
    }

    #[test]
    fn cesql_evaluation_errors_do_not_match_and_are_counted() {
        let e = event();
        let filter =
            Filter::Cesql(cesql::Expression::compile("missing = 'x' OR 5 / 0 = 0").unwrap());
        let mut errors = 0;
        assert!(!filter.matches_counting(&e, &mut errors));
        assert_eq!(errors, 1);
    }

    #[test]
    fn empty_prefix_means_the_attribute_exists() {
        let e = event();
        assert!(Filter::Prefix(pair("count", "")).matches(&e));
        assert!(!Filter::Prefix(pair("subject", "")).matches(&e));
    }
}
