//! Never lose, never double: charges whose first post failed in every way Blnk can fail end
//! up applied exactly once, with the same references, and balances exact to the nano-dollar.
//! Some tests run the whole proxy; others drive the biller and the outbox worker directly,
//! so they decide when the worker runs and what time it sees.

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::blnk::{FakeBlnk, Fault, TxnStatus};
use support::cases::{Case, all_charge_legs, charge_of, usd_to_nanos};
use support::harness::{Harness, Options};
use tollgate::accounts::Billing;
use tollgate::billing::worker::{self, Backoff, Clock, WorkerSettings};
use tollgate::billing::{Biller, ChargeRecord, ChargeStatus, SystemBalances};
use tollgate::config::Durability;
use tollgate::customers::{Created, Operations};
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;
use tollgate::money::Nanos;
use tollgate::outbox::{EntryKind, EntryState, Outbox};

const CASE_15: &str = "15-ledger-post-retry-same-reference";
const CUSTOMER: &str = "cust_postpaid_01";

/// Short ledger timeouts and retry delays, so a retried charge lands within a second or two.
fn fast(extra: &[(&'static str, &str)]) -> Options {
    let mut env = vec![
        ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "300ms".to_string()),
        ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms".to_string()),
        ("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "100ms".to_string()),
        ("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "500ms".to_string()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, value.to_string())));
    Options {
        env,
        ..Options::default()
    }
}

async fn mount_case(harness: &Harness, case: &Case) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&harness.upstream)
        .await;
}

/// Mounts `case`'s upstream answer, sent `delay` after the request arrives.
async fn mount_case_after(harness: &Harness, case: &Case, delay: Duration) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(case.upstream_json())
                .set_delay(delay),
        )
        .mount(&harness.upstream)
        .await;
}

async fn post_chat(harness: &Harness, customer: &str, body: &Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    let id = response.headers()["x-tollgate-request-id"].to_str();
    id.expect("the request id is ASCII").to_string()
}

/// Waits until the outbox has no pending entry and no charge waits in memory.
async fn wait_until_settled(outbox: &Outbox, biller: &Biller, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let counts = outbox.counts().await.expect("counts");
        if counts.pending == 0 && biller.unstored_charges() == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox still has {counts:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_dead(outbox: &Outbox, count: u64) {
    for _ in 0..500 {
        if outbox.counts().await.expect("counts").dead == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the outbox never held {count} dead entries");
}

fn references(blnk: &FakeBlnk) -> Vec<String> {
    blnk.transactions()
        .into_iter()
        .map(|t| t.reference)
        .collect()
}

/// Case 15: the first bulk is applied but its answer is lost. The retry posts the same
/// references, gets 409, finds both legs applied with no refund, and stops there.
async fn lost_answer_is_charged_once(fault: Fault) {
    let harness = Harness::start_with(fast(&[])).await;
    let case = Case::load(CASE_15);
    harness.postpaid(CUSTOMER).await;
    mount_case(&harness, &case).await;
    harness.blnk.inject(fault.on("POST", "/transactions/bulk"));

    let response = post_chat(&harness, CUSTOMER, &case.request_body()).await;
    assert_eq!(response.status(), 200, "the client gets its answer");
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body, case.upstream_json(), "the body is relayed unchanged");

    let outbox = harness.state.biller.outbox();
    wait_until_settled(outbox, &harness.state.biller, Duration::from_secs(10)).await;
    assert_eq!(
        harness.blnk.request_count("POST", "/transactions/bulk"),
        2,
        "one post and one retry"
    );
    assert!(
        harness
            .blnk
            .request_count("GET", "/transactions/reference/")
            >= 2,
        "the 409 was verified"
    );

    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(charge.usd_nanos(), usd_to_nanos("0.000195"), "USD leg");
    assert_eq!(charge.usd_nanos(), case.expected_nanos());
    assert_eq!(charge.tokens(), 700, "TOKENS leg");
    let legs = all_charge_legs(&harness.blnk);
    assert_eq!(legs.len(), 2, "exactly one charge");
    let mut leg_references: Vec<&str> = legs.iter().map(|t| t.reference.as_str()).collect();
    leg_references.sort_unstable();
    assert_eq!(
        leg_references,
        [format!("tg:{id}:tokens"), format!("tg:{id}:usd")],
        "same references"
    );
    assert_eq!(
        legs[0].parent_transaction, legs[1].parent_transaction,
        "one bulk"
    );
    assert!(
        !references(&harness.blnk)
            .iter()
            .any(|r| r.ends_with("_refund")),
        "nothing undone"
    );
    let revenue = harness
        .blnk
        .balance_by_indicator("@Revenue-USD", "USD")
        .expect("revenue balance");
    assert_eq!(revenue.balance, case.expected_nanos());
    assert_eq!(outbox.counts().await.expect("counts").dead, 0);
}

#[tokio::test]
async fn lost_answer_after_timeout_charges_once() {
    lost_answer_is_charged_once(Fault::ApplyThenHang(Duration::from_millis(1500))).await;
}

#[tokio::test]
async fn applied_then_500_charges_once() {
    lost_answer_is_charged_once(Fault::ApplyThenFail(500)).await;
}

#[tokio::test]
async fn separate_requests_are_two_charges() {
    let harness = Harness::start_with(fast(&[])).await;
    let case = Case::load(CASE_15);
    let customer = harness.postpaid(CUSTOMER).await;
    mount_case(&harness, &case).await;

    let first = request_id(&post_chat(&harness, CUSTOMER, &case.request_body()).await);
    let second = request_id(&post_chat(&harness, CUSTOMER, &case.request_body()).await);
    assert_ne!(first, second);
    for id in [&first, &second] {
        assert_eq!(
            charge_of(&harness.blnk, id).usd_nanos(),
            case.expected_nanos(),
            "{id}"
        );
    }
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        4,
        "two charges of two legs"
    );
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.balance, -2 * case.expected_nanos());
}

