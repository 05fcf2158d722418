//! Billing: reserving a request's worst case with a hold, recording its charge durably,
//! and releasing the hold.
//!
//! Every ledger write tollgate owes goes through the outbox first, so a crash or a Blnk
//! outage delays a charge but never loses it; [`worker`] finishes what the request path
//! could not.

pub mod charge;
pub mod metadata;
pub mod request;
pub mod settle;
pub mod worker;

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::accounts::Account;
use crate::ledger::{BlnkClient, LedgerError, NewTransaction, VoidOutcome};
use crate::money::{Nanos, USD_PRECISION, Usd};
use crate::outbox::{EntryKind, Outbox};
use crate::task::spawn_named;

pub use charge::{ChargeRecord, HoldRecord, SystemBalances, hold_reference, leg_reference};
pub use settle::{SettleError, Settled};

/// Whether a charge was recorded before the response completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeStatus {
    Recorded,
    /// Kept in the outbox; the worker posts it when Blnk answers.
    Pending,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Recorded => "recorded",
            ChargeStatus::Pending => "pending",
        }
    }
}

/// A hold that reserves a request's quote.
#[derive(Clone, Debug)]
pub struct Hold {
    pub outbox_id: i64,
    pub record: HoldRecord,
    pub amount: Nanos,
}

/// Why a hold could not be placed.
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

/// Places holds and records charges for the proxy.
#[derive(Clone)]
pub struct Biller {
    blnk: BlnkClient,
    outbox: Outbox,
    system: SystemBalances,
    charge_timeout: Duration,
    /// Timeout of one ledger call; a charge entry becomes due for the worker after it.
    ledger_timeout: Duration,
    /// How long after a request starts its hold is known to be unused, so the worker may void it.
    hold_lifetime: Duration,
}

impl Biller {
    pub fn new(
        blnk: BlnkClient,
        outbox: Outbox,
        system: SystemBalances,
        charge_timeout: Duration,
        ledger_timeout: Duration,
        hold_lifetime: Duration,
    ) -> Self {
        Biller {
            blnk,
            outbox,
            system,
            charge_timeout,
            ledger_timeout,
            hold_lifetime,
        }
    }

    pub fn blnk(&self) -> &BlnkClient {
        &self.blnk
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn system(&self) -> &SystemBalances {
        &self.system
    }

    /// Reserves `quote` on the customer's wallet. The hold's reference is written to the
    /// outbox before the hold is posted, so a crash at any point leaves a record to void it.
    pub async fn place_hold(&self, account: &Account, request_id: &str, quote: Usd, limit: Usd) -> Result<Hold, HoldError> {
        let record = HoldRecord {
            request_id: request_id.to_string(),
            customer_id: account.customer.to_string(),
            reference: hold_reference(request_id),
            transaction_id: None,
        };
        let payload = serde_json::to_value(&record).map_err(|e| HoldError::Outbox(e.to_string()))?;
        let not_before = Utc::now() + self.hold_lifetime;
        let outbox_id = self
            .outbox
            .insert_at(request_id, EntryKind::VoidHold, &payload, not_before)
            .await
            .map_err(|e| HoldError::Outbox(e.to_string()))?;

        let amount = hold_amount(quote);
        let expiry = Utc::now() + self.hold_lifetime;
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
        // A refused or rejected hold wrote nothing; an unanswered one may exist, so its
        // outbox entry stays for the worker to look up and void.
        if refused || !error.is_unavailable() {
            self.finish_entry(outbox_id).await;
        }
        if refused {
            HoldError::Refused
        } else if error.is_unavailable() {
            HoldError::Unavailable(error)
        } else {
            HoldError::Ledger(error)
        }
    }

    /// Voids a hold's remainder in the background; the worker retries on failure.
    pub fn release_hold(&self, hold: Hold) {
        let biller = self.clone();
        spawn_named("release-hold", async move {
            match release(&biller.blnk, &hold.record).await {
                Ok(()) => biller.finish_entry(hold.outbox_id).await,
                Err(error) => {
                    tracing::warn!(request_id = %hold.record.request_id, reference = %hold.record.reference,
                        %error, "voiding the hold failed; the outbox worker will retry");
                    // Make the entry due soon: an unvoided hold blocks the customer's funds.
                    let retry_at = Utc::now() + Duration::from_secs(1);
                    if let Err(error) = biller.outbox.record_failure(hold.outbox_id, &error.to_string(), retry_at).await {
                        tracing::error!(outbox_id = hold.outbox_id, %error, "outbox update failed");
                    }
                }
            }
        });
    }

    /// Records a charge: written to the outbox, then posted. Waits at most `charge_timeout`
    /// for Blnk; the post itself continues in the background and the worker retries a failure.
    pub async fn charge(&self, record: ChargeRecord) -> ChargeStatus {
        if record.is_empty() {
            return ChargeStatus::Recorded;
        }
        let payload = match serde_json::to_value(&record) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(request_id = %record.request_id, %error, "charge could not be serialised");
                return ChargeStatus::Pending;
            }
        };
        // The worker must not race the post below, so the entry becomes due only after the
        // post's own timeout has passed.
        let not_before = Utc::now() + self.ledger_timeout + Duration::from_secs(1);
        let outbox_id = match self.outbox.insert_at(&record.request_id, EntryKind::Charge, &payload, not_before).await {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(request_id = %record.request_id, %error,
                    "the outbox could not record the charge; posting it without a durable copy");
                -1
            }
        };

        let biller = self.clone();
        let post = spawn_named("post-charge", async move { biller.settle_entry(outbox_id, record).await });
        match tokio::time::timeout(self.charge_timeout, post).await {
            Ok(Ok(true)) => ChargeStatus::Recorded,
            _ => ChargeStatus::Pending,
        }
    }

    /// Posts a charge once (plus one new attempt if the previous attempt is known not to stand)
    /// and updates its outbox entry. Returns true when the charge is recorded.
    pub(crate) async fn settle_entry(&self, outbox_id: i64, mut record: ChargeRecord) -> bool {
        for _ in 0..2 {
            match settle::post_charge(&self.blnk, &self.system, &record).await {
                Ok(settled) => {
                    tracing::debug!(request_id = %record.request_id, attempt = record.attempt, ?settled, "charge recorded");
                    self.finish_entry(outbox_id).await;
                    return true;
                }
                Err(SettleError::NewAttempt { attempt, detail }) => {
                    tracing::warn!(request_id = %record.request_id, attempt, %detail, "posting the charge again with new references");
                    record.attempt = attempt + 1;
                    if let Ok(payload) = serde_json::to_value(&record)
                        && outbox_id >= 0
                        && let Err(error) = self.outbox.update_payload(outbox_id, &payload).await
                    {
                        tracing::error!(request_id = %record.request_id, %error, "outbox update failed");
                        return false;
                    }
                }
                Err(SettleError::Retry(detail)) => {
                    tracing::warn!(request_id = %record.request_id, %detail, "charge not recorded yet; it stays in the outbox");
                    return false;
                }
                Err(SettleError::Dead(reason)) => {
                    tracing::error!(request_id = %record.request_id, %reason, "Blnk rejected the charge; moved to the dead-letter list");
                    if outbox_id >= 0 && let Err(error) = self.outbox.dead_letter(outbox_id, &reason).await {
                        tracing::error!(request_id = %record.request_id, %error, "outbox update failed");
                    }
                    return false;
                }
            }
        }
        false
    }

    async fn finish_entry(&self, outbox_id: i64) {
        if outbox_id < 0 {
            return;
        }
        if let Err(error) = self.outbox.mark_done(outbox_id).await {
            tracing::error!(outbox_id, %error, "marking an outbox entry done failed; it will be checked again");
        }
    }
}

