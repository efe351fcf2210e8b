//! The three CESQL types and their values.

use std::borrow::Cow;
use std::fmt;

/// A CESQL primitive type (spec §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A 32-bit signed integer.
    Integer,
    /// A sequence of Unicode characters.
    String,
    /// `true` or `false`.
    Boolean,
}

impl Type {
    /// The zero value of the type: what an operator returns when it cannot compute its result
    /// (spec §3.1, §3.3).
    pub fn zero(self) -> Value<'static> {
        match self {
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(Cow::Borrowed("")),
            Type::Boolean => Value::Boolean(false),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Integer => "integer",
            Type::String => "string",
            Type::Boolean => "boolean",
        })
    }
}

/// A CESQL value.
///
/// Strings are `Cow` so that an event can hand out its attributes without copying them and an
/// evaluation can pass string literals of the expression around without allocating: the
/// lifetime is the one of whatever the string borrows from. Use [`Value::into_owned`] to keep a
/// value beyond that.
///
/// Attributes whose CloudEvents type has no CESQL counterpart (timestamps, URIs, binary) are
/// given as their canonical string form (spec §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// A 32-bit signed integer.
    Integer(i32),
    /// A string.
    String(Cow<'a, str>),
    /// A boolean.
    Boolean(bool),
}

impl<'a> Value<'a> {
    /// The type of the value.
    pub fn value_type(&self) -> Type {
        match self {
            Value::Integer(_) => Type::Integer,
            Value::String(_) => Type::String,
            Value::Boolean(_) => Type::Boolean,
        }
    }

    /// A copy that borrows the string, if any, from `self`: never allocates.
    #[inline]
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Integer(i) => Value::Integer(*i),
            Value::String(s) => Value::String(Cow::Borrowed(s)),
            Value::Boolean(b) => Value::Boolean(*b),
        }
    }

    /// The same value, owning its string.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Integer(i) => Value::Integer(i),
            Value::String(s) => Value::String(Cow::Owned(s.into_owned())),
            Value::Boolean(b) => Value::Boolean(b),
        }
    }

    /// The integer, if the value is one (no casting).
    pub fn as_integer(&self) -> Option<i32> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if the value is one (no casting).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value<'_> {
    /// The value as the `STRING()` cast renders it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
            Value::Boolean(b) => write!(f, "{b}"),
        }
    }
}

impl From<i32> for Value<'_> {
    fn from(i: i32) -> Self {
        Value::Integer(i)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::String(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::String(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Value::String(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_renders_like_the_string_cast() {
        assert_eq!(Value::Integer(-12).to_string(), "-12");
        assert_eq!(Value::Boolean(true).to_string(), "true");
        assert_eq!(Value::from("aBc").to_string(), "aBc");
    }

    #[test]
    fn zero_values_follow_the_spec_table() {
        assert_eq!(Type::Integer.zero(), Value::Integer(0));
        assert_eq!(Type::String.zero(), Value::from(""));
        assert_eq!(Type::Boolean.zero(), Value::Boolean(false));
    }
}
