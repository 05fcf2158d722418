use rust_decimal::Decimal;
use rust_decimal::dec;

use super::{cached, price, shipped, table, usage};
use crate::money::{Nanos, Usd};
use crate::usage::Usage;

struct Case {
    name: &'static str,
    model: &'static str,
    usage: Usage,
    tier: Option<&'static str>,
    cost: Decimal,
    tier_used: Option<&'static str>,
    long_context: bool,
    warnings: usize,
}

fn case(name: &'static str, model: &'static str, usage: Usage, cost: Decimal) -> Case {
    Case {
        name,
        model,
        usage,
        tier: None,
        cost,
        tier_used: None,
        long_context: false,
        warnings: 0,
    }
}

#[test]
fn shipped_prices_cost_each_token_once() {
    let cases = [
        // 86 * 0.15 + 17817 * 0.075 + 120 * 0.60 = 12.9 + 1336.275 + 72 = 1421.175 per 1M
        case(
            "cached not added twice",
            "gpt-4o-mini",
            cached(17903, 17817, 120),
            dec!(0.001421175),
        ),
        // 2370 * 2.50 + 60024 * 1.25 + 214 * 10 = 5925 + 75030 + 2140 = 83095 per 1M
        case(
            "cached at cached rate",
            "gpt-4o",
            cached(62394, 60024, 214),
            dec!(0.083095),
        ),
        // 1250 * 1.10 + 780 * 4.40 = 1375 + 3432 = 4807 per 1M; reasoning is inside the 780
        case(
            "reasoning inside completion",
            "o4-mini",
            Usage {
                reasoning_tokens: Some(704),
                ..usage(1250, 780)
            },
            dec!(0.004807),
        ),
        // 1000 * 2.50 + 500 * 10 = 7500 per 1M; prediction tokens are inside the 500
        case(
            "predictions inside completion",
            "gpt-4o",
            Usage {
                accepted_prediction_tokens: Some(100),
                rejected_prediction_tokens: Some(50),
                ..usage(1000, 500)
            },
            dec!(0.0075),
        ),
        // 7 * 0.15 + 1 * 0.60 = 1.65 per 1M
        case(
            "tiny exact cost",
            "gpt-4o-mini",
            usage(7, 1),
            dec!(0.00000165),
        ),
        // 2 * 0.15 + 1023 * 0.075 + 1 * 0.60 = 0.3 + 76.725 + 0.6 = 77.625 per 1M
        case(
            "nine decimal cost",
            "gpt-4o-mini",
            cached(1025, 1023, 1),
            dec!(0.000077625),
        ),
        // 10 * 0.02 = 0.2 per 1M
        case(
            "embedding prompt only",
            "text-embedding-3-small",
            usage(10, 0),
            dec!(0.0000002),
        ),
        // text in 40 * 2.50 + audio in 1080 * 40 + text out 40 * 10 + audio out 820 * 80
        // = 100 + 43200 + 400 + 65600 = 109300 per 1M
        case(
            "audio at audio rates",
            "gpt-4o-audio-preview",
            Usage {
                prompt_audio_tokens: Some(1080),
                completion_audio_tokens: Some(820),
                ..usage(1120, 860)
            },
            dec!(0.1093),
        ),
        // 1000 * 2.50 + 500 * 10 = 7500 per 1M: "default" is the standard tier
        Case {
            tier: Some("default"),
            ..case(
                "default tier is standard",
                "gpt-4o",
                usage(1000, 500),
                dec!(0.0075),
            )
        },
        // flex is 0.5 * (1.25 / 0.125 / 10): 1000 * 0.625 + 1000 * 0.0625 + 100 * 5
        // = 625 + 62.5 + 500 = 1187.5 per 1M
        Case {
            tier: Some("flex"),
            tier_used: Some("flex"),
            ..case(
                "flex multiplier",
                "gpt-5",
                cached(2000, 1000, 100),
                dec!(0.0011875),
            )
        },
        // 600 * 4.25 + 400 * 2.125 + 100 * 17 = 2550 + 850 + 1700 = 5100 per 1M
        Case {
            tier: Some("priority"),
            tier_used: Some("priority"),
            ..case(
                "priority explicit rates",
                "gpt-4o",
                cached(1000, 400, 100),
                dec!(0.0051),
            )
        },
        // 1000 * 1.00 + 1000 * 4.00 = 5000 per 1M
        Case {
            tier: Some("flex"),
            tier_used: Some("flex"),
            ..case("flex explicit rates", "o3", usage(1000, 1000), dec!(0.005))
        },
        // gpt-4o lists no scale tier: 1000 * 2.50 + 500 * 10 = 7500 per 1M, with a warning
        Case {
            tier: Some("scale"),
            warnings: 1,
            ..case(
                "unknown tier is standard",
                "gpt-4o",
                usage(1000, 500),
                dec!(0.0075),
            )
        },
        // 200000 * 5 + 100000 * 0.50 + 1000 * 22.50 = 1000000 + 50000 + 22500 per 1M
        Case {
            long_context: true,
            ..case(
                "long context above threshold",
                "gpt-5.4",
                cached(300000, 100000, 1000),
                dec!(1.0725),
            )
        },
        // 272000 * 2.50 + 1000 * 15 = 680000 + 15000 = 695000 per 1M
        case(
            "threshold itself is standard",
            "gpt-5.4",
            usage(272000, 1000),
            dec!(0.695),
        ),
        // 272001 * 5 = 1360005 per 1M
        Case {
            long_context: true,
            ..case(
                "one token above threshold",
                "gpt-5.4",
                usage(272001, 0),
                dec!(1.360005),
            )
        },
    ];

    let prices = shipped();
    for case in cases {
        let cost = price(&prices, case.model).cost(&case.usage, case.tier);
        let name = case.name;
        assert_eq!(
            cost.provider_cost,
            Usd::new(case.cost),
            "{name}: provider cost"
        );
        assert_eq!(
            cost.customer_price,
            Usd::new(case.cost),
            "{name}: customer price"
        );
        assert_eq!(
            cost.amount,
            Usd::new(case.cost).to_nanos(),
            "{name}: amount"
        );
        assert_eq!(cost.markup, Decimal::ONE, "{name}: markup");
        assert_eq!(cost.service_tier.as_deref(), case.tier_used, "{name}: tier");
        assert_eq!(cost.long_context, case.long_context, "{name}: long context");
        assert_eq!(
            cost.warnings.len(),
            case.warnings,
            "{name}: {:?}",
            cost.warnings
        );
    }
}

