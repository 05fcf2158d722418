//! Routes besides the metered ones: anything unknown is a 404 in OpenAI's error shape, and
//! the operator's `pass_through_routes` reach upstream unchanged and unmetered, each logged.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::cases::{all_charge_legs, usd_to_nanos};
use support::harness::{Harness, Options};

const CUSTOMER: &str = "cust_postpaid_01";

/// The customer of the one test that reads the logs, which finds its own lines by it.
const LOGGED_CUSTOMER: &str = "cust_logged_01";

async fn pass_through_harness(routes: &str) -> Harness {
    captured_logs();
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_PASS_THROUGH_ROUTES", routes.to_string())],
        ..Options::default()
    })
    .await;
    harness.postpaid(CUSTOMER).await;
    harness
}

/// Mounts an upstream that must never be called.
async fn forbid_upstream(harness: &Harness) {
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&harness.upstream)
        .await;
}

async fn send(harness: &Harness, verb: &str, route: &str) -> reqwest::Response {
    let verb = reqwest::Method::from_bytes(verb.as_bytes()).expect("an HTTP method");
    harness
        .http()
        .request(verb, format!("{}{route}", harness.url))
        .header("X-Customer-Id", CUSTOMER)
        .header("Content-Type", "application/json")
        .body(r#"{"model":"gpt-4o-mini","input":"x"}"#)
        .send()
        .await
        .expect("tollgate answers")
}

/// Checks that `response` is tollgate's 404 for `verb route`.
async fn assert_unknown_route(response: reqwest::Response, verb: &str, route: &str) {
    assert_eq!(response.status(), 404, "{verb} {route}");
    let error: Value = response.json().await.expect("a JSON error body");
    assert_eq!(
        error["error"]["type"], "invalid_request_error",
        "{verb} {route}"
    );
    assert_eq!(error["error"]["code"], "unknown_route", "{verb} {route}");
    assert_eq!(error["error"]["param"], Value::Null, "{verb} {route}");
    let message = error["error"]["message"].as_str().expect("a message");
    assert!(message.contains(&format!("{verb} {route}")), "{message}");
}

#[tokio::test]
async fn unknown_routes_get_openai_404() {
    captured_logs();
    let harness = Harness::start().await;
    harness.postpaid(CUSTOMER).await;
    forbid_upstream(&harness).await;
    let cases = [
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
        ("POST", "/v1/moderations"),
        ("DELETE", "/v1/files/file-1"),
        ("POST", "/v1/audio/speech"),
        ("GET", "/v1/responses/resp_1"),
        ("POST", "/chat/completions"),
        ("POST", "/v1/chat/completions/"),
        ("GET", "/v1/chat/completions"),
        ("PUT", "/v1/embeddings"),
        ("POST", "/v1/models"),
        ("DELETE", "/v1/models/gpt-4o"),
        ("GET", "/"),
    ];
    for (verb, route) in cases {
        let response = send(&harness, verb, route).await;
        assert_unknown_route(response, verb, route).await;
    }
    assert!(
        harness.blnk.transactions().is_empty(),
        "nothing held or billed"
    );
}

#[tokio::test]
async fn listed_routes_reach_upstream_unchanged() {
    let harness = pass_through_harness("/v1/files,/v1/moderations").await;
    let moderation = json!({"id": "modr-1", "results": [{"flagged": false}]});
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(&moderation)
                .insert_header("x-request-id", "req_mod"),
        )
        .expect(1)
        .mount(&harness.upstream)
        .await;
    let body = r#"{"model": "omni-moderation-latest",  "input": "hello"}"#;
    let response = harness
        .http()
        .post(format!("{}/v1/moderations?trace=1", harness.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", CUSTOMER)
        .header("Content-Type", "application/json")
        .header("X-Custom", "kept")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req_mod");
    assert_eq!(response.json::<Value>().await.unwrap(), moderation);

    let received = harness.upstream.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.method.as_str(), "POST");
    assert_eq!(sent.url.path(), "/v1/moderations");
    assert_eq!(sent.url.query(), Some("trace=1"));
    assert_eq!(
        sent.body,
        body.as_bytes(),
        "the body is forwarded byte for byte"
    );
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(sent.headers["x-custom"], "kept");
    assert_eq!(sent.headers["authorization"], "Bearer sk-operator-test");
    assert!(
        !sent.headers.contains_key("x-customer-id"),
        "the customer header stays here"
    );
    assert!(
        all_charge_legs(&harness.blnk).is_empty(),
        "nothing is billed"
    );
}

#[tokio::test]
async fn listed_route_covers_sub_paths() {
    let harness = pass_through_harness("/v1/files").await;
    let upload =
        b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b--\r\n"
            .to_vec();
    let expected_upload = upload.clone();
    Mock::given(method("POST"))
        .and(path("/v1/files"))
        .and(move |request: &wiremock::Request| request.body == expected_upload)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "file-1"})))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/files/file-1/content"))
        .respond_with(ResponseTemplate::new(200).set_body_string("line one\n"))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/files/file-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"deleted": true})))
        .expect(1)
        .mount(&harness.upstream)
        .await;

    let client = harness.http();
    let response = client
        .post(format!("{}/v1/files", harness.url))
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "upload");
    let response = client
        .get(format!("{}/v1/files/file-1/content", harness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "content");
    assert_eq!(response.text().await.unwrap(), "line one\n");
    let response = client
        .delete(format!("{}/v1/files/file-1", harness.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "delete");

    let response = send(&harness, "POST", "/v1/filesystem").await;
    assert_unknown_route(response, "POST", "/v1/filesystem").await;
    let response = send(&harness, "POST", "/v1/batches").await;
    assert_unknown_route(response, "POST", "/v1/batches").await;
}

#[tokio::test]
async fn listing_served_routes_keeps_them_metered() {
    let routes = "/v1/models,/v1/chat/completions,/v1/responses,/v1/files/,/v1/files,/v1/files";
    let harness = pass_through_harness(routes).await;
    let answer = json!({"id": "chatcmpl-r", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": []})),
        )
        .expect(1)
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/responses/resp_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "resp_1"})))
        .expect(1)
        .mount(&harness.upstream)
        .await;

    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", CUSTOMER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-tollgate-charge"],
        "recorded",
        "still metered"
    );
    let legs = all_charge_legs(&harness.blnk);
    let usd = legs
        .iter()
        .find(|leg| leg.currency == "USD")
        .expect("a USD leg");
    // 10 * 0.15 + 2 * 0.60 per 1M.
    assert_eq!(usd.precise_amount, usd_to_nanos("0.0000027"));

    let response = send(&harness, "GET", "/v1/responses/resp_1").await;
    assert_eq!(response.status(), 200, "a stored response passes through");
    let response = send(&harness, "GET", "/v1/chat/completions").await;
    assert_eq!(
        response.status(),
        200,
        "the other methods of a listed path pass through"
    );
    let response = send(&harness, "DELETE", "/v1/embeddings").await;
    assert_unknown_route(response, "DELETE", "/v1/embeddings").await;
    assert_eq!(
        all_charge_legs(&harness.blnk).len(),
        2,
        "only the chat completion is billed"
    );
}

