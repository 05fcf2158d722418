use rust_decimal::dec;

use super::{price, table, usage};
use crate::money::Usd;
use crate::pricing::value::per_million;
use crate::pricing::{PriceTable, PricingError};

#[test]
fn toml_numbers_parse_exactly() {
    let prices = table(
        r#"
        [models.numbers]
        input = 0.075
        cached_input = 1e-1
        cache_write = 1_000.5
        output = 2
        audio_input = 2.5E-1
        audio_output = "0.30"

        [models.artefact]
        input = 0.1
        output = 0.2
        "#,
    );

    let numbers = price(&prices, "numbers");
    let standard = &numbers.price().standard;
    assert_eq!(per_million(standard.input), dec!(0.075));
    assert_eq!(per_million(standard.cached_input), dec!(0.1));
    assert_eq!(per_million(standard.cache_write), dec!(1000.5));
    assert_eq!(per_million(standard.output), dec!(2));
    assert_eq!(standard.audio_input.map(per_million), Some(dec!(0.25)));
    assert_eq!(standard.audio_output.map(per_million), Some(dec!(0.3)));
    assert_eq!(standard.input, dec!(0.000000075));

    // 1M tokens at 0.1 plus 1M at 0.2 is 0.3 exactly, never 0.30000000000000004.
    let cost = price(&prices, "artefact").cost(&usage(1_000_000, 1_000_000), None);
    assert_eq!(cost.provider_cost, Usd::new(dec!(0.3)));
    assert_eq!(cost.provider_cost.to_string(), "0.3");
    assert!(!prices.render().contains("0000000"), "{}", prices.render());
}

#[test]
fn settings_default_and_both_places_parse() {
    let model = "[models.m]\ninput = \"1\"\noutput = \"1\"\n";

    let defaults = table(model);
    assert!(!defaults.dated_snapshot_fallback());
    assert_eq!(price(&defaults, "m").markup(), dec!(1));

    let top_level = table(&format!(
        "dated_snapshot_fallback = true\nmarkup = 1.25\n{model}"
    ));
    assert!(top_level.dated_snapshot_fallback());
    assert_eq!(price(&top_level, "m").markup(), dec!(1.25));

    let in_settings = table(&format!(
        "{model}[settings]\ndated_snapshot_fallback = true\nmarkup = \"1.25\"\n"
    ));
    assert!(in_settings.dated_snapshot_fallback());
    assert_eq!(price(&in_settings, "m").markup(), dec!(1.25));
    assert_eq!(in_settings.model_count(), 1);
}

#[test]
fn price_error_names_model_and_key() {
    let error = PriceTable::from_toml("[models.\"gpt-4o\"]\ninput = \"2.50\"\noutput = \"abc\"\n")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "models.\"gpt-4o\".output: invalid price \"abc\": expected a decimal number of USD per 1M tokens"
    );
}

/// A chat model with valid prices, to which each case adds or changes keys.
const VALID: &str = "[models.m]\ninput = \"1\"\noutput = \"2\"\n";

