//! Customer accounts: the two Blnk balances of a customer and its billing terms, read from
//! the balances' metadata and cached in memory for a short time.
//!
//! Blnk is the single source of truth, so every tollgate replica reads the same terms. A
//! change made with `tollgate customer set` reaches a replica within its cache TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::ids::CustomerId;
use crate::ledger::{Balance, BlnkClient, Filter, LedgerError};
use crate::money::{TOKENS_PRECISION, USD_PRECISION, Usd};

/// Metadata keys tollgate writes on Blnk objects.
pub mod meta {
    pub const CUSTOMER_ID: &str = "tollgate_customer_id";
    pub const KIND: &str = "tollgate_kind";
    pub const PRECISION: &str = "tollgate_precision";
    pub const BILLING: &str = "tollgate_billing";
    pub const CREDIT_LIMIT_USD: &str = "tollgate_credit_limit_usd";
    pub const NAME: &str = "tollgate_name";
}

/// A customer's billing terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Billing {
    /// Pays in advance; the wallet may never go below zero.
    Prepaid,
    /// Pays after an invoice; the wallet runs into overdraft, down to the credit limit if any.
    Postpaid { credit_limit: Option<Usd> },
}

impl Billing {
    /// Returns the overdraft a hold may use, or `None` when no hold is needed (unlimited postpaid).
    pub fn hold_limit(self) -> Option<Usd> {
        match self {
            Billing::Prepaid => Some(Usd::ZERO),
            Billing::Postpaid { credit_limit } => credit_limit,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Billing::Prepaid => "prepaid",
            Billing::Postpaid { .. } => "postpaid",
        }
    }

    /// Returns the balance metadata that records these terms. An absent credit limit is
    /// written as null, which Blnk's metadata merge stores and tollgate reads as "no cap".
    pub fn to_metadata(self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(meta::BILLING.into(), Value::from(self.as_str()));
        let limit = match self {
            Billing::Postpaid {
                credit_limit: Some(limit),
            } => Value::from(limit.to_string()),
            _ => Value::Null,
        };
        map.insert(meta::CREDIT_LIMIT_USD.into(), limit);
        map
    }
}

/// A customer's ledger account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub customer: CustomerId,
    pub usd_balance_id: String,
    pub tokens_balance_id: String,
    pub billing: Billing,
}

/// Failure to read an account.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("customer {customer}: {detail}")]
    Misconfigured { customer: String, detail: String },
}

impl Account {
    /// Builds the account from the balances Blnk found for a customer. `Ok(None)` when there
    /// are none.
    pub fn from_balances(
        customer: &CustomerId,
        balances: &[Balance],
    ) -> Result<Option<Account>, AccountError> {
        if balances.is_empty() {
            return Ok(None);
        }
        let usd = find_kind(customer, balances, "usd", "USD", USD_PRECISION)?;
        let tokens = find_kind(customer, balances, "tokens", "TOKENS", TOKENS_PRECISION)?;
        let billing = parse_billing(customer, &usd.meta_data)?;
        Ok(Some(Account {
            customer: customer.clone(),
            usd_balance_id: usd.balance_id.clone(),
            tokens_balance_id: tokens.balance_id.clone(),
            billing,
        }))
    }
}

fn misconfigured(customer: &CustomerId, detail: String) -> AccountError {
    AccountError::Misconfigured {
        customer: customer.to_string(),
        detail,
    }
}

fn find_kind<'a>(
    customer: &CustomerId,
    balances: &'a [Balance],
    kind: &str,
    currency: &str,
    precision: i64,
) -> Result<&'a Balance, AccountError> {
    let mut matching = balances
        .iter()
        .filter(|b| b.meta_data.get(meta::KIND).and_then(Value::as_str) == Some(kind));
    let balance = matching.next().ok_or_else(|| {
        misconfigured(
            customer,
            format!("no {currency} balance with {}={kind:?}; run `tollgate customer create {customer}` to repair", meta::KIND),
        )
    })?;
    if matching.next().is_some() {
        return Err(misconfigured(
            customer,
            format!("more than one {currency} balance is tagged {kind:?}"),
        ));
    }
    if balance.currency != currency {
        return Err(misconfigured(
            customer,
            format!(
                "balance {} is tagged {kind:?} but has currency {}",
                balance.balance_id, balance.currency
            ),
        ));
    }
    let recorded = balance
        .meta_data
        .get(meta::PRECISION)
        .and_then(Value::as_i64);
    if recorded != Some(precision) {
        return Err(misconfigured(
            customer,
            format!(
                "balance {} records precision {recorded:?}, but tollgate writes {currency} at precision {precision}; \
                 mixing precisions would corrupt the balance",
                balance.balance_id
            ),
        ));
    }
    Ok(balance)
}

