//! No client key, operator key or key digest appears in a log line, an error body or Debug
//! output, whatever path a request takes. Logs are captured at TRACE level and searched.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use tollgate::auth::{CustomerKeys, KeyDigest};
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;

use crate::support::harness::{Harness, Options};

const GLOBAL_KEY: &str = "global-client-key-9f8e7d6c";
const OPERATOR_KEY: &str = "sk-operator-test";

/// A log writer that keeps every line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Sends one request with a bearer key and returns the response body.
async fn send(
    harness: &Harness,
    key: &str,
    path: &str,
    body: Option<String>,
    padding: usize,
) -> String {
    let url = format!("{}{path}", harness.url);
    let client = harness.http();
    let request = match body {
        Some(body) => client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body),
        None => client.get(url),
    };
    let response = request
        .bearer_auth(key)
        .header("X-Customer-Id", "cust_secret")
        .header("X-Padding", "p".repeat(padding))
        .send()
        .await
        .expect("answer");
    response.text().await.expect("body")
}

// The current-thread runtime runs the server's tasks on this thread, where the capturing
// subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn keys_stay_out_of_logs_errors_and_debug() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let harness = Harness::start_with(Options {
        env: vec![
            ("TOLLGATE_CLIENT_KEYS", GLOBAL_KEY.into()),
            ("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s".into()),
            ("TOLLGATE_MAX_HEADER_BYTES", "4KiB".into()),
            ("TOLLGATE_MAX_JSON_DEPTH", "8".into()),
        ],
        ..Options::default()
    })
    .await;
    let usage = json!({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(usage))
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "no"}})))
        .mount(&harness.upstream)
        .await;
    harness.postpaid("cust_secret").await;

    let admin = CustomerKeys {
        blnk: BlnkClient::new(&harness.blnk.url(), None, Duration::from_secs(5)).expect("client"),
    };
    let customer = CustomerId::parse("cust_secret").expect("id");
    let issued = admin.create(&customer).await.expect("key");
    let revoked = admin.create(&customer).await.expect("key");
    admin.revoke(&revoked.key_id).await.expect("revoked");
    let customer_key = issued.key.expose().to_owned();
    let revoked_key = revoked.key.expose().to_owned();
    let forged = format!("tg-{}-{}", issued.key_id, "e".repeat(64));
    let near_miss = format!("{GLOBAL_KEY}x");

    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let deep = format!(
        r#"{{"model":"gpt-4o-mini","x":{}{}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    let mut bodies = Vec::new();
    for key in [
        GLOBAL_KEY,
        customer_key.as_str(),
        revoked_key.as_str(),
        forged.as_str(),
        near_miss.as_str(),
    ] {
        bodies.push(send(&harness, key, "/v1/chat/completions", Some(chat.clone()), 0).await);
        bodies.push(send(&harness, key, "/v1/chat/completions", Some(deep.clone()), 0).await);
        bodies.push(
            send(
                &harness,
                key,
                "/v1/chat/completions",
                Some(chat.clone()),
                5000,
            )
            .await,
        );
        bodies.push(send(&harness, key, "/v1/models", None, 0).await);
        bodies.push(send(&harness, key, "/v1/no-such-route", None, 0).await);
    }
    harness.blnk.run_workers();

    let secrets = [
        GLOBAL_KEY.to_owned(),
        customer_key[20..].to_owned(),
        revoked_key[20..].to_owned(),
        forged[20..].to_owned(),
        near_miss.clone(),
        OPERATOR_KEY.to_owned(),
        issued.key_id.metadata_key().replace("tollgate_key_", "") + "-",
        KeyDigest::of(&customer_key).to_hex(),
    ];
    let logs = captured.text();
    assert!(
        logs.contains("request rejected"),
        "logs were captured: {logs}"
    );
    assert!(logs.contains("rejected a tollgate key"), "{logs}");
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a log line contains {secret:?}"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a response contains {secret:?}: {body}"
            );
        }
    }

    let debug_outputs = [
        format!("{:?}", harness.state.config),
        format!("{:?}", harness.state.auth),
        format!("{issued:?}"),
        format!("{revoked:?}"),
    ];
    for debug in &debug_outputs {
        for secret in &secrets {
            assert!(
                !debug.contains(secret.as_str()),
                "Debug output contains {secret:?}: {debug}"
            );
        }
    }
    harness.stop().await;
}

#[test]
fn config_and_key_file_errors_hide_keys() {
    let env = |name: &str| match name {
        "TOLLGATE_CLIENT_KEYS" => Some(format!("{GLOBAL_KEY},short-{GLOBAL_KEY} x")),
        "OPENAI_API_KEY" => Some(OPERATOR_KEY.to_owned()),
        _ => None,
    };
    let error = tollgate::config::load_from(None, &env).expect_err("invalid key list");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(GLOBAL_KEY), "{text}");
        assert!(!text.contains(OPERATOR_KEY), "{text}");
    }

    let without_operator =
        |name: &str| (name == "TOLLGATE_CLIENT_KEYS").then(|| GLOBAL_KEY.to_owned());
    let error = tollgate::config::load_from(None, &without_operator).expect_err("no upstream key");
    assert!(!error.to_string().contains(GLOBAL_KEY), "{error}");

    let path = std::path::Path::new("/etc/tollgate/client-keys");
    let text = format!("{GLOBAL_KEY}\n{GLOBAL_KEY} trailing words\n");
    let error = tollgate::auth::parse_keys_file(path, &text).expect_err("bad line");
    assert!(error.to_string().contains("line 2"), "{error}");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(GLOBAL_KEY), "{text}");
    }
}
