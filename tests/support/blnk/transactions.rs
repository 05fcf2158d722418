//! `POST /transactions` (synchronous, queued and dry run) and the reads of one transaction.

use serde_json::{Map, Value, json};

use super::errors::{ApiError, Reply};
use super::posting::{Posting, Refusal, apply_now, enqueue};
use super::records::{Balance, Echo, TxnStyle};
use super::requests::TxnRequest;
use super::store::Store;
use super::values::{number_value, to_major_units};

pub fn post_transaction(store: &mut Store, body: &Value) -> Reply {
    let Ok(request) = TxnRequest::bind(body) else {
        return ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input").into();
    };
    if let Err(error) = request.validate() {
        return error.into();
    }
    if request.has_splits {
        // NOTE: split transactions (`sources` / `destinations`) are not modelled.
        let message = "the fake Blnk server does not support sources or destinations lists";
        return ApiError::new("GEN_BAD_REQUEST", message).into();
    }

    let posting = request.to_posting("", request.inflight, Map::new());
    if request.dry_run {
        return preview(store, &request, posting);
    }
    if !request.skip_queue {
        let response_row = enqueue(store, &posting, None);
        let echo = echo_of(
            &request,
            Some((request.source.clone(), request.destination.clone())),
        );
        return Reply::json(201, &response_row.to_json(&TxnStyle::Created(echo)));
    }
    apply_single(store, &request, posting)
}

fn apply_single(store: &mut Store, request: &TxnRequest, mut posting: Posting) -> Reply {
    match apply_now(store, &mut posting) {
        Ok(id) => match store.txn(&id) {
            Some(row) => Reply::json(
                201,
                &row.to_json(&TxnStyle::Created(echo_of(request, None))),
            ),
            None => ApiError::new("GEN_INTERNAL", "internal server error").into(),
        },
        Err(refusal) => single_error(&refusal, &posting.reference).into(),
    }
}

/// Builds the error response of a single synchronous post for a refusal.
pub fn single_error(refusal: &Refusal, reference: &str) -> ApiError {
    let cause = refusal.cause(reference);
    match refusal {
        Refusal::BalanceNotFound(_) => ApiError::new("TXN_NOT_FOUND", cause).with_empty_details(),
        _ => ApiError::classified(cause, "TXN_VALIDATION_ERROR"),
    }
}

fn echo_of(request: &TxnRequest, endpoints: Option<(String, String)>) -> Echo {
    Echo {
        allow_overdraft: request.allow_overdraft,
        overdraft_limit: request.overdraft_limit,
        skip_queue: request.skip_queue,
        atomic: request.atomic,
        inflight: request.inflight,
        amount_string: request.precise_amount.is_some(),
        endpoints,
    }
}

/// Responds to a dry run with the projected figures of both balances, or with the rejection
/// a real post would meet. Nothing is written and no `@` balance is created.
fn preview(store: &Store, request: &TxnRequest, posting: Posting) -> Reply {
    let source = project_endpoint(store, &posting.source, &posting.currency);
    let destination = project_endpoint(store, &posting.destination, &posting.currency);
    let (source, destination) = match (source, destination) {
        (Ok(source), Ok(destination)) => (source, destination),
        (Err(id), _) | (_, Err(id)) => {
            return single_error(&Refusal::BalanceNotFound(id), &posting.reference).into();
        }
    };
    let precise = posting.precise().unwrap_or_default();
    let refusal = if store.reference_used(&posting.reference) {
        Some(Refusal::DuplicateReference)
    } else if precise <= 0 {
        Some(Refusal::NotPositive)
    } else {
        store
            .check_funds(
                &source.id,
                precise,
                posting.allow_overdraft,
                posting.overdraft_limit,
                posting.precision,
            )
            .err()
            .map(Refusal::Funds)
    };

    let mut body = json!({
        "dry_run": true,
        "would_apply": refusal.is_none(),
        "reference": posting.reference,
        "currency": posting.currency,
        "amount": number_value(to_major_units(precise, posting.precision)),
        "precise_amount": precise.to_string(),
        "precision": posting.precision,
    });
    if let Some(refusal) = refusal {
        let message = refusal.cause(&posting.reference);
        let error = ApiError::classified(message.clone(), "TXN_VALIDATION_ERROR");
        body["rejection"] =
            json!({"code": error.code, "reason": rejection_reason(&message), "message": message});
        body["balances"] = json!([
            projection(&source, "source", 0, false),
            projection(&destination, "destination", 0, false)
        ]);
    } else {
        body["status"] = Value::from(if request.inflight {
            "INFLIGHT"
        } else {
            "APPLIED"
        });
        let source = projection(&source, "source", precise, request.inflight);
        let destination = projection(&destination, "destination", precise, request.inflight);
        body["balances"] = json!([source, destination]);
    }
    Reply::json(200, &body)
}

