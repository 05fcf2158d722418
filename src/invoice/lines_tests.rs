use chrono::TimeZone;
use rust_decimal::dec;
use serde_json::json;

use super::*;
use crate::ledger::TransactionStatus;

const WALLET: &str = "bln_wallet";
const REVENUE: &str = "bln_revenue";
const WORLD: &str = "bln_world";

fn row(
    id: &str,
    reference: &str,
    source: &str,
    destination: &str,
    nanos: i128,
    meta: Value,
) -> Transaction {
    let at = Utc
        .with_ymd_and_hms(2026, 5, 2, 12, 0, 0)
        .single()
        .expect("valid time");
    Transaction {
        transaction_id: id.into(),
        parent_transaction: String::new(),
        reference: reference.into(),
        status: TransactionStatus::Applied,
        precise_amount: nanos,
        currency: "USD".into(),
        source: source.into(),
        destination: destination.into(),
        description: format!("row {id}"),
        created_at: at,
        effective_date: Some(at),
        inflight_expiry_date: None,
        meta_data: meta.as_object().cloned().unwrap_or_default(),
    }
}

fn usage_meta(
    model: &str,
    prompt: i64,
    cached: Option<i64>,
    completion: i64,
    reasoning: Option<i64>,
) -> Value {
    let mut meta = json!({
        "tollgate_leg": "usd",
        "model_billed": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    });
    if let Some(cached) = cached {
        meta["cached_tokens"] = json!(cached);
    }
    if let Some(reasoning) = reasoning {
        meta["reasoning_tokens"] = json!(reasoning);
    }
    meta
}

fn charge(id: &str, nanos: i128, meta: Value) -> Transaction {
    row(id, &format!("tg:{id}:usd"), WALLET, REVENUE, nanos, meta)
}

#[test]
fn usage_grouped_by_billed_model() {
    let rows = [
        charge(
            "txn_1",
            3_000_000,
            usage_meta("alpha", 1000, Some(400), 200, None),
        ),
        charge(
            "txn_2",
            1_800_000,
            usage_meta("alpha", 500, Some(0), 100, None),
        ),
        charge(
            "txn_3",
            3_100_000,
            usage_meta("beta", 300, None, 700, Some(500)),
        ),
    ];
    let lines = sort_rows(WALLET, &rows).expect("rows sort");
    let expected = vec![
        UsageLine {
            model: "alpha".into(),
            figures: UsageFigures {
                requests: 2,
                input_tokens: 1500,
                cached_tokens: 400,
                output_tokens: 300,
                reasoning_tokens: 0,
                amount_usd: Usd::new(dec!(0.0048)),
            },
        },
        UsageLine {
            model: "beta".into(),
            figures: UsageFigures {
                requests: 1,
                input_tokens: 300,
                cached_tokens: 0,
                output_tokens: 700,
                reasoning_tokens: 500,
                amount_usd: Usd::new(dec!(0.0031)),
            },
        },
    ];
    assert_eq!(lines.usage, expected);
    assert_eq!(lines.debits, Nanos(7_900_000));
    assert_eq!(lines.credits, Nanos(0));
    assert_eq!(usage_total(&lines.usage).requests, 3);
    assert_eq!(usage_total(&lines.usage).amount_usd, Usd::new(dec!(0.0079)));
}

#[test]
fn refund_cancels_its_charge() {
    let meta = usage_meta("alpha", 10, None, 5, None);
    for refund_reference in ["txn_a_refund", "txn_a_refund_q"] {
        let rows = [
            charge("txn_a", 42, meta.clone()),
            row("txn_r", refund_reference, REVENUE, WALLET, 42, meta.clone()),
            charge("txn_b", 7, usage_meta("beta", 1, None, 1, None)),
        ];
        let lines = sort_rows(WALLET, &rows).expect("rows sort");
        assert_eq!(
            lines.usage.len(),
            1,
            "{refund_reference}: {:?}",
            lines.usage
        );
        assert_eq!(lines.usage[0].model, "beta");
        assert_eq!(lines.debits, Nanos(49));
        assert_eq!(lines.credits, Nanos(42));
        assert!(lines.adjustments.is_empty(), "{refund_reference}");
    }
}

