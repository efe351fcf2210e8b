//! The built-in functions of spec §3.5 plus the cast functions `INT`, `BOOL` and `STRING` the
//! TCK uses. Arguments arrive already cast to the parameter types.

use std::borrow::Cow;

use crate::cast::{self, Param};
use crate::error::ErrorKind;
use crate::eval::Errors;
use crate::value::{Type, Value};

const STRING: Param = Param::Typed(Type::String);
const INTEGER: Param = Param::Typed(Type::Integer);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    Abs,
    Int,
    Bool,
    String,
}

/// A definition: name, fixed parameters, variadic parameter, return type.
#[derive(Debug)]
pub(crate) struct Definition {
    pub(crate) name: &'static str,
    pub(crate) fixed: &'static [Param],
    pub(crate) variadic: Option<Param>,
    pub(crate) returns: Type,
    pub(crate) builtin: Builtin,
}

const fn def(
    name: &'static str,
    fixed: &'static [Param],
    variadic: Option<Param>,
    returns: Type,
    builtin: Builtin,
) -> Definition {
    Definition {
        name,
        fixed,
        variadic,
        returns,
        builtin,
    }
}

/// Every built-in overload. `SUBSTRING` has two, told apart by arity.
pub(crate) const DEFINITIONS: &[Definition] = &[
    def("LENGTH", &[STRING], None, Type::Integer, Builtin::Length),
    def("CONCAT", &[], Some(STRING), Type::String, Builtin::Concat),
    def(
        "CONCAT_WS",
        &[STRING],
        Some(STRING),
        Type::String,
        Builtin::ConcatWs,
    ),
    def("LOWER", &[STRING], None, Type::String, Builtin::Lower),
    def("UPPER", &[STRING], None, Type::String, Builtin::Upper),
    def("TRIM", &[STRING], None, Type::String, Builtin::Trim),
    def(
        "LEFT",
        &[STRING, INTEGER],
        None,
        Type::String,
        Builtin::Left,
    ),
    def(
        "RIGHT",
        &[STRING, INTEGER],
        None,
        Type::String,
        Builtin::Right,
    ),
    def(
        "SUBSTRING",
        &[STRING, INTEGER],
        None,
        Type::String,
        Builtin::Substring,
    ),
    def(
        "SUBSTRING",
        &[STRING, INTEGER, INTEGER],
        None,
        Type::String,
        Builtin::Substring,
    ),
    def("ABS", &[INTEGER], None, Type::Integer, Builtin::Abs),
    def("INT", &[Param::Any], None, Type::Integer, Builtin::Int),
    def("BOOL", &[Param::Any], None, Type::Boolean, Builtin::Bool),
    def("STRING", &[Param::Any], None, Type::String, Builtin::String),
];

impl Definition {
    /// The parameter of argument `i`.
    pub(crate) fn param(&self, i: usize) -> Param {
        self.fixed
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(Param::Any)
    }
}

impl Builtin {
    /// Calls the function; `args` hold values of the parameter types and may be taken.
    pub(crate) fn call<'a>(self, args: &mut [Value<'a>], errors: &mut Errors) -> Value<'a> {
        match self {
            Builtin::Length => {
                let length = text(&args[0]).chars().count();
                Value::Integer(i32::try_from(length).unwrap_or(i32::MAX))
            }
            Builtin::Concat => match args {
                [] => Value::from(""),
                [one] => take(one),
                _ => Value::from(args.iter().map(text).collect::<String>()),
            },
            Builtin::ConcatWs => {
                let (delimiter, parts) = args.split_first().expect("CONCAT_WS has a delimiter");
                let parts: Vec<&str> = parts.iter().map(text).collect();
                Value::from(parts.join(text(delimiter)))
            }
            Builtin::Lower => Value::from(text(&args[0]).to_lowercase()),
            Builtin::Upper => Value::from(text(&args[0]).to_uppercase()),
            Builtin::Trim => map_str(take(&mut args[0]), str::trim),
            Builtin::Left | Builtin::Right => {
                let count = integer(&args[1]);
                let x = take(&mut args[0]);
                let Ok(count) = usize::try_from(count) else {
                    let name = if self == Builtin::Left {
                        "LEFT"
                    } else {
                        "RIGHT"
                    };
                    errors.push(ErrorKind::FunctionEvaluation, || {
                        format!("{name}: negative length {count}")
                    });
                    return x;
                };
                if self == Builtin::Left {
                    map_str(x, |s| &s[..char_offset(s, count)])
                } else {
                    map_str(x, |s| {
                        let length = s.chars().count();
                        &s[char_offset(s, length.saturating_sub(count))..]
                    })
                }
            }
            Builtin::Substring => substring(args, errors),
            Builtin::Abs => {
                let x = integer(&args[0]);
                Value::Integer(x.checked_abs().unwrap_or_else(|| {
                    errors.push(ErrorKind::Math, || format!("ABS({x}) overflows"));
                    i32::MAX
                }))
            }
            Builtin::Int => Value::Integer(cast::to_integer(&args[0], errors)),
            Builtin::Bool => Value::Boolean(cast::to_boolean(&args[0], true, errors)),
            Builtin::String => Value::String(cast::to_string(take(&mut args[0]))),
        }
    }
}

/// `SUBSTRING(x, pos)` and `SUBSTRING(x, pos, len)`; `pos` counts characters from 1, or from
/// the end when negative.
fn substring<'a>(args: &mut [Value<'a>], errors: &mut Errors) -> Value<'a> {
    let pos = i64::from(integer(&args[1]));
    let len = args.get(2).map(|v| i64::from(integer(v)));
    let x = take(&mut args[0]);
    let length = text(&x).chars().count() as i64;
    if pos > length || pos < -length {
        errors.push(ErrorKind::FunctionEvaluation, || {
            format!("SUBSTRING: position {pos} is outside a string of {length} characters")
        });
        return Value::from("");
    }
    if let Some(len) = len.filter(|l| *l < 0) {
        errors.push(ErrorKind::FunctionEvaluation, || {
            format!("SUBSTRING: negative length {len}")
        });
        return Value::from("");
    }
    if pos == 0 {
        return Value::from("");
    }
    let start = if pos > 0 { pos - 1 } else { length + pos };
    let end = len.map_or(length, |l| (start + l).min(length));
    // Both are within 0..=length, which fits in usize.
    let (start, end) = (start as usize, end as usize);
    map_str(x, |s| {
        let from = char_offset(s, start);
        &s[from..from + char_offset(&s[from..], end - start)]
    })
}

/// Byte offset of the `n`th character of `s`, or its length.
fn char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// A substring of a string value, borrowed when the value is.
fn map_str<'a>(value: Value<'a>, f: impl FnOnce(&str) -> &str) -> Value<'a> {
    match value {
        Value::String(Cow::Borrowed(s)) => Value::String(Cow::Borrowed(f(s))),
        Value::String(Cow::Owned(s)) => Value::from(f(&s).to_owned()),
        other => other,
    }
}

fn take<'a>(value: &mut Value<'a>) -> Value<'a> {
    std::mem::replace(value, Value::Boolean(false))
}

fn text<'v>(value: &'v Value<'_>) -> &'v str {
    value.as_str().unwrap_or_default()
}

fn integer(value: &Value<'_>) -> i32 {
    value.as_integer().unwrap_or_default()
}
