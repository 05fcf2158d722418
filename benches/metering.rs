//! Micro-benchmarks of the per-request work on tollgate's request path: reading the request,
//! extracting usage from a JSON body or an SSE stream, and pricing.
//!
//! `cargo bench --bench metering`; add `-- --quick` for a shorter run.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use tollgate::billing::request::{RequestFacts, force_include_usage};
use tollgate::pricing::PriceTable;
use tollgate::usage::{Endpoint, SseFramer, StreamMeter, Usage, read_response};

const COMPLETION: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Every debit has a matching credit, so the books balance."},"#,
    r#""logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":12,"total_tokens":43,"#,
    r#""prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"#,
    r#""audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","#,
    r#""system_fingerprint":"fp_bench"}"#
);

/// Body sizes of the request-facts benchmark.
const BODY_SIZES: [usize; 4] = [1 << 10, 16 << 10, 128 << 10, 1 << 20];

/// Builds a chat request padded to `size` bytes with plain text in the user message.
fn chat_request(size: usize, stream: bool) -> Vec<u8> {
    let head = if stream {
        r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":64,"messages":[{"role":"user","content":""#
    } else {
        r#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":""#
    };
    let tail = r#""}]}"#;
    let filler_len = size.saturating_sub(head.len() + tail.len());
    let filler: String = "the ledger records every debit with a matching credit "
        .chars()
        .cycle()
        .take(filler_len)
        .collect();
    format!("{head}{filler}{tail}").into_bytes()
}

/// Builds a streamed chat response: `chunks` content chunks, the finish chunk, the usage-only chunk and
/// the terminator.
fn chat_stream(chunks: usize) -> Vec<u8> {
    let mut text = String::new();
    for _ in 0..chunks {
        text.push_str(concat!(
            r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"#,
            r#""model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_bench","#,
            r#""choices":[{"index":0,"delta":{"content":"ledger "},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            "\n\n"
        ));
    }
    text.push_str(concat!(
        r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"#,
        r#""model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"#,
        r#""model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":20,"total_tokens":51}}"#,
        "\n\n",
        "data: [DONE]\n\n"
    ));
    text.into_bytes()
}

fn usage_extraction(c: &mut Criterion) {
    let mut group = c.benchmark_group("usage");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_body", |b| {
        b.iter(|| read_response(Endpoint::ChatCompletions, black_box(COMPLETION.as_bytes())))
    });

    // The stream arrives in reads of 1 KiB, as a proxy reads it. Each read is framed, and each
    // complete event is metered.
    let chunks = 100;
    let stream = Bytes::from(chat_stream(chunks));
    let reads: Vec<Bytes> = stream.chunks(1024).map(Bytes::copy_from_slice).collect();
    group.throughput(Throughput::Elements(chunks as u64 + 3));
    group.bench_function("sse_stream_per_event", |b| {
        b.iter(|| {
            let mut framer = SseFramer::new();
            let mut meter = StreamMeter::new(Endpoint::ChatCompletions, false);
            for read in &reads {
                for event in framer.push(read).flatten() {
                    black_box(meter.observe(&event));
                }
            }
            meter.finish()
        })
    });
    group.finish();
}

fn pricing(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let table = match PriceTable::load(&path) {
        Ok(table) => table,
        Err(error) => panic!("the shipped price file must load: {error}"),
    };
    let now = Utc::now();
    let Some(price) = table.resolve("gpt-4o-mini-2024-07-18", now) else {
        panic!("gpt-4o-mini-2024-07-18 must be priced");
    };
    let usage = Usage {
        prompt_tokens: 1200,
        completion_tokens: 300,
        total_tokens: Some(1500),
        cached_tokens: Some(1024),
        reasoning_tokens: Some(0),
        ..Usage::default()
    };
    let mut group = c.benchmark_group("pricing");
    group.bench_function("resolve", |b| {
        b.iter(|| table.resolve(black_box("gpt-4o-mini-2024-07-18"), now))
    });
    group.bench_function("cost", |b| b.iter(|| price.cost(black_box(&usage), None)));
    group.bench_function("quote", |b| {
        b.iter(|| price.quote(black_box(1200), Some(300), 1, None, false))
    });
    group.finish();
}

fn request_facts(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_facts");
    for size in BODY_SIZES {
        let body = chat_request(size, false);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", size), &body, |b, body| {
            b.iter(|| RequestFacts::parse(Endpoint::ChatCompletions, black_box(body)))
        });
        let streamed = chat_request(size, true);
        group.bench_with_input(
            BenchmarkId::new("force_include_usage", size),
            &streamed,
            |b, body| b.iter(|| force_include_usage(black_box(body))),
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = usage_extraction, pricing, request_facts
}
criterion_main!(benches);
