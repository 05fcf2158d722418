//! Stream metering over recorded and hand-written upstream streams.

use bytes::Bytes;

use super::EventAction::{Drop, Forward, Terminal};
use super::test_fixtures::{fixture, frame, meter, upstream_writes, with_line_end};
use super::{
    Endpoint, EventAction, StreamMeter, StreamSummary, Usage, UsageError, count_text_tokens,
};

/// Frames a fixture as upstream wrote it and meters it.
fn run(name: &str, client_wants_usage: bool) -> (Vec<Bytes>, Vec<EventAction>, StreamSummary) {
    let events = frame(upstream_writes(name));
    let (actions, summary) = meter(fixture(name).endpoint, client_wants_usage, &events);
    (events, actions, summary)
}

/// Meters hand-written events, one string per complete event.
fn run_events(
    endpoint: Endpoint,
    client_wants_usage: bool,
    events: &[&str],
) -> (Vec<EventAction>, StreamSummary) {
    let events: Vec<Bytes> = events
        .iter()
        .map(|event| Bytes::copy_from_slice(event.as_bytes()))
        .collect();
    meter(endpoint, client_wants_usage, &events)
}

fn chat_usage(prompt: u64, completion: u64, reasoning: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: Some(prompt + completion),
        cached_tokens: Some(0),
        prompt_audio_tokens: Some(0),
        reasoning_tokens: Some(reasoning),
        completion_audio_tokens: Some(0),
        accepted_prediction_tokens: Some(0),
        rejected_prediction_tokens: Some(0),
        ..Usage::default()
    }
}

/// Returns the bytes the client receives: every event the meter does not drop.
fn forwarded(events: &[Bytes], actions: &[EventAction]) -> Vec<u8> {
    let kept = events
        .iter()
        .zip(actions)
        .filter(|(_, action)| **action != Drop);
    kept.flat_map(|(event, _)| event.to_vec()).collect()
}

#[test]
fn usage_chunk_dropped_when_not_requested() {
    let (events, actions, summary) = run("chat_usage_only_chunk.sse", false);
    assert_eq!(
        actions,
        [Forward, Forward, Forward, Forward, Drop, Terminal]
    );
    assert_eq!(summary.usage, Some(chat_usage(9, 3, 0)));
    assert!(summary.terminated);

    let writes = upstream_writes("chat_usage_only_chunk.sse");
    let expected: Vec<u8> = writes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .flat_map(|(_, w)| w.to_vec())
        .collect();
    assert_eq!(forwarded(&events, &actions), expected);
}

#[test]
fn usage_chunk_forwarded_when_requested() {
    let (events, actions, summary) = run("chat_usage_requested.sse", true);
    assert_eq!(
        actions,
        [
            Forward, Forward, Forward, Forward, Forward, Forward, Terminal
        ]
    );
    assert_eq!(
        forwarded(&events, &actions),
        fixture("chat_usage_requested.sse").bytes
    );
    assert_eq!(summary.usage, Some(chat_usage(25, 8, 0)));
    assert_eq!(summary.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(summary.response_id.as_deref(), Some("chatcmpl-t02"));
    assert!(summary.saw_content);
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("gpt-4o", "1, 2, 3.")
    );
}

#[test]
fn late_usage_on_chunk_with_choices() {
    for client_wants_usage in [false, true] {
        let (events, actions, summary) = run("chat_usage_after_finish.sse", client_wants_usage);
        assert_eq!(events[0], Bytes::from_static(b": keep-alive\n\n"));
        assert_eq!(events[4], Bytes::from_static(b"\n"));
        assert_eq!(
            actions,
            [
                Forward, Forward, Forward, Forward, Forward, Forward, Terminal
            ]
        );
        assert_eq!(summary.usage, Some(chat_usage(1697, 52, 0)));
        assert!(summary.terminated);
    }
}

