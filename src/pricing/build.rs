//! Checking the raw file and turning it into a [`PriceTable`] of per-token rates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rust_decimal::Decimal;

use super::error::{KeyPath, PricingError};
use super::file::{RawFile, RawKind, RawLongContext, RawModel, RawRates, RawTier, RawValue};
use super::table::{LongContext, ModelEntry, ModelKind, PriceTable, PriceVersion, Rates, Tier};
use super::value::{factor, price_per_token, show_effective_from, timestamp};

/// Tier names that mean the standard rates in a response's `service_tier`.
pub(crate) const STANDARD_TIERS: [&str; 2] = ["default", "auto"];

/// The parts of a model table or history entry that make up one price version.
struct VersionParts<'a> {
    path: KeyPath,
    effective_from: Option<&'a RawValue>,
    rates: RawRates<'a>,
    tiers: &'a BTreeMap<String, RawTier>,
    long_context: Option<&'a RawLongContext>,
}

/// Checks every model and global setting of `raw` and builds the table. `source` is the
/// file's text, from which TOML numbers are read exactly.
pub(crate) fn build_table(source: &str, raw: RawFile) -> Result<PriceTable, PricingError> {
    let (dated_snapshot_fallback, markup) = global_settings(source, &raw)?;

    let mut models = Vec::with_capacity(raw.models.len());
    let mut names = HashMap::new();
    let mut owners: HashMap<String, KeyPath> = HashMap::new();

    for (name, raw_model) in &raw.models {
        let entry = build_model(source, name, raw_model)?;
        let path = KeyPath::model(name);
        let aliases_path = path.key("aliases");
        let entry_names = std::iter::once((name, &path))
            .chain(entry.aliases.iter().map(|alias| (alias, &aliases_path)));

        for (entry_name, owner) in entry_names {
            if let Some(first) = owners.get(entry_name) {
                return Err(PricingError::DuplicateName {
                    name: entry_name.clone(),
                    first: first.to_string(),
                    second: owner.to_string(),
                });
            }
            owners.insert(entry_name.clone(), owner.clone());
            names.insert(entry_name.clone(), models.len());
        }
        models.push(Arc::new(entry));
    }
    if models.is_empty() {
        return Err(PricingError::Missing {
            key: "models".to_string(),
            hint: "the price file defines no model, so no request could be billed; add a \
                   [models.\"<name>\"] table for each model that customers use",
        });
    }

    Ok(PriceTable {
        models,
        names,
        dated_snapshot_fallback,
        markup,
        default_markup: Decimal::ONE,
    })
}

/// Reads `dated_snapshot_fallback` and `markup` from the top level or from `[settings]`.
fn global_settings(source: &str, raw: &RawFile) -> Result<(bool, Option<Decimal>), PricingError> {
    let settings = raw.settings.as_ref();

    let fallback = one_place(
        raw.dated_snapshot_fallback,
        settings.and_then(|settings| settings.dated_snapshot_fallback),
        "dated_snapshot_fallback",
    )?;
    let markup = one_place(
        raw.markup.as_ref(),
        settings.and_then(|settings| settings.markup.as_ref()),
        "markup",
    )?;

    let markup = match markup {
        Some((value, path)) => Some(factor(source, value, &path)?),
        None => None,
    };
    let fallback = fallback.is_some_and(|(value, _)| value);
    Ok((fallback, markup))
}

/// Picks a global setting from the top level or from `[settings]`, rejecting both.
fn one_place<T>(
    top_level: Option<T>,
    in_settings: Option<T>,
    key: &str,
) -> Result<Option<(T, KeyPath)>, PricingError> {
    let settings_path = KeyPath::root("settings").key(key);
    match (top_level, in_settings) {
        (Some(_), Some(_)) => Err(settings_path.invalid(format!(
            "{key} is also set at the top level of the file; set it in one place only"
        ))),
        (Some(value), None) => Ok(Some((value, KeyPath::root(key)))),
        (None, Some(value)) => Ok(Some((value, settings_path))),
        (None, None) => Ok(None),
    }
}

