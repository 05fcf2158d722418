//! The whole price model through the real proxy: cache writes, audio, service tiers, long
//! context, prices that change on a date, and markup. Each request is checked against an
//! amount worked out by hand from the price file. The `tollgate pricing check` command is
//! tested at the end.

mod support;

use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use support::blnk::TxnView;
use support::cases::{Case, all_charge_legs, charge_of, usd_to_nanos};
use support::harness::{Harness, Options};
use support::stream_server::{Pace, Script, StreamServer};

const REQUEST_ID: &str = "x-tollgate-request-id";
const CUSTOMER: &str = "cust_postpaid_01";
const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// One request through the proxy and what it was billed.
struct Billed {
    status: u16,
    cost_header: Option<String>,
    usd: TxnView,
    tokens: TxnView,
}

async fn post_raw(harness: &Harness, route: &str, body: &str) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}{route}", harness.url))
        .header("X-Customer-Id", CUSTOMER)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("tollgate answers")
}

/// Sends `body` to `route`, with `answer` as upstream's response body, and returns the charge.
async fn bill(harness: &Harness, route: &str, body: &Value, answer: &Value) -> Billed {
    harness.upstream.reset().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    let response = post_raw(harness, route, &body.to_string()).await;
    billed(harness, response).await
}

/// Reads the response to its end and returns the charge of its request.
async fn billed(harness: &Harness, response: reqwest::Response) -> Billed {
    let status = response.status().as_u16();
    let id = response.headers()[REQUEST_ID]
        .to_str()
        .expect("an ASCII request id")
        .to_string();
    let cost_header = response
        .headers()
        .get("x-tollgate-cost-usd")
        .map(|value| value.to_str().expect("an ASCII amount").to_string());
    let _ = response.bytes().await.expect("the body reads to its end");
    let charge = charge_of(&harness.blnk, &id);
    Billed {
        status,
        cost_header,
        usd: charge.usd.expect("a USD leg"),
        tokens: charge.tokens.expect("a TOKENS leg"),
    }
}

/// Builds an upstream chat completion body with the given model, service tier and usage.
fn chat_answer(model: &str, tier: &str, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-p", "object": "chat.completion", "created": 1730000000,
        "model": model, "service_tier": tier,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage
    })
}

/// Builds an upstream Responses body with the given model, service tier and usage.
fn responses_answer(model: &str, tier: &str, usage: Value) -> Value {
    json!({
        "id": "resp_p", "object": "response", "created_at": 1730000000, "status": "completed",
        "model": model, "service_tier": tier, "output": [], "usage": usage
    })
}

fn chat_usage(prompt: u64, cached: u64, cache_write: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
    })
}

fn responses_usage(input: u64, cached: u64, cache_write: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output
    })
}

