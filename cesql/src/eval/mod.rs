//! Evaluation of a compiled tree against an event.
//!
//! Every node yields a value, and errors are collected beside it ("complete evaluation",
//! spec §4.1). An operator or function whose operand produced an error returns the zero value
//! of its return type without computing; errors it meets itself (a failed implicit cast,
//! division by zero) leave it the value the spec defines for that case. This is what the TCK
//! requires: `missing / 0` is `0` with only a missingAttribute error (§3.2), `NOT 10` is `true`
//! with a cast error (the cast yields `false`), and `true AND (1 != 1 / 0)` is `false` with a
//! math error. A missing attribute is an error of the attribute itself, so the operator using
//! it returns its zero value; alone at the top, where no type is known, it is `false` (§3.2).

mod call;
mod predicate;

use crate::cast;
use crate::compile::{Arithmetic, Node};
use crate::error::{ErrorKind, EvalError};
use crate::event::EventAttributes;
use crate::value::{Type, Value};

/// Errors of one evaluation. When not collecting (filtering only needs to know whether any
/// error happened), messages are never formatted.
pub(crate) struct Errors {
    list: Vec<EvalError>,
    collect: bool,
    count: usize,
}

impl Errors {
    pub(crate) fn new(collect: bool) -> Errors {
        Errors {
            list: Vec::new(),
            collect,
            count: 0,
        }
    }

    pub(crate) fn push(&mut self, kind: ErrorKind, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.collect {
            self.list.push(EvalError {
                kind,
                message: message(),
            });
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn into_vec(self) -> Vec<EvalError> {
        self.list
    }
}

pub(crate) struct Evaluator<'a> {
    event: &'a dyn EventAttributes,
    pub(crate) errors: Errors,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(event: &'a dyn EventAttributes, collect: bool) -> Evaluator<'a> {
        Evaluator {
            event,
            errors: Errors::new(collect),
        }
    }

    /// The node's value and whether evaluating it (or anything under it) met an error.
    ///
    /// Most operands are literals and attributes: they are read here, inline, rather than
    /// through a recursive call of `eval`, which halves the cost of a typical filter.
    #[inline(always)]
    fn operand(&mut self, node: &'a Node) -> (Value<'a>, bool) {
        match node {
            Node::Literal(v) => (v.borrowed(), false),
            Node::Attribute(name) => match self.event.attribute(name) {
                Some(v) => (v, false),
                None => (self.missing(name), true),
            },
            _ => {
                let before = self.errors.count;
                let value = self.eval(node);
                (value, self.errors.count != before)
            }
        }
    }

    #[cold]
    fn missing(&mut self, name: &str) -> Value<'a> {
        self.errors.push(ErrorKind::MissingAttribute, || {
            format!("attribute {name} is missing")
        });
        Value::Boolean(false)
    }

    /// The node's value: the zero value of its type if an operand failed.
    pub(crate) fn eval(&mut self, node: &'a Node) -> Value<'a> {
        match node {
            Node::Literal(v) => v.borrowed(),
            Node::Attribute(name) => match self.event.attribute(name) {
                Some(v) => v,
                None => self.missing(name),
            },
            Node::Negate(operand) => Value::Integer(self.integer(operand).map_or(0, |i| {
                i.checked_neg().unwrap_or_else(|| {
                    self.errors
                        .push(ErrorKind::Math, || format!("-({i}) overflows"));
                    i32::MAX
                })
            })),
            Node::Arithmetic(op, left, right) => {
                let (x, y) = (self.integer(left), self.integer(right));
                Value::Integer(match (x, y) {
                    (Some(x), Some(y)) => arithmetic(*op, x, y, &mut self.errors),
                    _ => 0,
                })
            }
            Node::Cast { target, operand } => match self.operand(operand) {
                (v, false) => cast::cast(v, *target, true, &mut self.errors),
                (_, true) => target.zero(),
            },
            Node::Builtin { definition, args } => self.builtin(definition, args),
            Node::User { function, args } => self.user(function, args),
            Node::MissingFunction { name, arity } => {
                self.errors.push(ErrorKind::MissingFunction, || {
                    format!("no function {name} taking {arity} arguments")
                });
                Value::Boolean(false)
            }
            Node::Exists(_)
            | Node::Not(_)
            | Node::Order(..)
            | Node::Equal { .. }
            | Node::And(..)
            | Node::Or(..)
            | Node::Xor(..)
            | Node::Like { .. }
            | Node::In { .. } => Value::Boolean(self.predicate(node)),
        }
    }

    /// Evaluates and implicitly casts to integer; `None` if the operand failed.
    fn integer(&mut self, node: &'a Node) -> Option<i32> {
        if let Node::Cast {
            target: Type::Integer,
            operand,
        } = node
        {
            // `INT(x)` as an operand: a failed cast is a failure of the operand.
            let (v, failed) = self.operand(operand);
            if failed {
                return None;
            }
            let before = self.errors.count;
            let i = cast::to_integer(&v, &mut self.errors);
            return (self.errors.count == before).then_some(i);
        }
        match self.operand(node) {
            (_, true) => None,
            (Value::Integer(i), false) => Some(i),
            (v, false) => Some(cast::to_integer(&v, &mut self.errors)),
        }
    }
}

fn arithmetic(op: Arithmetic, x: i32, y: i32, errors: &mut Errors) -> i32 {
    let result = match op {
        Arithmetic::Add => x.checked_add(y),
        Arithmetic::Subtract => x.checked_sub(y),
        Arithmetic::Multiply => x.checked_mul(y),
        Arithmetic::Divide | Arithmetic::Modulo if y == 0 => {
            errors.push(ErrorKind::Math, || format!("division by zero in {x} / {y}"));
            return 0;
        }
        // i32::MIN % -1 is 0 mathematically; only the division overflows.
        Arithmetic::Modulo => Some(x.wrapping_rem(y)),
        Arithmetic::Divide => x.checked_div(y),
    };
    // Overflow: the spec defines no result, so follow ABS (§3.5.2) and saturate, with an error.
    result.unwrap_or_else(|| {
        errors.push(ErrorKind::Math, || {
            format!("integer overflow in {op:?} of {x} and {y}").to_lowercase()
        });
        let negative = match op {
            Arithmetic::Multiply | Arithmetic::Divide => (x < 0) != (y < 0),
            Arithmetic::Add => x < 0,
            Arithmetic::Subtract => y > 0,
            Arithmetic::Modulo => false,
        };
        if negative { i32::MIN } else { i32::MAX }
    })
}
