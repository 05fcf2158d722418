//! Onboarding through the operator actions and the real CLI binary: creating a customer is
//! idempotent, top-ups are idempotent by reference, and errors tell the operator what to do.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test, and tasks need no names here"
)]

mod support;

use std::process::Command;

use tollgate::accounts::Billing;
use tollgate::customers::OperationError;
use tollgate::ids::CustomerId;
use tollgate::money::Usd;

use support::blnk::FakeBlnk;
use support::harness::Harness;

fn tollgate(blnk_url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("BLNK_URL", blnk_url)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn create_twice_creates_nothing_new() {
    let harness = Harness::start().await;
    let first = harness.customer("acme", Billing::Prepaid, None).await;
    assert!(first.created_anything);
    let creates = || {
        harness.blnk.request_count("POST", "/balances")
            - harness.blnk.request_count("POST", "/balances/filter")
    };
    let balances_before = creates();
    let second = harness.customer("acme", Billing::Prepaid, None).await;
    assert!(!second.created_anything);
    assert_eq!(first.usd_balance_id, second.usd_balance_id);
    assert_eq!(first.tokens_balance_id, second.tokens_balance_id);
    assert_eq!(first.identity_id, second.identity_id);
    assert_eq!(first.ledger_id, second.ledger_id);
    assert_eq!(creates(), balances_before, "no new balance");

    let usd = harness.blnk.balance(&first.usd_balance_id);
    assert_eq!(usd.currency, "USD");
    assert_eq!(usd.meta_data["tollgate_customer_id"], "acme");
    assert_eq!(usd.meta_data["tollgate_kind"], "usd");
    assert_eq!(usd.meta_data["tollgate_precision"], 1_000_000_000);
    assert_eq!(usd.meta_data["tollgate_billing"], "prepaid");
    let tokens = harness.blnk.balance(&first.tokens_balance_id);
    assert_eq!(tokens.currency, "TOKENS");
    assert_eq!(tokens.meta_data["tollgate_precision"], 1);
}

#[tokio::test]
async fn postpaid_terms_are_recorded() {
    let harness = Harness::start().await;
    let limit = Some(Usd::parse_positive("250.50").unwrap());
    let created = harness
        .customer(
            "bigco",
            Billing::Postpaid {
                credit_limit: limit,
            },
            None,
        )
        .await;
    assert_eq!(created.billing, "postpaid");
    assert_eq!(created.credit_limit_usd.as_deref(), Some("250.5"));
    let usd = harness.blnk.balance(&created.usd_balance_id);
    assert_eq!(usd.meta_data["tollgate_billing"], "postpaid");
    assert_eq!(usd.meta_data["tollgate_credit_limit_usd"], "250.5");
}

#[tokio::test]
async fn topup_is_idempotent_by_reference() {
    let harness = Harness::start().await;
    let created = harness.customer("acme", Billing::Prepaid, None).await;
    let ops = harness.operations();
    let acme = CustomerId::parse("acme").unwrap();
    let amount = Usd::parse_positive("12.50").unwrap();
    let first = ops
        .fund(&acme, amount, "tg:topup:acme:r1", "topup")
        .await
        .unwrap();
    assert!(!first.already_recorded);
    let again = ops
        .fund(&acme, amount, "tg:topup:acme:r1", "topup")
        .await
        .unwrap();
    assert!(again.already_recorded);
    assert_eq!(again.transaction_id, first.transaction_id);
    assert_eq!(
        harness.blnk.balance(&created.usd_balance_id).balance,
        12_500_000_000
    );

    let other = Usd::parse_positive("3").unwrap();
    let conflict = ops.fund(&acme, other, "tg:topup:acme:r1", "topup").await;
    assert!(
        matches!(conflict, Err(OperationError::Conflict(_))),
        "{conflict:?}"
    );
    assert_eq!(
        harness.blnk.balance(&created.usd_balance_id).balance,
        12_500_000_000
    );
}

#[tokio::test]
async fn show_reports_balance_held_and_available() {
    let harness = Harness::start().await;
    harness.prepaid("acme", "10").await;
    let view = harness
        .operations()
        .show_customer(&CustomerId::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(view.balance_usd, "10");
    assert_eq!(view.held_usd, "0");
    assert_eq!(view.available_usd, "10");
    assert_eq!(view.tokens_used, "0");
    assert_eq!(view.billing, "prepaid");
}

#[tokio::test]
async fn cli_onboards_and_tops_up() {
    let blnk = FakeBlnk::start().await;
    let url = blnk.url();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || tollgate(&url, args))
    };
    let (code, out, err) = run(&[
        "customer",
        "create",
        "acme",
        "--postpaid",
        "--credit-limit",
        "100",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customer acme created"), "{out}");
    assert!(out.contains("postpaid, credit limit $100"), "{out}");
    let (code, out, _) = run(&[
        "customer",
        "create",
        "acme",
        "--postpaid",
        "--credit-limit",
        "100",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("already exists"), "{out}");

    let (code, out, err) = run(&["topup", "acme", "25", "--reference", "dep-1"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("topped up acme with $25"), "{out}");
    assert!(out.contains("tg:topup:acme:dep-1"), "{out}");
    let (code, out, _) = run(&["topup", "acme", "25", "--reference", "dep-1"])
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("already recorded"), "{out}");

    let (code, out, err) = run(&["customer", "show", "acme"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("balance         $25"), "{out}");
}

#[tokio::test]
async fn cli_errors_say_what_to_do() {
    let blnk = FakeBlnk::start().await;
    let url = blnk.url();
    let cases: [(&str, &[&str], i32, &str); 5] = [
        (
            url.as_str(),
            &[
                "customer",
                "create",
                "x",
                "--prepaid",
                "--credit-limit",
                "5",
            ],
            2,
            "--credit-limit applies only to postpaid",
        ),
        (
            url.as_str(),
            &["topup", "nobody", "5"],
            1,
            "create it with `tollgate customer create nobody`",
        ),
        (
            url.as_str(),
            &["topup", "acme", "abc"],
            2,
            "invalid amount \"abc\"",
        ),
        (
            url.as_str(),
            &["customer", "create", "bad id"],
            2,
            "invalid customer id",
        ),
        (
            "http://127.0.0.1:9",
            &["customer", "show", "acme"],
            1,
            "check BLNK_URL",
        ),
    ];
    for (blnk_url, args, code, message) in cases {
        let blnk_url = blnk_url.to_string();
        let args: Vec<&'static str> = args.iter().map(|a| &*a.to_string().leak()).collect();
        let (status, _, err) = tokio::task::spawn_blocking(move || tollgate(&blnk_url, &args))
            .await
            .unwrap();
        assert_eq!(status, code, "{err}");
        assert!(err.contains(message), "{err}");
    }
}