#[test]
fn strict_parsing_rejects_bad_files() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "unknown model key",
            format!("{VALID}colour = \"red\"\n"),
            &["models.\"m\".colour", "unknown field `colour`", "line 4"],
        ),
        (
            "unknown tier key",
            format!("{VALID}tiers.flex = {{ multiplier = \"0.5\", speed = 2 }}\n"),
            &["models.\"m\".tiers.flex.speed", "unknown field `speed`"],
        ),
        (
            "unknown history key",
            format!(
                "{VALID}effective_from = \"2025-01-01\"\n[[models.m.history]]\neffective_from = \"2024-01-01\"\ninput = \"1\"\noutput = \"1\"\nbatch = \"1\"\n"
            ),
            &["models.\"m\".history[0].batch", "unknown field `batch`"],
        ),
        (
            "unknown top-level key",
            format!("prices = 1\n{VALID}"),
            &["prices", "unknown field `prices`"],
        ),
        (
            "unknown settings key",
            format!("{VALID}[settings]\nmarkups = 1\n"),
            &["settings.markups"],
        ),
        (
            "missing input",
            "[models.m]\noutput = \"2\"\n".to_string(),
            &["models.\"m\".input is missing"],
        ),
        (
            "missing output on chat model",
            "[models.m]\ninput = \"1\"\n".to_string(),
            &["models.\"m\".output is missing", "kind = \"embedding\""],
        ),
        (
            "output on embedding model",
            format!("{VALID}kind = \"embedding\"\n"),
            &["models.\"m\".output", "input tokens only"],
        ),
        (
            "negative price string",
            "[models.m]\ninput = \"1\"\noutput = \"-2\"\n".to_string(),
            &["models.\"m\".output: invalid price \"-2\": a price cannot be negative"],
        ),
        (
            "negative price number",
            "[models.m]\ninput = -0.5\noutput = \"2\"\n".to_string(),
            &["models.\"m\".input: invalid price \"-0.5\": a price cannot be negative"],
        ),
        (
            "hexadecimal price",
            "[models.m]\ninput = 0x10\noutput = \"2\"\n".to_string(),
            &["models.\"m\".input: invalid price \"0x10\""],
        ),
        (
            "price of wrong type",
            "[models.m]\ninput = true\noutput = \"2\"\n".to_string(),
            &["models.\"m\".input: invalid price \"true\""],
        ),
        (
            "price above the limit",
            "[models.m]\ninput = \"1000001\"\noutput = \"2\"\n".to_string(),
            &["models.\"m\".input", "above the limit"],
        ),
        (
            "duplicate alias",
            format!(
                "{VALID}aliases = [\"m-2025-01-01\"]\n[models.n]\naliases = [\"m-2025-01-01\"]\ninput = \"1\"\noutput = \"1\"\n"
            ),
            &[
                "\"m-2025-01-01\"",
                "models.\"m\".aliases",
                "models.\"n\".aliases",
                "unique",
            ],
        ),
        (
            "alias equal to a model name",
            format!("{VALID}[models.n]\naliases = [\"m\"]\ninput = \"1\"\noutput = \"1\"\n"),
            &["\"m\"", "models.\"m\"", "models.\"n\".aliases"],
        ),
        (
            "max output of wrong type",
            format!("{VALID}max_output_tokens = \"big\"\n"),
            &["models.\"m\".max_output_tokens", "line 4"],
        ),
        (
            "negative max output",
            format!("{VALID}max_output_tokens = -5\n"),
            &["models.\"m\".max_output_tokens"],
        ),
        (
            "zero max output",
            format!("{VALID}max_output_tokens = 0\n"),
            &["models.\"m\".max_output_tokens", "at least 1"],
        ),
        (
            "unknown kind",
            format!("{VALID}kind = \"image\"\n"),
            &["models.\"m\".kind", "unknown variant `image`"],
        ),
        (
            "invalid date",
            format!("{VALID}effective_from = \"June 2025\"\n"),
            &["models.\"m\".effective_from: invalid date \"June 2025\""],
        ),
        (
            "date without time zone",
            format!("{VALID}effective_from = 2025-06-10T00:00:00\n"),
            &["models.\"m\".effective_from: invalid date"],
        ),
        (
            "history entry without date",
            format!(
                "{VALID}effective_from = \"2025-01-01\"\n[[models.m.history]]\ninput = \"1\"\noutput = \"1\"\n"
            ),
            &["models.\"m\".history[0].effective_from is missing"],
        ),
        (
            "history while current price undated",
            format!(
                "{VALID}[[models.m.history]]\neffective_from = \"2024-01-01\"\ninput = \"1\"\noutput = \"1\"\n"
            ),
            &["models.\"m\".effective_from is missing"],
        ),
        (
            "two prices on one date",
            format!(
                "{VALID}effective_from = \"2025-01-01\"\n[[models.m.history]]\neffective_from = \"2025-01-01T00:00:00Z\"\ninput = \"1\"\noutput = \"1\"\n"
            ),
            &["models.\"m\".history", "2025-01-01"],
        ),
        (
            "history entry missing output",
            format!(
                "{VALID}effective_from = \"2025-01-01\"\n[[models.m.history]]\neffective_from = \"2024-01-01\"\ninput = \"1\"\n"
            ),
            &["models.\"m\".history[0].output is missing"],
        ),
        (
            "tier with multiplier and rates",
            format!("{VALID}tiers.flex = {{ multiplier = \"0.5\", input = \"1\" }}\n"),
            &["models.\"m\".tiers.flex", "not both"],
        ),
        (
            "tier multiplier of zero",
            format!("{VALID}tiers.flex = {{ multiplier = 0 }}\n"),
            &["models.\"m\".tiers.flex.multiplier", "invalid factor \"0\""],
        ),
        (
            "explicit tier missing output",
            format!("{VALID}tiers.priority = {{ input = \"2\" }}\n"),
            &["models.\"m\".tiers.priority.output is missing"],
        ),
        (
            "tier named default",
            format!("{VALID}tiers.default = {{ multiplier = \"1\" }}\n"),
            &["models.\"m\".tiers.default", "standard rates"],
        ),
        (
            "explicit tier with long context",
            format!(
                "{VALID}tiers.priority = {{ input = \"2\", output = \"4\" }}\nlong_context = {{ threshold = 10, input = \"2\", output = \"3\" }}\n"
            ),
            &["models.\"m\".tiers.priority", "multiplier"],
        ),
        (
            "long context without threshold",
            format!("{VALID}long_context = {{ input = \"2\", output = \"3\" }}\n"),
            &["models.\"m\".long_context.threshold is missing"],
        ),
        (
            "zero markup",
            format!("markup = 0\n{VALID}"),
            &["markup: invalid factor \"0\""],
        ),
        (
            "negative model markup",
            format!("{VALID}markup = \"-1\"\n"),
            &["models.\"m\".markup: invalid factor \"-1\""],
        ),
        (
            "markup in two places",
            format!("markup = 2\n{VALID}[settings]\nmarkup = 3\n"),
            &["settings.markup", "one place"],
        ),
        (
            "empty alias",
            format!("{VALID}aliases = [\"\"]\n"),
            &["models.\"m\".aliases", "empty"],
        ),
        (
            "TOML syntax",
            "[models.m\ninput = 1\n".to_string(),
            &["invalid TOML"],
        ),
        (
            "models not a table",
            "models = 3\n".to_string(),
            &["models", "invalid type"],
        ),
    ];

    for (name, text, expected) in cases {
        let error = match PriceTable::from_toml(text) {
            Ok(_) => panic!("{name}: loaded, expected an error\n{text}"),
            Err(error) => error.to_string(),
        };
        for part in *expected {
            assert!(error.contains(part), "{name}: {error:?} lacks {part:?}");
        }
    }
}

