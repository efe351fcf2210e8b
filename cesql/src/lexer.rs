//! Splits source text into tokens.
//!
//! Follows `CESQLLexer.g4`: keywords are case-insensitive, whitespace is space, tab, CR and LF,
//! and a run of letters, digits and underscores is one word (so `1abc` is an identifier, as the
//! grammar's longest-match rule makes it). Signs are separate tokens; the parser joins a sign to
//! the digits right after it when it stands where an operand is expected.

use crate::error::ParseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    LParen,
    RParen,
    Comma,
    Star,
    Slash,
    Percent,
    Plus,
    Minus,
    Equal,
    NotEqual,
    LessGreater,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    And,
    Or,
    Xor,
    Not,
    Like,
    Exists,
    In,
    True,
    False,
    /// Digits only.
    Integer,
    /// Quoted, quotes included in the span.
    String,
    /// Letters, digits and underscores, not all digits and not a keyword: an attribute or a
    /// function name.
    Word,
    Eof,
}

/// A token: its kind and its byte span in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// All tokens of `source`, ending with one `Eof`.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::with_capacity(source.len() / 3 + 1);
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let (kind, len) = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => (Kind::LParen, 1),
            b')' => (Kind::RParen, 1),
            b',' => (Kind::Comma, 1),
            b'*' => (Kind::Star, 1),
            b'/' => (Kind::Slash, 1),
            b'%' => (Kind::Percent, 1),
            b'+' => (Kind::Plus, 1),
            b'-' => (Kind::Minus, 1),
            b'=' => (Kind::Equal, 1),
            b'!' if bytes.get(i + 1) == Some(&b'=') => (Kind::NotEqual, 2),
            b'<' => match bytes.get(i + 1) {
                Some(b'>') => (Kind::LessGreater, 2),
                Some(b'=') => (Kind::LessEqual, 2),
                _ => (Kind::Less, 1),
            },
            b'>' if bytes.get(i + 1) == Some(&b'=') => (Kind::GreaterEqual, 2),
            b'>' => (Kind::Greater, 1),
            b'\'' | b'"' => (Kind::String, string_len(source, start)?),
            b if is_word_byte(b) => {
                let len = bytes[i..].iter().take_while(|b| is_word_byte(**b)).count();
                (word_kind(&source[i..i + len]), len)
            }
            _ => {
                let c = source[i..].chars().next().unwrap_or_default();
                return Err(ParseError::at(
                    source,
                    i,
                    "",
                    format!("unexpected character {c:?}"),
                ));
            }
        };
        i += len;
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: Kind::Eof,
        start: source.len(),
        end: source.len(),
    });
    Ok(tokens)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn word_kind(word: &str) -> Kind {
    if word.bytes().all(|b| b.is_ascii_digit()) {
        return Kind::Integer;
    }
    const KEYWORDS: [(&str, Kind); 9] = [
        ("AND", Kind::And),
        ("OR", Kind::Or),
        ("XOR", Kind::Xor),
        ("NOT", Kind::Not),
        ("LIKE", Kind::Like),
        ("EXISTS", Kind::Exists),
        ("IN", Kind::In),
        ("TRUE", Kind::True),
        ("FALSE", Kind::False),
    ];
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map_or(Kind::Word, |(_, kind)| *kind)
}

/// Length in bytes of the quoted string starting at `start`, quotes included.
///
/// A backslash and the character after it are one unit (so `\'` does not close a `'` string),
/// and a doubled quote stands for one quote, as in the ANTLR lexer.
fn string_len(source: &str, start: usize) -> Result<usize, ParseError> {
    let bytes = source.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return Ok(i + 1 - start),
            _ => i += 1,
        }
    }
    Err(ParseError::at(
        source,
        start,
        "",
        "unterminated string literal".to_owned(),
    ))
}

/// The value of a string literal token (quotes included in `raw`).
///
/// `\'` in a `'…'` string and `\"` in a `"…"` string stand for the quote, as does a doubled
/// quote; every other backslash is kept, so that `LIKE` patterns can escape `%` and `_`
/// (`'a\%'` is the three characters `a\%`).
pub(crate) fn string_value(raw: &str) -> String {
    let quote = raw.as_bytes()[0] as char;
    let inner = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' || c == quote {
            match chars.next() {
                Some(next) if next == quote => out.push(quote),
                Some(next) => {
                    out.push(c);
                    out.push(next);
                }
                None => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Kind> {
        tokenize(source).unwrap().iter().map(|t| t.kind).collect()
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            kinds("and Or xOR not LiKe exists in TRUE false"),
            vec![
                Kind::And,
                Kind::Or,
                Kind::Xor,
                Kind::Not,
                Kind::Like,
                Kind::Exists,
                Kind::In,
                Kind::True,
                Kind::False,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn comparison_operators_take_the_longest_match() {
        assert_eq!(
            kinds("<><=>=!=<>="),
            vec![
                Kind::LessGreater,
                Kind::LessEqual,
                Kind::GreaterEqual,
                Kind::NotEqual,
                Kind::LessGreater,
                Kind::Equal,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn digits_then_letters_form_an_identifier() {
        assert_eq!(
            kinds("123 1abc"),
            vec![Kind::Integer, Kind::Word, Kind::Eof]
        );
    }

    #[test]
    fn escaped_quote_does_not_end_a_string() {
        let source = r#"'a"b\'c' "a'b\"c""#;
        let tokens = tokenize(source).unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            string_value(&source[tokens[0].start..tokens[0].end]),
            "a\"b'c"
        );
        assert_eq!(
            string_value(&source[tokens[1].start..tokens[1].end]),
            "a'b\"c"
        );
    }

    #[test]
    fn doubled_quote_stands_for_one_quote() {
        assert_eq!(string_value("'it''s'"), "it's");
    }

    #[test]
    fn other_backslashes_are_kept_for_like() {
        assert_eq!(string_value(r"'a\%b\_c\d'"), r"a\%b\_c\d");
    }

    #[test]
    fn unterminated_string_reports_its_opening_quote() {
        let e = tokenize("x = 'abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
    }

    #[test]
    fn stray_character_is_an_error() {
        let e = tokenize("a ! b").unwrap_err();
        assert_eq!(e.column, 3);
    }
}
