//! Recursive-descent parser with precedence climbing for the binary operators.
//!
//! Precedence, loosest first (spec §3.6): `AND`/`OR`/`XOR` (one level), comparisons, `+ -`,
//! `* / %`, then `[NOT] LIKE` and `[NOT] IN` as postfix operators, then the prefix operators
//! `NOT` and `-`, then function calls, `EXISTS`, parentheses and atoms. Operators of one level
//! group left to right, as §3.6 says ("left to right when the precedence is equal"); the ANTLR
//! grammar marks the logical level right-associative instead, which differs only when `AND` and
//! `OR` are mixed without parentheses.

use crate::ast::{BinaryOp, Expr, ExprKind, MAX_DEPTH, MAX_NESTING};
use crate::error::ParseError;
use crate::lexer::{self, Kind, Token};
use crate::value::Value;

/// Parses a whole expression.
pub(crate) fn parse(source: &str) -> Result<Expr, ParseError> {
    let tokens = lexer::tokenize(source)?;
    let mut parser = Parser {
        source,
        tokens,
        pos: 0,
        nesting: 0,
    };
    let expr = parser.binary(0)?;
    parser.expect(Kind::Eof, "an operator or end of input")?;
    Ok(expr)
}

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: u32,
}

/// Precedence level of a binary operator token; higher binds tighter.
fn binary_op(kind: Kind) -> Option<(BinaryOp, u8)> {
    Some(match kind {
        Kind::And => (BinaryOp::And, 0),
        Kind::Or => (BinaryOp::Or, 0),
        Kind::Xor => (BinaryOp::Xor, 0),
        Kind::Equal => (BinaryOp::Equal, 1),
        Kind::NotEqual | Kind::LessGreater => (BinaryOp::NotEqual, 1),
        Kind::Less => (BinaryOp::Less, 1),
        Kind::LessEqual => (BinaryOp::LessEqual, 1),
        Kind::Greater => (BinaryOp::Greater, 1),
        Kind::GreaterEqual => (BinaryOp::GreaterEqual, 1),
        Kind::Plus => (BinaryOp::Add, 2),
        Kind::Minus => (BinaryOp::Subtract, 2),
        Kind::Star => (BinaryOp::Multiply, 3),
        Kind::Slash => (BinaryOp::Divide, 3),
        Kind::Percent => (BinaryOp::Modulo, 3),
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.tokens[self.pos]
    }

    fn peek_second(&self) -> Token {
        self.tokens[(self.pos + 1).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos];
        if token.kind != Kind::Eof {
            self.pos += 1;
        }
        token
    }

    fn text(&self, token: Token) -> &str {
        &self.source[token.start..token.end]
    }

    fn error(&self, token: Token, expected: &str) -> ParseError {
        let found = match token.kind {
            Kind::Eof => "end of input".to_owned(),
            _ => format!("`{}`", self.text(token)),
        };
        ParseError::at(self.source, token.start, expected, found)
    }

    fn problem(&self, offset: usize, problem: String) -> ParseError {
        ParseError::at(self.source, offset, "", problem)
    }

    fn expect(&mut self, kind: Kind, expected: &str) -> Result<Token, ParseError> {
        let token = self.peek();
        if token.kind == kind {
            Ok(self.advance())
        } else {
            Err(self.error(token, expected))
        }
    }

    /// Counts one level of recursion; see [`MAX_NESTING`].
    fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.problem(
                offset,
                format!("expression nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Builds a node, refusing trees deeper than [`MAX_DEPTH`].
    fn node(&self, kind: ExprKind, offset: usize) -> Result<Expr, ParseError> {
        let expr = Expr::new(kind, offset);
        if expr.depth > MAX_DEPTH {
            return Err(self.problem(
                offset,
                format!("expression too deep (more than {MAX_DEPTH} levels of operators)"),
            ));
        }
        Ok(expr)
    }

    /// Binary operators of level `min_level` and tighter, grouped left to right.
    fn binary(&mut self, min_level: u8) -> Result<Expr, ParseError> {
        let mut left = self.postfix()?;
        while let Some((op, level)) = binary_op(self.peek().kind) {
            if level < min_level {
                break;
            }
            let operator = self.advance();
            let right = self.binary(level + 1)?;
            left = self.node(
                ExprKind::Binary(op, Box::new(left), Box::new(right)),
                operator.start,
            )?;
        }
        Ok(left)
    }

    /// `x [NOT] LIKE 'pattern'` and `x [NOT] IN (…)`, possibly repeated.
    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut operand = self.unary()?;
        loop {
            let negated = self.peek().kind == Kind::Not;
            if negated {
                self.advance();
            }
            let operator = self.peek();
            let kind = match operator.kind {
                Kind::Like => {
                    self.advance();
                    let pattern = self.expect(Kind::String, "a string literal (LIKE pattern)")?;
                    ExprKind::Like {
                        operand: Box::new(operand),
                        pattern: lexer::string_value(self.text(pattern)),
                        negated,
                    }
                }
                Kind::In => {
                    self.advance();
                    let open = self.expect(Kind::LParen, "`(` (IN set)")?;
                    let set = self.list(open.start, false)?;
                    ExprKind::In {
                        operand: Box::new(operand),
                        set,
                        negated,
                    }
                }
                _ if negated => return Err(self.error(operator, "LIKE or IN after NOT")),
                _ => return Ok(operand),
            };
            operand = self.node(kind, operator.start)?;
        }
    }

    /// `NOT x`, `-x`, and signed integer literals.
    fn unary(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek();
        let next = self.peek_second();
        let signed_literal = next.kind == Kind::Integer && next.start == token.end;
        match token.kind {
            Kind::Minus | Kind::Plus if signed_literal => {
                self.advance();
                self.advance();
                self.integer(token.start, next)
            }
            Kind::Not | Kind::Minus => {
                self.advance();
                self.enter(token.start)?;
                let operand = Box::new(self.unary()?);
                self.leave();
                let kind = if token.kind == Kind::Not {
                    ExprKind::Not(operand)
                } else {
                    ExprKind::Negate(operand)
                };
                self.node(kind, token.start)
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.advance();
        let kind = match token.kind {
            Kind::Integer => return self.integer(token.start, token),
            Kind::String => ExprKind::Literal(Value::from(lexer::string_value(self.text(token)))),
            Kind::True => ExprKind::Literal(Value::Boolean(true)),
            Kind::False => ExprKind::Literal(Value::Boolean(false)),
            Kind::Word if self.peek().kind == Kind::LParen => return self.call(token),
            Kind::Word => ExprKind::Attribute(self.attribute_name(token)?),
            Kind::Exists => {
                let name = self.expect(Kind::Word, "an attribute name after EXISTS")?;
                ExprKind::Exists(self.attribute_name(name)?)
            }
            Kind::LParen => {
                self.enter(token.start)?;
                let inner = self.binary(0)?;
                self.expect(Kind::RParen, "an operator or `)`")?;
                self.leave();
                return Ok(inner);
            }
            _ => return Err(self.error(token, "an expression")),
        };
        self.node(kind, token.start)
    }

    /// An integer literal from `start` (its sign, if any) to the end of `digits`.
    fn integer(&self, start: usize, digits: Token) -> Result<Expr, ParseError> {
        let text = &self.source[start..digits.end];
        match text.parse::<i32>() {
            Ok(i) => self.node(ExprKind::Literal(Value::Integer(i)), start),
            Err(_) => Err(self.problem(
                start,
                format!("integer literal {text} is outside the 32-bit signed range"),
            )),
        }
    }

    /// Attribute names are letters and digits (CloudEvents naming), matched case-insensitively.
    fn attribute_name(&self, token: Token) -> Result<String, ParseError> {
        let text = self.text(token);
        if text.contains('_') {
            return Err(self.problem(
                token.start,
                format!("`{text}` is not an attribute name (letters and digits only)"),
            ));
        }
        Ok(text.to_ascii_lowercase())
    }

    fn call(&mut self, name: Token) -> Result<Expr, ParseError> {
        let text = self.text(name);
        let valid = text.as_bytes()[0].is_ascii_alphabetic()
            && text.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        if !valid {
            return Err(self.problem(
                name.start,
                format!("`{text}` is not a function name (letters and underscores only)"),
            ));
        }
        let name_upper = text.to_ascii_uppercase();
        let open = self.advance();
        let args = self.list(open.start, true)?;
        self.node(
            ExprKind::Call {
                name: name_upper,
                args,
            },
            name.start,
        )
    }

    /// A parenthesised, comma-separated list after its `(`; empty only if `allow_empty`.
    fn list(&mut self, open: usize, allow_empty: bool) -> Result<Vec<Expr>, ParseError> {
        self.enter(open)?;
        let mut items = Vec::new();
        if allow_empty && self.peek().kind == Kind::RParen {
            self.advance();
        } else {
            loop {
                items.push(self.binary(0)?);
                let token = self.advance();
                match token.kind {
                    Kind::Comma => continue,
                    Kind::RParen => break,
                    _ => return Err(self.error(token, "an operator, `,` or `)`")),
                }
            }
        }
        self.leave();
        Ok(items)
    }
}
