//! The cost of a finished request from its reported token usage.
//!
//! Token classes follow OpenAI's usage object: cached, cache-write and audio prompt tokens are
//! parts of `prompt_tokens`, and audio, reasoning and prediction tokens are parts of
//! `completion_tokens`. Each part is priced once, at its own rate, and never added on top of
//! its whole. Reasoning and prediction tokens have no rate of their own, so they stay in the
//! text output at the output rate.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::resolved::ResolvedPrice;
use super::table::Rates;
use crate::money::{Nanos, Usd};
use crate::usage::Usage;

/// The price of one request, before and after markup, and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    /// The provider's charge, exact.
    pub provider_cost: Usd,
    /// `provider_cost * markup`, exactly.
    pub customer_price: Usd,
    /// `customer_price` rounded once to ledger minor units, half away from zero.
    pub amount: Nanos,
    pub markup: Decimal,
    /// When the applied price took effect (1970-01-01T00:00:00Z for an undated price).
    pub effective_from: DateTime<Utc>,
    /// The service tier whose rates applied; `None` for the standard rates.
    pub service_tier: Option<String>,
    /// Whether the long-context rates applied.
    pub long_context: bool,
    /// The model entry whose price applied.
    pub model: String,
    /// Data problems found in the usage, each already handled as described.
    pub warnings: Vec<String>,
}

impl ResolvedPrice {
    /// Prices `usage` on the tier the response reported (`None`, `default` or an unlisted
    /// tier get the standard rates). Never fails: inconsistent counts are clamped, and each
    /// correction is described in `warnings`.
    pub fn cost(&self, usage: &Usage, service_tier: Option<&str>) -> Cost {
        let selection = self.select(usage.prompt_tokens, service_tier);
        let mut warnings = Vec::new();
        if let (true, Some(tier)) = (selection.unknown_tier, service_tier) {
            warnings.push(format!(
                "service tier {tier:?} has no prices for model {}; priced at the standard rates",
                self.model()
            ));
        }

        let provider_cost = if self.is_embedding() {
            embedding_cost(usage, selection.rates, self.model(), &mut warnings)
        } else {
            token_cost(usage, selection.rates, self.model(), &mut warnings)
        };
        let customer_price = Usd::new(provider_cost * self.markup());

        Cost {
            provider_cost: Usd::new(provider_cost),
            customer_price,
            amount: customer_price.to_nanos(),
            markup: self.markup(),
            effective_from: self.effective_from(),
            service_tier: selection.tier.map(str::to_string),
            long_context: selection.long_context,
            model: self.model().to_string(),
            warnings,
        }
    }
}

/// Prices an embedding request: its prompt tokens at the input rate.
fn embedding_cost(
    usage: &Usage,
    rates: &Rates,
    model: &str,
    warnings: &mut Vec<String>,
) -> Decimal {
    if usage.completion_tokens > 0 {
        warnings.push(format!(
            "{} completion tokens reported for embedding model {model}; embedding models are priced on prompt tokens only, so they were not charged",
            usage.completion_tokens
        ));
    }
    tokens(usage.prompt_tokens) * rates.input
}

/// Prices a chat usage, with absent parts as zero:
///
/// ```text
/// (P - R - W - A_in) * input + R * cached_input + W * cache_write + A_in * audio_input
///     + (C - A_out) * output + A_out * audio_output
/// ```
fn token_cost(usage: &Usage, rates: &Rates, model: &str, warnings: &mut Vec<String>) -> Decimal {
    let cached = usage.cached_tokens.unwrap_or(0);
    let cache_write = usage.cache_write_tokens.unwrap_or(0);
    let audio_in = usage.prompt_audio_tokens.unwrap_or(0);
    let audio_out = usage.completion_audio_tokens.unwrap_or(0);

    // NOTE: OpenAI may count a cached audio token in both cached_tokens and audio_tokens.
    // Such a token is then subtracted twice and charged twice, at the cached and the audio rate.
    let prompt_parts = u128::from(cached) + u128::from(cache_write) + u128::from(audio_in);
    let uncached = remainder(usage.prompt_tokens, prompt_parts).unwrap_or_else(|| {
        warnings.push(format!(
            "prompt token parts exceed prompt_tokens: cached {cached} + cache write {cache_write} + audio {audio_in} > {}; uncached input priced as 0 tokens",
            usage.prompt_tokens
        ));
        0
    });
    let text_output = remainder(usage.completion_tokens, u128::from(audio_out)).unwrap_or_else(|| {
        warnings.push(format!(
            "completion audio tokens {audio_out} exceed completion_tokens {}; text output priced as 0 tokens",
            usage.completion_tokens
        ));
        0
    });

    let audio_input_rate = audio_rate(
        rates.audio_input,
        rates.input,
        audio_in,
        "input",
        model,
        warnings,
    );
    let audio_output_rate = audio_rate(
        rates.audio_output,
        rates.output,
        audio_out,
        "output",
        model,
        warnings,
    );

    tokens(uncached) * rates.input
        + tokens(cached) * rates.cached_input
        + tokens(cache_write) * rates.cache_write
        + tokens(audio_in) * audio_input_rate
        + tokens(text_output) * rates.output
        + tokens(audio_out) * audio_output_rate
}

/// Subtracts `parts` from `whole`, or returns `None` when the parts are larger.
fn remainder(whole: u64, parts: u128) -> Option<u64> {
    let rest = u128::from(whole).checked_sub(parts)?;
    u64::try_from(rest).ok()
}

/// Picks the audio rate, or the text rate with a warning when the model has no audio price.
fn audio_rate(
    audio: Option<Decimal>,
    text: Decimal,
    audio_tokens: u64,
    direction: &str,
    model: &str,
    warnings: &mut Vec<String>,
) -> Decimal {
    match audio {
        Some(rate) => rate,
        None => {
            if audio_tokens > 0 {
                warnings.push(format!(
                    "{audio_tokens} audio {direction} tokens reported, but model {model} has no audio_{direction} price; priced at the text {direction} rate"
                ));
            }
            text
        }
    }
}

fn tokens(count: u64) -> Decimal {
    Decimal::from(count)
}
