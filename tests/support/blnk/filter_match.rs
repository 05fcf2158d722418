//! Evaluating one filter condition against stored values, with Postgres' comparison rules.

use std::cmp::Ordering;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::filters::{Condition, FieldValue, Operator};
use super::values::{decimal_from_number, parse_time};

/// Tests a condition against a field's stored values. Several values come from virtual
/// fields such as `balance_id` (source or destination): `ne` and `isnull` must hold for all
/// of them, the other operators for one.
pub fn condition_holds(condition: &Condition, values: &[FieldValue]) -> bool {
    match condition.operator {
        Operator::IsNull => values
            .iter()
            .all(|value| matches!(value, FieldValue::Missing)),
        Operator::IsNotNull => values
            .iter()
            .any(|value| !matches!(value, FieldValue::Missing)),
        Operator::Ne => values.iter().all(|value| value_holds(condition, value)),
        _ => values.iter().any(|value| value_holds(condition, value)),
    }
}

fn value_holds(condition: &Condition, stored: &FieldValue) -> bool {
    let operand = &condition.value;
    match condition.operator {
        Operator::IsNull | Operator::IsNotNull => false,
        Operator::In => condition
            .values
            .iter()
            .any(|candidate| compare(stored, candidate) == Some(Ordering::Equal)),
        Operator::Between => match condition.values.as_slice() {
            [low, high] => {
                matches!(
                    compare(stored, low),
                    Some(Ordering::Greater | Ordering::Equal)
                ) && matches!(
                    compare(stored, high),
                    Some(Ordering::Less | Ordering::Equal)
                )
            }
            _ => false,
        },
        Operator::Like => {
            stored_text(stored).is_some_and(|text| like(&text, &operand_text(operand)))
        }
        Operator::Ilike => stored_text(stored)
            .is_some_and(|text| like(&text.to_lowercase(), &operand_text(operand).to_lowercase())),
        Operator::Eq => match stored {
            FieldValue::Json(value) => json_contains(value, operand),
            _ => compare(stored, operand) == Some(Ordering::Equal),
        },
        Operator::Ne => match stored {
            FieldValue::Missing => false,
            FieldValue::Json(value) => json_text(value) != operand_text(operand),
            _ => compare(stored, operand).is_some_and(|order| order != Ordering::Equal),
        },
        Operator::Gt => compare(stored, operand) == Some(Ordering::Greater),
        Operator::Gte => matches!(
            compare(stored, operand),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Operator::Lt => compare(stored, operand) == Some(Ordering::Less),
        Operator::Lte => matches!(
            compare(stored, operand),
            Some(Ordering::Less | Ordering::Equal)
        ),
    }
}

/// Orders a stored value against a filter operand, or `None` when they cannot be compared.
fn compare(stored: &FieldValue, operand: &Value) -> Option<Ordering> {
    match stored {
        FieldValue::Missing => None,
        FieldValue::Text(text) => Some(text.as_str().cmp(operand_text(operand).as_str())),
        FieldValue::Number(number) => Some(number.cmp(&operand_number(operand)?)),
        FieldValue::Time(time) => Some(time.cmp(&operand_time(operand)?)),
        FieldValue::Json(value) => match operand {
            Value::Number(_) => {
                Some(decimal_of_text(&json_text(value))?.cmp(&operand_number(operand)?))
            }
            _ => Some(json_text(value).cmp(&operand_text(operand))),
        },
    }
}

/// Orders rows by their first value of the sort field; a missing value sorts first.
pub fn compare_first(left: &[FieldValue], right: &[FieldValue]) -> Ordering {
    match (left.first(), right.first()) {
        (Some(FieldValue::Number(left)), Some(FieldValue::Number(right))) => left.cmp(right),
        (Some(FieldValue::Time(left)), Some(FieldValue::Time(right))) => left.cmp(right),
        (left, right) => left.and_then(stored_text).cmp(&right.and_then(stored_text)),
    }
}

fn stored_text(stored: &FieldValue) -> Option<String> {
    match stored {
        FieldValue::Missing => None,
        FieldValue::Text(text) => Some(text.clone()),
        FieldValue::Number(number) => Some(number.to_string()),
        FieldValue::Time(time) => Some(time.to_rfc3339()),
        FieldValue::Json(value) => Some(json_text(value)),
    }
}

/// Returns the text Postgres' `->>` gives for a JSON value.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn operand_text(operand: &Value) -> String {
    json_text(operand)
}

fn operand_number(operand: &Value) -> Option<Decimal> {
    match operand {
        Value::Number(number) => decimal_from_number(number),
        Value::String(text) => decimal_of_text(text),
        _ => None,
    }
}

fn decimal_of_text(text: &str) -> Option<Decimal> {
    Decimal::from_str(text.trim()).ok()
}

/// Reads a time operand: RFC 3339, or a bare date meaning its midnight (UTC).
fn operand_time(operand: &Value) -> Option<DateTime<Utc>> {
    let text = operand.as_str()?;
    parse_time(text).or_else(|| {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc())
    })
}

/// JSONB containment (`@>`), type-sensitive for scalars.
fn json_contains(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Object(stored), Value::Object(wanted)) => wanted.iter().all(|(key, value)| {
            stored
                .get(key)
                .is_some_and(|inner| json_contains(inner, value))
        }),
        (Value::Array(stored), Value::Array(wanted)) => wanted
            .iter()
            .all(|value| stored.iter().any(|inner| json_contains(inner, value))),
        (Value::Number(left), Value::Number(right)) => {
            decimal_from_number(left) == decimal_from_number(right)
        }
        (left, right) => left == right,
    }
}

/// SQL `LIKE`: `%` matches any run of characters, `_` exactly one.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for symbol in pattern {
        let mut next = vec![false; text.len() + 1];
        for position in 0..=text.len() {
            if !reachable[position] {
                continue;
            }
            match symbol {
                '%' => next[position..].iter_mut().for_each(|cell| *cell = true),
                '_' if position < text.len() => next[position + 1] = true,
                literal if position < text.len() && text[position] == literal => {
                    next[position + 1] = true
                }
                _ => {}
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}
