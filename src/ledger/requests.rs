//! Request bodies sent to Blnk.
//!
//! Blnk ignores unknown fields and has changed the defaults of some flags between versions,
//! so every flag that changes what a transaction does is sent explicitly. Amounts are bare
//! JSON integers in minor units: Blnk rejects a quoted or fractional `precise_amount`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::wire::{JsonDecimal, Rfc3339, Rfc3339Seconds};

/// Maximum page size of Blnk's `POST .../filter` endpoints. Blnk silently replaces a larger
/// `limit` with its default of 20.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A new identity, the owner of a customer's balances.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewIdentity {
    /// `idt_` followed by a UUID. Choosing it makes creation idempotent: a second create with
    /// the same id fails with [`LedgerError::AlreadyExists`](super::LedgerError::AlreadyExists).
    /// Blnk accepts a caller-chosen id from version 0.14.2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub meta_data: Map<String, Value>,
}

/// A new balance. Blnk balances carry no precision and are not unique per (ledger, identity,
/// currency): creating twice makes two balances.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewBalance {
    pub ledger_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,
    pub currency: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub meta_data: Map<String, Value>,
}

/// A transaction to apply synchronously. It is always sent with `"skip_queue": true`, so
/// Blnk checks funds and writes the row before it responds.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTransaction {
    /// Amount in minor units of `precision`, greater than zero.
    pub precise_amount: i128,
    /// Minor units per major unit, such as 1_000_000_000 for nano-dollars. Every transaction
    /// on one balance must use the same precision, because Blnk adds the integers as they are.
    pub precision: i64,
    pub currency: String,
    /// A `bln_...` balance id or an `@Name` internal balance.
    pub source: String,
    pub destination: String,
    /// Unique across the whole ledger. Avoid the suffixes `_q`, `_refund` and `_<n>`, which
    /// Blnk uses for references it derives itself.
    pub reference: String,
    /// Required by Blnk: a transaction without one is rejected.
    pub description: String,
    pub allow_overdraft: bool,
    /// How far below zero the source may go, in major units. Blnk applies it even when
    /// `allow_overdraft` is false, and counts open holds against it.
    pub overdraft_limit: Option<Decimal>,
    /// Whether to create a hold, committed or voided later, instead of moving funds.
    pub inflight: bool,
    /// When Blnk's workers void the hold on their own. Sent in whole seconds, rounded up.
    pub inflight_expiry_date: Option<DateTime<Utc>>,
    /// The time the transaction counts at in historical balances; Blnk defaults it to now.
    pub effective_date: Option<DateTime<Utc>>,
    pub meta_data: Map<String, Value>,
}

/// A batch of transactions applied in order in one call, with `skip_queue: true`,
/// `inflight: false` and `run_async: false`.
///
/// With `atomic`, a failing leg makes Blnk reverse the legs already applied, but by refund
/// transactions (reference `<transaction_id>_refund`) that its workers apply about a second
/// later. Put the leg most likely to fail first.
#[derive(Clone, Debug, PartialEq)]
pub struct NewBulk {
    pub transactions: Vec<NewTransaction>,
    pub atomic: bool,
    /// Metadata that every leg carries besides its own `meta_data`. Legs describing one event
    /// share it instead of each holding a copy. Its keys must differ from the legs' own.
    pub shared_meta_data: Option<Arc<Map<String, Value>>>,
}

/// One condition of a `POST .../filter` request.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// A column such as `status`, `reference` or `parent_transaction`, or `meta_data.<key>`.
    pub field: String,
    pub operator: FilterOperator,
    pub operand: FilterOperand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterOperator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    /// Needs [`FilterOperand::Values`].
    In,
    /// Inclusive at both ends; needs exactly two [`FilterOperand::Values`].
    Between,
    Like,
    Ilike,
    IsNull,
    IsNotNull,
}

/// The right-hand side of a filter. `meta_data` equality is type-sensitive: the string
/// `"123"` does not match the number `123`.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterOperand {
    /// For `isnull` and `isnotnull`.
    Empty,
    /// Sent as `value`.
    Value(Value),
    /// Sent as `values`, for `in` and `between`.
    Values(Vec<Value>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// One page of `POST /transactions/filter`. Blnk's sort has no tie-breaker, so rows sharing
/// a timestamp can repeat or go missing across offset pages: page by time window and
/// de-duplicate by `transaction_id`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransactionQuery {
    /// Combined with AND.
    pub filters: Vec<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    /// Between 1 and [`MAX_PAGE_SIZE`].
    pub limit: u32,
    pub offset: u64,
}

