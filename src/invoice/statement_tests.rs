use chrono::{TimeDelta, TimeZone};
use rust_decimal::dec;
use serde_json::{Value, json};

use super::*;
use crate::ids::CustomerId;
use crate::ledger::TransactionStatus;

const WALLET: &str = "bln_wallet";

fn period() -> Period {
    let from = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    Period::new(from, from + TimeDelta::days(31)).expect("valid period")
}

fn account(billing: Billing) -> Account {
    Account {
        customer: CustomerId::parse("acme").expect("valid id"),
        usd_balance_id: WALLET.into(),
        tokens_balance_id: "bln_tokens".into(),
        billing,
    }
}

fn row(id: &str, at: DateTime<Utc>, credit: bool, nanos: i128, meta: Value) -> Transaction {
    let (source, destination) = if credit {
        ("bln_world", WALLET)
    } else {
        (WALLET, "bln_revenue")
    };
    Transaction {
        transaction_id: id.into(),
        parent_transaction: String::new(),
        reference: format!("ref-{id}"),
        status: TransactionStatus::Applied,
        precise_amount: nanos,
        currency: "USD".into(),
        source: source.into(),
        destination: destination.into(),
        description: String::new(),
        created_at: at,
        effective_date: Some(at),
        inflight_expiry_date: None,
        meta_data: meta.as_object().cloned().unwrap_or_default(),
    }
}

fn usage(model: &str) -> Value {
    json!({"tollgate_leg": "usd", "model_billed": model, "prompt_tokens": 10, "completion_tokens": 5})
}

/// Builds a postpaid month: a charge at exactly `from` (in the period), a charge and a payment
/// inside it, and a charge at exactly `to` (in the next period).
fn postpaid_month() -> (Vec<Transaction>, Vec<Transaction>) {
    let p = period();
    let rows = vec![
        row("txn_1", p.from, false, 1_000_000_000, usage("alpha")),
        row(
            "txn_2",
            p.from + TimeDelta::days(3),
            false,
            2_500_000_000,
            usage("alpha"),
        ),
        row(
            "txn_3",
            p.from + TimeDelta::days(9),
            true,
            1_000_000_000,
            json!({"tollgate_leg": "payment"}),
        ),
    ];
    let at_end = vec![row("txn_4", p.to, false, 7_000_000_000, usage("beta"))];
    (rows, at_end)
}

#[test]
fn boundary_rows_counted_once() {
    let (rows, at_end) = postpaid_month();
    let account = account(Billing::Postpaid { credit_limit: None });
    // Opening -2 before the period; Blnk's balance at `from` already includes txn_1.
    let input = InvoiceInput {
        account: &account,
        period: period(),
        rows: &rows,
        rows_at_end: &at_end,
        balance_at_from: -3_000_000_000,
        balance_at_to: -11_500_000_000,
    };
    let invoice = build_invoice(&input).expect("invoice balances");
    assert_eq!(invoice.opening_balance_usd, Usd::new(dec!(-2)));
    assert_eq!(invoice.debits_usd, Usd::new(dec!(3.5)));
    assert_eq!(invoice.credits_usd, Usd::new(dec!(1)));
    assert_eq!(invoice.closing_balance_usd, Usd::new(dec!(-4.5)));
    assert_eq!(invoice.amount_due_usd, Some(Usd::new(dec!(4.5))));
    assert_eq!(
        invoice.usage.len(),
        1,
        "the charge at `to` belongs to the next period"
    );
    assert_eq!(invoice.usage_total.requests, 2);
    assert_eq!(invoice.payments.len(), 1);
}

#[test]
fn mismatch_names_both_figures() {
    let (rows, at_end) = postpaid_month();
    let account = account(Billing::Postpaid { credit_limit: None });
    let input = InvoiceInput {
        account: &account,
        period: period(),
        rows: &rows,
        rows_at_end: &at_end,
        balance_at_from: -3_000_000_000,
        balance_at_to: -11_500_000_001,
    };
    let error = build_invoice(&input).expect_err("off by one nano-dollar");
    let message = error.to_string();
    assert!(message.contains("= $-4.5"), "{message}");
    assert!(
        message.contains("closing balance of $-4.500000001"),
        "{message}"
    );
    assert!(message.contains("acme"), "{message}");
}

#[test]
fn amount_due_by_terms() {
    let cases = [
        (Billing::Prepaid, -1_000_000_000, None),
        (
            Billing::Postpaid { credit_limit: None },
            5_000_000_000,
            Some(dec!(0)),
        ),
        (
            Billing::Postpaid {
                credit_limit: Some(Usd::new(dec!(50))),
            },
            -1_234_567_891,
            Some(dec!(1.234567891)),
        ),
    ];
    for (billing, closing, due) in cases {
        let account = account(billing);
        let input = InvoiceInput {
            account: &account,
            period: period(),
            rows: &[],
            rows_at_end: &[],
            balance_at_from: closing,
            balance_at_to: closing,
        };
        let invoice = build_invoice(&input).expect("invoice balances");
        assert_eq!(invoice.amount_due_usd, due.map(Usd::new), "{billing:?}");
        assert_eq!(invoice.closing_balance_usd, Nanos(closing).to_usd());
    }
}

#[test]
fn credit_limit_shown_for_postpaid() {
    let account = account(Billing::Postpaid {
        credit_limit: Some(Usd::new(dec!(500))),
    });
    let input = InvoiceInput {
        account: &account,
        period: period(),
        rows: &[],
        rows_at_end: &[],
        balance_at_from: 0,
        balance_at_to: 0,
    };
    let invoice = build_invoice(&input).expect("invoice balances");
    assert_eq!(invoice.billing, "postpaid");
    assert_eq!(invoice.credit_limit_usd, Some(Usd::new(dec!(500))));
    let json = serde_json::to_value(&invoice).expect("serializes");
    assert_eq!(json["credit_limit_usd"], "500");
    assert_eq!(json["from"], "2026-05-01T00:00:00Z");
    assert_eq!(json["amount_due_usd"], "0");
}

#[test]
fn usage_report_has_lines_only() {
    let (rows, _) = postpaid_month();
    let account = account(Billing::Prepaid);
    let report = build_usage(&account, period(), &rows).expect("usage builds");
    assert_eq!(report.usage.len(), 1);
    assert_eq!(report.usage[0].figures.amount_usd, Usd::new(dec!(3.5)));
    assert_eq!(report.usage_total.input_tokens, 20);
}
