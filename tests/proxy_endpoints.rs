//! The metered endpoints besides chat completions, driven through the real proxy by the
//! async-openai client where it can drive them: the Responses API (plain and streamed),
//! embeddings and legacy completions. Each request must be billed exactly once, with the
//! exact nano-dollar amount on the USD leg and prompt plus completion tokens on the TOKENS leg.

mod support;

use std::time::Duration;

use async_openai::error::OpenAIError;
use futures_util::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use support::blnk::{TxnStatus, TxnView};
use support::cases::{Case, all_charge_legs, charge_of, usd_to_nanos};
use support::harness::{Harness, Options};
use support::stream_server::{Pace, Script, StreamServer};

const REQUEST_ID: &str = "x-tollgate-request-id";
const CUSTOMER: &str = "cust_postpaid_01";

/// Marks the usage-only chunk of a chat or legacy completions stream.
const USAGE_CHUNK_MARK: &str = "\"choices\":[]";

/// The two legs of the only charge in the ledger.
struct OnlyCharge {
    usd: TxnView,
    tokens: TxnView,
}

/// Returns the only charge recorded so far, failing unless there is exactly one.
fn only_charge(harness: &Harness) -> OnlyCharge {
    let legs = all_charge_legs(&harness.blnk);
    assert_eq!(legs.len(), 2, "exactly one two-leg charge: {legs:#?}");
    let leg = |currency: &str| {
        legs.iter()
            .find(|leg| leg.currency == currency)
            .cloned()
            .unwrap_or_else(|| panic!("no {currency} leg"))
    };
    OnlyCharge {
        usd: leg("USD"),
        tokens: leg("TOKENS"),
    }
}

/// Checks the amounts of the only charge: nano-dollars on the USD leg, tokens on the other.
fn assert_only_charge(harness: &Harness, usd: &str, tokens: i128) -> OnlyCharge {
    let charge = only_charge(harness);
    assert_eq!(charge.usd.precise_amount, usd_to_nanos(usd), "USD leg");
    assert_eq!(charge.tokens.precise_amount, tokens, "TOKENS leg");
    charge
}

/// Mounts a JSON response body on `route`, expected to be requested exactly once.
async fn mount_json(harness: &Harness, route: &str, answer: &Value) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&harness.upstream)
        .await;
}

/// Mounts an upstream that must never be called: tollgate has to reject the request itself.
async fn forbid_upstream(harness: &Harness) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
}

async fn post_raw(harness: &Harness, route: &str, body: &str) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}{route}", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", CUSTOMER)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()[REQUEST_ID]
        .to_str()
        .expect("ASCII id")
        .to_string()
}

/// Reads a stream fixture and splits it into one upstream write per SSE event.
fn stream_fixture(name: &str) -> Vec<String> {
    let file = format!(
        "{}/tests/fixtures/streams/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{file}: {error}"));
    text.split_inclusive("\n\n").map(str::to_string).collect()
}

/// Starts tollgate against a paced SSE upstream that sends `writes`, with a postpaid customer.
async fn stream_harness(writes: Vec<String>) -> (Harness, StreamServer) {
    let script = Script::sse(writes, Pace::Every(Duration::from_millis(3)));
    let server = StreamServer::start(script).await;
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_UPSTREAM_URL", server.url.clone())],
        ..Options::default()
    })
    .await;
    harness.postpaid(CUSTOMER).await;
    (harness, server)
}

