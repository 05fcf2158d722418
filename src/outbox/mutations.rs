//! The write statements. Each runs on the writer connection inside the batch transaction,
//! and `now_ms` is the batch's time in Unix milliseconds.

use rusqlite::{Connection, OptionalExtension, params};

use super::NewEntry;
use super::error::StoreError;

/// A NULL `id` lets SQLite pick the next one.
const INSERT_SQL: &str = "
    INSERT INTO entries
        (id, request_id, kind, customer_id, payload, state, attempts, created_at, updated_at,
         next_attempt_at, age_started_at)
    VALUES (?7, ?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?6, ?5)
    ON CONFLICT DO NOTHING";

const MARK_DONE_SQL: &str =
    "UPDATE entries SET state = 'done', dead_reason = NULL, updated_at = ?2 WHERE id = ?1";

/// Inserts a pending entry with id `id`, or the next free id when `None`, or returns the id
/// of the entry that already exists for `(request_id, kind)` without changing it.
pub(super) fn insert(
    conn: &Connection,
    id: Option<i64>,
    entry: &NewEntry,
    now_ms: i64,
) -> Result<i64, StoreError> {
    if insert_row(conn, id, entry, now_ms)? {
        return Ok(conn.last_insert_rowid());
    }

    let id = conn
        .prepare_cached("SELECT id FROM entries WHERE request_id = ?1 AND kind = ?2")?
        .query_row(params![entry.request_id, entry.kind.as_str()], |row| {
            row.get(0)
        })?;
    Ok(id)
}

/// Runs the insert statement of [`insert`]. Returns false when an entry with the same id
/// or the same `(request_id, kind)` exists, which is left unchanged.
pub(super) fn insert_row(
    conn: &Connection,
    id: Option<i64>,
    entry: &NewEntry,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let next_attempt_ms = entry
        .next_attempt_at
        .map_or(now_ms, |time| time.timestamp_millis());
    let inserted = conn.prepare_cached(INSERT_SQL)?.execute(params![
        entry.request_id,
        entry.kind.as_str(),
        entry.customer_id,
        entry.payload,
        now_ms,
        next_attempt_ms,
        id
    ])?;
    Ok(inserted == 1)
}

/// Replaces the payload of entry `id` and the `customer_id` taken from it.
pub(super) fn update_payload(
    conn: &Connection,
    id: i64,
    customer_id: Option<&str>,
    payload_json: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries SET customer_id = ?2, payload = ?3, updated_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, customer_id, payload_json, now_ms])?;
    require_changed(changed, id)
}

/// Marks an entry done from any state: the ledger's confirmation outranks an earlier
/// dead-letter decision.
pub(super) fn mark_done(conn: &Connection, id: i64, now_ms: i64) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(MARK_DONE_SQL)?
        .execute(params![id, now_ms])?;
    require_changed(changed, id)
}

/// Counts a failed attempt and schedules the next one. The state is left as it is.
pub(super) fn record_failure(
    conn: &Connection,
    id: i64,
    error: &str,
    next_attempt_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries
             SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, updated_at = ?4
             WHERE id = ?1",
        )?
        .execute(params![id, error, next_attempt_ms, now_ms])?;
    require_changed(changed, id)
}

/// Makes the pending hold entry of `request_id`, if any, due at `now_ms`.
pub(super) fn hold_due_now(
    conn: &Connection,
    request_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE entries SET next_attempt_at = ?2, updated_at = ?2
         WHERE request_id = ?1 AND kind = 'void_hold' AND state = 'pending'",
    )?
    .execute(params![request_id, now_ms])?;
    Ok(())
}

/// Moves a pending or dead entry to the dead-letter list. A done entry is rejected, because
/// the ledger has recorded its operation.
pub(super) fn dead_letter(
    conn: &Connection,
    id: i64,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries SET state = 'dead', dead_reason = ?2, updated_at = ?3
             WHERE id = ?1 AND state != 'done'",
        )?
        .execute(params![id, reason, now_ms])?;
    if changed == 1 {
        return Ok(());
    }
    Err(explain_unchanged(conn, id, "dead-lettered")?)
}

/// Makes a dead or pending entry pending and due at `now_ms`. A dead entry also starts a new
/// age window at `now_ms`, so the worker does not dead-letter it again at once for `max_age`.
/// Returns false when no entry has that id, and rejects a done entry.
pub(super) fn retry(conn: &Connection, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries
             SET age_started_at = CASE WHEN state = 'dead' THEN ?2 ELSE age_started_at END,
                 state = 'pending', dead_reason = NULL, next_attempt_at = ?2, updated_at = ?2
             WHERE id = ?1 AND state != 'done'",
        )?
        .execute(params![id, now_ms])?;
    if changed == 1 {
        return Ok(true);
    }
    match explain_unchanged(conn, id, "retried")? {
        StoreError::NotFound { .. } => Ok(false),
        other => Err(other),
    }
}

/// Makes every dead entry pending and due at `now_ms` with a new age window, returning how
/// many there were.
pub(super) fn retry_all_dead(conn: &Connection, now_ms: i64) -> Result<u64, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries
             SET state = 'pending', dead_reason = NULL, next_attempt_at = ?1, updated_at = ?1,
                 age_started_at = ?1
             WHERE state = 'dead'",
        )?
        .execute(params![now_ms])?;
    Ok(row_count(changed))
}

