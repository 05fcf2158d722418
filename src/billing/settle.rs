//! Posting a charge to Blnk and deciding whether it is in effect. Used by the request path and
//! by the outbox worker alike, so a retry follows exactly the same rules as the first post.
//!
//! A 409 on re-posting the same references does not prove a charge is in effect: after a
//! compensated failure Blnk reverses the applied legs with `<txn_id>_refund` rows but keeps
//! the references burnt. A charge is in effect only when every leg reads APPLIED and none has
//! an applied refund. Only once the previous attempt is known not to be (its refunds applied,
//! no leg in effect) does a new attempt post fresh references.

use crate::ledger::{BlnkClient, LedgerError, Transaction, TransactionStatus};

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

/// Reason a charge is not recorded yet.
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
pub async fn post_charge(
    blnk: &BlnkClient,
    system: &SystemBalances,
    record: &ChargeRecord,
) -> Result<Settled, SettleError> {
    if record.is_empty() {
        return Ok(Settled::Nothing);
    }
    match blnk.post_bulk(&record.to_bulk(system)).await {
        Ok(_) => Ok(Settled::Applied),
        Err(LedgerError::DuplicateReference { .. }) => verify(blnk, record).await,
        Err(error) => Err(classify(error)),
    }
}

/// The state of one leg of an attempt, as [`verify`] found it.
#[derive(Debug, PartialEq, Eq)]
enum LegState {
    /// The leg is applied and no applied refund reverses it.
    Applied,
    /// Blnk's compensation reversed the leg: its refund row is applied.
    Reversed,
    /// No transaction has the leg's reference.
    Missing,
    /// The outcome is not final yet, for example a refund that Blnk's workers have not run.
    Unsettled(String),
}

/// Decides whether an attempt whose references are already used is in effect. It is when every
/// leg reads APPLIED and none has an applied `<txn_id>_refund`. It is not, so a new attempt may
/// post fresh references, only when no leg is in effect and at least one
/// leg was reversed. Every other mix (a refund still queued, a leg not found yet, one leg in
/// effect and the other not) is checked again later, because posting again could charge twice.
pub async fn verify(blnk: &BlnkClient, record: &ChargeRecord) -> Result<Settled, SettleError> {
    let mut legs = Vec::with_capacity(2);
    for reference in record.leg_references() {
        legs.push(leg_state(blnk, &reference).await?);
    }
    judge(record.attempt, legs)
}

/// Decides from the state of every leg whether attempt `attempt` is in effect.
fn judge(attempt: u32, legs: Vec<LegState>) -> Result<Settled, SettleError> {
    let total = legs.len();
    let (mut applied, mut reversed, mut missing) = (0, 0, 0);
    for leg in legs {
        match leg {
            LegState::Applied => applied += 1,
            LegState::Reversed => reversed += 1,
            LegState::Missing => missing += 1,
            LegState::Unsettled(detail) => return Err(SettleError::Retry(detail)),
        }
    }

    if applied == total {
        return Ok(Settled::AlreadyStood);
    }
    if applied == 0 && reversed > 0 {
        return Err(SettleError::NewAttempt {
            attempt,
            detail: format!(
                "{reversed} leg(s) reversed by Blnk's compensation, {missing} never applied"
            ),
        });
    }
    Err(SettleError::Retry(format!(
        "references of attempt {attempt} are in use but the legs are incomplete ({applied} applied, {reversed} reversed, \
         {missing} missing); checking again later"
    )))
}