fn chat_request(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

fn responses_request(model: &str) -> Value {
    json!({"model": model, "input": "Hello"})
}

/// Starts tollgate with the shipped price file and a postpaid customer.
async fn shipped_prices() -> Harness {
    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    harness
}

/// Starts tollgate with `prices` as its price file and a postpaid customer.
async fn custom_prices(prices: &str, env: Vec<(&'static str, String)>) -> Harness {
    let harness = Harness::start_with(Options {
        env,
        pricing_toml: Some(prices.to_string()),
    })
    .await;
    harness.postpaid(CUSTOMER).await;
    harness
}

// Cache writes.

const CACHE_WRITE_PRICES: &str = r#"
    [models."gpt-5.6"]
    input = "5.00"
    cached_input = "0.50"
    cache_write = "6.25"
    output = "30.00"
    max_output_tokens = 128000

    [models."gpt-4o-mini"]
    input = "0.15"
    cached_input = "0.075"
    output = "0.60"
    max_output_tokens = 16384
"#;

#[tokio::test]
async fn cache_writes_priced_at_their_rate() {
    let harness = custom_prices(CACHE_WRITE_PRICES, vec![]).await;
    // gpt-5.6: 3000 * 5.00 + 4000 * 0.50 + 3000 * 6.25 + 500 * 30.00 = 50750 per 1M.
    // gpt-4o-mini has no cache_write price, so writes cost the input price:
    // 500 * 0.15 + 1000 * 0.075 + 500 * 0.15 + 100 * 0.60 = 285 per 1M.
    // (route, request, upstream body, USD, (cached, cache writes) recorded)
    let cases = [
        (
            CHAT,
            chat_request("gpt-5.6"),
            chat_answer("gpt-5.6", "default", chat_usage(10000, 4000, 3000, 500)),
            "0.05075",
            (4000, 3000),
        ),
        (
            RESPONSES,
            responses_request("gpt-5.6"),
            responses_answer(
                "gpt-5.6",
                "default",
                responses_usage(10000, 4000, 3000, 500),
            ),
            "0.05075",
            (4000, 3000),
        ),
        (
            CHAT,
            chat_request("gpt-4o-mini"),
            chat_answer("gpt-4o-mini", "default", chat_usage(2000, 1000, 500, 100)),
            "0.000285",
            (1000, 500),
        ),
    ];
    for (route, request, answer, usd, (cached, cache_writes)) in cases {
        let billed = bill(&harness, route, &request, &answer).await;
        let name = format!("{route} {}", request["model"]);
        assert_eq!(billed.status, 200, "{name}");
        assert_eq!(
            billed.usd.precise_amount,
            usd_to_nanos(usd),
            "{name}: USD leg"
        );
        let total = answer["usage"]["total_tokens"].as_i64().expect("a total");
        assert_eq!(
            billed.tokens.precise_amount,
            i128::from(total),
            "{name}: TOKENS leg"
        );
        let metadata = &billed.usd.meta_data;
        assert_eq!(metadata["cache_write_tokens"], cache_writes, "{name}");
        assert_eq!(metadata["cached_tokens"], cached, "{name}");
    }
}

// Audio.

#[tokio::test]
async fn audio_tokens_at_audio_prices() {
    let case = Case::load("32-audio-tokens-priced-separately");
    let harness = shipped_prices().await;
    let billed = bill(&harness, CHAT, &case.request_body(), &case.upstream_json()).await;
    assert_eq!(billed.status, case.expected_status());
    // (40 * 2.50 + 1080 * 40.00 + 40 * 10.00 + 820 * 80.00) / 1M
    assert_eq!(billed.usd.precise_amount, case.expected_nanos(), "USD leg");
    assert_eq!(
        billed.tokens.precise_amount,
        case.expected_tokens(),
        "TOKENS leg"
    );
    assert_eq!(billed.cost_header.as_deref(), Some("0.1093"));
    let metadata = &billed.usd.meta_data;
    assert_eq!(metadata["model_billed"], "gpt-4o-audio-preview");
    assert_eq!(metadata["prompt_audio_tokens"], 1080);
    assert_eq!(metadata["completion_audio_tokens"], 820);
    assert_eq!(metadata["cost_usd"], "0.1093");
}

#[tokio::test]
async fn audio_without_audio_prices_rejected() {
    let harness = shipped_prices().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let clip = "UklGRiQAAABXQVZF".repeat(40);
    let cases = [
        json!({"model": "gpt-4o-mini", "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"},
            "messages": [{"role": "user", "content": "Say hi"}]}),
        json!({"model": "gpt-4o", "modalities": ["text", "audio"], "stream": true,
            "messages": [{"role": "user", "content": "Say hi"}]}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}}]}]}),
    ];
    for body in cases {
        let response = post_raw(&harness, CHAT, &body.to_string()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(error["error"]["code"], "unsupported_request", "{body}");
        assert_eq!(error["error"]["param"], "model", "{body}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("audio_input"), "{message}");
        assert!(
            message.contains(body["model"].as_str().unwrap()),
            "{message}"
        );
    }
    assert!(
        harness.blnk.transactions().is_empty(),
        "nothing held or billed"
    );
}

// Service tiers.

#[tokio::test]
async fn response_tier_sets_the_price() {
    let harness = shipped_prices().await;
    let with_tier = |model: &str, tier: &str| {
        let mut request = chat_request(model);
        request["service_tier"] = json!(tier);
        request
    };
    // (route, request, upstream body, USD, tier recorded). Rates per 1M tokens from pricing.toml.
    let cases = [
        // gpt-5 flex is 0.5 x standard: 600 * 0.625 + 400 * 0.0625 + 1000 * 5.00.
        (
            CHAT,
            with_tier("gpt-5", "flex"),
            chat_answer("gpt-5-2025-08-07", "flex", chat_usage(1000, 400, 0, 1000)),
            "0.0054",
            Some("flex"),
        ),
        // The response's tier counts, not the request's: 600 * 2.50 + 400 * 0.25 + 1000 * 20.00.
        (
            CHAT,
            chat_request("gpt-5"),
            chat_answer(
                "gpt-5-2025-08-07",
                "priority",
                chat_usage(1000, 400, 0, 1000),
            ),
            "0.0216",
            Some("priority"),
        ),
        // Asked for flex, served on default: 600 * 1.25 + 400 * 0.125 + 1000 * 10.00.
        (
            CHAT,
            with_tier("gpt-5", "flex"),
            chat_answer(
                "gpt-5-2025-08-07",
                "default",
                chat_usage(1000, 400, 0, 1000),
            ),
            "0.0108",
            None,
        ),
        // gpt-5-mini flex: 1000 * 0.125 + 1000 * 1.00.
        (
            CHAT,
            chat_request("gpt-5-mini"),
            chat_answer("gpt-5-mini", "flex", chat_usage(1000, 0, 0, 1000)),
            "0.001125",
            Some("flex"),
        ),
        // o3 flex has explicit rates: 1000 * 1.00 + 1000 * 4.00.
        (
            RESPONSES,
            responses_request("o3"),
            responses_answer("o3-2025-04-16", "flex", responses_usage(1000, 0, 0, 1000)),
            "0.005",
            Some("flex"),
        ),
        // o4-mini flex: 500 * 0.55 + 500 * 0.1375 + 1000 * 2.20.
        (
            RESPONSES,
            responses_request("o4-mini"),
            responses_answer(
                "o4-mini-2025-04-16",
                "flex",
                responses_usage(1000, 500, 0, 1000),
            ),
            "0.00254375",
            Some("flex"),
        ),
        // o4-mini lists no priority tier, so the standard rates apply: 1000 * 1.10 + 1000 * 4.40.
        (
            RESPONSES,
            responses_request("o4-mini"),
            responses_answer(
                "o4-mini-2025-04-16",
                "priority",
                responses_usage(1000, 0, 0, 1000),
            ),
            "0.0055",
            None,
        ),
    ];
    for (route, request, answer, usd, tier) in cases {
        let name = format!("{} on {}", answer["model"], answer["service_tier"]);
        let billed = bill(&harness, route, &request, &answer).await;
        assert_eq!(billed.status, 200, "{name}");
        assert_eq!(
            billed.usd.precise_amount,
            usd_to_nanos(usd),
            "{name}: USD leg"
        );
        assert_eq!(billed.tokens.precise_amount, 2000, "{name}: TOKENS leg");
        assert_eq!(
            billed
                .usd
                .meta_data
                .get("service_tier")
                .and_then(Value::as_str),
            tier,
            "{name}: tier recorded"
        );
    }
}

/// Events of a Responses stream served on `tier`, announced as `auto` when it starts.
fn tiered_responses_stream(tier: &str) -> Vec<String> {
    let event = |kind: &str, data: Value| format!("event: {kind}\ndata: {data}\n\n");
    let started = json!({"type": "response.created", "sequence_number": 0, "response": {
        "id": "resp_t", "object": "response", "created_at": 1, "status": "in_progress",
        "model": "gpt-5-2025-08-07", "service_tier": "auto", "output": [], "usage": null}});
    let delta = json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_t",
        "output_index": 0, "content_index": 0, "delta": "Hi"});
    let completed = json!({"type": "response.completed", "sequence_number": 2, "response": {
        "id": "resp_t", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-5-2025-08-07", "service_tier": tier, "output": [],
        "usage": responses_usage(1000, 400, 0, 1000)}});
    vec![
        event("response.created", started),
        event("response.output_text.delta", delta),
        event("response.completed", completed),
    ]
}

