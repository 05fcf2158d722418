//! The writer thread. It owns the only write connection of its process and commits every
//! write waiting in its channel in one transaction (group commit), so concurrent callers
//! share one fsync in place of paying one each.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::OutboxError;
use super::error::StoreError;
use super::journal::{Journal, JournaledInsert};
use super::schema::SCHEMA_VERSION;

/// Maximum number of writes in one transaction. It bounds how long one commit holds SQLite's write lock
/// and so how long the CLI waits for it.
const MAX_BATCH: usize = 1024;

/// How long the writer waits for more writes when no caller waits for the ones it has. Writes
/// that share a commit share its WAL frames: at 1,000 requests per second a 2 ms wait puts
/// the inserts and done-marks of several requests into one commit. A write that its caller
/// waits for ends the wait at once.
const LINGER: Duration = Duration::from_millis(2);

/// How often the writer tries a write of its own while the last write failed, so readiness
/// recovers even when no caller writes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A message to the writer thread.
pub(super) enum Command {
    /// A write whose caller waits for the commit.
    Write(Job),
    /// A write whose caller does not wait for the commit.
    Detached(Job),
    /// An entry already in the journal. Its caller does not wait for the commit either.
    Journaled(JournaledInsert),
    /// Commit what came before, close the connection, acknowledge and exit.
    Stop(oneshot::Sender<()>),
}

/// One write waiting for the writer thread, with the channel that returns its result.
pub(super) type Job = Box<dyn Write>;

/// The health of the writer, shared with every `Outbox` handle.
#[derive(Debug)]
pub(super) struct WriterStatus {
    pub(super) alive: AtomicBool,
    pub(super) last_write_ok: AtomicBool,
    pub(super) commits: AtomicU64,
}

/// Outcome of one write, before the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Applied {
    Succeeded,
    /// The entry does not allow the write (missing, or done), but the database is fine.
    Rejected,
    DatabaseFailed,
}

/// A write that the writer applies inside the batch transaction. Its caller gets the result
/// after the commit.
pub(super) trait Write: Send {
    fn apply(&mut self, conn: &Connection, now_ms: i64) -> Applied;

    /// Sends the result to the caller. `commit_error` is set when the batch did not commit.
    fn reply(self: Box<Self>, commit_error: Option<&Arc<rusqlite::Error>>);
}

struct PendingWrite<T, F> {
    db_path: Arc<Path>,
    operation: Option<F>,
    result: Option<Result<T, StoreError>>,
    answer: oneshot::Sender<Result<T, OutboxError>>,
}

struct Writer {
    conn: Connection,
    db_path: Arc<Path>,
    status: Arc<WriterStatus>,
    /// Batches that failed since the last success, for the log line on recovery.
    failed_batches: u64,
    journal: Option<Arc<Journal>>,
    /// Journaled inserts whose batch failed, oldest first. Every later batch tries them
    /// again before its own writes.
    unstored: Vec<JournaledInsert>,
    /// Every journaled id up to this one has committed.
    committed_through: i64,
}

/// Sets `alive` to false when the thread ends, including by a panic.
struct AliveGuard(Arc<WriterStatus>);

/// Wraps `operation` into a job whose result arrives on `answer` once its batch commits.
/// The operation receives the batch time in Unix milliseconds.
pub(super) fn job<T, F>(
    db_path: Arc<Path>,
    operation: F,
    answer: oneshot::Sender<Result<T, OutboxError>>,
) -> Job
where
    T: Send + 'static,
    F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(PendingWrite {
        db_path,
        operation: Some(operation),
        result: None,
        answer,
    })
}

/// Starts the thread "outbox-writer" that owns `conn`. It runs until a `Stop` command or
/// until every sender is dropped, committing what it received first either way.
pub(super) fn spawn(
    conn: Connection,
    db_path: Arc<Path>,
    status: Arc<WriterStatus>,
    journal: Option<Arc<Journal>>,
) -> Result<(Sender<Command>, JoinHandle<()>), OutboxError> {
    let (commands, receiver) = mpsc::channel();
    let writer = Writer {
        conn,
        db_path: db_path.clone(),
        status,
        failed_batches: 0,
        journal,
        unstored: Vec::new(),
        committed_through: 0,
    };

    let handle = thread::Builder::new()
        .name("outbox-writer".to_string())
        .spawn(move || writer.run(receiver))
        .map_err(|source| OutboxError::SpawnWriter {
            path: db_path.to_path_buf(),
            source,
        })?;
    Ok((commands, handle))
}

