use rust_decimal::{Decimal, dec};

use super::{price, shipped, table};
use crate::money::Usd;
use crate::pricing::QuoteError;

struct Case {
    name: &'static str,
    model: &'static str,
    prompt_bound: u64,
    max_output: Option<u64>,
    n: u64,
    tier: Option<&'static str>,
    audio: bool,
    quote: Decimal,
}

fn case(
    name: &'static str,
    model: &'static str,
    prompt_bound: u64,
    max_output: Option<u64>,
    quote: Decimal,
) -> Case {
    Case {
        name,
        model,
        prompt_bound,
        max_output,
        n: 1,
        tier: None,
        audio: false,
        quote,
    }
}

#[test]
fn quotes_use_highest_applicable_rates() {
    let cases = [
        // 1000 * 2.50 + 500 * 10 = 7500 per 1M
        case("request limit", "gpt-4o", 1000, Some(500), dec!(0.0075)),
        // 1000 * 2.50 + 16384 * 10 = 2500 + 163840 = 166340 per 1M
        case("model cap", "gpt-4o", 1000, None, dec!(0.16634)),
        // 2000 * 0.15 + 3 * 100 * 0.60 = 300 + 180 = 480 per 1M
        Case {
            n: 3,
            ..case(
                "three choices",
                "gpt-4o-mini",
                2000,
                Some(100),
                dec!(0.00048),
            )
        },
        // 2000 * 0.15 + 3 * 16384 * 0.60 = 300 + 29491.2 = 29791.2 per 1M
        Case {
            n: 3,
            ..case(
                "three choices at model cap",
                "gpt-4o-mini",
                2000,
                None,
                dec!(0.0297912),
            )
        },
        // 1000 * 4.25 + 100 * 17 = 4250 + 1700 = 5950 per 1M
        Case {
            tier: Some("priority"),
            ..case("priority tier", "gpt-4o", 1000, Some(100), dec!(0.00595))
        },
        // 1000 * 0.625 + 100 * 5 = 625 + 500 = 1125 per 1M
        Case {
            tier: Some("flex"),
            ..case("flex tier", "gpt-5", 1000, Some(100), dec!(0.001125))
        },
        // gpt-4o lists no flex tier: 1000 * 2.50 + 100 * 10 = 3500 per 1M
        Case {
            tier: Some("flex"),
            ..case("unlisted tier", "gpt-4o", 1000, Some(100), dec!(0.0035))
        },
        // 300000 * 5 + 1000 * 22.50 = 1500000 + 22500 = 1522500 per 1M
        case("long context", "gpt-5.4", 300000, Some(1000), dec!(1.5225)),
        // 272000 * 2.50 + 1000 * 15 = 680000 + 15000 = 695000 per 1M
        case(
            "at long context threshold",
            "gpt-5.4",
            272000,
            Some(1000),
            dec!(0.695),
        ),
        // 1000 * 40 + 100 * 80 = 48000 per 1M
        Case {
            audio: true,
            ..case(
                "audio rates",
                "gpt-4o-audio-preview",
                1000,
                Some(100),
                dec!(0.048),
            )
        },
        // 1000 * 2.50 + 100 * 10 = 3500 per 1M
        case(
            "text only on audio model",
            "gpt-4o-audio-preview",
            1000,
            Some(100),
            dec!(0.0035),
        ),
        // gpt-4o has no audio prices, so its text rates stay: 3500 per 1M
        Case {
            audio: true,
            ..case(
                "audio on text model",
                "gpt-4o",
                1000,
                Some(100),
                dec!(0.0035),
            )
        },
        // 1000 * 0.13 = 130 per 1M, with no output part and no output limit needed
        case(
            "embedding",
            "text-embedding-3-large",
            1000,
            None,
            dec!(0.00013),
        ),
    ];

    let prices = shipped();
    for case in cases {
        let quote = price(&prices, case.model)
            .quote(
                case.prompt_bound,
                case.max_output,
                case.n,
                case.tier,
                case.audio,
            )
            .unwrap();
        assert_eq!(quote, Usd::new(case.quote), "{}", case.name);
    }
}

#[test]
fn quote_covers_cache_writes_and_markup() {
    let prices = table(
        r#"
        markup = "2"

        [models.m]
        input = "1.00"
        cached_input = "0.10"
        cache_write = "1.25"
        output = "2.00"
        "#,
    );
    // (1000 * 1.25 + 100 * 2) * 2 = 1450 * 2 = 2900 per 1M
    let quote = price(&prices, "m")
        .quote(1000, Some(100), 1, None, false)
        .unwrap();
    assert_eq!(quote, Usd::new(dec!(0.0029)));
}

#[test]
fn quote_without_output_limit_fails() {
    let prices = table("[models.m]\ninput = \"1\"\noutput = \"2\"\n");
    let error = price(&prices, "m")
        .quote(1000, None, 1, None, false)
        .unwrap_err();
    assert_eq!(
        error,
        QuoteError::NoOutputLimit {
            model: "m".to_string()
        }
    );
    assert!(
        error
            .to_string()
            .contains("set max_output_tokens for models.\"m\""),
        "{error}"
    );

    // The request's own limit is enough.
    assert!(
        price(&prices, "m")
            .quote(1000, Some(10), 1, None, false)
            .is_ok()
    );
}

#[test]
fn oversized_quote_fails_without_panic() {
    let prices = shipped();
    let error = price(&prices, "o1")
        .quote(u64::MAX, Some(u64::MAX), u64::MAX, None, true)
        .unwrap_err();
    assert!(matches!(error, QuoteError::TooLarge { .. }), "{error:?}");
}
