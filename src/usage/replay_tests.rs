//! Replays every recorded stream cut at random byte positions: the framer must return the
//! same events and the meter the same actions and summary however the bytes arrive. Random
//! and stream-like bytes must never make either panic.

use proptest::prelude::*;

use super::test_fixtures::{FIXTURES, frame, meter, with_line_end};
use super::{Endpoint, SseFramer, StreamMeter};

/// Every fixture with LF line ends as recorded, plus CRLF and lone-CR rewrites of each.
fn streams() -> Vec<(String, Endpoint, Vec<u8>)> {
    let mut streams = Vec::new();
    for fixture in &FIXTURES {
        for (suffix, line_end) in [("", &b"\n"[..]), (" crlf", b"\r\n"), (" cr", b"\r")] {
            let bytes = with_line_end(fixture.bytes, line_end);
            streams.push((format!("{}{suffix}", fixture.name), fixture.endpoint, bytes));
        }
    }
    streams
}

/// Cuts `bytes` at the given positions (taken modulo its length, in any order).
fn cut_at(bytes: &[u8], positions: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = positions
        .iter()
        .map(|position| position % (bytes.len() + 1))
        .collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|pair| bytes[pair[0]..pair[1]].to_vec())
        .collect()
}

/// Bytes that look like a stream often enough to reach the framer's and meter's branches:
/// line ends, `data:` fields, JSON fragments and usage objects, mixed with random bytes.
fn stream_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: response.completed\n".to_vec()),
        Just(b": keep-alive\n".to_vec()),
        Just(b"data: [DONE]\n\n".to_vec()),
        Just(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#.to_vec()),
        Just(br#"{"choices":[{"delta":{"content":"hi"}}],"model":"gpt-4o-mini"}"#.to_vec()),
        Just(br#"{"type":"response.completed","response":{"usage":{"input_tokens":1}}}"#.to_vec()),
        Just(br#"{"usage":{"prompt_tokens":-1,"completion_tokens":1e400}}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_framer_or_meter(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), stream_like_bytes()],
        positions in prop::collection::vec(any::<usize>(), 0..16),
        max_event_bytes in 1usize..256,
    ) {
        // A small event limit exercises the failure path as well.
        let mut framer = SseFramer::with_max_event_bytes(max_event_bytes);
        let mut failed = false;
        for chunk in cut_at(&bytes, &positions) {
            for event in framer.push(&chunk) {
                failed |= event.is_err();
            }
        }
        prop_assert_eq!(framer.finish().is_err(), failed);

        // With the default limit, framing loses no byte, and the meter accepts any event.
        let events = frame(cut_at(&bytes, &positions).iter().map(Vec::as_slice));
        prop_assert_eq!(events.concat(), bytes.clone());
        for endpoint in Endpoint::ALL {
            for client_wants_usage in [false, true] {
                let mut meter = StreamMeter::new(endpoint, client_wants_usage).with_request_model("gpt-4o-mini");
                for event in &events {
                    meter.observe(event);
                }
                meter.finish();
            }
        }
    }

    #[test]
    fn random_splits_frame_and_meter_alike(positions in prop::collection::vec(any::<usize>(), 0..64)) {
        for (name, endpoint, bytes) in streams() {
            let reference = frame([bytes.as_slice()]);
            prop_assert_eq!(reference.concat(), bytes.clone(), "{} reference", name);

            let chunks = cut_at(&bytes, &positions);
            let events = frame(chunks.iter().map(Vec::as_slice));
            prop_assert_eq!(events.concat(), bytes.clone(), "{} concatenation", name);
            prop_assert_eq!(&events, &reference, "{} events", name);

            for client_wants_usage in [false, true] {
                let expected = meter(endpoint, client_wants_usage, &reference);
                let replayed = meter(endpoint, client_wants_usage, &events);
                prop_assert_eq!(&replayed, &expected, "{} metering", name);
            }
        }
    }

}

#[test]
fn byte_at_a_time_feed_frames_alike() {
    for (name, _, bytes) in streams() {
        let reference = frame([bytes.as_slice()]);
        assert_eq!(frame(bytes.chunks(1)), reference, "{name}");
    }
}
