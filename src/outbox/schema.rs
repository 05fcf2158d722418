//! Opening SQLite connections to the outbox file and creating its schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::OutboxError;
use crate::config::Durability;

/// Schema version stored in `PRAGMA user_version`. Version 0 is an empty file.
pub(super) const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for another connection's write lock before it fails with
/// `SQLITE_BUSY`. The CLI and the server share the file, and each holds the lock for one
/// short transaction at a time.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. `AUTOINCREMENT` keeps ids of purged rows from being handed out again, so an
/// id seen in a log names one entry forever. Version 3 replaces the table and its indexes.
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

/// Version 3 rebuilds the table, because SQLite changes a CHECK constraint no other way:
///
/// - `customer_id` is the payload's `customer_id` field when it is text, and NULL otherwise.
///   `counts_for_customer` searches it, so writes no longer parse the payload to maintain
///   an expression index.
/// - The state CHECK compares with each state in turn. SQLite 3.54 evaluates an `IN` list
///   of three or more constants by building a temporary b-tree, once per insert and once
///   per state change, which cost about 20,000 instructions each time under callgrind.
/// - `entries_customer_id_state` contains only the pending and dead entries, the ones
///   `counts_for_customer` counts. Marking an entry done only removes it from the index,
///   and done entries do not grow it.
///
/// The copy keeps every id, and it moves the table's `AUTOINCREMENT` counter in
/// `sqlite_sequence` over to the new table, so ids of purged rows stay unused. Every
/// payload of an older file is valid JSON, because the expression index rejected any other.
/// The step can run again on a file that has the version 3 table: see [`migrate`].
const UPGRADE_TO_V3: &str = "
CREATE TABLE entries_v3 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'void_hold')),
    customer_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state = 'pending' OR state = 'done' OR state = 'dead'),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    dead_reason TEXT,
    age_started_at INTEGER NOT NULL,
    UNIQUE (request_id, kind)
);
INSERT INTO entries_v3
    (id, request_id, kind, customer_id, payload, state, attempts, created_at, updated_at,
     next_attempt_at, last_error, dead_reason, age_started_at)
SELECT id, request_id, kind,
       CASE json_type(payload, '$.customer_id')
           WHEN 'text' THEN json_extract(payload, '$.customer_id')
       END,
       payload, state, attempts, created_at, updated_at, next_attempt_at, last_error,
       dead_reason, age_started_at
FROM entries ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'entries_v3';
UPDATE sqlite_sequence SET name = 'entries_v3' WHERE name = 'entries';
DROP TABLE entries;
ALTER TABLE entries_v3 RENAME TO entries;
CREATE INDEX entries_state_next_attempt ON entries (state, next_attempt_at);
CREATE INDEX entries_customer_id_state ON entries (customer_id, state)
    WHERE state IN ('pending', 'dead');
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
    if found < 3 {
        // A version 2 server that still runs on a file a newer CLI upgraded writes rows
        // without `customer_id`, and after a failed write it stores version 2 again. The
        // step then runs a second time and takes every `customer_id` from the payload anew.
        // NOTE: rows that such a server writes while the file stays at version 3 keep a
        // NULL `customer_id`, so `counts_for_customer` does not count them.
        tx.execute_batch(UPGRADE_TO_V3).map_err(sqlite_error)?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
