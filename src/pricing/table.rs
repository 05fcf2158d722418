//! The loaded price table: every model's prices as per-token rates, and model lookup.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::build::build_table;
use super::error::PricingError;
use super::file::parse_raw;
use super::resolved::ResolvedPrice;
use super::value::is_valid_factor;

/// Every priced model, immutable once loaded and shared as `Arc<PriceTable>`.
#[derive(Debug)]
pub struct PriceTable {
    /// Models sorted by name.
    pub(crate) models: Vec<Arc<ModelEntry>>,
    /// Every model name and alias, mapped to its index in `models`.
    pub(crate) names: HashMap<String, usize>,
    pub(crate) dated_snapshot_fallback: bool,
    /// The file's global markup; `None` when the file sets none.
    pub(crate) markup: Option<Decimal>,
    /// Markup of models when neither the model nor the file sets one.
    pub(crate) default_markup: Decimal,
}

/// One `[models."name"]` table with all its prices over time.
#[derive(Debug)]
pub(crate) struct ModelEntry {
    pub name: String,
    pub aliases: Vec<String>,
    pub kind: ModelKind,
    pub max_output_tokens: Option<u64>,
    pub markup: Option<Decimal>,
    /// Sorted by `effective_from`, a price without a date first. Never empty.
    pub versions: Vec<PriceVersion>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModelKind {
    /// Priced on prompt and completion tokens (chat, Responses and legacy completions).
    Chat,
    /// Priced on prompt tokens only.
    Embedding,
}

/// The prices of a model from one point in time on.
#[derive(Debug)]
pub(crate) struct PriceVersion {
    /// `None` means the price has applied since always.
    pub effective_from: Option<DateTime<Utc>>,
    pub standard: Rates,
    pub long_context: Option<LongContext>,
    pub tiers: BTreeMap<String, Tier>,
}

/// Per-token rates in USD. `output` is zero for embedding models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rates {
    pub input: Decimal,
    pub cached_input: Decimal,
    pub cache_write: Decimal,
    pub output: Decimal,
    /// `None` means the model does not accept audio input.
    pub audio_input: Option<Decimal>,
    /// `None` means the model does not produce audio output.
    pub audio_output: Option<Decimal>,
}

/// The rates that replace the standard ones when the prompt exceeds `threshold` tokens.
#[derive(Debug)]
pub(crate) struct LongContext {
    pub threshold: u64,
    pub rates: Rates,
}

/// The rates of one service tier, such as `flex` or `priority`.
#[derive(Debug)]
pub(crate) struct Tier {
    /// The factor the tier was given as, or `None` for explicit rates.
    pub multiplier: Option<Decimal>,
    /// The tier's rates, used unless the long-context rates apply.
    pub rates: Rates,
    /// The long-context rates times the multiplier. Present exactly when the tier has a
    /// multiplier and the price has long-context rates.
    pub long_context: Option<Rates>,
}

impl PriceTable {
    /// Parses and checks a price file's text.
    pub fn from_toml(text: &str) -> Result<PriceTable, PricingError> {
        let raw = parse_raw(text)?;
        build_table(text, raw)
    }

    /// Reads and parses the price file at `path`. Every error names the path.
    pub fn load(path: &Path) -> Result<PriceTable, PricingError> {
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        PriceTable::from_toml(&text).map_err(|error| PricingError::File {
            path: path.to_path_buf(),
            source: Box::new(error),
        })
    }

    /// Sets the markup of models when neither the model nor the file sets one (1 unless set).
    /// The markup must be greater than 0 and at most 1000, as in the file.
    pub fn with_default_markup(mut self, markup: Decimal) -> Result<PriceTable, PricingError> {
        if !is_valid_factor(markup) {
            return Err(PricingError::InvalidDefaultMarkup { markup });
        }
        self.default_markup = markup;
        Ok(self)
    }

    /// Finds the price of `model` in force at `at`. The name is matched exactly against model
    /// names and aliases. When that fails and `dated_snapshot_fallback` is on, a trailing
    /// `-YYYY-MM-DD` is stripped and the lookup retried, and the result reports
    /// `via_fallback()`. A model without a price in force at `at` is unpriced (`None`).
    pub fn resolve(&self, model: &str, at: DateTime<Utc>) -> Option<ResolvedPrice> {
        if let Some(&index) = self.names.get(model) {
            return self.price_at(index, at, false);
        }
        if !self.dated_snapshot_fallback {
            return None;
        }

        let base = strip_dated_suffix(model)?;
        let &index = self.names.get(base)?;
        self.price_at(index, at, true)
    }

    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    pub fn dated_snapshot_fallback(&self) -> bool {
        self.dated_snapshot_fallback
    }

    /// Picks the markup of `entry`: its own, else the file's, else the default.
    pub(crate) fn markup_of(&self, entry: &ModelEntry) -> Decimal {
        entry.markup.or(self.markup).unwrap_or(self.default_markup)
    }

    fn price_at(
        &self,
        index: usize,
        at: DateTime<Utc>,
        via_fallback: bool,
    ) -> Option<ResolvedPrice> {
        let entry = self.models.get(index)?;
        let version = entry.version_at(at)?;
        let markup = self.markup_of(entry);
        Some(ResolvedPrice::new(
            Arc::clone(entry),
            version,
            via_fallback,
            markup,
        ))
    }
}

impl ModelEntry {
    /// Finds the index of the version with the latest `effective_from` not after `at`.
    fn version_at(&self, at: DateTime<Utc>) -> Option<usize> {
        self.versions
            .iter()
            .rposition(|version| version.effective_from.is_none_or(|from| from <= at))
    }
}

impl Rates {
    /// Multiplies every rate by `factor`.
    pub(crate) fn scaled(&self, factor: Decimal) -> Rates {
        Rates {
            input: self.input * factor,
            cached_input: self.cached_input * factor,
            cache_write: self.cache_write * factor,
            output: self.output * factor,
            audio_input: self.audio_input.map(|rate| rate * factor),
            audio_output: self.audio_output.map(|rate| rate * factor),
        }
    }
}

/// Strips a trailing `-YYYY-MM-DD` that is a real date, as in `gpt-4o-2024-08-06`.
fn strip_dated_suffix(model: &str) -> Option<&str> {
    const SUFFIX_LEN: usize = "-YYYY-MM-DD".len();

    let split = model.len().checked_sub(SUFFIX_LEN)?;
    let base = model.get(..split)?;
    let date = model.get(split..)?.strip_prefix('-')?;

    let shape_ok = date.char_indices().all(|(i, c)| match i {
        4 | 7 => c == '-',
        _ => c.is_ascii_digit(),
    });
    if base.is_empty() || !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(base)
}
