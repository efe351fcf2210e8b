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

use crate::cast::{self, Param};
use crate::compile::{Arithmetic, Node, Ordering};
use crate::error::{ErrorKind, EvalError};
use crate::event::EventAttributes;
use crate::value::Value;

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
    /// through a recursive call of the large `eval`, which halves the cost of a typical filter.
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
            Node::Exists(name) => Value::Boolean(self.event.has_attribute(name)),
            Node::Not(operand) => Value::Boolean(self.boolean(operand).is_some_and(|b| !b)),
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
            Node::Order(op, left, right) => {
                let (x, y) = (self.integer(left), self.integer(right));
                Value::Boolean(match (x, y) {
                    (Some(x), Some(y)) => match op {
                        Ordering::Less => x < y,
                        Ordering::LessEqual => x <= y,
                        Ordering::Greater => x > y,
                        Ordering::GreaterEqual => x >= y,
                    },
                    _ => false,
                })
            }
            Node::Equal {
                negated,
                left,
                right,
            } => {
                let (x, x_failed) = self.operand(left);
                let (y, y_failed) = self.operand(right);
                Value::Boolean(
                    !x_failed && !y_failed && cast::equal(&x, &y, &mut self.errors) != *negated,
                )
            }
            // Short-circuit (spec §3.4.2); a failed left operand decides the result (false)
            // just as a false or true one does.
            Node::And(left, right) => Value::Boolean(
                self.boolean(left) == Some(true) && self.boolean(right) == Some(true),
            ),
            Node::Or(left, right) => Value::Boolean(match self.boolean(left) {
                Some(true) => true,
                Some(false) => self.boolean(right) == Some(true),
                None => false,
            }),
            Node::Xor(left, right) => {
                let (x, y) = (self.boolean(left), self.boolean(right));
                Value::Boolean(matches!((x, y), (Some(x), Some(y)) if x != y))
            }
            Node::Like {
                negated,
                operand,
                pattern,
            } => Value::Boolean(match self.operand(operand) {
                (v, false) => pattern.matches(&cast::to_string(v)) != *negated,
                (_, true) => false,
            }),
            Node::In {
                negated,
                operand,
                set,
            } => Value::Boolean(
                self.in_set(operand, set)
                    .is_some_and(|found| found != *negated),
            ),
            Node::Builtin { definition, args } => {
                let mut values = Args::new();
                if !self.args(args, |i| definition.param(i), &mut values) {
                    return definition.returns.zero();
                }
                definition
                    .builtin
                    .call(values.as_mut_slice(), &mut self.errors)
            }
            Node::User { function, args } => {
                let mut values = Args::new();
                if !self.args(args, |i| Param::Typed(function.param(i)), &mut values) {
                    return function.returns.zero();
                }
                match (function.body)(values.as_mut_slice()) {
                    Ok(v) if v.value_type() == function.returns => v,
                    Ok(v) => {
                        let (name, returns) = (&function.name, function.returns);
                        self.errors.push(ErrorKind::FunctionEvaluation, || {
                            format!(
                                "{name} returned a {} instead of a {returns}",
                                v.value_type()
                            )
                        });
                        returns.zero()
                    }
                    Err(message) => {
                        let name = &function.name;
                        self.errors.push(ErrorKind::FunctionEvaluation, || {
                            format!("{name}: {message}")
                        });
                        function.returns.zero()
                    }
                }
            }
            Node::MissingFunction { name, arity } => {
                self.errors.push(ErrorKind::MissingFunction, || {
                    format!("no function {name} taking {arity} arguments")
                });
                Value::Boolean(false)
            }
        }
    }

    /// Evaluates and implicitly casts to integer; `None` if the operand failed.
    fn integer(&mut self, node: &'a Node) -> Option<i32> {
        match self.operand(node) {
            (_, true) => None,
            (Value::Integer(i), false) => Some(i),
            (v, false) => Some(cast::to_integer(&v, &mut self.errors)),
        }
    }

    /// Evaluates and implicitly casts to boolean; `None` if the operand failed.
    fn boolean(&mut self, node: &'a Node) -> Option<bool> {
        match self.operand(node) {
            (_, true) => None,
            (Value::Boolean(b), false) => Some(b),
            (v, false) => Some(cast::to_boolean(&v, false, &mut self.errors)),
        }
    }

    /// Whether the operand equals an element, the elements cast to the operand's type
    /// (spec §3.4.5). Stops at the first equal element; `None` if an operand failed.
    fn in_set(&mut self, operand: &'a Node, set: &'a [Node]) -> Option<bool> {
        let (x, failed) = self.operand(operand);
        if failed {
            return None;
        }
        for element in set {
            let (y, failed) = self.operand(element);
            if failed {
                return None;
            }
            if cast::equal(&y, &x, &mut self.errors) {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Evaluates arguments into `out`, cast to their parameters; false if one failed (all are
    /// still evaluated, in order).
    fn args(
        &mut self,
        args: &'a [Node],
        param: impl Fn(usize) -> Param,
        out: &mut Args<'a>,
    ) -> bool {
        let mut complete = true;
        for (i, arg) in args.iter().enumerate() {
            match self.operand(arg) {
                (v, false) => out.push(cast::to_param(v, param(i), &mut self.errors)),
                (_, true) => complete = false,
            }
        }
        complete
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

/// Arguments of one call: on the stack up to four, which every built-in but `CONCAT` and
/// `CONCAT_WS` fits, so evaluating a call does not allocate.
pub(crate) enum Args<'a> {
    Inline([Value<'a>; 4], usize),
    Heap(Vec<Value<'a>>),
}

impl<'a> Args<'a> {
    fn new() -> Args<'a> {
        Args::Inline(std::array::from_fn(|_| Value::Boolean(false)), 0)
    }

    fn push(&mut self, value: Value<'a>) {
        match self {
            Args::Inline(values, len) if *len < values.len() => {
                values[*len] = value;
                *len += 1;
            }
            Args::Inline(values, len) => {
                let mut heap: Vec<Value<'a>> = values[..*len]
                    .iter_mut()
                    .map(|v| std::mem::replace(v, Value::Boolean(false)))
                    .collect();
                heap.push(value);
                *self = Args::Heap(heap);
            }
            Args::Heap(values) => values.push(value),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Value<'a>] {
        match self {
            Args::Inline(values, len) => &mut values[..*len],
            Args::Heap(values) => values,
        }
    }
}
