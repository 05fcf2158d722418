//! Holds: settling one hold, and `PUT /transactions/inflight/{id}`.
//!
//! A hold row keeps status `INFLIGHT` for ever. A commit writes an `APPLIED` child for the
//! committed part, a void writes a `VOID` child for the rest, and the hold remembers both so
//! that a later action gets Blnk's conflict errors.

use serde_json::Value;

use super::errors::{ApiError, Reply};
use super::records::{Txn, TxnStyle};
use super::store::{Movement, Store, new_hash};
use super::values::{
    WrongType, bool_field, integer_field, new_id, number_field, string_field, to_major_units,
    to_minor_units, two_decimals,
};
use super::views::TxnStatus;
use super::workers::{InflightJob, Job};

/// The two actions on a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightAction {
    Commit,
    Void,
}

impl InflightAction {
    pub fn as_str(self) -> &'static str {
        match self {
            InflightAction::Commit => "commit",
            InflightAction::Void => "void",
        }
    }

    fn parse(status: &str) -> Option<InflightAction> {
        match status {
            "commit" => Some(InflightAction::Commit),
            "void" => Some(InflightAction::Void),
            _ => None,
        }
    }
}

/// Commits `amount` minor units of a hold (zero: all that is left) or voids the rest, and
/// writes the child row under `reference`. Returns the child's id, or Blnk's cause text.
pub fn settle_hold(
    store: &mut Store,
    hold_id: &str,
    action: InflightAction,
    amount: i128,
    reference: String,
) -> Result<String, String> {
    let hold = store.txn(hold_id).ok_or("transaction not found")?.clone();
    if hold.status != TxnStatus::Inflight {
        return Err("transaction is not in inflight status".to_owned());
    }
    let amount = checked_amount(&hold, action, amount)?;

    let created_at = store.clock.stamp();
    let child = Txn {
        id: new_id("txn"),
        parent: hold.id.clone(),
        reference,
        status: match action {
            InflightAction::Commit => TxnStatus::Applied,
            InflightAction::Void => TxnStatus::Void,
        },
        precise: amount,
        created_at,
        effective_date: created_at,
        expiry: None,
        hash: new_hash(),
        committed: 0,
        voided: false,
        ..hold
    };
    let movement = match action {
        InflightAction::Commit => Movement::Commit,
        InflightAction::Void => Movement::Release,
    };
    store.move_funds(movement, &child.source, &child.destination, amount);
    if let Some(hold) = store.txn_mut(hold_id) {
        match action {
            InflightAction::Commit => hold.committed += amount,
            InflightAction::Void => hold.voided = true,
        }
    }
    Ok(store.insert_txn(child).id.clone())
}

/// Checks an action against the hold's state and returns the minor units it moves.
fn checked_amount(hold: &Txn, action: InflightAction, amount: i128) -> Result<i128, String> {
    if hold.voided {
        return Err("transaction has already been voided".to_owned());
    }
    let remaining = hold.remaining();
    if remaining == 0 {
        return Err(format!(
            "cannot {}. Transaction already committed",
            action.as_str()
        ));
    }
    if action == InflightAction::Void || amount == 0 {
        return Ok(remaining);
    }
    if amount < 0 {
        return Err("commit amount cannot be negative".to_owned());
    }
    let currency = &hold.currency;
    let requested = two_decimals(to_major_units(amount, hold.precision));
    if amount > hold.precise {
        let original = two_decimals(hold.major_amount());
        return Err(format!(
            "cannot commit more than the original transaction amount. Original: {currency}{original}, Requested: {currency}{requested}"
        ));
    }
    if amount > remaining {
        let available = two_decimals(to_major_units(remaining, hold.precision));
        return Err(format!(
            "cannot commit more than the remaining amount. Available: {currency}{available}, Requested: {currency}{requested}"
        ));
    }
    Ok(amount)
}

/// `PUT /transactions/inflight/{id}`.
pub fn put_inflight(store: &mut Store, id: &str, body: &Value) -> Reply {
    let request = match InflightRequest::bind(body) {
        Ok(request) => request,
        Err(wrong) => {
            let message = format!("json: cannot unmarshal the value of field {}", wrong.field);
            return ApiError::new("GEN_MALFORMED_REQUEST", message).into();
        }
    };
    let Some(action) = InflightAction::parse(&request.status) else {
        let message = "status not supported. use either commit or void";
        return ApiError::new("TXN_INVALID_STATUS_ACTION", message).into();
    };
    if request.dry_run {
        let message = "the fake Blnk server does not project inflight dry runs";
        return ApiError::new("GEN_BAD_REQUEST", message).into();
    }
    let amount = match request.minor_amount(store, id) {
        Ok(amount) => amount,
        Err(error) => return error.into(),
    };

    if request.skip_queue {
        settle_now(store, id, action, amount)
    } else {
        queue_action(store, id, action, amount)
    }
}

