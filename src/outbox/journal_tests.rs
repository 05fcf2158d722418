use std::sync::Mutex;

use chrono::DateTime;
use rusqlite::Connection;
use tempfile::TempDir;

use super::*;
use crate::config::Durability;
use crate::outbox::schema::{self, Role};

fn store(dir: &Path) -> Connection {
    let path = dir.join(crate::outbox::DATABASE_FILE);
    let role = Role::Writer {
        durability: Durability::Process,
        create: true,
    };
    let mut conn = schema::open(&path, role).unwrap();
    schema::migrate(&mut conn, &path).unwrap();
    conn
}

fn entry(request_id: &str, kind: EntryKind) -> NewEntry {
    NewEntry {
        request_id: request_id.to_string(),
        kind,
        customer_id: Some("acme".to_string()),
        payload: format!(r#"{{"request_id":"{request_id}","customer_id":"acme"}}"#),
        next_attempt_at: Some(DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()),
    }
}

/// Appends `entries` and keeps what the writer would have received, committing nothing.
fn append_all(journal: &Journal, entries: Vec<NewEntry>) -> Vec<JournaledInsert> {
    let sent = Mutex::new(Vec::new());
    for entry in entries {
        journal
            .append(
                entry,
                |insert| {
                    sent.lock().unwrap().push(insert);
                    true
                },
                Path::new("outbox.sqlite3"),
            )
            .unwrap();
    }
    sent.into_inner().unwrap()
}

fn journal_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    names.sort();
    names
}

type Row = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
);

fn rows(conn: &Connection) -> Vec<Row> {
    let mut statement = conn
        .prepare(
            "SELECT id, request_id, kind, customer_id, payload, state, created_at, next_attempt_at
             FROM entries ORDER BY id",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn open_stores_uncommitted_entries() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    let journal = Journal::open(dir.path(), &mut conn).unwrap();
    let sent = append_all(
        &journal,
        vec![
            entry("req-1", EntryKind::VoidHold),
            entry("req-1", EntryKind::Charge),
        ],
    );
    assert_eq!(
        sent.iter().map(|insert| insert.id).collect::<Vec<_>>(),
        [1, 2]
    );
    drop(journal);
    assert!(
        rows(&conn).is_empty(),
        "nothing was committed before the stop"
    );

    let reopened = Journal::open(dir.path(), &mut conn).unwrap();

    let stored = rows(&conn);
    assert_eq!(stored.len(), 2);
    let (id, request_id, kind, customer, payload, state, created, next) = &stored[1];
    assert_eq!(*id, 2);
    assert_eq!(request_id, "req-1");
    assert_eq!(kind, "charge");
    assert_eq!(customer.as_deref(), Some("acme"));
    assert_eq!(payload, &sent[1].entry.payload);
    assert_eq!(state, "pending");
    assert_eq!(*created, sent[1].created_ms);
    assert_eq!(*next, 1_800_000_000_123);
    assert_eq!(stored[0].2, "void_hold");
    assert_eq!(
        journal_files(dir.path()),
        ["outbox-journal-00000002.log"],
        "the replayed segment is deleted and a new one started"
    );
    assert_eq!(reopened.next_id(), 3);
}

#[test]
fn open_skips_cut_record() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    let journal = Journal::open(dir.path(), &mut conn).unwrap();
    append_all(
        &journal,
        vec![
            entry("req-1", EntryKind::Charge),
            entry("req-2", EntryKind::Charge),
        ],
    );
    drop(journal);
    let segment = dir.path().join("outbox-journal-00000001.log");
    let len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    Journal::open(dir.path(), &mut conn).unwrap();

    let stored = rows(&conn);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, "req-1");
}

