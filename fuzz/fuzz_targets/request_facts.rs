//! Parses arbitrary request bodies and rewrites their `stream_options`. Nothing may panic,
//! and a successful rewrite must be a JSON object with `include_usage: true`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::billing::request::{RequestFacts, force_include_usage};
use tollgate::usage::Endpoint;

fuzz_target!(|data: &[u8]| {
    for endpoint in Endpoint::ALL {
        let _ = RequestFacts::parse(endpoint, data);
    }
    let Ok(rewritten) = force_include_usage(data) else {
        return;
    };
    let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let parsed: Value =
        serde_json::from_slice(&rewritten).expect("the rewrite of an object is valid JSON");
    assert_eq!(parsed["stream_options"]["include_usage"], Value::Bool(true));
});