#[test]
fn null_usage_is_never_usage() {
    let events = frame(upstream_writes("chat_null_usage_reasoning.sse"));
    let mut meter = StreamMeter::new(Endpoint::ChatCompletions, true);
    for event in &events[..4] {
        assert_eq!(meter.observe(event), Forward);
        assert_eq!(meter.usage(), None);
    }
    assert_eq!(meter.observe(&events[4]), Forward);
    assert_eq!(meter.observe(&events[5]), Terminal);
    let summary = meter.finish();
    assert_eq!(summary.usage, Some(chat_usage(152, 906, 832)));
    assert_eq!(summary.model.as_deref(), Some("o4-mini-2025-04-16"));
}

#[test]
fn usage_split_across_reads_reads_whole() {
    let writes = upstream_writes("chat_split_reads.sse");
    assert!(writes[1].ends_with(b"\"prompt_tokens\":5"));
    assert!(writes[2].starts_with(b"12,"));
    let (events, actions, summary) = run("chat_split_reads.sse", true);
    assert_eq!(events.len(), 5);
    assert_eq!(events[4], Bytes::from_static(b"data: [DONE]\n\n"));
    assert_eq!(actions.last(), Some(&Terminal));
    assert_eq!(
        summary
            .usage
            .as_ref()
            .map(|usage| (usage.prompt_tokens, usage.completion_tokens)),
        Some((512, 64))
    );
    let text = "Split chunks are normal on TCP.";
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("gpt-4o-mini", text)
    );
}

#[test]
fn data_without_space_is_read() {
    let (_, actions, summary) = run("chat_data_without_space.sse", true);
    assert_eq!(actions, [Forward, Forward, Forward, Forward, Terminal]);
    assert_eq!(summary.usage, Some(chat_usage(64, 16, 0)));
    assert!(summary.terminated);
}

#[test]
fn disconnect_story_bills_full_usage() {
    let (_, actions, summary) = run("chat_long_story.sse", true);
    assert_eq!(actions.last(), Some(&Terminal));
    assert_eq!(summary.usage, Some(chat_usage(40, 300, 0)));

    let first_writes = &upstream_writes("chat_long_story.sse")[..3];
    let (_, cut_summary) = meter(
        Endpoint::ChatCompletions,
        true,
        &frame(first_writes.iter().copied()),
    );
    assert_eq!(cut_summary.usage, None);
    assert!(!cut_summary.terminated);
    assert!(cut_summary.saw_content);
    assert_eq!(
        cut_summary.streamed_text_tokens(),
        count_text_tokens("gpt-4o", "Once upon")
    );
}

#[test]
fn error_event_midstream_is_recorded() {
    let (events, actions, summary) = run("chat_error_midstream.sse", false);
    assert_eq!(actions, [Forward, Forward, Forward, Forward]);
    assert_eq!(
        forwarded(&events, &actions),
        fixture("chat_error_midstream.sse").bytes
    );
    let message =
        "server_error: The server had an error while processing your request. Sorry about that!";
    assert_eq!(summary.upstream_error.as_deref(), Some(message));
    assert_eq!(summary.usage, None);
    assert!(!summary.terminated);
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("gpt-4o", "The first part arrived")
    );
}

#[test]
fn two_choices_with_tool_calls_bill_once() {
    let (_, actions, summary) = run("chat_tool_calls_two_choices.sse", false);
    assert_eq!(actions.iter().filter(|action| **action == Drop).count(), 1);
    assert_eq!(summary.usage, Some(chat_usage(61, 30, 0)));
    assert!(summary.saw_content);
    let arguments = "{\"city\":{\"city\":\"Paris\"}\"Zürich\"}";
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("gpt-4o-mini", arguments)
    );
}

#[test]
fn legacy_completions_usage_and_text() {
    let (_, actions, summary) = run("completions_legacy.sse", false);
    assert_eq!(actions, [Forward, Forward, Forward, Drop, Terminal]);
    let usage = Usage {
        prompt_tokens: 4,
        completion_tokens: 4,
        total_tokens: Some(8),
        ..Usage::default()
    };
    assert_eq!(summary.usage, Some(usage));
    assert_eq!(summary.model.as_deref(), Some("gpt-3.5-turbo-instruct"));
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("gpt-3.5-turbo-instruct", "Once upon a time")
    );
}