impl WriterStatus {
    pub(super) fn new() -> Self {
        WriterStatus {
            alive: AtomicBool::new(true),
            last_write_ok: AtomicBool::new(true),
            commits: AtomicU64::new(0),
        }
    }
}

impl<T, F> Write for PendingWrite<T, F>
where
    T: Send,
    F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection, now_ms: i64) -> Applied {
        let Some(operation) = self.operation.take() else {
            return Applied::Succeeded;
        };
        let result = operation(conn, now_ms);
        let applied = match &result {
            Ok(_) => Applied::Succeeded,
            Err(error) if error.is_database_failure() => Applied::DatabaseFailed,
            Err(_) => Applied::Rejected,
        };
        self.result = Some(result);
        applied
    }

    fn reply(self: Box<Self>, commit_error: Option<&Arc<rusqlite::Error>>) {
        let path = &self.db_path;
        let outcome = match (self.result, commit_error) {
            (Some(Err(error)), _) => Err(error.at(path)),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(source)) => Err(OutboxError::Commit {
                path: path.to_path_buf(),
                source: source.clone(),
            }),
            // A batch commits only after applying every job, so this arm is never taken.
            (None, None) => Err(OutboxError::WriterStopped {
                path: path.to_path_buf(),
            }),
        };
        // The caller may have stopped waiting (its future was dropped) or never waited. The
        // write is kept, and a failure that nobody receives is logged here.
        if let Err(Err(error)) = self.answer.send(outcome) {
            tracing::error!(path = %path.display(), %error, "outbox write failed");
        }
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
    }
}

impl Writer {
    fn run(self, commands: Receiver<Command>) {
        let alive = AliveGuard(self.status.clone());
        let db_path = self.db_path.clone();
        tracing::info!(path = %db_path.display(), "outbox writer started");

        // `serve` consumes the writer, so the connection is closed here. The channel and
        // `alive` go next, so when `close` returns a new write fails at once and
        // `writable()` is false.
        let stop_ack = self.serve(&commands);
        drop(commands);
        drop(alive);
        tracing::info!(path = %db_path.display(), "outbox writer stopped");

        if let Some(ack) = stop_ack {
            let _ = ack.send(());
        }
    }

    fn serve(mut self, commands: &Receiver<Command>) -> Option<oneshot::Sender<()>> {
        let mut stop_ack = None;
        while let Some(first) = self.next_command(commands) {
            let mut batch = drain(first, commands);
            if !batch.waited && batch.stop_ack.is_none() {
                linger(&mut batch, commands);
            }
            if !batch.jobs.is_empty() || !batch.inserts.is_empty() {
                self.commit_batch(batch.jobs, batch.inserts);
            }
            if batch.stop_ack.is_some() {
                stop_ack = batch.stop_ack;
                break;
            }
        }
        if let Some(journal) = &self.journal {
            journal.close(self.committed_through);
        }
        stop_ack
    }