/// Makes every pending entry due at `now_ms`, returning how many there were.
pub(super) fn retry_all_pending(conn: &Connection, now_ms: i64) -> Result<u64, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE entries SET next_attempt_at = ?1, updated_at = ?1 WHERE state = 'pending'",
        )?
        .execute(params![now_ms])?;
    Ok(row_count(changed))
}

/// Deletes at most `limit` done entries last updated before `older_than_ms`, with ids below
/// `below_id`.
pub(super) fn purge_done_chunk(
    conn: &Connection,
    older_than_ms: i64,
    below_id: i64,
    limit: i64,
) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM entries WHERE id IN (
                 SELECT id FROM entries
                 WHERE state = 'done' AND updated_at < ?1 AND id < ?3 LIMIT ?2
             )",
        )?
        .execute(params![older_than_ms, limit, below_id])?;
    Ok(row_count(deleted))
}

fn require_changed(changed: usize, id: i64) -> Result<(), StoreError> {
    if changed == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(())
}

/// Tells apart the two reasons a guarded update changed nothing: the entry is missing, or
/// it is done.
fn explain_unchanged(
    conn: &Connection,
    id: i64,
    action: &'static str,
) -> Result<StoreError, StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM entries WHERE id = ?1")?
        .query_row(params![id], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        Ok(StoreError::AlreadyDone { id, action })
    } else {
        Ok(StoreError::NotFound { id })
    }
}

fn row_count(changed: usize) -> u64 {
    u64::try_from(changed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::EntryKind;

    /// Builds an entry with an empty payload, due at the batch time.
    fn entry(request_id: &str, kind: EntryKind) -> NewEntry {
        NewEntry {
            request_id: request_id.to_string(),
            kind,
            customer_id: None,
            payload: "{}".to_string(),
            next_attempt_at: None,
        }
    }

    fn connection() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        conn
    }

    fn customer_id(conn: &Connection, id: i64) -> Option<String> {
        conn.query_row(
            "SELECT customer_id FROM entries WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )
        .unwrap()
    }

    fn age_started_at(conn: &Connection, id: i64) -> i64 {
        conn.query_row(
            "SELECT age_started_at FROM entries WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )
        .unwrap()
    }

    #[test]
    fn retry_restarts_age_of_dead_entries_only() {
        let conn = connection();
        let dead = insert(&conn, None, &entry("req-dead", EntryKind::Charge), 100).unwrap();
        let pending = insert(&conn, None, &entry("req-pending", EntryKind::Charge), 100).unwrap();
        assert_eq!(
            age_started_at(&conn, dead),
            100,
            "an entry ages from its creation"
        );

        dead_letter(&conn, dead, "rejected", 200).unwrap();
        assert!(retry(&conn, dead, 500).unwrap());
        assert!(retry(&conn, pending, 500).unwrap());

        assert_eq!(
            age_started_at(&conn, dead),
            500,
            "a revived entry gets a new window"
        );
        assert_eq!(
            age_started_at(&conn, pending),
            100,
            "a pending entry keeps its window"
        );
    }

    #[test]
    fn retry_all_dead_restarts_their_age() {
        let conn = connection();
        let dead = insert(&conn, None, &entry("req-dead", EntryKind::VoidHold), 100).unwrap();
        let pending = insert(&conn, None, &entry("req-pending", EntryKind::Charge), 100).unwrap();
        dead_letter(&conn, dead, "too old", 200).unwrap();

        assert_eq!(retry_all_dead(&conn, 900).unwrap(), 1);
        assert_eq!(age_started_at(&conn, dead), 900);
        assert_eq!(age_started_at(&conn, pending), 100);
        assert_eq!(retry_all_pending(&conn, 950).unwrap(), 2);
        assert_eq!(
            age_started_at(&conn, dead),
            900,
            "startup does not restart ages"
        );
    }

    #[test]
    fn insert_stores_customer_id_column() {
        let conn = connection();
        let charge = NewEntry {
            customer_id: Some("acme".to_string()),
            payload: r#"{"customer_id":"acme"}"#.to_string(),
            ..entry("req-1", EntryKind::Charge)
        };

        let with_customer = insert(&conn, None, &charge, 100).unwrap();
        let without_customer =
            insert(&conn, None, &entry("req-2", EntryKind::VoidHold), 100).unwrap();

        assert_eq!(customer_id(&conn, with_customer).as_deref(), Some("acme"));
        assert_eq!(customer_id(&conn, without_customer), None);
    }

    #[test]
    fn update_payload_replaces_customer_id() {
        let conn = connection();
        let charge = NewEntry {
            customer_id: Some("acme".to_string()),
            ..entry("req-1", EntryKind::Charge)
        };
        let id = insert(&conn, None, &charge, 100).unwrap();

        update_payload(&conn, id, Some("bolt"), r#"{"customer_id":"bolt"}"#, 200).unwrap();
        assert_eq!(customer_id(&conn, id).as_deref(), Some("bolt"));

        update_payload(&conn, id, None, "{}", 300).unwrap();
        assert_eq!(customer_id(&conn, id), None);
    }

    #[test]
    fn request_path_writes_build_no_temporary_table() {
        let conn = connection();
        for (name, sql) in [("insert", INSERT_SQL), ("mark done", MARK_DONE_SQL)] {
            let mut statement = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
            let opcodes = statement
                .query_map(rusqlite::params_from_iter(nulls), |row| {
                    row.get::<_, String>(1)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>();

            assert!(!opcodes.is_empty(), "{name}: no program");
            assert!(
                !opcodes.iter().any(|opcode| opcode == "OpenEphemeral"),
                "{name}: {opcodes:?}"
            );
        }
    }
}
