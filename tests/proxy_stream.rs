//! Streaming chat completions through the real proxy: bytes pass through as they arrive,
//! usage is metered from the stream, the charge lands before the terminator, and
//! disconnects and broken streams are billed right.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test, and tasks need no names here"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use support::blnk::{Fault, TxnStatus};
use support::cases::{Case, all_charge_legs, charge_of, usd_to_nanos};
use support::harness::{Harness, Options};
use support::stream_server::{Pace, Script, StreamServer};

const REQUEST_ID: &str = "x-tollgate-request-id";
const USAGE_CHUNK_MARK: &str = "\"choices\":[]";

async fn start(script: Script, extra_env: Vec<(&'static str, String)>) -> (Harness, StreamServer) {
    let server = StreamServer::start(script).await;
    let mut env = vec![("TOLLGATE_UPSTREAM_URL", server.url.clone())];
    env.extend(extra_env);
    let harness = Harness::start_with(Options {
        env,
        ..Options::default()
    })
    .await;
    (harness, server)
}

async fn post_stream(harness: &Harness, customer: &str, body: &Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

/// Reads the whole streamed body, and checks that the charge is already recorded when the
/// terminator arrives.
async fn read_all(response: reqwest::Response) -> String {
    let bytes = response.bytes().await.expect("stream reads to its end");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// Runs a streamed case for a postpaid customer and returns what the client got.
async fn run_case(
    name: &str,
    body_edit: impl FnOnce(&mut Value),
) -> (String, Case, Harness, StreamServer, String) {
    let case = Case::load(name);
    let (harness, server) = start(
        Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(5)),
        ),
        vec![],
    )
    .await;
    harness.postpaid("cust_postpaid_01").await;
    let mut body = case.request_body();
    body_edit(&mut body);
    let response = post_stream(&harness, "cust_postpaid_01", &body).await;
    assert_eq!(response.status().as_u16(), case.expected_status(), "{name}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = response.headers()[REQUEST_ID]
        .to_str()
        .expect("ascii id")
        .to_string();
    let text = read_all(response).await;
    // The charge was recorded before the terminator was forwarded, so it is visible now.
    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(charge.usd_nanos(), case.expected_nanos(), "{name}: USD leg");
    assert_eq!(
        charge.tokens(),
        case.expected_tokens(),
        "{name}: TOKENS leg"
    );
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        2,
        "{name}: exactly one charge"
    );
    (text, case, harness, server, id)
}

#[tokio::test]
async fn usage_chunk_removed_when_client_opted_out() {
    for edit in [
        (|body: &mut Value| {
            body["stream_options"]["include_usage"] = json!(false);
        }) as fn(&mut Value),
        |body: &mut Value| {
            body.as_object_mut().unwrap().remove("stream_options");
        },
    ] {
        let (text, case, _harness, server, _) =
            run_case("01-include-usage-false-respected", edit).await;
        assert!(
            !text.contains(USAGE_CHUNK_MARK),
            "usage-only chunk must not reach the client"
        );
        let upstream = case.upstream_writes();
        let expected: String = upstream
            .iter()
            .filter(|w| !w.contains(USAGE_CHUNK_MARK))
            .cloned()
            .collect();
        assert_eq!(text, expected, "every other event arrives unchanged");
        assert!(text.ends_with("data: [DONE]\n\n"));

        let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
        assert_eq!(
            sent["stream_options"]["include_usage"], true,
            "usage forced upstream"
        );
        assert_eq!(sent["messages"], case.request_body()["messages"]);
    }
}

#[tokio::test]
async fn usage_chunk_forwarded_when_requested() {
    let (text, case, _harness, server, _) =
        run_case("02-usage-chunk-forwarded-when-requested", |_| {}).await;
    assert_eq!(
        text,
        case.upstream_writes().concat(),
        "the stream arrives byte for byte"
    );
    let sent = server.bodies()[0].clone();
    let original = serde_json::to_vec(&case.request_body()).unwrap();
    let sent_value: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(
        sent_value,
        serde_json::from_slice::<Value>(&original).unwrap(),
        "nothing else rewritten"
    );
}

#[tokio::test]
async fn usage_after_finish_reason_is_billed() {
    let (text, case, ..) = run_case("04-usage-after-finish-reason", |_| {}).await;
    assert_eq!(text, case.upstream_writes().concat());
}

#[tokio::test]
async fn null_usage_chunks_bill_once() {
    let (_, _, harness, _, id) = run_case("05-null-usage-on-every-chunk", |_| {}).await;
    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(charge.usd.unwrap().meta_data["reasoning_tokens"], 832);
}

#[tokio::test]
async fn events_split_across_reads() {
    let (text, case, ..) = run_case("22-sse-event-split-across-reads", |_| {}).await;
    assert_eq!(
        text,
        case.upstream_writes().concat(),
        "concatenated bytes equal upstream's"
    );
}

#[tokio::test]
async fn data_without_space_is_metered() {
    let (text, case, ..) = run_case("23-sse-data-without-space", |_| {}).await;
    assert_eq!(text, case.upstream_writes().concat());
    assert!(text.ends_with("data:[DONE]\n\n"));
}

#[tokio::test]
async fn chunks_pass_through_before_the_next() {
    let case = Case::load("02-usage-chunk-forwarded-when-requested");
    let gate = Arc::new(Semaphore::new(0));
    let (harness, server) = start(
        Script::sse(case.upstream_writes(), Pace::Gated(Arc::clone(&gate))),
        vec![],
    )
    .await;
    harness.postpaid("c1").await;
    let response = post_stream(&harness, "c1", &case.request_body()).await;
    let mut body = response.bytes_stream();
    let writes = case.upstream_writes();
    let mut received = String::new();
    for (index, write) in writes.iter().enumerate() {
        if index + 1 == writes.len() {
            break;
        }
        // Upstream has sent exactly `index + 1` pieces; the client must already hold them.
        while received.len() < writes[..=index].concat().len() {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "piece {index} was not passed through before piece {}",
                        index + 1
                    )
                })
                .expect("stream open")
                .expect("chunk");
            received.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert_eq!(server.pieces_written(), index + 1);
        assert!(received.ends_with(write.as_str()));
        gate.add_permits(1);
    }
    while let Some(chunk) = body.next().await {
        received.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(received, writes.concat());
}

