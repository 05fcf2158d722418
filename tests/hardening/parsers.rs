//! Property tests of the parsers that read untrusted input: the usage reader of response
//! bodies, the request-facts parser and the `stream_options` rewrite, the JSON depth
//! pre-scan, and the price file.
//! Each property runs a bounded number of cases so that `cargo test` stays short; the
//! `fuzz/` crate runs the same targets without a bound.

use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Map, Value};

use tollgate::billing::request::{RequestFacts, force_include_usage};
use tollgate::limits::check_json_depth;
use tollgate::pricing::PriceTable;
use tollgate::usage::{Endpoint, Usage, read_response};

const SHIPPED_PRICES: &str = include_str!("../../pricing.toml");

/// Any JSON value, nested a few levels, with the keys the parsers look for among the keys.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("model".to_owned()),
        Just("stream".to_owned()),
        Just("stream_options".to_owned()),
        Just("include_usage".to_owned()),
        Just("usage".to_owned()),
        Just("prompt_tokens".to_owned()),
        Just("completion_tokens".to_owned()),
        Just("input_tokens".to_owned()),
        Just("prompt_tokens_details".to_owned()),
        Just("cached_tokens".to_owned()),
        Just("max_tokens".to_owned()),
        Just("n".to_owned()),
        Just("messages".to_owned()),
        Just("input_audio".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("data:image/png;base64,AAAA")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Generates request objects: arbitrary members, usually a model, always `stream: true`,
/// and any kind of `stream_options`.
fn request_object() -> impl Strategy<Value = Map<String, Value>> {
    // NOTE: the rewrite re-serializes the members of stream_options, and serde_json (without
    // its float_roundtrip feature) can move a float there by one unit in the last place. The
    // members are drawn without floats, because real stream_options members are flags.
    let option_member = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let stream_options = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        json_value()
            .prop_filter("objects come from option_member", |value| !value.is_null()
                && !value.is_object())
            .prop_map(Some),
        prop::collection::vec(("[a-z_]{1,8}", option_member), 0..4)
            .prop_map(|members| Some(Value::Object(members.into_iter().collect()))),
    ];
    (
        prop::collection::vec(("[a-z_]{1,10}", json_value()), 0..6),
        stream_options,
        any::<bool>(),
    )
        .prop_map(|(members, stream_options, with_model)| {
            let mut object: Map<String, Value> = members.into_iter().collect();
            object.remove("stream_options");
            if with_model {
                object.insert("model".into(), Value::from("gpt-4o-mini"));
            }
            object.insert("stream".into(), Value::Bool(true));
            if let Some(options) = stream_options {
                object.insert("stream_options".into(), options);
            }
            object
        })
}

/// Edits a valid price file: each edit inserts, deletes or overwrites text at a position.
fn mutated_price_file() -> impl Strategy<Value = String> {
    let snippet = prop_oneof![
        Just("\"".to_owned()),
        Just("]".to_owned()),
        Just("[".to_owned()),
        Just("=".to_owned()),
        Just("\n".to_owned()),
        Just("-1".to_owned()),
        Just("1e999".to_owned()),
        Just("\"NaN\"".to_owned()),
        Just("inf".to_owned()),
        Just("79228162514264337593543950335".to_owned()),
        Just("0.0000000000000000000000000001".to_owned()),
        Just("\n[models.\"gpt-4o\"]\ninput = \"1\"\n".to_owned()),
        Just("\naliases = [\"gpt-4o\"]\n".to_owned()),
        Just("\neffective_from = \"2999-12-31\"\n".to_owned()),
        Just("\nmarkup = \"1000\"\n".to_owned()),
        ".{0,8}",
    ];
    let edit = (any::<usize>(), 0usize..3, snippet, 0usize..16);
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut text = SHIPPED_PRICES.to_owned();
        for (position, kind, snippet, length) in edits {
            let mut at = position % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + length).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            match kind {
                0 => text.insert_str(at, &snippet),
                1 => text.replace_range(at..end, ""),
                _ => text.replace_range(at..end, &snippet),
            }
        }
        text
    })
}

/// Returns how deeply arrays and objects nest in `value`.
fn json_depth(value: &Value) -> usize {
    let children = match value {
        Value::Array(items) => items.iter().map(json_depth).max(),
        Value::Object(members) => members.values().map(json_depth).max(),
        _ => return 0,
    };
    1 + children.unwrap_or(0)
}

