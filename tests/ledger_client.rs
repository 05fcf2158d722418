//! The Blnk client against a local mock server that replays recorded Blnk responses.
//!
//! Each fixture in tests/fixtures/blnk/recorded/ is one request and response exchanged
//! with a real Blnk server. The tests check that the client sends the recorded request
//! (method, path, key header and JSON body, where tollgate's body differs only by sending
//! `precise_amount` and explicit flags) and parses the recorded response.

#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test on a broken fixture"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tollgate::ledger::{
    BlnkClient, Filter, LedgerError, NewBalance, NewBulk, NewIdentity, NewTransaction,
    TransactionQuery, TransactionStatus, VoidOutcome,
};
use tollgate::secret::Secret;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const KEY: &str = "test-master-key";

fn exchange(name: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/blnk/recorded")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn recorded_request(name: &str) -> Value {
    exchange(name)["request"]["body"].clone()
}

/// Builds the recorded response: its status and its body as JSON text, `null` included.
fn recorded_response(name: &str) -> ResponseTemplate {
    let exchange = exchange(name);
    let status = exchange["response"]["status"].as_u64().expect("status") as u16;
    let body = exchange["response"]["body"].to_string();
    ResponseTemplate::new(status).set_body_raw(body, "application/json; charset=utf-8")
}

fn json_response(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/json")
}

/// Expects a request carrying the key header, which every call sends when a key is set.
fn expect_call(verb: &str, route: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header("X-Blnk-Key", KEY))
}

/// Expects a request carrying the key header, `Content-Type: application/json` and exactly
/// this JSON body.
fn expect_body(verb: &str, route: &str, body: Value) -> MockBuilder {
    expect_call(verb, route)
        .and(header("Content-Type", "application/json"))
        .and(body_json(body))
}

async fn start() -> (MockServer, BlnkClient) {
    let server = MockServer::start().await;
    let client = client_for(&server.uri(), Duration::from_secs(5));
    (server, client)
}

fn client_for(base_url: &str, timeout: Duration) -> BlnkClient {
    BlnkClient::new(base_url, Some(Secret::new(KEY)), timeout).expect("valid client settings")
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("JSON object").clone()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("valid timestamp")
}

fn usd_charge(reference: &str, precise_amount: i128) -> NewTransaction {
    NewTransaction {
        precise_amount,
        precision: 1_000_000_000,
        currency: "USD".to_string(),
        source: "bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838".to_string(),
        destination: "@Revenue-USD".to_string(),
        reference: reference.to_string(),
        description: "usage charge".to_string(),
        allow_overdraft: false,
        overdraft_limit: None,
        inflight: false,
        inflight_expiry_date: None,
        effective_date: None,
        meta_data: Map::new(),
    }
}

/// Builds the 0.1 USD hold with a 3 s expiry of the recorded exchange 17a.
fn expiring_hold() -> NewTransaction {
    NewTransaction {
        source: "bln_ca9096d3-47bb-4362-baa9-391d85eb8149".to_string(),
        description: "hold".to_string(),
        inflight: true,
        inflight_expiry_date: Some(at("2026-12-04T15:57:38Z")),
        ..usd_charge("tg:ea0fc2:hold", 100_000_000)
    }
}

/// Builds the two-leg usage charge of the recorded exchange 05a.
fn usage_bulk() -> NewBulk {
    let leg_meta = |leg: &str| {
        object(json!({
            "customer_id": "cust_001", "request_id": "req-0001", "model": "gpt-4o-mini",
            "prompt_tokens": 926, "completion_tokens": 308, "leg": leg,
        }))
    };
    let tokens = NewTransaction {
        precision: 1,
        currency: "TOKENS".to_string(),
        source: "bln_0f01e63b-ee3c-4595-bebe-6733405ba823".to_string(),
        destination: "@TokenPool".to_string(),
        description: "token usage".to_string(),
        allow_overdraft: true,
        meta_data: leg_meta("tokens"),
        ..usd_charge("req-0001:tokens", 1234)
    };
    let usd = NewTransaction {
        meta_data: leg_meta("usd"),
        ..usd_charge("req-0001:usd", 2_468_000)
    };
    NewBulk {
        transactions: vec![tokens, usd],
        atomic: true,
        shared_meta_data: None,
    }
}

