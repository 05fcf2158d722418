//! The charge of one request: what is written to the outbox and posted to Blnk as one atomic
//! bulk transaction (USD leg first, TOKENS leg second). Pure: building legs, references and
//! outbox entries.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ledger::{NewBulk, NewTransaction};
use crate::money::{Nanos, TOKENS_PRECISION, USD_PRECISION};
use crate::outbox::{EntryKind, NewEntry};

/// Names of the system balances that charges, hold transactions and top-ups move money to and from.
#[derive(Clone, Debug)]
pub struct SystemBalances {
    pub revenue: String,
    pub token_pool: String,
    pub world: String,
}

/// A hold placed for a request, as recorded in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub request_id: String,
    pub customer_id: String,
    pub reference: String,
    /// Blnk's id of the hold once it is known.
    pub transaction_id: Option<String>,
}

/// Everything needed to post (and re-post) one request's charge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChargeRecord {
    pub request_id: String,
    pub customer_id: String,
    pub usd_balance_id: String,
    pub tokens_balance_id: String,
    /// The USD amount in nano-dollars, rounded once. Stored as text so an amount beyond
    /// 64 bits still fits the outbox's JSON payload.
    #[serde(with = "crate::money::nanos_text")]
    pub amount: Nanos,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Metadata shared by both legs, which the bulk sends without copying.
    pub metadata: Arc<Map<String, Value>>,
    pub effective_date: DateTime<Utc>,
    /// 1 for the first attempt; a new attempt (with new references) starts only after the
    /// previous one is known not to stand.
    pub attempt: u32,
}

impl HoldRecord {
    /// Builds the outbox entry that voids this hold, due for the worker at `next_attempt_at`.
    pub fn to_outbox_entry(
        &self,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<NewEntry, serde_json::Error> {
        Ok(NewEntry {
            request_id: self.request_id.clone(),
            kind: EntryKind::VoidHold,
            customer_id: Some(self.customer_id.clone()),
            payload: serde_json::to_string(self)?,
            next_attempt_at: Some(next_attempt_at),
        })
    }
}

impl ChargeRecord {
    /// Builds the outbox entry that stores this charge, due for the worker at
    /// `next_attempt_at`, or at once when it is `None`.
    pub fn to_outbox_entry(
        &self,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<NewEntry, serde_json::Error> {
        Ok(NewEntry {
            request_id: self.request_id.clone(),
            kind: EntryKind::Charge,
            customer_id: Some(self.customer_id.clone()),
            payload: serde_json::to_string(self)?,
            next_attempt_at,
        })
    }

    /// True when both legs are zero and nothing is posted.
    pub fn is_empty(&self) -> bool {
        !self.amount.is_positive() && self.tokens == 0
    }

    pub fn usd_reference(&self) -> String {
        leg_reference(&self.request_id, "usd", self.attempt)
    }

    pub fn tokens_reference(&self) -> String {
        leg_reference(&self.request_id, "tokens", self.attempt)
    }

    /// References of the legs this attempt posts, in posting order.
    pub fn leg_references(&self) -> Vec<String> {
        let mut refs = Vec::with_capacity(2);
        if self.amount.is_positive() {
            refs.push(self.usd_reference());
        }
        if self.tokens > 0 {
            refs.push(self.tokens_reference());
        }
        refs
    }

    /// Builds the atomic bulk for this attempt. Both legs allow overdraft because the hold
    /// already proved the funds, and a charge checked against the wallet would fail against
    /// its own hold.
    pub fn to_bulk(&self, system: &SystemBalances) -> NewBulk {
        let mut transactions = Vec::with_capacity(2);
        if self.amount.is_positive() {
            transactions.push(self.leg(
                "usd",
                self.amount.0,
                USD_PRECISION,
                "USD",
                &self.usd_balance_id,
                &system.revenue,
            ));
        }
        if self.tokens > 0 {
            transactions.push(self.leg(
                "tokens",
                i128::from(self.tokens),
                TOKENS_PRECISION,
                "TOKENS",
                &self.tokens_balance_id,
                &system.token_pool,
            ));
        }
        NewBulk {
            transactions,
            atomic: true,
            shared_meta_data: Some(Arc::clone(&self.metadata)),
        }
    }

    fn leg(
        &self,
        leg: &str,
        amount: i128,
        precision: i64,
        currency: &str,
        source: &str,
        destination: &str,
    ) -> NewTransaction {
        let mut meta_data = Map::new();
        meta_data.insert("tollgate_leg".into(), Value::from(leg));
        NewTransaction {
            precise_amount: amount,
            precision,
            currency: currency.to_string(),
            source: source.to_string(),
            destination: destination.to_string(),
            reference: leg_reference(&self.request_id, leg, self.attempt),
            description: format!("tollgate usage {leg} for request {}", self.request_id),
            allow_overdraft: true,
            overdraft_limit: None,
            inflight: false,
            inflight_expiry_date: None,
            effective_date: Some(self.effective_date),
            meta_data,
        }
    }
}

/// `tg:<request-id>:<leg>` for the first attempt, then `:r2`, `:r3`, ... appended.
pub fn leg_reference(request_id: &str, leg: &str, attempt: u32) -> String {
    if attempt <= 1 {
        format!("tg:{request_id}:{leg}")
    } else {
        format!("tg:{request_id}:{leg}:r{attempt}")
    }
}

pub fn hold_reference(request_id: &str) -> String {
    format!("tg:{request_id}:hold")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(amount: i128, tokens: u64) -> ChargeRecord {
        ChargeRecord {
            request_id: "0190".into(),
            customer_id: "c1".into(),
            usd_balance_id: "bln_usd".into(),
            tokens_balance_id: "bln_tok".into(),
            amount: Nanos(amount),
            tokens,
            metadata: Arc::default(),
            effective_date: DateTime::UNIX_EPOCH,
            attempt: 1,
        }
    }

    fn system() -> SystemBalances {
        SystemBalances {
            revenue: "@Revenue-USD".into(),
            token_pool: "@TokenPool".into(),
            world: "@World-USD".into(),
        }
    }

    #[test]
    fn usd_leg_comes_first() {
        let bulk = record(1650, 8).to_bulk(&system());
        assert_eq!(bulk.transactions.len(), 2);
        assert_eq!(bulk.transactions[0].currency, "USD");
        assert_eq!(bulk.transactions[0].precise_amount, 1650);
        assert_eq!(bulk.transactions[0].precision, 1_000_000_000);
        assert_eq!(bulk.transactions[0].reference, "tg:0190:usd");
        assert_eq!(bulk.transactions[1].currency, "TOKENS");
        assert_eq!(bulk.transactions[1].precise_amount, 8);
        assert_eq!(bulk.transactions[1].reference, "tg:0190:tokens");
        assert!(bulk.transactions.iter().all(|t| t.allow_overdraft));
        assert!(bulk.atomic);
    }

    #[test]
    fn zero_legs_are_left_out() {
        assert_eq!(record(0, 8).to_bulk(&system()).transactions.len(), 1);
        assert_eq!(record(5, 0).to_bulk(&system()).transactions.len(), 1);
        assert!(record(0, 0).is_empty());
        assert!(record(0, 0).leg_references().is_empty());
    }

    #[test]
    fn later_attempts_get_new_references() {
        let mut r = record(1, 1);
        r.attempt = 3;
        assert_eq!(r.leg_references(), ["tg:0190:usd:r3", "tg:0190:tokens:r3"]);
    }
}