    /// Blocks for the next command. While the last write failed it wakes every
    /// `PROBE_INTERVAL` to try a write of its own.
    fn next_command(&mut self, commands: &Receiver<Command>) -> Option<Command> {
        loop {
            if self.status.last_write_ok.load(Ordering::Acquire) {
                return commands.recv().ok();
            }
            match commands.recv_timeout(PROBE_INTERVAL) {
                Ok(command) => return Some(command),
                Err(RecvTimeoutError::Timeout) => self.probe(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Commits the journaled inserts that failed before, then `inserts`, then `jobs`, in one
    /// transaction. Inserts go first: a job in the same batch may update one of them, and
    /// none can concern an entry inserted after it was sent.
    fn commit_batch(&mut self, mut jobs: Vec<Job>, inserts: Vec<JournaledInsert>) {
        let now_ms = Utc::now().timestamp_millis();
        let mut inserts: Vec<BatchInsert> = std::mem::take(&mut self.unstored)
            .into_iter()
            .chain(inserts)
            .map(|insert| BatchInsert {
                insert,
                failed: false,
            })
            .collect();
        let outcome = self.run_transaction(&mut inserts, &mut jobs, now_ms);

        let commit_error = match outcome {
            Ok(all_succeeded) => {
                self.status.commits.fetch_add(1, Ordering::Relaxed);
                self.note_outcome(all_succeeded, None);
                None
            }
            Err(error) => {
                self.note_outcome(false, Some(&error));
                // Nothing of the batch is stored, so every insert waits for the next one.
                for insert in &mut inserts {
                    insert.failed = true;
                }
                Some(Arc::new(error))
            }
        };
        self.settle_inserts(inserts);

        for job in jobs {
            job.reply(commit_error.as_ref());
        }
    }

    /// Keeps the journaled inserts that are not stored for the next batch, and lets the
    /// journal delete the segments whose entries are all stored.
    fn settle_inserts(&mut self, inserts: Vec<BatchInsert>) {
        let Some(last) = inserts.last().map(|insert| insert.insert.id) else {
            return;
        };
        self.unstored = inserts
            .into_iter()
            .filter(|insert| insert.failed)
            .map(|insert| insert.insert)
            .collect();
        // Ids reach the writer in ascending order, so everything before the oldest unstored
        // insert is stored.
        let through = self.unstored.first().map_or(last, |oldest| oldest.id - 1);
        if through > self.committed_through {
            self.committed_through = through;
            if let Some(journal) = &self.journal {
                journal.release_through(through);
            }
        }
    }

    /// Applies `inserts` and then `jobs` in one IMMEDIATE transaction and commits it.
    /// Returns whether nothing hit a database failure. A failure after BEGIN rolls the
    /// transaction back.
    ///
    /// BEGIN and COMMIT come from the statement cache. rusqlite 0.43's `Transaction` runs
    /// both through `execute_batch`, which prepares them anew for every batch.
    fn run_transaction(
        &mut self,
        inserts: &mut [BatchInsert],
        jobs: &mut [Job],
        now_ms: i64,
    ) -> rusqlite::Result<bool> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let outcome = self.apply_and_commit(inserts, jobs, now_ms);
        if outcome.is_err() && !self.conn.is_autocommit() {
            // The error that ended the batch is the one to report, so a failed rollback is
            // only logged.
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(path = %self.db_path.display(), %error, "rolling back a failed outbox batch failed, so later writes may fail until tollgate restarts");
            }
        }
        outcome
    }

    fn apply_and_commit(
        &mut self,
        inserts: &mut [BatchInsert],
        jobs: &mut [Job],
        now_ms: i64,
    ) -> rusqlite::Result<bool> {
        // Each insert and each job runs at most one modifying statement, and SQLite undoes a
        // failed statement by itself, so one failure leaves the others in the transaction.
        let mut all_succeeded = true;
        for batch_insert in inserts.iter_mut() {
            match batch_insert.insert.apply(&self.conn) {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    path = %self.db_path.display(),
                    outbox_id = batch_insert.insert.id,
                    request_id = %batch_insert.insert.entry.request_id,
                    "the outbox contained an entry for this request and kind already, so the new one was not stored"
                ),
                Err(error) => {
                    all_succeeded = false;
                    batch_insert.failed = true;
                    // The batch's failure is logged once, as an error, by `note_outcome`.
                    tracing::debug!(
                        path = %self.db_path.display(),
                        outbox_id = batch_insert.insert.id,
                        request_id = %batch_insert.insert.entry.request_id,
                        %error,
                        "journaled outbox insert failed, so the writer tries it again with the next batch"
                    );
                    if self.conn.is_autocommit() {
                        return Err(rolled_back_error());
                    }
                }
            }
        }
        for job in jobs.iter_mut() {
            if job.apply(&self.conn, now_ms) != Applied::DatabaseFailed {
                continue;
            }
            all_succeeded = false;

            // Some errors (a full disk, an I/O error) roll back the whole transaction.
            // Later jobs would then run in autocommit mode, so the batch stops here.
            if self.conn.is_autocommit() {
                return Err(rolled_back_error());
            }
        }

        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(all_succeeded)
    }

    /// Tries the journaled inserts that failed, or else an empty write: an IMMEDIATE
    /// transaction that rewrites the schema version.
    fn probe(&mut self) {
        if !self.unstored.is_empty() {
            self.commit_batch(Vec::new(), Vec::new());
            return;
        }
        let outcome = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()
            });
        match outcome {
            Ok(()) => self.note_outcome(true, None),
            Err(error) => self.note_outcome(false, Some(&error)),
        }
    }

    /// Records whether the last write succeeded and logs the first failure and the
    /// recovery, not every failed batch in between.
    fn note_outcome(&mut self, succeeded: bool, error: Option<&rusqlite::Error>) {
        let was_ok = self.status.last_write_ok.swap(succeeded, Ordering::AcqRel);
        let path = self.db_path.display();

        if succeeded {
            if !was_ok {
                tracing::info!(path = %path, failed_batches = self.failed_batches, "outbox writes succeed again");
            }
            self.failed_batches = 0;
            return;
        }

        self.failed_batches += 1;
        let error = error
            .map(ToString::to_string)
            .unwrap_or_else(|| "a write statement failed".to_string());
        if was_ok {
            tracing::error!(path = %path, error = %error, "outbox write failed, so the outbox reports not writable until a write succeeds");
        } else {
            tracing::debug!(path = %path, error = %error, failed_batches = self.failed_batches, "outbox write failed again");
        }
    }
}

