//! Casts between the three types (spec §3.7), recording failures in [`Errors`].
//!
//! Implicit casts (operands of operators and functions) and explicit ones (`INT`, `BOOL`,
//! `STRING`) differ in one place: an implicit cast from integer to boolean is a cast error whose
//! result is `false`, while `BOOL(x)` returns `x != 0`. The table of §3.7 allows both directions,
//! but the official TCK requires `NOT 10` to give `true` with a cast error (`not_operator.yaml`,
//! "Invalid int cast") and `BOOL(100)` to give `true` without one, which only this split
//! satisfies. Boolean to integer stays allowed implicitly (`5 + TRUE` is 6 in the TCK).

use std::borrow::Cow;

use crate::error::ErrorKind;
use crate::eval::Errors;
use crate::value::{Type, Value};

/// How an argument of a function is typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// Cast implicitly to the type.
    Typed(Type),
    /// Passed as it is (the argument of the cast functions).
    Any,
}

/// Casts `value` to `target`; on failure records a cast error and returns the zero value.
pub(crate) fn cast<'a>(
    value: Value<'a>,
    target: Type,
    explicit: bool,
    errors: &mut Errors,
) -> Value<'a> {
    match target {
        Type::Integer => Value::Integer(to_integer(&value, errors)),
        Type::Boolean => Value::Boolean(to_boolean(&value, explicit, errors)),
        Type::String => Value::String(to_string(value)),
    }
}

/// Casts a function argument to its parameter type.
#[inline]
pub(crate) fn to_param<'a>(value: Value<'a>, param: Param, errors: &mut Errors) -> Value<'a> {
    match param {
        Param::Typed(t) if t != value.value_type() => cast(value, t, false, errors),
        _ => value,
    }
}

/// Implicit or explicit cast to integer: booleans are 0 and 1, strings are parsed in base 10
/// with an optional sign.
#[inline]
pub(crate) fn to_integer(value: &Value<'_>, errors: &mut Errors) -> i32 {
    match value {
        Value::Integer(i) => *i,
        Value::Boolean(b) => i32::from(*b),
        Value::String(s) => s.parse().unwrap_or_else(|_| {
            errors.push(ErrorKind::Cast, || {
                format!("cannot cast string {s:?} to integer")
            });
            0
        }),
    }
}

/// Cast to boolean: strings `true`/`false` in any case; integers only when `explicit`.
#[inline]
pub(crate) fn to_boolean(value: &Value<'_>, explicit: bool, errors: &mut Errors) -> bool {
    match value {
        Value::Boolean(b) => *b,
        Value::Integer(i) if explicit => *i != 0,
        Value::Integer(i) => {
            errors.push(ErrorKind::Cast, || {
                format!("cannot implicitly cast integer {i} to boolean")
            });
            false
        }
        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
        Value::String(s) => {
            errors.push(ErrorKind::Cast, || {
                format!("cannot cast string {s:?} to boolean")
            });
            false
        }
    }
}

/// Cast to string, which always succeeds; borrows when the value is already a string.
#[inline]
pub(crate) fn to_string(value: Value<'_>) -> Cow<'_, str> {
    match value {
        Value::String(s) => s,
        Value::Integer(i) => Cow::Owned(i.to_string()),
        Value::Boolean(b) => Cow::Borrowed(if b { "true" } else { "false" }),
    }
}

/// `left = right` after casting `left` to the type of `right`: `=` is ambiguous (defined for
/// all three types), and §3.7 resolves it by the type of the right operand. `IN` calls it with
/// the set element on the left, since there the element takes the type of the tested value.
#[inline]
pub(crate) fn equal(left: &Value<'_>, right: &Value<'_>, errors: &mut Errors) -> bool {
    match (left, right) {
        (Value::String(l), Value::String(r)) => l == r,
        (Value::Integer(l), Value::Integer(r)) => l == r,
        (Value::Boolean(l), Value::Boolean(r)) => l == r,
        (Value::Integer(l), Value::String(r)) => integer_text_equals(*l, r),
        (Value::Boolean(l), Value::String(r)) => r == if *l { "true" } else { "false" },
        (_, Value::Integer(r)) => to_integer(left, errors) == *r,
        (_, Value::Boolean(r)) => to_boolean(left, false, errors) == *r,
    }
}

/// Whether `text` is exactly the base-10 rendering of `i`, without allocating it.
fn integer_text_equals(i: i32, text: &str) -> bool {
    let mut buf = [0u8; 11];
    let mut pos = buf.len();
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..] == text.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_text_comparison_matches_to_string() {
        for i in [0, 7, -7, 10, 123, i32::MAX, i32::MIN] {
            assert!(integer_text_equals(i, &i.to_string()));
        }
        assert!(!integer_text_equals(10, "010"));
        assert!(!integer_text_equals(10, "+10"));
        assert!(!integer_text_equals(0, "-0"));
    }

    #[test]
    fn string_to_integer_accepts_a_sign_and_rejects_spaces() {
        let mut errors = Errors::new(true);
        assert_eq!(to_integer(&Value::from("+12"), &mut errors), 12);
        assert_eq!(to_integer(&Value::from("-12"), &mut errors), -12);
        assert!(errors.is_empty());
        assert_eq!(to_integer(&Value::from(" 1"), &mut errors), 0);
        assert_eq!(to_integer(&Value::from("2147483648"), &mut errors), 0);
        assert_eq!(errors.into_vec().len(), 2);
    }

    #[test]
    fn integer_to_boolean_is_explicit_only() {
        let mut errors = Errors::new(true);
        assert!(to_boolean(&Value::Integer(5), true, &mut errors));
        assert!(errors.is_empty());
        assert!(!to_boolean(&Value::Integer(5), false, &mut errors));
        assert_eq!(errors.into_vec()[0].kind, ErrorKind::Cast);
    }
}
