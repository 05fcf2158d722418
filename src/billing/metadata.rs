//! The metadata every charge leg carries, so an invoice or an auditor can explain each
//! amount from the ledger alone.

use serde_json::{Map, Value};

use crate::pricing::Cost;
use crate::usage::{Endpoint, Usage, UsageSource};

/// Facts known about a request when it is charged.
pub struct ChargeFacts<'a> {
    pub customer_id: &'a str,
    pub request_id: &'a str,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub model_requested: &'a str,
    pub usage: &'a Usage,
    pub usage_source: UsageSource,
    pub cost: &'a Cost,
    pub client_disconnected: bool,
    pub quote_exceeded: bool,
}

/// Builds the leg metadata. Token counts the response did not report are left out, so
/// "absent" stays distinguishable from "reported as zero".
pub fn leg_metadata(facts: &ChargeFacts<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_string(), value);
    };
    put("tollgate_customer_id", facts.customer_id.into());
    put("tollgate_request_id", facts.request_id.into());
    put("model_requested", facts.model_requested.into());
    put("model_billed", facts.cost.model.as_str().into());
    put("endpoint", facts.endpoint.as_str().into());
    put("stream", facts.stream.into());

    let usage = facts.usage;
    put("prompt_tokens", usage.prompt_tokens.into());
    put("completion_tokens", usage.completion_tokens.into());
    let optional = [
        ("cached_tokens", usage.cached_tokens),
        ("cache_write_tokens", usage.cache_write_tokens),
        ("prompt_audio_tokens", usage.prompt_audio_tokens),
        ("reasoning_tokens", usage.reasoning_tokens),
        ("completion_audio_tokens", usage.completion_audio_tokens),
        (
            "accepted_prediction_tokens",
            usage.accepted_prediction_tokens,
        ),
        (
            "rejected_prediction_tokens",
            usage.rejected_prediction_tokens,
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            put(key, value.into());
        }
    }

    let cost = facts.cost;
    put("cost_usd", cost.customer_price.to_string().into());
    put("amount_usd", cost.amount.to_usd().to_string().into());
    put("provider_cost_usd", cost.provider_cost.to_string().into());
    put("markup", cost.markup.normalize().to_string().into());
    // A date when the price took effect at midnight UTC, else the exact instant, so two
    // prices that start on the same day stay distinguishable.
    let from = cost.effective_from;
    let effective_from = if from.time() == chrono::NaiveTime::MIN {
        from.date_naive().to_string()
    } else {
        from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    put("price_effective_from", effective_from.into());
    if let Some(tier) = &cost.service_tier {
        put("service_tier", tier.as_str().into());
    }
    if cost.long_context {
        put("long_context", true.into());
    }
    let source = match facts.usage_source {
        UsageSource::Reported => "reported",
        UsageSource::Estimated => "estimated",
    };
    put("usage_source", source.into());
    put("client_disconnected", facts.client_disconnected.into());
    put("quote_exceeded", facts.quote_exceeded.into());
    map
}
