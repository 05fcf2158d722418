//! The durable outbox: every ledger operation tollgate owes (a usage charge, a hold void)
//! is stored here before it is sent to the ledger, and marked done once the ledger confirms
//! it. An entry that is still pending after a crash or a ledger outage is finished later by
//! the retry worker, which reads [`Outbox::due`].
//!
//! # Storage
//!
//! An embedded SQLite database in `<data_dir>/outbox.sqlite3` (with its `-wal` and `-shm`
//! files) in WAL mode, so reads run while the writer commits. Connections wait up to five
//! seconds for another connection's write lock (`busy_timeout`).
//!
//! One server owns a data directory: [`Outbox::open_server`] holds an exclusive advisory
//! lock on `<data_dir>/server.lock` until the last handle is dropped, and a second server
//! on the same directory fails with [`OutboxError::Locked`]. [`Outbox::open_shared`] takes
//! no lock, so the `tollgate outbox` CLI can list and retry entries while the server runs.
//!
//! # Durability
//!
//! A write returns `Ok` only once it would survive the failure the configured
//! [`Durability`] names:
//!
//! - [`Durability::Process`] sets `synchronous=NORMAL`. In WAL mode a commit is then in the
//!   operating system's page cache, so it survives `kill -9` or a crash of tollgate, but not
//!   a power loss or a kernel crash. The WAL is fsynced at checkpoints only.
//! - [`Durability::Power`] sets `synchronous=FULL`: the WAL is fsynced on every commit, so
//!   a commit survives a power loss.
//!
//! With [`Durability::Process`], the server's [`Outbox::insert_new`] does not wait for a
//! commit. It appends the entry to the insert journal (`journal.rs`) with one `write` call,
//! which reaches the page cache just as a commit does. The writer commits the entry with its
//! next batch, and the next start stores every journal entry that never committed. Every
//! other write waits for its commit.
//!
//! The server checkpoints on its own thread, "outbox-checkpoint", every 200 ms in PASSIVE
//! mode, so no write waits for a checkpoint. The writer checkpoints by itself only if the WAL
//! reaches 16,384 pages.
//!
//! [`Outbox::open_shared`] always uses `synchronous=FULL`, because the CLI writes rarely.
//!
//! # Group commit
//!
//! One thread, "outbox-writer", owns the write connection. Each write is sent to it over a
//! channel. It takes every write already waiting (up to 1024) into one transaction, commits
//! once and then sends each caller its result, so concurrent writers share one commit and
//! one fsync. A write whose future is dropped after it was sent is still carried out. Reads
//! use a small pool of separate connections and run on tokio's blocking threads.
//!
//! # Entry life cycle
//!
//! An entry is inserted `pending`, becomes `done` when the ledger confirms it, or `dead`
//! when the worker gives up on it. [`Outbox::retry`] makes a dead entry pending again, with a
//! new age window (`age_started_at`) for the worker's `max_age`.
//! Done entries are kept until [`Outbox::purge_done`] deletes them. The server's worker calls
//! it every ten minutes for entries done longer than `outbox.done_retention` ago, and it keeps
//! an entry while a journal segment still contains it, because a replay would revive it.
//!
//! The payload is JSON that the store does not interpret. Its `customer_id` field is also
//! stored in a column of its own, which [`Outbox::counts_for_customer`] searches.

mod checkpoint;
mod error;
mod journal;
mod mutations;
mod operations;
mod queries;
mod readers;
mod schema;
pub mod view;
mod writer;

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use checkpoint::{Checkpointer, WRITER_FALLBACK_PAGES};
use journal::Journal;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::config::Durability;
use readers::ReaderPool;
use schema::Role;
use writer::{Command, WriterStatus};

pub use error::OutboxError;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "outbox.sqlite3";

/// File name of the server's lock inside the data directory.
pub const LOCK_FILE: &str = "server.lock";

/// A handle to the outbox of one data directory. Clones share the writer thread and the
/// read connections. The writer stops when the last handle is dropped or on [`close`].
///
/// [`close`]: Outbox::close
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

/// Kind of ledger operation an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    VoidHold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Not yet confirmed by the ledger, so the worker retries it from `next_attempt_at`.
    Pending,
    /// Confirmed by the ledger.
    Done,
    /// Given up on by the worker. It waits for a person to retry it.
    Dead,
}

