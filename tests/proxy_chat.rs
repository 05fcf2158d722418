//! Non-streaming chat completions through the real proxy, against the fake Blnk and a
//! wiremock upstream: exact charges, holds, rejections and header hygiene.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test, and tasks need no names here"
)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use support::blnk::{Fault, TxnStatus};
use support::cases::{Case, all_charge_legs, charge_of, usd_to_nanos};
use support::harness::{Harness, Options};

const REQUEST_ID: &str = "x-tollgate-request-id";

/// Mounts a case's upstream answer for chat completions, once.
async fn mount_case(harness: &Harness, case: &Case) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(case.upstream_status()).set_body_raw(
            serde_json::to_vec(&case.upstream_json()).unwrap(),
            "application/json",
        ))
        .expect(1)
        .mount(&harness.upstream)
        .await;
}

async fn post_chat(harness: &Harness, customer: &str, body: &Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()[REQUEST_ID].to_str().unwrap().to_string()
}

/// Runs a non-streaming case for a postpaid customer and checks the charge.
async fn run_billed_case(name: &str) {
    let harness = Harness::start().await;
    let case = Case::load(name);
    harness.postpaid("cust_postpaid_01").await;
    mount_case(&harness, &case).await;

    let response = post_chat(&harness, "cust_postpaid_01", &case.request_body()).await;
    assert_eq!(response.status().as_u16(), case.expected_status(), "{name}");
    let id = request_id(&response);
    let cost = response.headers()["x-tollgate-cost-usd"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        response.headers()["x-tollgate-charge"],
        "recorded",
        "{name}"
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        serde_json::to_vec(&case.upstream_json()).unwrap(),
        "{name}: body relayed unchanged"
    );

    let charge = charge_of(&harness.blnk, &id);
    assert_eq!(charge.usd_nanos(), case.expected_nanos(), "{name}: USD leg");
    assert_eq!(
        charge.tokens(),
        case.expected_tokens(),
        "{name}: TOKENS leg"
    );
    assert_eq!(
        usd_to_nanos(&cost),
        case.expected_nanos(),
        "{name}: cost header"
    );
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        2,
        "{name}: one two-leg charge"
    );
    harness.stop().await;
}

#[tokio::test]
async fn cached_tokens_not_added_twice() {
    run_billed_case("07-cached-tokens-not-added-twice").await;
}

#[tokio::test]
async fn cached_tokens_at_cached_rate() {
    run_billed_case("08-cached-tokens-at-cached-rate").await;
}

#[tokio::test]
async fn reasoning_inside_completion() {
    run_billed_case("09-reasoning-inside-completion").await;
}

#[tokio::test]
async fn alias_priced_as_snapshot() {
    run_billed_case("10-alias-resolves-to-current-snapshot-price").await;
}

#[tokio::test]
async fn tiny_cost_is_exact() {
    run_billed_case("18-tiny-cost-exact-decimal").await;
}

#[tokio::test]
async fn nine_decimal_cost_fits_precision() {
    run_billed_case("19-ledger-precision-fits-amount").await;
}

#[tokio::test]
async fn no_stream_options_on_plain_request() {
    let harness = Harness::start().await;
    let case = Case::load("27-no-stream-options-on-non-stream");
    harness.postpaid("cust_postpaid_01").await;
    // OpenAI rejects stream_options without stream: true; this mock does the same.
    Mock::given(body_string_contains("stream_options"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "stream_options requires stream", "type": "invalid_request_error", "param": "stream_options", "code": null}})))
        .with_priority(1)
        .mount(&harness.upstream)
        .await;
    mount_case(&harness, &case).await;
    for stream in [None, Some(false)] {
        let mut body = case.request_body();
        if let Some(stream) = stream {
            body["stream"] = json!(stream);
        }
        let response = post_chat(&harness, "cust_postpaid_01", &body).await;
        assert_eq!(response.status(), 200, "stream = {stream:?}");
        let id = request_id(&response);
        assert_eq!(
            charge_of(&harness.blnk, &id).usd_nanos(),
            case.expected_nanos()
        );
        harness.upstream.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
            .mount(&harness.upstream)
            .await;
    }
}

