//! Parse errors say where (line and character column) and what was expected.

use cesql::{ErrorKind, Expression, ParseError};

fn error(source: &str) -> ParseError {
    Expression::compile(source).expect_err(source)
}

fn at(source: &str) -> (usize, usize) {
    let e = error(source);
    (e.line, e.column)
}

#[test]
fn unclosed_call_expects_an_expression_at_end_of_input() {
    let e = error("ABC(");
    assert_eq!((e.line, e.column), (1, 5));
    assert_eq!(
        e.to_string(),
        "parse error at 1:5: expected an expression, found end of input"
    );
    assert_eq!(e.kind(), ErrorKind::Parse);
}

#[test]
fn position_is_counted_in_lines_and_characters() {
    let e = error("type = 'é'\n  AND source LIKE 1");
    assert_eq!((e.line, e.column), (2, 19));
    assert_eq!(e.expected, "a string literal (LIKE pattern)");
    assert_eq!(e.found, "`1`");
}

#[test]
fn like_pattern_must_be_a_string_literal() {
    assert_eq!(at("x LIKE y"), (1, 8));
    assert_eq!(at("x LIKE ('a')"), (1, 8));
}

#[test]
fn trailing_tokens_expect_an_operator() {
    let e = error("a = 1 b");
    assert_eq!(
        (e.column, e.expected.as_str()),
        (7, "an operator or end of input")
    );
    let e = error("(a = 1");
    assert_eq!((e.column, e.expected.as_str()), (7, "an operator or `)`"));
}

#[test]
fn not_after_an_operand_must_introduce_like_or_in() {
    assert_eq!(error("a NOT b").expected, "LIKE or IN after NOT");
}

#[test]
fn in_needs_a_non_empty_parenthesised_set() {
    assert_eq!(error("a IN ()").expected, "an expression");
    assert_eq!(error("a IN 1").expected, "`(` (IN set)");
    assert_eq!(error("a IN (1, 2").expected, "an operator, `,` or `)`");
}

#[test]
fn exists_needs_an_attribute_name() {
    assert_eq!(error("EXISTS 1").expected, "an attribute name after EXISTS");
    assert_eq!(error("EXISTS").expected, "an attribute name after EXISTS");
}

#[test]
fn malformed_names_are_rejected() {
    assert!(error("my_attr = 1").found.contains("not an attribute name"));
    assert!(error("F1(2)").found.contains("not a function name"));
    assert!(error("_F(2)").found.contains("not a function name"));
}

#[test]
fn lexical_errors_are_parse_errors() {
    assert_eq!(at("a = 'open"), (1, 5));
    assert_eq!(at("a ! b"), (1, 3));
    assert_eq!(at("a == b"), (1, 4));
    assert_eq!(at("a = #"), (1, 5));
    assert_eq!(at(""), (1, 1));
}