/// The commands of one transaction.
struct Batch {
    jobs: Vec<Job>,
    inserts: Vec<JournaledInsert>,
    stop_ack: Option<oneshot::Sender<()>>,
    /// Whether a caller waits for this batch's commit.
    waited: bool,
}

impl Batch {
    fn len(&self) -> usize {
        self.jobs.len() + self.inserts.len()
    }

    /// Adds `command`. Returns false for `Stop`, which ends the batch.
    fn push(&mut self, command: Command) -> bool {
        match command {
            Command::Write(job) => {
                self.jobs.push(job);
                self.waited = true;
            }
            Command::Detached(job) => self.jobs.push(job),
            Command::Journaled(insert) => self.inserts.push(insert),
            Command::Stop(ack) => {
                self.stop_ack = Some(ack);
                return false;
            }
        }
        true
    }
}

/// A journaled insert inside a batch, and whether it failed to be stored.
struct BatchInsert {
    insert: JournaledInsert,
    failed: bool,
}

/// Collects `first` and every command already waiting, up to `MAX_BATCH` writes. A `Stop`
/// ends the batch, and commands queued behind it are never run.
fn drain(first: Command, commands: &Receiver<Command>) -> Batch {
    let mut batch = Batch {
        jobs: Vec::new(),
        inserts: Vec::new(),
        stop_ack: None,
        waited: false,
    };
    let mut next = Some(first);

    while let Some(command) = next {
        if !batch.push(command) {
            return batch;
        }
        next = if batch.len() < MAX_BATCH {
            commands.try_recv().ok()
        } else {
            None
        };
    }
    batch
}

