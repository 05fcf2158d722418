//! Replays every recorded stream cut at random byte positions: the framer must return the
//! same events and the meter the same actions and summary however the bytes arrive.

use proptest::prelude::*;

use super::Endpoint;
use super::test_fixtures::{FIXTURES, frame, meter, with_line_end};

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

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