#[tokio::test]
async fn fault_sequence_charges_each_once() {
    let harness = Harness::start_with(fast(&[])).await;
    let case = Case::load(CASE_15);
    let funds = 1_000_000_000;
    let wallets = [
        harness.prepaid("prepaid-a", "1").await,
        harness.prepaid("prepaid-b", "1").await,
        harness.postpaid("postpaid-c").await,
    ];
    let names = ["prepaid-a", "prepaid-b", "postpaid-c"];
    mount_case(&harness, &case).await;

    // Twelve faults on the charge posts, fired in this order on whichever post comes next.
    let faults = [
        (Fault::Status(500), 3),
        (Fault::Hang(Duration::from_millis(450)), 2),
        (Fault::ApplyThenFail(500), 2),
        (Fault::ApplyThenHang(Duration::from_millis(450)), 2),
        (Fault::Status(423), 2),
        (Fault::Status(502), 1),
    ];
    for (fault, times) in faults {
        harness
            .blnk
            .inject(fault.on("POST", "/transactions/bulk").times(times));
    }

    let body = case.request_body();
    let mut ids = Vec::new();
    for round in 0..4 {
        let requests = names.iter().map(|name| post_chat(&harness, name, &body));
        for response in futures_util::future::join_all(requests).await {
            assert_eq!(
                response.status(),
                200,
                "round {round}: never an error after upstream answered"
            );
            ids.push(request_id(&response));
        }
    }
    wait_until_settled(
        harness.state.biller.outbox(),
        &harness.state.biller,
        Duration::from_secs(30),
    )
    .await;

    assert!(
        harness.blnk.request_count("POST", "/transactions/bulk") >= 24,
        "every fault fired"
    );
    for id in &ids {
        let charge = charge_of(&harness.blnk, id);
        assert_eq!(charge.usd_nanos(), case.expected_nanos(), "{id}: USD leg");
        assert_eq!(charge.tokens(), case.expected_tokens(), "{id}: TOKENS leg");
    }
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        2 * ids.len(),
        "each charge applied once"
    );
    assert!(
        !references(&harness.blnk).iter().any(|r| r.contains(":r2")),
        "no new attempt was needed"
    );

    let per_customer = ids.len() as i128 / 3;
    for (index, wallet) in wallets.iter().enumerate() {
        let balance = harness.blnk.balance(&wallet.usd_balance_id);
        let opening = if index < 2 { funds } else { 0 };
        assert_eq!(
            balance.balance,
            opening - per_customer * case.expected_nanos(),
            "{}",
            names[index]
        );
        assert_eq!(
            balance.inflight_debit_balance, 0,
            "{}: holds released",
            names[index]
        );
        let tokens = harness.blnk.balance(&wallet.tokens_balance_id);
        assert_eq!(
            tokens.balance,
            -per_customer * case.expected_tokens(),
            "{}",
            names[index]
        );
    }
    let revenue = harness
        .blnk
        .balance_by_indicator("@Revenue-USD", "USD")
        .unwrap();
    assert_eq!(revenue.balance, ids.len() as i128 * case.expected_nanos());
    let pool = harness
        .blnk
        .balance_by_indicator("@TokenPool", "TOKENS")
        .unwrap();
    assert_eq!(pool.balance, ids.len() as i128 * case.expected_tokens());
    assert_eq!(
        harness.state.biller.outbox().counts().await.unwrap().dead,
        0
    );
}

