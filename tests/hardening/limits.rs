//! Header size, JSON depth, body size, body pause and customer id limits, each rejected
//! before upstream is called, with its own status and OpenAI-shaped error.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::harness::{Harness, Options};

fn chat_response() -> Value {
    json!({
        "id": "chatcmpl-limits",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    })
}

async fn start(env: Vec<(&'static str, String)>) -> Harness {
    let harness = Harness::start_with(Options {
        env,
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_response()))
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": []})),
        )
        .mount(&harness.upstream)
        .await;
    harness.postpaid("cust_limits").await;
    harness
}

/// Builds a chat body whose arrays and objects nest exactly `depth` levels (at least 3).
fn body_with_depth(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],"metadata_probe":{}{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

async fn post_raw(harness: &Harness, body: String) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("tollgate answers")
}

/// Reads an OpenAI-shaped error and checks its status, type and code.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{code}");
    let error: Value = response.json().await.expect("JSON error body");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{code}");
    assert_eq!(error["error"]["code"], code);
    assert!(
        error["error"].get("param").is_some(),
        "{code}: OpenAI error shape"
    );
    error["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

async fn upstream_calls(harness: &Harness) -> usize {
    harness
        .upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .len()
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let harness = start(vec![("TOLLGATE_MAX_HEADER_BYTES", "2KiB".into())]).await;
    let padding = "a".repeat(3000);
    let client = harness.http();
    let requests = [
        client
            .post(format!("{}/v1/chat/completions", harness.url))
            .body(body_with_depth(3)),
        client.get(format!("{}/v1/models", harness.url)),
        client.get(format!("{}/v1/no-such-route", harness.url)),
    ];
    for request in requests {
        let response = request
            .header("X-Customer-Id", "cust_limits")
            .header("X-Padding", &padding)
            .send()
            .await
            .expect("answer");
        let message = expect_error(response, 431, "headers_too_large").await;
        assert!(message.contains("2048 bytes"), "{message}");
        assert!(message.contains("max_header_bytes"), "{message}");
    }
    assert_eq!(upstream_calls(&harness).await, 0);

    let within = client
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .header("X-Padding", "a".repeat(1500))
        .header("Content-Type", "application/json")
        .body(body_with_depth(3))
        .send()
        .await
        .expect("answer");
    assert_eq!(within.status(), 200, "headers below the limit pass");
    harness.stop().await;
}

#[tokio::test]
async fn deep_json_gets_invalid_json() {
    let harness = start(vec![("TOLLGATE_MAX_JSON_DEPTH", "8".into())]).await;

    let message = expect_error(
        post_raw(&harness, body_with_depth(9)).await,
        400,
        "invalid_json",
    )
    .await;
    assert!(message.contains("deeper than 8 levels"), "{message}");
    assert!(message.contains("max_json_depth"), "{message}");
    assert_eq!(upstream_calls(&harness).await, 0);

    assert_eq!(post_raw(&harness, body_with_depth(8)).await.status(), 200);
    let brackets_in_strings = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "[[[[[[[[[[{{{{{{{{{{ \" [[[[[[[[[[ \\ "}]
    });
    let response = post_raw(&harness, brackets_in_strings.to_string()).await;
    assert_eq!(
        response.status(),
        200,
        "brackets inside strings do not count"
    );
    harness.stop().await;
}

#[tokio::test]
async fn default_depth_limit_is_64() {
    let harness = start(Vec::new()).await;
    let response = post_raw(&harness, body_with_depth(65)).await;
    let message = expect_error(response, 400, "invalid_json").await;
    assert!(message.contains("deeper than 64 levels"), "{message}");
    assert_eq!(post_raw(&harness, body_with_depth(64)).await.status(), 200);

    // Far deeper than serde_json's own recursion limit: still a clean 400, never a crash.
    let response = post_raw(&harness, body_with_depth(100_000)).await;
    expect_error(response, 400, "invalid_json").await;
    harness.stop().await;
}

#[tokio::test]
async fn large_body_gets_413() {
    let harness = start(vec![("TOLLGATE_MAX_BODY_BYTES", "1KiB".into())]).await;
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(2000)}]});

    let message = expect_error(
        post_raw(&harness, big.to_string()).await,
        413,
        "body_too_large",
    )
    .await;
    assert!(message.contains("1024 bytes"), "{message}");
    assert!(message.contains("max_body_bytes"), "{message}");

    // Without Content-Length, the limit applies while the body is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(big.to_string().into_bytes())];
    let chunked = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("answer");
    expect_error(chunked, 413, "body_too_large").await;
    assert_eq!(upstream_calls(&harness).await, 0);
    harness.stop().await;
}

#[tokio::test]
async fn stalled_body_gets_408() {
    let harness = start(vec![("TOLLGATE_BODY_IDLE_TIMEOUT", "300ms".into())]).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes();
    let (start, end) = body.split_at(10);
    let (start, end) = (start.to_vec(), end.to_vec());
    // The first piece arrives at once, the rest only after a pause longer than the timeout.
    let pieces = futures_util::stream::iter([start])
        .chain(futures_util::stream::once(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            end
        }))
        .map(Ok::<_, std::io::Error>);
    let stalled = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .expect("answer");

    let message = expect_error(stalled, 408, "body_timeout").await;
    assert!(message.contains("300 ms"), "{message}");
    assert!(message.contains("first 10 bytes"), "{message}");
    assert!(message.contains("body_idle_timeout"), "{message}");
    assert_eq!(upstream_calls(&harness).await, 0);
    harness.stop().await;
}

#[tokio::test]
async fn trickling_body_gets_408() {
    let harness = start(vec![
        ("TOLLGATE_BODY_IDLE_TIMEOUT", "2s".into()),
        ("TOLLGATE_BODY_READ_TIMEOUT", "1s".into()),
    ])
    .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes();
    // Pauses shorter than the idle timeout, adding up to more than the read timeout.
    let pieces: Vec<Vec<u8>> = body.chunks(4).map(<[u8]>::to_vec).collect();
    let trickle = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let trickling = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .body(reqwest::Body::wrap_stream(trickle))
        .send()
        .await
        .expect("answer");

    let message = expect_error(trickling, 408, "body_timeout").await;
    assert!(message.contains("1000 ms"), "{message}");
    assert!(message.contains("body_read_timeout"), "{message}");
    assert_eq!(upstream_calls(&harness).await, 0);
    harness.stop().await;
}

#[tokio::test]
async fn slow_body_within_timeout_is_served() {
    let harness = start(vec![("TOLLGATE_BODY_IDLE_TIMEOUT", "2s".into())]).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes();
    // Pauses shorter than the timeout, adding up to more than it.
    let pieces: Vec<Vec<u8>> = body.chunks(8).map(<[u8]>::to_vec).collect();
    let slow = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_limits")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 200);
    harness.stop().await;
}

#[tokio::test]
async fn customer_id_pattern_is_enforced() {
    let harness = start(Vec::new()).await;
    let too_long = "c".repeat(129);
    for id in [
        "bad id",
        "-dash-first",
        "a/b",
        too_long.as_str(),
        "caf\u{e9}",
    ] {
        let response = harness
            .http()
            .post(format!("{}/v1/chat/completions", harness.url))
            .header(
                "X-Customer-Id",
                reqwest::header::HeaderValue::from_bytes(id.as_bytes()).expect("header"),
            )
            .header("Content-Type", "application/json")
            .body(body_with_depth(3))
            .send()
            .await
            .expect("answer");
        expect_error(response, 400, "invalid_customer_id").await;
    }
    assert_eq!(upstream_calls(&harness).await, 0);
    harness.stop().await;
}
