//! Functions: the built-ins and the registry of user-defined ones.
//!
//! A name may be overloaded by arity, with at most one variadic overload whose fixed
//! parameters outnumber the arity of every other overload (spec §3.5); names are
//! case-insensitive. Calls are resolved when an expression is compiled.

mod builtins;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub(crate) use builtins::{Builtin, Definition};

use crate::value::{Type, Value};

/// The body of a user-defined function: its arguments, already cast to the declared parameter
/// types, in; its value or a message out.
///
/// Returning `Err`, or a value of another type than the declared one, makes the call evaluate
/// to the zero value of the declared return type with a `functionEvaluation` error
/// (spec §3.5.3).
pub type FunctionBody = dyn Fn(&[Value<'_>]) -> Result<Value<'static>, String> + Send + Sync;

/// A user-defined function.
pub(crate) struct UserFunction {
    pub(crate) name: String,
    pub(crate) params: Vec<Type>,
    pub(crate) variadic: Option<Type>,
    pub(crate) returns: Type,
    pub(crate) body: Box<FunctionBody>,
}

impl fmt::Debug for UserFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?}", self.name, self.params)?;
        if let Some(v) = self.variadic {
            write!(f, ", {v:?}...")?;
        }
        write!(f, ") -> {:?}", self.returns)
    }
}

impl UserFunction {
    /// The declared type of argument `i`.
    pub(crate) fn param(&self, i: usize) -> Type {
        self.params
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(Type::String)
    }
}

/// What a call resolves to.
pub(crate) enum Resolved {
    Builtin(&'static Definition),
    User(Arc<UserFunction>),
    Missing,
}

/// User-defined functions, added to the built-ins (which are always present and cannot be
/// replaced).
///
/// ```
/// use cesql::{Expression, FunctionRegistry, Type, Value};
///
/// let mut functions = FunctionRegistry::new();
/// functions
///     .register("HAS_PREFIX", &[Type::String, Type::String], None, Type::Boolean, |args| {
///         let (s, prefix) = (args[0].as_str().unwrap(), args[1].as_str().unwrap());
///         Ok(Value::Boolean(s.starts_with(prefix)))
///     })
///     .unwrap();
/// let expr = Expression::compile_with("has_prefix(source, 'https://')", &functions).unwrap();
/// let event = std::collections::HashMap::from([("source".to_owned(), Value::from("https://x"))]);
/// assert!(expr.matches(&event));
/// ```
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    user: HashMap<String, Vec<Arc<UserFunction>>>,
}

impl fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.user.values().flatten())
            .finish()
    }
}

/// Why a function could not be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationError {
    /// The function name as given.
    pub name: String,
    /// Lowercase explanation.
    pub reason: String,
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot register function {}: {}", self.name, self.reason)
    }
}

impl std::error::Error for RegistrationError {}

/// An overload's shape: number of fixed parameters and whether more may follow.
#[derive(Clone, Copy)]
struct Shape {
    fixed: usize,
    variadic: bool,
}

impl FunctionRegistry {
    /// A registry with only the built-ins.
    pub fn new() -> FunctionRegistry {
        FunctionRegistry::default()
    }

    /// Adds a function `name(params…, variadic…) -> returns`.
    ///
    /// Fails if the name is not letters and underscores, or if the overload could not be told
    /// apart from an existing one (built-in or registered) with the same name by the number of
    /// arguments alone.
    pub fn register<F>(
        &mut self,
        name: &str,
        params: &[Type],
        variadic: Option<Type>,
        returns: Type,
        body: F,
    ) -> Result<&mut FunctionRegistry, RegistrationError>
    where
        F: Fn(&[Value<'_>]) -> Result<Value<'static>, String> + Send + Sync + 'static,
    {
        let error = |reason: String| RegistrationError {
            name: name.to_owned(),
            reason,
        };
        let valid = name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        if !valid {
            return Err(error("a function name is letters and underscores".into()));
        }
        let upper = name.to_ascii_uppercase();
        let new = Shape {
            fixed: params.len(),
            variadic: variadic.is_some(),
        };
        for existing in self.shapes(&upper) {
            if let Some(reason) = conflict(existing, new) {
                return Err(error(reason));
            }
        }
        let function = UserFunction {
            name: upper.clone(),
            params: params.to_vec(),
            variadic,
            returns,
            body: Box::new(body),
        };
        self.user.entry(upper).or_default().push(Arc::new(function));
        Ok(self)
    }

    fn shapes(&self, upper: &str) -> Vec<Shape> {
        let builtin = builtins::DEFINITIONS
            .iter()
            .filter(|d| d.name == upper)
            .map(|d| Shape {
                fixed: d.fixed.len(),
                variadic: d.variadic.is_some(),
            });
        let user = self.user.get(upper).into_iter().flatten().map(|f| Shape {
            fixed: f.params.len(),
            variadic: f.variadic.is_some(),
        });
        builtin.chain(user).collect()
    }

    /// The overload of `name` (uppercase) that takes `arity` arguments.
    pub(crate) fn resolve(&self, name: &str, arity: usize) -> Resolved {
        let fits = |fixed: usize, variadic: bool| fixed == arity || (variadic && fixed <= arity);
        // Exact arities first: a variadic overload only takes what no fixed one does, and the
        // registration rules make at most one overload fit after that.
        for exact in [true, false] {
            let builtin = builtins::DEFINITIONS.iter().find(|d| {
                d.name == name && (d.variadic.is_none() == exact) && fits(d.fixed.len(), !exact)
            });
            if let Some(definition) = builtin {
                return Resolved::Builtin(definition);
            }
            let user = self
                .user
                .get(name)
                .into_iter()
                .flatten()
                .find(|f| (f.variadic.is_none() == exact) && fits(f.params.len(), !exact));
            if let Some(function) = user {
                return Resolved::User(Arc::clone(function));
            }
        }
        Resolved::Missing
    }
}

/// Why `new` cannot sit beside `existing`, if it cannot.
fn conflict(existing: Shape, new: Shape) -> Option<String> {
    match (existing.variadic, new.variadic) {
        (false, false) if existing.fixed == new.fixed => Some(format!(
            "an overload with {} arguments already exists",
            new.fixed
        )),
        (true, true) => Some("a variadic overload already exists".into()),
        (true, false) if new.fixed >= existing.fixed => Some(format!(
            "the variadic overload takes {} or more arguments",
            existing.fixed
        )),
        (false, true) if existing.fixed >= new.fixed => Some(format!(
            "a variadic overload needs more fixed parameters than the {} of an existing overload",
            existing.fixed
        )),
        _ => None,
    }
}