#[tokio::test]
async fn disconnect_drains_and_bills_full_usage() {
    let case = Case::load("13-client-disconnects-mid-stream");
    let (harness, server) = start(
        Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(30)),
        ),
        vec![],
    )
    .await;
    let customer = harness.prepaid("c13", "1").await;
    let response = post_stream(&harness, "c13", &case.request_body()).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let mut body = response.bytes_stream();
    let first_three: usize = case.upstream_writes()[..3].concat().len();
    let mut received = 0;
    while received < first_three {
        received += body.next().await.unwrap().unwrap().len();
    }
    drop(body);

    wait_for(|| charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(charge.usd_nanos(), case.expected_nanos());
    assert_eq!(charge.tokens(), case.expected_tokens());
    let usd = charge.usd.unwrap();
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert_eq!(usd.meta_data["usage_source"], "reported");
    assert_eq!(
        server.pieces_written(),
        case.upstream_writes().len(),
        "upstream read to the end"
    );
    wait_for(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
}

#[tokio::test]
async fn disconnect_with_stop_bills_estimate() {
    let case = Case::load("13-client-disconnects-mid-stream");
    let (harness, _server) = start(
        Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(50)),
        ),
        vec![("TOLLGATE_UPSTREAM_ON_CLIENT_DISCONNECT", "stop".into())],
    )
    .await;
    let customer = harness.prepaid("c13", "1").await;
    let response = post_stream(&harness, "c13", &case.request_body()).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let mut body = response.bytes_stream();
    let first_three: usize = case.upstream_writes()[..3].concat().len();
    let mut received = 0;
    while received < first_three {
        received += body.next().await.unwrap().unwrap().len();
    }
    drop(body);

    wait_for(|| charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge.usd.as_ref().unwrap();
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert_eq!(usd.meta_data["usage_source"], "estimated");
    assert!(
        charge.usd_nanos() > 0,
        "a disconnect is never billed as zero"
    );
    assert!(
        charge.usd_nanos() < case.expected_nanos(),
        "only what was generated before the stop"
    );
    assert!(usd.meta_data["completion_tokens"].as_u64().unwrap() >= 2);
    wait_for(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
}

#[tokio::test]
async fn broken_stream_after_content_bills_estimate() {
    let case = Case::load("13-client-disconnects-mid-stream");
    let mut script = Script::sse(
        case.upstream_writes(),
        Pace::Every(Duration::from_millis(5)),
    );
    script.break_after = Some(4);
    let (harness, _server) = start(script, vec![]).await;
    let customer = harness.prepaid("c1", "1").await;
    let response = post_stream(&harness, "c1", &case.request_body()).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let text = read_all(response).await;
    assert!(
        text.contains("upstream_stream_interrupted"),
        "the SDK sees an error event"
    );
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge.usd.as_ref().expect("billed");
    assert_eq!(usd.meta_data["usage_source"], "estimated");
    assert!(charge.usd_nanos() > 0);
    wait_for(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
}

#[tokio::test]
async fn broken_stream_before_content_bills_nothing() {
    let case = Case::load("13-client-disconnects-mid-stream");
    let mut script = Script::sse(
        case.upstream_writes(),
        Pace::Every(Duration::from_millis(5)),
    );
    script.break_after = Some(0);
    let (harness, _server) = start(script, vec![]).await;
    let customer = harness.prepaid("c1", "1").await;
    let response = post_stream(&harness, "c1", &case.request_body()).await;
    let _ = read_all(response).await;
    assert!(all_charge_legs(&harness.blnk).is_empty());
    wait_for(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let voids = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|t| t.status == TxnStatus::Void)
        .count();
    assert_eq!(voids, 1, "the hold is voided");
}

#[tokio::test]
async fn ledger_down_at_end_still_finishes_stream() {
    let case = Case::load("02-usage-chunk-forwarded-when-requested");
    let (harness, _server) = start(
        Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(5)),
        ),
        vec![
            ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms".into()),
            ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "300ms".into()),
        ],
    )
    .await;
    harness.postpaid("c1").await;
    harness.blnk.inject(
        Fault::Status(500)
            .on("POST", "/transactions/bulk")
            .times(1000),
    );
    let response = post_stream(&harness, "c1", &case.request_body()).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let text = read_all(response).await;
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream ends normally"
    );
    assert!(charge_of(&harness.blnk, &id).usd.is_none());

    harness.blnk.clear_faults();
    wait_for_secs(15, || charge_of(&harness.blnk, &id).usd.is_some()).await;
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
}