#[tokio::test]
async fn streamed_tier_read_from_terminal_event() {
    let server = StreamServer::start(Script::sse(
        tiered_responses_stream("flex"),
        Pace::Every(Duration::from_millis(2)),
    ))
    .await;
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_UPSTREAM_URL", server.url.clone())],
        ..Options::default()
    })
    .await;
    harness.postpaid(CUSTOMER).await;
    let body = json!({"model": "gpt-5", "input": "Hi", "stream": true, "service_tier": "flex"});
    let response = post_raw(&harness, RESPONSES, &body.to_string()).await;
    let billed = billed(&harness, response).await;
    assert_eq!(billed.status, 200);
    // gpt-5 flex: 600 * 0.625 + 400 * 0.0625 + 1000 * 5.00.
    assert_eq!(billed.usd.precise_amount, usd_to_nanos("0.0054"));
    assert_eq!(billed.usd.meta_data["service_tier"], "flex");
    assert_eq!(billed.usd.meta_data["stream"], true);
}

// Long context.

#[tokio::test]
async fn long_context_above_threshold() {
    let harness = shipped_prices().await;
    // gpt-5.4: 2.50 / 0.25 / 15.00 per 1M; above 272000 prompt tokens 5.00 / 0.50 / 22.50.
    let cases = [
        (
            CHAT,
            chat_answer("gpt-5.4", "default", chat_usage(272_000, 0, 0, 1000)),
            "0.695",
            false,
        ),
        (
            CHAT,
            chat_answer("gpt-5.4", "default", chat_usage(272_001, 0, 0, 1000)),
            "1.382505",
            true,
        ),
        (
            RESPONSES,
            responses_answer(
                "gpt-5.4",
                "default",
                responses_usage(300_000, 100_000, 0, 1000),
            ),
            "1.0725",
            true,
        ),
        (
            RESPONSES,
            responses_answer("gpt-5.4", "default", responses_usage(100_000, 0, 0, 1000)),
            "0.265",
            false,
        ),
    ];
    for (route, answer, usd, long) in cases {
        let request = if route == CHAT {
            chat_request("gpt-5.4")
        } else {
            responses_request("gpt-5.4")
        };
        let billed = bill(&harness, route, &request, &answer).await;
        let name = format!("{route} {}", answer["usage"]);
        assert_eq!(
            billed.usd.precise_amount,
            usd_to_nanos(usd),
            "{name}: USD leg"
        );
        let recorded = billed
            .usd
            .meta_data
            .get("long_context")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        assert_eq!(recorded, long, "{name}: long_context recorded");
    }
}

