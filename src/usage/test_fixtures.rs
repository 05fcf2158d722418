//! Recorded upstream streams and helpers that frame and meter them, for tests.

use bytes::Bytes;

use super::{Endpoint, EventAction, SseFramer, StreamMeter, StreamSummary};

/// One recorded stream and the endpoint that produced it.
pub(super) struct Fixture {
    pub(super) name: &'static str,
    pub(super) endpoint: Endpoint,
    pub(super) bytes: &'static [u8],
}

macro_rules! fixture {
    ($name:literal, $endpoint:expr) => {
        Fixture {
            name: $name,
            endpoint: $endpoint,
            bytes: include_bytes!(concat!("../../tests/fixtures/streams/", $name)),
        }
    };
}

pub(super) const FIXTURES: [Fixture; 13] = [
    fixture!("chat_usage_only_chunk.sse", Endpoint::ChatCompletions),
    fixture!("chat_usage_requested.sse", Endpoint::ChatCompletions),
    fixture!("chat_usage_after_finish.sse", Endpoint::ChatCompletions),
    fixture!("chat_null_usage_reasoning.sse", Endpoint::ChatCompletions),
    fixture!("chat_long_story.sse", Endpoint::ChatCompletions),
    fixture!("chat_split_reads.sse", Endpoint::ChatCompletions),
    fixture!("chat_data_without_space.sse", Endpoint::ChatCompletions),
    fixture!("chat_error_midstream.sse", Endpoint::ChatCompletions),
    fixture!("chat_tool_calls_two_choices.sse", Endpoint::ChatCompletions),
    fixture!("completions_legacy.sse", Endpoint::Completions),
    fixture!("responses_completed.sse", Endpoint::Responses),
    fixture!("responses_incomplete.sse", Endpoint::Responses),
    fixture!("responses_failed.sse", Endpoint::Responses),
];

const WRITES_INDEX: &str = include_str!("../../tests/fixtures/streams/writes.txt");

pub(super) fn fixture(name: &str) -> &'static Fixture {
    FIXTURES
        .iter()
        .find(|fixture| fixture.name == name)
        .unwrap()
}

/// Returns the stream cut into the socket writes upstream made, as listed in `writes.txt`.
pub(super) fn upstream_writes(name: &str) -> Vec<&'static [u8]> {
    let line = WRITES_INDEX
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap();
    let mut rest = fixture(name).bytes;
    let mut writes = Vec::new();
    for length in line.split_whitespace().skip(1) {
        let (write, after) = rest.split_at(length.parse().unwrap());
        writes.push(write);
        rest = after;
    }
    assert!(rest.is_empty(), "writes of {name} cover the whole stream");
    writes
}

/// Frames `chunks` with a default framer: every complete event, then the tail if any.
pub(super) fn frame<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Bytes> {
    let mut framer = SseFramer::new();
    let mut events = Vec::new();
    for chunk in chunks {
        for event in framer.push(chunk) {
            events.push(event.unwrap());
        }
    }
    events.extend(framer.finish().unwrap());
    events
}

/// Meters framed events and returns the action for each one and the summary.
pub(super) fn meter(
    endpoint: Endpoint,
    client_wants_usage: bool,
    events: &[Bytes],
) -> (Vec<EventAction>, StreamSummary) {
    let mut meter = StreamMeter::new(endpoint, client_wants_usage);
    let actions = events.iter().map(|event| meter.observe(event)).collect();
    (actions, meter.finish())
}

/// Rewrites every LF line end as `line_end`.
pub(super) fn with_line_end(stream: &[u8], line_end: &[u8]) -> Vec<u8> {
    let mut rewritten = Vec::with_capacity(stream.len() * 2);
    for &byte in stream {
        if byte == b'\n' {
            rewritten.extend_from_slice(line_end);
        } else {
            rewritten.push(byte);
        }
    }
    rewritten
}
