//! Reading fields out of a webhook payload by dotted path, the way the mapping tables name them.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::GithubError;

pub(super) struct Payload(Value);

impl Payload {
    pub(super) fn parse(json: &[u8]) -> Result<Self, GithubError> {
        match serde_json::from_slice::<Value>(json) {
            Ok(v @ Value::Object(_)) => Ok(Self(v)),
            Ok(_) => Err(GithubError::InvalidPayload {
                message: "not an object".into(),
            }),
            Err(e) => Err(GithubError::InvalidPayload {
                message: e.to_string(),
            }),
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(&self.0, |v, key| v.get(key))
            .filter(|v| !v.is_null())
    }

    /// A string or number field as text; missing, null and empty are all `None` (the mapping
    /// never sends empty strings).
    pub(super) fn text(&self, path: &str) -> Option<String> {
        match self.get(path)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub(super) fn boolean(&self, path: &str) -> Option<bool> {
        self.get(path)?.as_bool()
    }

    pub(super) fn integer(&self, path: &str) -> Option<i64> {
        self.get(path)?.as_i64()
    }

    /// The last `/`-separated segment of a URL field (`.../compare/abc...def` -> `abc...def`).
    pub(super) fn last_segment(&self, path: &str) -> Option<String> {
        let url = self.text(path)?;
        url.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// A timestamp: RFC 3339 text, or Unix seconds (GitHub uses both, e.g. in `push`).
    pub(super) fn time(&self, path: &str) -> Option<DateTime<Utc>> {
        match self.get(path)? {
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Value::Number(n) => Utc.timestamp_opt(n.as_i64()?, 0).single(),
            _ => None,
        }
    }
}
