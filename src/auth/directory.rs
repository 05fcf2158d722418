//! Lookup of per-customer keys in Blnk, cached in memory like customer accounts.
//!
//! A key id is found with a balance filter on the metadata key `tollgate_key_<key-id>`
//! (operator `isnotnull`). Results, including "no such key", are cached for the account
//! cache TTL, so a revocation reaches a running server within that TTL. When Blnk cannot
//! be reached, a cached entry is used up to the account cache's maximum staleness.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::customer_key::{KeyDigest, KeyId, REVOKED};
use crate::accounts::meta;
use crate::ids::CustomerId;
use crate::ledger::{Balance, BlnkClient, Filter, FilterOperand, FilterOperator, LedgerError};

/// Most key ids kept in the cache. Unknown ids are cached too, so a client cycling through
/// made-up ids cannot grow the cache without bound.
const MAX_CACHED_KEYS: usize = 10_000;

/// The state of one key id as stored in Blnk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRecord {
    Active {
        customer: CustomerId,
        digest: KeyDigest,
    },
    Revoked {
        customer: CustomerId,
    },
    /// No balance contains this key id.
    Unknown,
    /// The key id is stored in a form tollgate cannot use; the reason is logged.
    Unusable {
        reason: String,
    },
}

/// Reads key records from Blnk and keeps them for `ttl`.
pub struct KeyDirectory {
    blnk: BlnkClient,
    ttl: Duration,
    max_stale: Duration,
    cache: Mutex<HashMap<KeyId, (Instant, KeyRecord)>>,
}