/// Reads one leg and its compensation. Blnk queues a refund as `<txn_id>_refund`, and its
/// workers apply it about a second later as a row `<txn_id>_refund_q`.
async fn leg_state(blnk: &BlnkClient, reference: &str) -> Result<LegState, SettleError> {
    let Some(leg) = find(blnk, reference).await? else {
        return Ok(LegState::Missing);
    };
    let leg_in_effect = if leg.status == TransactionStatus::Applied {
        LegState::Applied
    } else {
        LegState::Unsettled(format!(
            "leg {reference} reads {}; checking again later",
            leg.status.as_str()
        ))
    };

    let refund_reference = format!("{}_refund", leg.transaction_id);
    let Some(refund) = find(blnk, &refund_reference).await? else {
        return Ok(leg_in_effect);
    };
    let outcome = if refund.status == TransactionStatus::Queued {
        find(blnk, &format!("{refund_reference}_q"))
            .await?
            .map(|row| row.status)
    } else {
        Some(refund.status)
    };
    match outcome {
        Some(TransactionStatus::Applied) => Ok(LegState::Reversed),
        // A rejected refund leaves the leg in effect.
        Some(TransactionStatus::Rejected) => Ok(leg_in_effect),
        _ => Ok(LegState::Unsettled(format!(
            "the refund {refund_reference} of leg {reference} is not applied yet; checking again later"
        ))),
    }
}

async fn find(blnk: &BlnkClient, reference: &str) -> Result<Option<Transaction>, SettleError> {
    blnk.transaction_by_reference(reference)
        .await
        .map_err(|error| SettleError::Retry(format!("looking up {reference} failed: {error}")))
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
        | LedgerError::Rejected { .. }
        // tollgate itself refused to send the bulk because Blnk would reject or misread it.
        | LedgerError::InvalidRequest { .. } => SettleError::Dead(error.to_string()),
        other => SettleError::Retry(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Verdict {
        Stands,
        NewAttempt,
        CheckLater,
    }

    fn verdict(legs: Vec<LegState>) -> Verdict {
        match judge(1, legs) {
            Ok(Settled::AlreadyStood) => Verdict::Stands,
            Err(SettleError::NewAttempt { attempt: 1, .. }) => Verdict::NewAttempt,
            Err(SettleError::Retry(_)) => Verdict::CheckLater,
            other => panic!("unexpected verdict {other:?}"),
        }
    }

    #[test]
    fn attempt_stands_only_when_every_leg_applied() {
        use LegState::*;
        let unsettled = || Unsettled("refund queued".to_string());
        // (legs, verdict)
        let cases = [
            (vec![Applied, Applied], Verdict::Stands),
            (vec![Applied], Verdict::Stands),
            (vec![Reversed, Missing], Verdict::NewAttempt),
            (vec![Reversed, Reversed], Verdict::NewAttempt),
            (vec![Reversed], Verdict::NewAttempt),
            (vec![Applied, Missing], Verdict::CheckLater),
            (vec![Applied, Reversed], Verdict::CheckLater),
            (vec![Missing, Missing], Verdict::CheckLater),
            (vec![unsettled(), Missing], Verdict::CheckLater),
            (vec![Applied, unsettled()], Verdict::CheckLater),
        ];
        for (legs, expected) in cases {
            let shown = format!("{legs:?}");
            assert_eq!(verdict(legs), expected, "{shown}");
        }
    }

    #[test]
    fn rejections_that_cannot_succeed_are_dead() {
        let dead = [
            LedgerError::Rejected {
                status: 400,
                code: None,
                message: "bad".into(),
            },
            LedgerError::NotFound {
                message: "balance".into(),
            },
            LedgerError::InvalidRequest {
                operation: "post_bulk",
                detail: "empty".into(),
            },
        ];
        for error in dead {
            let shown = error.to_string();
            assert!(matches!(classify(error), SettleError::Dead(_)), "{shown}");
        }
        let retried = [
            LedgerError::Locked {
                message: "busy".into(),
            },
            LedgerError::Server {
                status: 503,
                message: "down".into(),
            },
            LedgerError::Timeout {
                operation: "post_bulk",
            },
            LedgerError::Rejected {
                status: 429,
                code: None,
                message: "slow down".into(),
            },
            LedgerError::Unauthorized {
                message: "key".into(),
            },
        ];
        for error in retried {
            let shown = error.to_string();
            assert!(matches!(classify(error), SettleError::Retry(_)), "{shown}");
        }
    }
}
