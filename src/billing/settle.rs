//! Posting a charge to Blnk and deciding whether it stands. Used by the request path and by
//! the outbox worker alike, so a retry follows exactly the same rules as the first post.
//!
//! A 409 on re-posting the same references does not prove a charge stands: after a
//! compensated failure Blnk reverses the applied legs with `<txn_id>_refund` rows but keeps
//! the references burnt. A charge stands only when every leg reads APPLIED and none has a
//! refund row; only once the previous attempt is known not to stand does a new attempt post
//! fresh references.

use crate::ledger::{BlnkClient, LedgerError, TransactionStatus};

use super::charge::{ChargeRecord, SystemBalances};

/// A charge that is now recorded in Blnk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// This post applied the legs.
    Applied,
    /// An earlier post of the same attempt had already applied them.
    AlreadyStood,
    /// Both legs are zero: nothing to post.
    Nothing,
}

/// Why a charge is not recorded yet.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The outcome is unknown or Blnk failed transiently: post the same attempt again later.
    #[error("{0}")]
    Retry(String),
    /// The attempt was reversed or never applied: post the next attempt with new references.
    #[error("attempt {attempt} does not stand: {detail}")]
    NewAttempt { attempt: u32, detail: String },
    /// Blnk rejected the charge in a way that retrying cannot fix.
    #[error("{0}")]
    Dead(String),
}

/// Posts the charge's current attempt and classifies the result.
pub async fn post_charge(blnk: &BlnkClient, system: &SystemBalances, record: &ChargeRecord) -> Result<Settled, SettleError> {
    if record.is_empty() {
        return Ok(Settled::Nothing);
    }
    match blnk.post_bulk(&record.to_bulk(system)).await {
        Ok(_) => Ok(Settled::Applied),
        Err(LedgerError::DuplicateReference { .. }) => verify(blnk, record).await,
        Err(error) => Err(classify(error)),
    }
}

/// Decides whether an attempt whose references are already used stands.
pub async fn verify(blnk: &BlnkClient, record: &ChargeRecord) -> Result<Settled, SettleError> {
    let mut applied = 0;
    let mut reversed = 0;
    let mut missing = 0;
    for reference in record.leg_references() {
        let leg = blnk
            .transaction_by_reference(&reference)
            .await
            .map_err(|e| SettleError::Retry(format!("checking {reference}: {e}")))?;
        let Some(leg) = leg else {
            missing += 1;
            continue;
        };
        let refund = format!("{}_refund", leg.transaction_id);
        let refunded = blnk
            .transaction_by_reference(&refund)
            .await
            .map_err(|e| SettleError::Retry(format!("checking {refund}: {e}")))?
            .is_some();
        if refunded {
            reversed += 1;
        } else if leg.status == TransactionStatus::Applied {
            applied += 1;
        } else {
            return Err(SettleError::Retry(format!("leg {reference} reads {}; checking again later", leg.status.as_str())));
        }
    }

    let legs = record.leg_references().len();
    if applied == legs {
        Ok(Settled::AlreadyStood)
    } else if applied == 0 && reversed + missing == legs && reversed > 0 {
        Err(SettleError::NewAttempt {
            attempt: record.attempt,
            detail: format!("{reversed} leg(s) reversed by Blnk's compensation, {missing} never applied"),
        })
    } else {
        Err(SettleError::Retry(format!(
            "references of attempt {} are in use but the legs are incomplete ({applied} applied, {reversed} reversed, \
             {missing} missing); checking again later",
            record.attempt
        )))
    }
}

fn classify(error: LedgerError) -> SettleError {
    if error.is_retryable() || matches!(error, LedgerError::Unauthorized { .. }) {
        return SettleError::Retry(error.to_string());
    }
    match error {
        // An atomic bulk that failed validation or funds checks is reversed by Blnk, and
        // posting the same body again fails the same way.
        LedgerError::InsufficientFunds { .. }
        | LedgerError::OverdraftLimitExceeded { .. }
        | LedgerError::NotFound { .. }
        | LedgerError::Rejected { .. } => SettleError::Dead(error.to_string()),
        other => SettleError::Retry(other.to_string()),
    }
}
