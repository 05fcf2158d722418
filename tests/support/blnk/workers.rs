//! The work Blnk's separate `blnk workers` process does: applying queued rows (including the
//! refunds of a failed atomic bulk), queued commits and voids, and hold expiry.
//!
//! The fake never does this on its own. A test calls `FakeBlnk::run_workers`, which handles
//! every queued job and then voids the holds whose expiry the manual clock has passed.

use rust_decimal::Decimal;
use serde_json::Value;

use super::inflight::{InflightAction, settle_hold};
use super::records::Txn;
use super::store::{FundsRefusal, Movement, Store};
use super::values::new_id;
use super::views::TxnStatus;

/// A unit of queued work.
#[derive(Debug, Clone)]
pub enum Job {
    /// A `QUEUED` row waiting to be applied or rejected.
    Queued(QueuedJob),
    /// A commit or void sent without `skip_queue`.
    Inflight(InflightJob),
}

#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub row_id: String,
    pub allow_overdraft: bool,
    pub overdraft_limit: Decimal,
    pub inflight: bool,
}

#[derive(Debug, Clone)]
pub struct InflightJob {
    /// The hold ids the action was accepted for (a batch id is expanded at request time).
    pub holds: Vec<String>,
    pub action: InflightAction,
    /// Minor units to commit; zero commits everything still held.
    pub amount: i128,
    pub action_id: String,
}

/// What one `run_workers` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Queued rows applied (status `APPLIED` or `INFLIGHT`).
    pub applied: usize,
    /// Queued rows rejected (status `REJECTED`).
    pub rejected: usize,
    /// Queued commits and voids carried out.
    pub inflight_actions: usize,
    /// Holds voided because their expiry date had passed.
    pub expired_holds: usize,
}

/// Handles every queued job in arrival order, then voids each hold whose expiry is due.
pub fn run_workers(store: &mut Store) -> WorkerReport {
    let mut report = WorkerReport::default();
    while let Some(job) = store.jobs.pop_front() {
        match job {
            Job::Queued(queued) => match apply_queued(store, &queued) {
                Some(true) => report.applied += 1,
                Some(false) => report.rejected += 1,
                None => {}
            },
            Job::Inflight(action) => {
                for hold in &action.holds {
                    let reference =
                        format!("{hold}_{}_{}", action.action.as_str(), action.action_id);
                    if settle_hold(store, hold, action.action, action.amount, reference).is_ok() {
                        report.inflight_actions += 1;
                    }
                }
            }
        }
    }
    report.expired_holds = expire_holds(store);
    report
}

/// Applies one queued row, writing its `<reference>_q` child. Returns whether it applied,
/// or `None` when the row is gone.
fn apply_queued(store: &mut Store, job: &QueuedJob) -> Option<bool> {
    let row = store.txn(&job.row_id)?.clone();
    let outcome = if row.precise <= 0 {
        Err("failed to apply transaction to balances: transaction precise amount must be positive")
    } else {
        store
            .check_funds(
                &row.source,
                row.precise,
                job.allow_overdraft,
                job.overdraft_limit,
                row.precision,
            )
            .map_err(|refusal| match refusal {
                FundsRefusal::Insufficient => {
                    "failed to apply transaction to balances: insufficient funds in source balance"
                }
                FundsRefusal::OverdraftLimit => {
                    "failed to apply transaction to balances: transaction exceeds overdraft limit"
                }
            })
    };

    let mut child = Txn {
        id: new_id("txn"),
        parent: row.id.clone(),
        reference: format!("{}_q", row.reference),
        status: if job.inflight {
            TxnStatus::Inflight
        } else {
            TxnStatus::Applied
        },
        ..row
    };
    if store.reference_used(&child.reference) {
        return None;
    }
    let applied = match outcome {
        Ok(()) => {
            let movement = if job.inflight {
                Movement::Hold
            } else {
                Movement::Settle
            };
            store.move_funds(movement, &child.source, &child.destination, child.precise);
            true
        }
        Err(reason) => {
            child.status = TxnStatus::Rejected;
            child.expiry = None;
            child
                .meta
                .insert("blnk_rejection_reason".into(), Value::from(reason));
            false
        }
    };
    store.insert_txn(child);
    Some(applied)
}

/// Voids every open hold whose expiry is at or before the clock.
fn expire_holds(store: &mut Store) -> usize {
    let now = store.clock.now();
    let due: Vec<String> = store
        .txns()
        .iter()
        .filter(|txn| txn.status == TxnStatus::Inflight && txn.remaining() > 0)
        .filter(|txn| txn.expiry.is_some_and(|expiry| expiry <= now))
        .map(|txn| txn.id.clone())
        .collect();
    due.iter()
        .filter(|hold| settle_hold(store, hold, InflightAction::Void, 0, new_id("ref")).is_ok())
        .count()
}