/// The API error an async-openai call ended with, which must have status 400.
fn api_error(error: OpenAIError) -> async_openai::error::ApiError {
    match error {
        OpenAIError::ApiError(error) => {
            assert_eq!(error.status_code, 400);
            error.api_error
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

// Responses API, not streamed.

/// Builds a complete Responses body from gpt-5 whose usage has cached and reasoning tokens.
fn responses_answer() -> Value {
    json!({
        "id": "resp_e1", "object": "response", "created_at": 1730000000, "status": "completed",
        "model": "gpt-5-2025-08-07", "service_tier": "default", "error": null,
        "output": [{"type": "message", "id": "msg_e1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}]}],
        "usage": {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 0},
            "output_tokens": 700, "output_tokens_details": {"reasoning_tokens": 512}, "total_tokens": 2700}
    })
}

#[tokio::test]
async fn responses_call_is_billed_exactly() {
    use async_openai::types::responses::CreateResponseArgs;

    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    mount_json(&harness, "/v1/responses", &responses_answer()).await;

    let request = CreateResponseArgs::default()
        .model("gpt-5")
        .input("What is the capital of France?")
        .max_output_tokens(1000u32)
        .build()
        .unwrap();
    let response = harness
        .openai(CUSTOMER)
        .responses()
        .create(request)
        .await
        .unwrap();
    assert_eq!(response.usage.as_ref().unwrap().input_tokens, 2000);

    // (500 * 1.25 + 1500 * 0.125 + 700 * 10.00) / 1M; reasoning is inside the 700.
    let charge = assert_only_charge(&harness, "0.0078125", 2700);
    let metadata = &charge.usd.meta_data;
    assert_eq!(metadata["endpoint"], "responses");
    assert_eq!(metadata["stream"], false);
    assert_eq!(metadata["model_requested"], "gpt-5");
    assert_eq!(metadata["model_billed"], "gpt-5");
    assert_eq!(metadata["prompt_tokens"], 2000);
    assert_eq!(metadata["cached_tokens"], 1500);
    assert_eq!(metadata["cache_write_tokens"], 0);
    assert_eq!(metadata["completion_tokens"], 700);
    assert_eq!(metadata["reasoning_tokens"], 512);
    assert_eq!(metadata["usage_source"], "reported");
}

#[tokio::test]
async fn responses_body_forwarded_byte_for_byte() {
    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    let body = r#"{"model":"gpt-5",  "input":"hi", "stream":false, "max_output_tokens":64}"#;
    let expected = body.as_bytes().to_vec();
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(move |request: &Request| request.body == expected)
        .respond_with(ResponseTemplate::new(200).set_body_json(responses_answer()))
        .expect(1)
        .mount(&harness.upstream)
        .await;

    let response = post_raw(&harness, "/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    let relayed: Value = response.json().await.unwrap();
    assert_eq!(
        relayed,
        responses_answer(),
        "the answer is relayed unchanged"
    );
}

#[tokio::test]
async fn responses_quote_uses_max_output_tokens() {
    let harness = Harness::start().await;
    harness.prepaid(CUSTOMER, "5").await;
    let answer = json!({"id": "resp_q", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-4.1-mini-2025-04-14", "output": [],
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;

    // gpt-4.1-mini costs 400 nano-dollars per input token and 1600 per output token. The
    // prompt bound is the body's length in bytes; without a limit the model's cap applies.
    let cases = [
        (
            r#"{"model":"gpt-4.1-mini","input":"hi","max_output_tokens":1000}"#,
            1000,
        ),
        (r#"{"model":"gpt-4.1-mini","input":"hi"}"#, 32768),
    ];
    for (body, max_output) in cases {
        let response = post_raw(&harness, "/v1/responses", body).await;
        assert_eq!(response.status(), 200, "{body}");
        let id = request_id(&response);
        let holds = harness
            .blnk
            .transactions_with_reference_prefix(&format!("tg:{id}:hold"));
        assert_eq!(holds.len(), 1, "{body}: one hold");
        let expected = body.len() as i128 * 400 + max_output * 1600;
        assert_eq!(holds[0].precise_amount, expected, "{body}: hold amount");
        // (10 * 0.40 + 5 * 1.60) / 1M
        assert_eq!(charge_of(&harness.blnk, &id).usd_nanos(), 12_000, "{body}");
    }
}

#[tokio::test]
async fn background_response_is_rejected() {
    use async_openai::types::responses::CreateResponseArgs;

    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    forbid_upstream(&harness).await;

    let request = CreateResponseArgs::default()
        .model("gpt-5")
        .input("Write a long report.")
        .background(true)
        .build()
        .unwrap();
    let error = harness
        .openai(CUSTOMER)
        .responses()
        .create(request)
        .await
        .unwrap_err();
    let error = api_error(error);
    assert_eq!(error.r#type.as_deref(), Some("invalid_request_error"));
    assert_eq!(error.code.as_deref(), Some("unsupported_request"));
    assert_eq!(error.param.as_deref(), Some("background"));
    assert!(error.message.contains("background"), "{}", error.message);

    let body = r#"{"model":"gpt-5","input":"x","background":true,"stream":true}"#;
    let response = post_raw(&harness, "/v1/responses", body).await;
    assert_eq!(response.status(), 400, "streamed background requests too");
    assert!(all_charge_legs(&harness.blnk).is_empty());
    assert!(harness.blnk.transactions().is_empty(), "no hold either");
}

// Responses API, streamed.

#[tokio::test]
async fn responses_stream_is_billed_before_completion() {
    use async_openai::types::responses::{CreateResponseArgs, ResponseStreamEvent};

    let (harness, _server) = stream_harness(stream_fixture("responses_completed.sse")).await;
    let request = CreateResponseArgs::default()
        .model("o4-mini")
        .input("Coffee, please.")
        .stream(true)
        .build()
        .unwrap();
    let mut stream = harness
        .openai(CUSTOMER)
        .responses()
        .create_stream(request)
        .await
        .unwrap();

    let mut text = String::new();
    let mut completed = false;
    while let Some(event) = stream.next().await {
        match event.expect("every event parses") {
            ResponseStreamEvent::ResponseOutputTextDelta(delta) => text.push_str(&delta.delta),
            ResponseStreamEvent::ResponseCompleted(event) => {
                // The terminal event is forwarded only after the charge is recorded.
                assert_eq!(
                    all_charge_legs(&harness.blnk).len(),
                    2,
                    "charged before completion"
                );
                let usage = event.response.usage.expect("usage in the terminal event");
                assert_eq!(usage.output_tokens_details.reasoning_tokens, 832);
                completed = true;
            }
            _ => {}
        }
    }
    assert!(completed, "the stream ends with response.completed");
    assert_eq!(text, "Café au lait ☕ is ready.");

    // (17 * 1.10 + 64 * 0.275 + 1035 * 4.40) / 1M
    let charge = assert_only_charge(&harness, "0.0045903", 1116);
    let metadata = &charge.usd.meta_data;
    assert_eq!(metadata["endpoint"], "responses");
    assert_eq!(metadata["stream"], true);
    assert_eq!(metadata["model_billed"], "o4-mini");
    assert_eq!(metadata["reasoning_tokens"], 832);
    assert_eq!(metadata["cached_tokens"], 64);
}

#[tokio::test]
async fn responses_stream_relayed_without_done() {
    let writes = stream_fixture("responses_completed.sse");
    let (harness, server) = stream_harness(writes.clone()).await;
    let body = r#"{"model":"o4-mini","input":"Coffee, please.","stream":true}"#;
    let response = post_raw(&harness, "/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();

    assert_eq!(text, writes.concat(), "the stream arrives byte for byte");
    assert!(
        !text.contains("[DONE]"),
        "Responses streams carry no [DONE]"
    );
    let sent = server.bodies();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], body.as_bytes(), "the body goes upstream unchanged");
    assert!(!String::from_utf8_lossy(&sent[0]).contains("stream_options"));
}

#[tokio::test]
async fn responses_stream_options_left_alone() {
    let (harness, server) = stream_harness(stream_fixture("responses_completed.sse")).await;
    // A client may set Responses' own stream_options; tollgate adds and changes nothing.
    let body = r#"{"model":"o4-mini","input":"x","stream":true,"stream_options":{"include_obfuscation":false}}"#;
    let response = post_raw(&harness, "/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    assert_eq!(server.bodies()[0], body.as_bytes());
    assert_only_charge(&harness, "0.0045903", 1116);
}

/// The fixture of a failed Responses stream with a usage object in its terminal event.
fn failed_stream_with_usage() -> Vec<String> {
    let mut writes = stream_fixture("responses_failed.sse");
    let last = writes.last_mut().expect("a terminal event");
    let usage = r#""usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":37}}}"#;
    *last = last.replace(r#""usage":null}}"#, usage);
    assert!(last.contains("input_tokens"), "the fixture changed shape");
    writes
}

#[tokio::test]
async fn every_terminal_event_is_billed() {
    // gpt-4.1-mini: 0.40 and 1.60 per 1M tokens; gpt-4.1: 2.00 and 8.00.
    let cases = [
        (
            "response.incomplete",
            stream_fixture("responses_incomplete.sse"),
            "0.0000336",
            36,
        ),
        (
            "response.failed",
            failed_stream_with_usage(),
            "0.000116",
            37,
        ),
    ];
    for (terminal, writes, usd, tokens) in cases {
        let (harness, _server) = stream_harness(writes.clone()).await;
        let body = r#"{"model":"gpt-4.1-mini","input":"x","stream":true,"max_output_tokens":16}"#;
        let response = post_raw(&harness, "/v1/responses", body).await;
        assert_eq!(response.status(), 200, "{terminal}");
        let text = response.text().await.unwrap();
        assert_eq!(text, writes.concat(), "{terminal}: relayed unchanged");
        assert!(text.contains(&format!("event: {terminal}")), "{terminal}");

        let charge = assert_only_charge(&harness, usd, tokens);
        assert_eq!(
            charge.usd.meta_data["usage_source"], "reported",
            "{terminal}"
        );
        harness.stop().await;
    }
}

#[tokio::test]
async fn failed_stream_without_usage_is_estimated() {
    let writes = stream_fixture("responses_failed.sse");
    let (harness, _server) = stream_harness(writes.clone()).await;
    let body = r#"{"model":"gpt-4.1","input":"Say something.","stream":true}"#;
    let response = post_raw(&harness, "/v1/responses", body).await;
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        writes.concat(),
        "the failure reaches the client unchanged"
    );

    let charge = only_charge(&harness);
    assert_eq!(charge.usd.meta_data["usage_source"], "estimated");
    assert_eq!(charge.usd.meta_data["model_billed"], "gpt-4.1");
    assert!(charge.usd.precise_amount > 0, "the streamed text is billed");
}

#[tokio::test]
async fn failed_stream_before_output_is_free() {
    let writes: Vec<String> = stream_fixture("responses_failed.sse")
        .into_iter()
        .filter(|write| !write.contains("response.output_text.delta"))
        .collect();
    let (harness, _server) = stream_harness(writes.clone()).await;
    let customer = harness.prepaid("prepaid_01", "1").await;
    let body =
        r#"{"model":"gpt-4.1","input":"Say something.","stream":true,"max_output_tokens":50}"#;
    let response = harness
        .http()
        .post(format!("{}/v1/responses", harness.url))
        .header("X-Customer-Id", "prepaid_01")
        .body(body)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        writes.concat(),
        "the failure reaches the client unchanged"
    );

    assert!(
        all_charge_legs(&harness.blnk).is_empty(),
        "upstream failed before any output"
    );
    for _ in 0..200 {
        if harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.inflight_debit_balance, 0, "the hold is released");
    assert_eq!(wallet.balance, 1_000_000_000);
}

// Embeddings.

#[tokio::test]
async fn embeddings_array_input_is_billed() {
    use async_openai::types::embeddings::CreateEmbeddingRequestArgs;

    let case = Case::load("30-embeddings-usage");
    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_json(case.request_body()))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .expect(1)
        .mount(&harness.upstream)
        .await;

    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-small")
        .input(["The quick brown fox", "jumps over the lazy dog"])
        .build()
        .unwrap();
    let response = harness
        .openai(CUSTOMER)
        .embeddings()
        .create(request)
        .await
        .unwrap();
    assert_eq!(response.data.len(), 2);
    assert_eq!(response.usage.prompt_tokens, 10);

    let charge = only_charge(&harness);
    assert_eq!(
        charge.usd.precise_amount,
        case.expected_nanos(),
        "10 * 0.02 / 1M"
    );
    assert_eq!(charge.tokens.precise_amount, case.expected_tokens());
    let metadata = &charge.usd.meta_data;
    assert_eq!(metadata["endpoint"], "embeddings");
    assert_eq!(metadata["prompt_tokens"], 10);
    assert_eq!(metadata["completion_tokens"], 0);
    assert_eq!(metadata["model_billed"], "text-embedding-3-small");
}

#[tokio::test]
async fn embeddings_single_input_is_billed() {
    use async_openai::types::embeddings::CreateEmbeddingRequestArgs;

    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    let answer = json!({"object": "list", "model": "text-embedding-3-large",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    mount_json(&harness, "/v1/embeddings", &answer).await;

    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-large")
        .input("Hello there, world")
        .build()
        .unwrap();
    let response = harness
        .openai(CUSTOMER)
        .embeddings()
        .create(request)
        .await
        .unwrap();
    assert_eq!(response.data.len(), 1);

    // 4 * 0.13 / 1M
    assert_only_charge(&harness, "0.00000052", 4);
}

#[tokio::test]
async fn base64_embeddings_pass_untouched() {
    use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EncodingFormat};

    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    let answer = json!({"object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": "AACAPwAAAMA="}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}});
    mount_json(&harness, "/v1/embeddings", &answer).await;

    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-small")
        .input("base64 please")
        .encoding_format(EncodingFormat::Base64)
        .build()
        .unwrap();
    let response = harness
        .openai(CUSTOMER)
        .embeddings()
        .create_base64(request)
        .await
        .unwrap();
    assert_eq!(response.data[0].embedding.0, "AACAPwAAAMA=");

    // 3 * 0.02 / 1M
    assert_only_charge(&harness, "0.00000006", 3);
}

// Legacy completions.

#[tokio::test]
async fn completion_call_is_billed_exactly() {
    use async_openai::types::completions::CreateCompletionRequestArgs;

    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    let answer = json!({"id": "cmpl-1", "object": "text_completion", "created": 1730000000,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": " upon a time", "index": 0, "logprobs": null, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
    mount_json(&harness, "/v1/completions", &answer).await;

    let request = CreateCompletionRequestArgs::default()
        .model("gpt-3.5-turbo-instruct")
        .prompt("Once")
        .max_tokens(7u32)
        .build()
        .unwrap();
    let response = harness
        .openai(CUSTOMER)
        .completions()
        .create(request)
        .await
        .unwrap();
    assert_eq!(response.choices[0].text, " upon a time");

    // (5 * 1.50 + 7 * 2.00) / 1M
    let charge = assert_only_charge(&harness, "0.0000215", 12);
    assert_eq!(charge.usd.meta_data["endpoint"], "completions");
    assert_eq!(charge.usd.meta_data["stream"], false);

    let sent = harness.upstream.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert!(
        sent.get("stream_options").is_none(),
        "no stream_options without stream"
    );
}

/// Streams a legacy completion through async-openai and returns the chunks' texts and
/// whether a chunk carried usage.
async fn stream_completion(
    harness: &Harness,
    include_usage: Option<bool>,
) -> (String, Option<u32>) {
    use async_openai::types::chat::ChatCompletionStreamOptions;
    use async_openai::types::completions::CreateCompletionRequestArgs;

    let mut request = CreateCompletionRequestArgs::default();
    request
        .model("gpt-3.5-turbo-instruct")
        .prompt("Once")
        .max_tokens(4u32)
        .stream(true);
    if let Some(include_usage) = include_usage {
        request.stream_options(ChatCompletionStreamOptions {
            include_usage: Some(include_usage),
            include_obfuscation: None,
        });
    }
    let mut stream = harness
        .openai(CUSTOMER)
        .completions()
        .create_stream(request.build().expect("a valid request"))
        .await
        .expect("the stream starts");

    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk parses");
        for choice in &chunk.choices {
            text.push_str(&choice.text);
        }
        if let Some(reported) = chunk.usage {
            assert!(chunk.choices.is_empty(), "usage comes in its own chunk");
            usage = Some(reported.total_tokens);
        }
    }
    (text, usage)
}

#[tokio::test]
async fn completion_stream_strips_unrequested_usage() {
    for include_usage in [None, Some(false)] {
        let (harness, server) = stream_harness(stream_fixture("completions_legacy.sse")).await;
        let (text, usage) = stream_completion(&harness, include_usage).await;
        assert_eq!(text, "Once upon a time", "include_usage {include_usage:?}");
        assert_eq!(
            usage, None,
            "include_usage {include_usage:?}: no usage chunk"
        );

        let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
        assert_eq!(
            sent["stream_options"]["include_usage"], true,
            "usage forced upstream"
        );
        assert_eq!(sent["prompt"], "Once");
        // (4 * 1.50 + 4 * 2.00) / 1M
        let charge = assert_only_charge(&harness, "0.000014", 8);
        assert_eq!(charge.usd.meta_data["endpoint"], "completions");
        assert_eq!(charge.usd.meta_data["stream"], true);
        harness.stop().await;
    }
}

#[tokio::test]
async fn completion_stream_keeps_requested_usage() {
    let (harness, server) = stream_harness(stream_fixture("completions_legacy.sse")).await;
    let (text, usage) = stream_completion(&harness, Some(true)).await;
    assert_eq!(text, "Once upon a time");
    assert_eq!(usage, Some(8), "the client asked for the usage chunk");
    let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_only_charge(&harness, "0.000014", 8);
}

#[tokio::test]
async fn completion_stream_relayed_exactly() {
    let writes = stream_fixture("completions_legacy.sse");
    let cases = [
        (
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Once","stream":true}"#,
            false,
        ),
        (
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Once","stream":true,"stream_options":{"include_usage":true}}"#,
            true,
        ),
    ];
    for (body, wants_usage) in cases {
        let (harness, server) = stream_harness(writes.clone()).await;
        let response = post_raw(&harness, "/v1/completions", body).await;
        let text = response.text().await.unwrap();
        let expected: String = writes
            .iter()
            .filter(|write| wants_usage || !write.contains(USAGE_CHUNK_MARK))
            .cloned()
            .collect();
        assert_eq!(text, expected, "{body}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{body}");

        let sent = String::from_utf8(server.bodies()[0].clone()).unwrap();
        let rewritten = body.replacen('{', r#"{"stream_options":{"include_usage":true},"#, 1);
        let expected_sent = if wants_usage {
            body
        } else {
            rewritten.as_str()
        };
        assert_eq!(sent, expected_sent, "only stream_options changes");
        assert_only_charge(&harness, "0.000014", 8);
        harness.stop().await;
    }
}

#[tokio::test]
async fn rejected_requests_leave_no_hold() {
    let harness = Harness::start().await;
    harness.prepaid(CUSTOMER, "1").await;
    forbid_upstream(&harness).await;
    let cases = [
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-9","input":"x"}"#,
            "model_not_priced",
        ),
        ("/v1/completions", r#"{"prompt":"x"}"#, "missing_model"),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","input":"x","background":true}"#,
            "unsupported_request",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","input":"#,
            "invalid_json",
        ),
    ];
    for (route, body, code) in cases {
        let response = post_raw(&harness, route, body).await;
        assert_eq!(response.status(), 400, "{route} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{route} {body}");
    }
    let holds: Vec<_> = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|txn| txn.status == TxnStatus::Inflight)
        .collect();
    assert!(holds.is_empty(), "{holds:#?}");
}
