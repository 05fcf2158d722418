//! Records that Blnk returns.
//!
//! Parsing is lenient in the ways Blnk's versions differ: unknown fields are ignored, optional
//! fields may be missing, `meta_data` may be `null`, and Go's zero time means "not set".
//! Amounts are integers in minor units of whatever precision each transaction used, and are
//! read as `i128` from JSON integers of any size or from strings of digits, never via `f64`.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::wire::{deserialize_amount, deserialize_meta_data, deserialize_optional_time};

/// A Blnk ledger: a named group of balances.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Ledger {
    pub ledger_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "deserialize_optional_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_meta_data")]
    pub meta_data: Map<String, Value>,
}

/// A Blnk identity: the owner of balances. Blnk returns every string field, empty when unset.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Identity {
    pub identity_id: String,
    #[serde(default)]
    pub identity_type: String,
    #[serde(default)]
    pub organization_name: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email_address: String,
    #[serde(default)]
    pub category: String,
    #[serde(default, deserialize_with = "deserialize_optional_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_meta_data")]
    pub meta_data: Map<String, Value>,
}

/// A balance with its settled and inflight totals, all in minor units.
///
/// `balance = credit_balance - debit_balance` counts settled movements only. Open holds where
/// this balance is the source are in `inflight_debit_balance`, and
/// `inflight_balance = inflight_credit_balance - inflight_debit_balance`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Balance {
    pub balance_id: String,
    #[serde(default)]
    pub ledger_id: String,
    /// Empty when the balance belongs to no identity.
    #[serde(default)]
    pub identity_id: String,
    pub currency: String,
    #[serde(deserialize_with = "deserialize_amount")]
    pub balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    pub credit_balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    pub debit_balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    pub inflight_balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    pub inflight_credit_balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    pub inflight_debit_balance: i128,
    /// The `@Name` of an internal balance, such as `@Revenue-USD`.
    #[serde(default)]
    pub indicator: Option<String>,
    #[serde(default, deserialize_with = "deserialize_meta_data")]
    pub meta_data: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// The settled totals of a balance at a point in time, in minor units. History has no
/// inflight figures.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoricalBalance {
    pub balance_id: String,
    pub currency: String,
    pub balance: i128,
    pub credit_balance: i128,
    pub debit_balance: i128,
    /// The instant Blnk computed the totals for, as it echoed it.
    pub timestamp: Option<DateTime<Utc>>,
}

/// One transaction row as Blnk returns it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Transaction {
    pub transaction_id: String,
    /// The hold of a commit or void row, or the `bulk_...` id of a bulk leg. Empty when none,
    /// and always empty in filter results of servers older than 0.15.1.
    #[serde(default)]
    pub parent_transaction: String,
    #[serde(default)]
    pub reference: String,
    pub status: TransactionStatus,
    /// Amount in minor units of the transaction's precision.
    #[serde(deserialize_with = "deserialize_amount")]
    pub precise_amount: i128,
    #[serde(default)]
    pub currency: String,
    /// The source balance id. Rows applied synchronously carry resolved `bln_...` ids even
    /// when the request named an `@Name` balance.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub destination: String,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Missing on `GET /transactions/{id}` and `GET /transactions/reference/{ref}`.
    #[serde(default, deserialize_with = "deserialize_optional_time")]
    pub effective_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_optional_time")]
    pub inflight_expiry_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_meta_data")]
    pub meta_data: Map<String, Value>,
}

/// The status of a transaction row. Blnk never changes a row's status: a commit or void of
/// a hold is a new child row, and the hold row itself keeps reading `INFLIGHT`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// Accepted but not yet applied, which happens only when `skip_queue` is false.
    Queued,
    Scheduled,
    Applied,
    /// A hold, or a queued commit or void that has not run yet.
    Inflight,
    Void,
    Rejected,
    /// A status this client does not know, kept as Blnk spelled it.
    Other(String),
}

/// The response to a synchronous bulk post. It lists no transaction ids: the legs are the
/// transactions whose `parent_transaction` is `batch_id`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BulkResult {
    pub batch_id: String,
    /// `applied` for a synchronous batch, `inflight` for a batch of holds.
    pub status: String,
    #[serde(default)]
    pub transaction_count: u64,
}

/// The outcome of voiding a hold. Both "already" outcomes mean nothing is held any more.
#[derive(Clone, Debug, PartialEq)]
pub enum VoidOutcome {
    /// The `VOID` child row, which carries the released remainder.
    Voided(Box<Transaction>),
    /// Voided earlier, by a previous call or by Blnk's workers when the hold expired.
    AlreadyVoided,
    /// Fully committed earlier, so nothing was left to release.
    AlreadyCommitted,
}

impl Balance {
    /// The amount this balance can spend without an overdraft: settled funds minus open holds
    /// where it is the source. Blnk's funds check uses the same figure.
    pub fn available(&self) -> i128 {
        self.balance.saturating_sub(self.inflight_debit_balance)
    }
}

