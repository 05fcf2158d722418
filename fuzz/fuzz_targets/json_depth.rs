//! Checks the JSON depth pre-scan against serde_json: a body that serde_json parses must
//! pass the pre-scan exactly when it nests no deeper than the limit, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::limits::check_json_depth;

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let scanned = check_json_depth(data, 16);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        assert_eq!(
            scanned.is_ok(),
            depth(&value) <= 16,
            "pre-scan and parser disagree"
        );
    }
});
