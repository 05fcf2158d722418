//! A prepaid customer's hold under faults: it stays as long as its request can still spend,
//! and it is voided once nothing will, even when Blnk's reply was lost or the client left.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use tollgate::billing::request::{PromptBounds, RequestFacts};
use tollgate::money::Nanos;
use tollgate::usage::Endpoint;

use support::blnk::Fault;
use support::cases::charge_of;
use support::harness::{Harness, Options};

fn options(extra: &[(&'static str, &str)]) -> Options {
    let mut env = vec![
        ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "300ms".to_string()),
        ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms".to_string()),
        ("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "100ms".to_string()),
        ("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "500ms".to_string()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, value.to_string())));
    Options {
        env,
        ..Options::default()
    }
}

/// Builds a chat request whose quote is at least 200 output tokens of gpt-4o-mini ($0.00012).
fn chat_request() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 200
    })
}

/// Builds a response that uses its whole output limit: 1 prompt token and 200 completion tokens,
/// $0.00012015, which is within the quote of [`chat_request`].
fn chat_response() -> Value {
    json!({
        "id": "chatcmpl-review",
        "object": "chat.completion",
        "created": 1730000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello."},
            "finish_reason": "length"
        }],
        "usage": {"prompt_tokens": 1, "completion_tokens": 200, "total_tokens": 201}
    })
}

async fn post_chat(harness: &Harness, customer: &str) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(&chat_request())
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    let id = response.headers()["x-tollgate-request-id"].to_str();
    id.expect("the request id is ASCII").to_string()
}

async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(condition(), "condition not reached within {limit:?}");
}

async fn mount_chat(harness: &Harness) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_response()))
        .mount(&harness.upstream)
        .await;
}

/// A charge that Blnk did not take at once keeps its request's hold until the worker has
/// posted it. Voiding the hold first would free the money the charge is about to take, and a
/// second request would be admitted against it.
#[tokio::test]
async fn pending_charge_keeps_its_hold() {
    let harness = Harness::start_with(options(&[])).await;
    mount_chat(&harness).await;
    // Enough for one worst case ($0.00012 and a little), not for two actual costs.
    let customer = harness.prepaid("prepaid", "0.0002").await;
    let wallet_id = customer.usd_balance_id.clone();

    // One transient failure of the charge, such as a 500 or a 423 while Blnk's balance lock
    // is taken.
    harness
        .blnk
        .inject(Fault::Status(500).on("POST", "/transactions/bulk"));
    let first = post_chat(&harness, "prepaid").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-tollgate-charge"], "pending");
    let first_id = request_id(&first);
    assert!(
        harness.blnk.balance(&wallet_id).inflight_debit_balance > 0,
        "the hold stays while the charge is pending"
    );

    let second = post_chat(&harness, "prepaid").await;
    assert_eq!(
        second.status(),
        402,
        "the second request was admitted against the first one's pending charge"
    );

    // The worker posts the charge, and only then voids the hold.
    wait_for(Duration::from_secs(10), || {
        charge_of(&harness.blnk, &first_id).usd.is_some()
    })
    .await;
    wait_for(Duration::from_secs(10), || {
        harness.blnk.balance(&wallet_id).inflight_debit_balance == 0
    })
    .await;
    let wallet = harness.blnk.balance(&wallet_id);
    assert!(
        wallet.balance >= 0,
        "overspent to {} nano-dollars",
        wallet.balance
    );
    let usd_legs = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|t| t.currency == "USD" && t.reference.ends_with(":usd"))
        .count();
    assert_eq!(usd_legs, 1, "only the first request is charged");
}