impl TransactionStatus {
    pub fn as_str(&self) -> &str {
        match self {
            TransactionStatus::Queued => "QUEUED",
            TransactionStatus::Scheduled => "SCHEDULED",
            TransactionStatus::Applied => "APPLIED",
            TransactionStatus::Inflight => "INFLIGHT",
            TransactionStatus::Void => "VOID",
            TransactionStatus::Rejected => "REJECTED",
            TransactionStatus::Other(text) => text,
        }
    }

    fn from_text(text: &str) -> TransactionStatus {
        match text {
            "QUEUED" => TransactionStatus::Queued,
            "SCHEDULED" => TransactionStatus::Scheduled,
            "APPLIED" => TransactionStatus::Applied,
            "INFLIGHT" => TransactionStatus::Inflight,
            "VOID" => TransactionStatus::Void,
            "REJECTED" => TransactionStatus::Rejected,
            other => TransactionStatus::Other(other.to_string()),
        }
    }
}

impl fmt::Display for TransactionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TransactionStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(TransactionStatus::from_text(&text))
    }
}

/// The body of `GET /balances/{id}/at`: the totals sit in a nested `balance` object.
#[derive(Deserialize)]
pub(crate) struct HistoricalBalanceBody {
    balance: HistoricalTotals,
    #[serde(default, deserialize_with = "deserialize_optional_time")]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct HistoricalTotals {
    #[serde(default)]
    balance_id: String,
    #[serde(default)]
    currency: String,
    #[serde(deserialize_with = "deserialize_amount")]
    balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    credit_balance: i128,
    #[serde(deserialize_with = "deserialize_amount")]
    debit_balance: i128,
}

impl From<HistoricalBalanceBody> for HistoricalBalance {
    fn from(body: HistoricalBalanceBody) -> Self {
        HistoricalBalance {
            balance_id: body.balance.balance_id,
            currency: body.balance.currency,
            balance: body.balance.balance,
            credit_balance: body.balance.credit_balance,
            debit_balance: body.balance.debit_balance,
            timestamp: body.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the response body of a recorded exchange as JSON text.
    fn response_body(recorded: &str) -> String {
        let exchange: Value = serde_json::from_str(recorded).expect("fixture is JSON");
        exchange["response"]["body"].to_string()
    }

    macro_rules! recorded {
        ($name:literal) => {
            include_str!(concat!(
                "../../tests/fixtures/blnk/recorded/",
                $name,
                ".json"
            ))
        };
    }

    #[test]
    fn balance_parses_recorded_get() {
        let body = response_body(recorded!("11a-get-balance"));
        let balance: Balance = serde_json::from_str(&body).expect("balance parses");
        assert_eq!(
            balance.balance_id,
            "bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838"
        );
        assert_eq!(balance.currency, "USD");
        assert_eq!(balance.balance, 88_472_532_000);
        assert_eq!(balance.credit_balance, 121_000_000_000);
        assert_eq!(balance.debit_balance, 32_527_468_000);
        assert_eq!(balance.indicator, None);
        assert_eq!(balance.meta_data["kind"], "prepaid_usd");
        assert_eq!(balance.available(), 88_472_532_000);
    }

    #[test]
    fn internal_balance_with_null_meta_data() {
        let body = response_body(recorded!("11c-get-balance-by-indicator-revenue"));
        let balance: Balance = serde_json::from_str(&body).expect("balance parses");
        assert_eq!(balance.indicator.as_deref(), Some("@Revenue-USD"));
        assert_eq!(balance.identity_id, "");
        assert!(balance.meta_data.is_empty());
    }

    #[test]
    fn balance_filter_result_parses() {
        let body = response_body(recorded!("14a-filter-balances-by-metadata"));
        let balances: Vec<Balance> = serde_json::from_str(&body).expect("balances parse");
        assert_eq!(balances.len(), 2);
        assert_eq!(balances[0].currency, "TOKENS");
        assert_eq!(balances[1].meta_data["tollgate_precision"], 1_000_000_000);
    }

    #[test]
    fn balance_amounts_beyond_64_bits() {
        let body = r#"{"balance_id":"bln_big","currency":"USD","created_at":"2026-12-04T15:12:21Z",
            "balance":170141183460469231731687303715884105727,
            "credit_balance":1208925819614629174706176,
            "debit_balance":18446744073709551616,
            "inflight_balance":-9007199254740993,
            "inflight_credit_balance":"36893488147419103232",
            "inflight_debit_balance":9007199254740993,
            "meta_data":null}"#;
        let balance: Balance = serde_json::from_str(body).expect("balance parses");
        assert_eq!(balance.balance, i128::MAX);
        assert_eq!(balance.credit_balance, 1 << 80);
        assert_eq!(balance.debit_balance, 1 << 64);
        assert_eq!(balance.inflight_balance, -9_007_199_254_740_993);
        assert_eq!(balance.inflight_credit_balance, 1 << 65);
        assert_eq!(balance.available(), i128::MAX - 9_007_199_254_740_993);
    }

    #[test]
    fn balance_with_float_amount_is_rejected() {
        let body = r#"{"balance_id":"b","currency":"USD","created_at":"2026-12-04T15:12:21Z",
            "balance":1.5,"credit_balance":0,"debit_balance":0,"inflight_balance":0,
            "inflight_credit_balance":0,"inflight_debit_balance":0}"#;
        assert!(serde_json::from_str::<Balance>(body).is_err());
    }

