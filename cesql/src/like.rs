//! `LIKE` patterns, compiled once and matched without backtracking.
//!
//! `%` matches any run of characters, `_` one character, `\%` and `\_` the character itself;
//! any other backslash is an ordinary character (spec §3.4.3). The pattern is split at `%` into
//! segments: the first must match at the start of the text, the last at its end, and each one
//! between at its leftmost place in what remains. Taking the leftmost place never loses a match
//! (any later place leaves less text for the following segments), so matching is O(text ×
//! pattern) in the worst case, with no backtracking, and the common shapes (`abc`, `abc%`,
//! `%abc`, `%abc%`) are plain string comparisons.

/// One element of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element {
    Char(char),
    /// `_`
    AnyChar,
}

/// The text between two `%`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    elements: Vec<Element>,
    /// The segment as a string when it has no `_`: matched with byte comparisons.
    literal: Option<String>,
}

impl Segment {
    fn new(elements: Vec<Element>) -> Segment {
        let literal = elements
            .iter()
            .map(|e| match e {
                Element::Char(c) => Some(*c),
                Element::AnyChar => None,
            })
            .collect();
        Segment { elements, literal }
    }

    /// Byte length of the match if the segment matches at the very start of `text`.
    fn match_start(&self, text: &str) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return text.starts_with(literal.as_str()).then_some(literal.len());
        }
        let mut chars = text.char_indices();
        for element in &self.elements {
            let (_, c) = chars.next()?;
            if let Element::Char(expected) = element
                && *expected != c
            {
                return None;
            }
        }
        Some(chars.next().map_or(text.len(), |(i, _)| i))
    }

    /// Byte offset where the match starts if the segment matches at the very end of `text`.
    fn match_end(&self, text: &str) -> Option<usize> {
        if let Some(literal) = &self.literal {
            return text
                .ends_with(literal.as_str())
                .then(|| text.len() - literal.len());
        }
        // Every element is one character, so the match starts that many characters from the end.
        let count = self.elements.len();
        let start = if count == 0 {
            text.len()
        } else {
            text.char_indices().rev().nth(count - 1)?.0
        };
        self.match_start(&text[start..]).map(|_| start)
    }

    /// Byte range of the leftmost match in `text`.
    fn find(&self, text: &str) -> Option<(usize, usize)> {
        if let Some(literal) = &self.literal {
            return text.find(literal.as_str()).map(|i| (i, i + literal.len()));
        }
        text.char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .find_map(|i| self.match_start(&text[i..]).map(|len| (i, i + len)))
    }
}

/// A compiled `LIKE` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// No `%`: the whole text must match the one segment.
    Whole(Segment),
    /// `literal%`
    Prefix(String),
    /// `%literal`
    Suffix(String),
    /// `%literal%`
    Contains(String),
    /// At least one `%`: segments around them, the first and last possibly empty.
    Segments(Vec<Segment>),
}

impl Pattern {
    /// Compiles the value of a pattern literal (backslashes as written).
    pub(crate) fn new(pattern: &str) -> Pattern {
        let mut segments = vec![Vec::new()];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let element = match c {
                '\\' if matches!(chars.peek(), Some('%' | '_')) => {
                    Element::Char(chars.next().unwrap_or(c))
                }
                '%' => {
                    // Consecutive `%` mean the same as one.
                    if !segments.last().is_some_and(Vec::is_empty) || segments.len() == 1 {
                        segments.push(Vec::new());
                    }
                    continue;
                }
                '_' => Element::AnyChar,
                c => Element::Char(c),
            };
            if let Some(last) = segments.last_mut() {
                last.push(element);
            }
        }
        let mut segments: Vec<Segment> = segments.into_iter().map(Segment::new).collect();
        let literal = |s: &Segment| s.literal.clone();
        match segments.as_mut_slice() {
            [_] => Pattern::Whole(segments.remove(0)),
            [first, last] if last.elements.is_empty() && first.literal.is_some() => {
                Pattern::Prefix(literal(first).unwrap_or_default())
            }
            [first, last] if first.elements.is_empty() && last.literal.is_some() => {
                Pattern::Suffix(literal(last).unwrap_or_default())
            }
            [first, middle, last]
                if first.elements.is_empty()
                    && last.elements.is_empty()
                    && middle.literal.is_some() =>
            {
                Pattern::Contains(literal(middle).unwrap_or_default())
            }
            _ => Pattern::Segments(segments),
        }
    }

    /// Whether `text` matches the pattern.
    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Whole(segment) => segment.match_start(text) == Some(text.len()),
            Pattern::Prefix(p) => text.starts_with(p.as_str()),
            Pattern::Suffix(s) => text.ends_with(s.as_str()),
            Pattern::Contains(c) => text.contains(c.as_str()),
            Pattern::Segments(segments) => matches_segments(segments, text),
        }
    }
}

fn matches_segments(segments: &[Segment], text: &str) -> bool {
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return true;
    };
    let Some(after_first) = first.match_start(text) else {
        return false;
    };
    let mut rest = &text[after_first..];
    let Some(before_last) = last.match_end(rest) else {
        return false;
    };
    rest = &rest[..before_last];
    for middle in &segments[1..segments.len() - 1] {
        match middle.find(rest) {
            Some((_, end)) => rest = &rest[end..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        Pattern::new(pattern).matches(text)
    }

    #[test]
    fn common_shapes_use_string_comparisons() {
        assert!(matches!(Pattern::new("abc%"), Pattern::Prefix(p) if p == "abc"));
        assert!(matches!(Pattern::new("%abc"), Pattern::Suffix(s) if s == "abc"));
        assert!(matches!(Pattern::new("%%abc%"), Pattern::Contains(c) if c == "abc"));
    }

    #[test]
    fn percent_matches_any_run() {
        assert!(like("abc", "a%b%c"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(like(".ab.cde.", ".%.%."));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like("", "%"));
        assert!(like("anything", "%%"));
    }

    #[test]
    fn underscore_matches_one_character() {
        assert!(like("azbzc", "a_b_c"));
        assert!(!like("abc", "a_b_c"));
        assert!(like("é", "_"));
        assert!(!like("éé", "_"));
        assert!(like("xaéyb", "%a_%b"));
    }

    #[test]
    fn escapes_match_wildcards_literally() {
        assert!(like("a%b%c", r"a\%b\%c"));
        assert!(!like("azbzc", r"a\%b\%c"));
        assert!(like("a_b", r"a\_b"));
        assert!(like("abc123123%456_dzf", r"abc%123\%456\_d_f"));
    }

    #[test]
    fn other_backslashes_are_literal() {
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"a\", r"a\"));
    }

    #[test]
    fn first_and_last_segments_do_not_overlap() {
        assert!(!like("ab", "ab%b"));
        assert!(like("abb", "ab%b"));
        assert!(!like("a", "a%a"));
    }

    #[test]
    fn pathological_pattern_is_matched_in_polynomial_time() {
        // Exponential for a backtracking matcher: 30 wildcards against 10 000 `a`s with no `b`.
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "%a".repeat(30));
        assert!(!like(&text, &pattern));
        let pattern = format!("{}%", "%_a".repeat(30));
        assert!(like(&text, &pattern));
    }
}
