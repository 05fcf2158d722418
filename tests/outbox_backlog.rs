//! The outbox worker logs the outbox counts every `report_every` while an entry is pending,
//! and stays silent once nothing is. This test captures the log of its own thread. It runs
//! alone in this test binary because, beside other tests running on other threads, the
//! capturing subscriber was seen to miss some of the worker's events.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use support::blnk::{FakeBlnk, Fault};
use tollgate::accounts::Billing;
use tollgate::billing::worker::{self, Backoff, Clock, WorkerSettings};
use tollgate::billing::{Biller, ChargeRecord, SystemBalances};
use tollgate::config::Durability;
use tollgate::customers::{Created, Operations};
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;
use tollgate::money::Nanos;
use tollgate::outbox::{EntryKind, EntryState, Outbox};

fn system() -> SystemBalances {
    SystemBalances {
        revenue: "@Revenue-USD".to_string(),
        token_pool: "@TokenPool".to_string(),
        world: "@World-USD".to_string(),
    }
}

/// Builds a biller with its own outbox in `data_dir`, and no worker running.
fn biller(blnk: &FakeBlnk, data_dir: &Path) -> Biller {
    let outbox = Outbox::open_server(data_dir, Durability::Process).expect("outbox");
    let client = BlnkClient::new(&blnk.url(), None, Duration::from_millis(300)).expect("client");
    let timeout = Duration::from_millis(300);
    Biller::new(
        client,
        outbox,
        system(),
        timeout,
        timeout,
        Duration::from_secs(60),
    )
}

async fn postpaid(blnk: &FakeBlnk, id: &str) -> Created {
    let ops = Operations {
        blnk: BlnkClient::new(&blnk.url(), None, Duration::from_secs(5)).expect("client"),
        ledger_name: "tollgate customer wallets".to_string(),
        system: system(),
    };
    let customer = CustomerId::parse(id).expect("valid id");
    let billing = Billing::Postpaid { credit_limit: None };
    ops.create_customer(&customer, None, billing)
        .await
        .expect("customer created")
}

fn charge_record(request_id: &str, customer: &Created) -> ChargeRecord {
    ChargeRecord {
        request_id: request_id.to_string(),
        customer_id: customer.customer_id.clone(),
        usd_balance_id: customer.usd_balance_id.clone(),
        tokens_balance_id: customer.tokens_balance_id.clone(),
        amount: Nanos(195_000),
        tokens: 700,
        metadata: Default::default(),
        effective_date: Utc::now(),
        attempt: 1,
    }
}

/// A log sink for the test thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

#[tokio::test]
async fn backlog_is_logged_while_pending() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime has one thread, so the worker's logs reach this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);

    let blnk = FakeBlnk::start().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let biller = biller(&blnk, data_dir.path());
    let customer = postpaid(&blnk, "backlog").await;
    blnk.inject(
        Fault::Status(503)
            .on("POST", "/transactions/bulk")
            .times(10_000),
    );
    tokio::time::pause();
    let clock = Clock::tokio();
    let settings = WorkerSettings {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        },
        max_age: Duration::from_secs(3600),
        done_retention: Duration::from_secs(24 * 3600),
        purge_every: Duration::from_secs(24 * 3600),
        report_every: Duration::from_secs(10),
        clock,
    };
    let payload = serde_json::to_value(charge_record("req-backlog", &customer)).unwrap();
    let id = biller
        .outbox()
        .insert_at("req-backlog", EntryKind::Charge, &payload, clock.now())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tollgate::task::spawn_named(
        "test-outbox-worker",
        worker::run(biller.clone(), settings, stop.clone()),
    );
    let watched = Watched {
        blnk: &blnk,
        outbox: biller.outbox(),
        id,
    };

    watched.pass(Duration::from_secs(11)).await;
    assert_eq!(
        captured.count("outbox backlog"),
        1,
        "one report after ten seconds:\n{}",
        captured.text()
    );
    assert_eq!(captured.count("pending=1"), 1);
    assert_eq!(captured.count("dead=0"), 1);
    watched.pass(Duration::from_secs(10)).await;
    assert_eq!(
        captured.count("outbox backlog"),
        2,
        "reported again while pending"
    );

    blnk.clear_faults();
    for _ in 0..100 {
        if biller.outbox().get(id).await.unwrap().unwrap().state == EntryState::Done {
            break;
        }
        watched.pass(Duration::from_secs(1)).await;
    }
    assert_eq!(
        biller.outbox().get(id).await.unwrap().unwrap().state,
        EntryState::Done
    );
    let reports = captured.count("outbox backlog");
    watched.pass(Duration::from_secs(30)).await;
    assert_eq!(
        captured.count("outbox backlog"),
        reports,
        "silent once nothing is pending"
    );

    stop.cancel();
    running.await.unwrap();
}

/// The worker's entry, watched while paused time passes.
struct Watched<'a> {
    blnk: &'a FakeBlnk,
    outbox: &'a Outbox,
    id: i64,
}

impl Watched<'_> {
    /// Lets `span` of paused tokio time pass in steps of 10 ms. After each post of the worker,
    /// it waits without moving time until the worker has stored the outcome. While the worker
    /// waits for the outbox's writer thread the runtime looks idle, and a test that kept
    /// sleeping would let tokio move its paused clock on past the worker's schedule.
    async fn pass(&self, span: Duration) {
        let end = tokio::time::Instant::now() + span;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let posts = self.blnk.request_count("POST", "/transactions/bulk");
            loop {
                let entry = self
                    .outbox
                    .get(self.id)
                    .await
                    .expect("read")
                    .expect("entry exists");
                if entry.state == EntryState::Done || entry.attempts as usize >= posts {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

#[tokio::test]
async fn worker_deletes_done_entries_past_retention() {
    let blnk = FakeBlnk::start().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let biller = biller(&blnk, data_dir.path());
    let customer = postpaid(&blnk, "retention").await;
    let outbox = biller.outbox();
    let payload = serde_json::to_value(charge_record("req-done", &customer)).unwrap();
    let done = outbox
        .insert("req-done", EntryKind::Charge, &payload)
        .await
        .unwrap();
    outbox.mark_done(done).await.unwrap();
    let payload = serde_json::to_value(charge_record("req-dead", &customer)).unwrap();
    let dead = outbox
        .insert("req-dead", EntryKind::Charge, &payload)
        .await
        .unwrap();
    outbox.dead_letter(dead, "rejected").await.unwrap();
    // Entries are stamped in whole milliseconds, so a short pause puts them past the retention.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let settings = WorkerSettings {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        },
        max_age: Duration::from_secs(3600),
        done_retention: Duration::from_millis(5),
        purge_every: Duration::from_millis(10),
        report_every: Duration::from_secs(3600),
        clock: Clock::System,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tollgate::task::spawn_named(
        "test-outbox-worker",
        worker::run(biller.clone(), settings, stop.clone()),
    );
    for _ in 0..200 {
        if outbox.get(done).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    running.await.unwrap();

    assert!(
        outbox.get(done).await.unwrap().is_none(),
        "done entry deleted"
    );
    let dead_entry = outbox.get(dead).await.unwrap().expect("dead entry kept");
    assert_eq!(dead_entry.state, EntryState::Dead);
}
