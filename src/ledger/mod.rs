//! A client of the Blnk ledger's HTTP API: transport, request and response types, and error
//! mapping. Billing decisions (what to charge, when to hold, how to retry) belong to callers.
//!
//! Facts about Blnk (0.15.1 and later, tolerating older servers where noted) that shape this
//! module:
//! - Amounts are integers in minor units, in requests and responses alike, and balances can
//!   exceed 2^53 and 2^64. They are `i128` here and never pass through `f64`.
//! - A transaction without `skip_queue: true` is only queued: Blnk returns 201 before any
//!   funds check and never reports a later rejection to the caller. Every transaction, bulk, commit and
//!   void sent from here carries `skip_queue: true`.
//! - Errors carry `error_detail.code` from 0.15.0 on; older servers send only a message, and
//!   [`LedgerError`] reads the cause from either.

mod accounts;
mod client;
mod error;
mod model;
mod requests;
mod transactions;
mod uri;
mod wire;

pub use client::BlnkClient;
pub use error::LedgerError;
pub use model::{
    Balance, BulkResult, HistoricalBalance, Identity, Ledger, Transaction, TransactionStatus,
    VoidOutcome,
};
pub use requests::{
    Filter, FilterOperand, FilterOperator, MAX_PAGE_SIZE, NewBalance, NewBulk, NewIdentity,
    NewTransaction, SortOrder, TransactionQuery,
};
