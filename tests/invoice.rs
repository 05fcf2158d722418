//! Invoices computed from the ledger after real requests through the proxy, and from rows
//! posted straight to the fake Blnk: exact totals, paging past 100 rows, period boundaries,
//! compensated charges, payments of a postpaid customer, and the CLI's errors.

mod support;

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

use tollgate::accounts::Billing;
use tollgate::customers::{Funding, OperationError};
use tollgate::ids::CustomerId;
use tollgate::invoice::{InvoiceError, Period, UsageFigures, UsageLine};
use tollgate::ledger::{LedgerError, NewBulk, NewTransaction};
use tollgate::money::{Nanos, Usd};

use support::blnk::FakeBlnk;
use support::harness::{Harness, Options};

/// Prices per 1M tokens chosen so that every charge is a short exact decimal.
const PRICES: &str = r#"
[models."alpha"]
input = "2.00"
cached_input = "0.50"
output = "8.00"
max_output_tokens = 1000

[models."beta"]
input = "1.00"
output = "4.00"
max_output_tokens = 1000
"#;

fn usd(text: &str) -> Usd {
    Usd::new(text.parse::<Decimal>().expect("decimal"))
}

fn customer(id: &str) -> CustomerId {
    CustomerId::parse(id).expect("valid id")
}

async fn start() -> Harness {
    Harness::start_with(Options {
        pricing_toml: Some(PRICES.to_string()),
        ..Options::default()
    })
    .await
}

/// Builds an upstream chat completion with the given usage. A `None` detail is left out.
fn completion(
    model: &str,
    prompt: u64,
    cached: Option<u64>,
    output: u64,
    reasoning: Option<u64>,
) -> Value {
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    });
    if let Some(cached) = cached {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if let Some(reasoning) = reasoning {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
    }
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_767_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    })
}

/// Makes upstream return `status` and `body` for the request whose `user` field is `marker`.
async fn mount(harness: &Harness, marker: &str, status: u16, body: Value) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({"user": marker})))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&harness.upstream)
        .await;
}

async fn chat(harness: &Harness, customer: &str, body: Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(&body)
        .send()
        .await
        .expect("tollgate answers")
}

fn request(model: &str, marker: &str) -> Value {
    json!({"model": model, "user": marker, "messages": [{"role": "user", "content": "hi"}]})
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5 s");
}

fn line(model: &str, figures: [i64; 5], amount: &str) -> UsageLine {
    let [
        requests,
        input_tokens,
        cached_tokens,
        output_tokens,
        reasoning_tokens,
    ] = figures;
    UsageLine {
        model: model.to_string(),
        figures: UsageFigures {
            requests,
            input_tokens,
            cached_tokens,
            output_tokens,
            reasoning_tokens,
            amount_usd: usd(amount),
        },
    }
}

/// Builds a transaction between a customer's wallet and a system balance, effective at `at`.
fn movement(
    wallet: &str,
    credit: bool,
    nanos: i128,
    at: DateTime<Utc>,
    reference: &str,
    meta: Value,
) -> NewTransaction {
    let (source, destination) = if credit {
        ("@World-USD".to_string(), wallet.to_string())
    } else {
        (wallet.to_string(), "@Revenue-USD".to_string())
    };
    NewTransaction {
        precise_amount: nanos,
        precision: 1_000_000_000,
        currency: "USD".into(),
        source,
        destination,
        reference: reference.into(),
        description: format!("test movement {reference}"),
        allow_overdraft: true,
        overdraft_limit: None,
        inflight: false,
        inflight_expiry_date: None,
        effective_date: Some(at),
        meta_data: meta.as_object().cloned().unwrap_or_default(),
    }
}

fn usage_meta(model: &str, prompt: i64, completion: i64) -> Value {
    json!({"tollgate_leg": "usd", "model_billed": model, "prompt_tokens": prompt, "completion_tokens": completion})
}

