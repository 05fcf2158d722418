//! Reads usage from arbitrary response bodies for every endpoint. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::usage::{Endpoint, read_response};

fuzz_target!(|data: &[u8]| {
    for endpoint in Endpoint::ALL {
        let _ = read_response(endpoint, data);
    }
});