fn any_usage() -> impl Strategy<Value = Usage> {
    let count = prop_oneof![0u64..5_000_000, any::<u64>()];
    let part = prop::option::of(count.clone());
    (
        count.clone(),
        count,
        part.clone(),
        part.clone(),
        part.clone(),
        part.clone(),
        part,
    )
        .prop_map(
            |(prompt, completion, cached, cache_write, audio_in, reasoning, audio_out)| Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: cached,
                cache_write_tokens: cache_write,
                prompt_audio_tokens: audio_in,
                reasoning_tokens: reasoning,
                completion_audio_tokens: audio_out,
                ..Usage::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn usage_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for endpoint in Endpoint::ALL {
            let _ = read_response(endpoint, &bytes);
        }
    }

    #[test]
    fn usage_reader_survives_any_json(value in json_value(), usage in json_value()) {
        let mut with_usage = value.clone();
        if let Value::Object(map) = &mut with_usage {
            map.insert("usage".into(), usage);
        }
        for body in [value, with_usage] {
            let bytes = serde_json::to_vec(&body).expect("serializable");
            for endpoint in Endpoint::ALL {
                let _ = read_response(endpoint, &bytes);
            }
        }
    }

    #[test]
    fn request_parser_survives_any_input(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        value in json_value(),
    ) {
        let json = serde_json::to_vec(&value).expect("serializable");
        for body in [bytes, json] {
            for endpoint in Endpoint::ALL {
                let _ = RequestFacts::parse(endpoint, &body);
            }
            let _ = force_include_usage(&body);
        }
    }

    #[test]
    fn include_usage_rewrite_keeps_other_members(object in request_object()) {
        let body = serde_json::to_vec(&Value::Object(object.clone())).expect("serializable");
        let Ok(rewritten) = force_include_usage(&body) else {
            // Only a stream_options that is not an object may be rejected.
            let options = object.get("stream_options");
            prop_assert!(options.is_some_and(|options| !options.is_object() && !options.is_null()));
            return Ok(());
        };

        let parsed: Value = serde_json::from_slice(&rewritten).expect("the rewrite is valid JSON");
        let Value::Object(parsed) = parsed else {
            panic!("the rewrite is not an object");
        };
        prop_assert_eq!(&parsed["stream_options"]["include_usage"], &Value::Bool(true));
        // Read the original with the same parser, so floats compare as that parser reads them.
        let Ok(Value::Object(original)) = serde_json::from_slice::<Value>(&body) else {
            panic!("the original body is an object");
        };
        for (key, value) in &original {
            if key != "stream_options" {
                prop_assert_eq!(parsed.get(key), Some(value), "member {} changed", key);
            }
        }
        if let Some(Value::Object(options)) = original.get("stream_options") {
            for (key, value) in options.iter().filter(|(key, _)| *key != "include_usage") {
                prop_assert_eq!(parsed["stream_options"].get(key), Some(value));
            }
        }
        prop_assert_eq!(parsed.len(), object.len() + usize::from(!object.contains_key("stream_options")));
        let facts = RequestFacts::parse(Endpoint::ChatCompletions, &rewritten);
        if let Ok(facts) = facts {
            prop_assert_eq!(facts.include_usage, Some(true));
        }
    }

    #[test]
    fn depth_prescan_agrees_with_parser(value in json_value(), limit in 0usize..6) {
        let bytes = serde_json::to_vec(&value).expect("serializable");
        let within = json_depth(&value) <= limit;
        prop_assert_eq!(check_json_depth(&bytes, limit).is_ok(), within);
    }

    #[test]
    fn price_parser_survives_any_text(text in ".{0,512}") {
        let _ = PriceTable::from_toml(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn price_parser_survives_mutated_files(text in mutated_price_file(), usage in any_usage()) {
        let Ok(table) = PriceTable::from_toml(&text) else {
            return Ok(());
        };
        // A file that parses must price any reported usage without panicking.
        for model in ["gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small", "gpt-4o-2024-08-06"] {
            if let Some(price) = table.resolve(model, Utc::now()) {
                let _ = price.cost(&usage, None);
                let _ = price.cost(&usage, Some("flex"));
                let _ = price.quote(usage.prompt_tokens, Some(usage.completion_tokens), 1, None, false);
            }
        }
    }
}

// A null stream_options must be replaced, not left beside an inserted one: upstream could read
// the null, report no usage, and the stream would be billed from an estimate.
#[test]
fn include_usage_rewrite_replaces_null_options() {
    let body = br#"{"model":"gpt-4o-mini","stream":true,"stream_options":null}"#;
    let rewritten = force_include_usage(body).expect("rewritten");
    let text = String::from_utf8(rewritten).expect("UTF-8");
    assert_eq!(text.matches("stream_options").count(), 1, "{text}");
    let value: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(value["stream_options"]["include_usage"], true, "{text}");
}
