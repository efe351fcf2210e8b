//! Object names as Kubernetes accepts them, checked before a name reaches a file name or a
//! store key.

/// A namespace: a DNS-1123 label (lower-case letters, digits, `-`; at most 63; starts and ends
/// alphanumeric).
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    check_label(namespace).map_err(|why| format!("namespace {namespace:?} {why}"))
}

/// A name: a DNS-1123 subdomain (labels joined by `.`, at most 253).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("name of {} bytes: at most 253", name.len()));
    }
    for label in name.split('.') {
        check_label(label).map_err(|why| format!("name {name:?} {why}"))?;
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), &'static str> {
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err("is empty (or has an empty part)");
    }
    if bytes.len() > 63 {
        return Err("has a part longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("may hold only lower-case letters, digits, '-' and '.'");
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_pass_and_others_are_refused() {
        for good in ["t", "orders-1", "a.b.c", &"x".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Upper",
            "a_b",
            "-a",
            "a-",
            "a..b",
            "../x",
            &"x".repeat(64),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_namespace("a.b").is_err());
        assert!(check_namespace("shop").is_ok());
    }
}