#[test]
fn responses_completed_carries_usage() {
    let (events, actions, summary) = run("responses_completed.sse", false);
    assert_eq!(actions.last(), Some(&Terminal));
    assert!(
        actions[..actions.len() - 1]
            .iter()
            .all(|action| *action == Forward)
    );
    assert_eq!(
        forwarded(&events, &actions),
        fixture("responses_completed.sse").bytes
    );
    let usage = Usage {
        prompt_tokens: 81,
        completion_tokens: 1035,
        total_tokens: Some(1116),
        cached_tokens: Some(64),
        cache_write_tokens: Some(0),
        reasoning_tokens: Some(832),
        ..Usage::default()
    };
    assert_eq!(summary.usage, Some(usage));
    assert_eq!(summary.model.as_deref(), Some("o4-mini-2025-04-16"));
    assert_eq!(summary.service_tier.as_deref(), Some("default"));
    assert_eq!(summary.response_id.as_deref(), Some("resp_t01"));
    assert!(summary.terminated);
    assert_eq!(summary.upstream_error, None);
    let text = "The user wants coffee.Café au lait ☕ is ready.";
    assert_eq!(
        summary.streamed_text_tokens(),
        count_text_tokens("o4-mini", text)
    );
}

#[test]
fn responses_incomplete_still_bills() {
    let (_, actions, summary) = run("responses_incomplete.sse", true);
    assert_eq!(actions.last(), Some(&Terminal));
    let usage = summary.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (20, 16));
    assert_eq!(summary.model.as_deref(), Some("gpt-4.1-mini-2025-04-14"));
    assert!(summary.terminated);
    assert_eq!(summary.upstream_error, None);
}

#[test]
fn responses_failed_has_no_usage() {
    let (_, actions, summary) = run("responses_failed.sse", true);
    assert_eq!(actions.last(), Some(&Terminal));
    assert_eq!(summary.usage, None);
    assert_eq!(summary.usage_error, None);
    assert!(summary.terminated);
    assert!(summary.saw_content);
    let message = "server_error: The model failed to generate a response.";
    assert_eq!(summary.upstream_error.as_deref(), Some(message));
}

#[test]
fn responses_error_event_is_recorded() {
    let cases = [
        (
            "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Slow down\",\"param\":null,\"sequence_number\":3}\n\n",
            "rate_limit_exceeded: Slow down",
        ),
        (
            "data: {\"type\":\"error\",\"message\":\"No code\"}\n\n",
            "No code",
        ),
        (
            "data: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Nested\"}}\n\n",
            "invalid_request_error: Nested",
        ),
    ];
    for (event, expected) in cases {
        let (actions, summary) = run_events(Endpoint::Responses, false, &[event]);
        assert_eq!(actions, [Forward], "{event}");
        assert_eq!(summary.upstream_error.as_deref(), Some(expected), "{event}");
        assert!(!summary.terminated);
    }
}

#[test]
fn responses_type_read_without_event_line() {
    let events = [
        "data: {\"sequence_number\":0,\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\n",
        "data: {\"delta\":\"Hi\",\"type\":\"response.output_text.delta\"}\n\n",
        "data: {\"type\":\"response.output_text.done\",\"text\":\"Hi\"}\n\n",
        "data: {\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}},\"type\":\"response.completed\"}\n\n",
    ];
    let (actions, summary) = run_events(Endpoint::Responses, false, &events);
    assert_eq!(actions, [Forward, Forward, Forward, Terminal]);
    let usage = Usage {
        prompt_tokens: 3,
        completion_tokens: 1,
        total_tokens: Some(4),
        ..Usage::default()
    };
    assert_eq!(summary.usage, Some(usage));
    assert_eq!(summary.model.as_deref(), Some("gpt-5"));
    assert_eq!(summary.streamed_text_tokens(), 1);
}

