//! The rows the fake stores (ledgers, identities, balances, transactions) and their JSON forms.
//!
//! Blnk renders one transaction row differently depending on how it is read. A create
//! response echoes the request's flags, while listings show the stored flags. The reads by id
//! and by reference omit `effective_date`, and the read by reference also reports
//! `precision: 0` and an empty `hash`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use super::values::{ZERO_TIME, format_time, number_value, to_major_units};
use super::views::TxnStatus;

/// Id of the ledger that Blnk creates at start and that contains every `@` balance.
pub const GENERAL_LEDGER_ID: &str = "general_ledger_id";

/// String fields of an identity, always present in its JSON (empty when unset).
pub const IDENTITY_TEXT_FIELDS: [&str; 15] = [
    "identity_type",
    "organization_name",
    "category",
    "first_name",
    "last_name",
    "other_names",
    "gender",
    "email_address",
    "phone_number",
    "nationality",
    "street",
    "country",
    "state",
    "post_code",
    "city",
];

#[derive(Debug, Clone)]
pub struct Ledger {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub meta: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub text: Map<String, Value>,
    pub dob: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub meta: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct Balance {
    pub id: String,
    pub ledger_id: String,
    pub identity_id: String,
    pub indicator: Option<String>,
    pub currency: String,
    pub credit: i128,
    pub debit: i128,
    pub inflight_credit: i128,
    pub inflight_debit: i128,
    /// Write counter: 1 after creation, plus one per movement or metadata update.
    /// NOTE: Blnk's own counter differs by one or two in places, so tests should not
    /// compare it.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub meta: Option<Map<String, Value>>,
    pub track_fund_lineage: bool,
    pub allocation_strategy: String,
}

/// One transaction row.
#[derive(Debug, Clone)]
pub struct Txn {
    pub id: String,
    pub parent: String,
    pub reference: String,
    pub source: String,
    pub destination: String,
    pub currency: String,
    pub description: String,
    pub status: TxnStatus,
    pub precise: i128,
    pub precision: u64,
    pub created_at: DateTime<Utc>,
    pub effective_date: DateTime<Utc>,
    pub expiry: Option<DateTime<Utc>>,
    pub meta: Map<String, Value>,
    pub hash: String,
    /// Sum of the APPLIED commit children of a hold.
    pub committed: i128,
    /// Whether a VOID child released the rest of a hold.
    pub voided: bool,
}

/// How a balance is rendered.
#[derive(Debug, Clone, Copy)]
pub enum BalanceStyle {
    /// `POST /balances`: the row as created, `version` 0.
    Created,
    /// `GET /balances/{id}`, optionally with the queued debit and credit sums.
    Read { queued: Option<(i128, i128)> },
    /// Filter results: `version` 0 and no `allocation_strategy`.
    Filtered,
}

/// Flags a create response echoes from the request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub allow_overdraft: bool,
    pub overdraft_limit: Decimal,
    pub skip_queue: bool,
    pub atomic: bool,
    pub inflight: bool,
    pub amount_string: bool,
    /// Source and destination as sent; a queued response echoes `@` names unresolved.
    pub endpoints: Option<(String, String)>,
}

/// How a transaction is rendered.
#[derive(Debug, Clone)]
pub enum TxnStyle {
    /// The response to a create request.
    Created(Echo),
    /// A commit or void child returned by `PUT /transactions/inflight/{id}`.
    Settlement,
    /// Listings and filters.
    Listed,
    /// `GET /transactions/{id}`.
    ById,
    /// `GET /transactions/reference/{reference}`.
    ByReference,
}

#[derive(Serialize)]
struct BalanceJson<'a> {
    balance: i128,
    version: u64,
    inflight_balance: i128,
    credit_balance: i128,
    inflight_credit_balance: i128,
    debit_balance: i128,
    inflight_debit_balance: i128,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_debit_balance: Option<i128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_credit_balance: Option<i128>,
    ledger_id: &'a str,
    identity_id: &'a str,
    balance_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    indicator: Option<&'a str>,
    currency: &'a str,
    created_at: String,
    inflight_expires_at: &'static str,
    meta_data: Option<&'a Map<String, Value>>,
    track_fund_lineage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    allocation_strategy: Option<&'a str>,
}

/// The JSON form of a transaction row; `i128` amounts serialize as exact integers.
#[derive(Serialize)]
pub struct TxnJson<'a> {
    precise_amount: i128,
    amount: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_string: Option<String>,
    precision: u64,
    overdraft_limit: Value,
    transaction_id: &'a str,
    parent_transaction: &'a str,
    source: &'a str,
    destination: &'a str,
    reference: &'a str,
    currency: &'a str,
    description: &'a str,
    status: &'static str,
    hash: &'a str,
    allow_overdraft: bool,
    inflight: bool,
    skip_queue: bool,
    atomic: bool,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date: Option<String>,
    scheduled_for: &'static str,
    inflight_expiry_date: String,
    inflight_commit_date: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_data: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<bool>,
}

impl Ledger {
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("ledger_id".into(), Value::from(self.id.clone()));
        object.insert("name".into(), Value::from(self.name.clone()));
        object.insert(
            "created_at".into(),
            Value::from(format_time(self.created_at)),
        );
        object.insert("meta_data".into(), optional_map(self.meta.as_ref()));
        Value::Object(object)
    }
}