#[tokio::test]
async fn rejected_charge_is_dead_lettered() {
    let harness = Harness::start_with(fast(&[])).await;
    let case = Case::load(CASE_15);
    harness.postpaid(CUSTOMER).await;
    mount_case(&harness, &case).await;
    harness
        .blnk
        .inject(Fault::Status(400).on("POST", "/transactions/bulk"));

    let response = post_chat(&harness, CUSTOMER, &case.request_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);
    let outbox = harness.state.biller.outbox();
    wait_for_dead(outbox, 1).await;

    let dead = outbox.list(EntryState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].request_id, id);
    let reason = dead[0].dead_reason.clone().unwrap();
    assert!(
        reason.contains("HTTP 400"),
        "the reason says what Blnk answered: {reason}"
    );
    assert_eq!(
        harness.blnk.request_count("POST", "/transactions/bulk"),
        1,
        "a 400 is not retried"
    );
    assert!(charge_of(&harness.blnk, &id).usd.is_none());

    // Once the cause is fixed, a manual retry posts the same references.
    assert!(outbox.retry(dead[0].id).await.unwrap());
    wait_until_settled(outbox, &harness.state.biller, Duration::from_secs(5)).await;
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
    assert_eq!(
        outbox.get(dead[0].id).await.unwrap().unwrap().state,
        EntryState::Done
    );
}

#[tokio::test]
async fn old_entry_dead_then_fresh_window() {
    let harness = Harness::start_with(fast(&[("TOLLGATE_OUTBOX_MAX_AGE", "1s")])).await;
    let case = Case::load(CASE_15);
    harness.postpaid(CUSTOMER).await;
    mount_case(&harness, &case).await;
    harness.blnk.inject(
        Fault::Status(503)
            .on("POST", "/transactions/bulk")
            .times(10_000),
    );

    let id = request_id(&post_chat(&harness, CUSTOMER, &case.request_body()).await);
    let outbox = harness.state.biller.outbox();
    wait_for_dead(outbox, 1).await;
    let dead = outbox.list(EntryState::Dead, 10).await.unwrap().remove(0);
    let reason = dead.dead_reason.clone().unwrap();
    assert!(reason.contains("outbox.max_age"), "{reason}");
    assert!(
        reason.contains("HTTP 503"),
        "the last error is kept: {reason}"
    );
    assert_eq!(dead.age_started_at, dead.created_at);

    // The entry is older than max_age; the retry measures its age from now instead.
    harness.blnk.clear_faults();
    assert!(outbox.retry(dead.id).await.unwrap());
    let revived = outbox.get(dead.id).await.unwrap().unwrap();
    assert!(revived.age_started_at > revived.created_at + chrono::TimeDelta::seconds(1));
    wait_until_settled(outbox, &harness.state.biller, Duration::from_secs(5)).await;
    assert_eq!(
        outbox.get(dead.id).await.unwrap().unwrap().state,
        EntryState::Done
    );
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
    assert_eq!(all_charge_legs(&harness.blnk).len(), 2);
}

