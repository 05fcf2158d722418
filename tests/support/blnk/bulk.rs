//! `POST /transactions/bulk`.
//!
//! With `skip_queue` the legs are applied in order and the batch stops at the first failure.
//! With `atomic` the legs applied before it are then compensated: holds are voided at once,
//! settled legs get refund transactions (`<leg id>_refund`) that are only queued, so they
//! take effect when the workers run. Without `skip_queue` every leg is queued on its own and
//! the top-level `atomic` has no effect, as in Blnk.

use serde_json::{Map, Value, json};

use super::errors::{ApiError, Reply};
use super::inflight::{InflightAction, settle_hold};
use super::posting::{Posting, apply_now, enqueue};
use super::requests::TxnRequest;
use super::store::Store;
use super::values::{bool_field, new_id, two_decimals};
use super::views::TxnStatus;

const MAX_BULK_ITEMS: usize = 10_000;

struct BulkRequest {
    items: Vec<TxnRequest>,
    atomic: bool,
    inflight: bool,
    skip_queue: bool,
    run_async: bool,
    dry_run: bool,
}

pub fn post_bulk(store: &mut Store, body: &Value) -> Reply {
    let request = match bind_and_validate(body) {
        Ok(request) => request,
        Err(error) => return error.into(),
    };
    if request.dry_run {
        let message = "the fake Blnk server does not project bulk dry runs";
        return ApiError::new("GEN_BAD_REQUEST", message).into();
    }

    let batch_id = new_id("bulk");
    let outcome = if request.skip_queue {
        apply_in_order(store, &request, &batch_id)
    } else {
        queue_each(store, &request, &batch_id);
        Ok(())
    };

    if request.run_async {
        let body = json!({
            "message": "Bulk transaction processing started",
            "batch_id": batch_id,
            "status": "processing",
        });
        return Reply::json(202, &body);
    }
    match outcome {
        Ok(()) => {
            let status = if request.inflight {
                "inflight"
            } else {
                "applied"
            };
            let body = json!({"batch_id": batch_id, "status": status, "transaction_count": request.items.len()});
            Reply::json(201, &body)
        }
        Err(message) => ApiError::classified(message, "GEN_BAD_REQUEST")
            .with_batch(&batch_id)
            .into(),
    }
}

fn bind_and_validate(body: &Value) -> Result<BulkRequest, ApiError> {
    let malformed = |reason: String| {
        ApiError::new(
            "GEN_MALFORMED_REQUEST",
            format!("Invalid request body: {reason}"),
        )
    };
    let Value::Object(object) = body else {
        return Err(malformed("expected a JSON object".to_owned()));
    };
    let flag = |key: &str| {
        bool_field(object, key).map_err(|wrong| malformed(format!("invalid field {}", wrong.field)))
    };
    let raw_items = match object.get("transactions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(malformed("invalid field transactions".to_owned())),
    };

    let mut items = Vec::with_capacity(raw_items.len());
    for item in &raw_items {
        let bound = TxnRequest::bind(item)
            .map_err(|wrong| malformed(format!("invalid field {}", wrong.field)))?;
        items.push(bound);
    }
    if items.is_empty() {
        return Err(ApiError::new(
            "TXN_BULK_EMPTY",
            "transactions cannot be empty",
        ));
    }
    if items.len() > MAX_BULK_ITEMS {
        let message = format!("too many transactions; max is {MAX_BULK_ITEMS}");
        return Err(ApiError::new("TXN_BULK_LIMIT_EXCEEDED", message));
    }
    for (index, item) in items.iter().enumerate() {
        if let Err(error) = item.validate() {
            let message = format!("transactions[{index}]: {}", error.message);
            let error = ApiError::new("TXN_VALIDATION_ERROR", message).legacy_errors();
            return Err(error.with_details(json!({ "index": index })));
        }
    }

    Ok(BulkRequest {
        items,
        atomic: flag("atomic")?,
        inflight: flag("inflight")?,
        skip_queue: flag("skip_queue")?,
        run_async: flag("run_async")?,
        dry_run: flag("dry_run")?,
    })
}

fn leg_posting(item: &TxnRequest, batch_id: &str, sequence: usize, inflight: bool) -> Posting {
    let mut extra = Map::new();
    extra.insert("sequence".into(), Value::from(sequence));
    item.to_posting(batch_id, inflight, extra)
}

/// Applies the legs in order. On a failure returns the full error text, after compensating
/// the earlier legs when the batch is atomic.
fn apply_in_order(store: &mut Store, request: &BulkRequest, batch_id: &str) -> Result<(), String> {
    for (index, item) in request.items.iter().enumerate() {
        let mut posting = leg_posting(item, batch_id, index + 1, request.inflight);
        let Err(refusal) = apply_now(store, &mut posting) else {
            continue;
        };
        let failure = format!(
            "failed to queue transaction {} (Reference: {}, Source: {}, Destination: {}, Amount: {}): {}",
            index + 1,
            posting.reference,
            posting.source,
            posting.destination,
            two_decimals(posting.amount_for_message(&refusal)),
            refusal.cause(&posting.reference),
        );
        if !request.atomic {
            return Err(format!(
                "{failure}. Previous transactions were not rolled back."
            ));
        }
        let action = if request.inflight {
            void_legs(store, batch_id);
            "voided"
        } else {
            refund_legs(store, batch_id);
            "refunded"
        };
        return Err(format!(
            "{failure}. All transactions in this batch have been {action}."
        ));
    }
    Ok(())
}

fn queue_each(store: &mut Store, request: &BulkRequest, batch_id: &str) {
    // NOTE: an item's own `"atomic": true` is not modelled. In Blnk it makes the workers
    // refund the item's siblings when the item is rejected, but here queued legs never
    // compensate each other.
    for (index, item) in request.items.iter().enumerate() {
        let posting = leg_posting(item, batch_id, index + 1, request.inflight);
        enqueue(store, &posting, Some(batch_id));
    }
}

fn legs_with_status(store: &Store, batch_id: &str, status: TxnStatus) -> Vec<String> {
    store
        .txns()
        .iter()
        .filter(|txn| txn.parent == batch_id && txn.status == status)
        .map(|txn| txn.id.clone())
        .collect()
}

fn void_legs(store: &mut Store, batch_id: &str) {
    for leg in legs_with_status(store, batch_id, TxnStatus::Inflight) {
        // A leg that cannot be voided keeps its hold; Blnk reports that only in its logs.
        let _ = settle_hold(store, &leg, InflightAction::Void, 0, new_id("ref"));
    }
}

/// Queues a reversing transaction for every settled leg, as Blnk's refund does: source and
/// destination swapped, overdraft allowed, the leg's metadata and description copied.
pub fn refund_legs(store: &mut Store, batch_id: &str) {
    for leg_id in legs_with_status(store, batch_id, TxnStatus::Applied) {
        let Some(leg) = store.txn(&leg_id).cloned() else {
            continue;
        };
        let refund = Posting {
            reference: format!("{}_refund", leg.id),
            parent: leg.id.clone(),
            source: leg.destination.clone(),
            destination: leg.source.clone(),
            currency: leg.currency.clone(),
            description: leg.description.clone(),
            amount: None,
            precise_amount: Some(leg.precise),
            precision: leg.precision,
            allow_overdraft: true,
            overdraft_limit: rust_decimal::Decimal::ZERO,
            inflight: false,
            effective_date: None,
            expiry: None,
            meta: leg.meta.clone(),
        };
        enqueue(store, &refund, None);
    }
}
