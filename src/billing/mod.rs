//! Billing: reserving a request's worst case with a hold, recording its charge durably,
//! and releasing the hold.
//!
//! Every ledger write tollgate owes is stored in the outbox before it is sent, so a crash or
//! a Blnk outage delays a charge instead of losing it, and [`worker`] finishes what the
//! request path could not. The one exception is a charge the outbox fails to store: it is
//! posted at once, kept in memory while Blnk fails, and lost if the process stops first.

mod background;
pub mod charge;
mod hold;
pub mod metadata;
pub mod request;
pub mod settle;
pub mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::ledger::BlnkClient;
use crate::money::{Nanos, Usd};
use crate::outbox::Outbox;

use background::Background;
pub use background::Detachable;
pub use charge::{ChargeRecord, HoldRecord, SystemBalances, hold_reference, leg_reference};
pub(crate) use hold::release;
pub use hold::{Hold, HoldError, PlacedHold};
pub use settle::{SettleError, Settled};

/// Whether a charge was recorded before the response completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeStatus {
    Recorded,
    /// Stored in the outbox, and the worker posts it once Blnk responds.
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

/// The outcome of one try at posting a charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Blnk has the charge, and its outbox entry is done.
    Recorded,
    /// Not recorded yet, for the reason given; the entry stays pending.
    Pending(String),
    /// Blnk rejected the charge for good; the entry is on the dead-letter list.
    Dead(String),
}