/// One stored ledger operation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub request_id: String,
    pub kind: EntryKind,
    pub payload: serde_json::Value,
    pub state: EntryState,
    /// Failed attempts recorded with [`Outbox::record_failure`].
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Earliest time the worker tries the entry again.
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    /// Start of the entry's age window for `outbox.max_age`: its creation, or the last
    /// [`Outbox::retry`] that revived it from the dead-letter list.
    pub age_started_at: DateTime<Utc>,
}

/// An entry to insert, with its payload serialized already.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub request_id: String,
    pub kind: EntryKind,
    /// The payload's `customer_id` field, which [`Outbox::counts_for_customer`] searches.
    /// `None` when the payload has no text field of that name.
    pub customer_id: Option<String>,
    /// The payload as JSON text.
    pub payload: String,
    /// When the worker may first post the entry. `None` makes it due at once.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Numbers of entries that still need work.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub pending: u64,
    /// Creation time of the oldest pending entry.
    pub oldest_pending: Option<DateTime<Utc>>,
    pub dead: u64,
}

struct Inner {
    db_path: Arc<Path>,
    /// `None` only while the handle is dropped.
    commands: Option<Sender<Command>>,
    /// The insert journal of a server with [`Durability::Process`].
    journal: Option<Arc<Journal>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    status: Arc<WriterStatus>,
    readers: Arc<ReaderPool>,
    /// Locked for as long as this field lives, and `None` for a shared handle.
    _server_lock: Option<File>,
    /// The server's checkpoint thread; `None` for a shared handle.
    checkpointer: Option<Checkpointer>,
}

impl EntryKind {
    /// Returns the name used in the database and in serialized entries.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::VoidHold => "void_hold",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        match text {
            "charge" => Some(EntryKind::Charge),
            "void_hold" => Some(EntryKind::VoidHold),
            _ => None,
        }
    }
}

