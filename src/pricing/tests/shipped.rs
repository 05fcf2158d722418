use rust_decimal::{Decimal, dec};

use super::{now, price, shipped, utc};
use crate::pricing::value::per_million;

/// name, aliases, input, cached input, output, max output tokens (prices per 1M tokens).
type Row = (
    &'static str,
    &'static [&'static str],
    Decimal,
    Decimal,
    Decimal,
    Option<u64>,
);

const SHIPPED_MODELS: [Row; 18] = [
    (
        "gpt-4o",
        &["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"],
        dec!(2.50),
        dec!(1.25),
        dec!(10.00),
        Some(16384),
    ),
    (
        "gpt-4o-2024-05-13",
        &[],
        dec!(5.00),
        dec!(5.00),
        dec!(15.00),
        Some(4096),
    ),
    (
        "gpt-4o-mini",
        &["gpt-4o-mini-2024-07-18"],
        dec!(0.15),
        dec!(0.075),
        dec!(0.60),
        Some(16384),
    ),
    (
        "gpt-4.1",
        &["gpt-4.1-2025-04-14"],
        dec!(2.00),
        dec!(0.50),
        dec!(8.00),
        Some(32768),
    ),
    (
        "gpt-4.1-mini",
        &["gpt-4.1-mini-2025-04-14"],
        dec!(0.40),
        dec!(0.10),
        dec!(1.60),
        Some(32768),
    ),
    (
        "gpt-4.1-nano",
        &["gpt-4.1-nano-2025-04-14"],
        dec!(0.10),
        dec!(0.025),
        dec!(0.40),
        Some(32768),
    ),
    (
        "o1",
        &["o1-2024-12-17"],
        dec!(15.00),
        dec!(7.50),
        dec!(60.00),
        Some(100000),
    ),
    (
        "o3",
        &["o3-2025-04-16"],
        dec!(2.00),
        dec!(0.50),
        dec!(8.00),
        Some(100000),
    ),
    (
        "o3-mini",
        &["o3-mini-2025-01-31"],
        dec!(1.10),
        dec!(0.55),
        dec!(4.40),
        Some(100000),
    ),
    (
        "o4-mini",
        &["o4-mini-2025-04-16"],
        dec!(1.10),
        dec!(0.275),
        dec!(4.40),
        Some(100000),
    ),
    (
        "gpt-5",
        &["gpt-5-2025-08-07"],
        dec!(1.25),
        dec!(0.125),
        dec!(10.00),
        Some(128000),
    ),
    (
        "gpt-5-mini",
        &["gpt-5-mini-2025-08-07"],
        dec!(0.25),
        dec!(0.025),
        dec!(2.00),
        Some(128000),
    ),
    (
        "gpt-5-nano",
        &["gpt-5-nano-2025-08-07"],
        dec!(0.05),
        dec!(0.005),
        dec!(0.40),
        Some(128000),
    ),
    (
        "gpt-5.4",
        &[],
        dec!(2.50),
        dec!(0.25),
        dec!(15.00),
        Some(128000),
    ),
    (
        "text-embedding-3-small",
        &[],
        dec!(0.02),
        dec!(0.02),
        dec!(0),
        None,
    ),
    (
        "text-embedding-3-large",
        &[],
        dec!(0.13),
        dec!(0.13),
        dec!(0),
        None,
    ),
    (
        "gpt-4o-audio-preview",
        &["gpt-4o-audio-preview-2025-06-03"],
        dec!(2.50),
        dec!(2.50),
        dec!(10.00),
        Some(16384),
    ),
    (
        "gpt-3.5-turbo-instruct",
        &[],
        dec!(1.50),
        dec!(1.50),
        dec!(2.00),
        Some(4096),
    ),
];

