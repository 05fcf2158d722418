use chrono::{DateTime, Utc};
use rust_decimal::dec;

use super::{now, price, shipped, table, usage, utc};
use crate::money::Usd;
use crate::pricing::{PriceTable, ResolvedPrice};

/// Resolves a model in the proxy's order: the response's model first, then the request's.
fn resolve_either(prices: &PriceTable, response: &str, request: &str) -> Option<ResolvedPrice> {
    prices
        .resolve(response, now())
        .or_else(|| prices.resolve(request, now()))
}

const GPT_4O_ONLY: &str = r#"
    [models."gpt-4o"]
    aliases = ["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"]
    input = "2.50"
    cached_input = "1.25"
    output = "10.00"
"#;

#[test]
fn aliases_resolve_in_either_order() {
    let prices = shipped();
    let pairs = [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o", "gpt-4o-2024-11-20"),
        ("gpt-4o-2024-11-20", "no-such-model"),
        ("no-such-model", "gpt-4o-2024-08-06"),
        ("no-such-model", "gpt-4o"),
    ];
    for (response, request) in pairs {
        let resolved = resolve_either(&prices, response, request).unwrap();
        assert_eq!(resolved.model(), "gpt-4o", "{response} / {request}");
        assert!(!resolved.via_fallback(), "{response} / {request}");

        // 1000 * 2.50 + 500 * 10 = 7500 per 1M
        let cost = resolved.cost(&usage(1000, 500), None);
        assert_eq!(
            cost.provider_cost,
            Usd::new(dec!(0.0075)),
            "{response} / {request}"
        );
    }
}

#[test]
fn old_gpt_4o_snapshot_has_own_price() {
    let resolved = price(&shipped(), "gpt-4o-2024-05-13");
    assert_eq!(resolved.model(), "gpt-4o-2024-05-13");

    // 1000 * 5 + 500 * 15 = 12500 per 1M; 200 cached tokens get no discount.
    let cost = resolved.cost(&super::cached(1000, 200, 500), None);
    assert_eq!(cost.provider_cost, Usd::new(dec!(0.0125)));
}

#[test]
fn unlisted_snapshot_is_unpriced_by_default() {
    let prices = table(GPT_4O_ONLY);
    assert!(!prices.dated_snapshot_fallback());
    assert!(prices.resolve("gpt-4o-2024-05-13", now()).is_none());
}

#[test]
fn snapshot_fallback_strips_date_suffix() {
    let forms = [
        format!("dated_snapshot_fallback = true\n{GPT_4O_ONLY}"),
        format!("[settings]\ndated_snapshot_fallback = true\n{GPT_4O_ONLY}"),
    ];
    for text in forms {
        let prices = table(&text);
        assert!(prices.dated_snapshot_fallback());

        let resolved = prices.resolve("gpt-4o-2024-05-13", now()).unwrap();
        assert_eq!(resolved.model(), "gpt-4o");
        assert!(resolved.via_fallback());
        let cost = resolved.cost(&usage(1000, 500), None);
        assert_eq!(cost.provider_cost, Usd::new(dec!(0.0075)));

        let exact = prices.resolve("gpt-4o-2024-08-06", now()).unwrap();
        assert!(!exact.via_fallback());
    }
}

#[test]
fn snapshot_fallback_needs_a_real_date() {
    let prices = table(&format!("dated_snapshot_fallback = true\n{GPT_4O_ONLY}"));
    let not_dated = [
        "gpt-4o-latest",
        "gpt-4o-2024-13-01",
        "gpt-4o-2024-02-30",
        "gpt-4o-24-08-06",
        "gpt-4o2024-08-06",
        "-2024-08-06",
    ];
    for name in not_dated {
        assert!(prices.resolve(name, now()).is_none(), "{name}");
    }
}

#[test]
fn o3_price_follows_its_history() {
    let prices = shipped();
    let request = usage(1000, 500);
    // (time, price date, cost): before the cut 1000 * 10 + 500 * 40 = 30000 per 1M,
    // after it 1000 * 2 + 500 * 8 = 6000 per 1M.
    let cases = [
        ("2025-04-16T00:00:00Z", utc(2025, 4, 16), dec!(0.03)),
        ("2025-05-01T12:00:00Z", utc(2025, 4, 16), dec!(0.03)),
        ("2025-06-09T23:59:59Z", utc(2025, 4, 16), dec!(0.03)),
        ("2025-06-10T00:00:00Z", utc(2025, 6, 10), dec!(0.006)),
        ("2026-01-01T00:00:00Z", utc(2025, 6, 10), dec!(0.006)),
    ];
    for (at, effective_from, expected) in cases {
        let at: DateTime<Utc> = at.parse().unwrap();
        let resolved = prices.resolve("o3-2025-04-16", at).unwrap();
        assert_eq!(resolved.effective_from(), effective_from, "{at}");

        let cost = resolved.cost(&request, None);
        assert_eq!(cost.provider_cost, Usd::new(expected), "{at}");
        assert_eq!(cost.effective_from, effective_from, "{at}");
    }

    let before_launch: DateTime<Utc> = "2025-04-15T23:59:59Z".parse().unwrap();
    assert!(prices.resolve("o3", before_launch).is_none());
}

#[test]
fn future_only_price_is_unpriced_now() {
    let prices = table(
        r#"
        [models.later]
        effective_from = "2999-01-01"
        input = "1"
        output = "2"
        "#,
    );
    assert!(prices.resolve("later", Utc::now()).is_none());
    assert!(prices.resolve("later", utc(2999, 1, 2)).is_some());
}

#[test]
fn scheduled_price_takes_over_on_its_date() {
    let prices = table(
        r#"
        [models.m]
        effective_from = 2025-01-01
        input = "1"
        output = "2"

        [[models.m.history]]
        effective_from = "2030-01-01T02:00:00+02:00"
        input = "3"
        output = "4"
        "#,
    );
    let request = usage(1_000_000, 0);

    let current = prices.resolve("m", now()).unwrap();
    assert_eq!(
        current.cost(&request, None).provider_cost,
        Usd::new(dec!(1))
    );

    // 02:00 at +02:00 is midnight UTC.
    let scheduled = prices.resolve("m", utc(2030, 1, 1)).unwrap();
    assert_eq!(scheduled.effective_from(), utc(2030, 1, 1));
    assert_eq!(
        scheduled.cost(&request, None).provider_cost,
        Usd::new(dec!(3))
    );
}
