//! The outbox worker: a named background task that finishes every ledger write the request
//! path could not, with exponential backoff and jitter, always with the same references.
//!
//! It sleeps until the earliest pending entry is due (at most [`POLL_INTERVAL`], so entries
//! that the CLI revives or another handle inserts are seen soon), posts what is due, and
//! reschedules each failure. A charge that Blnk rejected for good, and any entry still pending
//! `max_age` after its age window started, moves to the dead-letter list with the reason.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbox::{Entry, EntryKind};

use super::{Biller, ChargeRecord, HoldRecord, Settlement, release};

/// Maximum sleep between two reads of the outbox's due entries.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often the server's worker deletes done entries older than `done_retention`.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Shortest sleep, so an entry that stays due (its update failed) is not retried in a busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(50);

/// Entries processed per pass.
const BATCH: usize = 100;

/// Retry schedule of pending entries.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// The source of the time that the worker compares with the outbox's due times and ages.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// The wall-clock time at `anchor`, moved on by tokio's clock. With tokio's time paused,
    /// a test moves the worker's schedule with `tokio::time::advance`.
    Tokio {
        anchor_utc: DateTime<Utc>,
        anchor: Instant,
    },
}

/// Settings of the worker.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    pub backoff: Backoff,
    /// Entries still pending this long after their age window started are dead-lettered.
    pub max_age: Duration,
    /// Done entries are deleted this long after they were marked done.
    pub done_retention: Duration,
    /// Time between two deletions of done entries, the first one this long after start.
    pub purge_every: Duration,
    /// How often the counts of pending and dead entries are logged while either is non-zero.
    pub report_every: Duration,
    pub clock: Clock,
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

impl Clock {
    /// Returns a clock that follows tokio's clock from now on.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            anchor_utc: Utc::now(),
            anchor: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { anchor_utc, anchor } => *anchor_utc + anchor.elapsed(),
        }
    }
}

/// Makes every entry left pending by an earlier process due now, in one write. One server
/// owns a data directory, so such entries belong to requests that can no longer finish them:
/// their charges are posted and their holds voided on the worker's first pass.
pub async fn resume_pending(biller: &Biller) -> u64 {
    match biller.outbox().retry_all_pending().await {
        Ok(0) => 0,
        Ok(count) => {
            tracing::info!(count, "resuming outbox entries left by the previous run");
            count
        }
        Err(error) => {
            tracing::error!(%error, "rescheduling pending outbox entries at startup failed; they are retried when due");
            0
        }
    }
}

/// Deletes done entries marked done more than `done_retention` ago, so the outbox file does
/// not grow with every request ever served. A failure is logged and tried again later.
async fn purge_done(biller: &Biller, settings: WorkerSettings) {
    // A retention beyond chrono's range (hundreds of millions of years) keeps every entry.
    let Ok(retention) = chrono::Duration::from_std(settings.done_retention) else {
        return;
    };
    let older_than = settings.clock.now() - retention;
    match biller.outbox().purge_done(older_than).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(
            count,
            "deleted done outbox entries past outbox.done_retention"
        ),
        Err(error) => tracing::warn!(%error, "deleting done outbox entries failed; retrying later"),
    }
}

/// Runs until `shutdown` is cancelled, then returns after the entry in progress.
pub async fn run(biller: Biller, settings: WorkerSettings, shutdown: CancellationToken) {
    tracing::info!("outbox worker started");
    let mut next_report = Instant::now() + settings.report_every;
    let mut next_purge = Instant::now() + settings.purge_every;
    loop {
        let processed = run_batch(&biller, settings, &shutdown).await;
        if Instant::now() >= next_report {
            log_counts(&biller, settings.clock).await;
            next_report = Instant::now() + settings.report_every;
        }
        if Instant::now() >= next_purge {
            purge_done(&biller, settings).await;
            next_purge = Instant::now() + settings.purge_every;
        }
        if shutdown.is_cancelled() {
            break;
        }
        if processed >= BATCH {
            continue;
        }
        let sleep = time_to_next_entry(&biller, settings.clock).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("outbox worker stopped");
}

/// Processes every entry due now, once, and retries the charges kept in memory. Returns how
/// many outbox entries it processed.
pub async fn run_once(biller: &Biller, settings: WorkerSettings) -> usize {
    run_batch(biller, settings, &CancellationToken::new()).await
}

/// Makes every pending entry due and processes them until none is due, within `budget`.
/// Meant for shutdown: what is still pending afterwards resumes at the next start. Returns
/// how many entries it processed.
pub async fn flush(biller: &Biller, settings: WorkerSettings, budget: Duration) -> usize {
    let mut processed = 0;
    let passes = async {
        if let Err(error) = biller.outbox().retry_all_pending().await {
            tracing::error!(%error, "making pending outbox entries due for the final flush failed");
        }
        loop {
            let count = run_once(biller, settings).await;
            processed += count;
            // A failed entry is rescheduled into the future, so each pass shrinks what is due.
            if count == 0 {
                break;
            }
        }
    };
    if tokio::time::timeout(budget, passes).await.is_err() {
        tracing::warn!(
            budget_ms = budget.as_millis() as u64,
            "the final outbox flush ran out of time"
        );
    }
    processed
}

async fn run_batch(biller: &Biller, settings: WorkerSettings, stop: &CancellationToken) -> usize {
    retry_unstored(biller).await;
    let due = match biller.outbox().due(settings.clock.now(), BATCH).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "reading due outbox entries failed");
            return 0;
        }
    };
    let count = due.len();
    // Charges first, so a hold that waits for its request's charge is voided in the same pass.
    let mut due = due;
    due.sort_by_key(|entry| entry.kind != EntryKind::Charge);
    for entry in due {
        if stop.is_cancelled() {
            break;
        }
        process(biller, settings, entry).await;
    }
    count
}