impl EntryState {
    /// Returns the name used in the database and in serialized entries.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Done => "done",
            EntryState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<EntryState> {
        match text {
            "pending" => Some(EntryState::Pending),
            "done" => Some(EntryState::Done),
            "dead" => Some(EntryState::Dead),
            _ => None,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outbox {
    /// Opens the outbox of the server that owns `data_dir`, creating the directory and the
    /// database when missing. Fails with [`OutboxError::Locked`] while another server
    /// has locked the directory.
    pub fn open_server(data_dir: &Path, durability: Durability) -> Result<Outbox, OutboxError> {
        fs::create_dir_all(data_dir).map_err(|source| OutboxError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock = lock_data_dir(data_dir)?;

        let role = Role::Writer {
            durability,
            create: true,
        };
        Outbox::open(data_dir, role, Some(lock))
    }

    /// Opens an existing outbox without the server lock, for the CLI while a server runs.
    /// Fails with [`OutboxError::Missing`] when `data_dir` contains no outbox database.
    pub fn open_shared(data_dir: &Path) -> Result<Outbox, OutboxError> {
        let db_path = data_dir.join(DATABASE_FILE);
        if !db_path.is_file() {
            return Err(OutboxError::Missing { path: db_path });
        }

        let role = Role::Writer {
            durability: Durability::Power,
            create: false,
        };
        Outbox::open(data_dir, role, None)
    }

    fn open(data_dir: &Path, role: Role, lock: Option<File>) -> Result<Outbox, OutboxError> {
        let db_path: Arc<Path> = data_dir.join(DATABASE_FILE).into();
        let mut conn = schema::open(&db_path, role)?;
        schema::migrate(&mut conn, &db_path)?;
        // The server checkpoints on a thread of its own, off the commit path. The CLI's
        // rare writes keep SQLite's automatic checkpoint.
        let checkpointer = match lock {
            Some(_) => {
                conn.pragma_update(None, "wal_autocheckpoint", WRITER_FALLBACK_PAGES)
                    .map_err(|source| OutboxError::Sqlite {
                        path: db_path.to_path_buf(),
                        source,
                    })?;
                let own = schema::open(&db_path, role)?;
                Some(Checkpointer::spawn(own, db_path.clone())?)
            }
            None => None,
        };

        // Only the server journals, and only where the page cache is durable enough. Every
        // server start replays what an earlier one left in the journal.
        let journal = match (&lock, role) {
            (
                Some(_),
                Role::Writer {
                    durability: Durability::Process,
                    ..
                },
            ) => Some(Arc::new(Journal::open(data_dir, &mut conn)?)),
            (Some(_), _) => {
                journal::replay(data_dir, &mut conn)?;
                None
            }
            (None, _) => None,
        };

        let status = Arc::new(WriterStatus::new());
        let (commands, writer_thread) =
            writer::spawn(conn, db_path.clone(), status.clone(), journal.clone())?;

        let inner = Inner {
            readers: Arc::new(ReaderPool::new(db_path.clone())),
            db_path,
            commands: Some(commands),
            journal,
            writer_thread: Mutex::new(Some(writer_thread)),
            status,
            _server_lock: lock,
            checkpointer,
        };
        Ok(Outbox {
            inner: Arc::new(inner),
        })
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.db_path
    }

    /// Returns whether the writer thread runs and the last write succeeded. Reads two
    /// atomics, so a readiness probe may call it on every request.
    pub fn writable(&self) -> bool {
        let status = &self.inner.status;
        status.alive.load(Ordering::Acquire) && status.last_write_ok.load(Ordering::Acquire)
    }

    /// Number of write transactions the writer thread has committed since open. Each one
    /// carries every write that was waiting when it began.
    pub fn commit_count(&self) -> u64 {
        self.inner.status.commits.load(Ordering::Relaxed)
    }

    /// Commits the writes sent before this call, then stops the writer thread and closes
    /// its connection. Later writes on any clone fail with [`OutboxError::WriterStopped`],
    /// but reads keep working. The server lock is held until the last handle is dropped.
    pub async fn close(&self) {
        let Some(commands) = &self.inner.commands else {
            return;
        };
        let (ack, stopped) = oneshot::channel();
        if commands.send(Command::Stop(ack)).is_ok() {
            // An error means the writer has already exited, which is the state awaited here.
            let _ = stopped.await;
        }
    }
}

impl Drop for Inner {
    /// Lets the writer commit what it has received, then waits for its thread to exit, so
    /// the lock is released only after the last write. This blocks the dropping thread
    /// until the queued writes are committed (usually one batch), and longer while the CLI
    /// holds the write lock.
    fn drop(&mut self) {
        drop(self.commands.take());

        let handle = self
            .writer_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!(path = %self.db_path.display(), "outbox writer thread panicked");
        }
        drop(self.checkpointer.take());
    }
}

/// Takes the exclusive advisory lock on `<data_dir>/server.lock`, returning the open file
/// that keeps the lock.
fn lock_data_dir(data_dir: &Path) -> Result<File, OutboxError> {
    let path = data_dir.join(LOCK_FILE);
    let lock_error = |source| OutboxError::LockFile {
        path: path.clone(),
        source,
    };

    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;

    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(OutboxError::Locked {
            dir: data_dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(lock_error(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_state_names_round_trip() {
        for kind in [EntryKind::Charge, EntryKind::VoidHold] {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        for state in [EntryState::Pending, EntryState::Done, EntryState::Dead] {
            assert_eq!(EntryState::parse(state.as_str()), Some(state));
        }
        assert_eq!(EntryKind::parse("Charge"), None);
        assert_eq!(EntryState::parse(""), None);
    }

    #[test]
    fn outbox_handle_is_send_sync_clone() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<Outbox>();
    }

    #[test]
    fn entry_serializes_names_in_snake_case() {
        let time = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let entry = Entry {
            id: 3,
            request_id: "req-1".to_string(),
            kind: EntryKind::VoidHold,
            payload: serde_json::json!({ "hold": "tg:req-1:hold" }),
            state: EntryState::Dead,
            attempts: 2,
            created_at: time,
            updated_at: time,
            next_attempt_at: time,
            last_error: Some("ledger timed out".to_string()),
            dead_reason: None,
            age_started_at: time,
        };

        let json = serde_json::to_value(&entry).unwrap();

        assert_eq!(json["kind"], "void_hold");
        assert_eq!(json["state"], "dead");
        assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
        assert_eq!(json["payload"]["hold"], "tg:req-1:hold");
        assert_eq!(json["dead_reason"], serde_json::Value::Null);
    }
}