// Prices that change on a date.

#[tokio::test]
async fn price_change_splits_a_run() {
    let change_at = Utc::now() + chrono::Duration::seconds(3);
    let change_text = change_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let prices = format!(
        r#"
        [models."gpt-4o-mini"]
        effective_from = "2025-01-01"
        input = "0.15"
        output = "0.60"
        max_output_tokens = 16384

        [[models."gpt-4o-mini".history]]
        effective_from = "{change_text}"
        input = "0.30"
        output = "1.20"
        "#
    );
    let harness = custom_prices(&prices, vec![]).await;
    let until_change = (change_at - Utc::now()).to_std().unwrap_or_default();
    assert!(
        until_change > Duration::from_millis(500),
        "the harness took more than 2.5 s to start, too slow for this test"
    );

    // The first request starts before the change and ends after it; the second starts after.
    let answer = chat_answer("gpt-4o-mini", "default", chat_usage(1000, 0, 0, 100));
    for (marker, delay) in [
        ("before", until_change + Duration::from_millis(500)),
        ("after", Duration::ZERO),
    ] {
        Mock::given(method("POST"))
            .and(body_string_contains(marker))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(&answer)
                    .set_delay(delay),
            )
            .expect(1)
            .mount(&harness.upstream)
            .await;
    }
    let body = |marker: &str| {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": marker}]})
            .to_string()
    };
    let first_body = body("before");
    let first = post_raw(&harness, CHAT, &first_body);
    let second = async {
        let wait = (change_at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
        post_raw(&harness, CHAT, &body("after")).await
    };
    let (first, second) = tokio::join!(first, second);
    let (first, second) = (
        billed(&harness, first).await,
        billed(&harness, second).await,
    );

    // 1000 * 0.15 + 100 * 0.60 per 1M before the change, twice that after.
    assert_eq!(
        first.usd.precise_amount,
        usd_to_nanos("0.00021"),
        "old price"
    );
    assert_eq!(
        second.usd.precise_amount,
        usd_to_nanos("0.00042"),
        "new price"
    );
    assert_eq!(first.usd.meta_data["price_effective_from"], "2025-01-01");
    assert_eq!(second.usd.meta_data["price_effective_from"], change_text);
    assert!(
        first.usd.effective_date < change_at,
        "billed at the time the request started"
    );
    assert!(second.usd.effective_date >= change_at);
}

