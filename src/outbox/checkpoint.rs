//! The checkpoint thread. SQLite's automatic checkpoint runs inside the commit that crosses
//! its threshold, so one write in a few hundred waited for a whole checkpoint, fsync
//! included. The server's writer therefore checkpoints only as a fallback. This thread, with
//! a connection of its own, copies the WAL into the database file every [`INTERVAL`] in
//! PASSIVE mode, which SQLite documents as not waiting for readers or writers.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;

use super::OutboxError;

/// Time between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL size in pages at which the writer checkpoints by itself: a fallback for when this
/// thread falls behind, well above what it lets the WAL reach.
pub(super) const WRITER_FALLBACK_PAGES: u32 = 16_384;

/// The running thread. Dropping the handle stops the thread and waits for it.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread "outbox-checkpoint" on `conn`, a read-write connection to the
    /// database at `db_path`.
    pub(super) fn spawn(conn: Connection, db_path: Arc<Path>) -> Result<Self, OutboxError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let path = db_path.clone();
        let thread = thread::Builder::new()
            .name("outbox-checkpoint".to_string())
            .spawn(move || {
                let mut failing = false;
                // A message or a dropped sender both mean stop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    failing = checkpoint(&conn, &path, failing);
                }
            })
            .map_err(|source| OutboxError::SpawnCheckpointer {
                path: db_path.to_path_buf(),
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("outbox checkpoint thread panicked");
        }
    }
}

/// Runs one PASSIVE checkpoint and returns whether it failed. Logs the first failure of a
/// run of failures and the recovery, not every attempt.
fn checkpoint(conn: &Connection, path: &Path, was_failing: bool) -> bool {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match result {
        Ok(_) if was_failing => {
            tracing::info!(path = %path.display(), "outbox checkpoints work again");
            false
        }
        Ok(_) => false,
        Err(error) => {
            if !was_failing {
                tracing::warn!(path = %path.display(), %error,
                    "outbox checkpoint failed; the WAL grows until one succeeds");
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).expect("database file").len()
    }

    #[test]
    fn thread_copies_the_wal_into_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path: Arc<Path> = dir.path().join("db.sqlite3").into();
        let writer = Connection::open(&path).expect("open");
        writer
            .pragma_update(None, "journal_mode", "wal")
            .expect("wal");
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no automatic checkpoint");
        writer
            .execute_batch("CREATE TABLE t (x BLOB)")
            .expect("table");
        for _ in 0..50 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .expect("insert");
        }
        // Without a checkpoint the rows live in the WAL only.
        assert!(file_len(&path) < 50 * 4096, "{}", file_len(&path));

        let checkpointer =
            Checkpointer::spawn(Connection::open(&path).expect("open"), path.clone())
                .expect("thread");
        std::thread::sleep(INTERVAL * 3);
        drop(checkpointer);

        assert!(file_len(&path) >= 50 * 4096, "{}", file_len(&path));
    }
}
