//! Behaviour the spec defines that the TCK does not cover.

use std::collections::HashMap;

use cesql::{ErrorKind, Expression, Type, Value};

fn event() -> HashMap<String, Value<'static>> {
    HashMap::from([
        ("specversion".to_owned(), Value::from("1.0")),
        ("id".to_owned(), Value::from("id-1")),
        (
            "source".to_owned(),
            Value::from("https://github.com/herald/herald"),
        ),
        ("type".to_owned(), Value::from("com.github.push")),
        ("sequence".to_owned(), Value::from("10")),
        ("count".to_owned(), Value::Integer(3)),
        ("flag".to_owned(), Value::Boolean(true)),
        ("name".to_owned(), Value::from("Émile")),
    ])
}

/// Value and error kinds of `source` evaluated against [`event`].
fn eval(source: &str) -> (Value<'static>, Vec<ErrorKind>) {
    let evaluation = Expression::compile(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .evaluate(&event());
    (
        evaluation.value,
        evaluation.errors.iter().map(|e| e.kind).collect(),
    )
}

fn value(source: &str) -> Value<'static> {
    let (value, errors) = eval(source);
    assert!(errors.is_empty(), "{source}: unexpected errors {errors:?}");
    value
}

#[test]
fn and_or_xor_share_a_level_and_group_left_to_right() {
    assert_eq!(value("TRUE OR FALSE AND FALSE"), Value::Boolean(false));
    assert_eq!(value("FALSE AND FALSE OR TRUE"), Value::Boolean(true));
    assert_eq!(value("TRUE XOR TRUE OR TRUE"), Value::Boolean(true));
    assert_eq!(value("TRUE OR (FALSE AND FALSE)"), Value::Boolean(true));
}

#[test]
fn arithmetic_binds_tighter_than_comparison_which_binds_tighter_than_logic() {
    assert_eq!(
        value("1 + 2 * 3 = 7 AND 10 - 4 - 3 = 3"),
        Value::Boolean(true)
    );
    assert_eq!(value("7 / 2 * 2"), Value::Integer(6));
    assert_eq!(value("-7 % 3"), Value::Integer(-1));
}

#[test]
fn unary_operators_bind_tighter_than_like_and_in() {
    // (NOT TRUE) LIKE 'f%': the boolean is cast to the string "false".
    assert_eq!(value("NOT TRUE LIKE 'f%'"), Value::Boolean(true));
    assert_eq!(value("-1 IN (-1)"), Value::Boolean(true));
    assert_eq!(value("NOT (type LIKE 'com.%')"), Value::Boolean(false));
}

#[test]
fn like_and_in_bind_tighter_than_binary_operators() {
    assert_eq!(value("TRUE = type LIKE 'com.%'"), Value::Boolean(true));
    assert_eq!(value("1 + count IN (3)"), Value::Integer(2));
}

#[test]
fn signs_join_integer_literals_only_in_operand_position() {
    assert_eq!(value("4-1"), Value::Integer(3));
    assert_eq!(value("4 -1"), Value::Integer(3));
    assert_eq!(value("4 - -1"), Value::Integer(5));
    assert_eq!(value("+5"), Value::Integer(5));
    assert_eq!(value("-2147483648"), Value::Integer(i32::MIN));
    assert!(Expression::compile("2147483648").is_err());
    assert!(Expression::compile("- 2147483648").is_err());
}

#[test]
fn identifiers_and_function_names_are_case_insensitive() {
    assert_eq!(
        value("TYPE = Type AND Length(ID) = 4"),
        Value::Boolean(true)
    );
    assert_eq!(value("concat_WS('-', 'a', 'b')"), Value::from("a-b"));
}

#[test]
fn attribute_types_drive_implicit_casts() {
    assert_eq!(
        value("sequence = 10 AND sequence + 1 = 11"),
        Value::Boolean(true)
    );
    assert_eq!(
        value("count = '3' AND flag = 'true' AND 'TRUE' = flag"),
        Value::Boolean(true)
    );
    assert_eq!(value("count = '03'"), Value::Boolean(false));
    assert_eq!(value("sequence > count"), Value::Boolean(true));
}

