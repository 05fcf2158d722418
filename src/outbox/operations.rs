//! The async operations of [`Outbox`]. Writes go to the writer thread and return after
//! their batch commits. Reads run on a pooled connection on tokio's blocking threads.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::StoreError;
use super::writer::{self, Command};
use super::{
    Counts, Entry, EntryKind, EntryState, NewEntry, Outbox, OutboxError, mutations, queries,
};

/// Maximum number of done entries one purge transaction deletes. A large purge runs as several
/// transactions so it does not hold the write lock, and delay inserts, for long. On a 2-core
/// machine a copy of the schema deleted 1000 rows with 1.8 KB payloads in about 4 ms, and 5000
/// in about 48 ms.
const PURGE_CHUNK: i64 = 1000;

impl Outbox {
    /// Inserts a pending entry that is due at once and returns its id. Inserting a
    /// `(request_id, kind)` that exists already returns the existing id and leaves that
    /// entry unchanged.
    pub async fn insert(
        &self,
        request_id: &str,
        kind: EntryKind,
        payload: &serde_json::Value,
    ) -> Result<i64, OutboxError> {
        self.insert_entry(new_entry(request_id, kind, payload, None))
            .await
    }

    /// Inserts like [`Outbox::insert`], with the first attempt due at `next_attempt_at`. A
    /// caller that posts the operation itself right after inserting sets a later time, so
    /// the worker does not post it at the same moment.
    pub async fn insert_at(
        &self,
        request_id: &str,
        kind: EntryKind,
        payload: &serde_json::Value,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<i64, OutboxError> {
        let entry = new_entry(request_id, kind, payload, Some(next_attempt_at));
        self.insert_entry(entry).await
    }

    /// Inserts `entry` like [`Outbox::insert`], due at its `next_attempt_at`. The caller
    /// serializes the payload and names its customer, so no JSON value is built or read.
    pub async fn insert_entry(&self, entry: NewEntry) -> Result<i64, OutboxError> {
        // Beside the journal, ids come from the journal's counter, so the two never collide.
        let id = self.inner.journal.as_ref().map(|journal| journal.next_id());
        self.write(move |conn, now_ms| mutations::insert(conn, id, &entry, now_ms))
            .await
    }

    /// Inserts `entry`, whose `(request_id, kind)` the caller guarantees to be new, and returns
    /// its id once the entry would survive the configured durability's failure.
    ///
    /// A server with [`Durability::Process`](crate::config::Durability::Process) appends the
    /// entry to its journal and returns without waiting for the commit, which follows with
    /// the writer's next batch. Reads see the entry after that commit, and writes sent later
    /// apply after it. Otherwise this waits for the commit like [`Outbox::insert_entry`].
    /// When the outbox contains an entry for the same `(request_id, kind)` already, the
    /// journal path logs it, and the returned id belongs to no entry.
    pub async fn insert_new(&self, entry: NewEntry) -> Result<i64, OutboxError> {
        let Some(journal) = &self.inner.journal else {
            return self.insert_entry(entry).await;
        };
        let commands = self.inner.commands.as_ref();
        journal.append(
            entry,
            |insert| {
                commands.is_some_and(|commands| commands.send(Command::Journaled(insert)).is_ok())
            },
            &self.inner.db_path,
        )
    }

    /// Replaces the payload of entry `id`, whatever its state, and the customer id stored
    /// from it.
    pub async fn update_payload(
        &self,
        id: i64,
        payload: &serde_json::Value,
    ) -> Result<(), OutboxError> {
        let customer_id = customer_id_of(payload);
        let payload_json = payload.to_string();
        self.write(move |conn, now_ms| {
            mutations::update_payload(conn, id, customer_id.as_deref(), &payload_json, now_ms)
        })
        .await
    }

    /// Marks entry `id` done, from any state: the ledger's confirmation outranks an
    /// earlier dead-letter decision.
    pub async fn mark_done(&self, id: i64) -> Result<(), OutboxError> {
        self.write(move |conn, now_ms| mutations::mark_done(conn, id, now_ms))
            .await
    }

    /// Marks entry `id` done like [`Outbox::mark_done`] without waiting for the commit. The
    /// writer logs a failure, and the entry then stays pending until the worker checks it
    /// against the ledger. Writes sent before [`Outbox::close`] still commit.
    pub fn mark_done_detached(&self, id: i64) {
        let (answer, _) = oneshot::channel();
        let job = writer::job(
            self.inner.db_path.clone(),
            move |conn, now_ms| mutations::mark_done(conn, id, now_ms),
            answer,
        );
        let sent = self
            .inner
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::Detached(job)).is_ok());
        if !sent {
            tracing::warn!(
                outbox_id = id,
                "the outbox writer has stopped; the entry stays pending"
            );
        }
    }

    /// Waits until every write sent before this call has committed, including writes sent
    /// without waiting such as [`Outbox::mark_done_detached`]. The writer applies writes in the
    /// order it receives them. A journaled insert whose batch failed is the exception: the
    /// writer keeps trying it with later batches, and the journal keeps it meanwhile.
    pub async fn sync(&self) -> Result<(), OutboxError> {
        self.write(|_, _| Ok(())).await
    }

    /// Records a failed attempt on entry `id`: adds one to `attempts`, stores `error` and
    /// schedules the next attempt. The state is not changed.
    /// Makes the pending hold entry of `request_id`, if it has one, due now. Call it once the
    /// request's charge is recorded, because then nothing keeps the void waiting.
    pub async fn hold_due_now(&self, request_id: &str) -> Result<(), OutboxError> {
        let request_id = request_id.to_string();
        self.write(move |conn, now_ms| mutations::hold_due_now(conn, &request_id, now_ms))
            .await
    }

    pub async fn record_failure(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        let error = error.to_string();
        let next_attempt_ms = next_attempt_at.timestamp_millis();
        self.write(move |conn, now_ms| {
            mutations::record_failure(conn, id, &error, next_attempt_ms, now_ms)
        })
        .await
    }

    /// Moves entry `id` to the dead-letter list with `reason`. Fails with
    /// [`OutboxError::AlreadyDone`] for a done entry, because the ledger has recorded its operation.
    pub async fn dead_letter(&self, id: i64, reason: &str) -> Result<(), OutboxError> {
        let reason = reason.to_string();
        self.write(move |conn, now_ms| mutations::dead_letter(conn, id, &reason, now_ms))
            .await
    }

    /// Makes a dead or pending entry pending and due now, keeping its attempt count. A dead
    /// entry also gets a new age window, measured from now. Returns false when no entry has
    /// that id, and fails with [`OutboxError::AlreadyDone`] for a done entry.
    pub async fn retry(&self, id: i64) -> Result<bool, OutboxError> {
        self.write(move |conn, now_ms| mutations::retry(conn, id, now_ms))
            .await
    }

    /// Makes every dead entry pending and due now, each with a new age window. Returns how
    /// many there were.
    pub async fn retry_all_dead(&self) -> Result<u64, OutboxError> {
        self.write(mutations::retry_all_dead).await
    }

    /// Makes every pending entry due now, returning how many there were. Meant for startup,
    /// when no request of an earlier process is still posting its own entry.
    pub async fn retry_all_pending(&self) -> Result<u64, OutboxError> {
        self.write(mutations::retry_all_pending).await
    }

    /// Deletes done entries last updated before `older_than`, returning how many. Runs as
    /// several transactions of at most 1000 rows, so a failure can leave part deleted.
    pub async fn purge_done(&self, older_than: DateTime<Utc>) -> Result<u64, OutboxError> {
        let older_than_ms = older_than.timestamp_millis();
        let mut purged = 0;
        loop {
            // An entry whose record is still in a journal segment would come back with a
            // replay after a crash, so it stays until the segment is deleted.
            let below_id = self
                .inner
                .journal
                .as_ref()
                .and_then(|journal| journal.lowest_retained_id())
                .unwrap_or(i64::MAX);
            let deleted = self
                .write(move |conn, _| {
                    mutations::purge_done_chunk(conn, older_than_ms, below_id, PURGE_CHUNK)
                })
                .await?;
            purged += deleted;
            if deleted < PURGE_CHUNK.unsigned_abs() {
                return Ok(purged);
            }
        }
    }

    /// Returns the pending entries with `next_attempt_at <= now`, at most `limit`, ordered by
    /// `next_attempt_at` and then by id (oldest first).
    pub async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Entry>, OutboxError> {
        let now_ms = now.timestamp_millis();
        let limit = sql_limit(limit);
        self.read(move |conn| queries::due(conn, now_ms, limit))
            .await
    }

    /// Returns the earliest time a pending entry is due, or `None` when none is pending.
    pub async fn next_attempt_at(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        self.read(queries::next_attempt_at).await
    }

    pub async fn get(&self, id: i64) -> Result<Option<Entry>, OutboxError> {
        self.read(move |conn| queries::get(conn, id)).await
    }

    /// Returns the entries in `state`, at most `limit`, lowest id (oldest) first.
    pub async fn list(&self, state: EntryState, limit: usize) -> Result<Vec<Entry>, OutboxError> {
        let limit = sql_limit(limit);
        self.read(move |conn| queries::list(conn, state, limit))
            .await
    }

    pub async fn counts(&self) -> Result<Counts, OutboxError> {
        self.read(queries::counts).await
    }

    /// Returns whether request `request_id` has a charge entry that is still pending.
    pub async fn has_pending_charge(&self, request_id: &str) -> Result<bool, OutboxError> {
        let request_id = request_id.to_string();
        self.read(move |conn| queries::has_pending_charge(conn, &request_id))
            .await
    }

    /// Counts the pending and dead entries whose payload has a text `customer_id` field
    /// equal to `customer_id`.
    pub async fn counts_for_customer(&self, customer_id: &str) -> Result<Counts, OutboxError> {
        let customer_id = customer_id.to_string();
        self.read(move |conn| queries::counts_for_customer(conn, &customer_id))
            .await
    }

    /// Sends `operation` to the writer thread and waits until its batch has committed.
    async fn write<T, F>(&self, operation: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let db_path = &self.inner.db_path;
        let stopped = || OutboxError::WriterStopped {
            path: db_path.to_path_buf(),
        };

        let (answer, result) = oneshot::channel();
        let job = writer::job(db_path.clone(), operation, answer);
        let commands = self.inner.commands.as_ref().ok_or_else(stopped)?;
        commands.send(Command::Write(job)).map_err(|_| stopped())?;

        // A dropped result sender means the writer exited before committing this write.
        result.await.map_err(|_| stopped())?
    }

    async fn read<T, F>(&self, query: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || readers.run(query))
            .await
            .map_err(|error| OutboxError::ReadTask {
                path: self.inner.db_path.to_path_buf(),
                detail: error.to_string(),
            })?
    }
}

/// Serializes `payload` into a new entry, with the payload's `customer_id` field.
fn new_entry(
    request_id: &str,
    kind: EntryKind,
    payload: &serde_json::Value,
    next_attempt_at: Option<DateTime<Utc>>,
) -> NewEntry {
    NewEntry {
        request_id: request_id.to_string(),
        kind,
        customer_id: customer_id_of(payload),
        payload: payload.to_string(),
        next_attempt_at,
    }
}

/// Returns the payload's `customer_id` field when it is text, the values that
/// [`Outbox::counts_for_customer`] can match.
fn customer_id_of(payload: &serde_json::Value) -> Option<String> {
    let customer_id = payload.get("customer_id")?.as_str()?;
    Some(customer_id.to_string())
}

/// Converts a `limit` to SQLite's integer; larger than `i64::MAX` means no limit.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
