//! The outbox worker: a named background task that finishes every ledger write the request
//! path could not, with exponential backoff and jitter, always with the same references.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::outbox::{Entry, EntryKind};

use super::{Biller, ChargeRecord, HoldRecord, release};

/// How often the worker looks for due entries when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const BATCH: usize = 100;

/// Retry schedule of pending entries.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempts + 1`: `initial * 2^attempts`, capped at `max`, with up to
    /// 20 % random jitter either way so many entries do not retry in lockstep.
    pub fn delay(&self, attempts: u32, jitter: &mut impl Rng) -> Duration {
        let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
        let base = self.initial.saturating_mul(factor).min(self.max);
        let spread_ms = (base.as_millis() / 5) as u64;
        if spread_ms == 0 {
            return base;
        }
        let offset = jitter.random_range(0..=2 * spread_ms);
        (base + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(spread_ms))
    }
}

/// Settings of the worker.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    pub backoff: Backoff,
    /// Entries still pending after this age are dead-lettered.
    pub max_age: Duration,
}

/// Makes every entry left pending by an earlier process due now. One server owns a data
/// directory, so such entries belong to requests that can no longer finish them.
pub async fn resume_pending(biller: &Biller) -> usize {
    let outbox = biller.outbox();
    let pending = match outbox.list(crate::outbox::EntryState::Pending, usize::MAX).await {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, "reading pending outbox entries at startup failed");
            return 0;
        }
    };
    for entry in &pending {
        if let Err(error) = outbox.retry(entry.id).await {
            tracing::error!(outbox_id = entry.id, %error, "rescheduling a pending outbox entry failed");
        }
    }
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "resuming outbox entries left by the previous run");
    }
    pending.len()
}

/// Runs until `shutdown` is cancelled, then returns after the batch in progress.
pub async fn run(biller: Biller, settings: WorkerSettings, shutdown: CancellationToken) {
    tracing::info!("outbox worker started");
    loop {
        let processed = run_once(&biller, settings).await;
        if processed >= BATCH {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
    tracing::info!("outbox worker stopped");
}

/// Processes every entry due now, once. Returns how many it processed.
pub async fn run_once(biller: &Biller, settings: WorkerSettings) -> usize {
    let due = match biller.outbox().due(Utc::now(), BATCH).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "reading due outbox entries failed");
            return 0;
        }
    };
    let count = due.len();
    for entry in due {
        process(biller, settings, entry).await;
    }
    count
}

async fn process(biller: &Biller, settings: WorkerSettings, entry: Entry) {
    let outbox = biller.outbox();
    let age = (Utc::now() - entry.created_at).to_std().unwrap_or_default();
    if age > settings.max_age {
        let reason = format!(
            "still pending after {} h (max_age); last error: {}",
            age.as_secs() / 3600,
            entry.last_error.as_deref().unwrap_or("none")
        );
        tracing::error!(outbox_id = entry.id, request_id = %entry.request_id, %reason, "outbox entry dead-lettered");
        if let Err(error) = outbox.dead_letter(entry.id, &reason).await {
            tracing::error!(outbox_id = entry.id, %error, "outbox update failed");
        }
        return;
    }

    let outcome = match entry.kind {
        EntryKind::Charge => match serde_json::from_value::<ChargeRecord>(entry.payload.clone()) {
            Ok(record) => {
                if biller.settle_entry(entry.id, record).await {
                    Ok(())
                } else {
                    // settle_entry dead-letters what cannot succeed; re-read to know.
                    match outbox.get(entry.id).await {
                        Ok(Some(current)) if current.state != crate::outbox::EntryState::Pending => return,
                        _ => Err("charge not recorded yet".to_string()),
                    }
                }
            }
            Err(error) => Err(format!("unreadable charge payload: {error}")),
        },
        EntryKind::VoidHold => match serde_json::from_value::<HoldRecord>(entry.payload.clone()) {
            Ok(hold) => match release(biller.blnk(), &hold).await {
                Ok(()) => {
                    tracing::info!(request_id = %hold.request_id, reference = %hold.reference, "hold released by the outbox worker");
                    outbox.mark_done(entry.id).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            },
            Err(error) => Err(format!("unreadable hold payload: {error}")),
        },
    };

    if let Err(detail) = outcome {
        let delay = settings.backoff.delay(entry.attempts, &mut rand::rng());
        let next = Utc::now() + delay;
        tracing::warn!(outbox_id = entry.id, request_id = %entry.request_id, attempts = entry.attempts + 1,
            retry_in_ms = delay.as_millis() as u64, %detail, "outbox entry retry scheduled");
        if let Err(error) = outbox.record_failure(entry.id, &detail, next).await {
            tracing::error!(outbox_id = entry.id, %error, "outbox update failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_and_caps() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (attempts, base) in [(0u32, 1u64), (1, 2), (2, 4), (5, 32), (6, 60), (30, 60)] {
            let delay = backoff.delay(attempts, &mut rng);
            let base = Duration::from_secs(base);
            assert!(delay >= base.mul_f32(0.8) && delay <= base.mul_f32(1.2), "{attempts}: {delay:?}");
        }
    }
}
