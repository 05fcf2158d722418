//! A small pool of read connections. WAL lets them read while the writer commits.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use super::OutboxError;
use super::error::StoreError;
use super::schema::{self, Role};

/// Idle read connections kept open for the next read. More concurrent reads open extra
/// connections, which are closed after use.
const MAX_IDLE_READERS: usize = 4;

pub(super) struct ReaderPool {
    db_path: Arc<Path>,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(super) fn new(db_path: Arc<Path>) -> Self {
        ReaderPool {
            db_path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `query` on an idle connection, or on a new one when none is idle. Blocks, so
    /// async callers run it through `spawn_blocking`.
    pub(super) fn run<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, OutboxError> {
        let conn = match self.take_idle() {
            Some(conn) => conn,
            None => schema::open(&self.db_path, Role::Reader)?,
        };

        let result = query(&conn);

        // A connection that hit a database error is closed rather than reused.
        let reusable = !matches!(&result, Err(error) if error.is_database_failure());
        if reusable {
            self.put_back(conn);
        }
        result.map_err(|error| error.at(&self.db_path))
    }

    fn take_idle(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}
