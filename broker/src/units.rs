//! Flag values with units, parsed once: durations (`500ms`, `10s`, `2m`, `168h`, `7d`) and byte
//! sizes (`4096`, `64Ki`, `10Gi`). Positive whole numbers only; overflow is an error, never a
//! wrap.

use std::time::Duration;

/// A positive whole number with a unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "invalid duration {text:?}: expected a positive whole number and ms, s, m, h or d \
             (e.g. 500ms, 10s, 7d)"
        )
    };
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let number: u64 = text[..unit_at].parse().map_err(|_| err())?;
    let millis_per_unit: u64 = match &text[unit_at..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err()),
    };
    match number.checked_mul(millis_per_unit) {
        Some(millis) if millis > 0 => Ok(Duration::from_millis(millis)),
        _ => Err(err()),
    }
}

/// A positive whole number of bytes, optionally with a binary unit `Ki`, `Mi`, `Gi` or `Ti`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let err = || {
        format!(
            "invalid size {text:?}: expected a positive number of bytes, optionally with Ki, Mi, Gi or Ti"
        )
    };
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..unit_at].parse().map_err(|_| err())?;
    let scale: u64 = match &text[unit_at..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(err()),
    };
    match number.checked_mul(scale) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in [
            "",
            "7",
            "0h",
            "0ms",
            "1.5h",
            "7w",
            "-1d",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_with_binary_units_and_refuse_the_rest() {
        assert_eq!(parse_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        for bad in ["", "0", "1GB", "-5", "16777216Ti"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
