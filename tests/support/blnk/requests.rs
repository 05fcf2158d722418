//! The body of `POST /transactions` (also one item of a bulk request): binding and the
//! field validation Blnk runs before anything is looked up.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::posting::Posting;
use super::values::{
    WrongType, bool_field, integer_field, meta_field, number_field, parse_time, significant_digits,
    string_field, time_field,
};

/// A bound transaction request. `amount` is `None` when absent or zero, as Go's zero value.
#[derive(Debug, Clone, Default)]
pub struct TxnRequest {
    pub amount: Option<Decimal>,
    pub precise_amount: Option<i128>,
    pub precision: Decimal,
    pub overdraft_limit: Decimal,
    pub allow_overdraft: bool,
    pub inflight: bool,
    pub skip_queue: bool,
    pub atomic: bool,
    pub dry_run: bool,
    pub source: String,
    pub destination: String,
    pub has_splits: bool,
    pub reference: String,
    pub description: String,
    pub currency: String,
    pub inflight_expiry_date: String,
    pub inflight_commit_date: String,
    pub scheduled_for: String,
    pub effective_date: Option<DateTime<Utc>>,
    pub meta: Map<String, Value>,
}

/// Format message Blnk gives for a date field it cannot parse.
const DATE_FORMAT_MESSAGE: &str = "please format the scheduled date as 'YYYY-MM-DDTHH:MM:SS+00:00' (e.g., 2024-04-22T15:28:03+00:00)";

impl TxnRequest {
    /// Binds a JSON body. A field of the wrong JSON type fails the whole binding, as in Go.
    pub fn bind(body: &Value) -> Result<TxnRequest, WrongType> {
        let Value::Object(object) = body else {
            return Err(WrongType {
                field: "body".to_owned(),
            });
        };
        let amount = number_field(object, "amount")?.filter(|amount| !amount.is_zero());
        let has_splits = has_items(object, "sources")? || has_items(object, "destinations")?;

        Ok(TxnRequest {
            amount,
            precise_amount: integer_field(object, "precise_amount")?,
            precision: number_field(object, "precision")?.unwrap_or_default(),
            overdraft_limit: number_field(object, "overdraft_limit")?.unwrap_or_default(),
            allow_overdraft: bool_field(object, "allow_overdraft")?,
            inflight: bool_field(object, "inflight")?,
            skip_queue: bool_field(object, "skip_queue")?,
            atomic: bool_field(object, "atomic")?,
            dry_run: bool_field(object, "dry_run")?,
            source: string_field(object, "source")?,
            destination: string_field(object, "destination")?,
            has_splits,
            reference: string_field(object, "reference")?,
            description: string_field(object, "description")?,
            currency: string_field(object, "currency")?,
            inflight_expiry_date: string_field(object, "inflight_expiry_date")?,
            inflight_commit_date: string_field(object, "inflight_commit_date")?,
            scheduled_for: string_field(object, "scheduled_for")?,
            effective_date: time_field(object, "effective_date")?,
            meta: meta_field(object)?,
        })
    }

    /// Runs Blnk's field validation. The error text follows ozzo-validation: `field: reason`
    /// pairs sorted by field and joined with `; `, ending in a full stop.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = BTreeMap::new();
        if let Some(message) = self.amount_problem() {
            errors.insert("amount", message);
        }
        // Blnk has a TXN_PRECISION_NOT_INTEGER code, but this path reports the precision
        // check like every other field, under TXN_VALIDATION_ERROR.
        if let Some(message) = self.precision_problem() {
            errors.insert("precision", message);
        }
        for (field, value) in [
            ("currency", &self.currency),
            ("reference", &self.reference),
            ("description", &self.description),
        ] {
            if value.is_empty() {
                errors.insert(field, "cannot be blank".to_owned());
            }
        }
        self.endpoint_problems(&mut errors);
        self.date_problems(&mut errors);

        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::new("TXN_VALIDATION_ERROR", ozzo_text(&errors)).legacy_errors())
    }

    /// Returns the integer precision, with 0 meaning 1 as in Blnk. Call after `validate`.
    pub fn precision(&self) -> u64 {
        let precision = u64::try_from(self.precision).unwrap_or(1);
        precision.max(1)
    }

    /// Converts the request into a posting with the given parent and extra metadata.
    pub fn to_posting(
        &self,
        parent: &str,
        inflight: bool,
        extra_meta: Map<String, Value>,
    ) -> Posting {
        let mut meta = self.meta.clone();
        meta.extend(extra_meta);
        Posting {
            reference: self.reference.clone(),
            parent: parent.to_owned(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            currency: self.currency.clone(),
            description: self.description.clone(),
            amount: self.amount,
            precise_amount: self.precise_amount,
            precision: self.precision(),
            allow_overdraft: self.allow_overdraft,
            overdraft_limit: self.overdraft_limit,
            inflight,
            effective_date: self.effective_date,
            expiry: parse_time(&self.inflight_expiry_date),
            meta,
        }
    }

    fn amount_problem(&self) -> Option<String> {
        if self.amount.is_some() && self.precise_amount.is_some() {
            return Some("either amount or precise_amount should be provided, not both".to_owned());
        }
        if self.amount.is_none() && self.precise_amount.is_none() {
            return Some("either amount or precise_amount is required".to_owned());
        }
        if let Some(amount) = self.amount {
            if significant_digits(amount) > 15 {
                return Some("amount has more than 15 significant digits which may cause rounding errors; use precise_amount instead".to_owned());
            }
            if amount.is_sign_negative() {
                return Some("amount cannot be negative".to_owned());
            }
        }
        if self.precise_amount.is_some_and(|precise| precise < 0) {
            return Some("precise_amount cannot be negative".to_owned());
        }
        None
    }

    fn precision_problem(&self) -> Option<String> {
        if !self.precision.fract().is_zero() {
            return Some("precision must be an integer value".to_owned());
        }
        if self.precision.is_sign_negative() && !self.precision.is_zero() {
            return Some("precision cannot be negative".to_owned());
        }
        if u64::try_from(self.precision).is_err() {
            return Some("precision is too large".to_owned());
        }
        None
    }

    fn endpoint_problems(&self, errors: &mut BTreeMap<&'static str, String>) {
        if self.source.is_empty() {
            errors.insert(
                "source",
                "either source or sources is required, not both".to_owned(),
            );
        }
        if self.destination.is_empty() {
            let message = "either destination or destinations is required, not both";
            errors.insert("destination", message.to_owned());
        } else if self.destination == self.source {
            let message = "source and destination cannot be the same balance";
            errors.insert("destination", message.to_owned());
        }
    }

    fn date_problems(&self, errors: &mut BTreeMap<&'static str, String>) {
        for (field, value) in [
            ("inflight_expiry_date", &self.inflight_expiry_date),
            ("inflight_commit_date", &self.inflight_commit_date),
            ("scheduled_for", &self.scheduled_for),
        ] {
            if !value.is_empty() && parse_time(value).is_none() {
                errors.insert(field, DATE_FORMAT_MESSAGE.to_owned());
            }
        }
    }
}

fn has_items(object: &Map<String, Value>, key: &str) -> Result<bool, WrongType> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Array(items)) => Ok(!items.is_empty()),
        Some(_) => Err(WrongType {
            field: key.to_owned(),
        }),
    }
}

fn ozzo_text(errors: &BTreeMap<&'static str, String>) -> String {
    let joined = errors
        .iter()
        .map(|(field, reason)| format!("{field}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ");
    format!("{joined}.")
}
