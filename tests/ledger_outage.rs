//! Blnk unavailable or failing around a request. Before the upstream call, a credit-limited
//! account is turned away with 503 (unless configured to fail open), and an unlimited postpaid
//! account is served from the account cache. After the call, the client always gets its
//! response. Every hold expires, so a hold left behind blocks a wallet only until its expiry.

mod support;

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::blnk::{Fault, TxnStatus};
use support::cases::{Case, all_charge_legs, charge_of};
use support::harness::{Harness, Options};

const CASE_15: &str = "15-ledger-post-retry-same-reference";

fn options(extra: &[(&'static str, &str)]) -> Options {
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

/// Starts tollgate with `extra` settings and an upstream that returns the response of case 15.
async fn start(extra: &[(&'static str, &str)]) -> (Harness, Case) {
    let harness = Harness::start_with(options(extra)).await;
    let case = Case::load(CASE_15);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&harness.upstream)
        .await;
    (harness, case)
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

async fn upstream_calls(harness: &Harness) -> usize {
    let requests = harness.upstream.received_requests().await;
    requests.expect("wiremock records requests").len()
}

/// Checks a 503 `ledger_unavailable` in OpenAI's error shape.
async fn assert_ledger_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    assert_eq!(error["type"], "service_unavailable");
    assert_eq!(error["code"], "ledger_unavailable");
    assert_eq!(error["param"], Value::Null);
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("retry later"), "{error}");
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

#[tokio::test]
async fn credit_limited_gets_503_when_ledger_down() {
    let (harness, case) = start(&[]).await;
    harness.prepaid("prepaid", "1").await;
    // The first request fills the account cache, so the next one fails at the hold.
    assert_eq!(
        post_chat(&harness, "prepaid", &case.request_body())
            .await
            .status(),
        200
    );

    harness.blnk.inject(Fault::Down);
    assert_ledger_unavailable(post_chat(&harness, "prepaid", &case.request_body()).await).await;
    assert_eq!(
        upstream_calls(&harness).await,
        1,
        "upstream is not called without a hold"
    );
}

#[tokio::test]
async fn fail_open_credit_limited_serves_and_queues() {
    let (harness, case) = start(&[("TOLLGATE_BLNK_FAIL_OPEN_CREDIT_LIMITED", "true")]).await;
    let customer = harness.prepaid("prepaid", "1").await;
    assert_eq!(
        post_chat(&harness, "prepaid", &case.request_body())
            .await
            .status(),
        200
    );

    harness.blnk.inject(Fault::Down);
    let response = post_chat(&harness, "prepaid", &case.request_body()).await;
    assert_eq!(response.status(), 200, "served without a hold");
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);

    harness.blnk.clear_faults();
    wait_for(Duration::from_secs(10), || {
        charge_of(&harness.blnk, &id).tokens.is_some()
    })
    .await;
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        4,
        "both requests charged once"
    );
    wait_for(Duration::from_secs(5), || {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.balance, 1_000_000_000 - 2 * case.expected_nanos());
}

#[tokio::test]
async fn postpaid_served_from_old_cache() {
    // Every cached account is past its staleness limit at once.
    let (harness, case) = start(&[
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s"),
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_MAX_STALE", "0s"),
    ])
    .await;
    let customer = harness.postpaid("postpaid").await;
    assert_eq!(
        post_chat(&harness, "postpaid", &case.request_body())
            .await
            .status(),
        200
    );

    harness.blnk.inject(Fault::Down);
    let response = post_chat(&harness, "postpaid", &case.request_body()).await;
    assert_eq!(
        response.status(),
        200,
        "fail_open_postpaid is on by default"
    );
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, case.upstream_json());

    harness.blnk.clear_faults();
    wait_for(Duration::from_secs(10), || {
        charge_of(&harness.blnk, &id).tokens.is_some()
    })
    .await;
    assert_eq!(all_charge_legs(&harness.blnk).len(), 4);
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.balance, -2 * case.expected_nanos());
}

#[tokio::test]
async fn postpaid_without_fail_open_gets_503() {
    let (harness, case) = start(&[
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s"),
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_MAX_STALE", "0s"),
        ("TOLLGATE_BLNK_FAIL_OPEN_POSTPAID", "false"),
    ])
    .await;
    harness.postpaid("postpaid").await;
    assert_eq!(
        post_chat(&harness, "postpaid", &case.request_body())
            .await
            .status(),
        200
    );

    harness.blnk.inject(Fault::Down);
    assert_ledger_unavailable(post_chat(&harness, "postpaid", &case.request_body()).await).await;
    assert_eq!(upstream_calls(&harness).await, 1);
}

#[tokio::test]
async fn capped_postpaid_not_served_from_old_cache() {
    let (harness, case) = start(&[
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s"),
        ("TOLLGATE_BLNK_ACCOUNT_CACHE_MAX_STALE", "0s"),
    ])
    .await;
    let limit = tollgate::money::Usd::parse_positive("5").unwrap();
    harness
        .customer(
            "capped",
            tollgate::accounts::Billing::Postpaid {
                credit_limit: Some(limit),
            },
            None,
        )
        .await;
    assert_eq!(
        post_chat(&harness, "capped", &case.request_body())
            .await
            .status(),
        200
    );

    harness.blnk.inject(Fault::Down);
    assert_ledger_unavailable(post_chat(&harness, "capped", &case.request_body()).await).await;
    assert_eq!(
        upstream_calls(&harness).await,
        1,
        "a credit limit needs a hold"
    );
}

#[tokio::test]
async fn uncached_account_gets_503() {
    let (harness, case) = start(&[]).await;
    harness.postpaid("postpaid").await;
    harness.blnk.inject(Fault::Down);
    assert_ledger_unavailable(post_chat(&harness, "postpaid", &case.request_body()).await).await;
    assert_eq!(upstream_calls(&harness).await, 0);
}

#[tokio::test]
async fn failed_charge_still_returns_response() {
    let (harness, case) = start(&[]).await;
    let customer = harness.prepaid("prepaid", "1").await;
    harness
        .blnk
        .inject(Fault::Status(500).on("POST", "/transactions/bulk").times(3));

    let response = post_chat(&harness, "prepaid", &case.request_body()).await;
    assert_eq!(
        response.status(),
        200,
        "never a 5xx after upstream answered"
    );
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    assert_eq!(response.headers()["x-tollgate-cost-usd"], "0.000195");
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, case.upstream_json());

    wait_for(Duration::from_secs(10), || {
        charge_of(&harness.blnk, &id).tokens.is_some()
    })
    .await;
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
    wait_for(Duration::from_secs(5), || {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
}

#[tokio::test]
async fn every_hold_carries_its_expiry() {
    let (harness, case) = start(&[]).await;
    harness.prepaid("prepaid", "1").await;
    let before = chrono::Utc::now();
    let response = post_chat(&harness, "prepaid", &case.request_body()).await;
    let after = chrono::Utc::now();
    let id = request_id(&response);

    let hold = harness
        .blnk
        .transactions_with_reference_prefix(&format!("tg:{id}:hold"))
        .remove(0);
    let expiry = hold.inflight_expiry_date.expect("the hold has an expiry");
    let lifetime = chrono::TimeDelta::from_std(harness.state.biller.hold_lifetime()).unwrap();
    // The expiry is sent rounded up to whole seconds, so it may be up to one second late.
    let earliest = before + lifetime;
    let latest = after + lifetime + chrono::TimeDelta::seconds(1);
    assert!(expiry >= earliest, "expiry {expiry} is before {earliest}");
    assert!(expiry <= latest, "expiry {expiry} is after {latest}");
    let minutes = lifetime.num_minutes();
    assert!(
        (30..60).contains(&minutes),
        "the default lifetime is about 45 min, not {minutes} min"
    );
}

#[tokio::test]
async fn stale_hold_frees_wallet_at_expiry() {
    let (harness, case) = start(&[]).await;
    let customer = harness.prepaid("prepaid", "1").await;
    // Every void fails, so the request's hold stays open.
    harness.blnk.inject(
        Fault::Status(503)
            .on("PUT", "/transactions/inflight")
            .times(10_000),
    );
    let id = request_id(&post_chat(&harness, "prepaid", &case.request_body()).await);
    wait_for(Duration::from_secs(5), || {
        charge_of(&harness.blnk, &id).tokens.is_some()
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert!(wallet.inflight_debit_balance > 0, "the hold is still open");
    assert!(wallet.available() < wallet.balance);

    // At its expiry Blnk's workers void the hold, whatever tollgate managed. The fake's
    // clock started with the test, so it is moved to a time past the expiry.
    let lifetime = harness.state.biller.hold_lifetime() + Duration::from_secs(1);
    harness.blnk.set_now(chrono::Utc::now() + lifetime);
    let report = harness.blnk.run_workers();
    assert_eq!(report.expired_holds, 1);
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.inflight_debit_balance, 0);
    assert_eq!(wallet.available(), 1_000_000_000 - case.expected_nanos());
    let hold_voids = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|t| t.status == TxnStatus::Void)
        .count();
    assert_eq!(hold_voids, 1);
}