/// Stores the charges the request path could not write to the outbox, or posts them when the
/// outbox still fails. What neither works for stays in memory for the next pass.
async fn retry_unstored(biller: &Biller) {
    for record in biller.take_unstored() {
        let stored = match record.to_outbox_entry(None) {
            Ok(entry) => biller.outbox().insert_entry(entry).await.ok(),
            Err(_) => None,
        };
        if stored.is_some() {
            tracing::info!(request_id = %record.request_id, "a charge kept in memory is now stored in the outbox");
            continue;
        }
        biller.settle_unstored(record).await;
    }
}

async fn process(biller: &Biller, settings: WorkerSettings, entry: Entry) {
    let age = (settings.clock.now() - entry.age_started_at)
        .to_std()
        .unwrap_or_default();
    if age > settings.max_age {
        let reason = format!(
            "still pending after {} (outbox.max_age is {}); last error: {}",
            describe_age(age),
            describe_age(settings.max_age),
            entry.last_error.as_deref().unwrap_or("none")
        );
        dead_letter(biller, &entry, &reason).await;
        return;
    }

    let failure = match entry.kind {
        EntryKind::Charge => process_charge(biller, &entry).await,
        EntryKind::VoidHold => process_void(biller, &entry).await,
    };
    let Some(detail) = failure else {
        return;
    };

    let delay = settings.backoff.delay(entry.attempts, &mut rand::rng());
    let next = settings.clock.now() + delay;
    tracing::warn!(outbox_id = entry.id, request_id = %entry.request_id, kind = %entry.kind, attempts = entry.attempts + 1,
        retry_in_ms = delay.as_millis() as u64, %detail, "outbox entry retry scheduled");
    if let Err(error) = biller
        .outbox()
        .record_failure(entry.id, &detail, next)
        .await
    {
        tracing::error!(outbox_id = entry.id, %error, "outbox update failed");
    }
}

/// Posts a charge entry. Returns the reason to retry it, or `None` when it is finished
/// (recorded, or dead-lettered by `settle_entry`).
async fn process_charge(biller: &Biller, entry: &Entry) -> Option<String> {
    let record = match serde_json::from_value::<ChargeRecord>(entry.payload.clone()) {
        Ok(record) => record,
        Err(error) => {
            dead_letter(
                biller,
                entry,
                &format!("the charge payload cannot be read: {error}"),
            )
            .await;
            return None;
        }
    };
    let request_id = record.request_id.clone();
    match biller.settle_entry(Some(entry.id), record).await {
        Settlement::Recorded => {
            tracing::info!(outbox_id = entry.id, %request_id, attempts = entry.attempts + 1, "charge recorded by the outbox worker");
            // The request's hold waited for this charge on a backoff of its own. Without this
            // it could block the customer's funds for minutes more.
            if let Err(error) = biller.outbox().hold_due_now(&request_id).await {
                tracing::error!(%request_id, %error, "outbox update failed; the hold is voided at its next retry");
            }
            None
        }
        Settlement::Dead(_) => None,
        Settlement::Pending(detail) => Some(detail),
    }
}

