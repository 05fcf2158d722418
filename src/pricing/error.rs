//! Errors of loading a price file and of quoting a request, and the key paths they name.

use std::fmt;
use std::path::PathBuf;

/// Reasons a price file cannot be loaded. Every message about a value names its key, such as
/// `models."gpt-4o".output`.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error(
        "failed to read price file {path}: {source}; run tollgate from the directory that holds it, or set TOLLGATE_PRICING to its path"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid price file {path}: {source}")]
    File {
        path: PathBuf,
        source: Box<PricingError>,
    },
    #[error("invalid TOML in the price file: {message}")]
    Syntax { message: String },
    #[error("{key}: invalid price {text:?}: expected a decimal number of USD per 1M tokens")]
    InvalidPrice { key: String, text: String },
    #[error("{key}: invalid price {text:?}: a price cannot be negative")]
    NegativePrice { key: String, text: String },
    #[error("{key} is missing: {hint}")]
    Missing { key: String, hint: &'static str },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("invalid default markup {markup}: expected a number greater than 0 and at most 1000")]
    InvalidDefaultMarkup { markup: rust_decimal::Decimal },
    #[error(
        "name {name:?} is used by both {first} and {second}: every model name and alias must be unique, so give each name to one model only"
    )]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
}

/// Reasons no upper bound of a request's price can be given before the call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error(
        "no output limit for model {model:?}: the request sets no max output tokens and the price file has none for this model; set max_output_tokens for models.{model:?} in the price file"
    )]
    NoOutputLimit { model: String },
    #[error(
        "the quote for model {model:?} is too large to compute ({prompt_tokens} prompt tokens, {choices} choices of {max_output_tokens} output tokens); lower the request's max output tokens or n"
    )]
    TooLarge {
        model: String,
        prompt_tokens: u64,
        choices: u64,
        max_output_tokens: u64,
    },
}

/// The dotted path of a key in the price file, such as `models."gpt-5".tiers.flex.input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPath(String);

impl KeyPath {
    /// Builds the path of a top-level key.
    pub(crate) fn root(key: &str) -> KeyPath {
        KeyPath(quote_key(key))
    }

    /// Builds the path of one model's table. Model names are always quoted because many
    /// contain dots.
    pub(crate) fn model(name: &str) -> KeyPath {
        KeyPath(format!("models.{name:?}"))
    }

    /// Builds the path of `key` inside this table.
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        KeyPath(format!("{}.{}", self.0, quote_key(key)))
    }

    /// Builds the path of the entry at `index` of the array at this path.
    pub(crate) fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> PricingError {
        PricingError::Invalid {
            key: self.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn missing(&self, hint: &'static str) -> PricingError {
        PricingError::Missing {
            key: self.to_string(),
            hint,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes a key as TOML would: bare when it only has letters, digits, `-` and `_`.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
