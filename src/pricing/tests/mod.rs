//! Tests of the pricing module. Every expected amount is computed by hand in the comments.

mod cost;
mod lookup;
mod parse;
mod quote;
mod shipped;

use chrono::{DateTime, TimeZone, Utc};

use super::{PriceTable, ResolvedPrice};
use crate::usage::Usage;

/// The price file shipped with tollgate.
const SHIPPED: &str = include_str!("../../../pricing.toml");

/// Returns a fixed "now" after every shipped price took effect, so tests do not depend on
/// the clock.
fn now() -> DateTime<Utc> {
    utc(2026, 1, 1)
}

fn utc(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).unwrap()
}

fn shipped() -> PriceTable {
    PriceTable::from_toml(SHIPPED).unwrap()
}

fn table(text: &str) -> PriceTable {
    match PriceTable::from_toml(text) {
        Ok(table) => table,
        Err(error) => panic!("price file did not load: {error}\n{text}"),
    }
}

/// The price of `model` now, which must exist.
fn price(table: &PriceTable, model: &str) -> ResolvedPrice {
    match table.resolve(model, now()) {
        Some(price) => price,
        None => panic!("model {model} is unpriced"),
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: Some(prompt_tokens + completion_tokens),
        ..Usage::default()
    }
}

fn cached(prompt_tokens: u64, cached_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        cached_tokens: Some(cached_tokens),
        ..usage(prompt_tokens, completion_tokens)
    }
}
