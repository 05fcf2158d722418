//! The outbox store against real SQLite files in temporary directories.

#![allow(
    clippy::unwrap_used,
    reason = "setup helpers outside #[test] functions panic on failure"
)]

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinSet;
use tollgate::config::Durability;
use tollgate::outbox::{EntryKind, EntryState, NewEntry, Outbox, OutboxError};

/// Set only in the child process of the crash test: the data directory to write into.
const CRASH_DIR_VAR: &str = "TOLLGATE_TEST_OUTBOX_CRASH_DIR";

/// Set to make the crash child insert through the journal (`Outbox::insert_new`).
const CRASH_JOURNAL_VAR: &str = "TOLLGATE_TEST_OUTBOX_CRASH_JOURNAL";

/// Number of inserts the crash child acknowledges before it aborts.
const CRASH_ACKS: usize = 300;

/// Creates a data directory under Cargo's target directory rather than /tmp, which is a RAM
/// file system on some machines, so fsync does real work.
fn data_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Opens the server's outbox. A test that reopens a directory can find the lock still held
/// for a moment: a child process that a parallel test forks inherits the lock's descriptor
/// until it executes its program. So a lock conflict is retried for a while.
fn open(dir: &TempDir) -> Outbox {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Outbox::open_server(dir.path(), Durability::Process) {
            Err(OutboxError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.unwrap(),
        }
    }
}

fn charge(customer_id: &str) -> Value {
    json!({ "customer_id": customer_id, "amount_nanos": 1_250_000 })
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

#[tokio::test]
async fn inserted_entry_is_pending_and_due() {
    let dir = data_dir();
    let outbox = open(&dir);
    let before = Utc::now();

    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let entry = outbox.get(id).await.unwrap().unwrap();

    assert_eq!(entry.id, id);
    assert_eq!(entry.request_id, "req-1");
    assert_eq!(entry.kind, EntryKind::Charge);
    assert_eq!(entry.payload, charge("acme"));
    assert_eq!(entry.state, EntryState::Pending);
    assert_eq!(entry.attempts, 0);
    assert_eq!(entry.last_error, None);
    assert_eq!(entry.dead_reason, None);
    assert!(entry.created_at >= before - Duration::milliseconds(1));
    assert_eq!(entry.next_attempt_at, entry.created_at);

    let due = outbox.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, id);
}

