//! User-defined functions: registration rules (spec §3.5) and evaluation (§3.5.3).

use std::collections::HashMap;

use cesql::{ErrorKind, Expression, FunctionRegistry, Type, Value};

fn registry() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .register(
            "HASPREFIX",
            &[Type::String, Type::String],
            None,
            Type::Boolean,
            |args| {
                let (s, prefix) = (
                    args[0].as_str().unwrap_or(""),
                    args[1].as_str().unwrap_or(""),
                );
                Ok(Value::Boolean(s.starts_with(prefix)))
            },
        )
        .unwrap()
        .register("KONKAT", &[], Some(Type::String), Type::String, |args| {
            Ok(Value::from(
                args.iter().filter_map(Value::as_str).collect::<String>(),
            ))
        })
        .unwrap()
        .register("FAILS", &[], None, Type::Integer, |_| {
            Err("always fails".into())
        })
        .unwrap()
        .register("LIES", &[], None, Type::Integer, |_| {
            Ok(Value::from("not an integer"))
        })
        .unwrap()
        .register("DOUBLE", &[Type::Integer], None, Type::Integer, |args| {
            Ok(Value::Integer(args[0].as_integer().unwrap_or(0) * 2))
        })
        .unwrap();
    functions
}

fn eval(source: &str) -> (Value<'static>, Vec<ErrorKind>) {
    let event = HashMap::from([("source".to_owned(), Value::from("https://example.com"))]);
    let evaluation = Expression::compile_with(source, &registry())
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .evaluate(&event);
    (
        evaluation.value,
        evaluation.errors.iter().map(|e| e.kind).collect(),
    )
}

#[test]
fn user_functions_are_called_with_arguments_cast_to_their_parameters() {
    assert_eq!(
        eval("HASPREFIX(source, 'https')"),
        (Value::Boolean(true), vec![])
    );
    assert_eq!(eval("hasPrefix(123, 1)"), (Value::Boolean(true), vec![]));
    assert_eq!(eval("DOUBLE('21')"), (Value::Integer(42), vec![]));
    assert_eq!(eval("KONKAT()"), (Value::from(""), vec![]));
    assert_eq!(
        eval("KONKAT('a', 1, TRUE)"),
        (Value::from("a1true"), vec![])
    );
}

#[test]
fn failing_user_function_returns_its_zero_value_with_an_error() {
    assert_eq!(
        eval("FAILS()"),
        (Value::Integer(0), vec![ErrorKind::FunctionEvaluation])
    );
    assert_eq!(
        eval("LIES()"),
        (Value::Integer(0), vec![ErrorKind::FunctionEvaluation])
    );
}

#[test]
fn user_function_is_not_called_when_an_argument_is_missing() {
    assert_eq!(
        eval("DOUBLE(missing)"),
        (Value::Integer(0), vec![ErrorKind::MissingAttribute])
    );
}

#[test]
fn wrong_arity_is_a_missing_function() {
    assert_eq!(
        eval("DOUBLE(1, 2)"),
        (Value::Boolean(false), vec![ErrorKind::MissingFunction])
    );
    assert_eq!(
        eval("HASPREFIX('a')"),
        (Value::Boolean(false), vec![ErrorKind::MissingFunction])
    );
}

#[test]
fn functions_registered_elsewhere_are_unknown() {
    let evaluation = Expression::compile("DOUBLE(1)")
        .unwrap()
        .evaluate(&HashMap::new());
    assert_eq!(evaluation.errors[0].kind, ErrorKind::MissingFunction);
}

fn register(functions: &mut FunctionRegistry, name: &str, fixed: usize, variadic: bool) -> bool {
    let params = vec![Type::String; fixed];
    let variadic = variadic.then_some(Type::String);
    functions
        .register(name, &params, variadic, Type::String, |_| {
            Ok(Value::from(""))
        })
        .is_ok()
}

#[test]
fn overloads_must_be_told_apart_by_arity() {
    let mut functions = FunctionRegistry::new();
    assert!(register(&mut functions, "ABC", 1, false));
    assert!(register(&mut functions, "abc", 2, false));
    assert!(
        !register(&mut functions, "Abc", 2, false),
        "same arity twice"
    );
    assert!(
        !register(&mut functions, "ABC", 2, true),
        "variadic overlapping arity 2"
    );
    assert!(register(&mut functions, "ABC", 3, true));
    assert!(!register(&mut functions, "ABC", 4, true), "second variadic");
    assert!(
        !register(&mut functions, "ABC", 5, false),
        "arity taken by the variadic"
    );
}

#[test]
fn overloads_dispatch_on_arity() {
    let mut functions = FunctionRegistry::new();
    for (fixed, variadic, tag) in [(1, false, "one"), (2, false, "two"), (3, true, "many")] {
        let params = vec![Type::String; fixed];
        functions
            .register(
                "ABC",
                &params,
                variadic.then_some(Type::String),
                Type::String,
                move |_| Ok(Value::from(tag)),
            )
            .unwrap();
    }
    let call = |s: &str| {
        Expression::compile_with(s, &functions)
            .unwrap()
            .evaluate(&HashMap::new())
            .value
    };
    assert_eq!(call("ABC(1)"), Value::from("one"));
    assert_eq!(call("ABC(1, 2)"), Value::from("two"));
    assert_eq!(call("ABC(1, 2, 3)"), Value::from("many"));
    assert_eq!(call("ABC(1, 2, 3, 4, 5, 6)"), Value::from("many"));
}

#[test]
fn builtins_cannot_be_shadowed_but_may_gain_overloads() {
    let mut functions = FunctionRegistry::new();
    assert!(!register(&mut functions, "LENGTH", 1, false));
    assert!(
        !register(&mut functions, "concat", 7, false),
        "CONCAT is variadic from zero"
    );
    assert!(register(&mut functions, "LENGTH", 2, false));
    assert!(register(&mut functions, "CONCAT_WS", 0, false));
}

#[test]
fn function_names_are_letters_and_underscores() {
    let mut functions = FunctionRegistry::new();
    assert!(!register(&mut functions, "F1", 0, false));
    assert!(!register(&mut functions, "_F", 0, false));
    assert!(!register(&mut functions, "", 0, false));
    assert!(register(&mut functions, "MY_FUNC", 0, false));
}