#[test]
fn open_keeps_stored_entries() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    let journal = Journal::open(dir.path(), &mut conn).unwrap();
    let sent = append_all(&journal, vec![entry("req-1", EntryKind::Charge)]);
    sent[0].apply(&conn).unwrap();
    conn.execute("UPDATE entries SET state = 'done'", [])
        .unwrap();
    drop(journal);

    Journal::open(dir.path(), &mut conn).unwrap();

    let stored = rows(&conn);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].5, "done",
        "the replay does not revive a done entry"
    );
}

#[test]
fn ids_follow_highest_used() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    crate::outbox::mutations::insert(&conn, Some(41), &entry("old", EntryKind::Charge), 0).unwrap();
    conn.execute("DELETE FROM entries", []).unwrap();

    let journal = Journal::open(dir.path(), &mut conn).unwrap();
    let sent = append_all(&journal, vec![entry("req-1", EntryKind::Charge)]);

    assert_eq!(sent[0].id, 42, "a deleted entry's id is not used again");
    assert_eq!(journal.next_id(), 43);
}

#[test]
fn failed_send_leaves_no_record() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    let journal = Journal::open(dir.path(), &mut conn).unwrap();

    let result = journal.append(
        entry("req-1", EntryKind::Charge),
        |_| false,
        Path::new("outbox.sqlite3"),
    );

    assert!(matches!(result, Err(OutboxError::WriterStopped { .. })));
    let segment = dir.path().join("outbox-journal-00000001.log");
    assert_eq!(fs::metadata(&segment).unwrap().len(), 0);
    let sent = append_all(&journal, vec![entry("req-2", EntryKind::Charge)]);
    assert_eq!(sent[0].id, 1);
}

#[test]
fn segments_deleted_after_commit() {
    let dir = TempDir::new().unwrap();
    let mut conn = store(dir.path());
    // A limit of one byte closes the segment after every record.
    let journal = Journal::open_with_limit(dir.path(), &mut conn, 1).unwrap();
    append_all(
        &journal,
        vec![
            entry("req-1", EntryKind::Charge),
            entry("req-2", EntryKind::Charge),
            entry("req-3", EntryKind::Charge),
        ],
    );
    assert_eq!(journal_files(dir.path()).len(), 4);
    assert_eq!(journal.lowest_retained_id(), Some(1));

    journal.release_through(2);
    assert_eq!(
        journal_files(dir.path()),
        ["outbox-journal-00000003.log", "outbox-journal-00000004.log"]
    );
    assert_eq!(journal.lowest_retained_id(), Some(3));

    journal.close(2);
    assert_eq!(
        journal_files(dir.path()).len(),
        2,
        "a stop with an uncommitted entry keeps its segment"
    );
    journal.close(3);
    assert!(journal_files(dir.path()).is_empty());
    let after_close = journal.append(
        entry("req-4", EntryKind::Charge),
        |_| true,
        Path::new("outbox.sqlite3"),
    );
    assert!(matches!(
        after_close,
        Err(OutboxError::WriterStopped { .. })
    ));
}

#[test]
fn record_encoding_round_trips() {
    let mut buffer = Vec::new();
    let mut original = entry("req-ü", EntryKind::VoidHold);
    original.customer_id = None;
    original.next_attempt_at = None;
    encode(&mut buffer, 7, 1_700_000_000_000, &original);
    let mut bytes = buffer.clone();
    bytes.extend_from_slice(&buffer);

    let (records, torn) = decode_all(&bytes);

    assert!(!torn);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].id, 7);
    assert_eq!(records[1].created_ms, 1_700_000_000_000);
    assert_eq!(records[1].entry.request_id, "req-ü");
    assert_eq!(records[1].entry.kind, EntryKind::VoidHold);
    assert_eq!(records[1].entry.customer_id, None);
    assert_eq!(records[1].entry.next_attempt_at, None);
    assert_eq!(records[1].entry.payload, original.payload);
    for cut in 1..buffer.len() {
        let (records, torn) = decode_all(&buffer[..cut]);
        assert!(records.is_empty(), "cut at {cut}");
        assert!(torn, "cut at {cut}");
    }
}
