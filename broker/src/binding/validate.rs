//! Attribute rules of the CloudEvents spec (`spec.md`), shared by every mode.

use super::{BindingError, invalid};

/// Attribute names consist of lowercase ASCII letters and digits only.
pub fn attribute_name(name: &str) -> Result<(), BindingError> {
    if name.is_empty() {
        return Err(invalid("attribute name is empty"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(format!(
            "attribute name {name:?} is invalid: only lowercase letters a-z and digits 0-9 are allowed"
        )));
    }
    Ok(())
}

/// Required string attributes must be non-empty.
pub fn non_empty(name: &str, value: &str) -> Result<(), BindingError> {
    if value.is_empty() {
        Err(invalid(format!("attribute {name} must not be empty")))
    } else {
        Ok(())
    }
}

/// `source` is a non-empty URI-reference (RFC 3986): no spaces, controls or characters
/// outside the URI alphabet, and `%` only as the start of an escape.
pub fn uri_reference(name: &str, value: &str) -> Result<(), BindingError> {
    non_empty(name, value)?;
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ok = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if b == b'%' {
            let hex = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_hexdigit());
            if !(hex(bytes.get(i + 1)) && hex(bytes.get(i + 2))) {
                return Err(invalid(format!(
                    "attribute {name} {value:?} has a malformed %-escape"
                )));
            }
            i += 3;
            continue;
        }
        if !ok {
            return Err(invalid(format!(
                "attribute {name} {value:?} is not a URI-reference (character {:?})",
                b as char
            )));
        }
        i += 1;
    }
    Ok(())
}

/// `datacontenttype` follows RFC 2046: `type/subtype` with optional parameters.
pub fn media_type(value: &str) -> Result<(), BindingError> {
    let essence = value.split(';').next().unwrap_or("").trim();
    let mut parts = essence.split('/');
    let valid = matches!((parts.next(), parts.next(), parts.next()), (Some(t), Some(s), None) if !t.is_empty() && !s.is_empty());
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "datacontenttype {value:?} is not a media type (type/subtype)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_are_lowercase_alphanumeric() {
        assert!(attribute_name("abc123").is_ok());
        for bad in ["", "Abc", "a-b", "a_b", "ä"] {
            assert!(attribute_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_uri_references() {
        for good in [
            "/a/b",
            "https://x.y/z?q=1#f",
            "urn:uuid:6e8bc430",
            "a%20b",
            "mailto:a@b",
        ] {
            assert!(uri_reference("source", good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a%2", "<x>", "é"] {
            assert!(uri_reference("source", bad).is_err(), "{bad}");
        }
    }
}