    #[test]
    fn transaction_parses_synchronous_post() {
        let body = response_body(recorded!("04b-topup-from-World-allow-overdraft"));
        let txn: Transaction = serde_json::from_str(&body).expect("transaction parses");
        assert_eq!(
            txn.transaction_id,
            "txn_1975d0f2-1f7a-43b3-83e9-8b309cf2862e"
        );
        assert_eq!(txn.status, TransactionStatus::Applied);
        assert_eq!(txn.precise_amount, 20_000_000_000);
        assert_eq!(txn.parent_transaction, "");
        assert!(txn.effective_date.is_some());
        assert_eq!(txn.inflight_expiry_date, None);
        assert_eq!(txn.meta_data["type"], "topup");
    }

    #[test]
    fn transaction_by_reference_lacks_effective_date() {
        let body = response_body(recorded!("10e-get-by-reference"));
        let txn: Transaction = serde_json::from_str(&body).expect("transaction parses");
        assert_eq!(txn.reference, "req-0001:usd");
        assert_eq!(
            txn.parent_transaction,
            "bulk_be6dd20d-8ccd-4918-a0fa-c63a40d10956"
        );
        assert_eq!(txn.effective_date, None);
        assert_eq!(txn.meta_data["sequence"], 2);
    }

    #[test]
    fn hold_with_expiry_and_no_meta_data() {
        let body = response_body(recorded!("17a-hold-with-expiry"));
        let txn: Transaction = serde_json::from_str(&body).expect("transaction parses");
        assert_eq!(txn.status, TransactionStatus::Inflight);
        let expiry = txn.inflight_expiry_date.map(|time| time.timestamp());
        assert_eq!(expiry, Some(1_796_399_858));
        assert!(txn.meta_data.is_empty());
    }

    #[test]
    fn transaction_amount_big_or_string() {
        let cases = [
            (
                r#""precise_amount":1208925819614629174706176"#,
                1_i128 << 80,
            ),
            (r#""precise_amount":"2468000""#, 2_468_000),
        ];
        for (field, expected) in cases {
            let body = format!(
                r#"{{"transaction_id":"txn_1","status":"APPLIED",{field},
                "created_at":"2026-12-04T15:12:46.479301Z","rate":1,"unknown":{{"x":[1]}}}}"#
            );
            let txn: Transaction = serde_json::from_str(&body).expect("transaction parses");
            assert_eq!(txn.precise_amount, expected);
        }
    }

    #[test]
    fn unknown_status_is_kept() {
        let status: TransactionStatus = serde_json::from_str(r#""COMMIT""#).expect("parses");
        assert_eq!(status, TransactionStatus::Other("COMMIT".to_string()));
        assert_eq!(status.to_string(), "COMMIT");
    }

    #[test]
    fn historical_balance_flattens_totals() {
        let body = response_body(recorded!("16b-balance-at-now"));
        let parsed: HistoricalBalanceBody = serde_json::from_str(&body).expect("parses");
        let history = HistoricalBalance::from(parsed);
        assert_eq!(history.balance, 4_998_765_433);
        assert_eq!(history.credit_balance, 5_000_000_000);
        assert_eq!(history.debit_balance, 1_234_567);
        assert_eq!(history.currency, "USD");
        assert!(history.timestamp.is_some());
    }

    #[test]
    fn ledger_identity_and_bulk_parse() {
        let ledger: Ledger =
            serde_json::from_str(&response_body(recorded!("01-create-ledger"))).expect("ledger");
        assert_eq!(ledger.ledger_id, "ldg_7d2f8ac5-572f-49ab-98aa-dcf1f1eef174");
        assert_eq!(ledger.meta_data["purpose"], "ai-billing prepaid wallets");

        let identity: Identity =
            serde_json::from_str(&response_body(recorded!("02-create-identity")))
                .expect("identity");
        assert_eq!(
            identity.identity_id,
            "idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5"
        );
        assert_eq!(identity.organization_name, "Acme AI Customer");

        let bulk: BulkResult =
            serde_json::from_str(&response_body(recorded!("05a-bulk-atomic-usage-charge")))
                .expect("bulk result");
        assert_eq!(bulk.batch_id, "bulk_be6dd20d-8ccd-4918-a0fa-c63a40d10956");
        assert_eq!(bulk.status, "applied");
        assert_eq!(bulk.transaction_count, 2);
    }
}