fn build_model(source: &str, name: &str, raw: &RawModel) -> Result<ModelEntry, PricingError> {
    let path = KeyPath::model(name);
    if name.trim().is_empty() {
        return Err(path.invalid("a model name cannot be empty"));
    }
    check_aliases(&path, &raw.aliases)?;
    if raw.max_output_tokens == Some(0) {
        return Err(path
            .key("max_output_tokens")
            .invalid("max_output_tokens must be at least 1"));
    }

    let kind = match raw.kind.unwrap_or_default() {
        RawKind::Chat => ModelKind::Chat,
        RawKind::Embedding => ModelKind::Embedding,
    };
    let markup = match &raw.markup {
        Some(value) => Some(factor(source, value, &path.key("markup"))?),
        None => None,
    };

    let current = VersionParts {
        path: path.clone(),
        effective_from: raw.effective_from.as_ref(),
        rates: raw.rates(),
        tiers: &raw.tiers,
        long_context: raw.long_context.as_ref(),
    };
    let mut versions = vec![build_version(source, kind, current)?];
    for (index, entry) in raw.history.iter().enumerate() {
        let parts = VersionParts {
            path: path.key("history").index(index),
            effective_from: entry.effective_from.as_ref(),
            rates: entry.rates(),
            tiers: &entry.tiers,
            long_context: entry.long_context.as_ref(),
        };
        if parts.effective_from.is_none() {
            return Err(parts
                .path
                .key("effective_from")
                .missing("every history entry needs the date from which its prices apply"));
        }
        versions.push(build_version(source, kind, parts)?);
    }
    let versions = order_versions(&path, versions, raw.effective_from.is_some())?;

    Ok(ModelEntry {
        name: name.to_string(),
        aliases: raw.aliases.clone(),
        kind,
        max_output_tokens: raw.max_output_tokens,
        markup,
        versions,
    })
}

fn check_aliases(path: &KeyPath, aliases: &[String]) -> Result<(), PricingError> {
    if aliases.iter().any(|alias| alias.trim().is_empty()) {
        return Err(path.key("aliases").invalid("an alias cannot be empty"));
    }
    Ok(())
}

/// Sorts the versions by date. A model with history must date its current price too,
/// because an undated price counts as the earliest and a reader could expect otherwise.
fn order_versions(
    path: &KeyPath,
    mut versions: Vec<PriceVersion>,
    current_is_dated: bool,
) -> Result<Vec<PriceVersion>, PricingError> {
    if versions.len() > 1 && !current_is_dated {
        return Err(path.key("effective_from").missing(
            "a model with history entries needs the date from which its current price applies",
        ));
    }

    versions.sort_by_key(|version| version.effective_from);
    let repeated = versions
        .windows(2)
        .find(|pair| pair[0].effective_from == pair[1].effective_from);
    if let Some(pair) = repeated {
        let date = show_effective_from(pair[0].effective_from);
        return Err(path.key("history").invalid(format!(
            "two prices of this model take effect at {date}; give each price its own effective_from"
        )));
    }
    Ok(versions)
}

fn build_version(
    source: &str,
    kind: ModelKind,
    parts: VersionParts<'_>,
) -> Result<PriceVersion, PricingError> {
    let path = &parts.path;
    let effective_from = match parts.effective_from {
        Some(value) => Some(timestamp(value, &path.key("effective_from"))?),
        None => None,
    };
    let standard = build_rates(source, path, kind, &parts.rates, None)?;

    let long_context = match parts.long_context {
        Some(raw) => Some(build_long_context(
            source,
            &path.key("long_context"),
            kind,
            raw,
            &standard,
        )?),
        None => None,
    };

    let mut tiers = BTreeMap::new();
    for (name, raw) in parts.tiers {
        let tier_path = path.key("tiers").key(name);
        check_tier_name(name, &tier_path)?;
        let tier = build_tier(
            source,
            &tier_path,
            kind,
            raw,
            &standard,
            long_context.as_ref(),
        )?;
        tiers.insert(name.clone(), tier);
    }

    Ok(PriceVersion {
        effective_from,
        standard,
        long_context,
        tiers,
    })
}

