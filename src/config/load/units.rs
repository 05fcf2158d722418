//! Parsing of durations ("250ms", "5s", "10m", "2h", "1d") and sizes ("512KiB", "64MiB").

use std::time::Duration;

/// Parses a whole number followed by `ms`, `s`, `m`, `h` or `d`. A bare number is seconds.
/// Returns `None` for any other form and on overflow.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = split_number(text)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
}

/// Parses a whole number of bytes, optionally followed by `B`, `KiB`, `MiB`, `GiB` or `TiB`
/// (in any letter case). Decimal units such as `MB` are rejected as ambiguous.
/// Returns `None` for any other form and on overflow.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let bytes_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(bytes_per_unit)
}

/// Splits `text` into its leading whole number and the unit after it, ignoring whitespace
/// around and between them.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let number = digits.parse().ok()?;
    Some((number, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("250ms", Some(Duration::from_millis(250))),
            ("5s", Some(Duration::from_secs(5))),
            ("10m", Some(Duration::from_secs(600))),
            ("2h", Some(Duration::from_secs(7_200))),
            ("1d", Some(Duration::from_secs(86_400))),
            ("30", Some(Duration::from_secs(30))),
            (" 5 s ", Some(Duration::from_secs(5))),
            ("0s", Some(Duration::ZERO)),
            ("abc", None),
            ("", None),
            ("s", None),
            ("1.5s", None),
            ("-5s", None),
            ("5 seconds", None),
            ("5S", None),
            ("1h30m", None),
            ("18446744073709551615d", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text:?}");
        }
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        let cases = [
            ("1048576", Some(1_048_576)),
            ("512KiB", Some(512 * 1024)),
            ("64MiB", Some(64 * 1024 * 1024)),
            ("1GiB", Some(1024 * 1024 * 1024)),
            ("2TiB", Some(2 << 40)),
            ("64 mib", Some(64 * 1024 * 1024)),
            ("100B", Some(100)),
            ("64MB", None),
            ("64K", None),
            ("1.5MiB", None),
            ("MiB", None),
            ("", None),
            ("18446744073709551615KiB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), expected, "{text:?}");
        }
    }
}
