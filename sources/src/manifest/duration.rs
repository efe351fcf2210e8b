//! The two duration spellings source manifests use: Go's (`@every 1h30m` in a PingSource
//! schedule, as Knative's cron library reads it) and ISO-8601 (`PT72H`, like Knative's
//! delivery settings) for Herald's annotations.

use std::time::Duration;

/// Go's `time.ParseDuration` for the units a schedule needs: `h`, `m`, `s`, `ms`, with
/// fractions (`1.5h`). Zero or negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let err = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().map_err(|_| err("missing number"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "" => return Err(err("missing unit")),
            other => return Err(err(&format!("unknown unit {other:?}"))),
        };
        rest = &rest[unit..];
        total += value * scale;
    }
    if total <= 0.0 || total.is_nan() {
        return Err(err("must be positive"));
    }
    // Fallible: `from_secs_f64` panics on values beyond `Duration::MAX` (`@every 1e30h`).
    Duration::try_from_secs_f64(total).map_err(|_| err("out of range"))
}

/// Parses the subset of ISO-8601 durations that Knative accepts: days, hours, minutes and
/// (fractional) seconds. Years, months and weeks have no fixed length and are refused.
pub fn parse_iso8601(text: &str) -> Result<Duration, String> {
    let err = |why: &str| format!("invalid ISO-8601 duration {text:?}: {why}");
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| err("must start with 'P'"))?;
    if rest.is_empty() {
        return Err(err("no components"));
    }
    let mut seconds = 0f64;
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let value: f64 = number.parse().map_err(|_| err("missing number"))?;
                number.clear();
                let scale = match (in_time, unit) {
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    (false, 'Y' | 'M' | 'W') => {
                        return Err(err("years, months, weeks have no fixed length"));
                    }
                    _ => return Err(err(&format!("unexpected '{unit}'"))),
                };
                seconds += value * scale;
                any = true;
            }
        }
    }
    if !number.is_empty() || !any {
        return Err(err("number without unit"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| err("out of range"))
}

#[cfg(test)]
mod iso8601_tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_absurd_ones_are_errors_not_panics() {
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        let huge = format!("1{}h", "0".repeat(30));
        let endless = format!("1{}h", "0".repeat(400));
        for bad in [
            "1e30h",
            huge.as_str(),
            endless.as_str(),
            "0s",
            "",
            "5",
            "1x",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad} parsed");
        }
        assert!(
            parse_go_duration(&huge)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn knative_examples_parse() {
        assert_eq!(parse_iso8601("PT0.2S").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_iso8601("PT1M30S").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_iso8601("P1DT2H").unwrap(),
            Duration::from_secs(93_600)
        );
        assert_eq!(parse_iso8601("PT30S").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "P", "PT", "0.2S", "PT5", "P1M", "PTxS", "PT1X"] {
            assert!(parse_iso8601(bad).is_err(), "{bad} parsed");
        }
    }
}