#[tokio::test]
async fn async_openai_stream_is_billed() {
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let case = Case::load("01-include-usage-false-respected");
    let (harness, _server) = start(
        Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(2)),
        ),
        vec![],
    )
    .await;
    harness.postpaid("sdk").await;
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .stream(true)
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("Say hi")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let mut stream = harness
        .openai("sdk")
        .chat()
        .create_stream(request)
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk parses");
        assert!(
            !chunk.choices.is_empty(),
            "no usage-only chunk reaches a client that did not ask"
        );
        for choice in chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
    }
    assert_eq!(text, "Hi!");
    let legs = all_charge_legs(&harness.blnk);
    let usd = legs.iter().find(|t| t.currency == "USD").unwrap();
    assert_eq!(usd.precise_amount, usd_to_nanos("0.00000315"));
}

async fn wait_for(condition: impl FnMut() -> bool) {
    wait_for_secs(3, condition).await;
}

async fn wait_for_secs(seconds: u64, mut condition: impl FnMut() -> bool) {
    for _ in 0..seconds * 50 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(condition(), "condition not reached within {seconds} s");
}

#[tokio::test]
async fn json_answer_to_stream_is_billed() {
    use wiremock::matchers::method;
    use wiremock::{Mock, ResponseTemplate};
    let harness = Harness::start().await;
    harness.postpaid("c1").await;
    let case = Case::load("18-tiny-cost-exact-decimal");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&harness.upstream)
        .await;
    let mut body = case.request_body();
    body["stream"] = json!(true);
    let response = post_stream(&harness, "c1", &body).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let received: Value = response.json().await.unwrap();
    assert_eq!(received, case.upstream_json());
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        case.expected_nanos()
    );
}

#[tokio::test]
async fn stream_ending_without_terminator_gets_error_event() {
    let case = Case::load("13-client-disconnects-mid-stream");
    // Five content events, then a clean end of body: no usage chunk and no [DONE].
    let pieces = case.upstream_writes()[..5].to_vec();
    let (harness, _server) = start(
        Script::sse(pieces, Pace::Every(Duration::from_millis(2))),
        vec![],
    )
    .await;
    harness.postpaid("c1").await;
    let response = post_stream(&harness, "c1", &case.request_body()).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let text = read_all(response).await;
    assert!(
        text.ends_with("\"code\":\"upstream_stream_interrupted\"}}\n\n"),
        "{text}"
    );
    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(
        charge.usd.as_ref().unwrap().meta_data["usage_source"],
        "estimated"
    );
    assert!(charge.usd_nanos() > 0);
}

