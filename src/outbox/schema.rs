//! Opening SQLite connections to the outbox file and creating its schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::OutboxError;
use crate::config::Durability;

/// Schema version stored in `PRAGMA user_version`. Version 0 is an empty file.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// How long a statement waits for another connection's write lock before it fails with
/// `SQLITE_BUSY`. The CLI and the server share the file, and each holds the lock for one
/// short transaction at a time.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. `AUTOINCREMENT` keeps ids of purged rows from being handed out again, so an
/// id seen in a log names one entry forever. The expression index serves
/// `counts_for_customer`, which must use exactly the same `json_extract` expression.
const CREATE_V1: &str = "
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'void_hold')),
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    dead_reason TEXT,
    UNIQUE (request_id, kind)
);
CREATE INDEX entries_state_next_attempt ON entries (state, next_attempt_at);
CREATE INDEX entries_customer_state ON entries (json_extract(payload, '$.customer_id'), state);
";

/// Version 2 adds `age_started_at`, the time the worker measures `outbox.max_age` from. It
/// starts at `created_at`, and a manual retry of a dead entry moves it to the retry's time so
/// the entry gets a full age window again. Existing rows start from their creation time.
const UPGRADE_TO_V2: &str = "
ALTER TABLE entries ADD COLUMN age_started_at INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET age_started_at = created_at;
";

/// Which connection is being opened, which decides its flags and pragmas.
#[derive(Clone, Copy, Debug)]
pub(super) enum Role {
    /// The single write connection, created with the file when `create` is set.
    Writer {
        durability: Durability,
        create: bool,
    },
    /// A read connection. `query_only` makes a write through it fail.
    Reader,
}

/// Opens a connection to the outbox database at `path` and applies the pragmas of `role`.
pub(super) fn open(path: &Path, role: Role) -> Result<Connection, OutboxError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if let Role::Writer { create: true, .. } = role {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }

    let open_error = |source| OutboxError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;

    match role {
        Role::Writer { durability, .. } => configure_writer(&conn, path, durability)?,
        Role::Reader => conn
            .pragma_update(None, "query_only", true)
            .map_err(open_error)?,
    }
    Ok(conn)
}

/// Switches the file to WAL, which lets readers run while the writer commits, and sets the
/// fsync policy of `durability`.
fn configure_writer(
    conn: &Connection,
    path: &Path,
    durability: Durability,
) -> Result<(), OutboxError> {
    let open_error = |source| OutboxError::Open {
        path: path.to_path_buf(),
        source,
    };

    // The journal mode is stored in the file, so the first writer sets it for every later
    // connection. SQLite returns the mode in force after the change, and anything other
    // than `wal` means the change did not take effect.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OutboxError::NotWal {
            path: path.to_path_buf(),
            mode,
        });
    }

    // Per SQLite's `PRAGMA synchronous` documentation, NORMAL in WAL mode fsyncs only at
    // checkpoints. A commit is then in the OS page cache when it returns, so it survives
    // the process dying but not the machine losing power. FULL fsyncs the WAL on every
    // commit.
    let synchronous = match durability {
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(open_error)
}

/// Creates the schema in an empty database, upgrades an older one step by step, or checks
/// that a newer one is not opened by this code.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), OutboxError> {
    let sqlite_error = |source| OutboxError::Sqlite {
        path: path.to_path_buf(),
        source,
    };

    // IMMEDIATE takes the write lock first, so two processes opening a new file at the
    // same time cannot both create the table.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)?;

    if found > SCHEMA_VERSION {
        return Err(OutboxError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        tx.execute_batch(CREATE_V1).map_err(sqlite_error)?;
    }
    if found < 2 {
        tx.execute_batch(UPGRADE_TO_V2).map_err(sqlite_error)?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn version_one_file_is_upgraded() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(CREATE_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO entries (request_id, kind, payload, state, created_at, updated_at, next_attempt_at)
             VALUES ('req-1', 'charge', '{}', 'pending', 1000, 2000, 3000)",
            [],
        )
        .unwrap();

        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let age_started_at: i64 = conn
            .query_row("SELECT age_started_at FROM entries", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            age_started_at, 1000,
            "an existing entry ages from its creation"
        );

        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(
            version(&conn),
            SCHEMA_VERSION,
            "a second open changes nothing"
        );
    }

    #[test]
    fn newer_schema_is_rejected() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let error = migrate(&mut conn, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(error, OutboxError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{error}"
        );
    }
}
