//! Compiles arbitrary text and evaluates it against events, checking that nothing panics and
//! that the engine's own invariants hold.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use cesql::{Expression, FunctionRegistry, Type, Value};
use libfuzzer_sys::fuzz_target;

static FUNCTIONS: LazyLock<FunctionRegistry> = LazyLock::new(|| {
    let mut functions = FunctionRegistry::new();
    functions
        .register(
            "ECHO",
            &[Type::String],
            Some(Type::Integer),
            Type::String,
            |args| Ok(args[0].clone().into_owned()),
        )
        .expect("valid registration");
    functions
});

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let expression = match Expression::compile_with(source, &FUNCTIONS) {
        Ok(expression) => expression,
        Err(error) => {
            assert!(error.line >= 1 && error.column >= 1);
            let _ = error.to_string();
            return;
        }
    };
    // The source itself as an attribute exercises LIKE and the string functions on varied text.
    let event: HashMap<String, Value<'static>> = HashMap::from([
        ("specversion".to_owned(), Value::from("1.0")),
        ("id".to_owned(), Value::from("42")),
        (
            "source".to_owned(),
            Value::from("https://github.com/herald/herald"),
        ),
        ("type".to_owned(), Value::from("com.github.push")),
        ("count".to_owned(), Value::Integer(-2147483648)),
        ("flag".to_owned(), Value::Boolean(true)),
        ("text".to_owned(), Value::from(source.to_owned())),
    ]);
    let evaluation = expression.evaluate(&event);
    if let Some(expected) = expression.result_type() {
        assert_eq!(evaluation.value.value_type(), expected, "{source}");
    }
    let passes = evaluation.value == Value::Boolean(true) && evaluation.errors.is_empty();
    assert_eq!(expression.matches(&event), passes, "{source}");
});
