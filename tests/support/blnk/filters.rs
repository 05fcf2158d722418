//! Blnk's filter language, shared by `POST /<collection>/filter` and the query-string form
//! of `GET /<collection>`.
//!
//! A condition is `{field, operator, value | values}`. `meta_data.<key>` compares the stored
//! JSON: `eq` is containment and type-sensitive (`"1"` does not match `1`), `ne`, `like`,
//! `ilike` and `in` compare its text, and the ordering operators cast it to a number.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::filter_match::{compare_first, condition_holds};
use super::filter_rules::{Table, check_condition, invalid_filter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Between,
    Like,
    Ilike,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub field: String,
    pub operator: Operator,
    pub value: Value,
    pub values: Vec<Value>,
}

/// A parsed filter request.
#[derive(Debug, Clone)]
pub struct FilterQuery {
    conditions: Vec<Condition>,
    any: bool,
    pub limit: usize,
    pub offset: usize,
    sort_by: Option<String>,
    descending: bool,
    pub include_count: bool,
}

/// One stored value of a field, typed the way Postgres compares it.
#[derive(Debug, Clone)]
pub enum FieldValue {
    Missing,
    Text(String),
    Number(Decimal),
    Time(DateTime<Utc>),
    Json(Value),
}

pub const OPERATORS: [(&str, Operator); 12] = [
    ("isnotnull", Operator::IsNotNull),
    ("isnull", Operator::IsNull),
    ("between", Operator::Between),
    ("ilike", Operator::Ilike),
    ("like", Operator::Like),
    ("gte", Operator::Gte),
    ("lte", Operator::Lte),
    ("in", Operator::In),
    ("ne", Operator::Ne),
    ("eq", Operator::Eq),
    ("gt", Operator::Gt),
    ("lt", Operator::Lt),
];