// Markup.

const MARKUP_PRICES: &str = r#"
    markup = "1.25"

    [models."gpt-4.1-nano"]
    input = "0.10"
    output = "0.40"
    max_output_tokens = 32768

    [models."gpt-4o-mini"]
    markup = "2"
    input = "0.15"
    output = "0.60"
    max_output_tokens = 16384

    [models."gpt-5-nano"]
    markup = "1.2345"
    input = "0.05"
    output = "0.40"
    max_output_tokens = 128000
"#;

#[tokio::test]
async fn markup_global_and_per_model() {
    let harness = custom_prices(MARKUP_PRICES, vec![]).await;
    // (model, prompt, completion, provider cost, customer price, rounded amount, markup)
    let cases = [
        (
            "gpt-4.1-nano",
            1000,
            1000,
            "0.0005",
            "0.000625",
            "0.000625",
            "1.25",
        ),
        (
            "gpt-4o-mini",
            1000,
            1000,
            "0.00075",
            "0.0015",
            "0.0015",
            "2",
        ),
        // 150 nano-dollars times 1.2345 is 185.175, rounded once to 185.
        (
            "gpt-5-nano",
            3,
            0,
            "0.00000015",
            "0.000000185175",
            "0.000000185",
            "1.2345",
        ),
    ];
    for (model, prompt, completion, provider, price, amount, markup) in cases {
        let answer = chat_answer(model, "default", chat_usage(prompt, 0, 0, completion));
        let billed = bill(&harness, CHAT, &chat_request(model), &answer).await;
        let metadata = &billed.usd.meta_data;
        assert_eq!(metadata["provider_cost_usd"], provider, "{model}");
        assert_eq!(metadata["cost_usd"], price, "{model}");
        assert_eq!(metadata["amount_usd"], amount, "{model}");
        assert_eq!(metadata["markup"], markup, "{model}");
        assert_eq!(
            billed.usd.precise_amount,
            usd_to_nanos(amount),
            "{model}: USD leg"
        );
        assert_eq!(
            billed.tokens.meta_data["cost_usd"], price,
            "{model}: both legs carry it"
        );
        assert_eq!(
            billed.cost_header.as_deref(),
            Some(amount),
            "{model}: cost header"
        );
    }
}

