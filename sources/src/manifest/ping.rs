//! `PingSource` (`sources.knative.dev/v1`).

use base64::Engine;
use serde::Deserialize;

use super::{CloudEventOverrides, Destination, ManifestError, Overrides, SourceMeta};
use crate::ping::{PingConfig, PingData, Schedule};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingSourceSpec {
    /// Standard 5-field cron, a `@hourly`-style nickname, `@every 1h30m`, optionally prefixed
    /// with `CRON_TZ=Zone` (what Knative's cron library accepts).
    pub schedule: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub data_base64: Option<String>,
    pub sink: Destination,
    #[serde(default)]
    pub ce_overrides: Option<CloudEventOverrides>,
}

impl PingSourceSpec {
    pub fn compile(&self, meta: &SourceMeta) -> Result<PingConfig, ManifestError> {
        self.sink.check("spec.sink")?;
        let schedule = Schedule::parse(&self.schedule, self.timezone.as_deref())?;
        let body = match (&self.data, &self.data_base64) {
            (Some(_), Some(_)) => {
                return Err(ManifestError::new(
                    "spec.dataBase64",
                    "set `data` or `dataBase64`, not both",
                ));
            }
            (Some(text), None) => Some(text.clone().into_bytes()),
            (None, Some(b64)) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        ManifestError::new("spec.dataBase64", format!("not base64: {e}"))
                    })?,
            ),
            (None, None) => None,
        };
        let content_type = self.content_type.clone().filter(|c| !c.is_empty());
        if content_type
            .as_ref()
            .is_some_and(|ct| crate::attribute::has_control(ct))
        {
            return Err(ManifestError::new(
                "spec.contentType",
                "control characters are not allowed in CloudEvents attributes",
            ));
        }
        // `type/subtype` with optional parameters, as ingress checks it.
        let media_type = |ct: &str| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            matches!(essence.split('/').collect::<Vec<_>>()[..], [t, s] if !t.is_empty() && !s.is_empty())
        };
        if content_type.as_ref().is_some_and(|ct| !media_type(ct)) {
            return Err(ManifestError::new("spec.contentType", "not a media type"));
        }
        Ok(PingConfig {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            schedule,
            data: PingData { content_type, body },
            overrides: Overrides::compile(self.ce_overrides.as_ref())?,
        })
    }
}