impl Identity {
    pub fn to_json(&self) -> Value {
        let mut object = self.text.clone();
        object.insert("identity_id".into(), Value::from(self.id.clone()));
        let dob = self.dob.map_or_else(|| ZERO_TIME.to_owned(), format_time);
        object.insert("dob".into(), Value::from(dob));
        object.insert(
            "created_at".into(),
            Value::from(format_time(self.created_at)),
        );
        object.insert("meta_data".into(), optional_map(self.meta.as_ref()));
        Value::Object(object)
    }
}

impl Balance {
    pub fn balance(&self) -> i128 {
        self.credit - self.debit
    }

    pub fn inflight_balance(&self) -> i128 {
        self.inflight_credit - self.inflight_debit
    }

    /// Funds a debit may use: the settled balance less open holds on this source.
    pub fn available(&self) -> i128 {
        self.balance() - self.inflight_debit
    }

    pub fn to_json(&self, style: BalanceStyle) -> impl Serialize + '_ {
        let (version, queued, allocation) = match style {
            BalanceStyle::Created => (0, None, Some(self.allocation_strategy.as_str())),
            BalanceStyle::Read { queued } => (
                self.version,
                queued,
                Some(self.allocation_strategy.as_str()),
            ),
            BalanceStyle::Filtered => (0, None, None),
        };
        BalanceJson {
            balance: self.balance(),
            version,
            inflight_balance: self.inflight_balance(),
            credit_balance: self.credit,
            inflight_credit_balance: self.inflight_credit,
            debit_balance: self.debit,
            inflight_debit_balance: self.inflight_debit,
            queued_debit_balance: queued.map(|(debit, _)| debit),
            queued_credit_balance: queued.map(|(_, credit)| credit),
            ledger_id: &self.ledger_id,
            identity_id: &self.identity_id,
            balance_id: &self.id,
            indicator: self.indicator.as_deref(),
            currency: &self.currency,
            created_at: format_time(self.created_at),
            inflight_expires_at: ZERO_TIME,
            meta_data: self.meta.as_ref(),
            track_fund_lineage: self.track_fund_lineage,
            allocation_strategy: allocation,
        }
    }
}

impl Txn {
    /// Returns the hold amount not yet committed or released.
    pub fn remaining(&self) -> i128 {
        if self.voided {
            0
        } else {
            self.precise - self.committed
        }
    }

    pub fn major_amount(&self) -> Decimal {
        to_major_units(self.precise, self.precision)
    }

    pub fn to_json<'a>(&'a self, style: &'a TxnStyle) -> TxnJson<'a> {
        let stored_inflight = self.status == TxnStatus::Inflight;
        let echo = match style {
            TxnStyle::Created(echo) => Some(echo),
            _ => None,
        };
        let (source, destination) = match echo.and_then(|echo| echo.endpoints.as_ref()) {
            Some((source, destination)) => (source.as_str(), destination.as_str()),
            None => (self.source.as_str(), self.destination.as_str()),
        };
        let by_reference = matches!(style, TxnStyle::ByReference);
        let amount_string = match style {
            TxnStyle::Settlement => true,
            TxnStyle::Created(echo) => echo.amount_string,
            _ => false,
        };
        let expiry = match (echo, self.expiry) {
            (Some(_), Some(expiry)) => format_time(expiry),
            _ => ZERO_TIME.to_owned(),
        };

        TxnJson {
            precise_amount: self.precise,
            amount: number_value(self.major_amount()),
            amount_string: amount_string.then(|| self.major_amount().to_string()),
            precision: if by_reference { 0 } else { self.precision },
            overdraft_limit: number_value(echo.map_or(Decimal::ZERO, |echo| echo.overdraft_limit)),
            transaction_id: &self.id,
            parent_transaction: &self.parent,
            source,
            destination,
            reference: &self.reference,
            currency: &self.currency,
            description: &self.description,
            status: self.status.as_str(),
            hash: if by_reference { "" } else { &self.hash },
            allow_overdraft: echo.is_some_and(|echo| echo.allow_overdraft),
            inflight: echo.map_or(stored_inflight, |echo| echo.inflight),
            skip_queue: echo.is_some_and(|echo| echo.skip_queue),
            atomic: echo.is_some_and(|echo| echo.atomic),
            created_at: format_time(self.created_at),
            effective_date: (!matches!(style, TxnStyle::ById | TxnStyle::ByReference))
                .then(|| format_time(self.effective_date)),
            scheduled_for: ZERO_TIME,
            inflight_expiry_date: expiry,
            inflight_commit_date: ZERO_TIME,
            meta_data: (!self.meta.is_empty()).then_some(&self.meta),
            queued: None,
        }
    }
}

impl TxnJson<'_> {
    /// Marks the response to an inflight action that was queued rather than applied.
    pub fn mark_queued(mut self) -> Self {
        self.queued = Some(true);
        self
    }
}

fn optional_map(map: Option<&Map<String, Value>>) -> Value {
    map.map_or(Value::Null, |map| Value::Object(map.clone()))
}