#[tokio::test]
async fn markup_applies_to_the_hold() {
    let harness = custom_prices(MARKUP_PRICES, vec![]).await;
    harness.prepaid("prepaid_01", "10").await;
    let answer = chat_answer("gpt-4o-mini", "default", chat_usage(1000, 0, 0, 1000));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}).to_string();
    let response = harness
        .http()
        .post(format!("{}{CHAT}", harness.url))
        .header("X-Customer-Id", "prepaid_01")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()[REQUEST_ID].to_str().unwrap().to_string();

    // (bytes * 150 + 100 * 600) nano-dollars, times the model's markup of 2.
    let holds = harness
        .blnk
        .transactions_with_reference_prefix(&format!("tg:{id}:hold"));
    assert_eq!(holds.len(), 1);
    assert_eq!(
        holds[0].precise_amount,
        (body.len() as i128 * 150 + 100 * 600) * 2
    );
    assert_eq!(
        charge_of(&harness.blnk, &id).usd_nanos(),
        usd_to_nanos("0.0015")
    );
}

#[tokio::test]
async fn default_markup_from_configuration() {
    let prices = r#"
        [models."gpt-4o-mini"]
        input = "0.15"
        output = "0.60"
        max_output_tokens = 16384
    "#;
    let harness = custom_prices(
        prices,
        vec![("TOLLGATE_PRICING_DEFAULT_MARKUP", "1.1".into())],
    )
    .await;
    let answer = chat_answer("gpt-4o-mini", "default", chat_usage(1000, 0, 0, 1000));
    let billed = bill(&harness, CHAT, &chat_request("gpt-4o-mini"), &answer).await;
    assert_eq!(billed.usd.meta_data["provider_cost_usd"], "0.00075");
    assert_eq!(billed.usd.meta_data["cost_usd"], "0.000825");
    assert_eq!(billed.usd.meta_data["markup"], "1.1");
    assert_eq!(billed.usd.precise_amount, usd_to_nanos("0.000825"));
    assert_eq!(all_charge_legs(&harness.blnk).len(), 2);
}

// `tollgate pricing check`.

/// Runs `tollgate pricing check FILE` with a clean environment; returns exit code and output.
fn pricing_check(file: &std::path::Path) -> (i32, String, String) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["pricing", "check"])
        .arg(file)
        .env_clear()
        .current_dir(directory.path())
        .output()
        .expect("tollgate runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 errors");
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn pricing_check_prints_shipped_table() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let (code, stdout, stderr) = pricing_check(&file);
    assert_eq!(code, 0, "{stderr}");
    for text in ["markup 1;", "dated_snapshot_fallback = false", "valid"] {
        assert!(stdout.contains(text), "missing {text:?} in:\n{stdout}");
    }

    // (model, texts its first row must contain)
    let rows: [(&str, &[&str]); 9] = [
        (
            "gpt-4o",
            &[
                "gpt-4o-2024-08-06, gpt-4o-2024-11-20",
                "priority 4.25/2.125/17.00",
                "16384",
            ],
        ),
        ("gpt-4o-audio-preview", &["40.00", "80.00"]),
        ("gpt-5", &["flex x0.5; priority 2.50/0.25/20.00", "128000"]),
        ("o3", &["2025-04-16", "10.00", "2.50", "40.00"]),
        ("o4-mini", &["flex 0.55/0.1375/2.20"]),
        ("gpt-5.4", &["above 272000: 5.00/0.50/22.50", "128000"]),
        ("gpt-4o-2024-05-13", &["5.00", "15.00", "4096"]),
        ("text-embedding-3-small", &["embedding", "0.02"]),
        ("gpt-3.5-turbo-instruct", &["1.50", "2.00"]),
    ];
    let table = PriceTableRows::new(&stdout);
    for (model, texts) in rows {
        let found = table.rows_of(model);
        let first = found
            .first()
            .unwrap_or_else(|| panic!("no row for {model}:\n{stdout}"));
        for text in texts {
            assert!(first.contains(text), "{model}: missing {text:?} in {first}");
        }
    }
    let o3 = table.rows_of("o3");
    assert_eq!(o3.len(), 2, "o3 has its launch price and its current price");
    assert!(o3[1].contains("2025-06-10"), "{}", o3[1]);
    assert!(o3[1].contains("flex 1.00/0.25/4.00"), "{}", o3[1]);
}

