//! Errors: the one that stops compilation and the ones an evaluation returns beside its value.

use std::fmt;

/// The kinds of error the spec names (§3.3) and the TCK checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The expression is not valid CESQL; only [`ParseError`] has this kind.
    Parse,
    /// Division or modulo by zero, integer overflow.
    Math,
    /// An implicit or explicit cast that has no result, e.g. `INT('abc')`.
    Cast,
    /// A call to a function with no definition for that name and number of arguments.
    MissingFunction,
    /// A function rejected its arguments, e.g. `LEFT('abc', -1)`.
    FunctionEvaluation,
    /// An attribute that the event does not have.
    MissingAttribute,
}

impl ErrorKind {
    /// The name the TCK uses for the kind (`parse`, `math`, `cast`, `missingFunction`,
    /// `functionEvaluation`, `missingAttribute`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Math => "math",
            ErrorKind::Cast => "cast",
            ErrorKind::MissingFunction => "missingFunction",
            ErrorKind::FunctionEvaluation => "functionEvaluation",
            ErrorKind::MissingAttribute => "missingAttribute",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error met while evaluating; the evaluation still has a value (spec §3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Lowercase, for people.
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for EvalError {}

/// Why an expression could not be compiled, and where.
///
/// `line` and `column` start at 1; the column counts characters, not bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line of the offending token.
    pub line: usize,
    /// Column of the offending token, in characters.
    pub column: usize,
    /// What the parser expected there, e.g. `` `)` or `,` ``; empty when the problem is not a
    /// missing token (an integer literal out of range, nesting too deep).
    pub expected: String,
    /// What it found, e.g. `` `(` `` or `end of input`, or the problem itself.
    pub found: String,
}

impl ParseError {
    pub(crate) fn at(source: &str, offset: usize, expected: &str, found: String) -> ParseError {
        let (line, column) = line_column(source, offset);
        ParseError {
            line,
            column,
            expected: expected.to_owned(),
            found,
        }
    }

    /// Always [`ErrorKind::Parse`]; lets callers treat all CESQL errors alike.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Parse
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parse error at {}:{}: ", self.line, self.column)?;
        if self.expected.is_empty() {
            f.write_str(&self.found)
        } else {
            write!(f, "expected {}, found {}", self.expected, self.found)
        }
    }
}

impl std::error::Error for ParseError {}

/// 1-based line and character column of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("a\nbé c", 6), (2, 4));
    }

    #[test]
    fn display_names_position_and_expectation() {
        let e = ParseError::at("ABC(", 4, "an expression", "end of input".into());
        assert_eq!(
            e.to_string(),
            "parse error at 1:5: expected an expression, found end of input"
        );
    }
}
