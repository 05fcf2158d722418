//! Calls that move money: transactions, bulks, holds, and reading transactions back.

use http::Method;

use super::requests::{InflightUpdate, MAX_PAGE_SIZE};
use super::{
    BlnkClient, BulkResult, LedgerError, NewBulk, NewTransaction, Transaction, TransactionQuery,
    VoidOutcome,
};

impl BlnkClient {
    /// Applies one transaction, or creates a hold when `txn.inflight` is set. On success the
    /// row is written as `APPLIED` or `INFLIGHT`. On failure nothing is written, so the same
    /// reference can be sent again.
    pub async fn post_transaction(&self, txn: &NewTransaction) -> Result<Transaction, LedgerError> {
        let url = self.transactions_url();
        self.send("post_transaction", Method::POST, url, txn).await
    }

    /// Applies the legs of `bulk` in order. The result names the batch but not the legs: find
    /// them with a filter on `parent_transaction` equal to `batch_id`.
    ///
    /// When an atomic bulk fails after some legs applied, those legs stay applied until
    /// Blnk's workers apply their refund transactions, about a second later.
    pub async fn post_bulk(&self, bulk: &NewBulk) -> Result<BulkResult, LedgerError> {
        const OPERATION: &str = "post_bulk";
        bulk.check().map_err(|detail| LedgerError::InvalidRequest {
            operation: OPERATION,
            detail,
        })?;
        let url = self.bulk_url();
        self.send(OPERATION, Method::POST, url, bulk).await
    }

    /// Releases what is left of a hold. A hold voided before (also by expiry) or committed
    /// in full is reported as such rather than as an error, so a retried void is harmless.
    pub async fn void_inflight(&self, transaction_id: &str) -> Result<VoidOutcome, LedgerError> {
        const OPERATION: &str = "void_inflight";
        let url = self.url(OPERATION, &["transactions", "inflight", transaction_id])?;
        let body = InflightUpdate {
            status: "void",
            precise_amount: None,
            skip_queue: true,
        };
        match self.send(OPERATION, Method::PUT, url, &body).await {
            Ok(child) => Ok(VoidOutcome::Voided(Box::new(child))),
            Err(LedgerError::AlreadyVoided) => Ok(VoidOutcome::AlreadyVoided),
            Err(LedgerError::AlreadyCommitted) => Ok(VoidOutcome::AlreadyCommitted),
            Err(error) => Err(error),
        }
    }

    /// Commits `precise_amount` minor units of a hold, or everything still held when `None`,
    /// and returns the `APPLIED` child row. Blnk does not re-check funds on commit and
    /// rejects an amount above what is still held. A retried partial commit commits again:
    /// list the hold's `APPLIED` children before retrying.
    pub async fn commit_inflight(
        &self,
        transaction_id: &str,
        precise_amount: Option<i128>,
    ) -> Result<Transaction, LedgerError> {
        const OPERATION: &str = "commit_inflight";
        let url = self.url(OPERATION, &["transactions", "inflight", transaction_id])?;
        let body = InflightUpdate {
            status: "commit",
            precise_amount,
            skip_queue: true,
        };
        self.send(OPERATION, Method::PUT, url, &body).await
    }

    pub async fn get_transaction(&self, transaction_id: &str) -> Result<Transaction, LedgerError> {
        const OPERATION: &str = "get_transaction";
        let url = self.url(OPERATION, &["transactions", transaction_id])?;
        self.get(OPERATION, url).await
    }

    /// Finds the transaction with `reference`, or `None` when Blnk has none.
    pub async fn transaction_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<Transaction>, LedgerError> {
        const OPERATION: &str = "transaction_by_reference";
        let url = self.url(OPERATION, &["transactions", "reference", reference])?;
        match self.get(OPERATION, url).await {
            Ok(transaction) => Ok(Some(transaction)),
            Err(LedgerError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Returns one page of transactions matching every filter of `query`.
    pub async fn filter_transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Vec<Transaction>, LedgerError> {
        const OPERATION: &str = "filter_transactions";
        if query.limit == 0 || query.limit > MAX_PAGE_SIZE {
            return Err(LedgerError::InvalidRequest {
                operation: OPERATION,
                detail: format!(
                    "limit {} is outside 1..={MAX_PAGE_SIZE}, and Blnk would replace it with its default of 20",
                    query.limit
                ),
            });
        }
        let url = self.transactions_filter_url();
        let page: Option<Vec<Transaction>> = self.send(OPERATION, Method::POST, url, query).await?;
        Ok(page.unwrap_or_default())
    }
}