/// Builds the long-context rates. `input` is required, and `output` too for chat models.
/// `cached_input` and `cache_write` default to the long-context input price, as they do on a
/// model, and the audio rates default to the standard audio rates.
fn build_long_context(
    source: &str,
    path: &KeyPath,
    kind: ModelKind,
    raw: &RawLongContext,
    standard: &Rates,
) -> Result<LongContext, PricingError> {
    let Some(threshold) = raw.threshold else {
        return Err(path
            .key("threshold")
            .missing("set the prompt token count above which the long-context rates apply"));
    };
    let rates = build_rates(source, path, kind, &raw.rates(), Some(standard))?;
    Ok(LongContext { threshold, rates })
}

/// Builds a tier given either as a `multiplier` of the standard (and long-context) rates or
/// as explicit rates, which follow the same defaults as long-context rates.
fn build_tier(
    source: &str,
    path: &KeyPath,
    kind: ModelKind,
    raw: &RawTier,
    standard: &Rates,
    long_context: Option<&LongContext>,
) -> Result<Tier, PricingError> {
    let explicit = raw.rates();
    let has_explicit_rates = [
        explicit.input,
        explicit.cached_input,
        explicit.cache_write,
        explicit.output,
        explicit.audio_input,
        explicit.audio_output,
    ]
    .iter()
    .any(Option::is_some);

    if let Some(value) = &raw.multiplier {
        if has_explicit_rates {
            return Err(path.invalid("set either multiplier or explicit rates, not both"));
        }
        let multiplier = factor(source, value, &path.key("multiplier"))?;
        return Ok(Tier {
            multiplier: Some(multiplier),
            rates: standard.scaled(multiplier),
            long_context: long_context.map(|long| long.rates.scaled(multiplier)),
        });
    }

    if long_context.is_some() {
        return Err(path.invalid(
            "a model with long_context rates needs its tiers as a multiplier, because explicit tier rates do not say what a long prompt costs; replace the rates with multiplier",
        ));
    }
    let rates = build_rates(source, path, kind, &explicit, Some(standard))?;
    Ok(Tier {
        multiplier: None,
        rates,
        long_context: None,
    })
}

fn check_tier_name(name: &str, path: &KeyPath) -> Result<(), PricingError> {
    if name.trim().is_empty() {
        return Err(path.invalid("a tier name cannot be empty"));
    }
    if STANDARD_TIERS.contains(&name) {
        return Err(
            path.invalid("this tier name means the standard rates; set those on the model itself")
        );
    }
    Ok(())
}

/// Reads one set of rates. `input` is required, `output` is required for chat models and
/// rejected for embedding models, `cached_input` and `cache_write` default to the input
/// price, and absent audio rates are taken from `audio_from` when given.
fn build_rates(
    source: &str,
    path: &KeyPath,
    kind: ModelKind,
    raw: &RawRates<'_>,
    audio_from: Option<&Rates>,
) -> Result<Rates, PricingError> {
    let price = |value: Option<&RawValue>, key: &str| -> Result<Option<Decimal>, PricingError> {
        value
            .map(|value| price_per_token(source, value, &path.key(key)))
            .transpose()
    };

    let Some(input) = price(raw.input, "input")? else {
        return Err(path
            .key("input")
            .missing("set the price of input tokens in USD per 1M tokens"));
    };
    let output = match (kind, price(raw.output, "output")?) {
        (ModelKind::Chat, Some(output)) => output,
        (ModelKind::Chat, None) => {
            return Err(path.key("output").missing(
                "a chat model needs the price of output tokens in USD per 1M tokens; set kind = \"embedding\" for an embedding model",
            ));
        }
        (ModelKind::Embedding, None) => Decimal::ZERO,
        (ModelKind::Embedding, Some(_)) => {
            return Err(path
                .key("output")
                .invalid("embedding models are priced on input tokens only; remove output"));
        }
    };

    let audio_input = price(raw.audio_input, "audio_input")?;
    let audio_output = price(raw.audio_output, "audio_output")?;
    Ok(Rates {
        input,
        cached_input: price(raw.cached_input, "cached_input")?.unwrap_or(input),
        cache_write: price(raw.cache_write, "cache_write")?.unwrap_or(input),
        output,
        audio_input: audio_input.or(audio_from.and_then(|rates| rates.audio_input)),
        audio_output: audio_output.or(audio_from.and_then(|rates| rates.audio_output)),
    })
}
