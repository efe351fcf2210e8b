//! Turns the syntax tree into the tree the evaluator walks: operators specialised by the types
//! they take, function calls resolved, `LIKE` patterns compiled.

use std::sync::Arc;

use crate::ast::{BinaryOp, Expr, ExprKind};
use crate::functions::{Builtin, Definition, FunctionRegistry, Resolved, UserFunction};
use crate::like::Pattern;
use crate::value::{Type, Value};

/// The context attributes every CloudEvent has.
const REQUIRED_ATTRIBUTES: [&str; 4] = ["specversion", "id", "source", "type"];

/// Integer operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Multiply,
    Divide,
    Modulo,
    Add,
    Subtract,
}

/// Integer comparisons (the ordering ones are defined for integers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ordering {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

#[derive(Debug)]
pub(crate) enum Node {
    Literal(Value<'static>),
    Attribute(Box<str>),
    Exists(Box<str>),
    Not(Box<Node>),
    Negate(Box<Node>),
    Arithmetic(Arithmetic, Box<Node>, Box<Node>),
    Order(Ordering, Box<Node>, Box<Node>),
    /// `=` when `negated` is false, `!=` and `<>` when true.
    Equal {
        negated: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Xor(Box<Node>, Box<Node>),
    Like {
        negated: bool,
        operand: Box<Node>,
        pattern: Pattern,
    },
    In {
        negated: bool,
        operand: Box<Node>,
        set: Box<[Node]>,
    },
    /// `INT(x)`, `BOOL(x)`, `STRING(x)`: explicit casts, kept apart from other calls because
    /// they are the most common ones and the evaluator can then read them inline.
    Cast {
        target: Type,
        operand: Box<Node>,
    },
    Builtin {
        definition: &'static Definition,
        args: Box<[Node]>,
    },
    User {
        function: Arc<UserFunction>,
        args: Box<[Node]>,
    },
    MissingFunction {
        name: Box<str>,
        arity: usize,
    },
}

impl Node {
    /// The type of the value the node evaluates to, when it does not depend on the event: only
    /// an attribute's type does.
    pub(crate) fn result_type(&self) -> Option<Type> {
        Some(match self {
            Node::Literal(v) => v.value_type(),
            Node::Attribute(_) => return None,
            Node::Negate(_) | Node::Arithmetic(..) => Type::Integer,
            Node::Cast { target, .. } => *target,
            Node::Builtin { definition, .. } => definition.returns,
            Node::User { function, .. } => function.returns,
            Node::Exists(_)
            | Node::Not(_)
            | Node::Order(..)
            | Node::Equal { .. }
            | Node::And(..)
            | Node::Or(..)
            | Node::Xor(..)
            | Node::Like { .. }
            | Node::In { .. }
            | Node::MissingFunction { .. } => Type::Boolean,
        })
    }
}

/// Compiles a parsed expression. Recursion is bounded by the parser's depth limit.
pub(crate) fn compile(expr: Expr, functions: &FunctionRegistry) -> Node {
    let boxed = |e: Box<Expr>| Box::new(compile(*e, functions));
    let all =
        |es: Vec<Expr>| -> Box<[Node]> { es.into_iter().map(|e| compile(e, functions)).collect() };
    match expr.kind {
        ExprKind::Literal(v) => Node::Literal(v),
        ExprKind::Attribute(name) => Node::Attribute(name.into()),
        // The input event is assumed valid, so its required attributes always exist (§3.4.4),
        // whether or not the caller's `EventAttributes` exposes them.
        ExprKind::Exists(name) if REQUIRED_ATTRIBUTES.contains(&name.as_str()) => {
            Node::Literal(Value::Boolean(true))
        }
        ExprKind::Exists(name) => Node::Exists(name.into()),
        ExprKind::Not(e) => Node::Not(boxed(e)),
        ExprKind::Negate(e) => Node::Negate(boxed(e)),
        ExprKind::Binary(op, l, r) => {
            let (l, r) = (boxed(l), boxed(r));
            match op {
                BinaryOp::Multiply => Node::Arithmetic(Arithmetic::Multiply, l, r),
                BinaryOp::Divide => Node::Arithmetic(Arithmetic::Divide, l, r),
                BinaryOp::Modulo => Node::Arithmetic(Arithmetic::Modulo, l, r),
                BinaryOp::Add => Node::Arithmetic(Arithmetic::Add, l, r),
                BinaryOp::Subtract => Node::Arithmetic(Arithmetic::Subtract, l, r),
                BinaryOp::Less => Node::Order(Ordering::Less, l, r),
                BinaryOp::LessEqual => Node::Order(Ordering::LessEqual, l, r),
                BinaryOp::Greater => Node::Order(Ordering::Greater, l, r),
                BinaryOp::GreaterEqual => Node::Order(Ordering::GreaterEqual, l, r),
                BinaryOp::Equal | BinaryOp::NotEqual => Node::Equal {
                    negated: op == BinaryOp::NotEqual,
                    left: l,
                    right: r,
                },
                BinaryOp::And => Node::And(l, r),
                BinaryOp::Or => Node::Or(l, r),
                BinaryOp::Xor => Node::Xor(l, r),
            }
        }
        ExprKind::Like {
            operand,
            pattern,
            negated,
        } => Node::Like {
            negated,
            operand: boxed(operand),
            pattern: Pattern::new(&pattern),
        },
        ExprKind::In {
            operand,
            set,
            negated,
        } => Node::In {
            negated,
            operand: boxed(operand),
            set: all(set),
        },
        ExprKind::Call { name, args } => match functions.resolve(&name, args.len()) {
            Resolved::Builtin(definition) => match definition.builtin {
                Builtin::Int | Builtin::Bool | Builtin::String => Node::Cast {
                    target: definition.returns,
                    operand: Box::new(compile(
                        args.into_iter().next().expect("one argument"),
                        functions,
                    )),
                },
                _ => Node::Builtin {
                    definition,
                    args: all(args),
                },
            },
            Resolved::User(function) => Node::User {
                function,
                args: all(args),
            },
            Resolved::Missing => Node::MissingFunction {
                name: name.into(),
                arity: args.len(),
            },
        },
    }
}