fn settle_now(store: &mut Store, id: &str, action: InflightAction, amount: i128) -> Reply {
    let holds = hold_targets(store, id);
    if holds.is_empty() {
        let message = format!("no transaction to {}", action.as_str());
        return ApiError::new("TXN_NOT_INFLIGHT", message).into();
    }
    let mut children = Vec::new();
    let mut causes = Vec::new();
    for hold in &holds {
        match settle_hold(store, hold, action, amount, new_id("ref")) {
            Ok(child) => children.push(child),
            Err(cause) => causes.push(cause),
        }
    }
    if !causes.is_empty() {
        let message = format!("error occurred during processing: [{}]", causes.join(" "));
        return ApiError::classified(message, "GEN_BAD_REQUEST").into();
    }
    match children.first().and_then(|child| store.txn(child)) {
        Some(child) => Reply::json(200, &child.to_json(&TxnStyle::Settlement)),
        None => ApiError::new("GEN_INTERNAL", "internal server error").into(),
    }
}

/// Accepts an action for the workers after Blnk's cheap checks and responds with the hold.
fn queue_action(store: &mut Store, id: &str, action: InflightAction, amount: i128) -> Reply {
    match accept_queued_action(store, id, action, amount) {
        Ok(hold) => {
            let mut shown = hold;
            shown.id = id.to_owned();
            Reply::json(200, &shown.to_json(&TxnStyle::Listed).mark_queued())
        }
        Err(error) => error.into(),
    }
}

pub fn accept_queued_action(
    store: &mut Store,
    id: &str,
    action: InflightAction,
    amount: i128,
) -> Result<Txn, ApiError> {
    let holds = hold_targets(store, id);
    let Some(first) = holds.first().and_then(|hold| store.txn(hold)).cloned() else {
        let cause = if store.txn(id).is_some() {
            "transaction is not in inflight status".to_owned()
        } else {
            format!("Transaction with ID '{id}' not found")
        };
        return Err(ApiError::classified(cause, "GEN_BAD_REQUEST"));
    };
    if holds.len() == 1 {
        checked_amount(&first, action, amount)
            .map_err(|cause| ApiError::classified(cause, "GEN_BAD_REQUEST"))?;
    }
    if has_pending_action(store, &holds) {
        let message = "a commit or void is already queued for this transaction";
        return Err(ApiError::new("GEN_CONFLICT", message));
    }
    store.jobs.push_back(Job::Inflight(InflightJob {
        holds,
        action,
        amount,
        action_id: new_id("act"),
    }));
    Ok(first)
}

fn has_pending_action(store: &Store, holds: &[String]) -> bool {
    store.jobs.iter().any(|job| match job {
        Job::Inflight(pending) => pending.holds.iter().any(|hold| holds.contains(hold)),
        Job::Queued(_) => false,
    })
}

/// Returns the `INFLIGHT` rows an id names: the hold itself, the legs of a bulk, or the
/// applied child of a queued hold.
fn hold_targets(store: &Store, id: &str) -> Vec<String> {
    store
        .txns()
        .iter()
        .filter(|txn| txn.status == TxnStatus::Inflight)
        .filter(|txn| {
            txn.id == id
                || txn.parent == id
                || txn
                    .meta
                    .get("QUEUED_PARENT_TRANSACTION")
                    .and_then(Value::as_str)
                    == Some(id)
        })
        .map(|txn| txn.id.clone())
        .collect()
}

/// Returns the precision Blnk uses to scale a major-unit commit amount: the hold's own,
/// else 1.
pub fn hold_precision(store: &Store, id: &str) -> u64 {
    store.txn(id).map_or(1, |txn| txn.precision)
}

/// The body of `PUT /transactions/inflight/{id}`.
struct InflightRequest {
    status: String,
    amount: Option<rust_decimal::Decimal>,
    precise_amount: Option<i128>,
    skip_queue: bool,
    dry_run: bool,
}

impl InflightRequest {
    fn bind(body: &Value) -> Result<InflightRequest, WrongType> {
        let Value::Object(object) = body else {
            return Err(WrongType {
                field: "body".into(),
            });
        };
        Ok(InflightRequest {
            status: string_field(object, "status")?,
            amount: number_field(object, "amount")?,
            precise_amount: integer_field(object, "precise_amount")?,
            skip_queue: bool_field(object, "skip_queue")?,
            dry_run: bool_field(object, "dry_run")?,
        })
    }

    /// Minor units to commit: `precise_amount` wins; `amount` is scaled by the hold's
    /// precision; neither means everything still held.
    fn minor_amount(&self, store: &Store, id: &str) -> Result<i128, ApiError> {
        if let Some(precise) = self.precise_amount {
            if precise <= 0 {
                return Err(ApiError::new(
                    "TXN_INVALID_AMOUNT",
                    "precise_amount must be positive",
                ));
            }
            return Ok(precise);
        }
        let amount = self.amount.unwrap_or_default();
        to_minor_units(amount, hold_precision(store, id))
            .ok_or_else(|| ApiError::new("GEN_BAD_REQUEST", "commit amount is too large"))
    }
}