/// Reads the billing terms recorded in a USD balance's metadata.
pub(crate) fn parse_billing(
    customer: &CustomerId,
    meta_data: &Map<String, Value>,
) -> Result<Billing, AccountError> {
    match meta_data.get(meta::BILLING).and_then(Value::as_str) {
        Some("prepaid") => Ok(Billing::Prepaid),
        Some("postpaid") => {
            let credit_limit = match meta_data.get(meta::CREDIT_LIMIT_USD) {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => {
                    let value: Decimal = text.parse().map_err(|_| {
                        misconfigured(
                            customer,
                            format!("invalid {} {text:?}", meta::CREDIT_LIMIT_USD),
                        )
                    })?;
                    Some(Usd::new(value))
                }
                Some(other) => {
                    return Err(misconfigured(
                        customer,
                        format!(
                            "{} must be a decimal string, found {other}",
                            meta::CREDIT_LIMIT_USD
                        ),
                    ));
                }
            };
            Ok(Billing::Postpaid { credit_limit })
        }
        other => Err(misconfigured(
            customer,
            format!(
                "{} is {other:?}; expected \"prepaid\" or \"postpaid\"",
                meta::BILLING
            ),
        )),
    }
}

/// Outcome of looking a customer up.
#[derive(Clone, Debug)]
pub enum Lookup {
    Found(Account),
    /// Blnk has no balance for this id.
    Unknown,
}

/// Reads accounts from Blnk and keeps them for `ttl`. When Blnk cannot be reached, an entry
/// up to `max_stale` old is still used, and with `fail_open_postpaid` an unlimited postpaid
/// account is served from its cached entry whatever its age.
pub struct AccountDirectory {
    blnk: BlnkClient,
    ttl: Duration,
    max_stale: Duration,
    fail_open_postpaid: bool,
    cache: Mutex<HashMap<CustomerId, (Instant, Account)>>,
}

impl AccountDirectory {
    pub fn new(blnk: BlnkClient, ttl: Duration, max_stale: Duration) -> Self {
        AccountDirectory {
            blnk,
            ttl,
            max_stale,
            fail_open_postpaid: false,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Serves an unlimited postpaid account from a cached entry of any age while Blnk cannot
    /// be reached. Its charge waits in the outbox, and no hold is at stake for such an account.
    pub fn with_fail_open_postpaid(mut self, enabled: bool) -> Self {
        self.fail_open_postpaid = enabled;
        self
    }

    /// Finds a customer's account, from the cache while it is fresh.
    pub async fn lookup(&self, customer: &CustomerId) -> Result<Lookup, AccountError> {
        let cached = self.cached(customer);
        if let Some((age, account)) = &cached
            && *age < self.ttl
        {
            return Ok(Lookup::Found(account.clone()));
        }

        match self.fetch(customer).await {
            Ok(Some(account)) => {
                self.store(account.clone());
                Ok(Lookup::Found(account))
            }
            Ok(None) => {
                self.forget(customer);
                Ok(Lookup::Unknown)
            }
            Err(AccountError::Ledger(error)) if error.is_unavailable() => {
                self.fall_back(customer, cached, error)
            }
            Err(error) => Err(error),
        }
    }

    /// Picks the cached account to use while Blnk cannot be reached, if any may be used.
    fn fall_back(
        &self,
        customer: &CustomerId,
        cached: Option<(Duration, Account)>,
        error: LedgerError,
    ) -> Result<Lookup, AccountError> {
        let Some((age, account)) = cached else {
            return Err(AccountError::Ledger(error));
        };
        let age_ms = age.as_millis() as u64;
        if age < self.max_stale {
            tracing::warn!(customer = %customer, age_ms, %error, "ledger unreachable; using a cached account");
            return Ok(Lookup::Found(account));
        }
        let unlimited_postpaid = account.billing == Billing::Postpaid { credit_limit: None };
        if self.fail_open_postpaid && unlimited_postpaid {
            tracing::warn!(customer = %customer, age_ms, %error,
                "ledger unreachable; serving an unlimited postpaid account from an old cached entry \
                 (fail_open_postpaid), and its charge waits in the outbox");
            return Ok(Lookup::Found(account));
        }
        Err(AccountError::Ledger(error))
    }

    /// Reads the account from Blnk, bypassing the cache.
    pub async fn fetch(&self, customer: &CustomerId) -> Result<Option<Account>, AccountError> {
        let balances = self
            .blnk
            .filter_balances(&Self::filter_for(customer))
            .await?;
        Account::from_balances(customer, &balances)
    }

    /// Returns the balance filter that finds a customer's balances by metadata.
    pub fn filter_for(customer: &CustomerId) -> Vec<Filter> {
        vec![Filter::eq(
            format!("meta_data.{}", meta::CUSTOMER_ID),
            Value::from(customer.as_str()),
        )]
    }

    /// Drops a cached account so the next lookup reads Blnk (after terms change locally).
    pub fn forget(&self, customer: &CustomerId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(customer);
        }
    }

    fn cached(&self, customer: &CustomerId) -> Option<(Duration, Account)> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(customer)
            .map(|(at, account)| (at.elapsed(), account.clone()))
    }

    fn store(&self, account: Account) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(account.customer.clone(), (Instant::now(), account));
        }
    }
}