/// A charge that Blnk records a little after `blnk.charge_timeout` is posted on by a
/// background task. Once that post records it, the hold reserves nothing the charge still
/// needs, so it is voided then, and a second request that the wallet covers is served.
#[tokio::test]
async fn recorded_late_charge_frees_its_hold() {
    let harness = Harness::start_with(Options {
        env: vec![
            ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "3s".to_string()),
            ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "200ms".to_string()),
        ],
        ..Options::default()
    })
    .await;
    // 10 completion tokens: $0.00000615, far below the quote of about $0.000132. The wallet
    // covers one quote, and a second one once the first request's hold is gone.
    let mut answer = chat_response();
    answer["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 10, "total_tokens": 11});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;
    let customer = harness.prepaid("prepaid", "0.0002").await;
    let wallet_id = customer.usd_balance_id.clone();

    // Blnk applies the charge at once and replies 1 s later, past the charge timeout.
    harness
        .blnk
        .inject(Fault::ApplyThenHang(Duration::from_secs(1)).on("POST", "/transactions/bulk"));
    let first = post_chat(&harness, "prepaid").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-tollgate-charge"], "pending");
    let wallet = harness.blnk.balance(&wallet_id);
    assert_eq!(wallet.balance, 200_000 - 6_150, "Blnk applied the charge");

    // The background post reads Blnk's reply after 1 s and voids the hold at once, long
    // before the worker's check at twice the ledger timeout (6 s).
    wait_for(Duration::from_secs(3), || {
        harness.blnk.balance(&wallet_id).inflight_debit_balance == 0
    })
    .await;
    let second = post_chat(&harness, "prepaid").await;
    assert_eq!(second.status(), 200);
}

/// When the outbox worker records a pending charge, the request's hold, which had been
/// waiting for it on a longer backoff of its own, is voided on the worker's next pass.
#[tokio::test]
async fn worker_recorded_charge_frees_its_hold() {
    // The hold's retry after its first wait comes about 4 s later, while the charge's entry is
    // due 1.3 s after the request.
    let harness = Harness::start_with(options(&[
        ("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "2s"),
        ("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "10s"),
    ]))
    .await;
    mount_chat(&harness).await;
    let customer = harness.prepaid("prepaid", "1").await;
    let wallet_id = customer.usd_balance_id.clone();
    harness
        .blnk
        .inject(Fault::Status(500).on("POST", "/transactions/bulk"));

    let started = tokio::time::Instant::now();
    let response = post_chat(&harness, "prepaid").await;
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);
    wait_for(Duration::from_secs(3), || {
        charge_of(&harness.blnk, &id).usd.is_some()
    })
    .await;
    wait_for(Duration::from_secs(3), || {
        harness.blnk.balance(&wallet_id).inflight_debit_balance == 0
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the hold was voided {:?} after the request, on its own backoff",
        started.elapsed()
    );
}

/// Blnk places the hold but its 2xx reply cannot be read. The request fails, and the worker
/// looks the hold up and voids it instead of leaving it to block the funds until it expires.
#[tokio::test]
async fn unreadable_hold_reply_is_voided() {
    let harness = Harness::start_with(options(&[])).await;
    mount_chat(&harness).await;
    let customer = harness.prepaid("prepaid", "1").await;
    let wallet_id = customer.usd_balance_id.clone();

    // The hold is applied, and the reply is a 200 whose body is not a transaction.
    harness
        .blnk
        .inject(Fault::ApplyThenFail(200).on("POST", "/transactions"));
    let response = post_chat(&harness, "prepaid").await;
    assert!(
        !response.status().is_success(),
        "the request fails without a readable hold"
    );
    assert!(
        harness.blnk.balance(&wallet_id).inflight_debit_balance > 0,
        "Blnk holds funds for the failed request"
    );

    // Well past the worker's look-up delay for an unanswered hold (twice the 300 ms
    // request timeout) and a few worker passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wallet = harness.blnk.balance(&wallet_id);
    assert_eq!(
        wallet.inflight_debit_balance, 0,
        "the hold of a request that was never served still blocks {} nano-dollars",
        wallet.inflight_debit_balance
    );
}

/// Builds one SSE `data:` event of a chat completion chunk.
fn chat_chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-slow\",\"object\":\"chat.completion.chunk\",\"created\":1,\
         \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\
         \"finish_reason\":null}}],\"usage\":null}}\n\n"
    )
}