/// Adds the commands that arrive within [`LINGER`] to a batch that no caller waits for, until a
/// caller waits, a `Stop` arrives or the batch is full.
fn linger(batch: &mut Batch, commands: &Receiver<Command>) {
    let deadline = std::time::Instant::now() + LINGER;
    while batch.len() < MAX_BATCH && !batch.waited {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match commands.recv_timeout(left) {
            Ok(command) => {
                if !batch.push(command) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn rolled_back_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("transaction rolled back after an earlier write in it failed".to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::mutations;
    use crate::outbox::{EntryKind, NewEntry};

    type Answer<T> = oneshot::Receiver<Result<T, OutboxError>>;

    fn writer() -> Writer {
        let mut conn = Connection::open_in_memory().unwrap();
        let db_path: Arc<Path> = Path::new(":memory:").into();
        crate::outbox::schema::migrate(&mut conn, &db_path).unwrap();
        Writer {
            conn,
            db_path,
            status: Arc::new(WriterStatus::new()),
            failed_batches: 0,
            journal: None,
            unstored: Vec::new(),
            committed_through: 0,
        }
    }

    fn insert_job(request_id: &'static str) -> (Job, Answer<i64>) {
        let (answer, result) = oneshot::channel();
        let entry = NewEntry {
            request_id: request_id.to_string(),
            kind: EntryKind::Charge,
            customer_id: None,
            payload: "{}".to_string(),
            next_attempt_at: None,
        };
        let operation =
            move |conn: &Connection, now_ms| mutations::insert(conn, None, &entry, now_ms);
        (job(Path::new(":memory:").into(), operation, answer), result)
    }

    fn failing_job(error: fn() -> StoreError) -> (Job, Answer<()>) {
        let (answer, result) = oneshot::channel();
        let operation = move |_: &Connection, _| Err::<(), _>(error());
        (job(Path::new(":memory:").into(), operation, answer), result)
    }

    fn count_entries(writer: &Writer) -> i64 {
        writer
            .conn
            .query_row("SELECT COUNT(*) FROM entries", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn batch_commits_once_for_all_jobs() {
        let mut writer = writer();
        let (first, mut first_result) = insert_job("req-1");
        let (second, mut second_result) = insert_job("req-2");

        writer.commit_batch(vec![first, second], Vec::new());

        assert_eq!(writer.status.commits.load(Ordering::Relaxed), 1);
        assert!(first_result.try_recv().unwrap().is_ok());
        assert!(second_result.try_recv().unwrap().is_ok());
        assert_eq!(count_entries(&writer), 2);
    }

    #[test]
    fn rejected_job_keeps_rest_of_batch() {
        let mut writer = writer();
        let (missing, mut missing_result) = failing_job(|| StoreError::NotFound { id: 9 });
        let (insert, mut insert_result) = insert_job("req-1");

        writer.commit_batch(vec![missing, insert], Vec::new());

        let missing = missing_result.try_recv().unwrap();
        assert!(matches!(missing, Err(OutboxError::NotFound { id: 9, .. })));
        assert!(insert_result.try_recv().unwrap().is_ok());
        assert_eq!(count_entries(&writer), 1);
        assert!(writer.status.last_write_ok.load(Ordering::Acquire));
    }

    #[test]
    fn database_error_marks_not_writable_until_success() {
        let mut writer = writer();
        let (broken, mut broken_result) = failing_job(|| {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                None,
            ))
        });
        let (insert, mut insert_result) = insert_job("req-1");

        writer.commit_batch(vec![broken, insert], Vec::new());

        assert!(matches!(
            broken_result.try_recv().unwrap(),
            Err(OutboxError::Sqlite { .. })
        ));
        assert!(insert_result.try_recv().unwrap().is_ok());
        assert!(!writer.status.last_write_ok.load(Ordering::Acquire));

        writer.probe();
        assert!(writer.status.last_write_ok.load(Ordering::Acquire));
    }

    #[test]
    fn failed_begin_fails_every_job() {
        let mut writer = writer();
        writer.conn.execute_batch("BEGIN").unwrap();
        let (insert, mut insert_result) = insert_job("req-1");

        writer.commit_batch(vec![insert], Vec::new());

        assert!(matches!(
            insert_result.try_recv().unwrap(),
            Err(OutboxError::Commit { .. })
        ));
        assert_eq!(writer.status.commits.load(Ordering::Relaxed), 0);
        assert!(!writer.status.last_write_ok.load(Ordering::Acquire));
    }

    #[test]
    fn failed_commit_rolls_back_batch() {
        let mut writer = writer();
        writer
            .conn
            .execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (
                     parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
                 );",
            )
            .unwrap();
        // A deferred foreign key passes the statement and fails the COMMIT.
        let (answer, mut orphan_result) = oneshot::channel();
        let insert_orphan = |conn: &Connection, _| {
            conn.execute("INSERT INTO child (parent_id) VALUES (7)", [])?;
            Ok(())
        };
        let orphan = job(Path::new(":memory:").into(), insert_orphan, answer);
        let (insert, mut insert_result) = insert_job("req-1");

        writer.commit_batch(vec![orphan, insert], Vec::new());

        assert!(matches!(
            orphan_result.try_recv().unwrap(),
            Err(OutboxError::Commit { .. })
        ));
        assert!(matches!(
            insert_result.try_recv().unwrap(),
            Err(OutboxError::Commit { .. })
        ));
        assert!(writer.conn.is_autocommit(), "the batch is rolled back");
        assert_eq!(count_entries(&writer), 0);

        let (next, mut next_result) = insert_job("req-2");
        writer.commit_batch(vec![next], Vec::new());
        assert!(next_result.try_recv().unwrap().is_ok());
        assert_eq!(count_entries(&writer), 1);
    }

    fn journaled(id: i64, request_id: &str) -> JournaledInsert {
        JournaledInsert {
            id,
            created_ms: 1_700_000_000_000,
            entry: NewEntry {
                request_id: request_id.to_string(),
                kind: EntryKind::Charge,
                customer_id: None,
                payload: "{}".to_string(),
                next_attempt_at: None,
            },
        }
    }

    fn state_of(writer: &Writer, id: i64) -> String {
        writer
            .conn
            .query_row("SELECT state FROM entries WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .unwrap()
    }

    #[test]
    fn batch_applies_inserts_before_jobs() {
        let mut writer = writer();
        let (answer, mut done_result) = oneshot::channel();
        let mark = job(
            Path::new(":memory:").into(),
            |conn, now_ms| mutations::mark_done(conn, 5, now_ms),
            answer,
        );

        writer.commit_batch(vec![mark], vec![journaled(5, "req-1")]);

        assert!(done_result.try_recv().unwrap().is_ok());
        assert_eq!(state_of(&writer, 5), "done");
        assert_eq!(writer.committed_through, 5);
        assert!(writer.unstored.is_empty());
    }

    #[test]
    fn failed_batch_keeps_inserts() {
        let mut writer = writer();
        writer.conn.execute_batch("BEGIN").unwrap();

        writer.commit_batch(Vec::new(), vec![journaled(3, "req-1")]);

        assert_eq!(writer.unstored.len(), 1);
        assert!(writer.committed_through < 3, "entry 3 is not stored");
        writer.conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(count_entries(&writer), 0);

        writer.commit_batch(Vec::new(), vec![journaled(4, "req-2")]);

        assert_eq!(count_entries(&writer), 2);
        assert!(writer.unstored.is_empty());
        assert_eq!(writer.committed_through, 4);
    }

    #[test]
    fn probe_retries_journaled_inserts() {
        let mut writer = writer();
        writer.conn.execute_batch("BEGIN").unwrap();
        writer.commit_batch(Vec::new(), vec![journaled(3, "req-1")]);
        writer.conn.execute_batch("ROLLBACK").unwrap();

        writer.probe();

        assert_eq!(count_entries(&writer), 1);
        assert!(writer.status.last_write_ok.load(Ordering::Acquire));
        assert_eq!(writer.committed_through, 3);
    }

    #[test]
    fn linger_stops_at_waited_write() {
        let (commands, receiver) = mpsc::channel();
        let (first, _first_result) = insert_job("req-1");
        let (detached, _detached_result) = insert_job("req-2");
        let (waited, _waited_result) = insert_job("req-3");
        let (after, _after_result) = insert_job("req-4");
        let mut batch = drain(Command::Detached(first), &receiver);
        assert!(!batch.waited);

        commands.send(Command::Detached(detached)).unwrap();
        commands
            .send(Command::Journaled(journaled(9, "req-j")))
            .unwrap();
        commands.send(Command::Write(waited)).unwrap();
        commands.send(Command::Write(after)).unwrap();
        linger(&mut batch, &receiver);

        assert!(batch.waited);
        assert_eq!(
            batch.jobs.len(),
            3,
            "the wait ends at the first waited write"
        );
        assert_eq!(batch.inserts.len(), 1);
        assert!(
            receiver.try_recv().is_ok(),
            "the rest is left for the next batch"
        );
    }

    #[test]
    fn linger_stops_at_stop_or_timeout() {
        let (commands, receiver) = mpsc::channel();
        let (first, _first_result) = insert_job("req-1");
        let mut batch = drain(Command::Detached(first), &receiver);

        linger(&mut batch, &receiver);
        assert_eq!(batch.len(), 1, "nothing arrived within the wait");

        let (ack, _stopped) = oneshot::channel();
        commands.send(Command::Stop(ack)).unwrap();
        linger(&mut batch, &receiver);
        assert!(batch.stop_ack.is_some());
    }

    #[test]
    fn drain_stops_at_stop_command() {
        let (commands, receiver) = mpsc::channel();
        let (first, _first_result) = insert_job("req-1");
        let (second, _second_result) = insert_job("req-2");
        let (after_stop, _after_stop_result) = insert_job("req-3");
        let (ack, _stopped) = oneshot::channel();
        commands.send(Command::Write(second)).unwrap();
        commands.send(Command::Stop(ack)).unwrap();
        commands.send(Command::Write(after_stop)).unwrap();

        let batch = drain(Command::Write(first), &receiver);

        assert_eq!(batch.jobs.len(), 2);
        assert!(batch.stop_ack.is_some());
    }
}