#[tokio::test]
async fn metered_paths_never_pass_unmetered() {
    let harness = pass_through_harness("/").await;
    forbid_upstream(&harness).await;
    for route in [
        "/v1/chat/completions/",
        "/chat/completions",
        "/v1/responses/",
        "/embeddings",
        "/completions/",
    ] {
        let response = send(&harness, "POST", route).await;
        assert_unknown_route(response, "POST", route).await;
    }
    assert!(harness.blnk.transactions().is_empty());
}

/// The log output of this test binary, shared by every test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Installs the global subscriber that captures logs, once, and returns its output.
///
/// Every test calls this before it starts tollgate. tracing caches whether a log statement is
/// enabled when the statement first runs, so a statement first reached before the subscriber
/// exists could stay disabled for the whole binary.
fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        captured
    })
}

#[tokio::test]
async fn pass_through_requests_are_logged() {
    let logs = captured_logs();
    let harness = pass_through_harness("/v1/moderations").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "modr-2"})))
        .mount(&harness.upstream)
        .await;
    let response = harness
        .http()
        .post(format!("{}/v1/moderations", harness.url))
        .header("X-Customer-Id", LOGGED_CUSTOMER)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let text = logs.text();
    let line = text
        .lines()
        .find(|line| {
            line.contains("unmetered pass-through request") && line.contains(LOGGED_CUSTOMER)
        })
        .unwrap_or_else(|| panic!("no pass-through log line for {LOGGED_CUSTOMER}"));
    assert!(line.contains("path=/v1/moderations"), "{line}");
    assert!(line.contains("method=POST"), "{line}");
}
