//! Paging through every transaction of one balance in a time range, without relying on a
//! stable sort.
//!
//! Blnk's `POST /transactions/filter` returns at most 100 rows a page and sorts without a
//! tie-breaker, so offset paging can skip or repeat rows that share a timestamp. The pager
//! instead moves a time window: each query requests the rows at or after the latest time
//! seen so far, and rows that come back twice are dropped by `transaction_id`. When one
//! full page contains a single timestamp, the window cannot move, so the rows at that
//! timestamp are read by `transaction_id` order, each query starting after the last id seen.
//!
//! The pager only builds queries and reads pages; the caller sends them. That keeps the
//! paging rules testable without a server.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::period::format_time;
use crate::ledger::{
    Filter, FilterOperand, FilterOperator, MAX_PAGE_SIZE, SortOrder, Transaction, TransactionQuery,
};

/// One end of a time range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub at: DateTime<Utc>,
    pub inclusive: bool,
}

/// A listing that cannot be trusted or cannot make progress.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagingError {
    #[error(
        "Blnk returned transaction {transaction_id} at {at}, outside the requested range; \
         the ledger ignored a filter, so the listing cannot be trusted"
    )]
    OutsideRange { transaction_id: String, at: String },
    #[error(
        "Blnk returned a page that is not sorted by effective_date; the ledger may not \
         support sorting by it, so the listing cannot be trusted"
    )]
    Unsorted,
    #[error(
        "Blnk returned the same full page of transactions at {at} twice, so it ignored the \
         transaction_id filter and paging cannot make progress"
    )]
    NoProgress { at: String },
}

/// Returns the time a transaction counts at: its effective date, or its creation time when it has
/// none. Blnk's historical balances use the same rule.
pub fn row_time(row: &Transaction) -> DateTime<Utc> {
    row.effective_date.unwrap_or(row.created_at)
}

/// Collects the `APPLIED` rows of one balance between two bounds.
#[derive(Debug)]
pub struct Pager {
    balance_id: String,
    end: Bound,
    stage: Stage,
    seen: HashSet<String>,
    rows: Vec<Transaction>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Rows from `start` to the end, by effective date.
    Window {
        start: Bound,
    },
    /// Rows at exactly `at`, by transaction id, after `after` when set.
    Tie {
        at: DateTime<Utc>,
        after: Option<String>,
    },
    Done,
}

impl Pager {
    pub fn new(balance_id: &str, start: Bound, end: Bound) -> Pager {
        Pager {
            balance_id: balance_id.to_string(),
            end,
            stage: Stage::Window { start },
            seen: HashSet::new(),
            rows: Vec::new(),
        }
    }

    /// Builds the next query to send, or `None` once every row has been read.
    pub fn next_query(&self) -> Option<TransactionQuery> {
        let mut filters = vec![
            Filter::eq("balance_id", self.balance_id.as_str()),
            Filter::eq("status", "APPLIED"),
        ];
        let sort_by = match &self.stage {
            Stage::Window { start } => {
                filters.push(lower_filter(*start));
                filters.push(upper_filter(self.end));
                "effective_date"
            }
            Stage::Tie { at, after } => {
                filters.push(Filter::gte("effective_date", format_time(*at)));
                filters.push(time_filter(FilterOperator::Lte, *at));
                if let Some(after) = after {
                    let operand = FilterOperand::Value(Value::from(after.as_str()));
                    filters.push(Filter::new("transaction_id", FilterOperator::Gt, operand));
                }
                "transaction_id"
            }
            Stage::Done => return None,
        };
        Some(TransactionQuery {
            filters,
            sort_by: Some(sort_by.to_string()),
            sort_order: Some(SortOrder::Asc),
            limit: MAX_PAGE_SIZE,
            offset: 0,
        })
    }

    /// Reads the response to the last query and decides the next one.
    pub fn accept(&mut self, page: Vec<Transaction>) -> Result<(), PagingError> {
        let full = page.len() >= MAX_PAGE_SIZE as usize;
        match self.stage.clone() {
            Stage::Window { start } => self.accept_window(start, page, full),
            Stage::Tie { at, after } => self.accept_tie(at, after, page, full),
            Stage::Done => Ok(()),
        }
    }

    /// Returns every row read, each once, in the order first seen.
    pub fn into_rows(self) -> Vec<Transaction> {
        self.rows
    }

    fn accept_window(
        &mut self,
        start: Bound,
        page: Vec<Transaction>,
        full: bool,
    ) -> Result<(), PagingError> {
        for row in &page {
            check_inside(row, start, self.end)?;
        }
        let times: Vec<DateTime<Utc>> = page.iter().map(row_time).collect();
        if times.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err(PagingError::Unsorted);
        }
        let first = times.first().copied();
        let last = times.last().copied();
        self.keep(page);

        self.stage = match (full, first, last) {
            (true, Some(first), Some(last)) if first == last => Stage::Tie {
                at: last,
                after: None,
            },
            // The last time is later than the start, so the window moves forward.
            (true, Some(_), Some(last)) => Stage::Window {
                start: Bound {
                    at: last,
                    inclusive: true,
                },
            },
            _ => Stage::Done,
        };
        Ok(())
    }

    fn accept_tie(
        &mut self,
        at: DateTime<Utc>,
        after: Option<String>,
        page: Vec<Transaction>,
        full: bool,
    ) -> Result<(), PagingError> {
        let moment = Bound {
            at,
            inclusive: true,
        };
        for row in &page {
            check_inside(row, moment, moment)?;
        }
        let last_id = page.last().map(|row| row.transaction_id.clone());
        self.keep(page);

        self.stage = match last_id {
            Some(last_id) if full => {
                // Each query requests ids after the last one, so the same last id means
                // Blnk ignored that filter.
                if after.as_deref() == Some(last_id.as_str()) {
                    return Err(PagingError::NoProgress {
                        at: format_time(at),
                    });
                }
                Stage::Tie {
                    at,
                    after: Some(last_id),
                }
            }
            _ => Stage::Window {
                start: Bound {
                    at,
                    inclusive: false,
                },
            },
        };
        Ok(())
    }

    /// Stores the rows not seen before.
    fn keep(&mut self, page: Vec<Transaction>) {
        for row in page {
            if self.seen.insert(row.transaction_id.clone()) {
                self.rows.push(row);
            }
        }
    }
}

fn lower_filter(start: Bound) -> Filter {
    let operator = if start.inclusive {
        FilterOperator::Gte
    } else {
        FilterOperator::Gt
    };
    time_filter(operator, start.at)
}

fn upper_filter(end: Bound) -> Filter {
    let operator = if end.inclusive {
        FilterOperator::Lte
    } else {
        FilterOperator::Lt
    };
    time_filter(operator, end.at)
}

fn time_filter(operator: FilterOperator, at: DateTime<Utc>) -> Filter {
    let operand = FilterOperand::Value(Value::from(format_time(at)));
    Filter::new("effective_date", operator, operand)
}

fn check_inside(row: &Transaction, start: Bound, end: Bound) -> Result<(), PagingError> {
    let at = row_time(row);
    let after_start = at > start.at || (start.inclusive && at == start.at);
    let before_end = at < end.at || (end.inclusive && at == end.at);
    if after_start && before_end {
        Ok(())
    } else {
        Err(PagingError::OutsideRange {
            transaction_id: row.transaction_id.clone(),
            at: format_time(at),
        })
    }
}

#[cfg(test)]
#[path = "pager_tests.rs"]
mod tests;
