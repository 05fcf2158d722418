//! The pager against a simulated ledger whose sort breaks ties differently on every call.

use std::cell::Cell;

use chrono::{TimeDelta, TimeZone};
use serde_json::Map;

use super::*;
use crate::ledger::TransactionStatus;

const WALLET: &str = "bln_wallet";

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}

fn row(index: usize, at: DateTime<Utc>) -> Transaction {
    Transaction {
        transaction_id: format!("txn_{index:05}"),
        parent_transaction: String::new(),
        reference: format!("ref-{index}"),
        status: TransactionStatus::Applied,
        precise_amount: 1,
        currency: "USD".into(),
        source: WALLET.into(),
        destination: "bln_revenue".into(),
        description: String::new(),
        created_at: at,
        effective_date: Some(at),
        inflight_expiry_date: None,
        meta_data: Map::new(),
    }
}

/// A ledger that applies the filters like Blnk and orders ties pseudo-randomly per call.
struct Ledger {
    rows: Vec<Transaction>,
    calls: Cell<u64>,
    ignore_filters: bool,
}

impl Ledger {
    fn new(rows: Vec<Transaction>) -> Ledger {
        Ledger {
            rows,
            calls: Cell::new(0),
            ignore_filters: false,
        }
    }

    fn serve(&self, query: &TransactionQuery) -> Vec<Transaction> {
        let call = self.calls.get() + 1;
        self.calls.set(call);
        let mut matched: Vec<Transaction> = self
            .rows
            .iter()
            .filter(|row| {
                self.ignore_filters || query.filters.iter().all(|filter| holds(filter, row))
            })
            .cloned()
            .collect();
        let tie_key = |row: &Transaction| scramble(&row.transaction_id, call);
        match query.sort_by.as_deref() {
            Some("transaction_id") => {
                matched.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id))
            }
            _ => matched.sort_by_key(|row| (row_time(row), tie_key(row))),
        }
        matched
            .into_iter()
            .skip(query.offset as usize)
            .take(query.limit as usize)
            .collect()
    }
}

fn scramble(id: &str, call: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for byte in id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn holds(filter: &Filter, row: &Transaction) -> bool {
    let FilterOperand::Value(value) = &filter.operand else {
        return false;
    };
    let text = value.as_str().unwrap_or_default();
    match filter.field.as_str() {
        "balance_id" => row.source == text || row.destination == text,
        "status" => row.status.as_str() == text,
        "transaction_id" => compare(filter.operator, row.transaction_id.as_str().cmp(text)),
        "effective_date" => {
            let at: DateTime<Utc> = text.parse().expect("filter time parses");
            compare(filter.operator, row_time(row).cmp(&at))
        }
        _ => false,
    }
}

fn compare(operator: FilterOperator, order: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match operator {
        FilterOperator::Gt => order == Greater,
        FilterOperator::Gte => order != Less,
        FilterOperator::Lt => order == Less,
        FilterOperator::Lte => order != Greater,
        FilterOperator::Eq => order == Equal,
        _ => false,
    }
}

fn period_bounds(hours: i64) -> (Bound, Bound) {
    let start = Bound {
        at: base(),
        inclusive: true,
    };
    let end = Bound {
        at: base() + TimeDelta::hours(hours),
        inclusive: false,
    };
    (start, end)
}

fn collect(ledger: &Ledger, start: Bound, end: Bound) -> Result<Vec<Transaction>, PagingError> {
    let mut pager = Pager::new(WALLET, start, end);
    while let Some(query) = pager.next_query() {
        let page = ledger.serve(&query);
        pager.accept(page)?;
        assert!(ledger.calls.get() < 1000, "paging does not end");
    }
    Ok(pager.into_rows())
}

fn sorted_ids(rows: &[Transaction]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|row| row.transaction_id.clone()).collect();
    ids.sort();
    ids
}

/// Builds rows at the given second offsets from the base time, several per offset.
fn rows_at(offsets: &[(i64, usize)]) -> Vec<Transaction> {
    let mut rows = Vec::new();
    for (seconds, count) in offsets {
        for _ in 0..*count {
            let index = rows.len();
            rows.push(row(index, base() + TimeDelta::seconds(*seconds)));
        }
    }
    rows
}

