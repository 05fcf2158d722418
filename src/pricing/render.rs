//! A plain-text table of every model's prices, for `tollgate pricing check`.

use rust_decimal::Decimal;

use super::table::{ModelEntry, ModelKind, PriceTable, PriceVersion, Rates};
use super::value::{per_million, show_effective_from};

const HEADER: [&str; 14] = [
    "MODEL",
    "ALIASES",
    "KIND",
    "INPUT",
    "CACHED IN",
    "CACHE WRITE",
    "OUTPUT",
    "AUDIO IN",
    "AUDIO OUT",
    "MAX OUTPUT",
    "TIERS",
    "LONG CONTEXT",
    "EFFECTIVE FROM",
    "MARKUP",
];

type Row = [String; 14];

impl PriceTable {
    /// Renders every model as one row per price version, prices in USD per 1M tokens shown
    /// exactly. Model-wide columns are filled on a model's first row only.
    pub fn render(&self) -> String {
        let mut rows: Vec<Row> = vec![HEADER.map(str::to_string)];
        for entry in &self.models {
            for (index, version) in entry.versions.iter().enumerate() {
                rows.push(self.row(entry, version, index == 0));
            }
        }

        let markup = match self.markup {
            Some(markup) => markup.normalize().to_string(),
            None => format!("{} (not set in the file)", self.default_markup.normalize()),
        };
        let mut text = format!(
            "{} models; prices in USD per 1M tokens; markup {markup}; dated_snapshot_fallback = {}\n\
             Tier and long-context rates are input/cached input/output.\n\n",
            self.models.len(),
            self.dated_snapshot_fallback,
        );
        text.push_str(&layout(&rows));
        text
    }

    fn row(&self, entry: &ModelEntry, version: &PriceVersion, first: bool) -> Row {
        let rates = &version.standard;
        let model_wide = |value: String| if first { value } else { String::new() };
        let output = match entry.kind {
            ModelKind::Chat => price(rates.output),
            ModelKind::Embedding => "-".to_string(),
        };
        let markup = match entry.markup {
            Some(markup) => format!("{} (model)", markup.normalize()),
            None => self.markup_of(entry).normalize().to_string(),
        };

        [
            entry.name.clone(),
            model_wide(entry.aliases.join(", ")),
            model_wide(kind_name(entry.kind).to_string()),
            price(rates.input),
            price(rates.cached_input),
            price(rates.cache_write),
            output,
            optional_price(rates.audio_input),
            optional_price(rates.audio_output),
            model_wide(
                entry
                    .max_output_tokens
                    .map_or("-".to_string(), |cap| cap.to_string()),
            ),
            tiers(version),
            long_context(version),
            show_effective_from(version.effective_from),
            model_wide(markup),
        ]
    }
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Chat => "chat",
        ModelKind::Embedding => "embedding",
    }
}

fn tiers(version: &PriceVersion) -> String {
    if version.tiers.is_empty() {
        return "-".to_string();
    }
    let descriptions: Vec<String> = version
        .tiers
        .iter()
        .map(|(name, tier)| match tier.multiplier {
            Some(multiplier) => format!("{name} x{}", multiplier.normalize()),
            None => format!("{name} {}", three_rates(&tier.rates)),
        })
        .collect();
    descriptions.join("; ")
}

fn long_context(version: &PriceVersion) -> String {
    match &version.long_context {
        Some(long) => format!("above {}: {}", long.threshold, three_rates(&long.rates)),
        None => "-".to_string(),
    }
}

fn three_rates(rates: &Rates) -> String {
    format!(
        "{}/{}/{}",
        price(rates.input),
        price(rates.cached_input),
        price(rates.output)
    )
}

/// Formats a per-token rate as USD per 1M tokens, exactly, with at least two decimal places.
fn price(rate: Decimal) -> String {
    let per_million = per_million(rate);
    if per_million.scale() < 2 {
        format!("{per_million:.2}")
    } else {
        per_million.to_string()
    }
}

fn optional_price(rate: Option<Decimal>) -> String {
    rate.map_or("-".to_string(), price)
}

/// Pads every column to its widest cell, two spaces apart.
fn layout(rows: &[Row]) -> String {
    let mut widths = [0usize; 14];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
