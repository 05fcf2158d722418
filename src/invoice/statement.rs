//! The invoice of one period, built from ledger figures that were already fetched. Pure.
//!
//! Blnk's historical balance at T counts every applied row with an effective date at or
//! before T, so it includes the rows at exactly T. The period is `[from, to)`, so the
//! opening balance is the balance at `from` minus the rows at exactly `from`, and the closing
//! balance is the balance at `to` minus the rows at exactly `to`. The invoice then checks
//! itself: opening + credits - debits must equal closing to the nano-dollar.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lines::{
    Adjustment, Lines, MoneyLine, RowError, UsageFigures, UsageLine, signed_amount, sort_rows,
    usage_total,
};
use super::pager::row_time;
use super::period::Period;
use crate::accounts::{Account, Billing};
use crate::ledger::Transaction;
use crate::money::{Nanos, Usd};

/// A customer's invoice for one period. Amounts are exact to the nano-dollar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub customer_id: String,
    /// The terms when the invoice was computed: `prepaid` or `postpaid`.
    pub billing: String,
    pub credit_limit_usd: Option<Usd>,
    pub usd_balance_id: String,
    /// Start of the period, included.
    pub from: DateTime<Utc>,
    /// End of the period, excluded.
    pub to: DateTime<Utc>,
    pub opening_balance_usd: Usd,
    pub usage: Vec<UsageLine>,
    pub usage_total: UsageFigures,
    pub topups: Vec<MoneyLine>,
    pub payments: Vec<MoneyLine>,
    pub adjustments: Vec<Adjustment>,
    /// Everything credited to the wallet in the period: top-ups, payments, refunds.
    pub credits_usd: Usd,
    /// Everything debited from the wallet in the period.
    pub debits_usd: Usd,
    pub closing_balance_usd: Usd,
    /// The overdraft at the end of the period, for a postpaid customer; `None` for prepaid.
    pub amount_due_usd: Option<Usd>,
}

/// A customer's usage in one period, grouped by billed model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    pub customer_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub usage: Vec<UsageLine>,
    pub usage_total: UsageFigures,
}

/// The ledger figures an invoice is built from.
pub struct InvoiceInput<'a> {
    pub account: &'a Account,
    pub period: Period,
    /// Applied rows of the wallet with `from <= effective date < to`.
    pub rows: &'a [Transaction],
    /// Applied rows of the wallet at exactly `to`.
    pub rows_at_end: &'a [Transaction],
    /// Blnk's historical balance at `from`, in nano-dollars.
    pub balance_at_from: i128,
    /// Blnk's historical balance at `to`, in nano-dollars.
    pub balance_at_to: i128,
}

/// A failure to build an invoice from its figures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error(transparent)]
    Row(#[from] RowError),
    #[error("{0}")]
    Unbalanced(Box<Mismatch>),
}

/// The figures of an invoice that does not balance, all in US dollars.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub customer: String,
    pub period: String,
    pub opening: Usd,
    pub credits: Usd,
    pub debits: Usd,
    /// Opening plus credits minus debits.
    pub computed: Usd,
    /// The closing balance Blnk reports.
    pub closing: Usd,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the invoice of {} for {} does not balance: opening ${} + credits ${} - debits ${} = ${}, \
             but Blnk reports a closing balance of ${}. A transaction may have been posted into the \
             period while the invoice was computed (check the customer's pending outbox entries); \
             compute it again, and if the figures still differ, compare the listing with Blnk's \
             balance history",
            self.customer,
            self.period,
            self.opening,
            self.credits,
            self.debits,
            self.computed,
            self.closing
        )
    }
}

/// Builds and checks the invoice.
pub fn build_invoice(input: &InvoiceInput<'_>) -> Result<Invoice, StatementError> {
    let account = input.account;
    let wallet = account.usd_balance_id.as_str();
    let lines = sort_rows(wallet, input.rows)?;

    let at_from = net_at(wallet, input.rows, input.period.from)?;
    let at_to = net_at(wallet, input.rows_at_end, input.period.to)?;
    let opening = input.balance_at_from - at_from;
    let closing = input.balance_at_to - at_to;
    check_balance(input, &lines, opening, closing)?;

    let credit_limit_usd = match account.billing {
        Billing::Postpaid { credit_limit } => credit_limit,
        Billing::Prepaid => None,
    };
    let amount_due_usd = match account.billing {
        Billing::Postpaid { .. } => Some(Nanos(closing.min(0).saturating_neg()).to_usd()),
        Billing::Prepaid => None,
    };
    Ok(Invoice {
        customer_id: account.customer.to_string(),
        billing: account.billing.as_str().to_string(),
        credit_limit_usd,
        usd_balance_id: account.usd_balance_id.clone(),
        from: input.period.from,
        to: input.period.to,
        opening_balance_usd: Nanos(opening).to_usd(),
        usage_total: usage_total(&lines.usage),
        usage: lines.usage,
        topups: lines.topups,
        payments: lines.payments,
        adjustments: lines.adjustments,
        credits_usd: lines.credits.to_usd(),
        debits_usd: lines.debits.to_usd(),
        closing_balance_usd: Nanos(closing).to_usd(),
        amount_due_usd,
    })
}

/// Builds the usage lines of a period, without balances.
pub fn build_usage(
    account: &Account,
    period: Period,
    rows: &[Transaction],
) -> Result<UsageReport, StatementError> {
    let lines = sort_rows(&account.usd_balance_id, rows)?;
    Ok(UsageReport {
        customer_id: account.customer.to_string(),
        from: period.from,
        to: period.to,
        usage_total: usage_total(&lines.usage),
        usage: lines.usage,
    })
}

fn check_balance(
    input: &InvoiceInput<'_>,
    lines: &Lines,
    opening: i128,
    closing: i128,
) -> Result<(), StatementError> {
    let computed = opening + lines.credits.0 - lines.debits.0;
    if computed == closing {
        return Ok(());
    }
    Err(StatementError::Unbalanced(Box::new(Mismatch {
        customer: input.account.customer.to_string(),
        period: input.period.to_string(),
        opening: Nanos(opening).to_usd(),
        credits: lines.credits.to_usd(),
        debits: lines.debits.to_usd(),
        computed: Nanos(computed).to_usd(),
        closing: Nanos(closing).to_usd(),
    })))
}

/// Sums the net effect on the wallet of the rows at exactly `at`.
fn net_at(wallet: &str, rows: &[Transaction], at: DateTime<Utc>) -> Result<i128, RowError> {
    let mut net = 0;
    for row in rows.iter().filter(|row| row_time(row) == at) {
        net += signed_amount(wallet, row)?;
    }
    Ok(net)
}

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
