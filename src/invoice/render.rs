//! Invoice output: a text table for people (amounts rounded to cents) and CSV with exact
//! amounts for spreadsheets. JSON is the serde form of [`Invoice`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rust_decimal::RoundingStrategy;

use super::lines::{MoneyLine, UsageFigures};
use super::period::format_time;
use super::statement::Invoice;
use crate::money::Usd;

/// Column names of the CSV form.
const CSV_HEADER: [&str; 10] = [
    "section",
    "name",
    "requests",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "amount_usd",
    "effective_date",
    "transaction_id",
];

const USAGE_HEADER: [&str; 7] = [
    "model",
    "requests",
    "input",
    "cached",
    "output",
    "reasoning",
    "amount",
];

/// Renders the invoice as a text table. Amounts are rounded to cents, half away from zero.
pub fn table(invoice: &Invoice) -> String {
    let mut out = String::new();
    let terms = match (&invoice.billing[..], invoice.credit_limit_usd) {
        ("postpaid", Some(limit)) => format!("postpaid, credit limit {}", cents(limit)),
        ("postpaid", None) => "postpaid, no credit limit".to_string(),
        (other, _) => other.to_string(),
    };
    let _ = writeln!(out, "Invoice for {} ({terms})", invoice.customer_id);
    let _ = writeln!(
        out,
        "Period   {} to {} (end excluded)",
        format_time(invoice.from),
        format_time(invoice.to)
    );
    let _ = writeln!(out, "Wallet   {}", invoice.usd_balance_id);
    out.push('\n');

    let _ = writeln!(
        out,
        "Opening balance  {:>14}",
        cents(invoice.opening_balance_usd)
    );
    out.push('\n');
    usage_section(&mut out, invoice);
    money_section(&mut out, "Top-ups", &invoice.topups);
    money_section(&mut out, "Payments", &invoice.payments);
    adjustments_section(&mut out, invoice);

    let mut totals = vec![
        ("Credits", invoice.credits_usd),
        ("Debits", invoice.debits_usd),
        ("Closing balance", invoice.closing_balance_usd),
    ];
    if let Some(due) = invoice.amount_due_usd {
        totals.push(("Amount due", due));
    }
    for (label, amount) in totals {
        let _ = writeln!(out, "{label:<16} {:>14}", cents(amount));
    }
    out.push('\n');
    out.push_str("Amounts are rounded to cents; --format json or csv gives them exactly.\n");
    out
}

