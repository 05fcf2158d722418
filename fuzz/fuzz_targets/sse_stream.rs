//! Frames arbitrary bytes as an SSE stream, cut into chunks as long as the first byte's value,
//! and meters every event for every endpoint. Framing must lose no byte, and nothing may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::usage::{Endpoint, SseFramer, StreamMeter};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let chunk_len = usize::from(split).max(1);

    let mut framer = SseFramer::new();
    let mut events = Vec::new();
    for chunk in stream.chunks(chunk_len) {
        for event in framer.push(chunk) {
            events.push(event.expect("fuzz inputs stay below the default event limit"));
        }
    }
    events.extend(framer.finish().expect("the framer did not fail"));
    assert_eq!(events.concat(), stream, "framing lost or changed bytes");

    for endpoint in Endpoint::ALL {
        for client_wants_usage in [false, true] {
            let mut meter = StreamMeter::new(endpoint, client_wants_usage);
            for event in &events {
                meter.observe(event);
            }
            meter.finish();
        }
    }
});