#[test]
fn amounts_round_to_exact_nanos() {
    let prices = shipped();
    let mini = price(&prices, "gpt-4o-mini");

    let tiny = mini.cost(&usage(7, 1), None);
    assert_eq!(tiny.provider_cost, Usd::new(dec!(0.00000165)));
    assert_eq!(tiny.amount, Nanos(1650));

    let nine_decimals = mini.cost(&cached(1025, 1023, 1), None);
    assert_eq!(nine_decimals.customer_price, Usd::new(dec!(0.000077625)));
    assert_eq!(nine_decimals.amount, Nanos(77625));

    // 1 * 0.005 per 1M = 0.000000005 USD, which is 5 nanos exactly.
    let nano = price(&prices, "gpt-5-nano").cost(&cached(1, 1, 0), None);
    assert_eq!(nano.amount, Nanos(5));
}

#[test]
fn cost_names_model_and_price_date() {
    let prices = shipped();

    let alias = price(&prices, "gpt-4o-2024-08-06").cost(&usage(1, 1), None);
    assert_eq!(alias.model, "gpt-4o");
    assert_eq!(
        alias.effective_from,
        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
    );

    let o3 = price(&prices, "o3").cost(&usage(1, 1), None);
    assert_eq!(o3.model, "o3");
    assert_eq!(o3.effective_from, super::utc(2025, 6, 10));
}

