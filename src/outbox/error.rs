//! Errors of the outbox store. Every variant names the file or directory involved.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An outbox operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("failed to create outbox directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("failed to open or lock {path}: {source}")]
    LockFile { path: PathBuf, source: io::Error },

    #[error(
        "outbox locked by another tollgate server in {dir}: stop it or use another TOLLGATE_DATA_DIR"
    )]
    Locked { dir: PathBuf },

    #[error(
        "no outbox database at {path}: check TOLLGATE_DATA_DIR, or start the server once to create it"
    )]
    Missing { path: PathBuf },

    #[error("failed to open outbox database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "outbox database {path} stays in {mode} journal mode instead of WAL: keep TOLLGATE_DATA_DIR on a local file system"
    )]
    NotWal { path: PathBuf, mode: String },

    #[error(
        "outbox database {path} has schema version {found}, but this tollgate supports version {supported} at most: upgrade tollgate"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("outbox statement on {path} failed: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// The transaction that carried this write could not begin or commit, so the write is
    /// not stored. The source is shared by every write of that transaction.
    #[error("outbox commit on {path} failed, so the write is not stored: {source}")]
    Commit {
        path: PathBuf,
        source: Arc<rusqlite::Error>,
    },

    #[error("outbox entry {id} not found in {path}")]
    NotFound { id: i64, path: PathBuf },

    #[error("outbox entry {id} in {path} is done and cannot be {action}")]
    AlreadyDone {
        id: i64,
        path: PathBuf,
        action: &'static str,
    },

    #[error("invalid outbox entry {id} in {path}: {detail}")]
    InvalidRow {
        id: i64,
        path: PathBuf,
        detail: String,
    },

    #[error("outbox writer for {path} has stopped: the write was not stored; restart tollgate")]
    WriterStopped { path: PathBuf },

    #[error("failed to start the outbox writer thread for {path}: {source}")]
    SpawnWriter { path: PathBuf, source: io::Error },

    #[error("failed to start the outbox checkpoint thread for {path}: {source}")]
    SpawnCheckpointer { path: PathBuf, source: io::Error },

    #[error(
        "outbox journal {path} failed: {source}; check that TOLLGATE_DATA_DIR is writable and has free space"
    )]
    Journal { path: PathBuf, source: io::Error },

    #[error("outbox read on {path} did not finish: {detail}")]
    ReadTask { path: PathBuf, detail: String },
}

/// An error of one SQL step, before the database path is attached.
#[derive(Debug)]
pub(super) enum StoreError {
    Sqlite(rusqlite::Error),
    NotFound { id: i64 },
    AlreadyDone { id: i64, action: &'static str },
    InvalidRow { id: i64, detail: String },
}

impl StoreError {
    /// Attaches the database path, making the public error.
    pub(super) fn at(self, path: &Path) -> OutboxError {
        let path = path.to_path_buf();
        match self {
            StoreError::Sqlite(source) => OutboxError::Sqlite { path, source },
            StoreError::NotFound { id } => OutboxError::NotFound { id, path },
            StoreError::AlreadyDone { id, action } => OutboxError::AlreadyDone { id, path, action },
            StoreError::InvalidRow { id, detail } => OutboxError::InvalidRow { id, path, detail },
        }
    }

    /// Returns whether this error means the database itself failed, as opposed to a request about
    /// an entry that does not allow it.
    pub(super) fn is_database_failure(&self) -> bool {
        matches!(self, StoreError::Sqlite(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Sqlite(source)
    }
}