#[test]
fn load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.toml");
    let error = PriceTable::load(&missing).unwrap_err();
    assert!(matches!(error, PricingError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.toml"), "{error}");
    assert!(error.to_string().contains("TOLLGATE_PRICING"), "{error}");

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(&invalid, "[models.m]\ninput = \"1\"\n").unwrap();
    let error = PriceTable::load(&invalid).unwrap_err().to_string();
    assert!(error.contains("invalid.toml"), "{error}");
    assert!(error.contains("models.\"m\".output is missing"), "{error}");

    let valid = dir.path().join("pricing.toml");
    std::fs::write(&valid, VALID).unwrap();
    assert_eq!(PriceTable::load(&valid).unwrap().model_count(), 1);
}

#[test]
fn module_doc_example_parses() {
    let prices = table(
        r#"
        dated_snapshot_fallback = false
        markup = "1.2"

        [models."gpt-5"]
        aliases = ["gpt-5-2025-08-07"]
        input = "1.25"
        cached_input = "0.125"
        output = "10.00"
        max_output_tokens = 128000
        tiers.flex.multiplier = "0.5"
        tiers.priority = { input = "2.50", cached_input = "0.25", output = "20.00" }
        "#,
    );
    let resolved = price(&prices, "gpt-5-2025-08-07");
    assert_eq!(resolved.markup(), dec!(1.2));
    assert_eq!(resolved.max_output_tokens(), Some(128000));
    assert_eq!(resolved.price().tiers.len(), 2);
}

#[test]
fn render_lists_every_model_exactly() {
    let prices = table(
        r#"
        [models.a]
        aliases = ["a-2025-01-01", "a-latest"]
        input = "0.075"
        output = 10
        max_output_tokens = 4096
        tiers.flex.multiplier = "0.5"
        long_context = { threshold = 1000, input = "0.15", output = "20" }

        [models.e]
        kind = "embedding"
        input = "0.02"
        markup = "1.5"
        "#,
    );
    let text = prices.render();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("2 models; prices in USD per 1M tokens"),
        "{text}"
    );
    assert!(lines[3].starts_with("MODEL"), "{text}");

    let a = lines[4];
    for part in [
        "a-2025-01-01, a-latest",
        "chat",
        "0.075",
        "10.00",
        "4096",
        "flex x0.5",
        "above 1000: 0.15/0.15/20.00",
        "always",
    ] {
        assert!(a.contains(part), "row of a lacks {part:?}: {a}");
    }
    let e = lines[5];
    for part in ["embedding", "0.02", "1.5 (model)"] {
        assert!(e.contains(part), "row of e lacks {part:?}: {e}");
    }
    assert_eq!(lines.len(), 6, "{text}");
}

#[test]
fn file_without_models_is_rejected() {
    for text in ["", "markup = \"1.2\"\n", "[models]\n"] {
        let error = PriceTable::from_toml(text).unwrap_err().to_string();
        assert!(error.contains("no model"), "{text:?}: {error}");
    }
}
