//! Attribute values taken from outside Herald's configuration (webhook payload fields, cluster
//! object names) made safe to emit.
//!
//! Ingress refuses an event whose attributes hold a control character (U+0000–U+001F,
//! U+007F–U+009F, which CloudEvents forbids) or whose attributes are too large in total (16 KiB
//! by default), on every entry point including the in-process publish the sources use. A
//! source cannot answer its caller "fix your branch name", so it never lets such a value
//! through: [`clean`] percent-encodes control characters (`\n` becomes `%0A`, as in a URL) and
//! cuts a value to a maximum ([`DEFAULT_MAX_VALUE_BYTES`] unless configured). The event's data keeps the original document
//! untouched, so nothing is lost, only the attribute copy is shortened.
//!
//! With that bound, the largest event a source builds stays well under the default cap:
//! the GitHub mapping sets at most a subject and 9 extensions from the payload, the
//! Kubernetes mapping an id, a subject and 4 extensions (at most 12 KiB with the fixed ones).

/// The longest value taken from outside, in bytes after encoding, unless configured
/// (`herald serve --source-attribute-max-bytes`).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024;

/// What CloudEvents forbids in a string attribute: C0 controls, DEL and C1 controls.
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `value` with control characters percent-encoded (their UTF-8 bytes as `%XX`), cut to at
/// most `max` bytes on a character (never inside an escape).
pub fn clean(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max));
    let mut buf = [0u8; 4];
    for c in value.chars() {
        let piece: std::borrow::Cow<'_, str> = if is_control(c) {
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
                .into()
        } else {
            c.encode_utf8(&mut buf).to_owned().into()
        };
        if out.len() + piece.len() > max {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// `value` as a URI-reference (RFC 3986), for a `source` taken from a payload: every byte
/// outside the URI alphabet (controls, spaces, `<>"{}|\^``, non-ASCII) and every `%` that does
/// not start an escape is percent-encoded; then cut to `max` bytes (never inside an escape).
/// A valid URL comes out unchanged.
pub fn uri_reference(value: &str, max: usize) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len().min(max));
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let piece = if escape_start {
            value[i..i + 3].to_owned()
        } else if b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b) {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        if out.len() + piece.len() > max {
            break;
        }
        i += if escape_start { 3 } else { 1 };
        out.push_str(&piece);
    }
    out
}

/// Whether `value` holds a control character; for checks of configured values.
pub fn has_control(value: &str) -> bool {
    value.chars().any(is_control)
}

/// Asserts what ingress checks by default: no control character in any attribute, at most 64
/// extensions, at most 16 KiB of attribute names and values in total.
#[cfg(test)]
pub(crate) fn assert_emittable(event: &cloudevents::Event) {
    let mut total = 0;
    let mut extensions = 0;
    for (name, value) in event.iter() {
        let text = value.to_string();
        assert!(!has_control(&text), "attribute {name} = {text:?}");
        total += name.len() + text.len();
    }
    for _ in event.iter_extensions() {
        extensions += 1;
    }
    assert!(extensions <= 64, "{extensions} extensions");
    assert!(total <= 16 * 1024, "{total} bytes of attributes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_percent_encoded_and_the_rest_is_kept() {
        assert_eq!(
            clean("feature/x\n\0y\u{7f}\u{85}é", 1024),
            "feature/x%0A%00y%7F%C2%85é"
        );
        assert_eq!(clean("refs/heads/main", 1024), "refs/heads/main");
        assert!(!has_control(&clean("\u{1b}[31mred\r\n", 1024)));
    }

    #[test]
    fn a_source_from_a_payload_becomes_a_uri_reference_and_valid_urls_are_unchanged() {
        let url = "https://api.github.com/repos/o/r?x=1#f%20g";
        assert_eq!(uri_reference(url, 1024), url);
        assert_eq!(
            uri_reference("https://x/a b\n<é>%zz%4", 1024),
            "https://x/a%20b%0A%3C%C3%A9%3E%25zz%254"
        );
        assert!(uri_reference(&"%".repeat(5000), 1024).len() <= DEFAULT_MAX_VALUE_BYTES);
    }

    #[test]
    fn long_values_are_cut_on_a_character_and_never_inside_an_escape() {
        let long = "é".repeat(DEFAULT_MAX_VALUE_BYTES);
        let cut = clean(&long, DEFAULT_MAX_VALUE_BYTES);
        assert!(cut.len() <= DEFAULT_MAX_VALUE_BYTES && cut.len() >= DEFAULT_MAX_VALUE_BYTES - 1);
        let escapes = "\n".repeat(DEFAULT_MAX_VALUE_BYTES);
        let cut = clean(&escapes, DEFAULT_MAX_VALUE_BYTES);
        assert_eq!(cut.len(), DEFAULT_MAX_VALUE_BYTES / 3 * 3);
        assert!(cut.ends_with("%0A"));
    }
}
