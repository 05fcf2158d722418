//! The ledger side of one metered request: the hold before the call, and the charge and the
//! hold's release after it. A [`Metering`] is created once the account is known and is
//! finished exactly once. Dropping it unfinished releases the hold, so no path leaves one open.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::accounts::Account;
use crate::billing::metadata::{ChargeFacts, leg_metadata};
use crate::billing::{ChargeRecord, ChargeStatus, Hold};
use crate::ids::RequestId;
use crate::money::{Nanos, Usd};
use crate::pricing::{Cost, PriceTable, ResolvedPrice};
use crate::usage::{Endpoint, Usage, UsageSource, estimate_prompt_tokens};

use super::AppState;

/// Usage a finished request is billed for.
pub struct BilledUsage {
    pub usage: Usage,
    pub source: UsageSource,
    pub response_model: Option<String>,
    pub service_tier: Option<String>,
    pub client_disconnected: bool,
}

/// Charge recorded for a request.
pub struct Receipt {
    pub status: ChargeStatus,
    pub amount: Nanos,
    pub cost: Cost,
}

/// Billing state carried from the hold to the charge.
pub struct Metering {
    pub state: Arc<AppState>,
    pub request_id: RequestId,
    pub account: Account,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub model_requested: String,
    pub prices: Arc<PriceTable>,
    pub price: ResolvedPrice,
    pub started_at: DateTime<Utc>,
    pub quote: Option<Usd>,
    /// Boxed, because most customers are postpaid and place no hold, while a stream keeps its
    /// metering as long as it runs.
    pub hold: Option<Box<Hold>>,
    pub request_body: Bytes,
}

impl Metering {
    /// Prices `billed`, records the charge (waiting at most the charge timeout), then
    /// releases the hold once the charge is recorded (see [`crate::billing::Biller::charge`]).
    pub async fn charge(mut self, billed: BilledUsage) -> Receipt {
        let price = self.price_for(billed.response_model.as_deref());
        let cost = price.cost(&billed.usage, billed.service_tier.as_deref());
        for warning in &cost.warnings {
            tracing::warn!(request_id = %self.request_id, %warning, "pricing warning");
        }
        let quote_exceeded = self.quote.is_some_and(|quote| cost.customer_price > quote);
        if quote_exceeded {
            tracing::warn!(request_id = %self.request_id, quote = ?self.quote.map(|q| q.to_string()),
                cost = %cost.customer_price, "actual cost exceeds the quote; charging it in full");
        }

        let request_id = self.request_id.to_string();
        let metadata = leg_metadata(&ChargeFacts {
            customer_id: self.account.customer.as_str(),
            request_id: &request_id,
            endpoint: self.endpoint,
            stream: self.stream,
            model_requested: &self.model_requested,
            usage: &billed.usage,
            usage_source: billed.source,
            cost: &cost,
            client_disconnected: billed.client_disconnected,
            quote_exceeded,
        });
        let record = ChargeRecord {
            request_id,
            customer_id: self.account.customer.to_string(),
            usd_balance_id: self.account.usd_balance_id.clone(),
            tokens_balance_id: self.account.tokens_balance_id.clone(),
            amount: cost.amount,
            tokens: billed.usage.billable_tokens(),
            metadata: Arc::new(metadata),
            effective_date: self.started_at,
            attempt: 1,
        };
        crate::telemetry::request::charged(
            &billed.usage,
            billed.source,
            billed.client_disconnected,
            &cost,
            &record,
        );
        let hold = self.hold.take().map(|hold| {
            crate::telemetry::metrics().hold_closed();
            *hold
        });
        // Boxed, so the charge's future does not enlarge (and get copied with) the caller's.
        let charging = Box::pin(self.state.biller.charge(record, hold));
        let status = crate::telemetry::request::time_ledger(charging).await;
        crate::telemetry::request::ledger_outcome(status);
        Receipt {
            status,
            amount: cost.amount,
            cost,
        }
    }

    /// Ends the request without a charge (upstream failed before any usage).
    pub fn abandon(mut self) {
        self.release();
    }

    /// Counts the request's prompt tokens with a tokenizer, for responses that report no usage.
    pub fn estimate_prompt(&self) -> u64 {
        estimate_prompt_tokens(self.endpoint, &self.model_requested, &self.request_body)
    }

    /// Returns the price of the response's model when it has one, else the request's.
    fn price_for(&self, response_model: Option<&str>) -> ResolvedPrice {
        response_model
            .and_then(|model| self.prices.resolve(model, self.started_at))
            .unwrap_or_else(|| self.price.clone())
    }

    fn release(&mut self) {
        if let Some(hold) = self.hold.take() {
            crate::telemetry::metrics().hold_closed();
            self.state.biller.release_hold(*hold);
        }
    }
}

impl Drop for Metering {
    fn drop(&mut self) {
        self.release();
    }
}
