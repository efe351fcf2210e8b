//! PingSource schedules: what Knative's cron library (`robfig/cron` `ParseStandard`) accepts.
//!
//! - 5-field standard cron (`*/5 * * * *`, names like `MON`, ranges, steps) and the nicknames
//!   `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`;
//! - `@every <go duration>` (`@every 1h30m`);
//! - an optional `CRON_TZ=<IANA zone> ` (or `TZ=`) prefix, or `spec.timezone` (not both).
//!
//! Without a zone, times are UTC (Knative's adapter runs in UTC containers). `@every` differs
//! from Knative on purpose: Knative counts from the adapter's start, which moves with every
//! restart; Herald aligns it to the Unix epoch so the scheduled times are the same on every
//! start and persisted progress stays meaningful.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::manifest::{ManifestError, parse_go_duration};

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron { cron: Box<Cron>, zone: Tz },
    Every(Duration),
}

impl Schedule {
    /// Parses `spec.schedule` with the optional `spec.timezone`.
    pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<Self, ManifestError> {
        let mut text = schedule.trim();
        let mut zone_name = timezone.map(str::trim).filter(|z| !z.is_empty());
        let mut zone_field = "spec.timezone";
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (zone, rest) = rest.split_once(' ').ok_or_else(|| {
                    ManifestError::new(
                        "spec.schedule",
                        "a time zone prefix needs a schedule after it",
                    )
                })?;
                if zone_name.is_some() {
                    return Err(ManifestError::new(
                        "spec.timezone",
                        "set the zone in `spec.timezone` or as a `CRON_TZ=` prefix, not both",
                    ));
                }
                zone_name = Some(zone);
                zone_field = "spec.schedule";
                text = rest.trim();
            }
        }
        let zone = match zone_name {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                ManifestError::new(zone_field, format!("unknown IANA time zone {name:?}"))
            })?,
        };
        if let Some(every) = text.strip_prefix("@every ") {
            let period =
                parse_go_duration(every).map_err(|e| ManifestError::new("spec.schedule", e))?;
            if period < Duration::from_secs(1) {
                return Err(ManifestError::new(
                    "spec.schedule",
                    "@every needs at least 1s",
                ));
            }
            return Ok(Schedule::Every(period));
        }
        // Knative's ParseStandard takes exactly 5 fields: no seconds, no years.
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| {
            ManifestError::new("spec.schedule", format!("invalid cron {text:?}: {e}"))
        })?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            zone,
        })
    }

    /// The first scheduled time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, zone } => cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Every(period) => {
                let p = i64::try_from(period.as_millis()).ok()?;
                // Checked: a period near `i64::MAX` ms has no next time, it must not overflow.
                let next = after
                    .timestamp_millis()
                    .div_euclid(p)
                    .checked_add(1)?
                    .checked_mul(p)?;
                Utc.timestamp_millis_opt(next).single()
            }
        }
    }

    /// The last scheduled time at or before `at`, if any.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, zone } => cron
                .find_previous_occurrence(&at.with_timezone(zone), true)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Every(period) => {
                let p = i64::try_from(period.as_millis()).ok()?;
                Utc.timestamp_millis_opt(at.timestamp_millis().div_euclid(p) * p)
                    .single()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_field_cron_runs_in_utc_by_default() {
        let s = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2024-03-01T10:02:00Z")),
            Some(utc("2024-03-01T10:05:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-03-01T10:05:00Z")),
            Some(utc("2024-03-01T10:10:00Z"))
        );
    }

    #[test]
    fn timezone_field_and_cron_tz_prefix_schedule_in_that_zone() {
        let by_field = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        let by_prefix = Schedule::parse("CRON_TZ=Europe/Paris 0 9 * * *", None).unwrap();
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        for s in [by_field, by_prefix] {
            assert_eq!(
                s.next_after(utc("2024-01-10T00:00:00Z")),
                Some(utc("2024-01-10T08:00:00Z"))
            );
            assert_eq!(
                s.next_after(utc("2024-07-10T00:00:00Z")),
                Some(utc("2024-07-10T07:00:00Z"))
            );
        }
    }

    #[test]
    fn nicknames_and_every_are_accepted() {
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(utc("2024-03-01T10:02:00Z")),
            Some(utc("2024-03-01T11:00:00Z"))
        );
        let far = Schedule::parse("@every 2562047788h", None).unwrap();
        assert_eq!(
            far.next_after(utc("2024-03-01T10:02:00Z")),
            None,
            "no overflow"
        );
        let every = Schedule::parse("@every 1h30m", None).unwrap();
        let next = every.next_after(utc("2024-03-01T10:02:00Z")).unwrap();
        assert_eq!(next.timestamp() % 5400, 0, "epoch-aligned");
        assert_eq!(every.last_at_or_before(next), Some(next));
    }

    #[test]
    fn invalid_schedules_name_the_field() {
        for (schedule, tz, field) in [
            ("* * * *", None, "spec.schedule"),
            ("0 * * * * *", None, "spec.schedule"),
            ("61 * * * *", None, "spec.schedule"),
            ("@every 0s", None, "spec.schedule"),
            ("@every 1e30h", None, "spec.schedule"),
            (
                "@every 1000000000000000000000000000000h",
                None,
                "spec.schedule",
            ),
            ("* * * * *", Some("Mars/Olympus"), "spec.timezone"),
            ("CRON_TZ=Nowhere * * * * *", None, "spec.schedule"),
            ("CRON_TZ=UTC * * * * *", Some("UTC"), "spec.timezone"),
        ] {
            let err = Schedule::parse(schedule, tz).unwrap_err();
            assert_eq!(err.field, field, "{schedule:?} {tz:?}: {err}");
        }
    }

    #[test]
    fn last_at_or_before_includes_an_exact_match() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        assert_eq!(
            s.last_at_or_before(utc("2024-03-01T10:00:00Z")),
            Some(utc("2024-03-01T10:00:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(utc("2024-03-01T10:59:59Z")),
            Some(utc("2024-03-01T10:00:00Z"))
        );
    }
}
