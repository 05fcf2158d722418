//! Metrics, the per-request log event and readiness, observed from outside: the admin
//! listener's `/metrics` and `/readyz` of an in-process tollgate, and the JSON log lines of
//! the real binary.
//!
//! The metrics registry and Blnk's last-answer time are process-wide, so the in-process
//! tests run one at a time and compare counters before and after their requests.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::blnk::{FakeBlnk, Fault};
use support::harness::{Harness, Options};
use tollgate::accounts::Billing;
use tollgate::billing::SystemBalances;
use tollgate::customers::Operations;
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;
use tollgate::money::Usd;
use tollgate::secret::Secret;

/// Held by each in-process test, because they share the process-wide registry.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PRICES: &str = r#"
[settings]
markup = "1"

[models."obs-model"]
input = "2.00"
cached_input = "1.00"
output = "8.00"
max_output_tokens = 1000
"#;

const OPENAI_KEY: &str = "sk-obs-openai-secret-4711";
const BLNK_KEY: &str = "blnk-obs-master-secret-4711";
const ADMIN_TOKEN: &str = "admin-obs-token-secret-4711";
const CLIENT_KEY: &str = "sk-obs-client-secret-4711";
const PROMPT_TEXT: &str = "PROMPT-CANARY-3141 tell me a secret";
const COMPLETION_TEXT: &str = "COMPLETION-CANARY-2718 here it is";

/// Usage of the plain upstream answer: 1000 prompt tokens (200 cached), 500 completion
/// tokens (100 reasoning). At the prices above it costs
/// 800 * 2e-6 + 200 * 1e-6 + 500 * 8e-6 = 0.0058 USD.
fn completion_json() -> Value {
    json!({
        "id": "chatcmpl-obs",
        "object": "chat.completion",
        "created": 1,
        "model": "obs-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": COMPLETION_TEXT}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 100}
        }
    })
}

/// Builds a streamed response with usage 300 prompt and 40 completion tokens: 0.00092 USD.
fn stream_body() -> String {
    let chunks = [
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "obs-model",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": COMPLETION_TEXT}, "finish_reason": null}]}),
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "obs-model",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "obs-model",
            "choices": [], "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340}}),
    ];
    let mut body: String = chunks
        .iter()
        .map(|chunk| format!("data: {chunk}\n\n"))
        .collect();
    body.push_str("data: [DONE]\n\n");
    body
}

fn chat_body(content: &str, stream: bool) -> Value {
    json!({"model": "obs-model", "stream": stream, "max_tokens": 100,
        "messages": [{"role": "user", "content": content}]})
}

async fn mount_upstream(upstream: &MockServer) {
    Mock::given(method("POST"))
        .and(body_string_contains("UPSTREAM-FAIL"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "upstream broke", "type": "server_error", "param": null, "code": null}})))
        .with_priority(1)
        .mount(upstream)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(stream_body(), "text/event-stream"))
        .with_priority(2)
        .mount(upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion_json()))
        .with_priority(3)
        .mount(upstream)
        .await;
}

/// A harness with the admin router served on its own loopback port.
struct Observed {
    harness: Harness,
    admin: String,
}