#[tokio::test]
async fn invoice_matches_hand_computed_totals() {
    let harness = start().await;
    let created = harness.customer("inv", Billing::Prepaid, None).await;
    let ops = harness.operations();
    let id = customer("inv");
    let from = Utc::now().trunc_subsecs(6);

    // Before the period: the opening top-up.
    harness.blnk.set_now(from - TimeDelta::hours(1));
    ops.record_funding(&id, usd("0.02"), Funding::TopUp, Some("opening"))
        .await
        .unwrap();
    // In the period: two top-ups, then four requests, then a payment.
    harness.blnk.set_now(from + TimeDelta::seconds(1));
    ops.record_funding(&id, usd("0.01"), Funding::TopUp, Some("t1"))
        .await
        .unwrap();
    ops.record_funding(&id, usd("0.005"), Funding::TopUp, Some("t2"))
        .await
        .unwrap();

    mount(
        &harness,
        "r1",
        200,
        completion("alpha", 1000, Some(400), 200, None),
    )
    .await;
    mount(
        &harness,
        "r2",
        200,
        completion("alpha", 500, Some(0), 100, None),
    )
    .await;
    mount(
        &harness,
        "r3",
        200,
        completion("beta", 300, None, 700, Some(500)),
    )
    .await;
    mount(
        &harness,
        "fail",
        500,
        json!({"error": {"message": "upstream broke", "type": "server_error"}}),
    )
    .await;
    for (model, marker) in [("alpha", "r1"), ("alpha", "r2"), ("beta", "r3")] {
        let response = chat(&harness, "inv", request(model, marker)).await;
        assert_eq!(response.status(), 200, "{marker}");
        assert_eq!(
            response.headers()["x-tollgate-charge"],
            "recorded",
            "{marker}"
        );
    }
    let mut too_dear = request("alpha", "r4");
    too_dear["max_tokens"] = json!(100_000);
    let rejected = chat(&harness, "inv", too_dear).await;
    assert_eq!(rejected.status(), 402);
    let failed = chat(&harness, "inv", request("alpha", "fail")).await;
    assert_eq!(failed.status(), 500);
    let failed_id = failed.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    wait_until(|| {
        harness
            .blnk
            .balance(&created.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;

    harness.blnk.set_now(Utc::now());
    ops.record_funding(&id, usd("0.0025"), Funding::Payment, Some("p1"))
        .await
        .unwrap();
    let to = Utc::now() + TimeDelta::minutes(10);
    // After the period: a top-up that must not appear.
    harness.blnk.set_now(to + TimeDelta::seconds(1));
    ops.record_funding(&id, usd("1"), Funding::TopUp, Some("late"))
        .await
        .unwrap();

    let invoice = ops
        .invoice(&id, Period::new(from, to).unwrap())
        .await
        .expect("invoice balances");
    // alpha: (600 * 2 + 400 * 0.5 + 200 * 8) / 1e6 = 0.003 and (500 * 2 + 100 * 8) / 1e6 = 0.0018;
    // beta: (300 * 1 + 700 * 4) / 1e6 = 0.0031.
    assert_eq!(
        invoice.usage,
        vec![
            line("alpha", [2, 1500, 400, 300, 0], "0.0048"),
            line("beta", [1, 300, 0, 700, 500], "0.0031")
        ]
    );
    assert_eq!(invoice.usage_total.requests, 3);
    assert_eq!(invoice.usage_total.amount_usd, usd("0.0079"));
    assert_eq!(invoice.opening_balance_usd, usd("0.02"));
    let topups: Vec<(&str, Usd)> = invoice
        .topups
        .iter()
        .map(|t| (t.reference.as_str(), t.amount_usd))
        .collect();
    assert_eq!(
        topups,
        [
            ("tg:topup:inv:t1", usd("0.01")),
            ("tg:topup:inv:t2", usd("0.005"))
        ]
    );
    let payments: Vec<(&str, Usd)> = invoice
        .payments
        .iter()
        .map(|p| (p.reference.as_str(), p.amount_usd))
        .collect();
    assert_eq!(payments, [("tg:pay:inv:p1", usd("0.0025"))]);
    assert!(invoice.adjustments.is_empty(), "{:?}", invoice.adjustments);
    assert_eq!(invoice.credits_usd, usd("0.0175"));
    assert_eq!(invoice.debits_usd, usd("0.0079"));
    assert_eq!(invoice.closing_balance_usd, usd("0.0296"));
    assert_eq!(invoice.amount_due_usd, None, "prepaid owes nothing");
    assert!(
        harness
            .blnk
            .transactions_with_reference_prefix(&format!("tg:{failed_id}:usd"))
            .is_empty()
    );

    let usage = ops
        .usage(&id, Period::new(from, to).unwrap())
        .await
        .unwrap();
    assert_eq!(usage.usage, invoice.usage);
    assert_eq!(usage.usage_total, invoice.usage_total);
}

#[tokio::test]
async fn paging_reads_every_row_once() {
    let harness = start().await;
    let created = harness.postpaid("bulk").await;
    let wallet = created.usd_balance_id.as_str();
    let blnk = &harness.operations().blnk;
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();

    // 130 charges at one instant, 60 in threes, 60 alone: 250 in all, beyond two full pages.
    let mut expected_alpha = [0_i64; 3];
    let mut expected_beta = [0_i64; 3];
    for index in 0..250_i64 {
        let at = match index {
            0..130 => base + TimeDelta::hours(1),
            130..190 => base + TimeDelta::hours(2) + TimeDelta::seconds(index / 3),
            _ => base + TimeDelta::hours(3) + TimeDelta::milliseconds(index),
        };
        let model = if index % 2 == 0 { "alpha" } else { "beta" };
        let totals = if index % 2 == 0 {
            &mut expected_alpha
        } else {
            &mut expected_beta
        };
        totals[0] += 1;
        totals[1] += index;
        totals[2] += index + 1;
        let txn = movement(
            wallet,
            false,
            i128::from(index + 1),
            at,
            &format!("bulk-{index}"),
            usage_meta(model, index, 1),
        );
        blnk.post_transaction(&txn).await.expect("charge posted");
    }
    for index in 0..5 {
        let at = base + TimeDelta::hours(1);
        let meta = json!({"tollgate_leg": "topup"});
        let txn = movement(
            wallet,
            true,
            1_000_000,
            at,
            &format!("tg:topup:bulk:{index}"),
            meta,
        );
        blnk.post_transaction(&txn).await.expect("top-up posted");
    }

    let filters_before = harness.blnk.request_count("POST", "/transactions/filter");
    let period = Period::new(base, base + TimeDelta::days(1)).unwrap();
    let invoice = harness
        .operations()
        .invoice(&customer("bulk"), period)
        .await
        .expect("invoice balances");
    let filters = harness.blnk.request_count("POST", "/transactions/filter") - filters_before;
    assert!(filters >= 4, "paging took {filters} queries");

    let alpha = &invoice.usage[0].figures;
    let beta = &invoice.usage[1].figures;
    assert_eq!(
        [alpha.requests, alpha.input_tokens],
        [expected_alpha[0], expected_alpha[1]]
    );
    assert_eq!(
        [beta.requests, beta.input_tokens],
        [expected_beta[0], expected_beta[1]]
    );
    assert_eq!(
        alpha.amount_usd,
        Nanos(i128::from(expected_alpha[2])).to_usd()
    );
    assert_eq!(
        beta.amount_usd,
        Nanos(i128::from(expected_beta[2])).to_usd()
    );
    assert_eq!(invoice.usage_total.requests, 250);
    assert_eq!(invoice.debits_usd, Nanos(250 * 251 / 2).to_usd());
    assert_eq!(invoice.topups.len(), 5);
    assert_eq!(invoice.credits_usd, usd("0.005"));
    assert_eq!(
        invoice.closing_balance_usd,
        Nanos(5_000_000 - 250 * 251 / 2).to_usd()
    );
}

#[tokio::test]
async fn boundary_row_belongs_to_later_period() {
    let harness = start().await;
    let created = harness.postpaid("edge").await;
    let wallet = created.usd_balance_id.as_str();
    let blnk = &harness.operations().blnk;
    let midnight = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let day = TimeDelta::days(1);
    let rows = [
        (midnight - day, 2_000_000, "alpha"),
        (midnight, 1_000_000, "beta"),
        (midnight + day, 4_000_000, "alpha"),
    ];
    for (index, (at, nanos, model)) in rows.into_iter().enumerate() {
        let txn = movement(
            wallet,
            false,
            nanos,
            at,
            &format!("edge-{index}"),
            usage_meta(model, 10, 1),
        );
        blnk.post_transaction(&txn).await.expect("charge posted");
    }

    let periods = [
        (midnight - day, midnight, "alpha", "0", "-0.002"),
        (midnight, midnight + day, "beta", "-0.002", "-0.003"),
        (
            midnight + day,
            midnight + day + day,
            "alpha",
            "-0.003",
            "-0.007",
        ),
    ];
    for (from, to, model, opening, closing) in periods {
        let period = Period::new(from, to).unwrap();
        let invoice = harness
            .operations()
            .invoice(&customer("edge"), period)
            .await
            .expect("invoice balances");
        let models: Vec<&str> = invoice
            .usage
            .iter()
            .map(|line| line.model.as_str())
            .collect();
        assert_eq!(models, [model], "{period}");
        assert_eq!(invoice.usage_total.requests, 1, "{period}");
        assert_eq!(invoice.opening_balance_usd, usd(opening), "{period}");
        assert_eq!(invoice.closing_balance_usd, usd(closing), "{period}");
        assert_eq!(
            invoice.amount_due_usd,
            Some(usd(closing.trim_start_matches('-'))),
            "{period}"
        );
    }
}

#[tokio::test]
async fn compensated_charge_leaves_totals() {
    let harness = start().await;
    let created = harness.postpaid("comp").await;
    let wallet = created.usd_balance_id.clone();
    let blnk = &harness.operations().blnk;
    let now = harness.blnk.now();

    // An atomic charge whose TOKENS leg fails: Blnk refunds the USD leg when its workers run.
    let usd_leg = movement(
        &wallet,
        false,
        5_000_000,
        now,
        "tg:req-1:usd",
        usage_meta("alpha", 100, 50),
    );
    let mut tokens_leg = movement(
        &created.tokens_balance_id,
        false,
        150,
        now,
        "tg:req-1:tokens",
        usage_meta("alpha", 100, 50),
    );
    tokens_leg.currency = "TOKENS".into();
    tokens_leg.precision = 1;
    tokens_leg.destination = "@TokenPool".into();
    tokens_leg.allow_overdraft = false;
    let bulk = NewBulk {
        transactions: vec![usd_leg, tokens_leg],
        atomic: true,
        shared_meta_data: None,
    };
    let refused = blnk.post_bulk(&bulk).await;
    assert!(
        matches!(refused, Err(LedgerError::InsufficientFunds { .. })),
        "{refused:?}"
    );
    harness.blnk.run_workers();
    let refunds: Vec<_> = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|row| row.reference.contains("_refund") && row.destination == wallet)
        .collect();
    assert!(!refunds.is_empty(), "the USD leg was refunded");

    let charge = movement(
        &wallet,
        false,
        1_000_000,
        now,
        "tg:req-2:usd",
        usage_meta("beta", 10, 5),
    );
    blnk.post_transaction(&charge).await.expect("charge posted");

    let period = Period::new(now - TimeDelta::hours(1), now + TimeDelta::hours(1)).unwrap();
    let invoice = harness
        .operations()
        .invoice(&customer("comp"), period)
        .await
        .expect("invoice balances");
    assert_eq!(invoice.usage, vec![line("beta", [1, 10, 0, 5, 0], "0.001")]);
    assert_eq!(invoice.usage_total.amount_usd, usd("0.001"));
    assert_eq!(invoice.debits_usd, usd("0.006"));
    assert_eq!(invoice.credits_usd, usd("0.005"));
    assert_eq!(invoice.closing_balance_usd, usd("-0.001"));
    assert!(invoice.adjustments.is_empty(), "{:?}", invoice.adjustments);
}

#[tokio::test]
async fn credit_limit_rejects_then_payment_restores() {
    let prices = r#"
        [models."meter"]
        input = "1000"
        output = "1000"
        max_output_tokens = 1000
    "#;
    let harness = Harness::start_with(Options {
        pricing_toml: Some(prices.to_string()),
        ..Options::default()
    })
    .await;
    let limit = Some(usd("1"));
    let created = harness
        .customer(
            "capped",
            Billing::Postpaid {
                credit_limit: limit,
            },
            None,
        )
        .await;
    let wallet = created.usd_balance_id.clone();
    // Each call costs (100 + 400) * $0.001 = $0.50 and is quoted at more than $0.60
    // (600 output tokens plus the body's bytes).
    mount(
        &harness,
        "capped",
        200,
        completion("meter", 100, None, 400, None),
    )
    .await;
    let body = json!({"model": "meter", "user": "capped", "max_tokens": 600, "messages": [{"role": "user", "content": "hi"}]});

    let first = chat(&harness, "capped", body.clone()).await;
    assert_eq!(first.status(), 200);
    wait_until(|| harness.blnk.balance(&wallet).inflight_debit_balance == 0).await;
    assert_eq!(harness.blnk.balance(&wallet).balance, -500_000_000);

    let refused = chat(&harness, "capped", body.clone()).await;
    assert_eq!(
        refused.status(),
        402,
        "-$0.50 plus a hold above $0.60 exceeds the $1 limit"
    );
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "insufficient_funds");

    let ops = harness.operations();
    let due = ops
        .invoice(
            &customer("capped"),
            Period::new(
                Utc::now() - TimeDelta::hours(1),
                Utc::now() + TimeDelta::hours(1),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .amount_due_usd;
    assert_eq!(due, Some(usd("0.5")));
    ops.record_funding(
        &customer("capped"),
        usd("0.5"),
        Funding::Payment,
        Some("inv-1"),
    )
    .await
    .unwrap();
    assert_eq!(harness.blnk.balance(&wallet).balance, 0, "paid in full");

    wait_until(|| harness.blnk.balance(&wallet).inflight_debit_balance == 0).await;
    let served = chat(&harness, "capped", body).await;
    assert_eq!(served.status(), 200, "served again after the payment");
}

#[tokio::test]
async fn unknown_customer_is_named() {
    let harness = start().await;
    let period = Period::parse("2026-01-01", "2026-02-01").unwrap();
    let error = harness
        .operations()
        .invoice(&customer("ghost"), period)
        .await
        .expect_err("unknown");
    assert!(
        matches!(
            error,
            InvoiceError::Operation(OperationError::UnknownCustomer(_))
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("customer ghost not found"),
        "{error}"
    );
}

#[tokio::test]
async fn payment_reference_is_idempotent() {
    let harness = start().await;
    let created = harness.postpaid("payer").await;
    let ops = harness.operations();
    let id = customer("payer");

    let first = ops
        .record_funding(&id, usd("12.50"), Funding::Payment, Some("inv-9"))
        .await
        .unwrap();
    assert_eq!(first.reference, "tg:pay:payer:inv-9");
    assert!(!first.already_recorded);

    let again = ops
        .record_funding(&id, usd("12.5"), Funding::Payment, Some("inv-9"))
        .await
        .unwrap();
    assert!(again.already_recorded);
    assert_eq!(
        harness.blnk.balance(&created.usd_balance_id).balance,
        12_500_000_000
    );

    let row = &harness
        .blnk
        .transactions_with_reference_prefix("tg:pay:payer:inv-9")[0];
    assert_eq!(row.meta_data["tollgate_leg"], "payment");

    let conflict = ops
        .record_funding(&id, usd("3"), Funding::Payment, Some("inv-9"))
        .await;
    assert!(
        matches!(conflict, Err(OperationError::Conflict(_))),
        "{conflict:?}"
    );
}

#[tokio::test]
async fn terms_change_and_listing() {
    let harness = start().await;
    harness.prepaid("one", "5").await;
    harness.postpaid("two").await;
    let ops = harness.operations();
    let view = ops
        .set_terms(
            &customer("one"),
            Billing::Postpaid {
                credit_limit: Some(usd("75")),
            },
        )
        .await
        .unwrap();
    assert_eq!(view.billing, "postpaid");
    assert_eq!(view.credit_limit_usd.as_deref(), Some("75"));
    let view = ops
        .set_terms(&customer("two"), Billing::Prepaid)
        .await
        .unwrap();
    assert_eq!(view.billing, "prepaid");
    assert_eq!(view.credit_limit_usd, None);

    let listed = ops.list_customers().await.unwrap();
    let summary: Vec<(&str, &str, Option<&str>, &str)> = listed
        .iter()
        .map(|c| {
            (
                c.customer_id.as_str(),
                c.billing.as_str(),
                c.credit_limit_usd.as_deref(),
                c.balance_usd.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("one", "postpaid", Some("75"), "5"),
            ("two", "prepaid", None, "0")
        ]
    );

    let recreate = ops
        .create_customer(
            &customer("two"),
            None,
            Billing::Postpaid { credit_limit: None },
        )
        .await;
    assert!(
        matches!(recreate, Err(OperationError::Conflict(_))),
        "{recreate:?}"
    );
}

#[tokio::test]
async fn listing_pages_past_one_hundred() {
    let harness = start().await;
    let ops = harness.operations();
    for index in 0..130 {
        let id = customer(&format!("c{index:03}"));
        ops.create_customer(&id, None, Billing::Prepaid)
            .await
            .expect("created");
    }
    let listed = ops.list_customers().await.unwrap();
    let ids: Vec<String> = listed.iter().map(|c| c.customer_id.clone()).collect();
    let expected: Vec<String> = (0..130).map(|index| format!("c{index:03}")).collect();
    assert_eq!(ids, expected);
}

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

async fn run_cli(blnk: &FakeBlnk, args: &[&str]) -> (i32, String, String) {
    let url = blnk.url();
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tollgate(&url, &args)
    })
    .await
    .expect("CLI thread")
}

#[tokio::test]
async fn cli_invoice_errors_say_what_failed() {
    let blnk = FakeBlnk::start().await;
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &[
                "invoice",
                "ghost",
                "--from",
                "2026-01-01",
                "--to",
                "2026-02-01",
            ],
            1,
            "customer ghost not found",
        ),
        (
            &[
                "invoice",
                "ghost",
                "--from",
                "2026-13-01",
                "--to",
                "2026-02-01",
            ],
            2,
            "invalid from date \"2026-13-01\"",
        ),
        (
            &[
                "invoice",
                "ghost",
                "--from",
                "2026-02-01",
                "--to",
                "2026-01-01",
            ],
            2,
            "must be before to",
        ),
        (
            &[
                "invoice",
                "ghost",
                "--from",
                "2026-02-01",
                "--to",
                "2026-02-01",
            ],
            2,
            "must be before to",
        ),
        (&["pay", "ghost", "5"], 2, "--reference"),
        (
            &["pay", "ghost", "5", "--reference", "inv_refund"],
            2,
            "invalid reference",
        ),
    ];
    for (args, code, message) in cases {
        let (status, _, err) = run_cli(&blnk, args).await;
        assert_eq!(status, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn cli_prints_invoice_formats() {
    let blnk = FakeBlnk::start().await;
    let (code, _, err) = run_cli(&blnk, &["customer", "create", "cli", "--postpaid"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(&blnk, &["pay", "cli", "7.125", "--reference", "inv-1"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("recorded a payment of $7.125 from cli"),
        "{out}"
    );

    let (code, out, err) = run_cli(
        &blnk,
        &[
            "customer",
            "set",
            "cli",
            "--postpaid",
            "--credit-limit",
            "40",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("postpaid, credit limit $40"), "{out}");
    let (code, _, err) = run_cli(&blnk, &["customer", "set", "cli"]).await;
    assert_eq!(code, 2, "--prepaid or --postpaid is required: {err}");
    let (code, out, err) = run_cli(&blnk, &["customer", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cli "), "{out}");
    assert!(out.contains("$7.125"), "{out}");

    let period = ["--from", "2000-01-01", "--to", "2100-01-01"];
    let (code, out, err) = run_cli(
        &blnk,
        &[&["invoice", "cli"][..], &period, &["--format", "table"]].concat(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Closing balance           $7.13"), "{out}");
    assert!(out.contains("Amount due                $0.00"), "{out}");
    let (code, out, err) = run_cli(
        &blnk,
        &[&["invoice", "cli"][..], &period, &["--format", "csv"]].concat(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\r\nclosing_balance,,,,,,,7.125,,\r\n"),
        "{out}"
    );
    let (code, out, err) = run_cli(
        &blnk,
        &[&["invoice", "cli"][..], &period, &["--format", "json"]].concat(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let invoice: Value = serde_json::from_str(&out).expect("JSON invoice");
    assert_eq!(invoice["closing_balance_usd"], "7.125");
    assert_eq!(invoice["payments"][0]["reference"], "tg:pay:cli:inv-1");
}
