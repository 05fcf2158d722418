//! Tracking of calls to Blnk: every call is counted and timed. The time of Blnk's last
//! response is kept, so readiness is decided without calling Blnk on each probe.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::ledger::{BlnkClient, LedgerError};

use super::metrics::{LedgerOutcome, metrics};
use super::request;

/// Milliseconds after [`epoch`] at which Blnk last responded, plus one. 0 means never.
static LAST_RESPONSE: AtomicU64 = AtomicU64::new(0);

/// Runs one call to Blnk, then counts it by operation and outcome, times it, notes a
/// response for readiness, and adds its time to the current request's ledger time.
pub async fn observe<T, F>(operation: &'static str, call: F) -> Result<T, LedgerError>
where
    F: Future<Output = Result<T, LedgerError>>,
{
    let started = Instant::now();
    let result = call.await;
    let elapsed = started.elapsed();

    let outcome = match &result {
        Ok(_) => LedgerOutcome::Ok,
        Err(error) => outcome_of(error),
    };
    metrics().ledger_call(operation, outcome, elapsed);
    if outcome.responded() {
        note_response();
    }
    request::add_ledger_time(elapsed);
    result
}

/// Returns the time since Blnk last responded to a call from this process, or `None` when
/// it never has.
pub fn last_response_age() -> Option<Duration> {
    let stamp = LAST_RESPONSE.load(Ordering::Acquire);
    let responded_at = Duration::from_millis(stamp.checked_sub(1)?);
    Some(since_epoch().saturating_sub(responded_at))
}

/// Calls Blnk's health endpoint whenever Blnk has not responded for `interval`, so that
/// readiness reflects Blnk even without traffic. Logs when the check starts and stops
/// succeeding.
pub async fn probe_while_idle(blnk: BlnkClient, interval: Duration, stop: CancellationToken) {
    tracing::info!(
        interval_ms = millis(interval),
        "ledger health probe started"
    );
    let mut reachable: Option<bool> = None;
    loop {
        let idle = last_response_age().is_none_or(|age| age >= interval);
        if idle {
            match blnk.health().await {
                Ok(()) => {
                    if reachable != Some(true) {
                        tracing::info!("Blnk health check succeeded");
                    }
                    reachable = Some(true);
                }
                Err(error) => {
                    if reachable != Some(false) {
                        tracing::warn!(%error, "Blnk health check failed; readiness turns false once Blnk has not responded for admin.ledger_stale_after");
                    } else {
                        crate::warn_rate_limited!("ledger.health_probe", %error, "Blnk health check failed again");
                    }
                    reachable = Some(false);
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("ledger health probe stopped");
}

fn outcome_of(error: &LedgerError) -> LedgerOutcome {
    match error {
        LedgerError::Timeout { .. } => LedgerOutcome::Timeout,
        LedgerError::Unreachable { .. } => LedgerOutcome::Unreachable,
        LedgerError::Server { .. } => LedgerOutcome::ServerError,
        LedgerError::Unauthorized { .. } => LedgerOutcome::Unauthorized,
        LedgerError::InvalidResponse { .. } => LedgerOutcome::InvalidResponse,
        LedgerError::InsufficientFunds { .. }
        | LedgerError::OverdraftLimitExceeded { .. }
        | LedgerError::DuplicateReference { .. }
        | LedgerError::Locked { .. }
        | LedgerError::NotFound { .. }
        | LedgerError::AlreadyExists { .. }
        | LedgerError::AlreadyVoided
        | LedgerError::AlreadyCommitted
        | LedgerError::Rejected { .. } => LedgerOutcome::Rejected,
        // The client raises these before sending, so a sent call never ends with them.
        LedgerError::InvalidRequest { .. } | LedgerError::InvalidConfig { .. } => {
            LedgerOutcome::InvalidResponse
        }
    }
}

fn note_response() {
    let stamp = u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX - 1);
    LAST_RESPONSE.store(stamp + 1, Ordering::Release);
}

/// Returns the instant of the first call, from which all stamps are measured.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch() -> Duration {
    epoch().elapsed()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_sort_by_who_failed() {
        let cases = [
            (
                LedgerError::Timeout {
                    operation: "health",
                },
                LedgerOutcome::Timeout,
                false,
            ),
            (
                LedgerError::Server {
                    status: 503,
                    message: "down".into(),
                },
                LedgerOutcome::ServerError,
                false,
            ),
            (
                LedgerError::Unauthorized {
                    message: "bad key".into(),
                },
                LedgerOutcome::Unauthorized,
                false,
            ),
            (
                LedgerError::InsufficientFunds {
                    message: "no funds".into(),
                },
                LedgerOutcome::Rejected,
                true,
            ),
            (LedgerError::AlreadyVoided, LedgerOutcome::Rejected, true),
        ];
        for (error, expected, responded) in cases {
            let outcome = outcome_of(&error);
            assert_eq!(outcome, expected, "{error}");
            assert_eq!(outcome.responded(), responded, "{error}");
        }
    }

    #[tokio::test]
    async fn successful_call_refreshes_last_response() {
        let result: Result<(), LedgerError> = observe("unit_test_op", async { Ok(()) }).await;
        assert!(result.is_ok());
        let age = last_response_age().expect("a response was noted");
        assert!(age < Duration::from_secs(5), "{age:?}");
    }
}