#[tokio::test]
async fn snapshot_request_priced_as_alias() {
    let harness = Harness::start().await;
    harness.postpaid("c1").await;
    let mut upstream = Case::load("10-alias-resolves-to-current-snapshot-price").upstream_json();
    upstream["model"] = json!("gpt-4o");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(upstream))
        .mount(&harness.upstream)
        .await;
    let body =
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "c1", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        charge_of(&harness.blnk, &request_id(&response)).usd_nanos(),
        usd_to_nanos("0.0075")
    );
}

#[tokio::test]
async fn unpriced_model_is_rejected_before_upstream() {
    let harness = Harness::start().await;
    harness.postpaid("cust_postpaid_01").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let case = Case::load("12-unpriced-model-refused");
    let response = post_chat(&harness, "cust_postpaid_01", &case.request_body()).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_priced");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chatgpt-4o-latest")
    );
    assert!(all_charge_legs(&harness.blnk).is_empty());
}

#[tokio::test]
async fn unlisted_dated_snapshot_is_unpriced() {
    let prices = r#"
        [models."gpt-4o"]
        aliases = ["gpt-4o-2024-08-06"]
        input = "2.50"
        cached_input = "1.25"
        output = "10.00"
        max_output_tokens = 16384
    "#;
    let harness = Harness::start_with(Options {
        pricing_toml: Some(prices.to_string()),
        ..Options::default()
    })
    .await;
    harness.postpaid("c1").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let body =
        json!({"model": "gpt-4o-2024-05-13", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "c1", &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_priced");
}

#[tokio::test]
async fn prepaid_without_funds_is_rejected() {
    let harness = Harness::start().await;
    harness.prepaid("poor", "0.000001").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "poor", &body).await;
    assert_eq!(response.status(), 402);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "insufficient_quota");
    assert_eq!(error["error"]["code"], "insufficient_funds");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("$0.000001 available"), "{message}");
    assert!(message.contains("may cost up to $"), "{message}");
    assert!(message.contains("tollgate topup poor"), "{message}");
    assert!(all_charge_legs(&harness.blnk).is_empty());
}

