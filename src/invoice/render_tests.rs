use chrono::{TimeZone, Utc};
use rust_decimal::dec;

use super::*;
use crate::invoice::lines::{Adjustment, UsageLine};

fn usd(value: rust_decimal::Decimal) -> Usd {
    Usd::new(value)
}

fn sample() -> Invoice {
    let from = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    let to = Utc
        .with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    let paid_at = Utc
        .with_ymd_and_hms(2026, 5, 20, 9, 30, 0)
        .single()
        .expect("valid time");
    let alpha = UsageFigures {
        requests: 2,
        input_tokens: 1500,
        cached_tokens: 400,
        output_tokens: 300,
        reasoning_tokens: 0,
        amount_usd: usd(dec!(0.0048)),
    };
    Invoice {
        customer_id: "acme".into(),
        billing: "postpaid".into(),
        credit_limit_usd: Some(usd(dec!(500))),
        usd_balance_id: "bln_wallet".into(),
        from,
        to,
        opening_balance_usd: usd(dec!(-2.005)),
        usage: vec![UsageLine {
            model: "alpha".into(),
            figures: alpha.clone(),
        }],
        usage_total: alpha,
        topups: Vec::new(),
        payments: vec![MoneyLine {
            reference: "tg:pay:acme:inv,7".into(),
            transaction_id: "txn_p".into(),
            effective_date: paid_at,
            amount_usd: usd(dec!(1)),
        }],
        adjustments: vec![Adjustment {
            reference: "fix \"a\"".into(),
            transaction_id: "txn_m".into(),
            effective_date: paid_at,
            description: String::new(),
            amount_usd: usd(dec!(-0.000000001)),
        }],
        credits_usd: usd(dec!(1)),
        debits_usd: usd(dec!(0.004800001)),
        closing_balance_usd: usd(dec!(-1.009800001)),
        amount_due_usd: Some(usd(dec!(1.009800001))),
    }
}

#[test]
fn cents_round_half_away_from_zero() {
    let cases = [
        (dec!(0), "$0.00"),
        (dec!(12.5), "$12.50"),
        (dec!(0.005), "$0.01"),
        (dec!(0.004999999), "$0.00"),
        (dec!(-0.005), "-$0.01"),
        (dec!(-0.004), "$0.00"),
        (dec!(-2.005), "-$2.01"),
        (dec!(1234567.891), "$1234567.89"),
    ];
    for (value, expected) in cases {
        assert_eq!(cents(usd(value)), expected, "{value}");
    }
}

#[test]
fn table_shows_every_section() {
    let text = table(&sample());
    let expected = [
        "Invoice for acme (postpaid, credit limit $500.00)",
        "Period   2026-05-01T00:00:00Z to 2026-06-01T00:00:00Z (end excluded)",
        "Opening balance          -$2.01",
        "  model  requests  input  cached  output  reasoning  amount",
        "  alpha         2   1500     400     300          0   $0.00",
        "  total         2   1500     400     300          0   $0.00",
        "  2026-05-20 09:30:00  tg:pay:acme:inv,7   $1.00",
        "  2026-05-20 09:30:00  fix \"a\"     $0.00",
        "Top-ups\n  (none)",
        "Other movements",
        "Closing balance          -$1.01",
        "Amount due                $1.01",
        "rounded to cents",
    ];
    for line in expected {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn csv_is_exact_and_quoted() {
    let text = csv(&sample());
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "section,name,requests,input_tokens,cached_tokens,output_tokens,reasoning_tokens,amount_usd,effective_date,transaction_id"
    );
    let expected = [
        "customer,acme,,,,,,,,",
        "opening_balance,,,,,,,-2.005,,",
        "usage,alpha,2,1500,400,300,0,0.0048,,",
        "usage_total,,2,1500,400,300,0,0.0048,,",
        "payment,\"tg:pay:acme:inv,7\",,,,,,1,2026-05-20T09:30:00Z,txn_p",
        "adjustment,\"fix \"\"a\"\"\",,,,,,-0.000000001,2026-05-20T09:30:00Z,txn_m",
        "closing_balance,,,,,,,-1.009800001,,",
        "amount_due,,,,,,,1.009800001,,",
    ];
    for line in expected {
        assert!(lines.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("\r\n"));
}