#[tokio::test]
async fn health_gets_health_endpoint() {
    let (server, client) = start().await;
    expect_call("GET", "/health")
        .respond_with(json_response(200, r#"{"status":"UP"}"#))
        .expect(1)
        .mount(&server)
        .await;

    client.health().await.expect("healthy");
}

#[tokio::test]
async fn find_ledger_filters_by_name() {
    let (server, client) = start().await;
    let mut expected = recorded_request("14d-filter-ledgers-by-name");
    expected["sort_by"] = json!("created_at");
    expected["sort_order"] = json!("asc");
    expected["limit"] = json!(100);
    expect_body("POST", "/ledgers/filter", expected)
        .respond_with(recorded_response("14d-filter-ledgers-by-name"))
        .expect(1)
        .mount(&server)
        .await;

    let ledger = client
        .find_ledger("customer wallets ea0fc2")
        .await
        .expect("found");
    let ledger = ledger.expect("one ledger matches");
    assert_eq!(ledger.ledger_id, "ldg_6fafcb06-5cf3-4de3-a3ff-19f779a5473d");
    assert_eq!(ledger.meta_data["tollgate"], "customer-wallets");
}

#[tokio::test]
async fn find_ledger_without_match_is_none() {
    for body in ["null", "[]"] {
        let (server, client) = start().await;
        expect_call("POST", "/ledgers/filter")
            .respond_with(json_response(200, body))
            .mount(&server)
            .await;

        let ledger = client.find_ledger("nobody").await.expect("answered");
        assert_eq!(ledger, None, "response {body}");
    }
}

#[tokio::test]
async fn create_ledger_sends_name_and_meta() {
    let (server, client) = start().await;
    expect_body("POST", "/ledgers", recorded_request("01-create-ledger"))
        .respond_with(recorded_response("01-create-ledger"))
        .expect(1)
        .mount(&server)
        .await;

    let meta = object(json!({"purpose": "ai-billing prepaid wallets"}));
    let ledger = client
        .create_ledger("customer wallets", meta)
        .await
        .expect("created");
    assert_eq!(ledger.ledger_id, "ldg_7d2f8ac5-572f-49ab-98aa-dcf1f1eef174");
    assert_eq!(ledger.name, "customer wallets");
}

#[tokio::test]
async fn create_identity_sends_fields() {
    let (server, client) = start().await;
    expect_body(
        "POST",
        "/identities",
        recorded_request("02-create-identity"),
    )
    .respond_with(recorded_response("02-create-identity"))
    .expect(1)
    .mount(&server)
    .await;

    let identity = NewIdentity {
        identity_type: Some("organization".to_string()),
        organization_name: Some("Acme AI Customer".to_string()),
        first_name: Some("Ada".to_string()),
        last_name: Some("Lovelace".to_string()),
        email_address: Some("ada@example.com".to_string()),
        category: Some("customer".to_string()),
        meta_data: object(json!({"customer_id": "cust_001", "openai_project": "proj_demo"})),
        ..NewIdentity::default()
    };
    let created = client.create_identity(&identity).await.expect("created");
    assert_eq!(
        created.identity_id,
        "idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5"
    );
    assert_eq!(created.meta_data["customer_id"], "cust_001");
}

#[tokio::test]
async fn duplicate_identity_id_already_exists() {
    let (server, client) = start().await;
    let id = "idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5";
    let body = format!(
        r#"{{"error":"Identity already exists: {id}","error_detail":
            {{"code":"IDT_VALIDATION_ERROR","message":"Identity already exists: {id}"}}}}"#
    );
    expect_body("POST", "/identities", json!({"identity_id": id}))
        .respond_with(json_response(400, &body))
        .expect(1)
        .mount(&server)
        .await;

    let identity = NewIdentity {
        identity_id: Some(id.to_string()),
        ..NewIdentity::default()
    };
    let error = client
        .create_identity(&identity)
        .await
        .expect_err("duplicate");
    assert!(
        matches!(error, LedgerError::AlreadyExists { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn get_identity_reads_by_id() {
    let (server, client) = start().await;
    expect_call(
        "GET",
        "/identities/idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5",
    )
    .respond_with(recorded_response("02-create-identity"))
    .expect(1)
    .mount(&server)
    .await;

    let identity = client
        .get_identity("idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5")
        .await
        .expect("found");
    assert_eq!(identity.first_name, "Ada");
}

#[tokio::test]
async fn create_balance_sends_fields() {
    let (server, client) = start().await;
    let mut expected = recorded_request("03a-create-balance-usd");
    expected
        .as_object_mut()
        .map(|body| body.remove("precision"));
    expect_body("POST", "/balances", expected)
        .respond_with(recorded_response("03a-create-balance-usd"))
        .expect(1)
        .mount(&server)
        .await;

    let balance = NewBalance {
        ledger_id: "ldg_7d2f8ac5-572f-49ab-98aa-dcf1f1eef174".to_string(),
        identity_id: Some("idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5".to_string()),
        currency: "USD".to_string(),
        meta_data: object(json!({"customer_id": "cust_001", "kind": "prepaid_usd"})),
    };
    let created = client.create_balance(&balance).await.expect("created");
    assert_eq!(
        created.balance_id,
        "bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838"
    );
    assert_eq!(created.balance, 0);
}

#[tokio::test]
async fn get_balance_reads_recorded_row() {
    let (server, client) = start().await;
    expect_call("GET", "/balances/bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838")
        .respond_with(recorded_response("11a-get-balance"))
        .expect(1)
        .mount(&server)
        .await;

    let balance = client
        .get_balance("bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838")
        .await
        .expect("found");
    assert_eq!(balance.balance, 88_472_532_000);
    assert_eq!(balance.debit_balance, 32_527_468_000);
    assert_eq!(balance.available(), 88_472_532_000);
}

#[tokio::test]
async fn get_balance_reads_amounts_beyond_64_bits() {
    let (server, client) = start().await;
    let body = r#"{"balance":1208925819614629174706176,"credit_balance":1208925819614629174706176,
        "debit_balance":0,"inflight_balance":-18446744073709551616,"inflight_credit_balance":0,
        "inflight_debit_balance":18446744073709551616,"ledger_id":"ldg_1","identity_id":"",
        "balance_id":"bln_big","currency":"USD","created_at":"2026-12-04T15:12:21.256321Z",
        "meta_data":null}"#;
    expect_call("GET", "/balances/bln_big")
        .respond_with(json_response(200, body))
        .mount(&server)
        .await;

    let balance = client.get_balance("bln_big").await.expect("found");
    assert_eq!(balance.balance, 1 << 80);
    assert_eq!(balance.inflight_debit_balance, 1 << 64);
    assert_eq!(balance.available(), (1 << 80) - (1 << 64));
    assert!(balance.meta_data.is_empty());
}

#[tokio::test]
async fn filter_balances_by_customer() {
    let (server, client) = start().await;
    let mut expected = recorded_request("14a-filter-balances-by-metadata");
    expected["limit"] = json!(100);
    expect_body("POST", "/balances/filter", expected)
        .respond_with(recorded_response("14a-filter-balances-by-metadata"))
        .expect(1)
        .mount(&server)
        .await;

    let filters = [Filter::eq(
        "meta_data.tollgate_customer_id",
        "cust_rec_ea0fc2",
    )];
    let balances = client.filter_balances(&filters).await.expect("listed");
    let currencies: Vec<&str> = balances.iter().map(|b| b.currency.as_str()).collect();
    assert_eq!(currencies, ["TOKENS", "USD"]);
}

#[tokio::test]
async fn filter_balances_null_is_empty() {
    let (server, client) = start().await;
    expect_call("POST", "/balances/filter")
        .respond_with(recorded_response("14c-filter-balances-unknown-customer"))
        .expect(1)
        .mount(&server)
        .await;

    let filters = [Filter::eq(
        "meta_data.tollgate_customer_id",
        "nobody_ea0fc2",
    )];
    let balances = client.filter_balances(&filters).await.expect("listed");
    assert!(balances.is_empty());
}

#[tokio::test]
async fn balance_at_sends_timestamp() {
    let (server, client) = start().await;
    let id = "bln_ca9096d3-47bb-4362-baa9-391d85eb8149";
    expect_call("GET", &format!("/balances/{id}/at"))
        .and(query_param("timestamp", "2026-12-04T15:57:34Z"))
        .respond_with(recorded_response("16a-balance-at-time-before-charge"))
        .expect(1)
        .mount(&server)
        .await;

    let history = client
        .balance_at(id, at("2026-12-04T15:57:34Z"))
        .await
        .expect("history");
    assert_eq!(history.balance_id, id);
    assert_eq!(history.balance, 0);
    assert_eq!(history.debit_balance, 0);
    assert_eq!(history.timestamp, Some(at("2026-12-04T15:57:34Z")));
}

#[tokio::test]
async fn update_balance_metadata_returns_merged() {
    let (server, client) = start().await;
    let id = "bln_ca9096d3-47bb-4362-baa9-391d85eb8149";
    let recorded = recorded_request("15a-update-balance-metadata");
    expect_body("POST", &format!("/{id}/metadata"), recorded.clone())
        .respond_with(recorded_response("15a-update-balance-metadata"))
        .expect(1)
        .mount(&server)
        .await;

    let update = object(recorded["meta_data"].clone());
    let merged = client
        .update_balance_metadata(id, update)
        .await
        .expect("merged");
    assert_eq!(merged["billing"], "postpaid");
    assert_eq!(merged["tollgate_customer_id"], "cust_rec_ea0fc2");
}

#[tokio::test]
async fn post_transaction_sends_recorded_hold() {
    let (server, client) = start().await;
    expect_body(
        "POST",
        "/transactions",
        recorded_request("17a-hold-with-expiry"),
    )
    .respond_with(recorded_response("17a-hold-with-expiry"))
    .expect(1)
    .mount(&server)
    .await;

    let hold = client
        .post_transaction(&expiring_hold())
        .await
        .expect("held");
    assert_eq!(
        hold.transaction_id,
        "txn_df79956a-c60e-4bfb-8e96-3ca9cacfc7a6"
    );
    assert_eq!(hold.status, TransactionStatus::Inflight);
    assert_eq!(hold.precise_amount, 100_000_000);
    assert_eq!(hold.inflight_expiry_date, Some(at("2026-12-04T15:57:38Z")));
}

#[tokio::test]
async fn post_transaction_sends_credit_limit() {
    let (server, client) = start().await;
    let name = "18a-hold-1-against-credit-limit";
    expect_body("POST", "/transactions", recorded_request(name))
        .respond_with(recorded_response(name))
        .expect(1)
        .mount(&server)
        .await;

    let hold = NewTransaction {
        source: "bln_f3fd4f53-cd2c-4115-999e-102257027a36".to_string(),
        description: "hold".to_string(),
        allow_overdraft: true,
        overdraft_limit: Some(Decimal::ONE),
        inflight: true,
        ..usd_charge("tg:lim4c12171:hold", 400_000_000)
    };
    let posted = client.post_transaction(&hold).await.expect("held");
    assert_eq!(posted.status, TransactionStatus::Inflight);
}

#[tokio::test]
async fn post_transaction_maps_recorded_rejections() {
    let cases = [
        ("04a-topup-from-World-without-overdraft", "insufficient"),
        ("18c-hold-3-against-credit-limit", "overdraft"),
        ("10a-duplicate-reference-single-sync", "duplicate"),
    ];
    for (name, expected) in cases {
        let (server, client) = start().await;
        expect_call("POST", "/transactions")
            .respond_with(recorded_response(name))
            .expect(1)
            .mount(&server)
            .await;

        let error = client
            .post_transaction(&usd_charge("tg:r:usd", 1))
            .await
            .expect_err("rejected");
        let matched = match expected {
            "insufficient" => matches!(error, LedgerError::InsufficientFunds { .. }),
            "overdraft" => matches!(error, LedgerError::OverdraftLimitExceeded { .. }),
            _ => matches!(error, LedgerError::DuplicateReference { .. }),
        };
        assert!(matched, "fixture {name}: {error:?}");
        assert!(!error.is_retryable(), "fixture {name}");
    }
}

#[tokio::test]
async fn post_bulk_sends_recorded_batch() {
    let (server, client) = start().await;
    let name = "05a-bulk-atomic-usage-charge";
    let mut expected = recorded_request(name);
    let first_leg = expected["transactions"][0].as_object_mut().expect("leg");
    first_leg.remove("amount");
    first_leg.insert("precise_amount".to_string(), json!(1234));
    expected["run_async"] = json!(false);
    expect_body("POST", "/transactions/bulk", expected)
        .respond_with(recorded_response(name))
        .expect(1)
        .mount(&server)
        .await;

    let result = client.post_bulk(&usage_bulk()).await.expect("applied");
    assert_eq!(result.batch_id, "bulk_be6dd20d-8ccd-4918-a0fa-c63a40d10956");
    assert_eq!(result.status, "applied");
    assert_eq!(result.transaction_count, 2);
}

#[tokio::test]
async fn post_bulk_without_funds_fails() {
    let (server, client) = start().await;
    expect_call("POST", "/transactions/bulk")
        .respond_with(recorded_response("06a-bulk-atomic-insufficient-funds"))
        .expect(1)
        .mount(&server)
        .await;

    let error = client.post_bulk(&usage_bulk()).await.expect_err("rejected");
    assert!(
        matches!(error, LedgerError::InsufficientFunds { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn post_bulk_rejects_holds_unsent() {
    let (server, client) = start().await;
    Mock::given(method("POST"))
        .respond_with(json_response(500, "{}"))
        .expect(0)
        .mount(&server)
        .await;

    let mut bulk = usage_bulk();
    bulk.transactions[1].inflight = true;
    let error = client.post_bulk(&bulk).await.expect_err("invalid");
    assert!(matches!(
        error,
        LedgerError::InvalidRequest {
            operation: "post_bulk",
            ..
        }
    ));
}

#[tokio::test]
async fn void_inflight_returns_void_row() {
    let (server, client) = start().await;
    let name = "08e-inflight-void-rest";
    expect_body(
        "PUT",
        "/transactions/inflight/txn_d0fa7a0c-3583-4023-bdff-ffa40e06d2d2",
        recorded_request(name),
    )
    .respond_with(recorded_response(name))
    .expect(1)
    .mount(&server)
    .await;

    let outcome = client
        .void_inflight("txn_d0fa7a0c-3583-4023-bdff-ffa40e06d2d2")
        .await
        .expect("voided");
    let VoidOutcome::Voided(child) = outcome else {
        panic!("expected a void row, got {outcome:?}");
    };
    assert_eq!(child.status, TransactionStatus::Void);
    assert_eq!(child.precise_amount, 1_250_000_000);
    assert_eq!(
        child.parent_transaction,
        "txn_d0fa7a0c-3583-4023-bdff-ffa40e06d2d2"
    );
}

#[tokio::test]
async fn void_inflight_already_done_is_outcome() {
    let committed = r#"{"error":"error occurred during processing: [cannot void. Transaction already committed]",
        "error_detail":{"code":"TXN_ALREADY_COMMITTED",
        "message":"error occurred during processing: [cannot void. Transaction already committed]"}}"#;
    let cases = [
        (
            recorded_response("17e-void-after-expiry"),
            VoidOutcome::AlreadyVoided,
        ),
        (json_response(409, committed), VoidOutcome::AlreadyCommitted),
    ];
    for (response, expected) in cases {
        let (server, client) = start().await;
        expect_body(
            "PUT",
            "/transactions/inflight/txn_df79956a-c60e-4bfb-8e96-3ca9cacfc7a6",
            json!({"status": "void", "skip_queue": true}),
        )
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;

        let outcome = client
            .void_inflight("txn_df79956a-c60e-4bfb-8e96-3ca9cacfc7a6")
            .await
            .expect("done before");
        assert_eq!(outcome, expected);
    }
}

#[tokio::test]
async fn commit_inflight_sends_precise_amount() {
    let (server, client) = start().await;
    expect_body(
        "PUT",
        "/transactions/inflight/txn_d0fa7a0c-3583-4023-bdff-ffa40e06d2d2",
        json!({"status": "commit", "precise_amount": 750_000_000, "skip_queue": true}),
    )
    .respond_with(recorded_response("08c-inflight-partial-commit"))
    .expect(1)
    .mount(&server)
    .await;

    let child = client
        .commit_inflight(
            "txn_d0fa7a0c-3583-4023-bdff-ffa40e06d2d2",
            Some(750_000_000),
        )
        .await
        .expect("committed");
    assert_eq!(child.status, TransactionStatus::Applied);
    assert_eq!(child.precise_amount, 750_000_000);
}

#[tokio::test]
async fn commit_inflight_failures_map() {
    let cases = [
        ("08k-commit-more-than-held", "TXN_COMMIT_AMOUNT_EXCEEDED"),
        ("08g-commit-after-void-fails", "voided"),
    ];
    for (name, expected) in cases {
        let (server, client) = start().await;
        expect_body(
            "PUT",
            "/transactions/inflight/txn_c1ea0399-305f-4175-91d1-1913c7f5cb2b",
            json!({"status": "commit", "skip_queue": true}),
        )
        .respond_with(recorded_response(name))
        .expect(1)
        .mount(&server)
        .await;

        let error = client
            .commit_inflight("txn_c1ea0399-305f-4175-91d1-1913c7f5cb2b", None)
            .await
            .expect_err("rejected");
        let matched = match &error {
            LedgerError::Rejected {
                status: 400, code, ..
            } => code.as_deref() == Some(expected),
            LedgerError::AlreadyVoided => expected == "voided",
            _ => false,
        };
        assert!(matched, "fixture {name}: {error:?}");
    }
}

#[tokio::test]
async fn transaction_by_reference_found() {
    let (server, client) = start().await;
    expect_call("GET", "/transactions/reference/req-0001:usd")
        .respond_with(recorded_response("10e-get-by-reference"))
        .expect(1)
        .mount(&server)
        .await;

    let found = client
        .transaction_by_reference("req-0001:usd")
        .await
        .expect("answered");
    let found = found.expect("the reference exists");
    assert_eq!(
        found.transaction_id,
        "txn_f032e722-4830-4f67-990e-9b96daea91df"
    );
    assert_eq!(
        found.parent_transaction,
        "bulk_be6dd20d-8ccd-4918-a0fa-c63a40d10956"
    );
}

#[tokio::test]
async fn transaction_by_reference_missing_is_none() {
    let (server, client) = start().await;
    expect_call("GET", "/transactions/reference/tg:a%20b%2Fc%3F")
        .respond_with(recorded_response(
            "10i-get-txn-id-returned-for-queued-duplicate",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let found = client
        .transaction_by_reference("tg:a b/c?")
        .await
        .expect("answered");
    assert_eq!(found, None);
}

#[tokio::test]
async fn get_transaction_reads_by_id() {
    let (server, client) = start().await;
    expect_call(
        "GET",
        "/transactions/txn_f032e722-4830-4f67-990e-9b96daea91df",
    )
    .respond_with(recorded_response("10e-get-by-reference"))
    .expect(1)
    .mount(&server)
    .await;

    let found = client
        .get_transaction("txn_f032e722-4830-4f67-990e-9b96daea91df")
        .await
        .expect("found");
    assert_eq!(found.reference, "req-0001:usd");
}

#[tokio::test]
async fn filter_transactions_sends_query() {
    let (server, client) = start().await;
    let name = "16c-legs-of-batch-by-reference-prefix";
    let mut expected = recorded_request(name);
    expected["offset"] = json!(0);
    expect_body("POST", "/transactions/filter", expected)
        .respond_with(recorded_response(name))
        .expect(1)
        .mount(&server)
        .await;

    let query = TransactionQuery {
        limit: 10,
        ..TransactionQuery::new(vec![Filter::like("reference", "tg:ea0fc2:%")])
    };
    let legs = client.filter_transactions(&query).await.expect("listed");
    let references: Vec<&str> = legs.iter().map(|leg| leg.reference.as_str()).collect();
    assert_eq!(references, ["tg:ea0fc2:usd", "tg:ea0fc2:tokens"]);
}

#[tokio::test]
async fn filter_transactions_rejects_large_limit() {
    let (server, client) = start().await;
    Mock::given(method("POST"))
        .respond_with(json_response(200, "[]"))
        .expect(0)
        .mount(&server)
        .await;

    for limit in [0, 101] {
        let query = TransactionQuery {
            limit,
            ..TransactionQuery::new(Vec::new())
        };
        let error = client
            .filter_transactions(&query)
            .await
            .expect_err("invalid");
        assert!(
            matches!(error, LedgerError::InvalidRequest { .. }),
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn server_error_without_body() {
    let (server, client) = start().await;
    expect_call("POST", "/transactions/bulk")
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;

    let error = client.post_bulk(&usage_bulk()).await.expect_err("failed");
    assert!(
        matches!(error, LedgerError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(error.is_unavailable());
}

#[tokio::test]
async fn locked_balance_is_retryable() {
    let (server, client) = start().await;
    let body = r#"{"error":"failed to acquire lock: lock wait timeout",
        "error_detail":{"code":"GEN_RESOURCE_LOCKED","message":"failed to acquire lock: lock wait timeout"}}"#;
    expect_call("POST", "/transactions")
        .respond_with(json_response(423, body))
        .expect(1)
        .mount(&server)
        .await;

    let error = client
        .post_transaction(&usd_charge("tg:lock:usd", 1))
        .await
        .expect_err("locked");
    assert!(matches!(error, LedgerError::Locked { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(!error.is_unavailable());
}

#[tokio::test]
async fn hang_past_timeout_is_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(recorded_response("17a-hold-with-expiry").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let client = client_for(&server.uri(), Duration::from_millis(200));

    let error = client
        .post_transaction(&expiring_hold())
        .await
        .expect_err("timed out");
    assert!(
        matches!(
            error,
            LedgerError::Timeout {
                operation: "post_transaction"
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(error.is_unavailable());
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().expect("bound address");
    drop(listener);
    let client = client_for(&format!("http://{address}"), Duration::from_secs(5));

    let error = client.get_balance("bln_1").await.expect_err("refused");
    assert!(
        matches!(
            error,
            LedgerError::Unreachable {
                operation: "get_balance",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(error.is_unavailable());
    assert!(!error.to_string().contains(KEY), "{error}");
    assert!(!format!("{error:?}").contains(KEY), "{error:?}");
}

#[tokio::test]
async fn wrong_key_is_unauthorized() {
    let (server, client) = start().await;
    expect_call("GET", "/balances/bln_1")
        .respond_with(recorded_response("00c-auth-wrong-key"))
        .expect(1)
        .mount(&server)
        .await;

    let error = client.get_balance("bln_1").await.expect_err("unauthorized");
    assert!(
        matches!(error, LedgerError::Unauthorized { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("BLNK_API_KEY"), "{message}");
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test]
async fn missing_key_sends_no_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json_response(200, r#"{"status":"UP"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let client = BlnkClient::new(&server.uri(), None, Duration::from_secs(5)).expect("client");

    client.health().await.expect("healthy");
    let requests = server.received_requests().await.expect("recording is on");
    assert!(requests[0].headers.get("x-blnk-key").is_none());
}

#[tokio::test]
async fn malformed_success_body_is_invalid_response() {
    let (server, client) = start().await;
    expect_call("GET", "/balances/bln_1")
        .respond_with(json_response(200, r#"{"balance":1.5}"#))
        .expect(1)
        .mount(&server)
        .await;

    let error = client.get_balance("bln_1").await.expect_err("invalid");
    assert!(
        matches!(
            error,
            LedgerError::InvalidResponse {
                operation: "get_balance",
                ..
            }
        ),
        "{error:?}"
    );
}
