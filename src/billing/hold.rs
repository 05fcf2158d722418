//! Holds: reserving a request's quote before upstream is called, and voiding what is left of
//! the hold afterwards. The hold's outbox entry is written before the hold is posted, so a
//! crash at any point leaves a record from which the worker can find and void it.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::accounts::Account;
use crate::ledger::{BlnkClient, LedgerError, NewTransaction, VoidOutcome};
use crate::money::{Nanos, USD_PRECISION, Usd};

use super::{Biller, Detachable, HoldRecord, hold_amount, hold_reference};

/// A hold that reserves a request's quote.
#[derive(Clone, Debug)]
pub struct Hold {
    pub outbox_id: i64,
    pub record: HoldRecord,
    pub amount: Nanos,
}

/// A failure to place a hold.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("the wallet cannot cover the quote")]
    Refused,
    #[error("the ledger is unavailable: {0}")]
    Unavailable(LedgerError),
    #[error("the ledger rejected the hold: {0}")]
    Ledger(LedgerError),
    #[error("the outbox could not record the hold: {0}")]
    Outbox(String),
}

/// A placed hold on its way to its request. Dropped unclaimed, as when its request was
/// cancelled while Blnk was placing it, it voids the hold.
pub struct PlacedHold {
    hold: Option<Box<Hold>>,
    biller: Biller,
}

impl PlacedHold {
    /// Hands the hold to its request, which voids it when it ends.
    pub fn claim(mut self) -> Option<Box<Hold>> {
        self.hold.take()
    }
}

impl Drop for PlacedHold {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            tracing::info!(request_id = %hold.record.request_id, "request cancelled while its hold was placed; voiding the hold");
            self.biller.release_hold(*hold);
        }
    }
}

impl Biller {
    /// Places a hold as [`Biller::place_hold`] does, in work that a cancelled request does not
    /// stop. Otherwise a client that leaves while Blnk is placing the hold would leave the
    /// hold blocking its funds until it expires.
    pub fn reserve(
        &self,
        account: &Account,
        request_id: &str,
        quote: Usd,
        limit: Usd,
    ) -> Detachable<impl Future<Output = Result<PlacedHold, HoldError>> + use<>> {
        let biller = self.clone();
        let account = account.clone();
        let request_id = request_id.to_string();
        self.detachable("place-hold", async move {
            let hold = biller
                .place_hold(&account, &request_id, quote, limit)
                .await?;
            Ok(PlacedHold {
                hold: Some(Box::new(hold)),
                biller,
            })
        })
    }

    /// Reserves `quote` on the customer's wallet with a hold that expires after the longest
    /// possible request. The hold's reference is written to the outbox before the hold is
    /// posted, so a crash at any point leaves a record to void it.
    pub async fn place_hold(
        &self,
        account: &Account,
        request_id: &str,
        quote: Usd,
        limit: Usd,
    ) -> Result<Hold, HoldError> {
        let record = HoldRecord {
            request_id: request_id.to_string(),
            customer_id: account.customer.to_string(),
            reference: hold_reference(request_id),
            transaction_id: None,
        };
        // The request itself voids the hold when it ends. The worker steps in only after the
        // hold's whole lifetime, because the request can no longer be running by then.
        let expiry = Utc::now() + self.hold_lifetime;
        let entry = record
            .to_outbox_entry(expiry)
            .map_err(|e| HoldError::Outbox(e.to_string()))?;
        let outbox_id = self
            .outbox
            .insert_new(entry)
            .await
            .map_err(|e| HoldError::Outbox(e.to_string()))?;

        let amount = hold_amount(quote);
        let txn = NewTransaction {
            precise_amount: amount.0,
            precision: USD_PRECISION,
            currency: "USD".into(),
            source: account.usd_balance_id.clone(),
            destination: self.system.revenue.clone(),
            reference: record.reference.clone(),
            description: format!("tollgate hold for request {request_id}"),
            allow_overdraft: !limit.is_zero(),
            overdraft_limit: (!limit.is_zero()).then(|| limit.as_decimal()),
            inflight: true,
            inflight_expiry_date: Some(expiry),
            effective_date: None,
            meta_data: hold_metadata(&record),
        };
        match self.blnk.post_transaction(&txn).await {
            Ok(posted) => Ok(Hold {
                outbox_id,
                record: HoldRecord {
                    transaction_id: Some(posted.transaction_id),
                    ..record
                },
                amount,
            }),
            Err(error) => Err(self.hold_failed(outbox_id, error).await),
        }
    }

