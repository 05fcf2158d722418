//! Model prices: loading the price file, finding a model's price, and pricing a request.
//!
//! The price file is TOML with prices in USD per 1M tokens, written as strings (`"2.50"`) or
//! numbers (`2.50`, `1e-1`). Both are read as exact decimals: a number is parsed from its
//! source text, never through a binary float. Loading normalises every price to USD per
//! token once, so pricing a request is multiplication and addition only.
//!
//! ```toml
//! dated_snapshot_fallback = false   # or in a [settings] table
//! markup = "1.2"                    # customer price = provider cost * markup (default 1)
//!
//! [models."gpt-5"]
//! aliases = ["gpt-5-2025-08-07"]
//! input = "1.25"
//! cached_input = "0.125"            # default: input
//! output = "10.00"                  # required unless kind = "embedding"
//! max_output_tokens = 128000        # the output cap the quote uses
//! tiers.flex.multiplier = "0.5"
//! tiers.priority = { input = "2.50", cached_input = "0.25", output = "20.00" }
//! ```
//!
//! Keys of a model:
//! - `kind`: `chat` (the default) or `embedding`.
//! - `input`, and `output` unless the model is an embedding model.
//! - `cached_input` and `cache_write`, which default to the input price.
//! - `audio_input` and `audio_output`. Without them the model takes no audio.
//! - `max_output_tokens`, `aliases`, and `markup` (which overrides the file's markup).
//! - `effective_from`: a UTC date or RFC 3339 timestamp. Without it the price always applied.
//! - `tiers`, `long_context` and `history`, described below.
//!
//! - A tier has either a `multiplier` of the standard rates or explicit rates. Explicit rates
//!   follow the defaults of a model, except that absent audio rates are the standard ones.
//!   A response's tier that the model does not list is priced at the standard rates.
//! - `long_context` has a `threshold` and rates that price the whole request when the prompt
//!   has more tokens than the threshold. `input` is required, and `output` too for chat
//!   models. `cached_input` and `cache_write` default to the long-context input price, and
//!   audio rates default to the standard ones. A multiplier tier scales the long-context
//!   rates, and a model with `long_context` cannot have explicit tier rates.
//! - Each `[[models."name".history]]` entry is a complete earlier or scheduled price with
//!   its own `effective_from`, rates, `tiers` and `long_context`. It inherits no rates from
//!   the model. The price in force at a time is the one with the latest `effective_from` not
//!   after that time. A model with history must date its current price too.
//! - Every model name and alias is unique across the file. Unknown keys and negative prices
//!   are errors, and every error names the key.

mod build;
mod cost;
mod error;
mod file;
mod quote;
mod render;
mod resolved;
mod table;
mod value;

#[cfg(test)]
mod tests;

pub use cost::Cost;
pub use error::{PricingError, QuoteError};
pub use resolved::ResolvedPrice;
pub use table::PriceTable;