#[test]
fn every_row_read_exactly_once() {
    let cases: &[&[(i64, usize)]] = &[
        &[(10, 1)],
        &[(10, 100)],
        &[(10, 99), (20, 1)],
        &[(10, 3), (11, 3), (12, 3), (13, 3), (14, 3), (15, 200)],
        &[(0, 130), (5, 40), (6, 40), (7, 40), (8, 1)],
        &[(1, 50), (2, 50), (3, 50), (4, 50), (5, 50), (6, 50)],
        &[(59, 250)],
    ];
    for offsets in cases {
        let rows = rows_at(offsets);
        let ledger = Ledger::new(rows.clone());
        let (start, end) = period_bounds(1);
        let collected = collect(&ledger, start, end).expect("paging succeeds");
        assert_eq!(
            sorted_ids(&collected),
            sorted_ids(&rows),
            "offsets {offsets:?}"
        );
    }
}

#[test]
fn bounds_are_respected() {
    let rows = rows_at(&[(-1, 2), (0, 3), (1800, 4), (3600, 5), (3601, 6)]);
    let ledger = Ledger::new(rows);
    let (start, end) = period_bounds(1);
    assert_eq!(collect(&ledger, start, end).expect("paging").len(), 7);

    let moment = Bound {
        at: base() + TimeDelta::hours(1),
        inclusive: true,
    };
    assert_eq!(collect(&ledger, moment, moment).expect("paging").len(), 5);
}

#[test]
fn empty_range_takes_one_query() {
    let ledger = Ledger::new(Vec::new());
    let (start, end) = period_bounds(1);
    assert!(collect(&ledger, start, end).expect("paging").is_empty());
    assert_eq!(ledger.calls.get(), 1);
}

#[test]
fn ignored_filter_is_an_error() {
    let mut ledger = Ledger::new(rows_at(&[(-10, 1), (10, 1)]));
    ledger.ignore_filters = true;
    let (start, end) = period_bounds(1);
    let error = collect(&ledger, start, end).expect_err("row outside the range");
    assert!(matches!(error, PagingError::OutsideRange { .. }), "{error}");
}

#[test]
fn unsorted_page_is_an_error() {
    let mut pager = Pager::new(WALLET, period_bounds(1).0, period_bounds(1).1);
    let page = vec![
        row(1, base() + TimeDelta::seconds(5)),
        row(2, base() + TimeDelta::seconds(1)),
    ];
    assert_eq!(pager.accept(page), Err(PagingError::Unsorted));
}

#[test]
fn repeated_tie_page_is_an_error() {
    let (start, end) = period_bounds(1);
    let mut pager = Pager::new(WALLET, start, end);
    let page: Vec<Transaction> = (0..100).map(|index| row(index, base())).collect();
    pager.accept(page.clone()).expect("first page");
    let query = pager.next_query().expect("a tie query follows");
    assert_eq!(query.sort_by.as_deref(), Some("transaction_id"));
    pager.accept(page.clone()).expect("first tie page");
    let error = pager.accept(page).expect_err("the same page again");
    assert!(matches!(error, PagingError::NoProgress { .. }), "{error}");
}

#[test]
fn queries_match_blnk_filter_syntax() {
    let (start, end) = period_bounds(24);
    let pager = Pager::new(WALLET, start, end);
    let query = pager.next_query().expect("first query");
    let json = serde_json::to_value(&query).expect("query serializes");
    let expected = serde_json::json!({
        "filters": [
            {"field": "balance_id", "operator": "eq", "value": WALLET},
            {"field": "status", "operator": "eq", "value": "APPLIED"},
            {"field": "effective_date", "operator": "gte", "value": "2026-05-01T00:00:00Z"},
            {"field": "effective_date", "operator": "lt", "value": "2026-05-02T00:00:00Z"},
        ],
        "sort_by": "effective_date",
        "sort_order": "asc",
        "limit": 100,
        "offset": 0,
    });
    assert_eq!(json, expected);
}
