//! Sorting a wallet's ledger rows into invoice lines: usage by billed model, top-ups,
//! payments, and any other movement as an adjustment. Pure.
//!
//! A row whose source is the wallet is a debit and a row whose destination is the wallet
//! is a credit. Blnk compensates a failed atomic charge with a refund (reference
//! `<transaction_id>_refund`, queued, and applied by its workers as the row
//! `<transaction_id>_refund_q`) that copies the charge leg's metadata but moves the money
//! back to the wallet. So a refund row with usage metadata counts as minus one request with
//! negative tokens and amount, and within one period the charge and its refund cancel out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::pager::row_time;
use crate::ledger::Transaction;
use crate::money::{Nanos, Usd};

/// Model name shown for a usage row that records no `model_billed`.
const UNKNOWN_MODEL: &str = "(unknown model)";

/// Token counts and amount of a group of usage rows. Counts are signed because a refund
/// in the period can reverse a charge made in an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageFigures {
    pub requests: i64,
    /// Prompt tokens, cached ones included.
    pub input_tokens: i64,
    pub cached_tokens: i64,
    /// Completion tokens, reasoning ones included.
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub amount_usd: Usd,
}

/// Usage of one billed model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    pub model: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// A top-up or a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MoneyLine {
    pub reference: String,
    pub transaction_id: String,
    pub effective_date: DateTime<Utc>,
    pub amount_usd: Usd,
}

/// A movement that is neither usage, a top-up nor a payment, such as a manual correction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    pub reference: String,
    pub transaction_id: String,
    pub effective_date: DateTime<Utc>,
    pub description: String,
    /// Positive for a credit to the wallet, negative for a debit.
    pub amount_usd: Usd,
}

/// A row that does not move money into or out of the invoiced wallet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("transaction {transaction_id} {detail}")]
pub struct RowError {
    pub transaction_id: String,
    pub detail: String,
}

/// The rows of a period sorted into lines, with the totals that move the balance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    pub usage: Vec<UsageLine>,
    pub topups: Vec<MoneyLine>,
    pub payments: Vec<MoneyLine>,
    pub adjustments: Vec<Adjustment>,
    /// Sum of the rows that credit the wallet, in nano-dollars.
    pub credits: Nanos,
    /// Sum of the rows that debit the wallet, in nano-dollars.
    pub debits: Nanos,
}

impl UsageFigures {
    /// Adds one usage row, or subtracts it when `sign` is -1.
    fn add(&mut self, meta: &Map<String, Value>, sign: i64, amount: Nanos) {
        self.requests += sign;
        self.input_tokens += sign * count(meta, "prompt_tokens");
        self.cached_tokens += sign * count(meta, "cached_tokens");
        self.output_tokens += sign * count(meta, "completion_tokens");
        self.reasoning_tokens += sign * count(meta, "reasoning_tokens");
        self.amount_usd = self.amount_usd + amount.to_usd();
    }

    fn merge(&mut self, other: &UsageFigures) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.cached_tokens += other.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.amount_usd = self.amount_usd + other.amount_usd;
    }

    fn is_zero(&self) -> bool {
        *self == UsageFigures::default()
    }
}

/// Sums the figures of every line.
pub fn usage_total(lines: &[UsageLine]) -> UsageFigures {
    let mut total = UsageFigures::default();
    for line in lines {
        total.merge(&line.figures);
    }
    total
}

/// Sorts the rows of `wallet` into lines. Usage lines come sorted by model, and a model
/// whose rows cancel out completely is left out.
pub fn sort_rows(wallet: &str, rows: &[Transaction]) -> Result<Lines, RowError> {
    let mut lines = Lines::default();
    let mut usage: BTreeMap<String, UsageFigures> = BTreeMap::new();
    let mut credits: i128 = 0;
    let mut debits: i128 = 0;

    for row in rows {
        let signed = signed_amount(wallet, row)?;
        let amount = Nanos(signed.abs());
        if signed >= 0 {
            credits += signed;
        } else {
            debits -= signed;
        }

        let leg = row.meta_data.get("tollgate_leg").and_then(Value::as_str);
        let is_credit = signed >= 0;
        match (leg, is_credit, is_refund(row)) {
            (Some("usd"), false, false) | (Some("usd"), true, true) => {
                let sign = if is_credit { -1 } else { 1 };
                let model = model_of(&row.meta_data);
                let figures = usage.entry(model).or_default();
                figures.add(&row.meta_data, sign, Nanos(-signed));
            }
            (Some("topup"), true, false) => lines.topups.push(money_line(row, amount)),
            (Some("payment"), true, false) => lines.payments.push(money_line(row, amount)),
            _ => lines.adjustments.push(adjustment(row, signed)),
        }
    }

    lines.usage = usage
        .into_iter()
        .filter(|(_, figures)| !figures.is_zero())
        .map(|(model, figures)| UsageLine { model, figures })
        .collect();
    lines.credits = Nanos(credits);
    lines.debits = Nanos(debits);
    Ok(lines)
}

/// Returns the row's effect on the wallet: positive for a credit, negative for a debit.
pub fn signed_amount(wallet: &str, row: &Transaction) -> Result<i128, RowError> {
    let error = |detail: String| RowError {
        transaction_id: row.transaction_id.clone(),
        detail,
    };
    if row.currency != "USD" {
        return Err(error(format!("is in {}, not USD", row.currency)));
    }
    if row.precise_amount < 0 {
        return Err(error(format!(
            "has a negative amount {}",
            row.precise_amount
        )));
    }
    if row.source == wallet {
        Ok(-row.precise_amount)
    } else if row.destination == wallet {
        Ok(row.precise_amount)
    } else {
        Err(error(format!(
            "moves money from {} to {}, not into or out of wallet {wallet}",
            row.source, row.destination
        )))
    }
}

/// Returns whether the row is Blnk's compensation of another transaction: `<transaction_id>_refund`,
/// or `<transaction_id>_refund_q` for the applied row of a queued refund.
fn is_refund(row: &Transaction) -> bool {
    let reference = row.reference.as_str();
    reference.starts_with("txn_")
        && (reference.ends_with("_refund") || reference.ends_with("_refund_q"))
}

fn model_of(meta: &Map<String, Value>) -> String {
    meta.get("model_billed")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .unwrap_or(UNKNOWN_MODEL)
        .to_string()
}

/// Reads a token count written as a JSON integer; an absent count is zero.
fn count(meta: &Map<String, Value>, key: &str) -> i64 {
    meta.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn money_line(row: &Transaction, amount: Nanos) -> MoneyLine {
    MoneyLine {
        reference: row.reference.clone(),
        transaction_id: row.transaction_id.clone(),
        effective_date: row_time(row),
        amount_usd: amount.to_usd(),
    }
}

fn adjustment(row: &Transaction, signed: i128) -> Adjustment {
    Adjustment {
        reference: row.reference.clone(),
        transaction_id: row.transaction_id.clone(),
        effective_date: row_time(row),
        description: row.description.clone(),
        amount_usd: Nanos(signed).to_usd(),
    }
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