/// Places hold transactions and records charges for the proxy.
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
    background: Arc<Background>,
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
            background: Arc::default(),
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

    /// Returns the lifetime of every hold: its `inflight_expiry_date` is this long after it is placed.
    pub fn hold_lifetime(&self) -> Duration {
        self.hold_lifetime
    }

    /// Spawns a named task that finishes billing work, such as a stream relay or a charge
    /// post. Shutdown waits for these tasks ([`Biller::wait_idle`]) before it closes the outbox.
    pub fn spawn_tracked<F>(&self, name: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.spawn(name, future)
    }

    /// Runs `future` inside the caller's task. If the caller drops it unfinished, the rest
    /// goes on as a tracked task named `name`, as if started with [`Biller::spawn_tracked`].
    pub fn detachable<F>(&self, name: &'static str, future: F) -> Detachable<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.detachable(name, future)
    }

    /// Number of tasks started with [`Biller::spawn_tracked`] that are still running.
    pub fn tracked_tasks(&self) -> usize {
        self.background.running()
    }

    /// Waits until every task started with [`Biller::spawn_tracked`] has ended and the
    /// outbox has committed the writes they sent, detached ones included.
    pub async fn wait_idle(&self) {
        self.background.wait_idle().await;
        // A stopped writer has nothing left to commit.
        let _ = self.outbox.sync().await;
    }

    /// Records a charge: written to the outbox, then posted. Waits at most `charge_timeout`
    /// for both; past it the work goes on in a tracked background task, and the worker
    /// retries a failure. Then releases the request's `hold`: at once when the charge is
    /// recorded, else as soon as the background post records it, and through the outbox
    /// worker if that post fails too.
    ///
    /// The work runs inside the caller's task until then, which saves a task hand-off on
    /// every request. Callers therefore run where a cancelled client cannot stop them: in
    /// [`Biller::detachable`] work, as the upstream exchange and the stream relay do, or in a
    /// tracked task.
    pub async fn charge(&self, record: ChargeRecord, hold: Option<Hold>) -> ChargeStatus {
        if record.is_empty() {
            if let Some(hold) = hold {
                self.release_hold(hold);
            }
            return ChargeStatus::Recorded;
        }
        let biller = self.clone();
        let mut posting = Box::pin(async move { biller.store_and_post(record).await });
        match tokio::time::timeout(self.charge_timeout, &mut posting).await {
            Ok(Settlement::Recorded) => {
                if let Some(hold) = hold {
                    self.release_hold(hold);
                }
                ChargeStatus::Recorded
            }
            Ok(Settlement::Pending(_) | Settlement::Dead(_)) => {
                if let Some(hold) = &hold {
                    self.release_hold_after_charge(hold).await;
                }
                ChargeStatus::Pending
            }
            Err(_) => {
                // The worker voids the hold if the process stops before the post ends.
                if let Some(hold) = &hold {
                    self.release_hold_after_charge(hold).await;
                }
                let biller = self.clone();
                // A boxed future can move to another task after it was first polled.
                drop(self.spawn_tracked("post-charge", async move {
                    let recorded = matches!(posting.await, Settlement::Recorded);
                    if let (true, Some(hold)) = (recorded, hold) {
                        biller.release_hold(hold);
                    }
                }));
                ChargeStatus::Pending
            }
        }
    }

    /// Writes the charge to the outbox, then posts it. When the outbox cannot store it, the
    /// charge is posted anyway and, if that fails too, kept in memory for the worker, which
    /// stores or posts it on its next pass. Only a stop of the process before then loses it.
    async fn store_and_post(&self, record: ChargeRecord) -> Settlement {
        // The worker must not race the post below, so the entry becomes due only after the
        // post's own timeout has passed.
        let not_before = Utc::now() + self.ledger_timeout + Duration::from_secs(1);
        let stored = match record.to_outbox_entry(Some(not_before)) {
            Ok(entry) => self
                .outbox
                .insert_new(entry)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(format!("the charge could not be serialised: {error}")),
        };
        let outbox_id = match stored {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(request_id = %record.request_id, %error,
                    "the outbox could not store the charge; posting it without a durable copy");
                return self.settle_unstored(record).await;
            }
        };
        let settlement = self.settle_entry(Some(outbox_id), record).await;
        if let Settlement::Pending(detail) = &settlement {
            // Keeps the reason for `tollgate outbox list`; the entry stays due at `not_before`.
            if let Err(error) = self
                .outbox
                .record_failure(outbox_id, detail, not_before)
                .await
            {
                tracing::error!(outbox_id, %error, "outbox update failed");
            }
        }
        settlement
    }

    /// Posts a charge that has no outbox entry, keeping it in memory when it stays pending.
    pub(crate) async fn settle_unstored(&self, record: ChargeRecord) -> Settlement {
        let settlement = self.settle_entry(None, record.clone()).await;
        match &settlement {
            Settlement::Recorded => {}
            Settlement::Pending(_) => self.background.keep_unstored(record),
            Settlement::Dead(reason) => {
                let payload = serde_json::to_string(&record).unwrap_or_default();
                tracing::error!(request_id = %record.request_id, %reason, %payload,
                    "Blnk rejected a charge that the outbox could not store; post it by hand");
            }
        }
        settlement
    }

    /// Takes the charges kept in memory because the outbox could not store them.
    pub(crate) fn take_unstored(&self) -> Vec<ChargeRecord> {
        self.background.take_unstored()
    }

    /// Number of charges kept in memory because the outbox could not store them.
    pub fn unstored_charges(&self) -> usize {
        self.background.unstored_count()
    }

    /// Posts a charge once (plus one new attempt if the previous attempt is known not to be in
    /// effect) and updates its outbox entry, when it has one.
    pub(crate) async fn settle_entry(
        &self,
        outbox_id: Option<i64>,
        mut record: ChargeRecord,
    ) -> Settlement {
        for _ in 0..2 {
            match settle::post_charge(&self.blnk, &self.system, &record).await {
                Ok(settled) => {
                    tracing::debug!(request_id = %record.request_id, attempt = record.attempt, ?settled, "charge recorded");
                    if let Some(id) = outbox_id {
                        // The charge is in effect in Blnk, so the response need not wait for
                        // the mark. A crash before it commits only makes the worker verify it.
                        self.outbox.mark_done_detached(id);
                    }
                    return Settlement::Recorded;
                }
                Err(SettleError::NewAttempt { attempt, detail }) => {
                    tracing::warn!(request_id = %record.request_id, attempt, %detail, "posting the charge again with new references");
                    record.attempt = attempt + 1;
                    if let Err(error) = self.store_attempt(outbox_id, &record).await {
                        return Settlement::Pending(error);
                    }
                }
                Err(SettleError::Retry(detail)) => {
                    tracing::warn!(request_id = %record.request_id, %detail, "charge not recorded yet; it stays in the outbox");
                    return Settlement::Pending(detail);
                }
                Err(SettleError::Dead(reason)) => {
                    tracing::error!(request_id = %record.request_id, %reason, "Blnk rejected the charge; moved to the dead-letter list");
                    if let Some(id) = outbox_id
                        && let Err(error) = self.outbox.dead_letter(id, &reason).await
                    {
                        tracing::error!(request_id = %record.request_id, outbox_id = id, %error, "outbox update failed");
                    }
                    return Settlement::Dead(reason);
                }
            }
        }
        Settlement::Pending(format!("attempt {} is due again", record.attempt))
    }

    /// Stores the charge's new attempt number before that attempt is posted. The number
    /// follows from the ledger alone, so a crash between the two steps is harmless: the
    /// next try finds the earlier attempt reversed and derives the same number again.
    async fn store_attempt(
        &self,
        outbox_id: Option<i64>,
        record: &ChargeRecord,
    ) -> Result<(), String> {
        let Some(id) = outbox_id else {
            return Ok(());
        };
        let payload = serde_json::to_value(record).map_err(|error| error.to_string())?;
        self.outbox.update_payload(id, &payload).await.map_err(|error| {
            tracing::error!(request_id = %record.request_id, outbox_id = id, %error, "outbox update failed");
            format!("storing attempt {} failed: {error}", record.attempt)
        })
    }

    /// Marks a finished entry done without waiting: the ledger has confirmed it already, and
    /// if the mark is lost the worker only checks the entry against the ledger again.
    fn finish_entry(&self, outbox_id: i64) {
        self.outbox.mark_done_detached(outbox_id);
    }
}