/// The body of `POST /balances/filter` and `POST /ledgers/filter`.
#[derive(Serialize)]
pub(crate) struct FilterRequest<'a> {
    pub filters: &'a [Filter],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    pub limit: u32,
}

/// The body of `PUT /transactions/inflight/{id}`.
#[derive(Serialize)]
pub(crate) struct InflightUpdate {
    /// `commit` or `void`.
    pub status: &'static str,
    /// A partial commit in minor units. Without it, everything still held is committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precise_amount: Option<i128>,
    /// Blnk 0.15.0 and later queue commits and voids unless this is true.
    pub skip_queue: bool,
}

#[derive(Serialize)]
pub(crate) struct NewLedger<'a> {
    pub name: &'a str,
    pub meta_data: &'a Map<String, Value>,
}

#[derive(Serialize)]
pub(crate) struct MetaDataUpdate<'a> {
    pub meta_data: &'a Map<String, Value>,
}

impl NewTransaction {
    /// Writes the fields shared by a single transaction and a bulk leg. `meta_data`, when
    /// given, replaces the transaction's own map: a bulk leg's merged metadata.
    fn serialize_common<M: SerializeMap>(
        &self,
        map: &mut M,
        meta_data: Option<&MergedMeta<'_>>,
    ) -> Result<(), M::Error> {
        map.serialize_entry("precise_amount", &self.precise_amount)?;
        map.serialize_entry("precision", &self.precision)?;
        map.serialize_entry("currency", &self.currency)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("destination", &self.destination)?;
        map.serialize_entry("reference", &self.reference)?;
        map.serialize_entry("description", &self.description)?;
        map.serialize_entry("allow_overdraft", &self.allow_overdraft)?;
        if let Some(limit) = &self.overdraft_limit {
            map.serialize_entry("overdraft_limit", &JsonDecimal(limit))?;
        }
        if let Some(effective_date) = self.effective_date {
            map.serialize_entry("effective_date", &Rfc3339(effective_date))?;
        }
        if let Some(merged) = meta_data {
            map.serialize_entry("meta_data", merged)?;
        } else if !self.meta_data.is_empty() {
            map.serialize_entry("meta_data", &self.meta_data)?;
        }
        Ok(())
    }
}

impl Serialize for NewTransaction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_common(&mut map, None)?;
        map.serialize_entry("inflight", &self.inflight)?;
        if let Some(expiry) = self.inflight_expiry_date {
            map.serialize_entry("inflight_expiry_date", &Rfc3339Seconds(expiry))?;
        }
        map.serialize_entry("skip_queue", &true)?;
        map.end()
    }
}

/// The legs of a bulk. The batch-level `inflight` and `skip_queue` override each leg's, so
/// the legs leave them out.
struct BulkLegs<'a> {
    legs: &'a [NewTransaction],
    shared: Option<&'a Map<String, Value>>,
}

struct BulkLeg<'a> {
    leg: &'a NewTransaction,
    shared: Option<&'a Map<String, Value>>,
}

/// A leg's metadata: the batch's shared entries, then the leg's own.
struct MergedMeta<'a> {
    shared: &'a Map<String, Value>,
    own: &'a Map<String, Value>,
}

impl Serialize for BulkLegs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.legs.len()))?;
        for leg in self.legs {
            seq.serialize_element(&BulkLeg {
                leg,
                shared: self.shared,
            })?;
        }
        seq.end()
    }
}

impl Serialize for BulkLeg<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let merged = self.shared.map(|shared| MergedMeta {
            shared,
            own: &self.leg.meta_data,
        });
        let mut map = serializer.serialize_map(None)?;
        self.leg.serialize_common(&mut map, merged.as_ref())?;
        map.end()
    }
}

