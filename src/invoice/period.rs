//! The billing period of an invoice: a half-open UTC interval `[from, to)`.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A half-open period `[from, to)`: a transaction at exactly `to` belongs to the next period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// An invalid period.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error(
        "invalid {bound} date {text:?}: expected a UTC date such as 2026-05-01 (midnight UTC) \
         or an RFC 3339 timestamp such as 2026-05-01T00:00:00Z"
    )]
    InvalidDate { bound: &'static str, text: String },
    #[error(
        "empty period: from ({from}) must be before to ({to}); the period includes from and excludes to"
    )]
    Empty { from: String, to: String },
}

impl Period {
    /// Parses the two bounds, each a `YYYY-MM-DD` date (midnight UTC) or an RFC 3339
    /// timestamp in any offset, and checks that `from` is before `to`.
    pub fn parse(from: &str, to: &str) -> Result<Period, PeriodError> {
        let from_time = parse_bound("from", from)?;
        let to_time = parse_bound("to", to)?;
        Period::new(from_time, to_time)
    }

    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Period, PeriodError> {
        if from >= to {
            return Err(PeriodError::Empty {
                from: format_time(from),
                to: format_time(to),
            });
        }
        Ok(Period { from, to })
    }

    /// Returns whether `at` falls inside the period.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", format_time(self.from), format_time(self.to))
    }
}

/// Writes a time in RFC 3339 with a `Z` suffix and only the fractional digits it needs.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_bound(bound: &'static str, text: &str) -> Result<DateTime<Utc>, PeriodError> {
    let trimmed = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).map(|time| time.and_utc());
        if let Some(midnight) = midnight {
            return Ok(midnight);
        }
    }
    match DateTime::parse_from_rfc3339(trimmed) {
        Ok(time) => Ok(time.with_timezone(&Utc)),
        Err(_) => Err(PeriodError::InvalidDate {
            bound,
            text: text.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("valid timestamp")
    }

    #[test]
    fn bounds_parse_as_dates_or_rfc3339() {
        let cases = [
            ("2026-05-01", "2026-05-01T00:00:00Z"),
            (" 2026-05-01 ", "2026-05-01T00:00:00Z"),
            ("2026-05-01T12:30:00Z", "2026-05-01T12:30:00Z"),
            ("2026-05-01T12:30:00.25Z", "2026-05-01T12:30:00.250Z"),
            ("2026-05-01T02:00:00+02:00", "2026-05-01T00:00:00Z"),
            ("2026-04-30T22:00:00-02:00", "2026-05-01T00:00:00Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bound("from", text), Ok(at(expected)), "{text}");
        }
    }

    #[test]
    fn invalid_bounds_are_named() {
        for text in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-05-01 12:00",
            "1714521600",
        ] {
            let error = parse_bound("to", text).expect_err(text);
            let message = error.to_string();
            assert!(message.contains("invalid to date"), "{message}");
            assert!(message.contains("2026-05-01T00:00:00Z"), "{message}");
        }
    }

    #[test]
    fn period_must_not_be_empty() {
        let equal = Period::parse("2026-05-01", "2026-05-01").expect_err("equal bounds");
        assert!(equal.to_string().contains("must be before"), "{equal}");
        let reversed = Period::parse("2026-06-01", "2026-05-01").expect_err("reversed bounds");
        assert!(
            reversed.to_string().contains("from (2026-06-01T00:00:00Z)"),
            "{reversed}"
        );
        assert!(Period::parse("2026-05-01", "2026-05-01T00:00:00.000001Z").is_ok());
    }

    #[test]
    fn period_is_half_open() {
        let period = Period::parse("2026-05-01", "2026-06-01").expect("valid period");
        assert!(period.contains(at("2026-05-01T00:00:00Z")));
        assert!(period.contains(at("2026-05-31T23:59:59.999999Z")));
        assert!(!period.contains(at("2026-06-01T00:00:00Z")));
        assert!(!period.contains(at("2026-04-30T23:59:59.999999Z")));
    }
}
