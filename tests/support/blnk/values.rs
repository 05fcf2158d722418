//! Reading request fields and writing numbers, times and ids the way Blnk does.
//!
//! Amounts never pass through a binary float: JSON numbers are read through their decimal
//! text into `rust_decimal`, and minor-unit figures stay `i128`.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

/// Blnk's "unset" time, `0001-01-01T00:00:00Z`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A request field that has the wrong JSON type (Go's binding error).
#[derive(Debug)]
pub struct WrongType {
    pub field: String,
}

/// Mints an id in Blnk's form, `<prefix>_<uuid v4>`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4())
}

/// Reads a JSON number exactly, through its decimal text.
pub fn decimal_from_number(number: &Number) -> Option<Decimal> {
    if let Some(value) = number.as_i64() {
        return Some(Decimal::from(value));
    }
    if let Some(value) = number.as_u64() {
        return Some(Decimal::from(value));
    }
    let text = number.to_string();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text).ok()
    } else {
        Decimal::from_str(&text).ok()
    }
}

/// Reads an optional number field; a value of another JSON type is a binding error.
pub fn number_field(object: &Map<String, Value>, key: &str) -> Result<Option<Decimal>, WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => decimal_from_number(number)
            .map(Some)
            .ok_or_else(|| wrong(key)),
        Some(_) => Err(wrong(key)),
    }
}

/// Reads an optional integer field that must be a bare JSON integer literal, as Go's
/// `big.Int` binding requires: a quoted string or a float literal is a binding error.
///
/// NOTE: integers above `u64::MAX` are read by serde_json as floats and so are rejected
/// here, although Blnk accepts integers of any size.
pub fn integer_field(object: &Map<String, Value>, key: &str) -> Result<Option<i128>, WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(value) = number.as_i64() {
                Ok(Some(i128::from(value)))
            } else if let Some(value) = number.as_u64() {
                Ok(Some(i128::from(value)))
            } else {
                Err(wrong(key))
            }
        }
        Some(_) => Err(wrong(key)),
    }
}

pub fn string_field(object: &Map<String, Value>, key: &str) -> Result<String, WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(wrong(key)),
    }
}

pub fn bool_field(object: &Map<String, Value>, key: &str) -> Result<bool, WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(wrong(key)),
    }
}

/// Reads `meta_data`: an object, or nothing.
pub fn meta_field(object: &Map<String, Value>) -> Result<Map<String, Value>, WrongType> {
    match object.get("meta_data") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(meta)) => Ok(meta.clone()),
        Some(_) => Err(wrong("meta_data")),
    }
}

/// Reads an optional RFC 3339 timestamp field.
pub fn time_field(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<DateTime<Utc>>, WrongType> {
    let text = string_field(object, key)?;
    if text.is_empty() {
        return Ok(None);
    }
    parse_time(&text).map(Some).ok_or_else(|| wrong(key))
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// Formats a time as Blnk does in responses: UTC, `Z`, with as many fraction digits as needed.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Converts an amount in major units to minor units, rounding half away from zero like
/// Blnk's decimal maths. Returns `None` when the product does not fit.
pub fn to_minor_units(amount: Decimal, precision: u64) -> Option<i128> {
    let product = amount.checked_mul(Decimal::from(precision))?;
    let rounded = product.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i128::try_from(rounded).ok()
}

/// Converts minor units to major units, or zero when the figure is beyond `Decimal`'s range.
pub fn to_major_units(precise: i128, precision: u64) -> Decimal {
    let Ok(minor) = Decimal::try_from_i128_with_scale(precise, 0) else {
        return Decimal::ZERO;
    };
    minor
        .checked_div(Decimal::from(precision.max(1)))
        .unwrap_or(Decimal::ZERO)
        .normalize()
}

/// Writes a decimal as a JSON number, the way Go encodes the float `amount` field.
pub fn number_value(value: Decimal) -> Value {
    serde_json::from_str::<Number>(&value.normalize().to_string())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Formats a major-unit amount like Go's `%.2f`.
pub fn two_decimals(value: Decimal) -> String {
    let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    format!("{rounded:.2}")
}

/// Counts the significant digits of an amount, for Blnk's limit of 15 on `amount`.
pub fn significant_digits(value: Decimal) -> usize {
    let text = value.normalize().abs().to_string().replace('.', "");
    text.trim_start_matches('0').len()
}

fn wrong(field: &str) -> WrongType {
    WrongType {
        field: field.to_owned(),
    }
}
