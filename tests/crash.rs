//! A crash between the upstream answer and the ledger post: the real binary is killed with
//! SIGKILL while its charge and hold void wait in the outbox, then started again on the same
//! data directory. The charge must end up posted exactly once and the hold voided.

mod binary;
mod support;

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use binary::{Launch, Tollgate, create_customer};
use support::blnk::{FakeBlnk, Fault, TxnStatus};
use support::cases::{Case, all_charge_legs, charge_of};
use tollgate::accounts::Billing;

const FUNDS_NANOS: i128 = 1_000_000_000;

async fn mount_upstream(case: &Case) -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&upstream)
        .await;
    upstream
}

async fn post_chat(tollgate: &Tollgate, customer: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", tollgate.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_before_post_charges_once_after_restart() {
    let case = Case::load("15-ledger-post-retry-same-reference");
    let blnk = FakeBlnk::start().await;
    let upstream = mount_upstream(&case).await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let customer = create_customer(&blnk.url(), "crash-prepaid", Billing::Prepaid, Some("1")).await;
    let launch = Launch::new(blnk.url(), upstream.uri(), data_dir.path());

    // Blnk refuses every charge and every void, so both stay in the outbox.
    blnk.inject(
        Fault::Status(503)
            .on("POST", "/transactions/bulk")
            .times(10_000),
    );
    blnk.inject(
        Fault::Status(503)
            .on("PUT", "/transactions/inflight")
            .times(10_000),
    );
    let mut first = Tollgate::start(&launch).await;
    let response = post_chat(&first, "crash-prepaid", &case.request_body()).await;
    assert_eq!(
        response.status(),
        200,
        "the client gets its answer although the charge failed"
    );
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let request_id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, case.upstream_json(), "the body is relayed unchanged");

    assert!(
        blnk.request_count("POST", "/transactions/bulk") >= 1,
        "the charge was tried"
    );
    let status = first.kill_hard();
    assert!(!status.success(), "SIGKILL ends the process: {status:?}");

    assert!(
        charge_of(&blnk, &request_id).usd.is_none(),
        "nothing was charged before the crash"
    );
    let held = blnk
        .balance(&customer.usd_balance_id)
        .inflight_debit_balance;
    assert!(held > 0, "the crash left the hold open");

    blnk.clear_faults();
    let mut second = Tollgate::start(&launch).await;
    wait_for(Duration::from_secs(15), || {
        charge_of(&blnk, &request_id).tokens.is_some()
            && blnk
                .balance(&customer.usd_balance_id)
                .inflight_debit_balance
                == 0
    })
    .await;

    let charge = charge_of(&blnk, &request_id);
    assert_eq!(charge.usd_nanos(), case.expected_nanos(), "USD leg");
    assert_eq!(charge.tokens(), case.expected_tokens(), "TOKENS leg");
    assert_eq!(all_charge_legs(&blnk).len(), 2, "exactly one charge");
    let references: Vec<String> = blnk
        .transactions()
        .into_iter()
        .map(|t| t.reference)
        .collect();
    assert!(
        !references.iter().any(|r| r.contains(":r2")),
        "no second attempt: {references:?}"
    );

    let wallet = blnk.balance(&customer.usd_balance_id);
    assert_eq!(
        wallet.balance,
        FUNDS_NANOS - case.expected_nanos(),
        "the wallet paid once"
    );
    assert_eq!(wallet.inflight_debit_balance, 0, "the hold is released");
    let voids = blnk
        .transactions()
        .into_iter()
        .filter(|t| t.status == TxnStatus::Void)
        .count();
    assert_eq!(
        voids, 1,
        "tollgate voided the hold: the fake's expiry never ran"
    );

    second.signal("TERM");
    let status = second.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "graceful stop; log:\n{}",
        second.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_lost_response_does_not_double() {
    let case = Case::load("15-ledger-post-retry-same-reference");
    let blnk = FakeBlnk::start().await;
    let upstream = mount_upstream(&case).await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let customer = create_customer(
        &blnk.url(),
        "cust_postpaid_01",
        Billing::Postpaid { credit_limit: None },
        None,
    )
    .await;
    let launch = Launch::new(blnk.url(), upstream.uri(), data_dir.path());

    // The first post applies both legs but its answer never arrives in time; then Blnk fails.
    blnk.inject(Fault::ApplyThenHang(Duration::from_secs(3)).on("POST", "/transactions/bulk"));
    blnk.inject(
        Fault::Status(500)
            .on("POST", "/transactions/bulk")
            .times(10_000),
    );
    let mut first = Tollgate::start(&launch).await;
    let response = post_chat(&first, "cust_postpaid_01", &case.request_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let request_id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    first.kill_hard();

    blnk.clear_faults();
    let mut second = Tollgate::start(&launch).await;
    // The restart posts the same references, gets 409, and verifies that both legs stand.
    let outbox = tollgate::outbox::Outbox::open_shared(data_dir.path()).expect("outbox");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while outbox.counts().await.expect("counts").pending > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not empty; log:\n{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        outbox.counts().await.expect("counts").dead,
        0,
        "nothing dead-lettered"
    );
    assert!(
        blnk.request_count("POST", "/transactions/bulk") >= 2,
        "the charge was posted again"
    );
    assert!(
        blnk.request_count("GET", "/transactions/reference/") >= 2,
        "the 409 was verified"
    );

    let charge = charge_of(&blnk, &request_id);
    assert_eq!(charge.usd_nanos(), case.expected_nanos());
    assert_eq!(all_charge_legs(&blnk).len(), 2, "exactly one charge");
    assert_eq!(
        blnk.balance(&customer.usd_balance_id).balance,
        -case.expected_nanos()
    );

    second.signal("TERM");
    let status = second.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "graceful stop; log:\n{}",
        second.logs()
    );
}

async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(condition(), "condition not reached within {limit:?}");
}