    async fn hold_failed(&self, outbox_id: i64, error: LedgerError) -> HoldError {
        let refused = matches!(
            error,
            LedgerError::InsufficientFunds { .. } | LedgerError::OverdraftLimitExceeded { .. }
        );
        // A refused or rejected hold wrote nothing. One that may exist (no response, or a
        // response whose body tollgate could not read) is not used by the request, so the
        // worker looks it up and voids it soon.
        if refused || !may_exist(&error) {
            self.finish_entry(outbox_id);
        } else {
            let look_up_at = Utc::now() + self.ledger_timeout * 2;
            if let Err(failure) = self
                .outbox
                .record_failure(outbox_id, &error.to_string(), look_up_at)
                .await
            {
                tracing::error!(outbox_id, error = %failure, "outbox update failed; the hold is voided at its expiry");
            }
        }

        if refused {
            HoldError::Refused
        } else if error.is_unavailable() {
            HoldError::Unavailable(error)
        } else {
            HoldError::Ledger(error)
        }
    }

    /// Leaves a hold in place while its request's charge is pending: voiding it now would free
    /// the funds the charge is about to take, and let other requests spend them. The worker
    /// voids it once the charge is recorded, checking from twice the ledger timeout on.
    pub async fn release_hold_after_charge(&self, hold: &Hold) {
        let check_at = Utc::now() + self.ledger_timeout * 2;
        let waiting = "waiting for the request's charge to be recorded";
        if let Err(error) = self
            .outbox
            .record_failure(hold.outbox_id, waiting, check_at)
            .await
        {
            tracing::error!(outbox_id = hold.outbox_id, %error, "outbox update failed; the hold is voided at its expiry");
        }
    }

    /// Voids a hold's remainder in a background task. On failure the outbox entry becomes due
    /// at once, and the worker retries it with backoff.
    pub fn release_hold(&self, hold: Hold) {
        let biller = self.clone();
        self.spawn_tracked("release-hold", async move {
            match release(&biller.blnk, &hold.record).await {
                Ok(()) => biller.finish_entry(hold.outbox_id),
                Err(error) => {
                    tracing::warn!(request_id = %hold.record.request_id, reference = %hold.record.reference,
                        %error, "voiding the hold failed; the outbox worker will retry");
                    // An unvoided hold blocks the customer's funds, so the retry starts soon.
                    let retry_at = Utc::now() + Duration::from_secs(1);
                    if let Err(error) = biller.outbox.record_failure(hold.outbox_id, &error.to_string(), retry_at).await {
                        tracing::error!(outbox_id = hold.outbox_id, %error, "outbox update failed");
                    }
                }
            }
        });
    }
}

/// Returns whether a hold whose post failed with `error` may exist in Blnk all the same: Blnk
/// did not respond or failed, responded 2xx with a body tollgate could not read, or reports the
/// hold's reference as taken already.
fn may_exist(error: &LedgerError) -> bool {
    error.is_unavailable()
        || matches!(
            error,
            LedgerError::InvalidResponse { .. }
                | LedgerError::DuplicateReference { .. }
                | LedgerError::AlreadyExists { .. }
        )
}

/// Voids a hold, finding its id by reference when the request did not learn it. A hold that
/// does not exist, or that is already voided (also by its expiry) or committed, counts as done.
pub(crate) async fn release(blnk: &BlnkClient, hold: &HoldRecord) -> Result<(), LedgerError> {
    let id = match &hold.transaction_id {
        Some(id) => id.clone(),
        None => match blnk.transaction_by_reference(&hold.reference).await? {
            Some(txn) => txn.transaction_id,
            None => return Ok(()),
        },
    };
    match blnk.void_inflight(&id).await {
        Ok(VoidOutcome::Voided(_) | VoidOutcome::AlreadyVoided | VoidOutcome::AlreadyCommitted) => {
            Ok(())
        }
        Err(LedgerError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

fn hold_metadata(record: &HoldRecord) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert(
        "tollgate_customer_id".into(),
        Value::from(record.customer_id.as_str()),
    );
    map.insert(
        "tollgate_request_id".into(),
        Value::from(record.request_id.as_str()),
    );
    map.insert("tollgate_leg".into(), Value::from("hold"));
    map
}
