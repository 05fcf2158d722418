//! Parses arbitrary text as a price file. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::pricing::PriceTable;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PriceTable::from_toml(text);
    }
});