#[test]
fn refund_of_earlier_charge_counts_negative() {
    let meta = usage_meta("alpha", 10, Some(2), 5, Some(1));
    let rows = [row("txn_r", "txn_old_refund", REVENUE, WALLET, 42, meta)];
    let lines = sort_rows(WALLET, &rows).expect("rows sort");
    let figures = &lines.usage[0].figures;
    assert_eq!(figures.requests, -1);
    assert_eq!(figures.input_tokens, -10);
    assert_eq!(figures.cached_tokens, -2);
    assert_eq!(figures.output_tokens, -5);
    assert_eq!(figures.reasoning_tokens, -1);
    assert_eq!(figures.amount_usd, Nanos(-42).to_usd());
}

#[test]
fn credits_and_other_rows_are_sorted() {
    let rows = [
        row(
            "txn_t",
            "tg:topup:c1:a",
            WORLD,
            WALLET,
            10_000_000_000,
            json!({"tollgate_leg": "topup"}),
        ),
        row(
            "txn_p",
            "tg:pay:c1:inv-7",
            WORLD,
            WALLET,
            2_500_000_000,
            json!({"tollgate_leg": "payment"}),
        ),
        row("txn_m", "manual-fix", WORLD, WALLET, 5, json!({})),
        row(
            "txn_h",
            "ref_commit",
            WALLET,
            REVENUE,
            9,
            json!({"tollgate_leg": "hold"}),
        ),
        row(
            "txn_x",
            "tg:topup:c1:odd",
            WALLET,
            WORLD,
            3,
            json!({"tollgate_leg": "topup"}),
        ),
    ];
    let lines = sort_rows(WALLET, &rows).expect("rows sort");

    assert_eq!(lines.topups.len(), 1);
    assert_eq!(lines.topups[0].amount_usd, Usd::new(dec!(10)));
    assert_eq!(lines.topups[0].reference, "tg:topup:c1:a");
    assert_eq!(lines.payments.len(), 1);
    assert_eq!(lines.payments[0].amount_usd, Usd::new(dec!(2.5)));

    let adjustments: Vec<(&str, Usd)> = lines
        .adjustments
        .iter()
        .map(|line| (line.transaction_id.as_str(), line.amount_usd))
        .collect();
    assert_eq!(
        adjustments,
        [
            ("txn_m", Nanos(5).to_usd()),
            ("txn_h", Nanos(-9).to_usd()),
            ("txn_x", Nanos(-3).to_usd()),
        ]
    );

    assert_eq!(lines.credits, Nanos(12_500_000_005));
    assert_eq!(lines.debits, Nanos(12));
    assert!(lines.usage.is_empty());
}

#[test]
fn usage_without_model_or_tokens() {
    let rows = [charge("txn_1", 1, json!({"tollgate_leg": "usd"}))];
    let lines = sort_rows(WALLET, &rows).expect("rows sort");
    assert_eq!(lines.usage[0].model, UNKNOWN_MODEL);
    assert_eq!(lines.usage[0].figures.requests, 1);
    assert_eq!(lines.usage[0].figures.input_tokens, 0);
}

#[test]
fn foreign_rows_are_rejected() {
    let mut tokens = charge("txn_1", 1, json!({}));
    tokens.currency = "TOKENS".into();
    let unrelated = row("txn_2", "x", WORLD, REVENUE, 1, json!({}));
    for (bad, detail) in [
        (tokens, "is in TOKENS"),
        (unrelated, "not into or out of wallet"),
    ] {
        let error = sort_rows(WALLET, &[bad]).expect_err("row rejected");
        assert!(error.to_string().contains(detail), "{error}");
    }
}