#[test]
fn shipped_file_lists_every_model() {
    let prices = shipped();
    assert_eq!(prices.model_count(), SHIPPED_MODELS.len());
    assert!(!prices.dated_snapshot_fallback());

    for (name, aliases, input, cached_input, output, max_output) in SHIPPED_MODELS {
        for alias in std::iter::once(&name).chain(aliases) {
            let resolved = price(&prices, alias);
            assert_eq!(resolved.model(), name, "{alias}");
            assert_eq!(resolved.markup(), dec!(1), "{alias}");
        }

        let resolved = price(&prices, name);
        let standard = &resolved.price().standard;
        assert_eq!(per_million(standard.input), input, "{name} input");
        assert_eq!(
            per_million(standard.cached_input),
            cached_input,
            "{name} cached input"
        );
        assert_eq!(
            per_million(standard.cache_write),
            input,
            "{name} cache write"
        );
        assert_eq!(per_million(standard.output), output, "{name} output");
        assert_eq!(
            resolved.max_output_tokens(),
            max_output,
            "{name} max output"
        );
        assert_eq!(
            resolved.is_embedding(),
            name.starts_with("text-embedding"),
            "{name} kind"
        );
        assert_eq!(
            resolved.supports_audio(),
            name == "gpt-4o-audio-preview",
            "{name} audio"
        );
    }
}

#[test]
fn shipped_tiers_and_special_prices() {
    let prices = shipped();
    // (model, tier, input, cached input, output) per 1M tokens
    let tiers = [
        ("gpt-4o", "priority", dec!(4.25), dec!(2.125), dec!(17.00)),
        ("o3", "flex", dec!(1.00), dec!(0.25), dec!(4.00)),
        ("o4-mini", "flex", dec!(0.55), dec!(0.1375), dec!(2.20)),
        ("gpt-5", "flex", dec!(0.625), dec!(0.0625), dec!(5.00)),
        ("gpt-5", "priority", dec!(2.50), dec!(0.25), dec!(20.00)),
        ("gpt-5-mini", "flex", dec!(0.125), dec!(0.0125), dec!(1.00)),
        ("gpt-5-nano", "flex", dec!(0.025), dec!(0.0025), dec!(0.20)),
    ];
    for (model, tier, input, cached_input, output) in tiers {
        let resolved = price(&prices, model);
        let rates = &resolved.price().tiers[tier].rates;
        assert_eq!(per_million(rates.input), input, "{model} {tier} input");
        assert_eq!(
            per_million(rates.cached_input),
            cached_input,
            "{model} {tier} cached input"
        );
        assert_eq!(per_million(rates.output), output, "{model} {tier} output");
    }

    let long = price(&prices, "gpt-5.4")
        .price()
        .long_context
        .as_ref()
        .map(|long| {
            (
                long.threshold,
                per_million(long.rates.input),
                per_million(long.rates.cached_input),
                per_million(long.rates.output),
            )
        });
    assert_eq!(long, Some((272000, dec!(5), dec!(0.5), dec!(22.5))));

    let audio = price(&prices, "gpt-4o-audio-preview");
    let standard = &audio.price().standard;
    assert_eq!(standard.audio_input.map(per_million), Some(dec!(40)));
    assert_eq!(standard.audio_output.map(per_million), Some(dec!(80)));

    let launch = prices.resolve("o3", utc(2025, 5, 1)).unwrap();
    let launch_rates = &launch.price().standard;
    assert_eq!(per_million(launch_rates.input), dec!(10));
    assert_eq!(per_million(launch_rates.cached_input), dec!(2.5));
    assert_eq!(per_million(launch_rates.output), dec!(40));
    assert!(prices.resolve("o3", now()).is_some());
}

#[test]
fn shipped_table_renders_every_model() {
    let prices = shipped();
    let text = prices.render();
    for (name, aliases, ..) in SHIPPED_MODELS {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{name} "))),
            "{name} missing:\n{text}"
        );
        for alias in aliases {
            assert!(text.contains(alias), "{alias} missing:\n{text}");
        }
    }
    for part in [
        "priority 4.25/2.125/17.00",
        "flex x0.5",
        "above 272000: 5.00/0.50/22.50",
        "2025-04-16",
        "2025-06-10",
    ] {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }
}