/// A biller and outbox driven by the test itself, with no server and no worker running.
struct Direct {
    blnk: FakeBlnk,
    biller: Biller,
    system: SystemBalances,
    _data_dir: tempfile::TempDir,
}

impl Direct {
    async fn start() -> Direct {
        let blnk = FakeBlnk::start().await;
        let data_dir = tempfile::tempdir().expect("temp dir");
        let outbox = Outbox::open_server(data_dir.path(), Durability::Process).expect("outbox");
        let system = SystemBalances {
            revenue: "@Revenue-USD".to_string(),
            token_pool: "@TokenPool".to_string(),
            world: "@World-USD".to_string(),
        };
        let client =
            BlnkClient::new(&blnk.url(), None, Duration::from_millis(300)).expect("client");
        let biller = Biller::new(
            client,
            outbox,
            system.clone(),
            Duration::from_millis(200),
            Duration::from_millis(300),
            Duration::from_secs(60),
        );
        Direct {
            blnk,
            biller,
            system,
            _data_dir: data_dir,
        }
    }

    async fn postpaid(&self, id: &str) -> Created {
        let ops = Operations {
            blnk: BlnkClient::new(&self.blnk.url(), None, Duration::from_secs(5)).expect("client"),
            ledger_name: "tollgate customer wallets".to_string(),
            system: self.system.clone(),
        };
        let customer = CustomerId::parse(id).expect("valid id");
        ops.create_customer(&customer, None, Billing::Postpaid { credit_limit: None })
            .await
            .expect("customer created")
    }

    fn settings(&self, clock: Clock) -> WorkerSettings {
        WorkerSettings {
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            max_age: Duration::from_secs(3600),
            done_retention: Duration::from_secs(24 * 3600),
            purge_every: Duration::from_secs(24 * 3600),
            report_every: Duration::from_secs(3600),
            clock,
        }
    }
}

/// The charge of case 15: $0.000195 and 700 tokens.
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

#[tokio::test]
async fn compensated_attempt_posts_r2_after_refund() {
    let direct = Direct::start().await;
    let customer = direct.postpaid("comp").await;
    let record = charge_record("req-comp", &customer);

    // Attempt 1 as Blnk compensates it: the USD leg applies, the TOKENS leg fails on an
    // unknown balance, and the USD leg's refund is queued for Blnk's workers.
    let mut bulk = record.to_bulk(&direct.system);
    bulk.transactions[1].source = "bln_does_not_exist".to_string();
    direct
        .biller
        .blnk()
        .post_bulk(&bulk)
        .await
        .expect_err("the TOKENS leg fails");
    let usd_leg = direct
        .blnk
        .transactions_with_reference_prefix("tg:req-comp:usd")
        .remove(0);
    assert_eq!(usd_leg.status, TxnStatus::Applied);
    let refund = direct
        .blnk
        .transactions_with_reference_prefix(&format!("{}_refund", usd_leg.transaction_id));
    assert_eq!(refund.len(), 1);
    assert_eq!(refund[0].status, TxnStatus::Queued);

    // The retry of attempt 1 gets 409. The refund is not applied yet, so the worker waits.
    let outbox = direct.biller.outbox();
    let payload = serde_json::to_value(&record).unwrap();
    let id = outbox
        .insert("req-comp", EntryKind::Charge, &payload)
        .await
        .unwrap();
    let settings = direct.settings(Clock::System);
    worker::run_once(&direct.biller, settings).await;
    let waiting = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(waiting.state, EntryState::Pending);
    let error = waiting.last_error.unwrap();
    assert!(error.contains("not applied yet"), "{error}");
    assert!(
        !references(&direct.blnk).iter().any(|r| r.contains(":r2")),
        "no new attempt yet"
    );

    // Once the refund is applied, attempt 1 provably does not stand: attempt 2 is posted.
    let report = direct.blnk.run_workers();
    assert_eq!(report.applied, 1, "the refund applies");
    assert!(outbox.retry(id).await.unwrap());
    worker::run_once(&direct.biller, settings).await;
    // The entry is marked done in the background once the charge stands.
    direct.biller.wait_idle().await;
    let done = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(done.state, EntryState::Done);
    assert_eq!(done.payload["attempt"], 2);
    for leg in ["usd", "tokens"] {
        let rows = direct
            .blnk
            .transactions_with_reference_prefix(&format!("tg:req-comp:{leg}:r2"));
        assert_eq!(rows.len(), 1, "{leg}");
        assert_eq!(rows[0].status, TxnStatus::Applied, "{leg}");
    }

    assert_eq!(
        direct.blnk.balance(&customer.usd_balance_id).balance,
        -195_000,
        "charged once in net"
    );
    assert_eq!(
        direct.blnk.balance(&customer.tokens_balance_id).balance,
        -700
    );
    let revenue = direct
        .blnk
        .balance_by_indicator("@Revenue-USD", "USD")
        .unwrap();
    assert_eq!(revenue.balance, 195_000);
    let pool = direct
        .blnk
        .balance_by_indicator("@TokenPool", "TOKENS")
        .unwrap();
    assert_eq!(pool.balance, 700);
}