async fn start(env: Vec<(&'static str, String)>) -> Observed {
    let harness = Harness::start_with(Options {
        env,
        pricing_toml: Some(PRICES.to_string()),
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin = format!("http://{}", listener.local_addr().expect("admin addr"));
    let app = tollgate::admin::router(Arc::clone(&harness.state));
    tollgate::task::spawn_named("test-admin-listener", async move {
        let _ = axum::serve(listener, app).await;
    });
    Observed { harness, admin }
}

async fn post_chat(harness: &Harness, customer: &str, body: &Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", format!("Bearer {CLIENT_KEY}"))
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

/// One scrape of `/metrics`: series (name and labels) to value.
struct Scraped(HashMap<String, String>);

impl Scraped {
    async fn fetch(admin: &str) -> Scraped {
        let response = reqwest::get(format!("{admin}/metrics"))
            .await
            .expect("metrics answer");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ASCII type")
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.expect("metrics text");
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("series and value");
                (name.to_string(), value.to_string())
            })
            .collect();
        Scraped(series)
    }

    /// Returns the value of a series, 0 when absent.
    fn value(&self, series: &str) -> Decimal {
        self.0.get(series).map_or(Decimal::ZERO, |value| {
            Decimal::from_str(value).expect("decimal value")
        })
    }

    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

/// Returns the change of a series between two scrapes.
fn delta(before: &Scraped, after: &Scraped, series: &str) -> Decimal {
    after.value(series) - before.value(series)
}

#[tokio::test]
async fn metrics_count_known_request_sequence() {
    let _serial = SERIAL.lock().await;
    let observed = start(vec![]).await;
    let harness = &observed.harness;
    mount_upstream(&harness.upstream).await;
    harness.postpaid("obs-postpaid").await;
    harness.customer("obs-broke", Billing::Prepaid, None).await;
    let before = Scraped::fetch(&observed.admin).await;

    for _ in 0..2 {
        let response = post_chat(harness, "obs-postpaid", &chat_body(PROMPT_TEXT, false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tollgate-charge"], "recorded");
    }
    let refused = post_chat(harness, "obs-broke", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(refused.status(), 402);
    let failed = post_chat(harness, "obs-postpaid", &chat_body("UPSTREAM-FAIL", false)).await;
    assert_eq!(failed.status(), 500);
    let after = Scraped::fetch(&observed.admin).await;

    let exact = [
        (
            "tollgate_requests_total{route=\"/v1/chat/completions\",status=\"200\"}",
            "2",
        ),
        (
            "tollgate_requests_total{route=\"/v1/chat/completions\",status=\"402\"}",
            "1",
        ),
        (
            "tollgate_requests_total{route=\"/v1/chat/completions\",status=\"500\"}",
            "1",
        ),
        ("tollgate_insufficient_funds_total", "1"),
        (
            "tollgate_tokens_total{model=\"obs-model\",class=\"prompt\"}",
            "2000",
        ),
        (
            "tollgate_tokens_total{model=\"obs-model\",class=\"cached\"}",
            "400",
        ),
        (
            "tollgate_tokens_total{model=\"obs-model\",class=\"cache_write\"}",
            "0",
        ),
        (
            "tollgate_tokens_total{model=\"obs-model\",class=\"completion\"}",
            "1000",
        ),
        (
            "tollgate_tokens_total{model=\"obs-model\",class=\"reasoning\"}",
            "200",
        ),
        ("tollgate_charged_usd_total{model=\"obs-model\"}", "0.0116"),
        (
            "tollgate_ledger_calls_total{operation=\"post_bulk\",outcome=\"ok\"}",
            "2",
        ),
        (
            "tollgate_ledger_calls_total{operation=\"post_transaction\",outcome=\"rejected\"}",
            "1",
        ),
        (
            "tollgate_ledger_call_duration_seconds_count{operation=\"post_bulk\"}",
            "2",
        ),
        (
            "tollgate_upstream_duration_seconds_count{stream=\"false\"}",
            "3",
        ),
        ("tollgate_overhead_duration_seconds_count", "4"),
        ("tollgate_holds_open", "0"),
    ];
    for (series, expected) in exact {
        let expected = Decimal::from_str(expected).unwrap();
        assert_eq!(delta(&before, &after, series), expected, "{series}");
    }
    assert_eq!(after.value("tollgate_outbox_pending"), Decimal::ZERO);
    assert_eq!(
        after.value("tollgate_outbox_oldest_pending_age_seconds"),
        Decimal::ZERO
    );
    assert_eq!(after.value("tollgate_outbox_dead"), Decimal::ZERO);
    assert_eq!(after.value("tollgate_price_models"), Decimal::ONE);
    assert!(after.has("tollgate_ledger_last_response_age_seconds"));
    assert!(
        !after
            .0
            .keys()
            .any(|series| series.contains("obs-postpaid") || series.contains("obs-broke")),
        "no customer id may be a label"
    );
    observed.harness.stop().await;
}

#[tokio::test]
async fn open_holds_count_requests_in_flight() {
    let _serial = SERIAL.lock().await;
    let observed = start(vec![]).await;
    let harness = &observed.harness;
    let slow = ResponseTemplate::new(200)
        .set_body_json(completion_json())
        .set_delay(Duration::from_millis(500));
    Mock::given(method("POST"))
        .respond_with(slow)
        .mount(&harness.upstream)
        .await;
    harness.prepaid("obs-funded", "10").await;
    let open = async || {
        Scraped::fetch(&observed.admin)
            .await
            .value("tollgate_holds_open")
    };
    let before = open().await;

    let request = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "obs-funded")
        .json(&chat_body(PROMPT_TEXT, false));
    let in_flight = tollgate::task::spawn_named("test-request", request.send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while open().await != before + Decimal::ONE {
        assert!(
            Instant::now() < deadline,
            "the hold of the request in flight is not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = in_flight
        .await
        .expect("task ran")
        .expect("tollgate answers");
    assert_eq!(response.status(), 200);

    assert_eq!(
        open().await,
        before,
        "the hold stops counting when its request ends"
    );
    observed.harness.stop().await;
}

#[tokio::test]
async fn outbox_backlog_shows_while_blnk_is_down() {
    let _serial = SERIAL.lock().await;
    let observed = start(vec![("TOLLGATE_BLNK_CHARGE_TIMEOUT", "300ms".into())]).await;
    let harness = &observed.harness;
    mount_upstream(&harness.upstream).await;
    harness.postpaid("obs-postpaid").await;
    let warm = post_chat(harness, "obs-postpaid", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(
        warm.status(),
        200,
        "the account is cached while Blnk answers"
    );

    harness.blnk.inject(Fault::Down);
    let response = post_chat(harness, "obs-postpaid", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(
        response.status(),
        200,
        "the answer is relayed although Blnk is down"
    );
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let scraped = Scraped::fetch(&observed.admin).await;

    assert_eq!(scraped.value("tollgate_outbox_pending"), Decimal::ONE);
    assert!(scraped.has("tollgate_outbox_oldest_pending_age_seconds"));
    harness.blnk.clear_faults();
    observed.harness.stop().await;
}

#[tokio::test]
async fn readiness_follows_blnk_availability() {
    let _serial = SERIAL.lock().await;
    let observed = start(vec![
        ("TOLLGATE_ADMIN_LEDGER_PROBE_INTERVAL", "100ms".into()),
        ("TOLLGATE_ADMIN_LEDGER_STALE_AFTER", "500ms".into()),
    ])
    .await;
    let ready = |expected: u16| wait_for_readiness(&observed.admin, expected);

    let body = ready(200).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], json!([]));

    observed.harness.blnk.inject(Fault::Down);
    let body = ready(503).await;
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], json!(["ledger_reachable"]));
    assert_eq!(body["checks"]["prices_loaded"], true);
    assert_eq!(body["checks"]["outbox_writable"], true);

    observed.harness.blnk.clear_faults();
    let body = ready(200).await;
    assert_eq!(body["checks"]["ledger_reachable"], true);

    let live = reqwest::get(format!("{}/healthz", observed.admin))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    observed.harness.stop().await;
}

/// Polls `/readyz` until it returns `expected`, for at most 10 s, and returns its body.
async fn wait_for_readiness(admin: &str, expected: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = reqwest::get(format!("{admin}/readyz"))
            .await
            .expect("readyz answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("readyz body is JSON");
        if status == expected {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed {status} ({body}), expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary, its listeners and the file its log goes to.
struct Binary {
    child: std::process::Child,
    url: String,
    admin: String,
    log: std::path::PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn spawn_binary(dir: &Path, blnk: &FakeBlnk, upstream: &MockServer, prices: &Path) -> Binary {
    let (port, admin_port) = (free_port(), free_port());
    let log = dir.join("tollgate.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env_clear()
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOLLGATE_UPSTREAM_URL", upstream.uri())
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("BLNK_URL", blnk.url())
        .env("BLNK_API_KEY", BLNK_KEY)
        .env("TOLLGATE_DATA_DIR", dir.join("data"))
        .env("TOLLGATE_PRICING", prices)
        .env("TOLLGATE_PRICING_WATCH", "false")
        .env("TOLLGATE_LOG_FORMAT", "json")
        .env("TOLLGATE_SHUTDOWN_GRACE", "5s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("tollgate binary starts");
    Binary {
        child,
        url: format!("http://127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        log,
    }
}

fn send_signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} failed");
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn operations(blnk: &FakeBlnk) -> Operations {
    Operations {
        blnk: BlnkClient::new(
            &blnk.url(),
            Some(Secret::new(BLNK_KEY)),
            Duration::from_secs(5),
        )
        .expect("client"),
        ledger_name: "tollgate customer wallets".into(),
        system: SystemBalances {
            revenue: "@Revenue-USD".into(),
            token_pool: "@TokenPool".into(),
            world: "@World-USD".into(),
        },
    }
}

async fn create_customers(blnk: &FakeBlnk) {
    let ops = operations(blnk);
    let funded = CustomerId::parse("bin-funded").expect("valid id");
    ops.create_customer(&funded, None, Billing::Prepaid)
        .await
        .expect("customer");
    let amount = Usd::parse_positive("10").expect("valid amount");
    ops.fund(&funded, amount, "tg:topup:bin-funded:initial", "topup")
        .await
        .expect("topped up");
    let broke = CustomerId::parse("bin-broke").expect("valid id");
    ops.create_customer(&broke, None, Billing::Prepaid)
        .await
        .expect("customer");
}

async fn post_to(url: &str, customer: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("Authorization", format!("Bearer {CLIENT_KEY}"))
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-tollgate-request-id"]
        .to_str()
        .expect("ASCII id")
        .to_string()
}

#[tokio::test]
async fn binary_logs_one_json_event_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("pricing.toml");
    std::fs::write(&prices, PRICES).unwrap();
    let blnk = FakeBlnk::start_with_key(BLNK_KEY).await;
    let upstream = MockServer::start().await;
    mount_upstream(&upstream).await;
    create_customers(&blnk).await;
    let mut binary = spawn_binary(dir.path(), &blnk, &upstream, &prices);
    let health = format!("{}/healthz", binary.admin);
    wait_until("the admin listener", async || {
        reqwest::get(&health).await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let plain = post_to(&binary.url, "bin-funded", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["x-tollgate-cost-usd"], "0.0058");
    let plain_id = request_id(&plain);
    let streamed = post_to(&binary.url, "bin-funded", &chat_body(PROMPT_TEXT, true)).await;
    let stream_id = request_id(&streamed);
    let text = streamed.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let refused = post_to(&binary.url, "bin-broke", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(refused.status(), 402);
    let refused_id = request_id(&refused);

    let reload = reqwest::Client::new()
        .post(format!("{}/admin/prices/reload", binary.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);

    std::fs::write(
        &prices,
        PRICES.replace("input = \"2.00\"", "input = \"4.00\""),
    )
    .unwrap();
    send_signal(&binary.child, "-HUP");
    let metrics = format!("{}/metrics", binary.admin);
    let signal_reload = "tollgate_price_reloads_total{trigger=\"signal\",outcome=\"ok\"} 1";
    wait_until("the SIGHUP reload", async || {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        text.lines().any(|line| line == signal_reload)
    })
    .await;
    let repriced = post_to(&binary.url, "bin-funded", &chat_body(PROMPT_TEXT, false)).await;
    assert_eq!(
        repriced.headers()["x-tollgate-cost-usd"],
        "0.0074",
        "800 * 4e-6 + 200 * 1e-6 + 500 * 8e-6"
    );
    let repriced_id = request_id(&repriced);

    send_signal(&binary.child, "-TERM");
    let exit = wait_for_exit(&mut binary.child).await;
    assert!(exit.success(), "tollgate exited with {exit}");
    let log = std::fs::read_to_string(&binary.log).unwrap();

    for secret in [
        OPENAI_KEY,
        BLNK_KEY,
        ADMIN_TOKEN,
        CLIENT_KEY,
        "PROMPT-CANARY",
        "COMPLETION-CANARY",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
        })
        .collect();
    let events: Vec<&Value> = lines
        .iter()
        .filter(|line| line["target"] == "tollgate::request")
        .collect();
    assert_eq!(
        events.len(),
        4,
        "one event per metered request: {events:#?}"
    );
    let event = |id: &str| {
        let matching: Vec<&&Value> = events
            .iter()
            .filter(|event| event["request_id"] == id)
            .collect();
        assert_eq!(matching.len(), 1, "events of {id}");
        assert!(
            matching[0].get("aborted").is_none(),
            "{id} was finished by its own task"
        );
        (*matching[0]).clone()
    };

    let plain = event(&plain_id);
    let expected_plain = json!({
        "message": "request finished", "level": "INFO", "request_id": plain_id, "customer_id": "bin-funded",
        "route": "/v1/chat/completions", "model_requested": "obs-model", "model_billed": "obs-model",
        "stream": false, "status": 200, "prompt_tokens": 1000, "cached_tokens": 200, "completion_tokens": 500,
        "reasoning_tokens": 100, "usage_source": "reported", "cost_usd": "0.0058", "amount_usd": "0.0058",
        "hold_reference": format!("tg:{plain_id}:hold"),
        "charge_references": format!("tg:{plain_id}:usd,tg:{plain_id}:tokens"), "ledger": "recorded",
    });
    assert_fields(&plain, &expected_plain);
    for duration in ["duration_us", "upstream_us", "ledger_us", "overhead_us"] {
        assert!(plain[duration].is_u64(), "{duration} in {plain}");
    }

    let streamed = event(&stream_id);
    let expected_stream = json!({
        "stream": true, "status": 200, "prompt_tokens": 300, "completion_tokens": 40,
        "cost_usd": "0.00092", "ledger": "recorded", "model_billed": "obs-model",
    });
    assert_fields(&streamed, &expected_stream);
    assert!(streamed["upstream_us"].is_u64(), "{streamed}");

    let refused = event(&refused_id);
    let expected_refused =
        json!({"status": 402, "error_code": "insufficient_funds", "customer_id": "bin-broke"});
    assert_fields(&refused, &expected_refused);
    for absent in [
        "model_billed",
        "cost_usd",
        "charge_references",
        "upstream_us",
    ] {
        assert!(refused.get(absent).is_none(), "{absent} in {refused}");
    }

    assert_fields(&event(&repriced_id), &json!({"cost_usd": "0.0074"}));
    let reloads: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "prices reloaded")
        .collect();
    let triggers: Vec<&Value> = reloads.iter().map(|line| &line["trigger"]).collect();
    assert_eq!(triggers, vec!["admin", "signal"]);
}

fn assert_fields(event: &Value, expected: &Value) {
    for (field, value) in expected.as_object().expect("expected fields are an object") {
        assert_eq!(&event[field], value, "field {field} of {event}");
    }
}

async fn wait_for_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tollgate did not exit within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