/// Builds a chat completion stream of `content_chunks` events, each carrying about 64 KiB of text,
/// that ends with reported usage and the terminator.
fn large_stream(content_chunks: usize) -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-big\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        )
    };
    let text = "word ".repeat(64 * 1024 / 5);
    let mut pieces = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    for _ in 0..content_chunks {
        pieces.push(chunk(&format!("{{\"content\":\"{text}\"}}"), "null"));
    }
    pieces.push(chunk("{}", "\"stop\""));
    pieces.push(
        "data: {\"id\":\"chatcmpl-big\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":5000000,\"total_tokens\":5000040}}\n\n"
            .to_string(),
    );
    pieces.push("data: [DONE]\n\n".to_string());
    pieces
}

/// A stream of large chunks that the client never reads: the running harness, the upstream
/// server, the unread response, its request id, and the number of upstream pieces.
struct StalledReader {
    harness: Harness,
    server: StreamServer,
    response: reqwest::Response,
    id: String,
    total: usize,
}

/// Starts a stream of `content_chunks` large chunks sent every `pace`, with `env` set, and
/// returns it unread.
async fn start_stalled_reader(
    content_chunks: usize,
    pace: Duration,
    env: Vec<(&'static str, String)>,
) -> StalledReader {
    let pieces = large_stream(content_chunks);
    let total = pieces.len();
    let (harness, server) = start(Script::sse(pieces, Pace::Every(pace)), env).await;
    harness.postpaid("cust_postpaid_01").await;
    let case = Case::load("13-client-disconnects-mid-stream");
    let response = post_stream(&harness, "cust_postpaid_01", &case.request_body()).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    StalledReader {
        harness,
        server,
        response,
        id,
        total,
    }
}

/// Waits until upstream is no longer read, because every buffer toward the client is full,
/// and returns the pieces upstream wrote.
async fn wait_until_upstream_blocks(server: &StreamServer) -> usize {
    let mut written = server.pieces_written();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.pieces_written();
        if now == written {
            return written;
        }
        written = now;
    }
}