#[tokio::test]
async fn backoff_doubles_on_paused_clock() {
    let direct = Direct::start().await;
    let customer = direct.postpaid("backoff").await;
    let record = charge_record("req-backoff", &customer);
    direct
        .blnk
        .inject(Fault::Status(500).on("POST", "/transactions/bulk").times(4));

    tokio::time::pause();
    let clock = Clock::tokio();
    let payload = serde_json::to_value(&record).unwrap();
    let outbox = direct.biller.outbox();
    let id = outbox
        .insert_at("req-backoff", EntryKind::Charge, &payload, clock.now())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tollgate::task::spawn_named(
        "test-outbox-worker",
        worker::run(direct.biller.clone(), direct.settings(clock), stop.clone()),
    );

    let start = tokio::time::Instant::now();
    let mut posts = Vec::new();
    while posts.len() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let count = direct.blnk.request_count("POST", "/transactions/bulk");
        if count > posts.len() {
            assert_eq!(count, posts.len() + 1, "one post at a time");
            posts.push(start.elapsed());
            wait_for_outcome(outbox, id, count).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the worker stopped retrying: {posts:?}"
        );
    }

    // Delays of 1, 2, 4 and 8 seconds, each within 20 % jitter (plus the poll step).
    for (index, base_s) in [1u64, 2, 4, 8].into_iter().enumerate() {
        let gap = posts[index + 1] - posts[index];
        let base = Duration::from_secs(base_s);
        let low = base.mul_f64(0.8).saturating_sub(Duration::from_millis(20));
        let high = base.mul_f64(1.2) + Duration::from_millis(100);
        assert!(
            gap >= low && gap <= high,
            "retry {}: {gap:?} is not {base:?} ± 20 %",
            index + 1
        );
    }
    for _ in 0..100 {
        if outbox.get(id).await.unwrap().unwrap().state == EntryState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entry = outbox.get(id).await.unwrap().unwrap();
    assert_eq!(entry.state, EntryState::Done);
    assert_eq!(entry.attempts, 4, "four failures were counted");
    assert_eq!(all_charge_legs(&direct.blnk).len(), 2);

    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn unstorable_charge_is_kept_then_posted() {
    let direct = Direct::start().await;
    let customer = direct.postpaid("unstored").await;
    let record = charge_record("req-unstored", &customer);

    // Every outbox write fails from now on, and Blnk refuses the first post.
    direct.biller.outbox().close().await;
    direct
        .blnk
        .inject(Fault::Status(503).on("POST", "/transactions/bulk"));
    let status = direct.biller.charge(record, None).await;
    assert_eq!(status, ChargeStatus::Pending);
    direct.biller.wait_idle().await;
    assert_eq!(
        direct.biller.unstored_charges(),
        1,
        "the charge is kept in memory"
    );
    assert!(all_charge_legs(&direct.blnk).is_empty());

    worker::run_once(&direct.biller, direct.settings(Clock::System)).await;
    assert_eq!(direct.biller.unstored_charges(), 0);
    let legs = all_charge_legs(&direct.blnk);
    assert_eq!(legs.len(), 2, "the worker posted it");
    assert!(
        legs.iter()
            .all(|leg| leg.reference.starts_with("tg:req-unstored:"))
    );
}

#[tokio::test]
async fn unstorable_charge_posts_at_once() {
    let direct = Direct::start().await;
    let customer = direct.postpaid("unstored-ok").await;
    direct.biller.outbox().close().await;

    let status = direct
        .biller
        .charge(charge_record("req-direct", &customer), None)
        .await;
    assert_eq!(
        status,
        ChargeStatus::Recorded,
        "Blnk confirmed it without a durable copy"
    );
    assert_eq!(direct.biller.unstored_charges(), 0);
    assert_eq!(all_charge_legs(&direct.blnk).len(), 2);
}

#[tokio::test]
async fn client_gone_before_answer_is_billed() {
    let harness = Harness::start_with(fast(&[])).await;
    let case = Case::load(CASE_15);
    harness.postpaid(CUSTOMER).await;
    mount_case_after(&harness, &case, Duration::from_millis(500)).await;

    // The client gives up while upstream is still generating its answer.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", CUSTOMER)
        .json(&case.request_body())
        .send()
        .await;
    assert!(sent.is_err(), "the client timed out: {sent:?}");

    // Upstream still answers and bills the provider, so tollgate bills the customer.
    for _ in 0..250 {
        if all_charge_legs(&harness.blnk).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let legs = all_charge_legs(&harness.blnk);
    assert_eq!(legs.len(), 2, "the answer nobody received is charged once");
    let usd = legs.iter().find(|leg| leg.currency == "USD").unwrap();
    assert_eq!(usd.precise_amount, case.expected_nanos());
}

/// Waits, without moving paused time, until the worker has stored the outcome of its post
/// number `posts` of entry `id`: a failure counted, or the entry done. While the worker waits
/// for the outbox's writer thread, the runtime looks idle, so a test that kept sleeping would
/// let tokio move its paused clock on, and the worker's next retry would start late.
async fn wait_for_outcome(outbox: &Outbox, id: i64, posts: usize) {
    loop {
        let entry = outbox.get(id).await.expect("read").expect("entry exists");
        if entry.state == EntryState::Done || entry.attempts as usize >= posts {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_bills_http2_request_reset_while_draining() {
    let harness = Harness::start_with(fast(&[("TOLLGATE_SHUTDOWN_GRACE", "10s")])).await;
    let case = Case::load(CASE_15);
    harness.postpaid(CUSTOMER).await;
    mount_case_after(&harness, &case, Duration::from_millis(800)).await;

    // Under HTTP/2 hyper runs each request in a task of its own, apart from the connection
    // that graceful shutdown watches.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", harness.url);
    let body = case.request_body();
    let request = tollgate::task::spawn_named("test-http2-client", async move {
        client
            .post(url)
            .header("X-Customer-Id", CUSTOMER)
            .json(&body)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The client resets its request while the server drains.
    request.abort();
    let _ = request.await;

    let stopped = tokio::time::timeout(Duration::from_secs(10), harness.server).await;
    assert!(
        stopped.is_ok(),
        "the server stopped within its grace period"
    );
    let legs = all_charge_legs(&harness.blnk);
    assert_eq!(
        legs.len(),
        2,
        "the upstream call was billed before the server stopped"
    );
    assert_eq!(harness.state.biller.tracked_tasks(), 0);
}
