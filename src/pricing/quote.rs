//! The quote: an upper bound of a request's customer price, computed before the call.

use rust_decimal::Decimal;

use super::error::QuoteError;
use super::resolved::ResolvedPrice;
use super::table::Rates;
use crate::money::Usd;

impl ResolvedPrice {
    /// Bounds the customer price of a request from above:
    /// `(prompt_bound_tokens * input_rate + n * max_output * output_rate) * markup`.
    ///
    /// `max_output` is `max_output_tokens` (the request's limit per choice) or else the
    /// model's cap from the price file. Each rate is the highest one that could apply:
    /// - the long-context rates when the bound exceeds the threshold;
    /// - the requested tier's rates, or the standard rates for an unlisted tier, `default`,
    ///   `auto` and `None`;
    /// - the highest of the input, cached input and cache write rates for the prompt;
    /// - the audio rates when audio is involved and they are higher.
    ///
    /// Embedding models have no output part.
    ///
    /// NOTE: a request for tier `auto` or no tier is quoted at the standard rates, though
    /// the project's default tier upstream may be a dearer one.
    pub fn quote(
        &self,
        prompt_bound_tokens: u64,
        max_output_tokens: Option<u64>,
        n: u64,
        requested_tier: Option<&str>,
        includes_audio: bool,
    ) -> Result<Usd, QuoteError> {
        let rates = self.select(prompt_bound_tokens, requested_tier).rates;
        let input_rate = highest_input_rate(rates, includes_audio);
        let input_part = Decimal::from(prompt_bound_tokens).checked_mul(input_rate);

        let max_output = if self.is_embedding() {
            0
        } else {
            max_output_tokens
                .or(self.max_output_tokens())
                .ok_or_else(|| QuoteError::NoOutputLimit {
                    model: self.model().to_string(),
                })?
        };
        let output_rate = highest_output_rate(rates, includes_audio);
        let output_part = Decimal::from(n)
            .checked_mul(Decimal::from(max_output))
            .and_then(|tokens| tokens.checked_mul(output_rate));

        let total = input_part
            .zip(output_part)
            .and_then(|(input, output)| input.checked_add(output))
            .and_then(|cost| cost.checked_mul(self.markup()));
        total.map(Usd::new).ok_or_else(|| QuoteError::TooLarge {
            model: self.model().to_string(),
            prompt_tokens: prompt_bound_tokens,
            choices: n,
            max_output_tokens: max_output,
        })
    }
}

/// Picks the highest rate any prompt token could be charged at.
fn highest_input_rate(rates: &Rates, includes_audio: bool) -> Decimal {
    let mut rate = rates.input.max(rates.cached_input).max(rates.cache_write);
    if let (true, Some(audio)) = (includes_audio, rates.audio_input) {
        rate = rate.max(audio);
    }
    rate
}

/// Picks the highest rate any completion token could be charged at.
fn highest_output_rate(rates: &Rates, includes_audio: bool) -> Decimal {
    match (includes_audio, rates.audio_output) {
        (true, Some(audio)) => rates.output.max(audio),
        _ => rates.output,
    }
}
