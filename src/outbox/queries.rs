//! The read statements, and the conversion of a row into an [`Entry`].

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::error::StoreError;
use super::{Counts, Entry, EntryKind, EntryState};

/// Expands to the columns of an entry in the order `read_row` reads them.
macro_rules! entry_columns {
    () => {
        "id, request_id, kind, payload, state, attempts, created_at, updated_at, \
         next_attempt_at, last_error, dead_reason, age_started_at"
    };
}

const GET_SQL: &str = concat!("SELECT ", entry_columns!(), " FROM entries WHERE id = ?1");

const DUE_SQL: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM entries
      WHERE state = 'pending' AND next_attempt_at <= ?1
      ORDER BY next_attempt_at, id
      LIMIT ?2"
);

const LIST_SQL: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM entries WHERE state = ?1 ORDER BY id LIMIT ?2"
);

const NEXT_ATTEMPT_SQL: &str = "SELECT MIN(next_attempt_at) FROM entries WHERE state = 'pending'";

const COUNTS_SQL: &str = "
    SELECT state, COUNT(*), MIN(created_at) FROM entries
    WHERE state IN ('pending', 'dead')
    GROUP BY state";

/// SQLite uses the partial index `entries_customer_id_state` only when it can prove that the
/// query's WHERE clause implies the index's condition. Repeating that condition,
/// `state IN ('pending', 'dead')`, word for word lets it.
const CUSTOMER_COUNTS_SQL: &str = "
    SELECT state, COUNT(*), MIN(created_at) FROM entries
    WHERE customer_id = ?1 AND state IN ('pending', 'dead')
    GROUP BY state";

/// Uses the index behind `UNIQUE (request_id, kind)`.
const PENDING_CHARGE_SQL: &str = "
    SELECT EXISTS (SELECT 1 FROM entries
    WHERE request_id = ?1 AND kind = 'charge' AND state = 'pending')";

/// A row as SQLite stores it, before its text and integers are checked.
struct StoredRow {
    id: i64,
    request_id: String,
    kind: String,
    payload: String,
    state: String,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    dead_reason: Option<String>,
    age_started_at: i64,
}

pub(super) fn get(conn: &Connection, id: i64) -> Result<Option<Entry>, StoreError> {
    let stored = conn
        .prepare_cached(GET_SQL)?
        .query_row(params![id], read_row)
        .optional()?;
    stored.map(StoredRow::into_entry).transpose()
}

/// Returns the pending entries with `next_attempt_at <= now_ms`, earliest `next_attempt_at` first and
/// then by id.
pub(super) fn due(conn: &Connection, now_ms: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
    collect(conn, DUE_SQL, params![now_ms, limit])
}

/// Returns the entries in `state`, oldest id first.
pub(super) fn list(
    conn: &Connection,
    state: EntryState,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    collect(conn, LIST_SQL, params![state.as_str(), limit])
}

/// Returns the earliest `next_attempt_at` of a pending entry, or `None` when none is pending.
pub(super) fn next_attempt_at(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let earliest: Option<i64> = conn
        .prepare_cached(NEXT_ATTEMPT_SQL)?
        .query_row(params![], |row| row.get(0))?;
    // Stored times come from `DateTime<Utc>`, so they are always in range.
    Ok(earliest.and_then(DateTime::from_timestamp_millis))
}

pub(super) fn counts(conn: &Connection) -> Result<Counts, StoreError> {
    count_by_state(conn, COUNTS_SQL, params![])
}

/// Counts the pending and dead entries whose `customer_id` column is `customer_id`.
pub(super) fn has_pending_charge(conn: &Connection, request_id: &str) -> Result<bool, StoreError> {
    let mut statement = conn.prepare_cached(PENDING_CHARGE_SQL)?;
    Ok(statement.query_row(params![request_id], |row| row.get(0))?)
}

pub(super) fn counts_for_customer(
    conn: &Connection,
    customer_id: &str,
) -> Result<Counts, StoreError> {
    count_by_state(conn, CUSTOMER_COUNTS_SQL, params![customer_id])
}

fn count_by_state(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Counts, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut counts = Counts::default();

    while let Some(row) = rows.next()? {
        let state: String = row.get(0)?;
        let count = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        let oldest: Option<i64> = row.get(2)?;
        if state == EntryState::Pending.as_str() {
            counts.pending = count;
            // Stored times come from `DateTime<Utc>`, so they are always in range.
            counts.oldest_pending = oldest.and_then(DateTime::from_timestamp_millis);
        } else {
            counts.dead = count;
        }
    }
    Ok(counts)
}