/// The rows of a rendered price table, by model.
struct PriceTableRows<'a> {
    lines: Vec<&'a str>,
}

impl<'a> PriceTableRows<'a> {
    fn new(text: &'a str) -> Self {
        PriceTableRows {
            lines: text.lines().collect(),
        }
    }

    fn rows_of(&self, model: &str) -> Vec<&'a str> {
        self.lines
            .iter()
            .filter(|line| line.split_whitespace().next() == Some(model))
            .copied()
            .collect()
    }
}

#[test]
fn pricing_check_shows_markup_and_history() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("prices.toml");
    let prices = r#"
        markup = "1.5"

        [models."m-dated"]
        aliases = ["m-dated-2026-01-01"]
        effective_from = "2026-03-01T12:30:00Z"
        markup = "2"
        input = "1.00"
        output = "2.00"

        [[models."m-dated".history]]
        effective_from = "2025-01-01"
        input = "3.00"
        output = "4.00"

        [models."embed"]
        kind = "embedding"
        input = 0.02
    "#;
    std::fs::write(&file, prices).unwrap();
    let (code, stdout, stderr) = pricing_check(&file);
    assert_eq!(code, 0, "{stderr}");
    for text in [
        "markup 1.5;",
        "2 (model)",
        "2026-03-01T12:30:00Z",
        "2025-01-01",
        "3.00",
        "m-dated-2026-01-01",
        "0.02",
    ] {
        assert!(stdout.contains(text), "missing {text:?} in:\n{stdout}");
    }
    assert_eq!(PriceTableRows::new(&stdout).rows_of("m-dated").len(), 2);
    assert!(
        PriceTableRows::new(&stdout).rows_of("embed")[0].contains("1.5"),
        "the global markup applies"
    );
}

#[test]
fn pricing_check_rejects_invalid_files() {
    let model = |body: &str| format!("[models.\"m\"]\n{body}\n");
    let cases = [
        ("[models.\"m\"\ninput = 1".to_string(), "invalid TOML"),
        (
            model("input = \"-1\"\noutput = \"1\""),
            "models.\"m\".input",
        ),
        (model("input = \"1\""), "models.\"m\".output is missing"),
        (
            model("input = \"1\"\noutput = \"1\"\ninptu = \"2\""),
            "inptu",
        ),
        (
            model("input = \"abc\"\noutput = \"1\""),
            "invalid price \"abc\"",
        ),
        (
            model(
                "input = \"1\"\noutput = \"1\"\ntiers.flex = { multiplier = \"0.5\", input = \"1\" }",
            ),
            "either multiplier or explicit rates",
        ),
        (
            model(
                "input = \"1\"\noutput = \"1\"\n[[models.\"m\".history]]\ninput = \"1\"\noutput = \"1\"",
            ),
            "effective_from is missing",
        ),
        (
            format!(
                "{}[models.\"n\"]\naliases = [\"m\"]\ninput = \"1\"\noutput = \"1\"\n",
                model("input = \"1\"\noutput = \"1\"")
            ),
            "used by both",
        ),
    ];
    let directory = tempfile::tempdir().unwrap();
    for (index, (text, expected)) in cases.into_iter().enumerate() {
        let file = directory.path().join(format!("bad-{index}.toml"));
        std::fs::write(&file, &text).unwrap();
        let (code, stdout, stderr) = pricing_check(&file);
        assert_ne!(code, 0, "{text}");
        assert!(
            stdout.is_empty(),
            "{text}: nothing printed on success's channel"
        );
        assert!(
            stderr.contains(expected),
            "{text}: expected {expected:?} in {stderr}"
        );
        assert!(
            stderr.contains(&file.display().to_string()),
            "{text}: the error names the file"
        );
    }

    let missing = directory.path().join("absent.toml");
    let (code, _, stderr) = pricing_check(&missing);
    assert_ne!(code, 0);
    assert!(stderr.contains("failed to read price file"), "{stderr}");
}
