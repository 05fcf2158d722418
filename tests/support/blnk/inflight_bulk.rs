//! `POST /transactions/inflight/bulk/commit` and `.../bulk/void`: many holds in one call,
//! each settled on its own, with a per-item result instead of an HTTP error.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, Reply};
use super::inflight::{InflightAction, accept_queued_action, hold_precision, settle_hold};
use super::store::Store;
use super::values::{
    WrongType, bool_field, integer_field, new_id, number_field, string_field, to_minor_units,
};

/// Blnk's limit on the items of one bulk commit or void.
const MAX_ITEMS: usize = 100;

/// `POST /transactions/inflight/bulk/commit` and `.../bulk/void`: each item on its own.
pub fn bulk_inflight(store: &mut Store, action: InflightAction, body: &Value) -> Reply {
    let (items, skip_queue) = match bulk_items(action, body) {
        Ok(parsed) => parsed,
        Err(error) => return error.into(),
    };
    let mut succeeded = 0;
    let mut failed = 0;
    let mut results = Vec::new();
    for (id, amount) in items {
        let amount = match amount {
            AmountSpec::Minor(minor) => minor,
            AmountSpec::Major(major) => {
                to_minor_units(major, hold_precision(store, &id)).unwrap_or(0)
            }
        };
        let outcome = if skip_queue {
            settle_hold(store, &id, action, amount, new_id("ref"))
                .map(|_| json!({"transaction_id": id, "status": "succeeded"}))
                .map_err(|cause| (inflight_code(&cause), cause))
        } else {
            queued_bulk_item(store, &id, action, amount)
        };
        match outcome {
            Ok(result) => {
                succeeded += 1;
                results.push(result);
            }
            Err((code, message)) => {
                failed += 1;
                results.push(json!({"transaction_id": id, "status": "failed", "code": code, "message": message}));
            }
        }
    }
    Reply::json(
        200,
        &json!({"succeeded": succeeded, "failed": failed, "results": results}),
    )
}

fn queued_bulk_item(
    store: &mut Store,
    id: &str,
    action: InflightAction,
    amount: i128,
) -> Result<Value, (&'static str, String)> {
    match accept_queued_action(store, id, action, amount) {
        Ok(_) => Ok(json!({"transaction_id": id, "status": "queued", "code": "QUEUED"})),
        Err(error) if error.code == "GEN_CONFLICT" => Ok(json!({
            "transaction_id": id, "status": "queued", "code": "ALREADY_QUEUED", "message": error.message
        })),
        Err(error) => Err((inflight_code(&error.message), error.message)),
    }
}

/// Blnk's per-item failure codes of the bulk inflight endpoints.
fn inflight_code(cause: &str) -> &'static str {
    if cause.contains("not found") {
        "NOT_FOUND"
    } else if cause.contains("has already been voided") {
        "ALREADY_VOIDED"
    } else if cause.contains("Transaction already committed") {
        "ALREADY_COMMITTED"
    } else if cause.contains("not in inflight status") {
        "NOT_INFLIGHT"
    } else if cause.contains("cannot commit more than") {
        "INVALID_AMOUNT"
    } else {
        "INTERNAL_ERROR"
    }
}

enum AmountSpec {
    Minor(i128),
    Major(Decimal),
}

fn bulk_items(
    action: InflightAction,
    body: &Value,
) -> Result<(Vec<(String, AmountSpec)>, bool), ApiError> {
    let malformed = |field: &str| {
        ApiError::new(
            "GEN_MALFORMED_REQUEST",
            format!("json: cannot unmarshal the value of field {field}"),
        )
    };
    let Value::Object(object) = body else {
        return Err(malformed("body"));
    };
    let skip_queue = bool_field(object, "skip_queue").map_err(|wrong| malformed(&wrong.field))?;
    let (key, items) = match action {
        InflightAction::Commit => (
            "transactions",
            commit_items(object).map_err(|wrong| malformed(&wrong.field))?,
        ),
        InflightAction::Void => (
            "transaction_ids",
            void_items(object).map_err(|wrong| malformed(&wrong.field))?,
        ),
    };
    if items.is_empty() {
        return Err(ApiError::new(
            "TXN_BULK_EMPTY",
            format!("{key} cannot be empty"),
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(ApiError::new(
            "TXN_BULK_LIMIT_EXCEEDED",
            format!("too many {key}; max is {MAX_ITEMS}"),
        ));
    }
    Ok((items, skip_queue))
}

fn commit_items(object: &Map<String, Value>) -> Result<Vec<(String, AmountSpec)>, WrongType> {
    let mut items = Vec::new();
    for item in array_field(object, "transactions")? {
        let Value::Object(item) = item else {
            return Err(WrongType {
                field: "transactions".into(),
            });
        };
        let id = string_field(item, "transaction_id")?;
        let amount = match integer_field(item, "precise_amount")? {
            Some(minor) if minor != 0 => AmountSpec::Minor(minor),
            _ => AmountSpec::Major(number_field(item, "amount")?.unwrap_or_default()),
        };
        items.push((id, amount));
    }
    Ok(items)
}

fn void_items(object: &Map<String, Value>) -> Result<Vec<(String, AmountSpec)>, WrongType> {
    array_field(object, "transaction_ids")?
        .iter()
        .map(|id| match id {
            Value::String(id) => Ok((id.clone(), AmountSpec::Minor(0))),
            _ => Err(WrongType {
                field: "transaction_ids".into(),
            }),
        })
        .collect()
}

fn array_field<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(WrongType {
            field: key.to_owned(),
        }),
    }
}