#[tokio::test]
async fn done_entry_is_no_longer_due() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::VoidHold, &charge("acme"))
        .await
        .unwrap();

    outbox.mark_done(id).await.unwrap();

    let entry = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(entry.state, EntryState::Done);
    assert_eq!(entry.kind, EntryKind::VoidHold);
    assert!(outbox.due(Utc::now(), 10).await.unwrap().is_empty());
    assert_eq!(outbox.list(EntryState::Done, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn detached_mark_commits_before_close() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();

    outbox.mark_done_detached(id);
    outbox.close().await;

    let entry = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(entry.state, EntryState::Done);
}

#[tokio::test]
async fn failure_counts_attempt_and_delays_entry() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let retry_at = Utc::now() + Duration::seconds(30);

    outbox
        .record_failure(id, "ledger returned 503", retry_at)
        .await
        .unwrap();
    outbox
        .record_failure(id, "ledger timed out", retry_at)
        .await
        .unwrap();

    let entry = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(entry.attempts, 2);
    assert_eq!(entry.state, EntryState::Pending);
    assert_eq!(entry.last_error.as_deref(), Some("ledger timed out"));
    assert_eq!(
        entry.next_attempt_at.timestamp_millis(),
        retry_at.timestamp_millis()
    );
    assert!(outbox.due(Utc::now(), 10).await.unwrap().is_empty());
    assert_eq!(outbox.due(retry_at, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn dead_entry_returns_to_pending_on_retry() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let far_future = Utc::now() + Duration::days(1);
    outbox
        .record_failure(id, "ledger returned 500", far_future)
        .await
        .unwrap();

    outbox.dead_letter(id, "older than max age").await.unwrap();
    let dead = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, EntryState::Dead);
    assert_eq!(dead.dead_reason.as_deref(), Some("older than max age"));
    assert!(outbox.due(far_future, 10).await.unwrap().is_empty());

    assert!(outbox.retry(id).await.unwrap());
    let retried = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(retried.state, EntryState::Pending);
    assert_eq!(retried.dead_reason, None);
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.last_error.as_deref(), Some("ledger returned 500"));
    assert!(retried.next_attempt_at <= Utc::now());
    assert_eq!(outbox.due(Utc::now(), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn retry_all_dead_revives_only_dead() {
    let dir = data_dir();
    let outbox = open(&dir);
    let mut ids = Vec::new();
    for n in 0..4 {
        let request_id = format!("req-{n}");
        let id = outbox
            .insert(&request_id, EntryKind::Charge, &charge("acme"))
            .await
            .unwrap();
        ids.push(id);
    }
    outbox.dead_letter(ids[0], "gave up").await.unwrap();
    outbox.dead_letter(ids[1], "gave up").await.unwrap();
    outbox.mark_done(ids[2]).await.unwrap();

    assert_eq!(outbox.retry_all_dead().await.unwrap(), 2);

    assert!(outbox.list(EntryState::Dead, 10).await.unwrap().is_empty());
    let pending: Vec<i64> = outbox
        .list(EntryState::Pending, 10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(pending, vec![ids[0], ids[1], ids[3]]);
    assert_eq!(outbox.retry_all_dead().await.unwrap(), 0);
}

#[tokio::test]
async fn retry_all_pending_makes_them_due() {
    let dir = data_dir();
    let outbox = open(&dir);
    let later = Utc::now() + Duration::hours(1);
    let pending = outbox
        .insert_at("req-1", EntryKind::Charge, &charge("acme"), later)
        .await
        .unwrap();
    let dead = outbox
        .insert_at("req-2", EntryKind::Charge, &charge("acme"), later)
        .await
        .unwrap();
    outbox.dead_letter(dead, "gave up").await.unwrap();
    assert!(outbox.due(Utc::now(), 10).await.unwrap().is_empty());

    assert_eq!(outbox.retry_all_pending().await.unwrap(), 1);

    let due = outbox.due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, pending);
    assert_eq!(
        outbox.get(dead).await.unwrap().unwrap().state,
        EntryState::Dead
    );
}

#[tokio::test]
async fn retry_of_missing_entry_returns_false() {
    let dir = data_dir();
    let outbox = open(&dir);

    assert!(!outbox.retry(42).await.unwrap());
}

#[tokio::test]
async fn done_entry_rejects_retry_and_dead_letter() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox.mark_done(id).await.unwrap();

    let retry = outbox.retry(id).await;
    assert!(
        matches!(retry, Err(OutboxError::AlreadyDone { id: got, .. }) if got == id),
        "{retry:?}"
    );
    let dead = outbox.dead_letter(id, "gave up").await;
    assert!(
        matches!(dead, Err(OutboxError::AlreadyDone { .. })),
        "{dead:?}"
    );
    assert_eq!(
        outbox.get(id).await.unwrap().unwrap().state,
        EntryState::Done
    );
}

#[tokio::test]
async fn updates_of_missing_entry_are_not_found() {
    let dir = data_dir();
    let outbox = open(&dir);

    let done = outbox.mark_done(7).await;
    let failure = outbox.record_failure(7, "timeout", Utc::now()).await;
    let dead = outbox.dead_letter(7, "gave up").await;
    let payload = outbox.update_payload(7, &json!({})).await;

    for result in [done, failure, dead, payload] {
        assert!(
            matches!(result, Err(OutboxError::NotFound { id: 7, .. })),
            "{result:?}"
        );
    }
    assert!(outbox.get(7).await.unwrap().is_none());
    assert!(outbox.writable(), "a missing entry is not a write failure");
}

#[tokio::test]
async fn update_payload_replaces_payload() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let updated = json!({ "customer_id": "acme", "attempt": 2, "reference": "tg:req-1:usd:r2" });

    outbox.update_payload(id, &updated).await.unwrap();

    assert_eq!(outbox.get(id).await.unwrap().unwrap().payload, updated);
}

#[tokio::test]
async fn insert_is_idempotent_per_request_and_kind() {
    let dir = data_dir();
    let outbox = open(&dir);

    let first = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let again = outbox
        .insert("req-1", EntryKind::Charge, &charge("other"))
        .await
        .unwrap();
    let void = outbox
        .insert("req-1", EntryKind::VoidHold, &charge("acme"))
        .await
        .unwrap();

    assert_eq!(again, first);
    assert_ne!(void, first);
    let entry = outbox.get(first).await.unwrap().unwrap();
    assert_eq!(
        entry.payload,
        charge("acme"),
        "a repeat keeps the first payload"
    );
    assert_eq!(outbox.counts().await.unwrap().pending, 2);
}

#[tokio::test]
async fn due_orders_by_next_attempt_then_id() {
    let dir = data_dir();
    let outbox = open(&dir);
    let base = Utc::now() - Duration::minutes(10);
    // (request id, next attempt in ms after `base`)
    let cases = [
        ("late", 300),
        ("early", 100),
        ("middle", 200),
        ("tie", 100),
        ("future", 3_600_000),
    ];
    let mut ids = std::collections::HashMap::new();
    for (request_id, offset_ms) in cases {
        let next_attempt_at = base + Duration::milliseconds(offset_ms);
        let id = outbox
            .insert_at(
                request_id,
                EntryKind::Charge,
                &charge("acme"),
                next_attempt_at,
            )
            .await
            .unwrap();
        ids.insert(request_id, id);
    }

    let due: Vec<String> = outbox
        .due(Utc::now(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.request_id)
        .collect();
    assert_eq!(due, ["early", "tie", "middle", "late"]);

    let limited = outbox.due(Utc::now(), 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].id, ids["early"]);

    let at_middle = outbox
        .due(base + Duration::milliseconds(200), 10)
        .await
        .unwrap();
    assert_eq!(at_middle.len(), 3, "next_attempt_at equal to now is due");
}

#[tokio::test]
async fn counts_report_pending_dead_and_oldest() {
    let dir = data_dir();
    let outbox = open(&dir);
    assert_eq!(outbox.counts().await.unwrap().pending, 0);
    assert_eq!(outbox.counts().await.unwrap().oldest_pending, None);

    let first = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = outbox
        .insert("req-2", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let third = outbox
        .insert("req-3", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox.dead_letter(second, "gave up").await.unwrap();
    outbox.mark_done(third).await.unwrap();

    let counts = outbox.counts().await.unwrap();
    let first_created = outbox.get(first).await.unwrap().unwrap().created_at;
    assert_eq!(counts.pending, 1);
    assert_eq!(counts.dead, 1);
    assert_eq!(counts.oldest_pending, Some(first_created));
}

#[tokio::test]
async fn counts_for_customer_read_payload_customer() {
    let dir = data_dir();
    let outbox = open(&dir);
    // (request id, customer, final state)
    let cases = [
        ("a1", "acme", EntryState::Pending),
        ("a2", "acme", EntryState::Pending),
        ("a3", "acme", EntryState::Dead),
        ("a4", "acme", EntryState::Done),
        ("b1", "bolt", EntryState::Pending),
    ];
    for (request_id, customer, state) in cases {
        let id = outbox
            .insert(request_id, EntryKind::Charge, &charge(customer))
            .await
            .unwrap();
        match state {
            EntryState::Pending => {}
            EntryState::Done => outbox.mark_done(id).await.unwrap(),
            EntryState::Dead => outbox.dead_letter(id, "gave up").await.unwrap(),
        }
    }
    outbox
        .insert("x1", EntryKind::VoidHold, &json!({ "hold": "tg:x1:hold" }))
        .await
        .unwrap();

    let acme = outbox.counts_for_customer("acme").await.unwrap();
    assert_eq!(acme.pending, 2);
    assert_eq!(acme.dead, 1);
    assert!(acme.oldest_pending.is_some());

    let bolt = outbox.counts_for_customer("bolt").await.unwrap();
    assert_eq!(bolt.pending, 1);
    assert_eq!(bolt.dead, 0);

    let nobody = outbox.counts_for_customer("nobody").await.unwrap();
    assert_eq!(nobody.pending, 0);
    assert_eq!(nobody.oldest_pending, None);
}

#[tokio::test]
async fn purge_removes_only_old_done_entries() {
    let dir = data_dir();
    let outbox = open(&dir);
    let old_done = outbox
        .insert("old-done", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let pending = outbox
        .insert("pending", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let dead = outbox
        .insert("dead", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox.mark_done(old_done).await.unwrap();
    outbox.dead_letter(dead, "gave up").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new_done = outbox
        .insert("new-done", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox.mark_done(new_done).await.unwrap();

    assert_eq!(outbox.purge_done(cutoff).await.unwrap(), 1);

    assert!(outbox.get(old_done).await.unwrap().is_none());
    assert!(outbox.get(pending).await.unwrap().is_some());
    assert!(outbox.get(dead).await.unwrap().is_some());
    assert!(outbox.get(new_done).await.unwrap().is_some());
    assert_eq!(outbox.purge_done(cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn purge_of_many_rows_runs_in_chunks() {
    let dir = data_dir();
    let outbox = open(&dir);
    let mut tasks = JoinSet::new();
    for n in 0..12_000 {
        let outbox = outbox.clone();
        tasks.spawn(async move {
            let id = outbox
                .insert(&format!("req-{n}"), EntryKind::Charge, &charge("acme"))
                .await?;
            outbox.mark_done(id).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let commits_before = outbox.commit_count();

    let purged = outbox
        .purge_done(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();

    assert_eq!(purged, 12_000);
    assert!(outbox.list(EntryState::Done, 10).await.unwrap().is_empty());
    assert_eq!(
        outbox.commit_count() - commits_before,
        13,
        "twelve full chunks of 1000 rows, then one that finds none"
    );
}

#[tokio::test]
async fn ids_of_purged_entries_are_not_reused() {
    let dir = data_dir();
    let outbox = open(&dir);
    let first = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox.mark_done(first).await.unwrap();
    outbox
        .purge_done(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();

    let second = outbox
        .insert("req-2", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();

    assert!(second > first);
}

#[tokio::test]
async fn second_server_is_locked_out() {
    let dir = data_dir();
    let _server = open(&dir);

    let second = Outbox::open_server(dir.path(), Durability::Process);

    let Err(error) = second else {
        panic!("a second server opened the same data directory");
    };
    assert!(matches!(error, OutboxError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("outbox locked by another tollgate server in"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn shared_handle_sees_and_updates_server_rows() {
    let dir = data_dir();
    let server = open(&dir);
    let id = server
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    server.dead_letter(id, "gave up").await.unwrap();

    let cli = Outbox::open_shared(dir.path()).unwrap();
    let dead = cli.list(EntryState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);

    assert!(cli.retry(id).await.unwrap());
    assert_eq!(
        server.get(id).await.unwrap().unwrap().state,
        EntryState::Pending
    );

    server.mark_done(id).await.unwrap();
    assert_eq!(cli.get(id).await.unwrap().unwrap().state, EntryState::Done);
}

#[tokio::test]
async fn shared_open_without_database_fails() {
    let dir = data_dir();

    let result = Outbox::open_shared(dir.path());

    let Err(error) = result else {
        panic!("open_shared created a database");
    };
    assert!(matches!(error, OutboxError::Missing { .. }), "{error:?}");
    assert!(error.to_string().contains("outbox.sqlite3"), "{error}");
    assert!(!dir.path().join("outbox.sqlite3").exists());
}

#[tokio::test]
async fn server_creates_missing_data_dir() {
    let dir = data_dir();
    let nested = dir.path().join("state").join("tollgate");

    let outbox = Outbox::open_server(&nested, Durability::Power).unwrap();

    assert!(nested.join("outbox.sqlite3").is_file());
    assert!(nested.join("server.lock").is_file());
    assert!(outbox.writable());
}

#[tokio::test]
async fn entries_survive_drop_and_reopen() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    outbox
        .record_failure(id, "ledger returned 503", at_ms(1_700_000_000_000))
        .await
        .unwrap();
    let clone = outbox.clone();
    drop(outbox);
    drop(clone);

    let reopened = open(&dir);

    let entry = reopened.get(id).await.unwrap().unwrap();
    assert_eq!(entry.request_id, "req-1");
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.next_attempt_at, at_ms(1_700_000_000_000));
}

#[tokio::test]
async fn close_stops_writes_but_not_reads() {
    let dir = data_dir();
    let outbox = open(&dir);
    let id = outbox
        .insert("req-1", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    assert!(outbox.writable());

    outbox.close().await;

    assert!(!outbox.writable());
    let write = outbox.mark_done(id).await;
    assert!(
        matches!(write, Err(OutboxError::WriterStopped { .. })),
        "{write:?}"
    );
    assert!(outbox.get(id).await.unwrap().is_some());
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_share_commits() {
    let dir = data_dir();
    let outbox = Outbox::open_server(dir.path(), Durability::Power).unwrap();
    let commits_before = outbox.commit_count();

    let mut tasks = JoinSet::new();
    for n in 0..500 {
        let outbox = outbox.clone();
        tasks.spawn(async move {
            outbox
                .insert(&format!("req-{n}"), EntryKind::Charge, &charge("acme"))
                .await
        });
    }
    let mut ids = HashSet::new();
    while let Some(result) = tasks.join_next().await {
        ids.insert(result.unwrap().unwrap());
    }

    let commits = outbox.commit_count() - commits_before;
    assert_eq!(ids.len(), 500);
    assert_eq!(outbox.counts().await.unwrap().pending, 500);
    assert!(commits >= 1);
    assert!(commits <= 50, "500 inserts took {commits} commits");
}

/// Runs only as the child process of `acknowledged_inserts_survive_abort`: inserts from
/// several tasks, prints each acknowledged id and aborts right after an insert returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_inserts_then_aborts() {
    let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
        return;
    };
    let outbox = Outbox::open_server(Path::new(&dir), Durability::Process).unwrap();
    let journal = std::env::var_os(CRASH_JOURNAL_VAR).is_some();
    let acknowledged = Arc::new(AtomicUsize::new(0));

    let mut tasks = JoinSet::new();
    for task in 0..8 {
        let outbox = outbox.clone();
        let acknowledged = acknowledged.clone();
        tasks.spawn(async move {
            for n in 0.. {
                let request_id = format!("crash-{task}-{n}");
                let id = if journal {
                    outbox.insert_new(new_charge(&request_id)).await.unwrap()
                } else {
                    outbox
                        .insert(&request_id, EntryKind::Charge, &charge("acme"))
                        .await
                        .unwrap()
                };
                // Written straight to the pipe, so the line is out before the abort.
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "ACK {id} {request_id}").unwrap();
                stdout.flush().unwrap();
                drop(stdout);
                if acknowledged.fetch_add(1, Ordering::SeqCst) + 1 >= CRASH_ACKS {
                    std::process::abort();
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

#[tokio::test]
async fn acknowledged_inserts_survive_abort() {
    assert_acknowledged_inserts_survive_abort(false).await;
}

/// Journaled inserts return before their commit, so the abort lands while some of them are
/// only in the journal, and the next open stores them.
#[tokio::test]
async fn journaled_inserts_survive_abort() {
    assert_acknowledged_inserts_survive_abort(true).await;
}

fn new_charge(request_id: &str) -> NewEntry {
    NewEntry {
        request_id: request_id.to_string(),
        kind: EntryKind::Charge,
        customer_id: Some("acme".to_string()),
        payload: charge("acme").to_string(),
        next_attempt_at: None,
    }
}

async fn assert_acknowledged_inserts_survive_abort(journal: bool) {
    let dir = data_dir();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "crash_child_inserts_then_aborts", "--nocapture"])
        .env(CRASH_DIR_VAR, dir.path());
    if journal {
        child.env(CRASH_JOURNAL_VAR, "1");
    }
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the child exited normally instead of aborting: {stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // 6 is SIGABRT on Linux and macOS.
        assert_eq!(output.status.signal(), Some(6), "stderr: {stderr}");
    }

    let acknowledged: Vec<(i64, String)> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ACK "))
        .map(|rest| {
            let (id, request_id) = rest.split_once(' ').unwrap();
            (id.parse().unwrap(), request_id.to_string())
        })
        .collect();
    assert!(
        acknowledged.len() >= CRASH_ACKS,
        "the child acknowledged {} inserts; stderr: {stderr}",
        acknowledged.len()
    );

    let reopened = open(&dir);
    for (id, request_id) in &acknowledged {
        let entry = reopened.get(*id).await.unwrap();
        let entry = entry.unwrap_or_else(|| panic!("acknowledged entry {id} was lost"));
        assert_eq!(&entry.request_id, request_id);
        assert_eq!(entry.state, EntryState::Pending);
    }
}

#[tokio::test]
async fn journaled_insert_read_after_sync() {
    let dir = data_dir();
    let outbox = open(&dir);

    let id = outbox.insert_new(new_charge("req-journal")).await.unwrap();
    outbox.mark_done_detached(id);
    outbox.sync().await.unwrap();

    let entry = outbox.get(id).await.unwrap().expect("the entry is stored");
    assert_eq!(entry.request_id, "req-journal");
    assert_eq!(entry.state, EntryState::Done);
    assert_eq!(outbox.counts_for_customer("acme").await.unwrap().pending, 0);

    outbox.close().await;
    drop(outbox);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|item| item.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("outbox-journal-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    let reopened = open(&dir);
    let next = reopened.insert_new(new_charge("req-next")).await.unwrap();
    assert!(next > id, "ids go on after a restart");
}

#[tokio::test]
async fn plain_and_journaled_inserts_get_distinct_ids() {
    let dir = data_dir();
    let outbox = open(&dir);

    let journaled = outbox.insert_new(new_charge("req-1")).await.unwrap();
    let plain = outbox
        .insert("req-2", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    let again = outbox.insert_new(new_charge("req-3")).await.unwrap();
    outbox.sync().await.unwrap();

    let ids: HashSet<i64> = [journaled, plain, again].into();
    assert_eq!(ids.len(), 3);
    for (id, request_id) in [(journaled, "req-1"), (plain, "req-2"), (again, "req-3")] {
        assert_eq!(
            outbox.get(id).await.unwrap().unwrap().request_id,
            request_id
        );
    }
}

/// Copies the files that `pick` names from `from` to `to`. A restart after `kill -9` finds
/// the database, its WAL and the journal segments as they are in the page cache while the
/// server still runs. The `-shm` file is left behind, so SQLite rebuilds the WAL index.
fn copy_files(from: &Path, to: &Path, pick: fn(&str) -> bool) {
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().into_string().unwrap();
        if pick(&name) {
            std::fs::copy(item.path(), to.join(&name)).unwrap();
        }
    }
}

fn is_database(name: &str) -> bool {
    name == "outbox.sqlite3" || name == "outbox.sqlite3-wal"
}

fn is_journal(name: &str) -> bool {
    name.starts_with("outbox-journal-")
}

#[tokio::test]
async fn purge_keeps_entries_a_replay_would_revive() {
    let live = data_dir();
    let outbox = open(&live);
    let id = outbox.insert_new(new_charge("req-purged")).await.unwrap();
    outbox.mark_done(id).await.unwrap();

    let purged = outbox
        .purge_done(Utc::now() + Duration::hours(1))
        .await
        .unwrap();

    assert_eq!(
        purged, 0,
        "the entry's record is still in the open journal segment"
    );
    let killed = data_dir();
    copy_files(live.path(), killed.path(), |name| {
        is_database(name) || is_journal(name)
    });
    let restarted = open(&killed);
    let entry = restarted.get(id).await.unwrap().expect("the entry is kept");
    assert_eq!(
        entry.state,
        EntryState::Done,
        "the replay does not revive it"
    );

    let purged = restarted
        .purge_done(Utc::now() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        purged, 1,
        "the replay deleted the journal, so the purge may remove it"
    );
    assert!(restarted.get(id).await.unwrap().is_none());
}

/// The database is copied before the insert commits and the journal after it, so the entry
/// exists only in the journal.
#[tokio::test]
async fn start_with_power_replays_journal() {
    let live = data_dir();
    let outbox = open(&live);
    outbox.sync().await.unwrap();
    let killed = data_dir();
    copy_files(live.path(), killed.path(), is_database);
    let id = outbox.insert_new(new_charge("req-journal")).await.unwrap();
    outbox.sync().await.unwrap();
    copy_files(live.path(), killed.path(), is_journal);

    let power = Outbox::open_server(killed.path(), Durability::Power).unwrap();

    let entry = power
        .get(id)
        .await
        .unwrap()
        .expect("the journaled entry is stored");
    assert_eq!(entry.request_id, "req-journal");
    assert_eq!(entry.state, EntryState::Pending);
    let plain = power
        .insert("req-power", EntryKind::Charge, &charge("acme"))
        .await
        .unwrap();
    assert_ne!(plain, id, "a later insert does not reuse the journaled id");
    let leftovers: Vec<_> = std::fs::read_dir(killed.path())
        .unwrap()
        .map(|item| item.unwrap().file_name().into_string().unwrap())
        .filter(|name| is_journal(name))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