/// Renders the invoice as CSV (RFC 4180) with exact amounts, one row per line item.
pub fn csv(invoice: &Invoice) -> String {
    let mut rows: Vec<Vec<String>> = vec![CSV_HEADER.iter().map(|name| name.to_string()).collect()];
    let named = |section: &str, name: String| {
        let mut row = vec![String::new(); CSV_HEADER.len()];
        row[0] = section.to_string();
        row[1] = name;
        row
    };
    rows.push(named("customer", invoice.customer_id.clone()));
    rows.push(named("billing", invoice.billing.clone()));
    rows.push(named("from", format_time(invoice.from)));
    rows.push(named("to", format_time(invoice.to)));
    rows.push(amount_row("opening_balance", invoice.opening_balance_usd));
    for line in &invoice.usage {
        rows.push(usage_row("usage", &line.model, &line.figures));
    }
    rows.push(usage_row("usage_total", "", &invoice.usage_total));
    for line in &invoice.topups {
        rows.push(money_row("topup", line));
    }
    for line in &invoice.payments {
        rows.push(money_row("payment", line));
    }
    for line in &invoice.adjustments {
        let mut row = amount_row("adjustment", line.amount_usd);
        row[1] = line.reference.clone();
        row[8] = format_time(line.effective_date);
        row[9] = line.transaction_id.clone();
        rows.push(row);
    }
    rows.push(amount_row("credits", invoice.credits_usd));
    rows.push(amount_row("debits", invoice.debits_usd));
    rows.push(amount_row("closing_balance", invoice.closing_balance_usd));
    if let Some(due) = invoice.amount_due_usd {
        rows.push(amount_row("amount_due", due));
    }

    let mut out = String::new();
    for row in rows {
        let fields: Vec<String> = row.iter().map(|field| csv_field(field)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Formats an amount in dollars rounded to cents, such as `$12.50` or `-$0.01`.
pub fn cents(amount: Usd) -> String {
    let mut rounded = amount
        .as_decimal()
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    if rounded.is_sign_negative() && !rounded.is_zero() {
        format!("-${}", rounded.abs())
    } else {
        format!("${}", rounded.abs())
    }
}

fn usage_section(out: &mut String, invoice: &Invoice) {
    out.push_str("Usage\n");
    if invoice.usage.is_empty() {
        out.push_str("  (none)\n\n");
        return;
    }
    let mut rows: Vec<Vec<String>> =
        vec![USAGE_HEADER.iter().map(|name| name.to_string()).collect()];
    for line in &invoice.usage {
        rows.push(usage_cells(&line.model, &line.figures));
    }
    rows.push(usage_cells("total", &invoice.usage_total));
    write_columns(out, &rows, 1);
    out.push('\n');
}

fn money_section(out: &mut String, title: &str, lines: &[MoneyLine]) {
    let _ = writeln!(out, "{title}");
    if lines.is_empty() {
        out.push_str("  (none)\n\n");
        return;
    }
    let mut rows = vec![vec![
        "date".to_string(),
        "reference".to_string(),
        "amount".to_string(),
    ]];
    for line in lines {
        rows.push(vec![
            table_time(line.effective_date),
            line.reference.clone(),
            cents(line.amount_usd),
        ]);
    }
    write_columns(out, &rows, 2);
    out.push('\n');
}

fn adjustments_section(out: &mut String, invoice: &Invoice) {
    if invoice.adjustments.is_empty() {
        return;
    }
    out.push_str("Other movements\n");
    let mut rows = vec![vec![
        "date".to_string(),
        "reference".to_string(),
        "amount".to_string(),
    ]];
    for line in &invoice.adjustments {
        rows.push(vec![
            table_time(line.effective_date),
            line.reference.clone(),
            cents(line.amount_usd),
        ]);
    }
    write_columns(out, &rows, 2);
    out.push('\n');
}

/// Formats a time to the second for the table, while JSON and CSV keep every digit.
fn table_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn usage_cells(model: &str, figures: &UsageFigures) -> Vec<String> {
    vec![
        model.to_string(),
        figures.requests.to_string(),
        figures.input_tokens.to_string(),
        figures.cached_tokens.to_string(),
        figures.output_tokens.to_string(),
        figures.reasoning_tokens.to_string(),
        cents(figures.amount_usd),
    ]
}

/// Writes rows as indented columns: the first `left` columns left-aligned, the others
/// right-aligned.
fn write_columns(out: &mut String, rows: &[Vec<String>], left: usize) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        out.push_str("  ");
        for (column, cell) in row.iter().enumerate() {
            let width = widths[column];
            if column > 0 {
                out.push_str("  ");
            }
            if column < left {
                let _ = write!(out, "{cell:<width$}");
            } else {
                let _ = write!(out, "{cell:>width$}");
            }
        }
        out.push('\n');
    }
}

fn amount_row(section: &str, amount: Usd) -> Vec<String> {
    let mut row = vec![String::new(); CSV_HEADER.len()];
    row[0] = section.to_string();
    row[7] = amount.to_string();
    row
}

fn usage_row(section: &str, model: &str, figures: &UsageFigures) -> Vec<String> {
    let mut row = amount_row(section, figures.amount_usd);
    row[1] = model.to_string();
    row[2] = figures.requests.to_string();
    row[3] = figures.input_tokens.to_string();
    row[4] = figures.cached_tokens.to_string();
    row[5] = figures.output_tokens.to_string();
    row[6] = figures.reasoning_tokens.to_string();
    row
}

fn money_row(section: &str, line: &MoneyLine) -> Vec<String> {
    let mut row = amount_row(section, line.amount_usd);
    row[1] = line.reference.clone();
    row[8] = format_time(line.effective_date);
    row[9] = line.transaction_id.clone();
    row
}

/// Quotes a field that contains a comma, a quote or a line break, doubling inner quotes.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
