//! What every stored event must satisfy, however it arrived (HTTP, a reply, a source): no
//! control characters in any attribute (`spec.md` §"Type System": strings exclude them), at
//! most `max_extensions` extensions, at most `max_attributes_bytes` of attribute names and
//! values together. One pass over the attributes, no allocation on success.
//!
//! The extensions Herald stamps itself ([`HERALD_EXTENSIONS`]: arrival time, TTL, and the
//! `knativeerror*` of a dead letter) are outside the count and the byte total, each bounded by
//! [`HERALD_EXTENSION_MAX_BYTES`] instead: an event accepted at the limits can still be
//! forwarded to a broker or dead-lettered in-process with Herald's additions.

use cloudevents::Event;
use cloudevents::event::AttributeValue;

use super::BindingError;

/// Default cap on the extensions of one event.
pub const DEFAULT_MAX_EXTENSIONS: usize = 64;
/// Default cap on the bytes of all attribute names and values of one event: 16 KiB.
pub const DEFAULT_MAX_ATTRIBUTES_BYTES: usize = 16 << 10;

/// Extensions Herald sets on events it stores or dead-letters.
pub const HERALD_EXTENSIONS: [&str; 5] = [
    "knativearrivaltime",
    "knativebrokerttl",
    "knativeerrordest",
    "knativeerrorcode",
    "knativeerrordata",
];

/// The largest value of one of [`HERALD_EXTENSIONS`] (`knativeerrordata` is at most 1 KiB of
/// response body, base64-encoded).
pub const HERALD_EXTENSION_MAX_BYTES: usize = 4 << 10;

/// Bounds on an event's attributes (`--max-extensions`, `--max-attributes-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeLimits {
    pub max_extensions: usize,
    pub max_attributes_bytes: usize,
}

impl Default for AttributeLimits {
    fn default() -> Self {
        Self {
            max_extensions: DEFAULT_MAX_EXTENSIONS,
            max_attributes_bytes: DEFAULT_MAX_ATTRIBUTES_BYTES,
        }
    }
}

impl AttributeLimits {
    /// Checks `event` against the limits and the control-character rule.
    pub fn check(&self, event: &Event) -> Result<(), BindingError> {
        let mut size = 0usize;
        for (name, value) in event.iter_attributes() {
            self.check_one(name, &value, &mut size)?;
        }
        let mut extensions = 0usize;
        for (name, value) in event.iter_extensions() {
            if !is_herald_extension(name) {
                extensions += 1;
                if extensions > self.max_extensions {
                    let count = event
                        .iter_extensions()
                        .filter(|(name, _)| !is_herald_extension(name))
                        .count();
                    return Err(BindingError::TooManyExtensions {
                        count,
                        limit: self.max_extensions,
                    });
                }
            }
            self.check_one(name, &value.into(), &mut size)?;
        }
        Ok(())
    }

    /// One attribute: its share of the byte total (`size` so far) and its characters.
    fn check_one(
        &self,
        name: &str,
        value: &AttributeValue<'_>,
        size: &mut usize,
    ) -> Result<(), BindingError> {
        let len = name.len() + value_len(value);
        if is_herald_extension(name) {
            if len > HERALD_EXTENSION_MAX_BYTES {
                return Err(super::invalid(format!(
                    "extension {name} is longer than {HERALD_EXTENSION_MAX_BYTES} bytes"
                )));
            }
        } else {
            *size += len;
            if *size > self.max_attributes_bytes {
                return Err(BindingError::AttributesTooLarge {
                    limit: self.max_attributes_bytes,
                });
            }
        }
        let text = match value {
            AttributeValue::String(s) => *s,
            AttributeValue::URIRef(s) => s.as_str(),
            AttributeValue::URI(u) => u.as_str(),
            _ => return Ok(()),
        };
        match first_control(text) {
            Some(character) => Err(BindingError::ControlCharacter {
                attribute: name.to_owned(),
                character,
            }),
            None => Ok(()),
        }
    }
}

/// One of [`HERALD_EXTENSIONS`]; every one starts with `knative` and is checked only then.
fn is_herald_extension(name: &str) -> bool {
    name.starts_with("knative") && HERALD_EXTENSIONS.contains(&name)
}

