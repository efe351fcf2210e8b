//! Runs the official CESQL TCK (tests/tck/*.yaml, see tests/tck/NOTICE): every case of every
//! file, checking the value and the kind of every error.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cesql::{ErrorKind, Expression, Value};
use serde::Deserialize;

#[derive(Deserialize)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    name: String,
    expression: String,
    result: Option<Scalar>,
    error: Option<String>,
    event: Option<BTreeMap<String, Scalar>>,
    event_overrides: Option<BTreeMap<String, Scalar>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i32),
    Str(String),
}

impl Scalar {
    fn to_value(&self) -> Value<'static> {
        match self {
            Scalar::Bool(b) => Value::Boolean(*b),
            Scalar::Int(i) => Value::Integer(*i),
            Scalar::Str(s) => Value::from(s.clone()),
        }
    }
}

/// The event of cases that give none. The TCK README allows any valid event; this one has the
/// required attributes only, so that the cases expecting a missing `subject` or extension hold.
fn default_event() -> BTreeMap<String, Value<'static>> {
    BTreeMap::from([
        ("specversion".to_owned(), Value::from("1.0")),
        ("id".to_owned(), Value::from("tck-default-id")),
        ("source".to_owned(), Value::from("https://example.com/tck")),
        ("type".to_owned(), Value::from("com.example.tck")),
    ])
}

fn error_kind(name: &str) -> ErrorKind {
    [
        ErrorKind::Parse,
        ErrorKind::Math,
        ErrorKind::Cast,
        ErrorKind::MissingFunction,
        ErrorKind::FunctionEvaluation,
        ErrorKind::MissingAttribute,
    ]
    .into_iter()
    .find(|k| k.name() == name)
    .unwrap_or_else(|| panic!("unknown TCK error kind {name}"))
}

/// Checks one case; `Err` says how it failed.
fn run(case: &Case) -> Result<(), String> {
    let expected_error = case.error.as_deref().map(error_kind);
    let compiled = Expression::compile(&case.expression);
    if expected_error == Some(ErrorKind::Parse) {
        return match compiled {
            Err(_) => Ok(()),
            Ok(_) => Err("compiled, expected a parse error".into()),
        };
    }
    let expression = compiled.map_err(|e| format!("did not compile: {e}"))?;

    let mut event = match &case.event {
        Some(attributes) => attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect(),
        None => default_event(),
    };
    for (name, value) in case.event_overrides.iter().flatten() {
        event.insert(name.clone(), value.to_value());
    }

    let evaluation = expression.evaluate(&event);
    if let Some(expected) = &case.result
        && evaluation.value != expected.to_value()
    {
        return Err(format!(
            "value {:?}, expected {:?}",
            evaluation.value, expected
        ));
    }
    let kinds: Vec<ErrorKind> = evaluation.errors.iter().map(|e| e.kind).collect();
    let errors_ok = match expected_error {
        Some(kind) => !kinds.is_empty() && kinds.iter().all(|k| *k == kind),
        None => kinds.is_empty(),
    };
    if !errors_ok {
        return Err(format!(
            "errors {:?}, expected {:?}",
            evaluation.errors, case.error
        ));
    }
    if expression.matches(&event) != (evaluation.value == Value::Boolean(true) && kinds.is_empty())
    {
        return Err("matches() disagrees with evaluate()".into());
    }
    Ok(())
}

fn tck_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tck");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("tests/tck exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Cases counted without the YAML parser: every item of a file's `tests` list starts with a
/// line `  - name:`.
fn count_cases_textually(text: &str) -> usize {
    text.lines()
        .filter(|line| line.starts_with("  - name:"))
        .count()
}

#[test]
fn every_tck_case_passes() {
    let files = tck_files();
    assert_eq!(files.len(), 18, "the TCK at the pinned commit has 18 files");
    let (mut run_count, mut listed, mut failures) = (0, 0, Vec::new());
    for path in &files {
        let text = fs::read_to_string(path).expect("readable TCK file");
        listed += count_cases_textually(&text);
        let suite: Suite =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in &suite.tests {
            run_count += 1;
            if let Err(why) = run(case) {
                failures.push(format!(
                    "{} / {}: `{}`: {why}",
                    suite.name, case.name, case.expression
                ));
            }
        }
    }
    println!(
        "TCK: {run_count} cases run from {} files, {} failed",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing TCK cases:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        run_count, listed,
        "cases run differ from cases listed in the files"
    );
}