fn collect(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Entry>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let stored = statement.query_map(params, read_row)?;

    let mut entries = Vec::new();
    for row in stored {
        entries.push(row?.into_entry()?);
    }
    Ok(entries)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        id: row.get(0)?,
        request_id: row.get(1)?,
        kind: row.get(2)?,
        payload: row.get(3)?,
        state: row.get(4)?,
        attempts: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
        dead_reason: row.get(10)?,
        age_started_at: row.get(11)?,
    })
}

impl StoredRow {
    fn into_entry(self) -> Result<Entry, StoreError> {
        let id = self.id;
        let invalid = |detail: String| StoreError::InvalidRow { id, detail };

        let kind = EntryKind::parse(&self.kind)
            .ok_or_else(|| invalid(format!("unknown kind {:?}", self.kind)))?;
        let state = EntryState::parse(&self.state)
            .ok_or_else(|| invalid(format!("unknown state {:?}", self.state)))?;
        let payload = serde_json::from_str(&self.payload)
            .map_err(|error| invalid(format!("payload is not JSON: {error}")))?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| invalid(format!("attempts {} out of range", self.attempts)))?;

        Ok(Entry {
            id,
            request_id: self.request_id,
            kind,
            payload,
            state,
            attempts,
            created_at: from_unix_ms(id, self.created_at)?,
            updated_at: from_unix_ms(id, self.updated_at)?,
            next_attempt_at: from_unix_ms(id, self.next_attempt_at)?,
            last_error: self.last_error,
            dead_reason: self.dead_reason,
            age_started_at: from_unix_ms(id, self.age_started_at)?,
        })
    }
}

/// Converts stored Unix milliseconds of entry `id` back to a time.
fn from_unix_ms(id: i64, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::InvalidRow {
        id,
        detail: format!("timestamp {ms} ms out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_plan(conn: &Connection, sql: &str, parameters: impl rusqlite::Params) -> String {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details = statement
            .query_map(parameters, |row| row.get::<_, String>(3))
            .unwrap();
        details.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn queries_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = std::path::Path::new(":memory:");
        super::super::schema::migrate(&mut conn, path).unwrap();
        // (name, plan of the query, index it must search)
        let cases = [
            (
                "due",
                query_plan(&conn, DUE_SQL, params![0, 10]),
                "entries_state_next_attempt",
            ),
            (
                "list",
                query_plan(&conn, LIST_SQL, params!["dead", 10]),
                "entries_state_next_attempt",
            ),
            (
                "counts",
                query_plan(&conn, COUNTS_SQL, params![]),
                "entries_state_next_attempt",
            ),
            (
                "next attempt",
                query_plan(&conn, NEXT_ATTEMPT_SQL, params![]),
                "entries_state_next_attempt",
            ),
            (
                "customer counts",
                query_plan(&conn, CUSTOMER_COUNTS_SQL, params!["acme"]),
                "entries_customer_id_state",
            ),
        ];

        for (name, plan, index) in cases {
            // A query that reads only indexed columns uses the index as a covering index.
            let searched = plan.contains(&format!("SEARCH entries USING INDEX {index}"))
                || plan.contains(&format!("SEARCH entries USING COVERING INDEX {index}"));
            assert!(searched, "{name}: {plan}");
        }
    }

    #[test]
    fn invalid_stored_row_is_reported() {
        let valid = || StoredRow {
            id: 5,
            request_id: "req-1".to_string(),
            kind: "charge".to_string(),
            payload: "{}".to_string(),
            state: "pending".to_string(),
            attempts: 0,
            created_at: 0,
            updated_at: 0,
            next_attempt_at: 0,
            last_error: None,
            dead_reason: None,
            age_started_at: 0,
        };
        // (case, row, text the error must contain)
        let cases = [
            (
                "kind",
                StoredRow {
                    kind: "refund".to_string(),
                    ..valid()
                },
                "unknown kind",
            ),
            (
                "state",
                StoredRow {
                    state: "lost".to_string(),
                    ..valid()
                },
                "unknown state",
            ),
            (
                "payload",
                StoredRow {
                    payload: "{".to_string(),
                    ..valid()
                },
                "not JSON",
            ),
            (
                "attempts",
                StoredRow {
                    attempts: -1,
                    ..valid()
                },
                "attempts -1",
            ),
            (
                "time",
                StoredRow {
                    created_at: i64::MAX,
                    ..valid()
                },
                "out of range",
            ),
        ];

        assert!(valid().into_entry().is_ok());
        for (case, row, expected) in cases {
            let error = row.into_entry().unwrap_err();
            let StoreError::InvalidRow { id, detail } = error else {
                panic!("{case}: {error:?}");
            };
            assert_eq!(id, 5, "{case}");
            assert!(detail.contains(expected), "{case}: {detail}");
        }
    }
}