/// Finds the balance to project: the stored one, or a zero balance in place of an `@`
/// balance that a real post would create.
fn project_endpoint(store: &Store, name: &str, currency: &str) -> Result<Balance, String> {
    if let Some(balance) = store.balance(name) {
        return Ok(balance.clone());
    }
    if name.starts_with('@') {
        if let Some(balance) = store.indicator_balance(name, currency) {
            return Ok(balance.clone());
        }
        return Ok(Balance {
            id: name.to_owned(),
            ledger_id: String::new(),
            identity_id: String::new(),
            indicator: Some(name.to_owned()),
            currency: currency.to_owned(),
            credit: 0,
            debit: 0,
            inflight_credit: 0,
            inflight_debit: 0,
            version: 0,
            created_at: chrono::DateTime::UNIX_EPOCH,
            meta: None,
            track_fund_lineage: false,
            allocation_strategy: String::new(),
        });
    }
    Err(name.to_owned())
}

fn projection(balance: &Balance, role: &str, amount: i128, inflight: bool) -> Value {
    let mut after = balance.clone();
    let outgoing = role == "source";
    match (outgoing, inflight) {
        (true, false) => after.debit += amount,
        (true, true) => after.inflight_debit += amount,
        (false, false) => after.credit += amount,
        (false, true) => after.inflight_credit += amount,
    }
    let mut object = json!({"balance_id": balance.id, "role": role, "currency": balance.currency});
    for (prefix, figures) in [("current", balance), ("resulting", &after)] {
        object[format!("{prefix}_balance")] = Value::from(figures.balance().to_string());
        object[format!("{prefix}_available")] = Value::from(figures.available().to_string());
        object[format!("{prefix}_credit_balance")] = Value::from(figures.credit.to_string());
        object[format!("{prefix}_debit_balance")] = Value::from(figures.debit.to_string());
        object[format!("{prefix}_inflight_debit_balance")] =
            Value::from(figures.inflight_debit.to_string());
        object[format!("{prefix}_inflight_credit_balance")] =
            Value::from(figures.inflight_credit.to_string());
    }
    if balance.ledger_id.is_empty() {
        object["virtual"] = Value::Bool(true);
    }
    object
}

fn rejection_reason(message: &str) -> &'static str {
    let lower = message.to_lowercase();
    if lower.contains("insufficient funds") {
        "insufficient_funds"
    } else if lower.contains("overdraft limit") {
        "overdraft_limit"
    } else {
        "other"
    }
}

/// `GET /transactions/{id}`.
pub fn get_transaction(store: &Store, id: &str) -> Reply {
    match store.txn(id) {
        Some(row) => Reply::json(200, &row.to_json(&TxnStyle::ById)),
        None => {
            let message = format!("Transaction with ID '{id}' not found");
            ApiError::new("TXN_NOT_FOUND", message)
                .with_empty_details()
                .into()
        }
    }
}

/// `GET /transactions/reference/{reference}`.
pub fn get_by_reference(store: &Store, reference: &str) -> Reply {
    match store.txn_by_reference(reference) {
        Some(row) => Reply::json(200, &row.to_json(&TxnStyle::ByReference)),
        None => {
            let message = format!("Transaction with reference '{reference}' not found");
            ApiError::new("TXN_NOT_FOUND", message)
                .with_empty_details()
                .into()
        }
    }
}
