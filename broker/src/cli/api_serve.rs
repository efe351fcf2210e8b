//! `herald serve` flags of the management API (served with `--admin-token-file`).

use std::path::Path;

/// Management API settings.
#[derive(Debug, clap::Args)]
pub struct ApiServeArgs {
    /// Largest request body the management API reads (`1Mi`; larger: 413 Status).
    #[arg(long, env = "HERALD_API_MAX_BODY", default_value = "1Mi", value_parser = herald::units::parse_bytes)]
    api_max_body: u64,
    /// How often an open watch compares resources' status (and the `-f` files' resources)
    /// with what it last sent, and reports the difference (`1s`).
    #[arg(long, env = "HERALD_API_WATCH_STATUS_INTERVAL", default_value = "1s", value_parser = herald::units::parse_duration)]
    api_watch_status_interval: std::time::Duration,
    /// The longest a watch stays open (`30m`); a client's `timeoutSeconds` may ask for less.
    #[arg(long, env = "HERALD_API_WATCH_MAX", default_value = "30m", value_parser = herald::units::parse_duration)]
    api_watch_max: std::time::Duration,
}

impl ApiServeArgs {
    pub fn options(&self, data_dir: &Path) -> herald::api::ApiOptions {
        herald::api::ApiOptions {
            data_dir: data_dir.to_owned(),
            max_body: usize::try_from(self.api_max_body).unwrap_or(usize::MAX),
            watch_status_interval: self
                .api_watch_status_interval
                .max(std::time::Duration::from_millis(10)),
            watch_max: self.api_watch_max,
        }
    }
}
