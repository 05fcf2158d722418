//! Live price reload: the admin call, the file watch, rejection of an invalid file, and a
//! reload in the middle of concurrent traffic, where every request must be priced by the
//! one table it started with.
//!
//! Reload counters live in the process-wide registry, so the tests run one at a time and
//! compare counters before and after.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::cases::{charge_of, usd_to_nanos};
use support::harness::{Harness, Options};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ADMIN_TOKEN: &str = "reload-admin-token-0123456789";

/// With the usage below (1000 prompt, 1000 completion tokens) a request costs
/// 1000 * 1e-6 + 1000 * 2e-6 = 0.003 USD under these prices.
const PRICES_A: &str = r#"
[models."reload-model"]
input = "1.00"
output = "2.00"
max_output_tokens = 1000
"#;

/// The same request costs 1000 * 3e-6 + 1000 * 5e-6 = 0.008 USD under these prices.
const PRICES_B: &str = r#"
[models."reload-model"]
input = "3.00"
output = "5.00"
max_output_tokens = 1000
"#;

const COST_A: &str = "0.003";
const COST_B: &str = "0.008";

/// A harness with the admin router on its own port and a fixed upstream response.
struct Reloading {
    harness: Harness,
    admin: String,
}

async fn start(env: Vec<(&'static str, String)>, upstream_delay: Duration) -> Reloading {
    let mut env = env;
    env.push(("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN.into()));
    let harness = Harness::start_with(Options {
        env,
        pricing_toml: Some(PRICES_A.to_string()),
    })
    .await;
    let answer = json!({
        "id": "chatcmpl-reload", "object": "chat.completion", "created": 1, "model": "reload-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(answer)
                .set_delay(upstream_delay),
        )
        .mount(&harness.upstream)
        .await;
    harness.postpaid("reload-customer").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin = format!("http://{}", listener.local_addr().expect("admin addr"));
    let app = tollgate::admin::router(Arc::clone(&harness.state));
    tollgate::task::spawn_named("test-admin-listener", async move {
        let _ = axum::serve(listener, app).await;
    });
    Reloading { harness, admin }
}

impl Reloading {
    fn write_prices(&self, text: &str) {
        std::fs::write(&self.harness.state.config.pricing.file, text).expect("write price file");
    }

    async fn reload(&self, token: Option<&str>) -> reqwest::Response {
        let mut request =
            reqwest::Client::new().post(format!("{}/admin/prices/reload", self.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("admin answers")
    }

    /// Sends one chat request tagged with `tag` and returns its id and cost header.
    async fn chat(&self, tag: &str) -> (String, String) {
        let response = self
            .harness
            .http()
            .post(format!("{}/v1/chat/completions", self.harness.url))
            .header("X-Customer-Id", "reload-customer")
            .json(&json!({"model": "reload-model", "user": tag, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("tollgate answers");
        assert_eq!(response.status(), 200, "{tag}");
        let id = response.headers()["x-tollgate-request-id"]
            .to_str()
            .expect("ASCII id")
            .to_string();
        let cost = response.headers()["x-tollgate-cost-usd"]
            .to_str()
            .expect("ASCII cost")
            .to_string();
        (id, cost)
    }

    async fn reload_count(&self, trigger: &str, outcome: &str) -> u64 {
        let response = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics answer");
        let text = response.text().await.expect("metrics text");
        let series =
            format!("tollgate_price_reloads_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |value| value.parse().expect("counter"))
    }
}

#[tokio::test]
async fn admin_reload_puts_new_prices_in_force() {
    let _serial = SERIAL.lock().await;
    let test = start(vec![], Duration::ZERO).await;
    let (_, before) = test.chat("before").await;
    assert_eq!(before, COST_A);
    let reloads = test.reload_count("admin", "ok").await;

    test.write_prices(PRICES_B);
    let response = test.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "reloaded");
    assert_eq!(body["models"], 1);
    assert_eq!(body["unchanged"], false);

    let (_, after) = test.chat("after").await;
    assert_eq!(after, COST_B);
    assert_eq!(test.reload_count("admin", "ok").await, reloads + 1);
    test.harness.stop().await;
}

#[tokio::test]
async fn reload_requires_admin_token() {
    let _serial = SERIAL.lock().await;
    let test = start(vec![], Duration::ZERO).await;
    test.write_prices(PRICES_B);

    let missing = test.reload(None).await;
    assert_eq!(missing.status(), 401);
    let wrong = test.reload(Some("not-the-token")).await;
    assert_eq!(wrong.status(), 401);

    let (_, cost) = test.chat("unchanged").await;
    assert_eq!(cost, COST_A, "an unauthenticated call reloads nothing");
    test.harness.stop().await;
}

#[tokio::test]
async fn invalid_file_keeps_old_prices() {
    let _serial = SERIAL.lock().await;
    let test = start(vec![], Duration::ZERO).await;
    let failures = test.reload_count("admin", "failed").await;
    let broken = PRICES_B.replace("output = \"5.00\"", "output = \"-5.00\"");
    test.write_prices(&broken);

    let response = test.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_price_file");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("negative"), "{message}");
    assert!(
        message.contains("previous prices stay in force"),
        "{message}"
    );

    let (_, cost) = test.chat("kept").await;
    assert_eq!(cost, COST_A);
    assert_eq!(test.reload_count("admin", "failed").await, failures + 1);
    test.harness.stop().await;
}

#[tokio::test]
async fn file_watch_reloads_changed_file() {
    let _serial = SERIAL.lock().await;
    let env = vec![
        ("TOLLGATE_PRICING_WATCH", "true".to_string()),
        ("TOLLGATE_PRICING_WATCH_INTERVAL", "50ms".to_string()),
    ];
    let test = start(env, Duration::ZERO).await;
    let (loaded, failed) = (
        test.reload_count("file_change", "ok").await,
        test.reload_count("file_change", "failed").await,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        test.reload_count("file_change", "ok").await,
        loaded,
        "an unchanged file is not reloaded"
    );

    test.write_prices("[models.\"reload-model\"]\ninput = \"oops\"\n");
    wait_until(async || test.reload_count("file_change", "failed").await == failed + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        test.reload_count("file_change", "failed").await,
        failed + 1,
        "a rejected file is tried once"
    );
    let (_, kept) = test.chat("kept").await;
    assert_eq!(kept, COST_A);

    test.write_prices(PRICES_B);
    wait_until(async || test.reload_count("file_change", "ok").await == loaded + 1).await;
    let (_, cost) = test.chat("watched").await;
    assert_eq!(cost, COST_B);
    test.harness.stop().await;
}

async fn wait_until(mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One request of the concurrent run.
struct Sent {
    tag: String,
    id: String,
    cost: String,
    /// Sent after the reload call returned.
    after_reload: bool,
}

#[tokio::test]
async fn reload_mid_traffic_prices_each_request_once() {
    let _serial = SERIAL.lock().await;
    let test = Arc::new(start(vec![], Duration::from_millis(150)).await);
    let reload_done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(std::sync::Mutex::new(HashSet::new()));

    let mut workers = Vec::new();
    for worker in 0..6 {
        let (test, done, completed) = (
            Arc::clone(&test),
            Arc::clone(&reload_done),
            Arc::clone(&completed),
        );
        workers.push(tollgate::task::spawn_named("test-traffic", async move {
            let mut sent = Vec::new();
            for round in 0..12 {
                let tag = format!("w{worker}-r{round}");
                let after_reload = done.load(Ordering::SeqCst);
                let (id, cost) = test.chat(&tag).await;
                completed.lock().unwrap().insert(tag.clone());
                sent.push(Sent {
                    tag,
                    id,
                    cost,
                    after_reload,
                });
            }
            sent
        }));
    }

    while completed.lock().unwrap().len() < 18 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Upstream responds after 150 ms, so the requests in flight reach it meanwhile.
    tokio::time::sleep(Duration::from_millis(50)).await;
    test.write_prices(PRICES_B);
    // Every request upstream has seen was priced before the reload began.
    let forwarded_before: HashSet<String> = upstream_tags(&test.harness).await;
    let completed_before = completed.lock().unwrap().clone();
    let response = test.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 200);
    reload_done.store(true, Ordering::SeqCst);

    let mut sent = Vec::new();
    for worker in workers {
        sent.extend(worker.await.expect("worker ran"));
    }
    assert_eq!(sent.len(), 72);

    let (a, b) = (usd_to_nanos(COST_A), usd_to_nanos(COST_B));
    let mut priced: HashMap<&str, usize> = HashMap::new();
    for request in &sent {
        let charged = charge_of(&test.harness.blnk, &request.id).usd_nanos();
        assert_eq!(
            charged,
            usd_to_nanos(&request.cost),
            "{}: ledger and header agree",
            request.tag
        );
        assert!(
            charged == a || charged == b,
            "{}: charged {charged} nano-USD, neither table's amount",
            request.tag
        );
        if forwarded_before.contains(&request.tag) {
            assert_eq!(
                charged, a,
                "{}: started before the reload, so priced by the old table",
                request.tag
            );
        }
        if request.after_reload {
            assert_eq!(
                charged, b,
                "{}: started after the reload, so priced by the new table",
                request.tag
            );
        }
        *priced
            .entry(if charged == a { "old" } else { "new" })
            .or_default() += 1;
    }
    let in_flight = forwarded_before.difference(&completed_before).count();
    assert!(
        in_flight >= 1,
        "some requests priced by the old table were still running at the reload"
    );
    assert!(priced["old"] >= 18, "{priced:?}");
    assert!(priced["new"] >= 1, "{priced:?}");
    if let Ok(test) = Arc::try_unwrap(test) {
        test.harness.stop().await;
    }
}

/// Returns the `user` tags of the requests upstream has received so far.
async fn upstream_tags(harness: &Harness) -> HashSet<String> {
    let received = harness
        .upstream
        .received_requests()
        .await
        .unwrap_or_default();
    received
        .iter()
        .filter_map(|request| serde_json::from_slice::<Value>(&request.body).ok())
        .filter_map(|body| body["user"].as_str().map(str::to_string))
        .collect()
}
