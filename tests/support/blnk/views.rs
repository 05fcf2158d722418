//! Read-only copies of the fake's rows, for tests that inspect the ledger directly.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::records::{Balance, Txn};

/// Status of a transaction row, as Blnk stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    Queued,
    Applied,
    Inflight,
    Void,
    Rejected,
}

/// A copy of a balance. Figures are integers in the minor units the writers used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceView {
    pub balance_id: String,
    pub ledger_id: String,
    pub identity_id: String,
    pub indicator: Option<String>,
    pub currency: String,
    pub balance: i128,
    pub credit_balance: i128,
    pub debit_balance: i128,
    pub inflight_balance: i128,
    pub inflight_credit_balance: i128,
    pub inflight_debit_balance: i128,
    pub meta_data: Map<String, Value>,
    pub version: u64,
}

/// A transaction row.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnView {
    pub transaction_id: String,
    pub parent_transaction: String,
    pub reference: String,
    pub status: TxnStatus,
    pub source: String,
    pub destination: String,
    pub currency: String,
    pub precise_amount: i128,
    pub precision: u64,
    pub description: String,
    pub meta_data: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub effective_date: DateTime<Utc>,
    pub inflight_expiry_date: Option<DateTime<Utc>>,
}

impl TxnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Queued => "QUEUED",
            TxnStatus::Applied => "APPLIED",
            TxnStatus::Inflight => "INFLIGHT",
            TxnStatus::Void => "VOID",
            TxnStatus::Rejected => "REJECTED",
        }
    }
}

impl fmt::Display for TxnStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl BalanceView {
    /// Funds a new debit may use without overdraft: balance less open holds.
    pub fn available(&self) -> i128 {
        self.balance - self.inflight_debit_balance
    }
}

impl From<&Balance> for BalanceView {
    fn from(balance: &Balance) -> BalanceView {
        BalanceView {
            balance_id: balance.id.clone(),
            ledger_id: balance.ledger_id.clone(),
            identity_id: balance.identity_id.clone(),
            indicator: balance.indicator.clone(),
            currency: balance.currency.clone(),
            balance: balance.balance(),
            credit_balance: balance.credit,
            debit_balance: balance.debit,
            inflight_balance: balance.inflight_balance(),
            inflight_credit_balance: balance.inflight_credit,
            inflight_debit_balance: balance.inflight_debit,
            meta_data: balance.meta.clone().unwrap_or_default(),
            version: balance.version,
        }
    }
}

impl From<&Txn> for TxnView {
    fn from(txn: &Txn) -> TxnView {
        TxnView {
            transaction_id: txn.id.clone(),
            parent_transaction: txn.parent.clone(),
            reference: txn.reference.clone(),
            status: txn.status,
            source: txn.source.clone(),
            destination: txn.destination.clone(),
            currency: txn.currency.clone(),
            precise_amount: txn.precise,
            precision: txn.precision,
            description: txn.description.clone(),
            meta_data: txn.meta.clone(),
            created_at: txn.created_at,
            effective_date: txn.effective_date,
            inflight_expiry_date: txn.expiry,
        }
    }
}