/// Rounds a quote up to whole nano-dollars, at least one: the hold amount.
pub fn hold_amount(quote: Usd) -> Nanos {
    let ceiling = Usd::new(quote.as_decimal().round_dp_with_strategy(
        crate::money::USD_SCALE,
        rust_decimal::RoundingStrategy::AwayFromZero,
    ));
    Nanos(ceiling.to_nanos().0.max(1))
}

/// Returns how long a hold lasts: the longest a request can run after its hold's expiry is
/// set, plus `margin`. That is the hold's own post, the wait for upstream's response headers,
/// then the body (read within `first_byte_timeout` again) or the stream, and the charge. A
/// client that leaves adds nothing, because the drain ends by the stream's deadline.
pub fn hold_lifetime(
    request_timeout: Duration,
    first_byte_timeout: Duration,
    max_stream_duration: Duration,
    charge_timeout: Duration,
    margin: Duration,
) -> Duration {
    let response = first_byte_timeout.max(max_stream_duration);
    request_timeout + first_byte_timeout + response + charge_timeout + margin
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

    #[test]
    fn hold_lifetime_covers_headers_then_stream() {
        let seconds = Duration::from_secs;
        // The hold's post, 4 s for headers, a 6 s stream, the charge, and the margin.
        assert_eq!(
            hold_lifetime(seconds(1), seconds(4), seconds(6), seconds(2), seconds(10)),
            seconds(23)
        );
        // A non-streaming body is read within the first-byte timeout again.
        assert_eq!(
            hold_lifetime(seconds(1), seconds(4), seconds(3), seconds(2), seconds(0)),
            seconds(11)
        );
    }
}