#[test]
fn failed_operand_makes_every_enclosing_operator_return_its_zero_value() {
    assert_eq!(
        eval("(1 / 0) + 5"),
        (Value::Integer(0), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("NOT (1 = 1 / 0)"),
        (Value::Boolean(false), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("LENGTH(missing)"),
        (Value::Integer(0), vec![ErrorKind::MissingAttribute])
    );
    assert_eq!(
        eval("UPPER(missing)"),
        (Value::from(""), vec![ErrorKind::MissingAttribute])
    );
    assert_eq!(
        eval("missing IN (1)"),
        (Value::Boolean(false), vec![ErrorKind::MissingAttribute])
    );
    assert_eq!(
        eval("missing NOT IN (1)"),
        (Value::Boolean(false), vec![ErrorKind::MissingAttribute])
    );
    assert_eq!(
        eval("missing NOT LIKE 'x'"),
        (Value::Boolean(false), vec![ErrorKind::MissingAttribute])
    );
}

#[test]
fn an_operator_keeps_its_own_fallback_value_when_it_fails_itself() {
    assert_eq!(
        eval("'abc' < 'abd'"),
        (Value::Boolean(false), vec![ErrorKind::Cast; 2])
    );
    assert_eq!(
        eval("'abc' != 1"),
        (Value::Boolean(true), vec![ErrorKind::Cast])
    );
    assert_eq!(eval("ABS('x')"), (Value::Integer(0), vec![ErrorKind::Cast]));
}

#[test]
fn both_operands_are_evaluated_so_both_errors_are_reported() {
    assert_eq!(
        eval("missing + 1 / 0"),
        (
            Value::Integer(0),
            vec![ErrorKind::MissingAttribute, ErrorKind::Math]
        )
    );
}

#[test]
fn or_does_not_evaluate_its_right_operand_when_the_left_is_true() {
    assert_eq!(eval("TRUE OR missing"), (Value::Boolean(true), vec![]));
    assert_eq!(eval("FALSE AND missing"), (Value::Boolean(false), vec![]));
}

#[test]
fn integer_to_boolean_is_a_cast_error_only_when_implicit() {
    assert_eq!(
        eval("1 = TRUE"),
        (Value::Boolean(false), vec![ErrorKind::Cast])
    );
    assert_eq!(
        eval("1 AND TRUE"),
        (Value::Boolean(false), vec![ErrorKind::Cast])
    );
    assert_eq!(value("BOOL(1) = TRUE"), Value::Boolean(true));
    assert_eq!(value("TRUE = 1"), Value::Boolean(true));
}

#[test]
fn in_casts_elements_to_the_type_of_the_operand_and_stops_at_a_match() {
    assert_eq!(value("count IN ('1', '3')"), Value::Boolean(true));
    assert_eq!(
        eval("count IN ('x', 3)"),
        (Value::Boolean(true), vec![ErrorKind::Cast])
    );
    assert_eq!(
        eval("count IN (3, missing)"),
        (Value::Boolean(true), vec![])
    );
    assert_eq!(value("count NOT IN (1, 2)"), Value::Boolean(true));
}

#[test]
fn integer_overflow_saturates_with_a_math_error() {
    assert_eq!(
        eval("2147483647 + 1"),
        (Value::Integer(i32::MAX), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("-2147483648 - 1"),
        (Value::Integer(i32::MIN), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("65536 * -65536"),
        (Value::Integer(i32::MIN), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("-2147483648 / -1"),
        (Value::Integer(i32::MAX), vec![ErrorKind::Math])
    );
    assert_eq!(
        eval("-(-2147483648)"),
        (Value::Integer(i32::MAX), vec![ErrorKind::Math])
    );
    assert_eq!(value("-2147483648 % -1"), Value::Integer(0));
}

#[test]
fn string_functions_count_characters_not_bytes() {
    assert_eq!(value("LENGTH(name)"), Value::Integer(5));
    assert_eq!(value("UPPER(name)"), Value::from("ÉMILE"));
    assert_eq!(value("LEFT(name, 2)"), Value::from("Ém"));
    assert_eq!(value("RIGHT(name, 2)"), Value::from("le"));
    assert_eq!(value("SUBSTRING(name, 1, 1)"), Value::from("É"));
    assert_eq!(value("SUBSTRING(name, -2, 5)"), Value::from("le"));
    assert_eq!(value("name LIKE '_mile'"), Value::Boolean(true));
}

#[test]
fn substring_rejects_negative_lengths() {
    assert_eq!(
        eval("SUBSTRING('abc', 1, -1)"),
        (Value::from(""), vec![ErrorKind::FunctionEvaluation])
    );
    assert_eq!(value("SUBSTRING('abc', 3)"), Value::from("c"));
    assert_eq!(value("SUBSTRING('abc', -3)"), Value::from("abc"));
}

#[test]
fn trim_removes_unicode_whitespace_only() {
    assert_eq!(value("TRIM('\u{2003} a\t\n')"), Value::from("a"));
    assert_eq!(value("LENGTH(TRIM('\u{1}a'))"), Value::Integer(2));
}

#[test]
fn unknown_function_compiles_and_fails_at_evaluation() {
    assert_eq!(
        eval("NOPE(1)"),
        (Value::Boolean(false), vec![ErrorKind::MissingFunction])
    );
    assert_eq!(
        eval("LENGTH('a', 'b')"),
        (Value::Boolean(false), vec![ErrorKind::MissingFunction])
    );
}

#[test]
fn string_literals_accept_doubled_quotes() {
    assert_eq!(value("'it''s' = \"it's\""), Value::Boolean(true));
}

#[test]
fn like_without_wildcards_is_exact_and_case_sensitive() {
    assert_eq!(value("type LIKE 'com.github.push'"), Value::Boolean(true));
    assert_eq!(value("type LIKE 'COM.github.push'"), Value::Boolean(false));
    assert_eq!(value("type LIKE 'com.github'"), Value::Boolean(false));
    assert_eq!(
        value("source LIKE 'https://github.com/%'"),
        Value::Boolean(true)
    );
    assert_eq!(value("type LIKE '%.push'"), Value::Boolean(true));
    assert_eq!(value("type LIKE '%github%'"), Value::Boolean(true));
}

#[test]
fn matches_is_false_whenever_an_error_happened() {
    let event = event();
    assert!(Expression::compile("EXISTS id").unwrap().matches(&event));
    assert!(!Expression::compile("'1'").unwrap().matches(&event));
    assert!(
        !Expression::compile("TRUE OR FALSE AND missing")
            .unwrap()
            .matches(&event)
    );
    assert!(!Expression::compile("NOT 10").unwrap().matches(&event));
    assert!(Expression::compile("flag").unwrap().matches(&event));
    assert!(!Expression::compile("missing").unwrap().matches(&event));
}

#[test]
fn required_attributes_always_exist() {
    let empty: HashMap<String, Value<'static>> = HashMap::new();
    let expression =
        Expression::compile("EXISTS SpecVersion AND EXISTS id AND EXISTS source AND EXISTS type");
    assert!(expression.unwrap().matches(&empty));
    assert!(
        !Expression::compile("EXISTS subject")
            .unwrap()
            .matches(&empty)
    );
}

#[test]
fn result_type_is_known_unless_the_expression_is_an_attribute() {
    let ty = |s: &str| Expression::compile(s).unwrap().result_type();
    assert_eq!(ty("type = 'x'"), Some(Type::Boolean));
    assert_eq!(ty("count + 1"), Some(Type::Integer));
    assert_eq!(ty("CONCAT(id)"), Some(Type::String));
    assert_eq!(ty("(type)"), None);
}

#[test]
fn error_messages_are_collected_in_order_of_evaluation() {
    let evaluation = Expression::compile("missing = INT('x')")
        .unwrap()
        .evaluate(&event());
    let messages: Vec<String> = evaluation.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "missingAttribute error: attribute missing is missing",
            "cast error: cannot cast string \"x\" to integer",
        ]
    );
}

#[test]
fn expression_is_send_sync_clone_and_shows_its_source() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<Expression>();
    let expression: Expression = "type = 'x'".parse().unwrap();
    assert_eq!(format!("{expression:?}"), "Expression(\"type = 'x'\")");
    assert_eq!(expression.clone().source(), "type = 'x'");
}