#[test]
fn cache_writes_use_cache_write_price() {
    let prices = table(
        r#"
        [models.explicit]
        input = "1.00"
        cached_input = "0.10"
        cache_write = "1.25"
        output = "2.00"

        [models.defaulted]
        input = "1.00"
        cached_input = "0.10"
        output = "2.00"
        "#,
    );
    let with_writes = Usage {
        cache_write_tokens: Some(300),
        ..cached(1000, 200, 0)
    };

    // 500 * 1.00 + 200 * 0.10 + 300 * 1.25 = 500 + 20 + 375 = 895 per 1M
    let explicit = price(&prices, "explicit").cost(&with_writes, None);
    assert_eq!(explicit.provider_cost, Usd::new(dec!(0.000895)));

    // 500 * 1.00 + 200 * 0.10 + 300 * 1.00 = 820 per 1M
    let defaulted = price(&prices, "defaulted").cost(&with_writes, None);
    assert_eq!(defaulted.provider_cost, Usd::new(dec!(0.00082)));
}

#[test]
fn negative_remainders_clamp_with_warning() {
    let prices = shipped();

    // 150 cached of 100 prompt tokens: uncached is clamped to 0, so the cost is
    // 150 * 0.075 + 10 * 0.60 = 11.25 + 6 = 17.25 per 1M.
    let prompt = price(&prices, "gpt-4o-mini").cost(&cached(100, 150, 10), None);
    assert_eq!(prompt.provider_cost, Usd::new(dec!(0.00001725)));
    assert_eq!(prompt.warnings.len(), 1, "{:?}", prompt.warnings);
    assert!(
        prompt.warnings[0].contains("exceed prompt_tokens"),
        "{:?}",
        prompt.warnings
    );

    // 20 audio of 10 completion tokens: text output is clamped to 0, so 20 * 80 = 1600 per 1M.
    let audio_out = Usage {
        completion_audio_tokens: Some(20),
        ..usage(0, 10)
    };
    let completion = price(&prices, "gpt-4o-audio-preview").cost(&audio_out, None);
    assert_eq!(completion.provider_cost, Usd::new(dec!(0.0016)));
    assert_eq!(completion.warnings.len(), 1, "{:?}", completion.warnings);
    assert!(
        completion.warnings[0].contains("exceed completion_tokens"),
        "{:?}",
        completion.warnings
    );
}

#[test]
fn audio_without_prices_uses_text_rates() {
    let audio = Usage {
        prompt_audio_tokens: Some(100),
        completion_audio_tokens: Some(50),
        ..usage(1000, 100)
    };
    let cost = price(&shipped(), "gpt-4o").cost(&audio, None);

    // 900 * 2.50 + 100 * 2.50 + 50 * 10 + 50 * 10 = 2500 + 1000 = 3500 per 1M
    assert_eq!(cost.provider_cost, Usd::new(dec!(0.0035)));
    assert_eq!(cost.warnings.len(), 2, "{:?}", cost.warnings);
    assert!(
        cost.warnings[0].contains("no audio_input price"),
        "{:?}",
        cost.warnings
    );
    assert!(
        cost.warnings[1].contains("no audio_output price"),
        "{:?}",
        cost.warnings
    );
}

#[test]
fn embedding_ignores_completion_tokens_with_warning() {
    // 1000 * 0.13 = 130 per 1M; the 5 completion tokens are not charged.
    let cost = price(&shipped(), "text-embedding-3-large").cost(&usage(1000, 5), None);
    assert_eq!(cost.provider_cost, Usd::new(dec!(0.00013)));
    assert_eq!(cost.warnings.len(), 1, "{:?}", cost.warnings);
}