#[tokio::test]
async fn prepaid_request_holds_then_charges() {
    let harness = Harness::start().await;
    let customer = harness.prepaid("rich", "10").await;
    let case = Case::load("18-tiny-cost-exact-decimal");
    mount_case(&harness, &case).await;
    let mut body = case.request_body();
    body["max_tokens"] = json!(50);
    let response = post_chat(&harness, "rich", &body).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    assert_eq!(charge_of(&harness.blnk, &id).usd_nanos(), 1650);

    // The hold exists, is voided in the background, and leaves nothing held.
    let hold = harness
        .blnk
        .transactions_with_reference_prefix(&format!("tg:{id}:hold"));
    assert_eq!(hold.len(), 1);
    wait_until(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(wallet.balance, 10_000_000_000 - 1650);
}

#[tokio::test]
async fn concurrent_prepaid_never_overspends() {
    let harness = Harness::start().await;
    let case = Case::load("16-concurrent-prepaid-admission");
    let customer = harness.prepaid("cust_prepaid_low", "0.00001").await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(case.upstream_json())
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&harness.upstream)
        .await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = harness.http();
            let url = format!("{}/v1/chat/completions", harness.url);
            let body = case.request_body();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("X-Customer-Id", "cust_prepaid_low")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(served <= 1, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        8 - served,
        "{statuses:?}"
    );
    assert_eq!(
        harness.upstream.received_requests().await.unwrap().len(),
        served
    );
    wait_until(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    assert!(harness.blnk.balance(&customer.usd_balance_id).balance >= 0);
}

#[tokio::test]
async fn fifty_requests_against_ten_quotes() {
    let harness = Harness::start().await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "Reply only p"}]});
    let quote = quote_of(&harness, &body);
    let funds = tollgate::money::Nanos(quote.0 * 10).to_usd().to_string();
    let customer = harness.prepaid("ten", &funds).await;
    let upstream = json!({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}});
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(upstream)
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&harness.upstream)
        .await;

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = harness.http();
            let url = format!("{}/v1/chat/completions", harness.url);
            let body = body.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("X-Customer-Id", "ten")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (
                    response.status().as_u16(),
                    response
                        .headers()
                        .get(REQUEST_ID)
                        .map(|v| v.to_str().unwrap().to_string()),
                )
            })
        })
        .collect();
    let mut served = Vec::new();
    let mut rejected = 0;
    for task in tasks {
        match task.await.unwrap() {
            (200, Some(id)) => served.push(id),
            (402, _) => rejected += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(served.len() <= 10, "{} served", served.len());
    assert_eq!(served.len() + rejected, 50);
    assert_eq!(
        harness.upstream.received_requests().await.unwrap().len(),
        served.len()
    );
    let per_request = usd_to_nanos("0.0000063");
    for id in &served {
        assert_eq!(charge_of(&harness.blnk, id).usd_nanos(), per_request);
    }
    assert_eq!(all_charge_legs(&harness.blnk).len(), served.len() * 2);
    wait_until(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    let wallet = harness.blnk.balance(&customer.usd_balance_id);
    assert_eq!(
        wallet.balance,
        quote.0 * 10 - per_request * served.len() as i128
    );
    assert!(wallet.balance >= 0);
}

/// The hold amount tollgate computes for `body`, using the same code as the proxy.
fn quote_of(harness: &Harness, body: &Value) -> tollgate::money::Nanos {
    let bytes = serde_json::to_vec(body).unwrap();
    let facts = tollgate::billing::request::RequestFacts::parse(
        tollgate::usage::Endpoint::ChatCompletions,
        &bytes,
    )
    .unwrap();
    let price = harness
        .state
        .price_table()
        .resolve(&facts.model, chrono::Utc::now())
        .unwrap();
    let pricing = &harness.state.config.pricing;
    let quote = price
        .quote(
            facts.prompt_bound(
                &bytes,
                &tollgate::billing::request::PromptBounds {
                    image_tokens: pricing.image_token_bound,
                    audio_tokens: pricing.audio_token_bound,
                    context_tokens: pricing.context_token_bound,
                },
            ),
            facts.max_output_tokens,
            facts.choices,
            None,
            false,
        )
        .unwrap();
    tollgate::billing::hold_amount(quote)
}

#[tokio::test]
async fn quote_larger_than_wallet_is_rejected() {
    let harness = Harness::start().await;
    let case = Case::load("20-atomic-bulk-no-partial-leg");
    let customer = harness.prepaid("c20", "0.005").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let response = post_chat(&harness, "c20", &case.request_body()).await;
    assert_eq!(response.status(), 402);
    assert!(all_charge_legs(&harness.blnk).is_empty());
    let tokens = harness.blnk.balance(&customer.tokens_balance_id);
    assert_eq!(tokens.balance, 0);
    assert_eq!(
        harness.blnk.balance(&customer.usd_balance_id).balance,
        5_000_000
    );
}

#[tokio::test]
async fn upstream_errors_are_relayed_unbilled() {
    let case = Case::load("25-upstream-429-not-billed");
    for status in [429u16, 400, 401, 500, 503] {
        let harness = Harness::start().await;
        let customer = harness.prepaid("cust_postpaid_01", "1").await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(case.upstream_json())
                    .insert_header("retry-after", "1")
                    .insert_header("x-ratelimit-remaining-requests", "0"),
            )
            .expect(1)
            .mount(&harness.upstream)
            .await;
        let response = post_chat(&harness, "cust_postpaid_01", &case.request_body()).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, case.upstream_json(), "status {status}");
        assert!(all_charge_legs(&harness.blnk).is_empty(), "status {status}");
        wait_until(|| {
            harness
                .blnk
                .balance(&customer.usd_balance_id)
                .inflight_debit_balance
                == 0
        })
        .await;
        assert_eq!(
            harness.blnk.balance(&customer.usd_balance_id).balance,
            1_000_000_000
        );
        harness.stop().await;
    }
}