/// Voids a hold entry's hold. Returns the reason to retry it, or `None` when it is finished.
async fn process_void(biller: &Biller, entry: &Entry) -> Option<String> {
    let hold = match serde_json::from_value::<HoldRecord>(entry.payload.clone()) {
        Ok(hold) => hold,
        Err(error) => {
            dead_letter(
                biller,
                entry,
                &format!("the hold payload cannot be read: {error}"),
            )
            .await;
            return None;
        }
    };
    // A hold stays while its request's charge is pending, so the funds it reserves cannot be
    // spent twice. The sync makes a charge marked done just before visible to the check.
    let _ = biller.outbox().sync().await;
    match biller.outbox().has_pending_charge(&hold.request_id).await {
        Ok(false) => {}
        Ok(true) => return Some("waiting for the request's charge to be recorded".to_string()),
        Err(error) => return Some(format!("checking for the request's charge failed: {error}")),
    }
    if let Err(error) = release(biller.blnk(), &hold).await {
        return Some(error.to_string());
    }
    tracing::info!(request_id = %hold.request_id, reference = %hold.reference, "hold released by the outbox worker");
    match biller.outbox().mark_done(entry.id).await {
        Ok(()) => None,
        Err(error) => Some(format!(
            "the hold is released, but marking the entry done failed: {error}"
        )),
    }
}

async fn dead_letter(biller: &Biller, entry: &Entry, reason: &str) {
    tracing::error!(outbox_id = entry.id, request_id = %entry.request_id, kind = %entry.kind, %reason,
        "outbox entry dead-lettered; retry it with `tollgate outbox retry` once the cause is fixed");
    if let Err(error) = biller.outbox().dead_letter(entry.id, reason).await {
        tracing::error!(outbox_id = entry.id, %error, "outbox update failed");
    }
}

/// Sleep until the earliest pending entry is due, between [`MIN_SLEEP`] and [`POLL_INTERVAL`].
async fn time_to_next_entry(biller: &Biller, clock: Clock) -> Duration {
    match biller.outbox().next_attempt_at().await {
        Ok(Some(at)) => (at - clock.now())
            .to_std()
            .unwrap_or_default()
            .clamp(MIN_SLEEP, POLL_INTERVAL),
        Ok(None) => POLL_INTERVAL,
        Err(error) => {
            tracing::error!(%error, "reading the next due outbox entry failed");
            POLL_INTERVAL
        }
    }
}

/// Logs the outbox counts while an entry is pending or dead, or a charge waits in memory.
async fn log_counts(biller: &Biller, clock: Clock) {
    let counts = match biller.outbox().counts().await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::error!(%error, "reading the outbox counts failed");
            return;
        }
    };
    let unstored = biller.unstored_charges();
    if counts.pending == 0 && counts.dead == 0 && unstored == 0 {
        return;
    }
    let oldest_pending_age_s = counts
        .oldest_pending
        .map(|oldest| (clock.now() - oldest).num_seconds().max(0));
    if counts.dead > 0 || unstored > 0 {
        tracing::warn!(
            pending = counts.pending,
            oldest_pending_age_s,
            dead = counts.dead,
            unstored,
            "outbox backlog; list dead entries with `tollgate outbox list --dead`"
        );
    } else {
        tracing::info!(
            pending = counts.pending,
            oldest_pending_age_s,
            dead = counts.dead,
            "outbox backlog"
        );
    }
}

/// Renders a duration in its largest whole unit: hours, minutes, seconds or milliseconds.
fn describe_age(age: Duration) -> String {
    let seconds = age.as_secs();
    if seconds >= 3600 {
        format!("{} h", seconds / 3600)
    } else if seconds >= 60 {
        format!("{} min", seconds / 60)
    } else if seconds >= 1 {
        format!("{seconds} s")
    } else {
        format!("{} ms", age.as_millis())
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
            assert!(
                delay >= base.mul_f32(0.8) && delay <= base.mul_f32(1.2),
                "{attempts}: {delay:?}"
            );
        }
    }

    #[test]
    fn backoff_jitter_spreads_delays() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff.delay(0, &mut rng)).collect();
        assert!(
            delays.len() > 10,
            "jitter gives different delays: {delays:?}"
        );
    }

    #[test]
    fn ages_are_described_in_one_unit() {
        let cases = [
            (Duration::from_millis(250), "250 ms"),
            (Duration::from_millis(2500), "2 s"),
            (Duration::from_secs(90), "1 min"),
            (Duration::from_secs(72 * 3600), "72 h"),
        ];
        for (age, expected) in cases {
            assert_eq!(describe_age(age), expected);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!((clock.now() - start).num_seconds(), 90);
    }
}
