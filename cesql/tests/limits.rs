//! Hostile input: nesting that would overflow a recursive parser's stack, chains that would
//! overflow a recursive evaluator's, and LIKE patterns that are exponential for backtracking
//! matchers.

use std::collections::HashMap;

use cesql::{Expression, Value};

/// Runs `f` on a thread with a deliberately small stack, so that a recursion bound that only
/// holds with the default 2 MiB (spawned and tokio threads) or 8 MiB (main thread) fails here:
/// 256 KiB in release builds, 1 MiB in debug builds, whose frames are several times larger.
const STACK: usize = if cfg!(debug_assertions) { 1024 } else { 256 } * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow or panic")
}

fn assert_too_deep(source: String) {
    let error = on_small_stack(move || Expression::compile(&source).unwrap_err());
    assert!(
        error.found.contains("too deep") || error.found.contains("too deeply"),
        "unexpected error: {error}"
    );
}

#[test]
fn hundred_thousand_parentheses_are_a_parse_error() {
    assert_too_deep(format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)));
}

#[test]
fn unclosed_parentheses_are_a_parse_error() {
    assert_too_deep("(".repeat(100_000));
}

#[test]
fn hundred_thousand_nots_are_a_parse_error() {
    assert_too_deep(format!("{}TRUE", "NOT ".repeat(100_000)));
}

#[test]
fn hundred_thousand_minus_signs_are_a_parse_error() {
    assert_too_deep(format!("{}1", "-".repeat(100_000)));
}

#[test]
fn nested_function_calls_are_a_parse_error() {
    assert_too_deep(format!(
        "{}'x'{}",
        "LOWER(".repeat(100_000),
        ")".repeat(100_000)
    ));
}

#[test]
fn nested_in_sets_are_a_parse_error() {
    assert_too_deep(format!(
        "{}1{}",
        "1 IN (".repeat(100_000),
        ")".repeat(100_000)
    ));
}

#[test]
fn long_operator_chain_is_a_parse_error() {
    assert_too_deep(format!("1{}", " + 1".repeat(100_000)));
    assert_too_deep(format!("a{}", " LIKE 'a'".repeat(100_000)));
}

#[test]
fn deepest_accepted_expressions_compile_and_evaluate_on_a_small_stack() {
    let sum = on_small_stack(|| {
        let chain = format!("1{}", " + 1".repeat(498));
        let nested = format!("{}TRUE{}", "NOT (".repeat(50), ")".repeat(50));
        let sum = Expression::compile(&chain).unwrap();
        let not = Expression::compile(&nested).unwrap();
        let event: HashMap<String, Value<'static>> = HashMap::new();
        assert_eq!(not.evaluate(&event).value, Value::Boolean(true));
        sum.evaluate(&event).value
    });
    assert_eq!(sum, Value::Integer(499));
}

#[test]
fn like_with_many_wildcards_does_not_backtrack() {
    // A backtracking matcher explores about C(10 000, 40) ways to place the `%`s here.
    let text = "a".repeat(10_000);
    let event = HashMap::from([("x".to_owned(), Value::from(text))]);
    let no_match = format!("x LIKE '{}b'", "%a".repeat(40));
    assert!(!Expression::compile(&no_match).unwrap().matches(&event));
    let underscores = format!("x LIKE '{}%'", "%_a_".repeat(40));
    assert!(Expression::compile(&underscores).unwrap().matches(&event));
    let no_match = format!("x LIKE '{}%b%'", "%_a_".repeat(40));
    assert!(!Expression::compile(&no_match).unwrap().matches(&event));
}

#[test]
fn huge_integer_literal_is_a_parse_error_not_a_panic() {
    let error = Expression::compile(&"9".repeat(10_000)).unwrap_err();
    assert!(error.found.contains("32-bit"), "{error}");
}
