//! Nodes whose value is a boolean, evaluated to a `bool` directly: filters are made of them,
//! and skipping the `Value` wrapper keeps a typical filter to a few small calls.

use super::Evaluator;
use crate::cast;
use crate::compile::{Node, Ordering};
use crate::value::Value;

impl<'a> Evaluator<'a> {
    /// The value of a boolean node (see `Node::result_type`): `false` if an operand failed.
    pub(crate) fn predicate(&mut self, node: &'a Node) -> bool {
        match node {
            Node::Exists(name) => self.event.has_attribute(name),
            Node::Not(operand) => self.boolean(operand) == Some(false),
            Node::Order(op, left, right) => {
                let (x, y) = (self.integer(left), self.integer(right));
                match (x, y) {
                    (Some(x), Some(y)) => match op {
                        Ordering::Less => x < y,
                        Ordering::LessEqual => x <= y,
                        Ordering::Greater => x > y,
                        Ordering::GreaterEqual => x >= y,
                    },
                    _ => false,
                }
            }
            Node::Equal {
                negated,
                left,
                right,
            } => {
                let (x, x_failed) = self.operand(left);
                let (y, y_failed) = self.operand(right);
                !x_failed && !y_failed && cast::equal(&x, &y, &mut self.errors) != *negated
            }
            // Short-circuit (spec §3.4.2); a failed left operand decides the result (false)
            // just as a false or true one does.
            Node::And(left, right) => {
                self.boolean(left) == Some(true) && self.boolean(right) == Some(true)
            }
            Node::Or(left, right) => match self.boolean(left) {
                Some(true) => true,
                Some(false) => self.boolean(right) == Some(true),
                None => false,
            },
            Node::Xor(left, right) => {
                let (x, y) = (self.boolean(left), self.boolean(right));
                matches!((x, y), (Some(x), Some(y)) if x != y)
            }
            Node::Like {
                negated,
                operand,
                pattern,
            } => match self.operand(operand) {
                (v, false) => pattern.matches(&cast::to_string(v)) != *negated,
                (_, true) => false,
            },
            Node::In {
                negated,
                operand,
                set,
            } => self
                .in_set(operand, set)
                .is_some_and(|found| found != *negated),
            _ => self.eval(node) == Value::Boolean(true),
        }
    }

    /// Evaluates and implicitly casts to boolean; `None` if the operand failed.
    pub(super) fn boolean(&mut self, node: &'a Node) -> Option<bool> {
        let (value, failed) = match node {
            Node::Literal(Value::Boolean(b)) => return Some(*b),
            Node::Exists(_)
            | Node::Not(_)
            | Node::Order(..)
            | Node::Equal { .. }
            | Node::And(..)
            | Node::Or(..)
            | Node::Xor(..)
            | Node::Like { .. }
            | Node::In { .. } => {
                let before = self.errors.count;
                let b = self.predicate(node);
                return (self.errors.count == before).then_some(b);
            }
            _ => self.operand(node),
        };
        if failed {
            return None;
        }
        // A failed cast is this operator's own error, not its operand's: it goes on with `false`.
        Some(match value {
            Value::Boolean(b) => b,
            v => cast::to_boolean(&v, false, &mut self.errors),
        })
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
}