#[test]
fn repeated_usage_keeps_final_value() {
    let events = [
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
        "data: {\"choices\":[],\"usage\":null}\n\n",
        "data: [DONE]\n\n",
    ];
    let (actions, summary) = run_events(Endpoint::ChatCompletions, false, &events);
    assert_eq!(actions, [Forward, Forward, Forward, Forward, Terminal]);
    let usage = Usage {
        prompt_tokens: 5,
        completion_tokens: 3,
        ..Usage::default()
    };
    assert_eq!(summary.usage, Some(usage));
}

#[test]
fn usage_final_only_without_choices() {
    let running = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n";
    let usage_chunk =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n";
    let null_usage = "data: {\"choices\":[],\"usage\":null}\n\n";

    let (_, summary) = run_events(Endpoint::ChatCompletions, true, &[running]);
    assert!(summary.usage.is_some());
    assert!(!summary.usage_final, "a running total in a content chunk");

    let (_, summary) = run_events(Endpoint::ChatCompletions, true, &[running, usage_chunk]);
    assert_eq!(summary.usage.map(|usage| usage.completion_tokens), Some(2));
    assert!(summary.usage_final, "the chunk without choices");
    assert!(!summary.terminated);

    let (_, summary) = run_events(Endpoint::ChatCompletions, true, &[running, null_usage]);
    assert!(
        !summary.usage_final,
        "a null usage leaves the running total as it was"
    );
}

#[test]
fn invalid_stream_usage_is_reported() {
    let events = [
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-4,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    ];
    let (actions, summary) = run_events(Endpoint::ChatCompletions, false, &events);
    assert_eq!(actions, [Drop, Terminal]);
    assert_eq!(summary.usage, None);
    let error = UsageError::InvalidCount {
        field: "usage.prompt_tokens",
        found: "-4".to_owned(),
    };
    assert_eq!(summary.usage_error, Some(error));
}

#[test]
fn unreadable_events_are_forwarded() {
    let events = [
        ": comment only\n\n",
        "\n",
        "event: ping\n\n",
        "data: not json\n\n",
        "data: [1,2]\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]\n\n",
        "data:  [DONE] \n\n",
    ];
    for endpoint in [Endpoint::ChatCompletions, Endpoint::Responses] {
        let (actions, summary) = run_events(endpoint, false, &events);
        assert_eq!(
            actions,
            [
                Forward, Forward, Forward, Forward, Forward, Forward, Terminal
            ]
        );
        assert_eq!(summary.usage, None);
        assert!(!summary.saw_content);
    }
}

#[test]
fn request_model_picks_tokenizer_until_upstream_names_one() {
    let text = "naïve café ☕ ".repeat(3);
    let event = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n");
    let mut meter = StreamMeter::new(Endpoint::ChatCompletions, false).with_request_model("gpt-4");
    meter.observe(event.as_bytes());
    assert_eq!(
        meter.finish().streamed_text_tokens(),
        count_text_tokens("gpt-4", &text)
    );
}

#[test]
fn line_end_variants_meter_alike() {
    let name = "chat_usage_requested.sse";
    let (_, expected_actions, expected) = run(name, true);
    for line_end in [&b"\r\n"[..], b"\r"] {
        let stream = with_line_end(fixture(name).bytes, line_end);
        let events = frame([stream.as_slice()]);
        assert_eq!(events.concat(), stream);
        let (actions, summary) = meter(Endpoint::ChatCompletions, true, &events);
        assert_eq!(actions, expected_actions, "line end {line_end:?}");
        assert_eq!(summary, expected, "line end {line_end:?}");
    }
}

#[test]
fn multi_line_data_is_joined() {
    let event = "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":7}}\n\n";
    let (actions, summary) = run_events(Endpoint::ChatCompletions, false, &[event]);
    assert_eq!(actions, [Drop]);
    assert_eq!(summary.usage.map(|usage| usage.prompt_tokens), Some(7));
}
