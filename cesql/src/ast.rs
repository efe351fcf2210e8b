//! The syntax tree the parser builds and the compiler consumes.

use crate::value::Value;

/// Deepest syntax tree accepted. Evaluation and dropping recurse over the tree, so its depth is
/// bounded to keep them far from the end of a 2 MiB thread stack; long chains such as
/// `a + b + c + …` grow the tree one level per operator.
pub(crate) const MAX_DEPTH: u32 = 500;

/// Deepest nesting of parentheses, function calls, sets and unary operators accepted. The
/// parser recurses a few frames per level; real filters nest a handful of levels.
pub(crate) const MAX_NESTING: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Multiply,
    Divide,
    Modulo,
    Add,
    Subtract,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    And,
    Or,
    Xor,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExprKind {
    Literal(Value<'static>),
    /// Lowercased attribute name.
    Attribute(String),
    /// Lowercased attribute name.
    Exists(String),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Like {
        operand: Box<Expr>,
        /// The literal's value, backslashes kept.
        pattern: String,
        negated: bool,
    },
    In {
        operand: Box<Expr>,
        set: Vec<Expr>,
        negated: bool,
    },
    Call {
        /// Uppercased function name.
        name: String,
        args: Vec<Expr>,
    },
}

/// A node of the syntax tree with the byte offset it starts at and the depth of the subtree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) offset: usize,
    pub(crate) depth: u32,
}

impl Expr {
    /// Wraps `kind`, computing its depth from its children.
    pub(crate) fn new(kind: ExprKind, offset: usize) -> Expr {
        let children = match &kind {
            ExprKind::Literal(_) | ExprKind::Attribute(_) | ExprKind::Exists(_) => 0,
            ExprKind::Not(e) | ExprKind::Negate(e) => e.depth,
            ExprKind::Binary(_, l, r) => l.depth.max(r.depth),
            ExprKind::Like { operand, .. } => operand.depth,
            ExprKind::In { operand, set, .. } => {
                set.iter().map(|e| e.depth).fold(operand.depth, u32::max)
            }
            ExprKind::Call { args, .. } => args.iter().map(|e| e.depth).max().unwrap_or(0),
        };
        Expr {
            kind,
            offset,
            depth: children + 1,
        }
    }
}
