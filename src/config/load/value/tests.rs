use rust_decimal::dec;
use toml::de::DeTable;

use super::*;

/// Parses `value = <toml>` and hands the value to `check`.
fn with_toml(toml: &str, check: impl FnOnce(Raw<'_>)) {
    let document = format!("value = {toml}");
    let table = DeTable::parse(&document).expect("valid TOML").into_inner();
    let value = table.get("value").expect("value key");
    check(Raw::Toml(value.get_ref()));
}

fn text_of(result: Result<Value, Expected>) -> Option<String> {
    match result {
        Ok(Value::Text(text)) => Some(text),
        _ => None,
    }
}

#[test]
fn urls_lose_trailing_slash_and_version() {
    let cases = [
        (
            Kind::ApiBaseUrl,
            "https://api.openai.com/v1",
            "https://api.openai.com",
        ),
        (
            Kind::ApiBaseUrl,
            "https://api.openai.com/v1/",
            "https://api.openai.com",
        ),
        (
            Kind::ApiBaseUrl,
            "https://api.openai.com/",
            "https://api.openai.com",
        ),
        (
            Kind::ApiBaseUrl,
            "http://127.0.0.1:8000/proxy/v1",
            "http://127.0.0.1:8000/proxy",
        ),
        (Kind::ApiBaseUrl, "https://v1", "https://v1"),
        (Kind::ApiBaseUrl, "https://host/v10", "https://host/v10"),
        (Kind::Url, "http://127.0.0.1:5001/", "http://127.0.0.1:5001"),
        (
            Kind::Url,
            "http://blnk.internal/v1",
            "http://blnk.internal/v1",
        ),
        (
            Kind::Url,
            " https://blnk.internal ",
            "https://blnk.internal",
        ),
    ];
    for (kind, input, expected) in cases {
        let parsed = text_of(parse(kind, Raw::Text(input)));
        assert_eq!(parsed.as_deref(), Some(expected), "{input:?}");
    }
}

#[test]
fn urls_outside_http_are_rejected() {
    let cases = [
        "ftp://example.com",
        "api.openai.com",
        "https://",
        "https://user:password@example.com",
        "https://example.com/?key=1",
        "https://example.com/#top",
        "https://exa mple.com",
        "",
    ];
    for input in cases {
        assert!(parse(Kind::Url, Raw::Text(input)).is_err(), "{input:?}");
    }
}

#[test]
fn customer_header_rejects_hop_by_hop() {
    let cases = [
        ("X-Customer-Id", Some("x-customer-id")),
        ("x-tenant", Some("x-tenant")),
        ("Authorization", None),
        ("Connection", None),
        ("Transfer-Encoding", None),
        ("TE", None),
        ("Upgrade", None),
        ("bad header", None),
        ("", None),
    ];
    for (input, expected) in cases {
        let parsed = match parse(Kind::CustomerHeader, Raw::Text(input)) {
            Ok(Value::Header(header)) => Some(header.as_str().to_owned()),
            _ => None,
        };
        assert_eq!(parsed.as_deref(), expected, "{input:?}");
    }
}

#[test]
fn sizes_accept_integers_and_units() {
    let kind = Kind::Size { min_bytes: 1024 };
    let text_cases = [
        ("64MiB", Some(64 << 20)),
        ("1024", Some(1024)),
        ("1023", None),
        ("1KiB", Some(1024)),
        ("lots", None),
    ];
    for (input, expected) in text_cases {
        let parsed = match parse(kind, Raw::Text(input)) {
            Ok(Value::Integer(bytes)) => Some(bytes),
            _ => None,
        };
        assert_eq!(parsed, expected, "{input:?}");
    }

    let toml_cases = [
        ("2048", Some(2048)),
        ("\"512KiB\"", Some(512 << 10)),
        ("0x800", Some(2048)),
        ("-2048", None),
        ("2048.0", None),
        ("true", None),
    ];
    for (input, expected) in toml_cases {
        with_toml(input, |raw| {
            let parsed = match parse(kind, raw) {
                Ok(Value::Integer(bytes)) => Some(bytes),
                _ => None,
            };
            assert_eq!(parsed, expected, "{input}");
        });
    }
}

#[test]
fn durations_accept_integer_seconds() {
    let cases = [
        (Kind::Duration, "30", Some(Duration::from_secs(30))),
        (
            Kind::Duration,
            "\"250ms\"",
            Some(Duration::from_millis(250)),
        ),
        (Kind::Duration, "0", Some(Duration::ZERO)),
        (Kind::PositiveDuration, "0", None),
        (Kind::PositiveDuration, "\"0s\"", None),
        (Kind::Duration, "-1", None),
        (Kind::Duration, "1.5", None),
        (Kind::Duration, "\"abc\"", None),
    ];
    for (kind, input, expected) in cases {
        with_toml(input, |raw| {
            let parsed = match parse(kind, raw) {
                Ok(Value::Duration(duration)) => Some(duration),
                _ => None,
            };
            assert_eq!(parsed, expected, "{kind:?} {input}");
        });
    }
}

#[test]
fn zero_duration_error_asks_for_positive() {
    let error = parse(Kind::PositiveDuration, Raw::Text("0s")).expect_err("zero rejected");
    assert!(error.contains("greater than zero"), "{error}");
}

#[test]
fn counts_must_be_positive_integers() {
    let cases = [
        ("4096", Some(4096)),
        (" 12 ", Some(12)),
        ("0", None),
        ("-1", None),
        ("1e3", None),
        ("many", None),
    ];
    for (input, expected) in cases {
        let parsed = match parse(Kind::Count, Raw::Text(input)) {
            Ok(Value::Integer(count)) => Some(count),
            _ => None,
        };
        assert_eq!(parsed, expected, "{input:?}");
    }
}

#[test]
fn bools_accept_words_and_digits() {
    let cases = [
        ("true", Some(true)),
        ("TRUE", Some(true)),
        ("1", Some(true)),
        ("false", Some(false)),
        ("0", Some(false)),
        ("yes", None),
        ("", None),
    ];
    for (input, expected) in cases {
        let parsed = match parse(Kind::Bool, Raw::Text(input)) {
            Ok(Value::Bool(flag)) => Some(flag),
            _ => None,
        };
        assert_eq!(parsed, expected, "{input:?}");
    }
    with_toml("\"true\"", |raw| {
        assert!(matches!(parse(Kind::Bool, raw), Ok(Value::Bool(true))));
    });
    with_toml("1", |raw| {
        assert!(
            parse(Kind::Bool, raw).is_err(),
            "TOML integer is not a bool"
        );
    });
}

#[test]
fn decimals_parse_exactly_from_text() {
    let cases = [
        ("1", Some(dec!(1))),
        ("1.1", Some(dec!(1.1))),
        ("\"1.1\"", Some(dec!(1.1))),
        (
            "1.000000000000000000001",
            Some(dec!(1.000000000000000000001)),
        ),
        ("1_000.5", Some(dec!(1000.5))),
        ("125e-2", Some(dec!(1.25))),
        ("0", None),
        ("-1.5", None),
        ("nan", None),
        ("inf", None),
        ("\"cheap\"", None),
    ];
    for (input, expected) in cases {
        with_toml(input, |raw| {
            let parsed = match parse(Kind::PositiveDecimal, raw) {
                Ok(Value::Decimal(decimal)) => Some(decimal),
                _ => None,
            };
            assert_eq!(parsed, expected, "{input}");
        });
    }
}

#[test]
fn routes_come_from_arrays_or_commas() {
    let text_cases: [(&str, Option<Vec<&str>>); 5] = [
        (
            "/v1/files, /v1/batches",
            Some(vec!["/v1/files", "/v1/batches"]),
        ),
        ("/v1/files,,", Some(vec!["/v1/files"])),
        ("", Some(vec![])),
        ("v1/files", None),
        ("/v1/files?purpose=batch", None),
    ];
    for (input, expected) in text_cases {
        let parsed = match parse(Kind::Routes, Raw::Text(input)) {
            Ok(Value::Routes(routes)) => Some(routes),
            _ => None,
        };
        let expected: Option<Vec<String>> =
            expected.map(|routes| routes.into_iter().map(str::to_owned).collect());
        assert_eq!(parsed, expected, "{input:?}");
    }

    let toml_cases = [
        ("[\"/v1/files\"]", true),
        ("[]", true),
        ("[\"/v1/files\", 3]", false),
        ("[\"\"]", false),
        ("\"/v1/files\"", false),
        ("3", false),
    ];
    for (input, valid) in toml_cases {
        with_toml(input, |raw| {
            assert_eq!(parse(Kind::Routes, raw).is_ok(), valid, "{input}");
        });
    }
}

#[test]
fn secrets_must_be_header_safe_tokens() {
    let cases = [
        ("sk-test-secret-123", true),
        ("", false),
        ("sk test", false),
        ("sk-test\n", false),
        ("sk-tést", false),
    ];
    for (input, valid) in cases {
        let parsed = parse(Kind::Secret, Raw::Text(input));
        assert_eq!(parsed.is_ok(), valid, "{input:?}");
    }
}

#[test]
fn choices_accept_their_words() {
    let cases = [
        (Kind::LogFormat, "json", true),
        (Kind::LogFormat, "Text", true),
        (Kind::LogFormat, "yaml", false),
        (Kind::DisconnectPolicy, "stop", true),
        (Kind::DisconnectPolicy, "abort", false),
        (Kind::Durability, "power", true),
        (Kind::Durability, "disk", false),
        (Kind::LogFilter, "tollgate=debug,info", true),
        (Kind::LogFilter, "info,,==", false),
        (Kind::Address, "[::1]:9090", true),
        (Kind::Address, "localhost:9090", false),
        (Kind::Text, "  ", false),
        (Kind::Path, "", false),
    ];
    for (kind, input, valid) in cases {
        let parsed = parse(kind, Raw::Text(input));
        assert_eq!(parsed.is_ok(), valid, "{kind:?} {input:?}");
    }
}

#[test]
fn render_quotes_strings_only() {
    assert_eq!(Raw::Text("abc").render(), "\"abc\"");
    assert_eq!(Raw::Text("a\"b\n").render(), "\"a\\\"b\\n\"");
    let cases = [
        ("\"abc\"", "\"abc\""),
        ("-5", "-5"),
        ("0x1F", "0x1F"),
        ("1.5", "1.5"),
        ("true", "true"),
        ("[1, 2]", "[...]"),
        ("{ a = 1 }", "{...}"),
    ];
    for (input, expected) in cases {
        with_toml(input, |raw| assert_eq!(raw.render(), expected, "{input}"));
    }
}

#[test]
fn render_masks_url_credentials() {
    let cases = [
        (
            "https://user:pw-secret-123@host/v1",
            "\"https://****@host/v1\"",
        ),
        ("https://user@host", "\"https://****@host\""),
        ("https://host/a@b", "\"https://host/a@b\""),
        ("mailto:a@b", "\"mailto:a@b\""),
    ];
    for (input, expected) in cases {
        assert_eq!(Raw::Text(input).render(), expected, "{input}");
    }
}
