//! `fieldSelector` and `labelSelector` of list and watch requests, the subset kubectl uses:
//! field equality on `metadata.name` / `metadata.namespace`; label `k=v`, `k!=v`, `k`, `!k`.

use serde_json::Value;

use super::status::ApiError;

#[derive(Debug, Default, Clone)]
pub struct Selectors {
    fields: Vec<(String, bool, String)>,
    labels: Vec<Label>,
}

#[derive(Debug, Clone)]
enum Label {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Selectors {
    pub fn parse(fields: Option<&str>, labels: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for term in fields
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.is_empty())
        {
            let (path, equal, value) = split_term(term).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "fieldSelector term {term:?} is not FIELD=VALUE or FIELD!=VALUE"
                ))
            })?;
            if path != "metadata.name" && path != "metadata.namespace" {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector field {path:?} is not supported (metadata.name, metadata.namespace are)"
                )));
            }
            out.fields.push((path.into(), equal, value.into()));
        }
        for term in labels
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.is_empty())
        {
            let term = term.trim();
            let label = match split_term(term) {
                Some((key, true, value)) => Label::Equals(key.into(), value.into()),
                Some((key, false, value)) => Label::NotEquals(key.into(), value.into()),
                None if term.contains([' ', '(', '<', '>']) => {
                    return Err(ApiError::bad_request(format!(
                        "labelSelector term {term:?} is not supported (k=v, k!=v, k, !k are)"
                    )));
                }
                None => match term.strip_prefix('!') {
                    Some(key) => Label::Absent(key.into()),
                    None => Label::Exists(term.into()),
                },
            };
            out.labels.push(label);
        }
        Ok(out)
    }

    pub fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        let fields_match = self.fields.iter().all(|(path, equal, value)| {
            let field = path.trim_start_matches("metadata.");
            (meta[field].as_str() == Some(value.as_str())) == *equal
        });
        let labels = &meta["labels"];
        let labels_match = self.labels.iter().all(|label| match label {
            Label::Equals(k, v) => labels[k].as_str() == Some(v.as_str()),
            Label::NotEquals(k, v) => labels[k].as_str() != Some(v.as_str()),
            Label::Exists(k) => labels.get(k).is_some(),
            Label::Absent(k) => labels.get(k).is_none(),
        });
        fields_match && labels_match
    }
}

/// `a=b`, `a==b` → (a, true, b); `a!=b` → (a, false, b).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    if let Some((key, value)) = term.split_once("!=") {
        return Some((key.trim(), false, value.trim()));
    }
    let (key, value) = term.split_once('=')?;
    let value = value.strip_prefix('=').unwrap_or(value);
    Some((key.trim(), true, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_names_and_labels() {
        let object =
            json!({"metadata": {"name": "t", "namespace": "ns", "labels": {"app": "shop"}}});
        let yes = Selectors::parse(Some("metadata.name=t"), Some("app=shop,!tier")).unwrap();
        assert!(yes.matches(&object));
        let no = Selectors::parse(Some("metadata.name!=t"), None).unwrap();
        assert!(!no.matches(&object));
        let no = Selectors::parse(None, Some("app")).unwrap();
        assert!(no.matches(&object));
        assert!(Selectors::parse(Some("spec.broker=x"), None).is_err());
        assert!(Selectors::parse(None, Some("app in (a,b)")).is_err());
    }
}