#[test]
fn huge_usage_does_not_panic() {
    let prices = shipped();
    let huge = Usage {
        prompt_tokens: u64::MAX,
        completion_tokens: u64::MAX,
        cached_tokens: Some(u64::MAX),
        cache_write_tokens: Some(u64::MAX),
        prompt_audio_tokens: Some(u64::MAX),
        completion_audio_tokens: Some(u64::MAX),
        ..Usage::default()
    };
    for model in ["gpt-4o-audio-preview", "o1", "gpt-5.4"] {
        let cost = price(&prices, model).cost(&huge, Some("priority"));
        assert!(cost.amount.is_positive(), "{model}");
        assert!(!cost.warnings.is_empty(), "{model}");
    }
}

#[test]
fn markup_scales_customer_price_only() {
    let text = r#"
        markup = "1.5"

        [models.global]
        input = "2.50"
        output = "10.00"

        [models.own]
        markup = 2
        input = "2.50"
        output = "10.00"
    "#;
    let prices = table(text);
    let request = usage(1000, 500);

    // Provider cost 1000 * 2.50 + 500 * 10 = 7500 per 1M; customer price 7500 * 1.5 = 11250.
    let global = price(&prices, "global").cost(&request, None);
    assert_eq!(global.provider_cost, Usd::new(dec!(0.0075)));
    assert_eq!(global.customer_price, Usd::new(dec!(0.01125)));
    assert_eq!(global.amount, Nanos(11_250_000));
    assert_eq!(global.markup, dec!(1.5));

    // The model's own markup of 2 overrides the global 1.5.
    let own = price(&prices, "own").cost(&request, None);
    assert_eq!(own.provider_cost, Usd::new(dec!(0.0075)));
    assert_eq!(own.customer_price, Usd::new(dec!(0.015)));
    assert_eq!(own.amount, Nanos(15_000_000));
    assert_eq!(own.markup, dec!(2));
}

#[test]
fn default_markup_applies_without_file_markup() {
    let request = usage(1000, 500);
    let unmarked = r#"
        [models.m]
        input = "2.50"
        output = "10.00"
    "#;

    // The file sets no markup, so the default of 1.2 applies: 7500 * 1.2 = 9000 per 1M.
    let defaulted = table(unmarked).with_default_markup(dec!(1.2)).unwrap();
    let cost = price(&defaulted, "m").cost(&request, None);
    assert_eq!(cost.customer_price, Usd::new(dec!(0.009)));

    // The file's markup wins over the default.
    let marked = format!("markup = \"1.1\"\n{unmarked}");
    let file_wins = table(&marked).with_default_markup(dec!(1.2)).unwrap();
    let cost = price(&file_wins, "m").cost(&request, None);
    assert_eq!(cost.customer_price, Usd::new(dec!(0.00825)));
}

#[test]
fn out_of_range_default_markup_rejected() {
    for markup in [dec!(0), dec!(-1), dec!(1000.5)] {
        let result = table("[models.m]\ninput = 1\noutput = 1\n").with_default_markup(markup);
        assert!(result.is_err(), "{markup}");
    }
}

#[test]
fn extreme_prices_do_not_panic() {
    // The largest accepted price with the most decimal places, a 1000x tier multiplier and
    // a 1000x markup: the computation stays inside Decimal's range.
    let prices = table(
        r#"
        markup = 1000

        [models.m]
        input = "999999.9999999999999999999999"
        output = "1000000"
        audio_input = "0.0000000000000000000001"
        audio_output = "1000000"
        tiers.priority.multiplier = 1000
        "#,
    );
    let huge = Usage {
        prompt_tokens: u64::MAX,
        completion_tokens: u64::MAX,
        prompt_audio_tokens: Some(1),
        completion_audio_tokens: Some(u64::MAX / 2),
        ..Usage::default()
    };
    let cost = price(&prices, "m").cost(&huge, Some("priority"));
    assert!(cost.amount.is_positive());
    assert!(cost.warnings.is_empty(), "{:?}", cost.warnings);
}
