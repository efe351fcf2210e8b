//! Evaluation and compilation speed, against the targets of issue 3: each `spec_examples.yaml`
//! expression ≤ 200 ns, a typical trigger filter ≤ 100 ns, compiling 1 KiB ≤ 50 µs.
//!
//! Run: `cargo bench -p cesql -- --warm-up-time 1 --measurement-time 3`

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use cesql::{EventAttributes, Expression, Value};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;

type Event = HashMap<String, Value<'static>>;

#[derive(Deserialize)]
struct Suite {
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    #[serde(default)]
    event_overrides: BTreeMap<String, String>,
}

/// A GitHub-like event with the attributes a trigger usually looks at.
fn event() -> Event {
    HashMap::from([
        ("specversion".to_owned(), Value::from("1.0")),
        (
            "id".to_owned(),
            Value::from("6f1c2a9e-2b1d-4c3e-9f4a-0d5e6f7a8b9c"),
        ),
        (
            "source".to_owned(),
            Value::from("https://github.com/herald-broker/herald"),
        ),
        ("type".to_owned(), Value::from("x")),
        ("time".to_owned(), Value::from("2026-01-02T03:04:05Z")),
        (
            "datacontenttype".to_owned(),
            Value::from("application/json"),
        ),
    ])
}

fn spec_examples(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tck/spec_examples.yaml");
    let text = std::fs::read_to_string(path).expect("spec_examples.yaml");
    let suite: Suite = serde_saphyr::from_str(&text).expect("valid TCK file");
    let mut group = c.benchmark_group("spec_examples");
    for case in &suite.tests {
        let expression = Expression::compile(&case.expression).expect("compiles");
        let mut event = event();
        for (name, value) in &case.event_overrides {
            event.insert(name.clone(), Value::from(value.clone()));
        }
        group.bench_function(format!("evaluate/{}", case.name), |b| {
            b.iter(|| black_box(&expression).evaluate(black_box(&event)))
        });
        group.bench_function(format!("matches/{}", case.name), |b| {
            b.iter(|| black_box(&expression).matches(black_box(&event)))
        });
    }
    group.finish();
}

/// An event as a broker holds one: required attributes as fields, found by a `match` on the
/// name rather than by hashing it.
struct StructEvent {
    id: String,
    source: String,
    ty: String,
    time: Option<String>,
    extensions: Vec<(String, Value<'static>)>,
}

impl EventAttributes for StructEvent {
    fn attribute(&self, name: &str) -> Option<Value<'_>> {
        fn s(s: &str) -> Value<'_> {
            Value::String(Cow::Borrowed(s))
        }
        match name {
            "specversion" => Some(s("1.0")),
            "id" => Some(s(&self.id)),
            "source" => Some(s(&self.source)),
            "type" => Some(s(&self.ty)),
            "time" => self.time.as_deref().map(s),
            _ => self
                .extensions
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.borrowed()),
        }
    }
}

fn trigger(c: &mut Criterion) {
    let expression =
        Expression::compile("type = 'x' AND source LIKE 'https://github.com/%'").expect("compiles");
    let event = event();
    assert!(expression.matches(&event));
    c.bench_function("trigger/matches/hashmap_event", |b| {
        b.iter(|| black_box(&expression).matches(black_box(&event)))
    });
    let event = StructEvent {
        id: "6f1c2a9e-2b1d-4c3e-9f4a-0d5e6f7a8b9c".into(),
        source: "https://github.com/herald-broker/herald".into(),
        ty: "x".into(),
        time: Some("2026-01-02T03:04:05Z".into()),
        extensions: vec![("sequence".into(), Value::Integer(3))],
    };
    assert!(expression.matches(&event));
    c.bench_function("trigger/matches/struct_event", |b| {
        b.iter(|| black_box(&expression).matches(black_box(&event)))
    });
}

/// An expression of at least 1 KiB made of realistic filter clauses.
pub fn kibibyte_expression() -> String {
    let mut source = String::new();
    for i in 0.. {
        let clause = format!(
            "(type = 'com.example.event.v{i}' AND source LIKE 'https://example.com/%/{i}' \
             AND INT(sequence) > {i} AND subject IN ('a{i}', \"b{i}\", 'c{i}'))"
        );
        if !source.is_empty() {
            source.push_str(" OR ");
        }
        source.push_str(&clause);
        if source.len() >= 1024 {
            break;
        }
    }
    source
}

fn compile(c: &mut Criterion) {
    let source = kibibyte_expression();
    let id = format!("compile/{}_bytes", source.len());
    c.bench_function(&id, |b| b.iter(|| Expression::compile(black_box(&source))));
}

criterion_group!(benches, trigger, spec_examples, compile);
criterion_main!(benches);