impl Serialize for MergedMeta<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.shared.len() + self.own.len()))?;
        for (key, value) in self.shared.iter().chain(self.own) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl NewBulk {
    /// Returns why the batch cannot be sent as it is. Blnk would apply a leg marked
    /// `inflight` as an ordinary transaction, because the batch is sent with `inflight: false`.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.transactions.is_empty() {
            return Err("a bulk needs at least one transaction".to_string());
        }
        let hold = self
            .transactions
            .iter()
            .find(|leg| leg.inflight || leg.inflight_expiry_date.is_some());
        match hold {
            Some(leg) => Err(format!(
                "leg {:?} is a hold, but bulks are applied as settled transactions; \
                 post holds one at a time with post_transaction",
                leg.reference
            )),
            None => self.check_shared_keys(),
        }
    }

    fn check_shared_keys(&self) -> Result<(), String> {
        let Some(shared) = &self.shared_meta_data else {
            return Ok(());
        };
        for leg in &self.transactions {
            if let Some(key) = leg.meta_data.keys().find(|key| shared.contains_key(*key)) {
                return Err(format!(
                    "leg {:?} repeats the shared metadata key {key:?}; keep each key in one place",
                    leg.reference
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for NewBulk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let legs = BulkLegs {
            legs: &self.transactions,
            shared: self.shared_meta_data.as_deref(),
        };
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("transactions", &legs)?;
        map.serialize_entry("atomic", &self.atomic)?;
        map.serialize_entry("inflight", &false)?;
        map.serialize_entry("skip_queue", &true)?;
        map.serialize_entry("run_async", &false)?;
        map.end()
    }
}

impl Filter {
    pub fn new(field: impl Into<String>, operator: FilterOperator, operand: FilterOperand) -> Self {
        Filter {
            field: field.into(),
            operator,
            operand,
        }
    }

    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Filter::new(
            field,
            FilterOperator::Eq,
            FilterOperand::Value(value.into()),
        )
    }

    pub fn gte(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Filter::new(
            field,
            FilterOperator::Gte,
            FilterOperand::Value(value.into()),
        )
    }

    pub fn lt(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Filter::new(
            field,
            FilterOperator::Lt,
            FilterOperand::Value(value.into()),
        )
    }

    /// Matches a SQL `LIKE` pattern, such as `tg:<request-id>:%`.
    pub fn like(field: impl Into<String>, pattern: impl Into<String>) -> Self {
        let pattern = Value::String(pattern.into());
        Filter::new(field, FilterOperator::Like, FilterOperand::Value(pattern))
    }

    pub fn any_of(field: impl Into<String>, values: Vec<Value>) -> Self {
        Filter::new(field, FilterOperator::In, FilterOperand::Values(values))
    }

    /// Matches `low <= field <= high`.
    pub fn between(
        field: impl Into<String>,
        low: impl Into<Value>,
        high: impl Into<Value>,
    ) -> Self {
        let values = vec![low.into(), high.into()];
        Filter::new(
            field,
            FilterOperator::Between,
            FilterOperand::Values(values),
        )
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("field", &self.field)?;
        map.serialize_entry("operator", &self.operator)?;
        match &self.operand {
            FilterOperand::Empty => {}
            FilterOperand::Value(value) => map.serialize_entry("value", value)?,
            FilterOperand::Values(values) => map.serialize_entry("values", values)?,
        }
        map.end()
    }
}

impl TransactionQuery {
    /// Builds a query for the first full page of matching transactions, oldest first.
    pub fn new(filters: Vec<Filter>) -> Self {
        TransactionQuery {
            filters,
            sort_by: Some("created_at".to_string()),
            sort_order: Some(SortOrder::Asc),
            limit: MAX_PAGE_SIZE,
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;
    use serde_json::json;

    macro_rules! recorded {
        ($name:literal) => {
            include_str!(concat!(
                "../../tests/fixtures/blnk/recorded/",
                $name,
                ".json"
            ))
        };
    }

    /// Returns the request body of a recorded exchange.
    fn request_body(recorded: &str) -> Value {
        let exchange: Value = serde_json::from_str(recorded).expect("fixture is JSON");
        exchange["request"]["body"].clone()
    }

    fn to_json(value: &impl Serialize) -> Value {
        let text = serde_json::to_string(value).expect("serializes");
        serde_json::from_str(&text).expect("output is JSON")
    }

    /// Replaces a recorded major-unit `amount` with the `precise_amount` tollgate sends.
    fn use_precise_amount(body: &mut Value, precise_amount: i64) {
        let object = body.as_object_mut().expect("body is an object");
        assert!(
            object.remove("amount").is_some(),
            "recorded body has an amount"
        );
        object.insert("precise_amount".to_string(), json!(precise_amount));
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("valid timestamp")
    }

    fn meta(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    fn transaction(reference: &str, precise_amount: i128) -> NewTransaction {
        NewTransaction {
            precise_amount,
            precision: 1_000_000_000,
            currency: "USD".to_string(),
            source: "bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838".to_string(),
            destination: "@Revenue-USD".to_string(),
            reference: reference.to_string(),
            description: "usage charge".to_string(),
            allow_overdraft: false,
            overdraft_limit: None,
            inflight: false,
            inflight_expiry_date: None,
            effective_date: None,
            meta_data: Map::new(),
        }
    }

    #[test]
    fn hold_with_expiry_matches_recording() {
        let hold = NewTransaction {
            source: "bln_ca9096d3-47bb-4362-baa9-391d85eb8149".to_string(),
            description: "hold".to_string(),
            inflight: true,
            inflight_expiry_date: Some(at("2026-12-04T15:57:38Z")),
            ..transaction("tg:ea0fc2:hold", 100_000_000)
        };
        let expected = request_body(recorded!("17a-hold-with-expiry"));
        assert_eq!(to_json(&hold), expected);
    }

    #[test]
    fn hold_against_credit_limit_matches_recording() {
        let hold = NewTransaction {
            source: "bln_f3fd4f53-cd2c-4115-999e-102257027a36".to_string(),
            description: "hold".to_string(),
            allow_overdraft: true,
            overdraft_limit: Some(dec!(1)),
            inflight: true,
            ..transaction("tg:lim4c12171:hold", 400_000_000)
        };
        let expected = request_body(recorded!("18a-hold-1-against-credit-limit"));
        assert_eq!(to_json(&hold), expected);
    }

    #[test]
    fn top_up_matches_recording() {
        let top_up = NewTransaction {
            source: "@World-USD".to_string(),
            destination: "bln_3de645a5-f573-4681-a4e7-ec8a1fdb8838".to_string(),
            description: "prepaid top-up".to_string(),
            allow_overdraft: true,
            meta_data: meta(json!({"customer_id": "cust_001", "type": "topup"})),
            ..transaction("topup-cust001-0002", 20_000_000_000)
        };
        let mut expected = request_body(recorded!("04b-topup-from-World-allow-overdraft"));
        use_precise_amount(&mut expected, 20_000_000_000);
        expected["inflight"] = json!(false);
        assert_eq!(to_json(&top_up), expected);
    }

    #[test]
    fn streaming_hold_matches_recording() {
        let hold = NewTransaction {
            description: "pre-authorization hold for a streaming request".to_string(),
            inflight: true,
            meta_data: meta(json!({"customer_id": "cust_001", "request_id": "req-0007"})),
            ..transaction("req-0007:hold", 2_000_000_000)
        };
        let mut expected = request_body(recorded!("08a-inflight-hold"));
        use_precise_amount(&mut expected, 2_000_000_000);
        expected["allow_overdraft"] = json!(false);
        assert_eq!(to_json(&hold), expected);
    }

    #[test]
    fn atomic_bulk_matches_recording() {
        let leg_meta = |tokens_leg: &str| {
            meta(json!({
                "customer_id": "cust_001", "request_id": "req-0001", "model": "gpt-4o-mini",
                "prompt_tokens": 926, "completion_tokens": 308, "leg": tokens_leg,
            }))
        };
        let tokens = NewTransaction {
            precision: 1,
            currency: "TOKENS".to_string(),
            source: "bln_0f01e63b-ee3c-4595-bebe-6733405ba823".to_string(),
            destination: "@TokenPool".to_string(),
            description: "token usage".to_string(),
            allow_overdraft: true,
            meta_data: leg_meta("tokens"),
            ..transaction("req-0001:tokens", 1234)
        };
        let usd = NewTransaction {
            meta_data: leg_meta("usd"),
            ..transaction("req-0001:usd", 2_468_000)
        };
        let bulk = NewBulk {
            transactions: vec![tokens, usd],
            atomic: true,
            shared_meta_data: None,
        };
        let mut expected = request_body(recorded!("05a-bulk-atomic-usage-charge"));
        use_precise_amount(&mut expected["transactions"][0], 1234);
        expected["run_async"] = json!(false);
        assert_eq!(to_json(&bulk), expected);
    }

    #[test]
    fn amounts_and_limits_are_bare_numbers() {
        let charge = NewTransaction {
            overdraft_limit: Some(dec!(12.50)),
            effective_date: Some(at("2026-12-04T15:57:35.705414Z")),
            ..transaction("tg:big:usd", 1 << 80)
        };
        let text = serde_json::to_string(&charge).expect("serializes");
        assert!(
            text.contains(r#""precise_amount":1208925819614629174706176,"#),
            "{text}"
        );
        assert!(text.contains(r#""precision":1000000000,"#), "{text}");
        assert!(text.contains(r#""overdraft_limit":12.50,"#), "{text}");
        assert!(
            text.contains(r#""effective_date":"2026-12-04T15:57:35.705414Z""#),
            "{text}"
        );
        assert!(text.contains(r#""skip_queue":true"#), "{text}");
        assert!(!text.contains("inflight_expiry_date"), "{text}");
        assert!(!text.contains("meta_data"), "{text}");
    }

    #[test]
    fn shared_metadata_joins_each_leg() {
        let shared = meta(json!({"customer_id": "cust_001", "prompt_tokens": 926}));
        let with_own = NewTransaction {
            meta_data: meta(json!({"leg": "usd"})),
            ..transaction("tg:r:usd", 5)
        };
        let bulk = NewBulk {
            transactions: vec![with_own, transaction("tg:r:tokens", 7)],
            atomic: true,
            shared_meta_data: Some(Arc::new(shared)),
        };
        let body = to_json(&bulk);
        assert_eq!(
            body["transactions"][0]["meta_data"],
            json!({"customer_id": "cust_001", "prompt_tokens": 926, "leg": "usd"})
        );
        assert_eq!(
            body["transactions"][1]["meta_data"],
            json!({"customer_id": "cust_001", "prompt_tokens": 926})
        );
        assert_eq!(bulk.check(), Ok(()));
    }

    #[test]
    fn shared_metadata_keys_stay_unique() {
        let bulk = NewBulk {
            transactions: vec![NewTransaction {
                meta_data: meta(json!({"customer_id": "other"})),
                ..transaction("tg:r:usd", 5)
            }],
            atomic: true,
            shared_meta_data: Some(Arc::new(meta(json!({"customer_id": "cust_001"})))),
        };
        let error = bulk.check().expect_err("the key is in both maps");
        assert!(error.contains("\"customer_id\""), "{error}");
    }

    #[test]
    fn bulk_rejects_holds_and_empty_batches() {
        let empty = NewBulk {
            transactions: Vec::new(),
            atomic: true,
            shared_meta_data: None,
        };
        let hold = NewBulk {
            transactions: vec![NewTransaction {
                inflight: true,
                ..transaction("tg:r:hold", 1)
            }],
            atomic: true,
            shared_meta_data: None,
        };
        let expiring = NewBulk {
            transactions: vec![NewTransaction {
                inflight_expiry_date: Some(at("2026-12-04T15:57:38Z")),
                ..transaction("tg:r:usd", 1)
            }],
            atomic: false,
            shared_meta_data: None,
        };
        let charge = NewBulk {
            transactions: vec![transaction("tg:r:usd", 1)],
            atomic: true,
            shared_meta_data: None,
        };
        assert!(empty.check().is_err());
        assert!(hold.check().is_err());
        assert!(expiring.check().is_err());
        assert_eq!(charge.check(), Ok(()));
    }

    #[test]
    fn filters_serialize_by_operand() {
        let cases = [
            (
                Filter::eq("meta_data.customer_id", "cust_001"),
                json!({"field": "meta_data.customer_id", "operator": "eq", "value": "cust_001"}),
            ),
            (
                Filter::between("created_at", "2026-12-04T00:00:00Z", "2026-12-04T23:59:59Z"),
                json!({"field": "created_at", "operator": "between",
                       "values": ["2026-12-04T00:00:00Z", "2026-12-04T23:59:59Z"]}),
            ),
            (
                Filter::any_of("status", vec![json!("APPLIED"), json!("INFLIGHT")]),
                json!({"field": "status", "operator": "in", "values": ["APPLIED", "INFLIGHT"]}),
            ),
            (
                Filter::new(
                    "parent_transaction",
                    FilterOperator::IsNull,
                    FilterOperand::Empty,
                ),
                json!({"field": "parent_transaction", "operator": "isnull"}),
            ),
            (
                Filter::gte("effective_date", "2026-11-01T00:00:00Z"),
                json!({"field": "effective_date", "operator": "gte",
                       "value": "2026-11-01T00:00:00Z"}),
            ),
            (
                Filter::lt("effective_date", "2026-12-01T00:00:00Z"),
                json!({"field": "effective_date", "operator": "lt",
                       "value": "2026-12-01T00:00:00Z"}),
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(to_json(&filter), expected);
        }
    }

    #[test]
    fn transaction_query_matches_recording() {
        let query = TransactionQuery {
            limit: 10,
            ..TransactionQuery::new(vec![Filter::like("reference", "tg:ea0fc2:%")])
        };
        let mut expected = request_body(recorded!("16c-legs-of-batch-by-reference-prefix"));
        expected["offset"] = json!(0);
        assert_eq!(to_json(&query), expected);
    }

    #[test]
    fn invoice_filters_match_recording() {
        let filters = vec![
            Filter::eq("meta_data.customer_id", "cust_001"),
            Filter::eq("meta_data.leg", "usd"),
            Filter::eq("status", "APPLIED"),
            Filter::between("created_at", "2026-12-04T00:00:00Z", "2026-12-04T23:59:59Z"),
        ];
        let recorded = request_body(recorded!("12a-filter-invoice-lines-by-metadata"));
        let query = to_json(&TransactionQuery::new(filters));
        assert_eq!(query["filters"], recorded["filters"]);
        assert_eq!(query["limit"], recorded["limit"]);
        assert_eq!(query["sort_order"], recorded["sort_order"]);
    }

    #[test]
    fn balance_filter_matches_recording() {
        let filters = [Filter::eq(
            "meta_data.tollgate_customer_id",
            "cust_rec_ea0fc2",
        )];
        let body = FilterRequest {
            filters: &filters,
            sort_by: None,
            sort_order: None,
            limit: MAX_PAGE_SIZE,
        };
        let mut expected = request_body(recorded!("14a-filter-balances-by-metadata"));
        expected["limit"] = json!(100);
        assert_eq!(to_json(&body), expected);
    }

    #[test]
    fn inflight_updates_match_recording() {
        let void = InflightUpdate {
            status: "void",
            precise_amount: None,
            skip_queue: true,
        };
        let commit = InflightUpdate {
            status: "commit",
            precise_amount: Some(750_000_000),
            skip_queue: true,
        };
        let expected_void = request_body(recorded!("08e-inflight-void-rest"));
        assert_eq!(to_json(&void), expected_void);
        assert_eq!(
            to_json(&commit),
            json!({"status": "commit", "precise_amount": 750_000_000, "skip_queue": true})
        );
    }

    #[test]
    fn setup_bodies_match_recording() {
        let ledger_meta = meta(json!({"purpose": "ai-billing prepaid wallets"}));
        let ledger = NewLedger {
            name: "customer wallets",
            meta_data: &ledger_meta,
        };
        assert_eq!(
            to_json(&ledger),
            request_body(recorded!("01-create-ledger"))
        );

        let identity = NewIdentity {
            identity_type: Some("organization".to_string()),
            organization_name: Some("Acme AI Customer".to_string()),
            first_name: Some("Ada".to_string()),
            last_name: Some("Lovelace".to_string()),
            email_address: Some("ada@example.com".to_string()),
            category: Some("customer".to_string()),
            meta_data: meta(json!({"customer_id": "cust_001", "openai_project": "proj_demo"})),
            ..NewIdentity::default()
        };
        assert_eq!(
            to_json(&identity),
            request_body(recorded!("02-create-identity"))
        );

        let balance = NewBalance {
            ledger_id: "ldg_7d2f8ac5-572f-49ab-98aa-dcf1f1eef174".to_string(),
            identity_id: Some("idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5".to_string()),
            currency: "USD".to_string(),
            meta_data: meta(json!({"customer_id": "cust_001", "kind": "prepaid_usd"})),
        };
        // Blnk accepts and ignores a balance `precision`, so tollgate does not send one.
        let mut expected = request_body(recorded!("03a-create-balance-usd"));
        expected
            .as_object_mut()
            .map(|body| body.remove("precision"));
        assert_eq!(to_json(&balance), expected);
    }
}