/// The length of a value as text; non-string values count as their longest text form.
fn value_len(value: &AttributeValue<'_>) -> usize {
    match value {
        AttributeValue::String(s) => s.len(),
        AttributeValue::URIRef(s) => s.len(),
        AttributeValue::URI(u) => u.as_str().len(),
        AttributeValue::Binary(b) => b.len(),
        AttributeValue::Boolean(_) => 5,
        AttributeValue::Integer(_) => 20,
        AttributeValue::Time(_) => 35,
        AttributeValue::SpecVersion(_) => 3,
    }
}

/// The first control character of `text` (Unicode category Cc: U+0000–U+001F, U+007F–U+009F),
/// found on bytes: C0 controls and DEL are single bytes, C1 controls are `0xC2 0x80..=0x9F`.
pub fn first_control(text: &str) -> Option<char> {
    let bytes = text.as_bytes();
    let at = bytes.iter().enumerate().position(|(i, &b)| {
        b < 0x20 || b == 0x7f || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| *n < 0xa0))
    })?;
    text[at..].chars().next()
}

#[cfg(test)]
mod tests {
    use cloudevents::{EventBuilder, EventBuilderV10};

    use super::*;

    fn event() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .build()
            .expect("valid event")
    }

    #[test]
    fn control_characters_are_found_in_c0_del_and_c1() {
        for (text, found) in [
            ("plain", None),
            ("é ü €", None),
            ("a\nb", Some('\n')),
            ("tab\t", Some('\t')),
            ("nul\0", Some('\0')),
            ("del\u{7f}", Some('\u{7f}')),
            ("c1\u{85}", Some('\u{85}')),
            ("c1\u{9f}", Some('\u{9f}')),
            ("nbsp\u{a0}", None),
        ] {
            assert_eq!(first_control(text), found, "{text:?}");
        }
        for c in (0u32..0x250).filter_map(char::from_u32) {
            assert_eq!(
                first_control(&c.to_string()).is_some(),
                c.is_control(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_control_character_in_any_attribute_is_refused_naming_it() {
        let limits = AttributeLimits::default();
        let mut e = event();
        cloudevents::AttributesWriter::set_type(&mut e, "t\n\0forged");
        assert_eq!(
            limits.check(&e),
            Err(BindingError::ControlCharacter {
                attribute: "type".into(),
                character: '\n'
            })
        );
        let mut e = event();
        e.set_extension("ext", "a\u{85}b");
        let err = limits.check(&e).expect_err("C1 control in an extension");
        assert!(err.to_string().contains("ext"), "{err}");
        let mut e = event();
        cloudevents::AttributesWriter::set_subject(&mut e, Some("ok é"));
        e.set_extension("n", 5i64);
        assert_eq!(limits.check(&e), Ok(()));
    }

    #[test]
    fn extension_count_and_attribute_size_are_capped() {
        let limits = AttributeLimits {
            max_extensions: 3,
            max_attributes_bytes: 100,
        };
        let mut e = event();
        for i in 0..3 {
            e.set_extension(&format!("x{i}"), "v");
        }
        assert_eq!(limits.check(&e), Ok(()));
        e.set_extension("x3", "v");
        assert_eq!(
            limits.check(&e),
            Err(BindingError::TooManyExtensions { count: 4, limit: 3 })
        );
        let mut e = event();
        e.set_extension("big", "v".repeat(90));
        let err = limits.check(&e).expect_err("over 100 bytes");
        assert_eq!(err, BindingError::AttributesTooLarge { limit: 100 });
        assert!(err.to_string().contains("--max-attributes-bytes"), "{err}");
    }

    #[test]
    fn heralds_own_extensions_are_outside_the_limits_but_bounded() {
        let limits = AttributeLimits {
            max_extensions: 1,
            max_attributes_bytes: 60,
        };
        let mut e = event();
        e.set_extension("mine", "v");
        e.set_extension("knativebrokerttl", 255i64);
        e.set_extension("knativearrivaltime", "2026-12-01T00:00:00Z");
        e.set_extension("knativeerrordata", "A".repeat(1368));
        assert_eq!(
            limits.check(&e),
            Ok(()),
            "a dead letter of an event at the limits"
        );
        e.set_extension("knativeerrordata", "A".repeat(5000));
        let err = limits
            .check(&e)
            .expect_err("a publisher's huge knativeerrordata");
        assert!(err.to_string().contains("knativeerrordata"), "{err}");
    }
}
