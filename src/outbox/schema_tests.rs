//! Tests of creating, upgrading and rejecting outbox schemas.

use chrono::DateTime;
use tempfile::TempDir;

use super::*;
use crate::outbox::{DATABASE_FILE, EntryKind, Outbox};

/// Rows of a version 2 file: (request id, payload, state, created_at in Unix ms).
const VERSION_TWO_ROWS: [(&str, &str, &str, i64); 7] = [
    ("a1", r#"{"customer_id":"acme"}"#, "pending", 1000),
    ("a2", r#"{"customer_id":"acme"}"#, "pending", 2000),
    ("a3", r#"{"customer_id":"acme"}"#, "dead", 3000),
    ("a4", r#"{"customer_id":"acme"}"#, "done", 4000),
    (
        "b1",
        r#"{"customer_id":"bolt","amount":"5"}"#,
        "pending",
        5000,
    ),
    ("h1", r#"{"hold":"tg:h1:hold"}"#, "pending", 6000),
    ("n1", r#"{"customer_id":7}"#, "pending", 7000),
];

fn version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

/// Builds the schema of version 2 in `conn`, as a tollgate of that version left it.
fn create_version_two(conn: &Connection) {
    conn.execute_batch(CREATE_V1).unwrap();
    conn.execute_batch(UPGRADE_TO_V2).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
}

/// Inserts `VERSION_TWO_ROWS` with the columns of version 2.
fn insert_version_two_rows(conn: &Connection) {
    for (request_id, payload, state, created_at) in VERSION_TWO_ROWS {
        conn.execute(
            "INSERT INTO entries (request_id, kind, payload, state, created_at, updated_at,
                                  next_attempt_at, age_started_at)
             VALUES (?1, 'charge', ?2, ?3, ?4, ?4, ?4, ?4)",
            rusqlite::params![request_id, payload, state, created_at],
        )
        .unwrap();
    }
}

/// Returns `(request_id, customer_id)` of every row, oldest first.
fn customer_ids(conn: &Connection) -> Vec<(String, Option<String>)> {
    let mut statement = conn
        .prepare("SELECT request_id, customer_id FROM entries ORDER BY id")
        .unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn index_names(conn: &Connection) -> Vec<String> {
    let mut statement = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
        .unwrap();
    let names = statement.query_map([], |row| row.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

/// Returns the `AUTOINCREMENT` counter of `entries`: the largest id it has handed out.
fn id_counter(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = 'entries'",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

/// Creates a data directory whose outbox is a version 2 file containing `VERSION_TWO_ROWS`,
/// ids 1 to 7, after purging id 8.
fn version_two_data_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    create_version_two(&conn);
    insert_version_two_rows(&conn);
    conn.execute(
        "INSERT INTO entries (request_id, kind, payload, state, created_at, updated_at,
                              next_attempt_at, age_started_at)
         VALUES ('purged', 'charge', '{}', 'done', 0, 0, 0, 0)",
        [],
    )
    .unwrap();
    conn.execute("DELETE FROM entries WHERE request_id = 'purged'", [])
        .unwrap();
    assert_eq!(id_counter(&conn), 8);
    dir
}

/// Checks a file that `version_two_data_dir` created and tollgate then opened.
async fn assert_upgraded_to_version_three(dir: &TempDir, outbox: &Outbox) {
    let acme = outbox.counts_for_customer("acme").await.unwrap();
    assert_eq!(acme.pending, 2);
    assert_eq!(acme.dead, 1);
    assert_eq!(acme.oldest_pending, DateTime::from_timestamp_millis(1000));
    let bolt = outbox.counts_for_customer("bolt").await.unwrap();
    assert_eq!(bolt.pending, 1);
    let numeric = outbox.counts_for_customer("7").await.unwrap();
    assert_eq!(numeric.pending, 0, "only a text customer id is matched");

    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    assert_eq!(version(&conn), 3);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_eq!(id_counter(&conn), 8, "the id counter survives the copy");
    let expected = [
        ("a1", Some("acme")),
        ("a2", Some("acme")),
        ("a3", Some("acme")),
        ("a4", Some("acme")),
        ("b1", Some("bolt")),
        ("h1", None),
        ("n1", None),
    ];
    let expected: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(request, customer)| (request.to_string(), customer.map(str::to_string)))
        .collect();
    assert_eq!(customer_ids(&conn), expected);

    let indexes = index_names(&conn);
    assert!(
        indexes.contains(&"entries_customer_id_state".to_string()),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&"entries_customer_state".to_string()),
        "{indexes:?}"
    );
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

#[tokio::test]
async fn server_upgrades_version_two_file() {
    let dir = version_two_data_dir();

    let outbox = Outbox::open_server(dir.path(), Durability::Process).unwrap();

    assert_upgraded_to_version_three(&dir, &outbox).await;
    let payload = serde_json::json!({ "customer_id": "acme" });
    let id = outbox
        .insert("a5", EntryKind::Charge, &payload)
        .await
        .unwrap();
    assert_eq!(id, 9, "the purged id 8 is not handed out again");
    let acme = outbox.counts_for_customer("acme").await.unwrap();
    assert_eq!(acme.pending, 3, "an insert after the upgrade is counted");
}

#[tokio::test]
async fn cli_upgrades_version_two_file() {
    let dir = version_two_data_dir();

    let outbox = Outbox::open_shared(dir.path()).unwrap();

    assert_upgraded_to_version_three(&dir, &outbox).await;
}

#[test]
fn version_three_step_runs_again_safely() {
    let mut conn = Connection::open_in_memory().unwrap();
    create_version_two(&conn);
    migrate(&mut conn, Path::new(":memory:")).unwrap();
    // A version 2 server writes a row without `customer_id` and stores version 2 again.
    insert_version_two_rows(&conn);
    conn.pragma_update(None, "user_version", 2).unwrap();

    migrate(&mut conn, Path::new(":memory:")).unwrap();

    assert_eq!(version(&conn), SCHEMA_VERSION);
    let filled = customer_ids(&conn);
    assert_eq!(filled.len(), VERSION_TWO_ROWS.len());
    assert_eq!(filled[0], ("a1".to_string(), Some("acme".to_string())));
    assert_eq!(filled[4], ("b1".to_string(), Some("bolt".to_string())));
    assert_eq!(id_counter(&conn), 7);
}

#[test]
fn checks_reject_unknown_state_and_kind() {
    let mut fresh = Connection::open_in_memory().unwrap();
    migrate(&mut fresh, Path::new(":memory:")).unwrap();
    insert_version_two_rows(&fresh);
    let mut upgraded = Connection::open_in_memory().unwrap();
    create_version_two(&upgraded);
    insert_version_two_rows(&upgraded);
    migrate(&mut upgraded, Path::new(":memory:")).unwrap();
    // (statement, what it breaks)
    let cases = [
        (
            "INSERT INTO entries (request_id, kind, payload, state, created_at, updated_at,
                                  next_attempt_at, age_started_at)
             VALUES ('x1', 'charge', '{}', 'lost', 0, 0, 0, 0)",
            "state of an insert",
        ),
        (
            "INSERT INTO entries (request_id, kind, payload, state, created_at, updated_at,
                                  next_attempt_at, age_started_at)
             VALUES ('x2', 'refund', '{}', 'pending', 0, 0, 0, 0)",
            "kind of an insert",
        ),
        ("UPDATE entries SET state = 'lost'", "state of an update"),
    ];

    for (file, conn) in [("fresh", &fresh), ("upgraded", &upgraded)] {
        for (sql, case) in cases {
            let error = conn.execute(sql, []).unwrap_err();
            assert!(
                error.to_string().contains("CHECK constraint failed"),
                "{file}, {case}: {error}"
            );
        }
    }
}
