//! The raw TOML layer: the price file's shape as serde types, before any value is checked.
//!
//! Prices, factors and dates stay `Spanned<toml::Value>` here. A TOML number is converted to
//! `f64` by the parser, so the price layer reads the number's source text through its span
//! instead, and `0.075` stays exactly 0.075.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{KeyPath, PricingError};

/// A price, factor or date exactly as written, with its position in the file.
pub(crate) type RawValue = Spanned<toml::Value>;

/// The whole price file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub dated_snapshot_fallback: Option<bool>,
    pub markup: Option<RawValue>,
    pub settings: Option<RawSettings>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
}

/// The `[settings]` table: the same global keys as the top level of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub dated_snapshot_fallback: Option<bool>,
    pub markup: Option<RawValue>,
}

/// Kind of model, which decides the tokens its prices apply to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawKind {
    #[default]
    Chat,
    Embedding,
}

/// One `[models."name"]` table: the model's properties and its current price.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub kind: Option<RawKind>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub max_output_tokens: Option<u64>,
    pub markup: Option<RawValue>,
    pub effective_from: Option<RawValue>,
    pub input: Option<RawValue>,
    pub cached_input: Option<RawValue>,
    pub cache_write: Option<RawValue>,
    pub output: Option<RawValue>,
    pub audio_input: Option<RawValue>,
    pub audio_output: Option<RawValue>,
    #[serde(default)]
    pub tiers: BTreeMap<String, RawTier>,
    pub long_context: Option<RawLongContext>,
    #[serde(default)]
    pub history: Vec<RawVersion>,
}

/// One `[[models."name".history]]` entry: a complete earlier or scheduled price.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVersion {
    pub effective_from: Option<RawValue>,
    pub input: Option<RawValue>,
    pub cached_input: Option<RawValue>,
    pub cache_write: Option<RawValue>,
    pub output: Option<RawValue>,
    pub audio_input: Option<RawValue>,
    pub audio_output: Option<RawValue>,
    #[serde(default)]
    pub tiers: BTreeMap<String, RawTier>,
    pub long_context: Option<RawLongContext>,
}

/// One service tier: either a `multiplier` of the standard rates or explicit rates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub multiplier: Option<RawValue>,
    pub input: Option<RawValue>,
    pub cached_input: Option<RawValue>,
    pub cache_write: Option<RawValue>,
    pub output: Option<RawValue>,
    pub audio_input: Option<RawValue>,
    pub audio_output: Option<RawValue>,
}

/// The rates of a request whose prompt has more than `threshold` tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLongContext {
    pub threshold: Option<u64>,
    pub input: Option<RawValue>,
    pub cached_input: Option<RawValue>,
    pub cache_write: Option<RawValue>,
    pub output: Option<RawValue>,
    pub audio_input: Option<RawValue>,
    pub audio_output: Option<RawValue>,
}

/// The six per-token prices any rate table can carry, borrowed from one raw table.
pub(crate) struct RawRates<'a> {
    pub input: Option<&'a RawValue>,
    pub cached_input: Option<&'a RawValue>,
    pub cache_write: Option<&'a RawValue>,
    pub output: Option<&'a RawValue>,
    pub audio_input: Option<&'a RawValue>,
    pub audio_output: Option<&'a RawValue>,
}

impl RawModel {
    pub(crate) fn rates(&self) -> RawRates<'_> {
        RawRates {
            input: self.input.as_ref(),
            cached_input: self.cached_input.as_ref(),
            cache_write: self.cache_write.as_ref(),
            output: self.output.as_ref(),
            audio_input: self.audio_input.as_ref(),
            audio_output: self.audio_output.as_ref(),
        }
    }
}

impl RawVersion {
    pub(crate) fn rates(&self) -> RawRates<'_> {
        RawRates {
            input: self.input.as_ref(),
            cached_input: self.cached_input.as_ref(),
            cache_write: self.cache_write.as_ref(),
            output: self.output.as_ref(),
            audio_input: self.audio_input.as_ref(),
            audio_output: self.audio_output.as_ref(),
        }
    }
}

impl RawTier {
    pub(crate) fn rates(&self) -> RawRates<'_> {
        RawRates {
            input: self.input.as_ref(),
            cached_input: self.cached_input.as_ref(),
            cache_write: self.cache_write.as_ref(),
            output: self.output.as_ref(),
            audio_input: self.audio_input.as_ref(),
            audio_output: self.audio_output.as_ref(),
        }
    }
}

impl RawLongContext {
    pub(crate) fn rates(&self) -> RawRates<'_> {
        RawRates {
            input: self.input.as_ref(),
            cached_input: self.cached_input.as_ref(),
            cache_write: self.cache_write.as_ref(),
            output: self.output.as_ref(),
            audio_input: self.audio_input.as_ref(),
            audio_output: self.audio_output.as_ref(),
        }
    }
}

/// Parses the file's text into the raw layer. A shape error (an unknown key, a value of the
/// wrong type) names the key it was found at and its line.
pub(crate) fn parse_raw(text: &str) -> Result<RawFile, PricingError> {
    let document = DeTable::parse(text).map_err(|error| PricingError::Syntax {
        message: error.to_string().trim_end().to_string(),
    })?;
    let deserializer = toml::de::Deserializer::from(document.clone());

    RawFile::deserialize(deserializer).map_err(|error| {
        let position = error.span().map(|span| span.start);
        let key = position.and_then(|at| key_at(document.get_ref(), at));
        let line = position.map(|at| line_of(text, at));
        shape_error(key, line, error.message())
    })
}

fn shape_error(key: Option<KeyPath>, line: Option<usize>, message: &str) -> PricingError {
    let message = match line {
        Some(line) => format!("{message} (line {line})"),
        None => message.to_string(),
    };
    match key {
        Some(key) => key.invalid(message),
        None => PricingError::Syntax { message },
    }
}

/// Returns the 1-based line that contains byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    let before = text.get(..at).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// Finds the deepest key whose name or value contains byte offset `at`.
fn key_at(table: &DeTable<'_>, at: usize) -> Option<KeyPath> {
    let mut best: Option<(usize, KeyPath)> = None;
    visit_table(table, at, None, 0, &mut best);
    best.map(|(_, path)| path)
}

fn visit_table(
    table: &DeTable<'_>,
    at: usize,
    parent: Option<&KeyPath>,
    depth: usize,
    best: &mut Option<(usize, KeyPath)>,
) {
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let path = match parent {
            None => KeyPath::root(name),
            Some(parent) if *parent == KeyPath::root("models") => KeyPath::model(name),
            Some(parent) => parent.key(name),
        };
        visit_value(value, at, path, depth + 1, key.span().contains(&at), best);
    }
}

fn visit_value(
    value: &Spanned<DeValue<'_>>,
    at: usize,
    path: KeyPath,
    depth: usize,
    key_contains: bool,
    best: &mut Option<(usize, KeyPath)>,
) {
    let contains = key_contains || value.span().contains(&at);
    if contains && best.as_ref().is_none_or(|(deepest, _)| depth > *deepest) {
        *best = Some((depth, path.clone()));
    }

    match value.get_ref() {
        DeValue::Table(table) => visit_table(table, at, Some(&path), depth, best),
        DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                visit_value(item, at, path.index(index), depth + 1, false, best);
            }
        }
        _ => {}
    }
}