impl FilterQuery {
    /// Parses a JSON filter body. A `limit` above 100 silently becomes 20, as in Blnk.
    pub fn from_body(body: &Value, table: Table) -> Result<FilterQuery, ApiError> {
        let invalid = |text: &str| ApiError::new("GEN_VALIDATION_ERROR", text.to_owned());
        let Value::Object(object) = body else {
            return Err(invalid("invalid request body: expected a JSON object"));
        };
        let mut conditions = Vec::new();
        if let Some(Value::Array(items)) = object.get("filters") {
            for item in items {
                conditions.push(condition_from_json(item, table)?);
            }
        }
        let logical = object
            .get("logical_operator")
            .and_then(Value::as_str)
            .unwrap_or("and");
        let any = match logical.trim().to_lowercase().as_str() {
            "" | "and" => false,
            "or" => true,
            _ => return Err(invalid("invalid logical_operator: must be 'and' or 'or'")),
        };
        let limit = object.get("limit").and_then(Value::as_i64).unwrap_or(0);
        let offset = object.get("offset").and_then(Value::as_i64).unwrap_or(0);
        let sort_order = object
            .get("sort_order")
            .and_then(Value::as_str)
            .unwrap_or("desc");
        Ok(FilterQuery {
            conditions,
            any,
            limit: if (1..=100).contains(&limit) {
                usize::try_from(limit).unwrap_or(20)
            } else {
                20
            },
            offset: usize::try_from(offset).unwrap_or(0),
            sort_by: sort_field(object.get("sort_by").and_then(Value::as_str), table),
            descending: sort_order.trim().to_lowercase() != "asc",
            include_count: object
                .get("include_count")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Parses `field_operator=value` query parameters. Values are type-guessed: integers
    /// become numbers and `true`/`false` booleans; `in` splits on commas, `between` on `|`.
    pub fn from_query(
        pairs: &[(String, String)],
        table: Table,
        default_limit: usize,
    ) -> Result<FilterQuery, ApiError> {
        let mut query = FilterQuery {
            conditions: Vec::new(),
            any: false,
            limit: default_limit,
            offset: 0,
            sort_by: None,
            descending: true,
            include_count: false,
        };
        let mut limit = None;
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => limit = value.parse::<usize>().ok().filter(|limit| *limit > 0),
                "offset" => query.offset = value.parse().unwrap_or(0),
                "logical_operator" => query.any = value.eq_ignore_ascii_case("or"),
                "include_count" => query.include_count = value == "true",
                _ => {
                    if let Some(condition) = condition_from_query(key, value) {
                        query.conditions.push(condition);
                    }
                }
            }
        }
        for condition in &query.conditions {
            check_condition(condition, table)?;
        }
        let cap = if query.conditions.is_empty() {
            usize::MAX
        } else {
            1000
        };
        query.limit = limit.unwrap_or(default_limit).min(cap);
        Ok(query)
    }

    /// Selects, sorts and pages `items`. Returns the page and the number of matches.
    pub fn select<'a, T>(
        &self,
        items: &'a [T],
        field_of: impl Fn(&T, &str) -> Vec<FieldValue>,
    ) -> (Vec<&'a T>, usize) {
        let mut matched: Vec<&T> = items
            .iter()
            .filter(|item| {
                let mut results = self
                    .conditions
                    .iter()
                    .map(|condition| condition_holds(condition, &field_of(item, &condition.field)));
                if self.any {
                    results.any(|hit| hit)
                } else {
                    results.all(|hit| hit)
                }
            })
            .collect();
        let sort_field = self.sort_by.as_deref().unwrap_or("created_at");
        matched.sort_by(|left, right| {
            let order = compare_first(&field_of(left, sort_field), &field_of(right, sort_field));
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
        let total = matched.len();
        let page = matched
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        (page, total)
    }
}

fn sort_field(requested: Option<&str>, table: Table) -> Option<String> {
    let requested = requested?.trim().to_lowercase();
    table
        .fields()
        .contains(&requested.as_str())
        .then_some(requested)
}

fn condition_from_json(item: &Value, table: Table) -> Result<Condition, ApiError> {
    let text = |key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let field = text("field");
    let operator_text = text("operator");
    let Some(operator) = OPERATORS
        .iter()
        .find(|(name, _)| *name == operator_text)
        .map(|(_, operator)| *operator)
    else {
        let message = format!(
            "invalid operator '{operator_text}' for field '{field}': must be one of eq, ne, gt, gte, lt, lte, in, between, like, ilike, isnull, isnotnull"
        );
        return Err(invalid_filter(&message));
    };
    let values = match item.get("values") {
        Some(Value::Array(values)) => values.clone(),
        _ => Vec::new(),
    };
    let condition = Condition {
        field,
        operator,
        value: item.get("value").cloned().unwrap_or(Value::Null),
        values,
    };
    check_condition(&condition, table)?;
    Ok(condition)
}

fn condition_from_query(key: &str, value: &str) -> Option<Condition> {
    let (field, operator) = OPERATORS.iter().find_map(|(name, operator)| {
        let field = key.strip_suffix(name)?.strip_suffix('_')?;
        (!field.is_empty()).then_some((field, *operator))
    })?;
    let parts: Vec<Value> = match operator {
        Operator::In => value.split(',').map(guess_type).collect(),
        Operator::Between => value.split('|').map(guess_type).collect(),
        _ => Vec::new(),
    };
    Some(Condition {
        field: field.to_owned(),
        operator,
        value: guess_type(value),
        values: parts,
    })
}

fn guess_type(text: &str) -> Value {
    if let Ok(number) = text.parse::<i64>() {
        return Value::from(number);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::from(text),
    }
}

/// Returns the stored values of `meta_data.<key>`, or `None` when `field` is not a metadata
/// field.
pub fn meta_value(meta: Option<&Map<String, Value>>, field: &str) -> Option<Vec<FieldValue>> {
    let key = field.strip_prefix("meta_data.")?;
    let value = meta
        .and_then(|meta| meta.get(key))
        .filter(|value| !value.is_null());
    Some(vec![value.map_or(FieldValue::Missing, |value| {
        FieldValue::Json(value.clone())
    })])
}

/// Returns the values of a text field, where the empty string counts as NULL.
pub fn text_value(text: &str) -> Vec<FieldValue> {
    if text.is_empty() {
        vec![FieldValue::Missing]
    } else {
        vec![FieldValue::Text(text.to_owned())]
    }
}
