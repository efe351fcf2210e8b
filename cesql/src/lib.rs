//! CloudEvents SQL (CESQL) v1: compile an expression once, evaluate it against many events.
//!
//! # Layout
//!
//! - `lexer` splits the source into tokens; `parser` builds the syntax tree of `ast`, enforcing
//!   operator precedence and the nesting limits that keep every later recursion stack-safe.
//! - `compile` resolves function calls against a [`FunctionRegistry`] (built-ins in
//!   `functions/builtins.rs`) and compiles `LIKE` patterns (`like`) into the tree that `eval`
//!   walks.
//! - `eval` evaluates that tree against an [`EventAttributes`], using the casts of `cast`;
//!   `value` holds [`Value`] and [`Type`], `error` the error types, `event` the trait.
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use cesql::{Expression, Value};
//!
//! let filter = Expression::compile("type = 'com.github.push' AND source LIKE 'https://github.com/%'")?;
//! let event = HashMap::from([
//!     ("type".to_owned(), Value::from("com.github.push")),
//!     ("source".to_owned(), Value::from("https://github.com/herald/herald")),
//! ]);
//! assert!(filter.matches(&event));
//!
//! let error = Expression::compile("ABC(").unwrap_err();
//! assert_eq!(error.to_string(), "parse error at 1:5: expected an expression, found end of input");
//! # Ok::<(), cesql::ParseError>(())
//! ```
//!
//! # Semantics worth knowing
//!
//! - An evaluation returns a value *and* the errors met ([`Evaluation`]); [`Expression::matches`]
//!   is the filter: `true` only for the value `true` with no error at all, as the spec (§1.2)
//!   and Knative require.
//! - An operator or function whose operand met an error (a missing attribute, a division by
//!   zero, …) returns the zero value of its return type (`false`, `0`, `""`); errors it meets
//!   itself leave it the fallback value the spec defines (`5 / 0` is `0`, `NOT 10` is `true`).
//!   A missing attribute alone is `false`.
//! - `AND`, `OR` and `XOR` share one precedence level and group left to right (spec §3.6).
//! - Integer overflow in `+ - * /` and unary `-` saturates with a `math` error, like `ABS`.
//! - An implicit integer to boolean cast (`NOT 10`) is a `cast` error, as the TCK requires;
//!   `BOOL(10)` is `true`.

mod ast;
mod cast;
mod compile;
mod error;
mod eval;
mod event;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use std::fmt;
use std::sync::{Arc, LazyLock};

pub use error::{ErrorKind, EvalError, ParseError};
pub use event::EventAttributes;
pub use functions::{FunctionBody, FunctionRegistry, RegistrationError};
pub use value::{Type, Value};

/// A compiled expression: cheap to clone, shareable between threads.
#[derive(Clone)]
pub struct Expression {
    root: Arc<compile::Node>,
    source: Arc<str>,
}

/// The outcome of an evaluation: a value, always, and the errors met while computing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The value; owned, so it outlives the event.
    pub value: Value<'static>,
    /// Errors in the order they happened; empty if none.
    pub errors: Vec<EvalError>,
}

static BUILTINS_ONLY: LazyLock<FunctionRegistry> = LazyLock::new(FunctionRegistry::new);

impl Expression {
    /// Compiles `source` with the built-in functions only.
    pub fn compile(source: &str) -> Result<Expression, ParseError> {
        Expression::compile_with(source, &BUILTINS_ONLY)
    }

    /// Compiles `source`, resolving function calls against `functions` (built-ins included).
    ///
    /// A call to an unknown function is not a parse error: it evaluates to `false` with a
    /// `missingFunction` error, as the TCK expects.
    pub fn compile_with(
        source: &str,
        functions: &FunctionRegistry,
    ) -> Result<Expression, ParseError> {
        let ast = parser::parse(source)?;
        Ok(Expression {
            root: Arc::new(compile::compile(ast, functions)),
            source: source.into(),
        })
    }

    /// The source text the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The type of the result, if known without an event: `None` only when the whole
    /// expression is an attribute, whose type the event decides.
    pub fn result_type(&self) -> Option<Type> {
        self.root.result_type()
    }

    /// Evaluates against `event`, collecting every error.
    pub fn evaluate(&self, event: &dyn EventAttributes) -> Evaluation {
        let mut evaluator = eval::Evaluator::new(event, true);
        let value = evaluator.eval(&self.root);
        Evaluation {
            value: value.into_owned(),
            errors: evaluator.errors.into_vec(),
        }
    }

    /// Whether `event` passes the expression as a filter: the value is `true` and no error
    /// happened (spec §1.2). Does not allocate for error messages.
    pub fn matches(&self, event: &dyn EventAttributes) -> bool {
        let mut evaluator = eval::Evaluator::new(event, false);
        evaluator.predicate(&self.root) && evaluator.errors.is_empty()
    }
}

/// Compiles and runs the examples of README.md as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Expression {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Expression, ParseError> {
        Expression::compile(source)
    }
}