/// A client that stops reading fills the relay's queue, so the relay waits for room when the
/// client leaves. The `stop` policy must still end the stream there.
#[tokio::test]
async fn stop_policy_applies_to_stalled_reader() {
    let StalledReader {
        harness,
        server,
        response,
        id,
        total,
    } = start_stalled_reader(
        400,
        Duration::from_millis(1),
        vec![("TOLLGATE_UPSTREAM_ON_CLIENT_DISCONNECT", "stop".into())],
    )
    .await;

    let written = wait_until_upstream_blocks(&server).await;
    assert!(
        written < total,
        "upstream was read to its end before the client left"
    );
    drop(response);

    wait_for_secs(10, || charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge.usd.as_ref().unwrap();
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert_eq!(
        usd.meta_data["usage_source"], "estimated",
        "the stream was read on after the client left"
    );
    assert!(
        server.pieces_written() < total,
        "upstream was read to its end after the client left under the stop policy"
    );
}

/// The same stalled reader under the `drain` policy: once the client leaves, upstream is read
/// for at most the drain timeout, not to the end of a long stream.
#[tokio::test]
async fn drain_policy_applies_to_stalled_reader() {
    let StalledReader {
        harness,
        server,
        response,
        id,
        total,
    } = start_stalled_reader(
        600,
        Duration::from_millis(20),
        vec![
            ("TOLLGATE_UPSTREAM_ON_CLIENT_DISCONNECT", "drain".into()),
            ("TOLLGATE_UPSTREAM_DRAIN_TIMEOUT", "300ms".into()),
        ],
    )
    .await;

    wait_until_upstream_blocks(&server).await;
    drop(response);

    // Reading the rest of the stream would take about 8 s more.
    wait_for_secs(4, || charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge
        .usd
        .as_ref()
        .expect("charged within the drain timeout of the client leaving");
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert!(
        server.pieces_written() < total,
        "upstream was read to its end although the drain timeout had passed"
    );
}

/// A client that stops reading but keeps its connection open fills the relay's queue. At the
/// stream's deadline the relay stops reading upstream and bills what it saw, instead of
/// waiting for room for as long as the client stays.
#[tokio::test]
async fn stalled_reader_is_cut_at_deadline() {
    // Every buffer toward the client fills in about 3 s in a debug build, before the deadline.
    let StalledReader {
        harness,
        server,
        response,
        id,
        total,
    } = start_stalled_reader(
        600,
        Duration::from_millis(1),
        vec![("TOLLGATE_UPSTREAM_MAX_STREAM_DURATION", "5s".into())],
    )
    .await;

    // The response is kept and never read.
    wait_for_secs(9, || charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge.usd.as_ref().unwrap();
    assert_eq!(usd.meta_data["usage_source"], "estimated");
    assert_eq!(usd.meta_data["client_disconnected"], false);
    assert!(
        server.pieces_written() < total,
        "upstream was read to its end although the client read nothing"
    );
    drop(response);
}

/// A client that leaves while a reasoning model has streamed only its role chunk: the drain
/// ends before the first content token. Upstream bills the prompt and the reasoning, so
/// tollgate bills its estimate instead of nothing.
#[tokio::test]
async fn drain_ending_before_content_is_billed() {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-r\",\"object\":\"chat.completion.chunk\",\"model\":\"o3-2025-04-16\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let pieces = vec![
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Answer"}"#, r#""stop""#),
        "data: [DONE]\n\n".to_owned(),
    ];
    // The first content token comes 5 s after the role chunk, long after the drain ends.
    let server =
        StreamServer::start(Script::sse(pieces, Pace::Every(Duration::from_secs(5)))).await;
    let harness = Harness::start_with(Options {
        env: vec![
            ("TOLLGATE_UPSTREAM_URL", server.url.clone()),
            ("TOLLGATE_UPSTREAM_DRAIN_TIMEOUT", "300ms".to_string()),
        ],
        ..Options::default()
    })
    .await;
    harness.postpaid("reasoner").await;

    let body = json!({"model": "o3", "stream": true, "messages": [{"role": "user", "content": "Prove it."}]});
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "reasoner")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let role_chunk = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&role_chunk).contains("assistant"));
    drop(stream);

    wait_for_secs(3, || !all_charge_legs(&harness.blnk).is_empty()).await;
    let legs = all_charge_legs(&harness.blnk);
    let usd = legs.iter().find(|t| t.currency == "USD").unwrap();
    assert_eq!(usd.meta_data["usage_source"], "estimated");
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert!(usd.precise_amount > 0, "the prompt was billed as zero");
}

/// Under the `stop` policy, a client that leaves after the usage chunk but before `[DONE]`
/// is billed that usage: the chunk without choices comes after all content, so it is final.
#[tokio::test]
async fn stop_after_usage_chunk_bills_reported() {
    let chunk = |choices: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-u\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":{choices},\"usage\":{usage}}}\n\n"
        )
    };
    let pieces = vec![
        chunk(
            r#"[{"index":0,"delta":{"role":"assistant","content":"Debits equal credits."},"finish_reason":null}]"#,
            "null",
        ),
        chunk(r#"[{"index":0,"delta":{},"finish_reason":"stop"}]"#, "null"),
        chunk(
            "[]",
            r#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}"#,
        ),
        "data: [DONE]\n\n".to_owned(),
    ];
    // Two permits: the finish chunk and the usage chunk follow the first piece, and `[DONE]`
    // waits for a permit that never comes.
    let gate = Arc::new(Semaphore::new(2));
    let (harness, _server) = start(
        Script::sse(pieces, Pace::Gated(Arc::clone(&gate))),
        vec![("TOLLGATE_UPSTREAM_ON_CLIENT_DISCONNECT", "stop".into())],
    )
    .await;
    harness.postpaid("leaver").await;
    let body = json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "State the rule."}]
    });
    let response = post_stream(&harness, "leaver", &body).await;
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(USAGE_CHUNK_MARK) {
        let piece = stream.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(stream);

    wait_for(|| charge_of(&harness.blnk, &id).usd.is_some()).await;
    let charge = charge_of(&harness.blnk, &id);
    let usd = charge.usd.as_ref().unwrap();
    assert_eq!(usd.meta_data["client_disconnected"], true);
    assert_eq!(usd.meta_data["usage_source"], "reported");
    assert_eq!(usd.meta_data["prompt_tokens"], 12);
    assert_eq!(usd.meta_data["completion_tokens"], 5);
    assert_eq!(charge.tokens(), 17);
}
