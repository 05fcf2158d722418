//! Calls on ledgers, identities and balances: the records that hold customers' money.

use chrono::{DateTime, SecondsFormat, Utc};
use http::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::HistoricalBalanceBody;
use super::requests::{FilterRequest, MAX_PAGE_SIZE, MetaDataUpdate, NewLedger, SortOrder};
use super::wire::deserialize_meta_data;
use super::{
    Balance, BlnkClient, Filter, HistoricalBalance, Identity, Ledger, LedgerError, NewBalance,
    NewIdentity,
};

/// The body of `POST /{id}/metadata`: the merged metadata.
#[derive(Deserialize)]
struct MetaDataBody {
    #[serde(default, deserialize_with = "deserialize_meta_data")]
    meta_data: Map<String, Value>,
}

impl BlnkClient {
    /// Checks that Blnk responds to `GET /health` with a 2xx status.
    pub async fn health(&self) -> Result<(), LedgerError> {
        self.get_bytes("health", self.health_url()).await?;
        Ok(())
    }

    /// Finds the oldest ledger named exactly `name`. Blnk does not keep ledger names unique,
    /// so a second create with the same name makes a second ledger.
    pub async fn find_ledger(&self, name: &str) -> Result<Option<Ledger>, LedgerError> {
        const OPERATION: &str = "find_ledger";
        let url = self.url(OPERATION, &["ledgers", "filter"])?;
        let filters = [Filter::eq("name", name)];
        let body = FilterRequest {
            filters: &filters,
            sort_by: Some("created_at"),
            sort_order: Some(SortOrder::Asc),
            limit: MAX_PAGE_SIZE,
        };
        let ledgers: Option<Vec<Ledger>> = self.send(OPERATION, Method::POST, url, &body).await?;
        Ok(ledgers.unwrap_or_default().into_iter().next())
    }

    pub async fn create_ledger(
        &self,
        name: &str,
        meta: Map<String, Value>,
    ) -> Result<Ledger, LedgerError> {
        const OPERATION: &str = "create_ledger";
        let url = self.url(OPERATION, &["ledgers"])?;
        let body = NewLedger {
            name,
            meta_data: &meta,
        };
        self.send(OPERATION, Method::POST, url, &body).await
    }

    /// Creates an identity. With a caller-chosen `identity_id` that exists already, this
    /// fails with [`LedgerError::AlreadyExists`]. Read the existing one with
    /// [`BlnkClient::get_identity`].
    pub async fn create_identity(&self, identity: &NewIdentity) -> Result<Identity, LedgerError> {
        const OPERATION: &str = "create_identity";
        let url = self.url(OPERATION, &["identities"])?;
        self.send(OPERATION, Method::POST, url, identity).await
    }

    pub async fn get_identity(&self, id: &str) -> Result<Identity, LedgerError> {
        const OPERATION: &str = "get_identity";
        let url = self.url(OPERATION, &["identities", id])?;
        self.get(OPERATION, url).await
    }

    pub async fn create_balance(&self, balance: &NewBalance) -> Result<Balance, LedgerError> {
        const OPERATION: &str = "create_balance";
        let url = self.url(OPERATION, &["balances"])?;
        self.send(OPERATION, Method::POST, url, balance).await
    }

    pub async fn get_balance(&self, id: &str) -> Result<Balance, LedgerError> {
        const OPERATION: &str = "get_balance";
        let url = self.url(OPERATION, &["balances", id])?;
        self.get(OPERATION, url).await
    }

    /// Lists up to [`MAX_PAGE_SIZE`] balances matching every filter, such as
    /// `meta_data.customer_id eq ...`. Blnk returns `null` when nothing matches, which
    /// becomes an empty list. Filtered balances report `version: 0`, so read one with
    /// [`BlnkClient::get_balance`] when the stored row matters.
    pub async fn filter_balances(&self, filters: &[Filter]) -> Result<Vec<Balance>, LedgerError> {
        let body = FilterRequest {
            filters,
            sort_by: None,
            sort_order: None,
            limit: MAX_PAGE_SIZE,
        };
        let url = self.balances_filter_url();
        let balances: Option<Vec<Balance>> = self
            .send("filter_balances", Method::POST, url, &body)
            .await?;
        Ok(balances.unwrap_or_default())
    }

    /// Reads the settled totals of a balance at `at`, including rows whose effective date
    /// (or creation time, when none was set) is exactly `at`.
    pub async fn balance_at(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<HistoricalBalance, LedgerError> {
        const OPERATION: &str = "balance_at";
        let timestamp = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let url = self.url_with_query(
            OPERATION,
            &["balances", id, "at"],
            Some(("timestamp", &timestamp)),
        )?;
        let body: HistoricalBalanceBody = self.get(OPERATION, url).await?;
        Ok(HistoricalBalance::from(body))
    }

    /// Merges `meta` into the balance's metadata: keys not named keep their values. Returns
    /// the merged metadata. In secure mode Blnk rejects scoped API keys here with 403, so
    /// this needs the master key.
    pub async fn update_balance_metadata(
        &self,
        id: &str,
        meta: Map<String, Value>,
    ) -> Result<Map<String, Value>, LedgerError> {
        const OPERATION: &str = "update_balance_metadata";
        let url = self.url(OPERATION, &[id, "metadata"])?;
        let body = MetaDataUpdate { meta_data: &meta };
        let merged: MetaDataBody = self.send(OPERATION, Method::POST, url, &body).await?;
        Ok(merged.meta_data)
    }
}
