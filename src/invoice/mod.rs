//! Invoices and usage reports: what a customer used and paid in a period, read back from the
//! customer's USD wallet in Blnk.
//!
//! Fetching ([`fetch`]) is kept apart from the pure parts: paging ([`pager`]), sorting rows
//! into lines ([`lines`]), building and checking the statement ([`statement`]) and output
//! ([`render`]). The CLI and the admin API both call [`Operations::invoice`] and
//! [`Operations::usage`](crate::customers::Operations::usage).
//!
//! [`Operations::invoice`]: crate::customers::Operations::invoice

mod fetch;
pub mod lines;
pub mod pager;
pub mod period;
pub mod render;
pub mod statement;

pub use lines::{Adjustment, MoneyLine, UsageFigures, UsageLine};
pub use period::{Period, PeriodError};
pub use statement::{Invoice, StatementError, UsageReport};

use crate::customers::OperationError;
use crate::ledger::LedgerError;

/// A failure to produce an invoice or a usage report.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error("failed to list the transactions of wallet {wallet}: {source}")]
    Paging {
        wallet: String,
        source: pager::PagingError,
    },
    #[error(transparent)]
    Statement(#[from] StatementError),
}

impl From<LedgerError> for InvoiceError {
    fn from(error: LedgerError) -> Self {
        InvoiceError::Operation(OperationError::Ledger(error))
    }
}
