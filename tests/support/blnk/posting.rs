//! Recording one movement: applied at once (`skip_queue`) or queued for the workers.
//!
//! The synchronous path follows Blnk's order of checks: `@` names are resolved (and their
//! balances created) first, then the reference is checked, then the balances are looked up,
//! then the amount and the funds. A failure writes no transaction row.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::records::Txn;
use super::store::{FundsRefusal, Movement, Store, new_hash};
use super::values::{new_id, to_major_units, to_minor_units};
use super::views::TxnStatus;
use super::workers::{Job, QueuedJob};

/// One movement to record, with the amount not yet converted to minor units.
#[derive(Debug, Clone)]
pub struct Posting {
    pub reference: String,
    pub parent: String,
    pub source: String,
    pub destination: String,
    pub currency: String,
    pub description: String,
    pub amount: Option<Decimal>,
    pub precise_amount: Option<i128>,
    pub precision: u64,
    pub allow_overdraft: bool,
    pub overdraft_limit: Decimal,
    pub inflight: bool,
    pub effective_date: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub meta: Map<String, Value>,
}

/// Why a synchronous posting was refused. Nothing was written except `@` balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    DuplicateReference,
    BalanceNotFound(String),
    NotPositive,
    AmountTooLarge,
    Funds(FundsRefusal),
}

impl Posting {
    /// Blnk's `ApplyPrecision`: a positive `precise_amount` wins, otherwise `amount` times
    /// the precision, rounded to the nearest minor unit.
    pub fn precise(&self) -> Option<i128> {
        match self.precise_amount {
            Some(precise) if precise > 0 => Some(precise),
            _ => to_minor_units(self.amount.unwrap_or_default(), self.precision),
        }
    }

    /// Returns the amount Blnk prints in a bulk failure: the request's `amount`, or the converted
    /// amount once the failing step had converted it, else zero.
    pub fn amount_for_message(&self, refusal: &Refusal) -> Decimal {
        if let Some(amount) = self.amount {
            return amount;
        }
        match refusal {
            Refusal::Funds(_) | Refusal::NotPositive => {
                to_major_units(self.precise().unwrap_or_default(), self.precision)
            }
            _ => Decimal::ZERO,
        }
    }

    /// Metadata stored on the row: the request's, plus the `allow_overdraft` flag Blnk keeps.
    fn stored_meta(&self) -> Map<String, Value> {
        let mut meta = self.meta.clone();
        if self.allow_overdraft {
            meta.insert("allow_overdraft".into(), Value::Bool(true));
        }
        meta
    }
}

impl Refusal {
    /// Returns the error text Blnk produces for this refusal.
    pub fn cause(&self, reference: &str) -> String {
        match self {
            Refusal::DuplicateReference => {
                format!("transaction validation failed: reference {reference} has already been used")
            }
            Refusal::BalanceNotFound(id) => format!("Balance with ID '{id}' not found"),
            Refusal::NotPositive => {
                "failed to apply transaction to balances: transaction precise amount must be positive".to_owned()
            }
            Refusal::AmountTooLarge => "failed to apply transaction to balances: amount is too large".to_owned(),
            Refusal::Funds(FundsRefusal::Insufficient) => {
                "failed to apply transaction to balances: insufficient funds in source balance".to_owned()
            }
            Refusal::Funds(FundsRefusal::OverdraftLimit) => {
                "failed to apply transaction to balances: transaction exceeds overdraft limit".to_owned()
            }
        }
    }
}