impl KeyDirectory {
    pub fn new(blnk: BlnkClient, ttl: Duration, max_stale: Duration) -> KeyDirectory {
        KeyDirectory {
            blnk,
            ttl,
            max_stale,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Finds the record of `id`, from the cache while it is fresh.
    pub async fn lookup(&self, id: &KeyId) -> Result<KeyRecord, LedgerError> {
        let cached = self.cached(id);
        if let Some((age, record)) = &cached
            && *age < self.ttl
        {
            return Ok(record.clone());
        }

        match self.fetch(id).await {
            Ok(record) => {
                self.store(id, record.clone());
                Ok(record)
            }
            Err(error) if error.is_unavailable() => match cached {
                Some((age, record)) if age < self.max_stale => {
                    tracing::warn!(key_id = %id, age_ms = age.as_millis() as u64, %error,
                        "ledger unreachable; using a cached client key record");
                    Ok(record)
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Reads the record of `id` from Blnk, bypassing the cache.
    pub async fn fetch(&self, id: &KeyId) -> Result<KeyRecord, LedgerError> {
        let balances = self.blnk.filter_balances(&[holder_filter(id)]).await?;
        Ok(record_from_balances(id, &balances))
    }

    fn cached(&self, id: &KeyId) -> Option<(Duration, KeyRecord)> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(id)
            .map(|(at, record)| (at.elapsed(), record.clone()))
    }

    fn store(&self, id: &KeyId, record: KeyRecord) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= MAX_CACHED_KEYS && !cache.contains_key(id) {
            let max_stale = self.max_stale.max(self.ttl);
            cache.retain(|_, (at, _)| at.elapsed() < max_stale);
            if cache.len() >= MAX_CACHED_KEYS {
                tracing::warn!(entries = cache.len(), "client key cache full; clearing it");
                cache.clear();
            }
        }
        cache.insert(id.clone(), (Instant::now(), record));
    }
}

/// Returns the balance filter that finds the balance storing key `id`, active or revoked.
pub fn holder_filter(id: &KeyId) -> Filter {
    Filter::new(
        format!("meta_data.{}", id.metadata_key()),
        FilterOperator::IsNotNull,
        FilterOperand::Empty,
    )
}

/// Reads the record of `id` from the balances that hold it: exactly one USD balance with a
/// valid customer id and a digest or `"revoked"` under the key's metadata key.
pub fn record_from_balances(id: &KeyId, balances: &[Balance]) -> KeyRecord {
    let holder = match balances {
        [] => return KeyRecord::Unknown,
        [holder] => holder,
        _ => return unusable(id, format!("{} balances hold this key id", balances.len())),
    };
    let customer = holder
        .meta_data
        .get(meta::CUSTOMER_ID)
        .and_then(Value::as_str)
        .and_then(|text| CustomerId::parse(text).ok());
    let Some(customer) = customer else {
        return unusable(
            id,
            format!(
                "balance {} has no valid {}",
                holder.balance_id,
                meta::CUSTOMER_ID
            ),
        );
    };
    if holder.meta_data.get(meta::KIND).and_then(Value::as_str) != Some("usd") {
        return unusable(
            id,
            format!(
                "balance {} is not the customer's USD balance",
                holder.balance_id
            ),
        );
    }

    match holder
        .meta_data
        .get(&id.metadata_key())
        .and_then(Value::as_str)
    {
        Some(REVOKED) => KeyRecord::Revoked { customer },
        Some(text) => match KeyDigest::from_hex(text) {
            Some(digest) => KeyRecord::Active { customer, digest },
            None => unusable(
                id,
                format!(
                    "balance {} stores a value that is not a SHA-256 digest",
                    holder.balance_id
                ),
            ),
        },
        None => unusable(
            id,
            format!(
                "balance {} stores a value that is not a string",
                holder.balance_id
            ),
        ),
    }
}

fn unusable(id: &KeyId, reason: String) -> KeyRecord {
    tracing::error!(key_id = %id, %reason, "client key record is unusable; requests with this key are rejected");
    KeyRecord::Unusable { reason }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::{Map, json};

    use super::*;

    fn id() -> KeyId {
        KeyId::parse("0123456789abcdef").unwrap()
    }

    fn balance(meta: Value) -> Balance {
        let meta_data: Map<String, Value> = match meta {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Balance {
            balance_id: "bln_1".into(),
            ledger_id: String::new(),
            identity_id: String::new(),
            currency: "USD".into(),
            balance: 0,
            credit_balance: 0,
            debit_balance: 0,
            inflight_balance: 0,
            inflight_credit_balance: 0,
            inflight_debit_balance: 0,
            indicator: None,
            meta_data,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn records_from_stored_metadata() {
        let digest = KeyDigest::of("tg-x");
        let customer = CustomerId::parse("cust_1").unwrap();
        let key = id().metadata_key();
        let active = balance(
            json!({"tollgate_customer_id": "cust_1", "tollgate_kind": "usd", key.clone(): digest.to_hex()}),
        );
        let revoked = balance(
            json!({"tollgate_customer_id": "cust_1", "tollgate_kind": "usd", key.clone(): "revoked"}),
        );
        let garbage = balance(
            json!({"tollgate_customer_id": "cust_1", "tollgate_kind": "usd", key.clone(): "abc"}),
        );
        let tokens = balance(
            json!({"tollgate_customer_id": "cust_1", "tollgate_kind": "tokens", key.clone(): digest.to_hex()}),
        );
        let no_customer = balance(json!({"tollgate_kind": "usd", key.clone(): digest.to_hex()}));

        assert_eq!(record_from_balances(&id(), &[]), KeyRecord::Unknown);
        assert_eq!(
            record_from_balances(&id(), std::slice::from_ref(&active)),
            KeyRecord::Active {
                customer: customer.clone(),
                digest
            }
        );
        assert_eq!(
            record_from_balances(&id(), &[revoked]),
            KeyRecord::Revoked { customer }
        );
        for unusable in [
            vec![garbage],
            vec![tokens],
            vec![no_customer],
            vec![active.clone(), active],
        ] {
            let record = record_from_balances(&id(), &unusable);
            assert!(matches!(record, KeyRecord::Unusable { .. }), "{record:?}");
        }
    }

    #[test]
    fn holder_filter_uses_isnotnull() {
        let filter = serde_json::to_value(holder_filter(&id())).unwrap();
        assert_eq!(
            filter,
            json!({"field": "meta_data.tollgate_key_0123456789abcdef", "operator": "isnotnull"})
        );
    }
}