#[tokio::test]
async fn large_image_body_forwarded_intact() {
    let harness = Harness::start().await;
    let case = Case::load("29-large-base64-image-body");
    harness.prepaid("cust_postpaid_01", "5").await;
    let pad = "A".repeat(1_572_864);
    let body_text = serde_json::to_string(&case.request_body())
        .unwrap()
        .replace("<PAD_1_5_MiB>", &pad);
    let expected_len = body_text.len();
    Mock::given(method("POST"))
        .and(move |request: &Request| request.body.len() == expected_len)
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_postpaid_01")
        .header("Content-Type", "application/json")
        .body(body_text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        charge_of(&harness.blnk, &request_id(&response)).usd_nanos(),
        case.expected_nanos()
    );
}

#[tokio::test]
async fn body_above_limit_is_413() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_MAX_BODY_BYTES", "1MiB".into())],
        ..Options::default()
    })
    .await;
    harness.postpaid("c1").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let body = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "A".repeat(1_100_000)
    );
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "c1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn bad_requests_get_their_own_errors() {
    let harness = Harness::start().await;
    harness.postpaid("c1").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let url = format!("{}/v1/chat/completions", harness.url);
    let client = harness.http();
    let chat = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let cases: [(Option<&str>, &str, u16, &str); 6] = [
        (None, chat, 400, "missing_customer_id"),
        (Some("bad id!"), chat, 400, "invalid_customer_id"),
        (Some("-leading-dash"), chat, 400, "invalid_customer_id"),
        (Some("nobody"), chat, 403, "unknown_customer"),
        (Some("c1"), "{not json", 400, "invalid_json"),
        (Some("c1"), r#"{"messages":[]}"#, 400, "missing_model"),
    ];
    for (customer, body, status, code) in cases {
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(customer) = customer {
            request = request.header("X-Customer-Id", customer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert!(response.headers().contains_key(REQUEST_ID), "{code}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code);
        assert!(
            error["error"]["message"].as_str().unwrap().len() > 20,
            "{code}: message explains the fix"
        );
        assert!(
            error["error"].get("param").is_some(),
            "{code}: OpenAI error shape"
        );
    }
}

#[tokio::test]
async fn ledger_down_rejects_prepaid_with_503() {
    let harness = Harness::start().await;
    harness.prepaid("c1", "1").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    harness.blnk.inject(Fault::Down);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "c1", &body).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "ledger_unavailable");
    assert_eq!(error["error"]["type"], "service_unavailable");
}

#[tokio::test]
async fn upstream_gets_operator_key_and_clean_headers() {
    let harness = Harness::start().await;
    harness.postpaid("c1").await;
    let case = Case::load("18-tiny-cost-exact-decimal");
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer sk-operator-test"))
        .and(header("accept-encoding", "identity"))
        .and(|request: &Request| !request.headers.contains_key("x-customer-id"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(case.upstream_json())
                .insert_header("set-cookie", "__cf=1"),
        )
        .expect(1)
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "c1")
        .header("Authorization", "Bearer sk-client-test")
        .header("Accept-Encoding", "gzip")
        .json(&case.request_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("set-cookie"));
}

#[tokio::test]
async fn upstream_unreachable_is_502_unbilled() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_UPSTREAM_URL", "http://127.0.0.1:9".into())],
        ..Options::default()
    })
    .await;
    let customer = harness.prepaid("c1", "1").await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "c1", &body).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_unreachable");
    wait_until(|| {
        harness
            .blnk
            .balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    assert!(all_charge_legs(&harness.blnk).is_empty());
    let holds = harness
        .blnk
        .transactions()
        .into_iter()
        .filter(|t| t.status == TxnStatus::Void)
        .count();
    assert_eq!(holds, 1, "the hold is voided");
}

#[tokio::test]
async fn upstream_timeout_is_504_unbilled() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT", "300ms".into())],
        ..Options::default()
    })
    .await;
    harness.postpaid("c1").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&harness.upstream)
        .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = post_chat(&harness, "c1", &body).await;
    assert_eq!(response.status(), 504);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
    assert!(all_charge_legs(&harness.blnk).is_empty());
}

