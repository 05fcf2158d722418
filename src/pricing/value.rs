//! Conversion of single raw values: prices, factors and dates.
//!
//! The limits below keep every cost computation inside `Decimal`'s range: a rate is at most
//! 1 USD per token before a tier multiplier, and at most 1000 USD per token after one. A part
//! of `u64::MAX` tokens then costs at most about 1.8e22 USD, and six parts times a markup of
//! 1000 come to at most about 1.1e26, well below `Decimal::MAX` (about 7.9e28). So pricing a
//! usage cannot overflow and needs no error path.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use rust_decimal::Decimal;

use super::error::{KeyPath, PricingError};
use super::file::RawValue;

/// Highest price accepted, in USD per 1M tokens (1 USD per token).
const MAX_PRICE_PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Highest markup or tier multiplier accepted.
const MAX_FACTOR: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// Decimal places a per-token rate can carry (`Decimal`'s maximum scale).
const MAX_SCALE: u32 = 28;

/// Decimal places added by turning a price per 1M tokens into a price per token.
const MILLION_SCALE: u32 = 6;

/// Reads a price in USD per 1M tokens and returns it in USD per token, exactly.
pub(crate) fn price_per_token(
    source: &str,
    value: &RawValue,
    key: &KeyPath,
) -> Result<Decimal, PricingError> {
    let Some(price) = source_decimal(source, value) else {
        return Err(PricingError::InvalidPrice {
            key: key.to_string(),
            text: shown_text(source, value),
        });
    };
    if price.is_sign_negative() {
        return Err(PricingError::NegativePrice {
            key: key.to_string(),
            text: shown_text(source, value),
        });
    }
    if price > MAX_PRICE_PER_MILLION {
        return Err(key.invalid(format!(
            "price {price} is above the limit of {MAX_PRICE_PER_MILLION} USD per 1M tokens"
        )));
    }

    let scale = price.scale() + MILLION_SCALE;
    if scale > MAX_SCALE {
        return Err(key.invalid(format!(
            "price {price} has more than {} decimal places, which cannot be stored exactly per token",
            MAX_SCALE - MILLION_SCALE
        )));
    }
    Decimal::try_from_i128_with_scale(price.mantissa(), scale).map_err(|_| {
        PricingError::InvalidPrice {
            key: key.to_string(),
            text: shown_text(source, value),
        }
    })
}

/// Reads a markup or tier multiplier: a positive decimal factor such as `1.2` or `0.5`.
pub(crate) fn factor(
    source: &str,
    value: &RawValue,
    key: &KeyPath,
) -> Result<Decimal, PricingError> {
    let text = shown_text(source, value);
    let Some(factor) = source_decimal(source, value) else {
        return Err(key.invalid(format!(
            "invalid factor {text:?}: expected a positive decimal number such as 1.2"
        )));
    };
    if !is_valid_factor(factor) {
        return Err(key.invalid(format!(
            "invalid factor {text:?}: expected a number greater than 0 and at most {MAX_FACTOR}"
        )));
    }
    Ok(factor)
}

/// Returns whether `factor` is a markup or multiplier within the accepted range.
pub(crate) fn is_valid_factor(factor: Decimal) -> bool {
    factor > Decimal::ZERO && factor <= MAX_FACTOR
}

/// Reads an `effective_from` value: a UTC date `YYYY-MM-DD` (midnight UTC) or an RFC 3339
/// timestamp, written as a string or as a TOML date or offset date-time.
pub(crate) fn timestamp(value: &RawValue, key: &KeyPath) -> Result<DateTime<Utc>, PricingError> {
    let text = match value.get_ref() {
        toml::Value::String(text) => text.trim().to_string(),
        toml::Value::Datetime(datetime) => datetime.to_string(),
        other => other.to_string(),
    };
    parse_timestamp(&text).ok_or_else(|| {
        key.invalid(format!(
            "invalid date {text:?}: expected a UTC date such as 2025-06-10 or an RFC 3339 timestamp such as 2025-06-10T00:00:00Z"
        ))
    })
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    let timestamp = DateTime::parse_from_rfc3339(text).ok()?;
    Some(timestamp.with_timezone(&Utc))
}

/// Parses the exact decimal a value denotes. A TOML string is parsed as written. A TOML number
/// is parsed from its source text, because the value toml hands over is already an `f64`.
fn source_decimal(source: &str, value: &RawValue) -> Option<Decimal> {
    let text = match value.get_ref() {
        toml::Value::String(text) => text.trim().to_string(),
        toml::Value::Integer(_) | toml::Value::Float(_) => {
            // TOML allows `_` between digits, as in `1_000`.
            source.get(value.span())?.replace('_', "")
        }
        _ => return None,
    };

    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text)
    } else {
        Decimal::from_str(&text)
    };
    let decimal = parsed.ok()?.normalize();

    // `-0` parses as a negative zero, which is still zero.
    if decimal.is_zero() {
        return Some(Decimal::ZERO);
    }
    Some(decimal)
}

/// Returns the value as the operator wrote it, for error messages.
fn shown_text(source: &str, value: &RawValue) -> String {
    match value.get_ref() {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(_) | toml::Value::Float(_) => source
            .get(value.span())
            .map_or_else(|| value.get_ref().to_string(), str::to_string),
        other => other.to_string(),
    }
}

/// Converts a per-token rate back to USD per 1M tokens, for display.
pub(crate) fn per_million(rate: Decimal) -> Decimal {
    (rate * Decimal::from(1_000_000u32)).normalize()
}

/// Formats an `effective_from` as the operator would write it: `always`, a date for
/// midnight UTC, or an RFC 3339 timestamp.
pub(crate) fn show_effective_from(from: Option<DateTime<Utc>>) -> String {
    match from {
        None => "always".to_string(),
        Some(from) if from.num_seconds_from_midnight() == 0 && from.nanosecond() == 0 => {
            from.date_naive().to_string()
        }
        Some(from) => from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}
