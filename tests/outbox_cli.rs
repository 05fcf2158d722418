//! The operator's outbox commands, run as the real binary while a server owns the same data
//! directory: `outbox list`, `outbox retry` and the outbox line of `customer show`.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::blnk::Fault;
use support::cases::{Case, charge_of};
use support::harness::{Harness, Options};
use tollgate::outbox::EntryState;

const CUSTOMER: &str = "cust_postpaid_01";

/// Runs `tollgate <args>` with the server's data directory and Blnk, and nothing else from
/// the environment.
async fn tollgate(harness: &Harness, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("TOLLGATE_DATA_DIR", harness.data_dir.path().join("data"))
        .env("BLNK_URL", harness.blnk.url())
        .env(
            "TOLLGATE_PRICING",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"),
        )
        .output()
        .await
        .expect("the tollgate binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_commands_work_while_serving() {
    let options = Options {
        env: vec![
            ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "300ms".to_string()),
            ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms".to_string()),
        ],
        ..Options::default()
    };
    let harness = Harness::start_with(options).await;
    let case = Case::load("15-ledger-post-retry-same-reference");
    harness.postpaid(CUSTOMER).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&harness.upstream)
        .await;

    // Blnk rejects the charge with a 400, so the charge goes to the dead-letter list.
    harness
        .blnk
        .inject(Fault::Status(400).on("POST", "/transactions/bulk"));
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", CUSTOMER)
        .json(&case.request_body())
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let outbox = harness.state.biller.outbox();
    for _ in 0..200 {
        if outbox.counts().await.unwrap().dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = outbox.list(EntryState::Dead, 10).await.unwrap().remove(0);

    let listed = stdout(&tollgate(&harness, &["outbox", "list", "--dead"]).await);
    assert!(listed.starts_with("ID "), "{listed}");
    for expected in [
        id.as_str(),
        "charge",
        CUSTOMER,
        "$0.000195",
        "HTTP 400",
        "0 pending, 1 dead",
    ] {
        assert!(
            listed.contains(expected),
            "`outbox list --dead` shows {expected}:\n{listed}"
        );
    }
    let pending = stdout(&tollgate(&harness, &["outbox", "list"]).await);
    assert!(pending.contains("no pending outbox entries"), "{pending}");

    let json: Value = serde_json::from_str(&stdout(
        &tollgate(&harness, &["--json", "outbox", "list", "--dead"]).await,
    ))
    .unwrap();
    assert_eq!(json[0]["id"], entry.id);
    assert_eq!(json[0]["request_id"], id.as_str());
    assert_eq!(json[0]["state"], "dead");
    assert_eq!(json[0]["amount_usd"], "0.000195");

    let shown = stdout(&tollgate(&harness, &["customer", "show", CUSTOMER]).await);
    assert!(
        shown.contains("outbox          0 pending, 1 dead"),
        "{shown}"
    );
    let shown: Value = serde_json::from_str(&stdout(
        &tollgate(&harness, &["--json", "customer", "show", CUSTOMER]).await,
    ))
    .unwrap();
    assert_eq!(shown["outbox"]["dead"], 1);
    assert_eq!(shown["customer_id"], CUSTOMER);

    let retried = stdout(&tollgate(&harness, &["outbox", "retry", &entry.id.to_string()]).await);
    assert!(retried.contains("is pending again"), "{retried}");
    for _ in 0..200 {
        if charge_of(&harness.blnk, &id).tokens.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos(),
        "the server's worker posted it"
    );

    let missing = tollgate(&harness, &["outbox", "retry", "999999"]).await;
    assert_eq!(missing.status.code(), Some(1));
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("outbox entry 999999 not found"),
        "{message}"
    );

    let none = stdout(&tollgate(&harness, &["outbox", "retry", "--all-dead"]).await);
    assert!(none.contains("0 dead outbox entries"), "{none}");
    let usage = tollgate(&harness, &["outbox", "retry"]).await;
    assert_eq!(
        usage.status.code(),
        Some(2),
        "an ID or --all-dead is required"
    );
}
