//! An in-process stand-in for a Blnk ledger server (behaviour of Blnk 0.15.2 and the commits
//! after it), for tests and for trying tollgate offline. It is an emulator: it keeps all
//! state in memory and must never hold real money.
//!
//! It serves every endpoint tollgate uses with Blnk's status codes, error codes, messages
//! and figures. That covers ledgers, identities, balances (with `@` internal balances) and
//! transactions, whether synchronous (`skip_queue`) or queued. It also covers atomic bulk
//! postings with their queued refunds, holds with commit, void and expiry, overdraft limits
//! that count holds, duplicate references and the filter endpoints.
//!
//! Two things Blnk does on its own happen here only on request, so that tests are
//! deterministic. Time moves with [`FakeBlnk::advance`] or [`FakeBlnk::set_now`], and the
//! work of Blnk's `workers` process (queued rows, refunds, queued commits and voids, hold
//! expiry) runs in [`FakeBlnk::run_workers`].
//!
//! ```ignore
//! let blnk = FakeBlnk::start().await;
//! // Point tollgate's BLNK_URL at blnk.url() and send it a request, then:
//! blnk.run_workers();
//! let revenue = blnk.balance_by_indicator("@Revenue-USD", "USD");
//! ```

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

mod bulk;
mod clock;
mod entities;
mod errors;
mod faults;
mod filter_match;
mod filter_rules;
mod filters;
mod inflight;
mod inflight_bulk;
mod listings;
mod posting;
mod records;
mod requests;
mod routes;
mod server;
mod store;
mod transactions;
mod values;
mod views;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// Each test crate uses a different part of the public API.
#[allow(unused_imports)]
pub use faults::{Fault, Injection};
#[allow(unused_imports)]
pub use views::{BalanceView, TxnStatus, TxnView};
#[allow(unused_imports)]
pub use workers::WorkerReport;

use server::{Shared, spawn_server};

/// A running fake Blnk server on `127.0.0.1`. Dropping the handle stops the server.
#[derive(Debug)]
pub struct FakeBlnk {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeBlnk {
    /// Starts a server that accepts requests without a key, like Blnk outside secure mode.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> FakeBlnk {
        match FakeBlnk::try_start(None).await {
            Ok(fake) => fake,
            Err(error) => panic!("failed to start the fake Blnk server on 127.0.0.1: {error}"),
        }
    }

    /// Starts a server that requires `key` in `X-Blnk-Key`, like Blnk in secure mode with
    /// that master key.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start_with_key(key: &str) -> FakeBlnk {
        match FakeBlnk::try_start(Some(key.to_owned())).await {
            Ok(fake) => fake,
            Err(error) => panic!("failed to start the fake Blnk server on 127.0.0.1: {error}"),
        }
    }

    /// Starts a server on a free loopback port, requiring `key` when one is given.
    pub async fn try_start(key: Option<String>) -> std::io::Result<FakeBlnk> {
        FakeBlnk::try_start_on(SocketAddr::from(([127, 0, 0, 1], 0)), key).await
    }

    /// Starts a server on `address`, requiring `key` when one is given.
    pub async fn try_start_on(
        address: SocketAddr,
        key: Option<String>,
    ) -> std::io::Result<FakeBlnk> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(key));
        let task = spawn_server(listener, Arc::clone(&shared));
        Ok(FakeBlnk {
            shared,
            address,
            task,
        })
    }

    /// Base URL of the server, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns the fake's clock, which starts at the wall-clock time and then moves only on
    /// request.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().store.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.shared.lock().store.clock.advance(by);
    }

    /// Sets the clock, also backwards. Rows created afterwards are stamped from this time.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.shared.lock().store.clock.set(now);
    }

    /// Does what Blnk's workers would have done by now: applies or rejects queued rows
    /// (including the refunds of failed atomic bulks), carries out queued commits and voids,
    /// and voids holds whose `inflight_expiry_date` is at or before the clock.
    pub fn run_workers(&self) -> WorkerReport {
        workers::run_workers(&mut self.shared.lock().store)
    }

    /// Returns a balance by id.
    ///
    /// # Panics
    /// When no balance has that id; use [`FakeBlnk::try_balance`] to check first.
    pub fn balance(&self, id: &str) -> BalanceView {
        match self.try_balance(id) {
            Some(balance) => balance,
            None => panic!("the fake Blnk server has no balance with id {id:?}"),
        }
    }

    pub fn try_balance(&self, id: &str) -> Option<BalanceView> {
        self.shared.lock().store.balance(id).map(BalanceView::from)
    }

    /// Returns an internal balance such as `@Revenue-USD` in `USD`, or `None` until a
    /// transaction has used it.
    pub fn balance_by_indicator(&self, indicator: &str, currency: &str) -> Option<BalanceView> {
        let state = self.shared.lock();
        state
            .store
            .indicator_balance(indicator, currency)
            .map(BalanceView::from)
    }

    /// Returns every transaction row, in the order they were written.
    pub fn transactions(&self) -> Vec<TxnView> {
        self.shared
            .lock()
            .store
            .txns()
            .iter()
            .map(TxnView::from)
            .collect()
    }

    /// Returns the rows whose reference starts with `prefix`, in the order they were written.
    pub fn transactions_with_reference_prefix(&self, prefix: &str) -> Vec<TxnView> {
        let state = self.shared.lock();
        let rows = state
            .store
            .txns()
            .iter()
            .filter(|txn| txn.reference.starts_with(prefix));
        rows.map(TxnView::from).collect()
    }

    /// Counts the requests received with `method` (any case) whose path starts with
    /// `path_prefix`, including those that got an injected fault or an auth error.
    pub fn request_count(&self, method: &str, path_prefix: &str) -> usize {
        let state = self.shared.lock();
        let matching = state.requests.iter().filter(|(sent_method, path)| {
            sent_method.eq_ignore_ascii_case(method) && path.starts_with(path_prefix)
        });
        matching.count()
    }

    /// Adds a fault. A bare [`Fault`] applies to the next request of any kind; use
    /// [`Fault::on`] and [`Injection::times`] to pick requests.
    pub fn inject(&self, injection: impl Into<Injection>) {
        self.shared.lock().faults.add(injection.into());
    }

    /// Removes every pending fault and ends [`Fault::Down`].
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }
}

impl Drop for FakeBlnk {
    fn drop(&mut self) {
        self.task.abort();
    }
}