/// Starts an upstream that waits `first_byte` before its response headers, then streams a
/// chat completion in pieces `every` apart. Each connection gets the same response.
async fn start_slow_upstream(first_byte: Duration, pieces: usize, every: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tollgate::task::spawn_named("test-slow-upstream", async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tollgate::task::spawn_named("test-slow-upstream-connection", async move {
                // The request fits one read here, and its content is not needed.
                let mut buffer = vec![0u8; 65536];
                let _ = socket.read(&mut buffer).await;
                tokio::time::sleep(first_byte).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut events: Vec<String> =
                    (0..pieces).map(|i| chat_chunk(&format!("w{i} "))).collect();
                events.push(
                    "data: {\"id\":\"chatcmpl-slow\",\"object\":\"chat.completion.chunk\",\"created\":1,\
                     \"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\
                     \"completion_tokens\":20,\"total_tokens\":21}}\n\ndata: [DONE]\n\n"
                        .to_string(),
                );
                for (index, event) in events.iter().enumerate() {
                    if index > 0 {
                        tokio::time::sleep(every).await;
                    }
                    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    url
}

/// A stream may wait up to `first_byte_timeout` for its headers and then run for
/// `max_stream_duration`, so its hold must last for both. Here the stream takes about
/// 3.5 s + 3.6 s, within the 4 s of each timeout, with no expiry margin.
#[tokio::test]
async fn stream_keeps_hold_to_the_end() {
    let upstream =
        start_slow_upstream(Duration::from_millis(3500), 12, Duration::from_millis(300)).await;
    let harness = Harness::start_with(options(&[
        ("TOLLGATE_UPSTREAM_URL", upstream.as_str()),
        ("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT", "4s"),
        ("TOLLGATE_UPSTREAM_MAX_STREAM_DURATION", "4s"),
        ("TOLLGATE_UPSTREAM_IDLE_TIMEOUT", "4s"),
        ("TOLLGATE_UPSTREAM_DRAIN_TIMEOUT", "1s"),
        ("TOLLGATE_BLNK_HOLD_EXPIRY_MARGIN", "0s"),
    ]))
    .await;
    let customer = harness.prepaid("prepaid", "1").await;
    let wallet_id = customer.usd_balance_id.clone();

    let mut body = chat_request();
    body["stream"] = json!(true);
    let client = harness.http();
    let url = format!("{}/v1/chat/completions", harness.url);
    let stream = tollgate::task::spawn_named("test-stream-client", async move {
        let response = client
            .post(url)
            .header("Authorization", "Bearer sk-client-test")
            .header("X-Customer-Id", "prepaid")
            .json(&body)
            .send()
            .await
            .expect("tollgate answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("the stream ends")
    });

    // Watch the wallet while the stream runs.
    let mut hold_seen = false;
    let mut hold_gone_mid_stream = false;
    while !stream.is_finished() {
        let held = harness.blnk.balance(&wallet_id).inflight_debit_balance;
        if held > 0 {
            hold_seen = true;
        } else if hold_seen {
            hold_gone_mid_stream = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = stream.await.expect("the client task");
    assert!(
        text.contains("data: [DONE]"),
        "the stream completed: {text}"
    );
    assert!(hold_seen, "the stream held funds at first");
    assert!(
        !hold_gone_mid_stream,
        "the hold was voided while its stream was still running"
    );
}

/// A client that leaves while Blnk is slow to respond to the hold cancels its request. The
/// hold placement runs on, and the hold is voided as soon as Blnk's response arrives.
#[tokio::test]
async fn cancelled_hold_is_voided() {
    // The default 5 s request timeout: tollgate waits for Blnk's slow response.
    let harness = Harness::start_with(options(&[("TOLLGATE_BLNK_REQUEST_TIMEOUT", "5s")])).await;
    mount_chat(&harness).await;
    let customer = harness.prepaid("prepaid", "1").await;
    let wallet_id = customer.usd_balance_id.clone();
    // Fill the account cache, so the next request goes straight to its hold.
    assert_eq!(post_chat(&harness, "prepaid").await.status(), 200);
    wait_for(Duration::from_secs(5), || {
        harness.blnk.balance(&wallet_id).inflight_debit_balance == 0
    })
    .await;

    // Blnk applies the hold at once and responds 2 s later. The client gives up after 300 ms.
    harness
        .blnk
        .inject(Fault::ApplyThenHang(Duration::from_secs(2)).on("POST", "/transactions"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let outcome = client
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", "prepaid")
        .json(&chat_request())
        .send()
        .await;
    assert!(outcome.is_err(), "the client timed out");
    assert!(
        harness.blnk.balance(&wallet_id).inflight_debit_balance > 0,
        "Blnk applied the hold"
    );

    // Blnk's response came 2 s after the hold. Wait well past it, and for a few worker passes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let wallet = harness.blnk.balance(&wallet_id);
    assert_eq!(
        wallet.inflight_debit_balance, 0,
        "a request that never reached upstream still holds {} nano-dollars",
        wallet.inflight_debit_balance
    );
    assert_eq!(
        harness.upstream.received_requests().await.map(|r| r.len()),
        Some(1),
        "only the first request reached upstream"
    );
}

/// Returns the hold tollgate places for `body` on `endpoint`, from the library's own quote.
fn hold_for(harness: &Harness, endpoint: Endpoint, body: &Value) -> Nanos {
    let bytes = serde_json::to_vec(body).expect("a JSON body");
    let facts = RequestFacts::parse(endpoint, &bytes).expect("a valid request");
    let price = harness
        .state
        .price_table()
        .resolve(&facts.model, chrono::Utc::now())
        .expect("a priced model");
    let pricing = &harness.state.config.pricing;
    let bounds = PromptBounds {
        image_tokens: pricing.image_token_bound,
        audio_tokens: pricing.audio_token_bound,
        context_tokens: pricing.context_token_bound,
    };
    let quote = price
        .quote(
            facts.prompt_bound(&bytes, &bounds),
            facts.max_output_tokens,
            facts.choices,
            None,
            false,
        )
        .expect("a quote");
    tollgate::billing::hold_amount(quote)
}

/// A legacy completions request with four prompts generates a choice for each. A wallet
/// funded with exactly its hold covers all four at their output limit.
#[tokio::test]
async fn prompt_list_is_quoted_per_prompt() {
    let harness = Harness::start().await;
    let body = json!({
        "model": "gpt-3.5-turbo-instruct",
        "prompt": ["Tell a story", "Tell a story", "Tell a story", "Tell a story"],
        "max_tokens": 1000
    });
    let hold = hold_for(&harness, Endpoint::Completions, &body);
    let customer = harness.prepaid("prepaid", &hold.to_usd().to_string()).await;
    let choices: Vec<_> = (0..4)
        .map(|index| json!({"text": "...", "index": index, "logprobs": null, "finish_reason": "length"}))
        .collect();
    let answer = json!({"id": "cmpl-1", "object": "text_completion", "created": 1730000000,
        "model": "gpt-3.5-turbo-instruct", "choices": choices,
        "usage": {"prompt_tokens": 12, "completion_tokens": 4000, "total_tokens": 4012}});
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;

    let response = harness
        .http()
        .post(format!("{}/v1/completions", harness.url))
        .header("X-Customer-Id", "prepaid")
        .json(&body)
        .send()
        .await
        .expect("tollgate answers");
    assert_eq!(response.status(), 200);
    wait_for(Duration::from_secs(5), || {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert!(
        wallet.balance >= 0,
        "overspent to {} nano-dollars",
        wallet.balance
    );
}

/// A request that continues a stored response brings a prompt the body does not show, so its
/// quote counts the largest prompt a model accepts.
#[tokio::test]
async fn stored_response_is_quoted_at_context_bound() {
    let harness = Harness::start().await;
    harness.prepaid("prepaid", "0.05").await;
    let answer = json!({"id": "resp_2", "object": "response", "model": "gpt-4o-mini", "status": "completed",
        "output": [], "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}});
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;
    let send = |body: Value| {
        harness
            .http()
            .post(format!("{}/v1/responses", harness.url))
            .header("X-Customer-Id", "prepaid")
            .json(&body)
            .send()
    };

    let fresh = json!({"model": "gpt-4o-mini", "input": "and then?", "max_output_tokens": 100});
    assert_eq!(send(fresh).await.expect("tollgate answers").status(), 200);

    // 1,048,576 prompt tokens at $0.15 per million is about $0.157, more than the wallet.
    let continued = json!({"model": "gpt-4o-mini", "previous_response_id": "resp_1",
        "input": "and then?", "max_output_tokens": 100});
    let response = send(continued).await.expect("tollgate answers");
    assert_eq!(response.status(), 402);
}

/// Mounts a Responses API response that bills `input_tokens` of input and 100 of output.
async fn mount_responses(harness: &Harness, input_tokens: u64) {
    let answer = json!({"id": "resp_3", "object": "response", "model": "gpt-4o-mini-2024-07-18",
        "status": "completed", "output": [],
        "usage": {"input_tokens": input_tokens, "output_tokens": 100, "total_tokens": input_tokens + 100}});
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;
}

async fn post_raw(harness: &Harness, route: &str, body: &str) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}{route}", harness.url))
        .header("X-Customer-Id", "prepaid")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("tollgate answers")
}

/// A Responses request may name a prompt stored upstream. Upstream bills its text as input,
/// and the body does not carry it, so the quote counts the largest prompt a model accepts.
#[tokio::test]
async fn stored_prompt_is_quoted_at_context_bound() {
    let harness = Harness::start().await;
    let customer = harness.prepaid("prepaid", "0.05").await;
    // A stored prompt of 400,000 tokens: $0.06 at gpt-4o-mini's $0.15 per million.
    mount_responses(&harness, 400_000).await;

    let body = json!({"model": "gpt-4o-mini", "prompt": {"id": "pmpt_1", "version": "2"},
        "input": "Summarise it.", "max_output_tokens": 100});
    let response = post_raw(&harness, "/v1/responses", &body.to_string()).await;

    assert_eq!(response.status(), 402);
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.balance, 50_000_000, "nothing was charged");
}

/// JSON lets a string spell any character as a `\u` escape, and upstream decodes it. So an
/// escaped name is the same request as the plain one, and gets the same quote.
#[tokio::test]
async fn escaped_part_type_is_quoted_like_plain() {
    let harness = Harness::start().await;
    harness.prepaid("prepaid", "0.05").await;
    mount_responses(&harness, 400_000).await;

    let plain = r#"{"model":"gpt-4o-mini","max_output_tokens":100,"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"},{"type":"input_text","text":"Summarise it."}]}]}"#;
    let escaped = plain.replace("input_file", r"input_\u0066ile");
    let plain_value: Value = serde_json::from_str(plain).expect("plain JSON");
    let escaped_value: Value = serde_json::from_str(&escaped).expect("escaped JSON");
    assert_eq!(plain_value, escaped_value, "both bodies are one request");

    let plain_status = post_raw(&harness, "/v1/responses", plain).await.status();
    assert_eq!(plain_status, 402);
    let escaped_status = post_raw(&harness, "/v1/responses", &escaped).await.status();
    assert_eq!(escaped_status, 402);
}

/// gpt-4o-mini bills an image at about 33 times gpt-4o's tokens: a 1024 x 1024 high-detail
/// image is 4 tiles, 2,833 + 4 x 5,667 = 25,501 tokens. A wallet funded with exactly the hold
/// covers it.
#[tokio::test]
async fn mini_image_fits_its_quote() {
    let harness = Harness::start().await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this photo?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo-1024.png", "detail": "high"}}
    ]}]});
    let hold = hold_for(&harness, Endpoint::ChatCompletions, &body);
    let customer = harness.prepaid("prepaid", &hold.to_usd().to_string()).await;
    let answer = json!({"id": "chatcmpl-image", "object": "chat.completion", "created": 1730000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A cat."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 25_515, "completion_tokens": 8, "total_tokens": 25_523}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;

    let response = post_raw(&harness, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(response.status(), 200);
    wait_for(Duration::from_secs(5), || {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert!(
        wallet.balance >= 0,
        "one image took the wallet to {} nano-dollars (hold {} nano-dollars)",
        wallet.balance,
        hold.0
    );
}
