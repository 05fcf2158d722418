//! A model's price in force at one time, and the choice of rates for one request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::build::STANDARD_TIERS;
use super::table::{ModelEntry, ModelKind, PriceVersion, Rates};

/// The price of one model at one time, as found by [`super::PriceTable::resolve`]. Cheap to
/// clone: it shares the model's entry with the table.
#[derive(Clone, Debug)]
pub struct ResolvedPrice {
    entry: Arc<ModelEntry>,
    /// Index into `entry.versions`, valid by construction.
    version: usize,
    via_fallback: bool,
    markup: Decimal,
}

/// The rates that apply to one request, and why.
pub(crate) struct Selection<'a> {
    pub rates: &'a Rates,
    /// The tier whose rates apply; `None` for the standard rates.
    pub tier: Option<&'a str>,
    pub long_context: bool,
    /// Whether a tier other than `default` or `auto` was named but this price does not list it.
    pub unknown_tier: bool,
}

impl ResolvedPrice {
    /// `version` must be an index into `entry.versions`.
    pub(crate) fn new(
        entry: Arc<ModelEntry>,
        version: usize,
        via_fallback: bool,
        markup: Decimal,
    ) -> Self {
        debug_assert!(version < entry.versions.len());
        ResolvedPrice {
            entry,
            version,
            via_fallback,
            markup,
        }
    }

    /// Returns the name of the model entry whose price applies (never an alias).
    pub fn model(&self) -> &str {
        &self.entry.name
    }

    /// Returns whether the price was found only after stripping a dated-snapshot suffix.
    pub fn via_fallback(&self) -> bool {
        self.via_fallback
    }

    /// Returns the time from which this price applies. A price without `effective_from` in
    /// the file has always applied and returns 1970-01-01T00:00:00Z.
    pub fn effective_from(&self) -> DateTime<Utc> {
        self.price()
            .effective_from
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    pub fn is_embedding(&self) -> bool {
        self.entry.kind == ModelKind::Embedding
    }

    /// Returns whether the model has both an audio input and an audio output price.
    pub fn supports_audio(&self) -> bool {
        let standard = &self.price().standard;
        standard.audio_input.is_some() && standard.audio_output.is_some()
    }

    /// Returns the model's output cap from the price file.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.entry.max_output_tokens
    }

    /// Returns the factor from provider cost to customer price.
    pub fn markup(&self) -> Decimal {
        self.markup
    }

    pub(crate) fn price(&self) -> &PriceVersion {
        &self.entry.versions[self.version]
    }

    /// Chooses the rates for a request with `prompt_tokens` prompt tokens on service tier
    /// `tier`. Long-context rates apply above the threshold, and a tier given as a multiplier
    /// scales them. An unlisted tier, `default` and `auto` get the standard rates.
    pub(crate) fn select(&self, prompt_tokens: u64, tier: Option<&str>) -> Selection<'_> {
        let price = self.price();
        let long_context = price
            .long_context
            .as_ref()
            .filter(|long| prompt_tokens > long.threshold);
        let requested = tier.filter(|name| !STANDARD_TIERS.contains(name));

        let listed = requested.and_then(|name| price.tiers.get_key_value(name));
        if let Some((name, tier)) = listed {
            // Explicit tier rates and long-context rates never meet: loading rejects that.
            return match (long_context, &tier.long_context) {
                (Some(_), Some(rates)) => Selection {
                    rates,
                    tier: Some(name),
                    long_context: true,
                    unknown_tier: false,
                },
                _ => Selection {
                    rates: &tier.rates,
                    tier: Some(name),
                    long_context: false,
                    unknown_tier: false,
                },
            };
        }

        Selection {
            rates: long_context.map_or(&price.standard, |long| &long.rates),
            tier: None,
            long_context: long_context.is_some(),
            unknown_tier: requested.is_some(),
        }
    }
}