/// Voids a hold, finding its id by reference when the request did not learn it.
pub(crate) async fn release(blnk: &BlnkClient, hold: &HoldRecord) -> Result<(), LedgerError> {
    let id = match &hold.transaction_id {
        Some(id) => id.clone(),
        None => match blnk.transaction_by_reference(&hold.reference).await? {
            Some(txn) => txn.transaction_id,
            // The hold was never applied: nothing to void.
            None => return Ok(()),
        },
    };
    match blnk.void_inflight(&id).await {
        Ok(VoidOutcome::Voided(_) | VoidOutcome::AlreadyVoided | VoidOutcome::AlreadyCommitted) => Ok(()),
        Err(LedgerError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The hold amount: the quote rounded up to whole nano-dollars, at least one.
pub fn hold_amount(quote: Usd) -> Nanos {
    let ceiling = Usd::new(quote.as_decimal().round_dp_with_strategy(
        crate::money::USD_SCALE,
        rust_decimal::RoundingStrategy::AwayFromZero,
    ));
    Nanos(ceiling.to_nanos().0.max(1))
}

fn hold_metadata(record: &HoldRecord) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("tollgate_customer_id".into(), Value::from(record.customer_id.as_str()));
    map.insert("tollgate_request_id".into(), Value::from(record.request_id.as_str()));
    map.insert("tollgate_leg".into(), Value::from("hold"));
    map
}

/// When a request started at `start` is over at the latest, for hold expiry.
pub fn hold_lifetime(
    first_byte_timeout: Duration,
    max_stream_duration: Duration,
    drain_timeout: Duration,
    charge_timeout: Duration,
    margin: Duration,
) -> Duration {
    first_byte_timeout.max(max_stream_duration) + drain_timeout + charge_timeout + margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn hold_amount_rounds_up() {
        assert_eq!(hold_amount(Usd::new(dec!(0.0000000001))), Nanos(1));
        assert_eq!(hold_amount(Usd::new(dec!(0.0000012341))), Nanos(1235));
        assert_eq!(hold_amount(Usd::new(dec!(0.5))), Nanos(500_000_000));
        assert_eq!(hold_amount(Usd::ZERO), Nanos(1));
    }
}