#[tokio::test]
async fn models_route_passes_through() {
    let harness = Harness::start().await;
    let models = json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]});
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(models.clone()))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models/gpt-4o"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "gpt-4o"})))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .get(format!("{}/v1/models", harness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), models);
    let response = harness
        .http()
        .get(format!("{}/v1/models/gpt-4o", harness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_route_is_404() {
    let harness = Harness::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/files", harness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unknown_route");
}

#[tokio::test]
async fn async_openai_client_is_billed() {
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let harness = Harness::start().await;
    let customer = harness.prepaid("sdk-user", "1").await;
    let case = Case::load("07-cached-tokens-not-added-twice");
    mount_case(&harness, &case).await;
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .max_tokens(200u32)
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("Next step?")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let completion = harness
        .openai("sdk-user")
        .chat()
        .create(request)
        .await
        .unwrap();
    assert_eq!(completion.usage.unwrap().prompt_tokens, 17903);
    let legs = all_charge_legs(&harness.blnk);
    let usd = legs.iter().find(|t| t.currency == "USD").unwrap();
    assert_eq!(usd.precise_amount, case.expected_nanos());
    assert_eq!(usd.source, customer.usd_balance_id);
    assert_eq!(usd.meta_data["model_billed"], "gpt-4o-mini");
    assert_eq!(usd.meta_data["cached_tokens"], 17817);
    assert_eq!(usd.meta_data["usage_source"], "reported");
    assert_eq!(usd.meta_data["cost_usd"], "0.001421175");
}

/// Polls a condition on the fake for up to two seconds (background voids are asynchronous).
async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(condition(), "condition not reached within 2 s");
}

#[tokio::test]
async fn repeated_customer_header_is_rejected() {
    let harness = Harness::start().await;
    harness.postpaid("bigco").await;
    harness.postpaid("acme").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "bigco")
        .header("X-Customer-Id", "acme")
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_customer_id");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );
}

#[tokio::test]
async fn absurd_quote_is_rejected_as_bad_input() {
    let harness = Harness::start().await;
    harness.prepaid("acme", "10").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
    let body =
        json!({"model": "gpt-4o-mini", "messages": [], "max_tokens": 100_000_000_000_000_000u64});
    let response = post_chat(&harness, "acme", &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unsupported_request");
    assert_eq!(error["error"]["param"], "max_tokens");
    assert!(all_charge_legs(&harness.blnk).is_empty());
}

/// Posts a chat request for postpaid customer `usage-shapes` to an upstream that reports
/// `usage`, and returns the USD leg of its charge.
async fn charge_for_usage(usage: Value) -> support::blnk::TxnView {
    let harness = Harness::start().await;
    harness.postpaid("usage-shapes").await;
    let answer = json!({
        "id": "chatcmpl-shapes",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A long answer about tolls."}, "finish_reason": "stop"}],
        "usage": usage,
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "usage-shapes")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me about tolls"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let legs = all_charge_legs(&harness.blnk);
    legs.into_iter()
        .find(|t| t.currency == "USD")
        .expect("a USD charge was posted")
}

#[tokio::test]
async fn responses_shaped_usage_on_chat_is_billed() {
    let usage = json!({"input_tokens": 1200, "output_tokens": 800, "total_tokens": 2000});
    let usd = charge_for_usage(usage).await;
    assert_eq!(usd.meta_data["usage_source"], "reported");
    assert_eq!(usd.meta_data["prompt_tokens"], 1200);
    assert_eq!(usd.meta_data["completion_tokens"], 800);
}

#[tokio::test]
async fn usage_without_counts_is_estimated() {
    for usage in [json!({}), json!({"total_tokens": 2000})] {
        let usd = charge_for_usage(usage.clone()).await;
        assert_eq!(usd.meta_data["usage_source"], "estimated", "usage {usage}");
        assert!(usd.precise_amount > 0, "usage {usage} was billed as zero");
    }
}