/// Applies a posting now. On success returns the new row's id; the source and destination
/// fields of `posting` are replaced by the resolved balance ids either way.
pub fn apply_now(store: &mut Store, posting: &mut Posting) -> Result<String, Refusal> {
    posting.source = store.resolve_endpoint(&posting.source, &posting.currency);
    posting.destination = store.resolve_endpoint(&posting.destination, &posting.currency);

    if store.reference_used(&posting.reference) {
        return Err(Refusal::DuplicateReference);
    }
    for id in [&posting.source, &posting.destination] {
        if store.balance(id).is_none() {
            return Err(Refusal::BalanceNotFound(id.clone()));
        }
    }
    let precise = posting.precise().ok_or(Refusal::AmountTooLarge)?;
    if precise <= 0 {
        return Err(Refusal::NotPositive);
    }
    store
        .check_funds(
            &posting.source,
            precise,
            posting.allow_overdraft,
            posting.overdraft_limit,
            posting.precision,
        )
        .map_err(Refusal::Funds)?;

    let created_at = store.clock.stamp();
    let row = Txn {
        id: new_id("txn"),
        parent: posting.parent.clone(),
        reference: posting.reference.clone(),
        source: posting.source.clone(),
        destination: posting.destination.clone(),
        currency: posting.currency.clone(),
        description: posting.description.clone(),
        status: if posting.inflight {
            TxnStatus::Inflight
        } else {
            TxnStatus::Applied
        },
        precise,
        precision: posting.precision,
        created_at,
        effective_date: posting.effective_date.unwrap_or(created_at),
        expiry: posting.expiry.filter(|_| posting.inflight),
        meta: posting.stored_meta(),
        hash: new_hash(),
        committed: 0,
        voided: false,
    };
    let movement = if posting.inflight {
        Movement::Hold
    } else {
        Movement::Settle
    };
    store.move_funds(movement, &row.source, &row.destination, precise);
    Ok(store.insert_txn(row).id.clone())
}

/// Queues a posting for the workers and returns the row for the API response.
///
/// Like Blnk, the response row is built before anything is checked: a reused reference or an
/// unknown balance id leaves no row at all, so the returned id then never exists.
/// `queued_parent` becomes `meta_data.QUEUED_PARENT_TRANSACTION`; `None` means the row itself.
pub fn enqueue(store: &mut Store, posting: &Posting, queued_parent: Option<&str>) -> Txn {
    let id = new_id("txn");
    let created_at = store.clock.stamp();
    let mut meta = posting.stored_meta();
    let parent_marker = queued_parent.unwrap_or(&id).to_owned();
    meta.insert(
        "QUEUED_PARENT_TRANSACTION".into(),
        Value::from(parent_marker),
    );

    let response_row = Txn {
        id,
        parent: posting.parent.clone(),
        reference: posting.reference.clone(),
        source: posting.source.clone(),
        destination: posting.destination.clone(),
        currency: posting.currency.clone(),
        description: posting.description.clone(),
        status: TxnStatus::Queued,
        precise: posting.precise().unwrap_or_default(),
        precision: posting.precision,
        created_at,
        effective_date: posting.effective_date.unwrap_or(created_at),
        expiry: posting.expiry.filter(|_| posting.inflight),
        meta,
        hash: new_hash(),
        committed: 0,
        voided: false,
    };
    store_queued_row(store, posting, &response_row);
    response_row
}

fn store_queued_row(store: &mut Store, posting: &Posting, response_row: &Txn) {
    if store.reference_used(&response_row.reference) {
        return;
    }
    let source = store.resolve_endpoint(&response_row.source, &response_row.currency);
    let destination = store.resolve_endpoint(&response_row.destination, &response_row.currency);
    if store.balance(&source).is_none() || store.balance(&destination).is_none() {
        return;
    }

    let mut row = response_row.clone();
    let pair_key = format!("{source}|{destination}|{}", row.currency);
    row.meta.insert("queue_lane".into(), Value::from("normal"));
    row.meta
        .insert("queue_pair_key".into(), Value::from(pair_key));
    row.source = source;
    row.destination = destination;

    let job = QueuedJob {
        row_id: row.id.clone(),
        allow_overdraft: posting.allow_overdraft,
        overdraft_limit: posting.overdraft_limit,
        inflight: posting.inflight,
    };
    store.insert_txn(row);
    store.jobs.push_back(Job::Queued(job));
}
