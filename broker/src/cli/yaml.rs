//! JSON printed as YAML for `-o yaml`: block style, every string double-quoted the JSON way
//! (a JSON string literal is a valid YAML double-quoted scalar), so nothing is misread.

use serde_json::Value;

pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn key_text(key: &str) -> String {
    // Plain only when no YAML reading could take it for anything but this string.
    const WORDS: [&str; 11] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", "",
    ];
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && !WORDS.contains(&key.to_ascii_lowercase().as_str())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if plain {
        key.to_owned()
    } else {
        Value::from(key).to_string()
    }
}

fn is_nested(value: &Value) -> bool {
    matches!(value, Value::Object(m) if !m.is_empty())
        || matches!(value, Value::Array(a) if !a.is_empty())
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key on the dash's line, the rest aligned under it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_value(out, value, indent + 2);
                }
            }
            other => write_value(out, other, indent),
        }
    }
}

fn write_value(out: &mut String, value: &Value, indent: usize) {
    if is_nested(value) {
        out.push('\n');
        match value {
            Value::Object(map) => write_map(out, map, indent + 2),
            Value::Array(items) => write_list(out, items, indent + 2),
            _ => unreachable!("nested is an object or a list"),
        }
    } else {
        out.push(' ');
        out.push_str(&scalar_text(value));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printed_yaml_reads_back_as_the_same_json() {
        let value = json!({
            "apiVersion": "eventing.knative.dev/v1",
            "metadata": {"name": "t", "annotations": {"a b": "x: y\n- z", "empty": ""}, "labels": {}},
            "spec": {"filters": [{"exact": {"type": "a"}, "not": {"prefix": {"s": "1"}}}, "plain", 3, [1, [2]]], "n": null, "t": true},
            "status": {"conditions": [], "observedGeneration": 2},
        });
        let text = to_yaml(&value);
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value, "{text}");
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ -~\n\t]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[ -~]{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_json_prints_as_yaml_that_reads_back_the_same(value in json_value()) {
            let text = to_yaml(&value);
            let back: Value = serde_saphyr::from_str(&text)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
            proptest::prop_assert_eq!(back, value, "{}", text);
        }
    }
}
