//! Client keys through the real proxy: global keys from the environment and from a file,
//! per-customer keys minted into the fake Blnk, revocation, and the `tollgate key` commands.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use support::cases::charge_of;
use support::harness::{Harness, Options};
use tollgate::auth::{CustomerKeys, KeyAdminError, KeyId};
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;

const GLOBAL_KEY: &str = "client-key-alpha-0001";
const OTHER_GLOBAL_KEY: &str = "client-key-bravo-0002";
const OPERATOR_KEY: &str = "sk-operator-test";
const REQUEST_ID: &str = "x-tollgate-request-id";

fn chat_body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

fn chat_response() -> Value {
    json!({
        "id": "chatcmpl-keys",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

/// Mounts upstream responses that match only requests carrying the operator's key.
async fn mount_upstream(harness: &Harness) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {OPERATOR_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_response()))
        .mount(&harness.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header(
            "authorization",
            format!("Bearer {OPERATOR_KEY}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": []})),
        )
        .mount(&harness.upstream)
        .await;
}

async fn start(env: Vec<(&'static str, String)>) -> Harness {
    let harness = Harness::start_with(Options {
        env,
        ..Options::default()
    })
    .await;
    mount_upstream(&harness).await;
    harness
}

fn with_global_keys() -> Vec<(&'static str, String)> {
    vec![(
        "TOLLGATE_CLIENT_KEYS",
        format!("{GLOBAL_KEY},{OTHER_GLOBAL_KEY}"),
    )]
}

/// Sends a chat request with an optional bearer key and customer header.
async fn post_chat(
    harness: &Harness,
    key: Option<&str>,
    customer: Option<&str>,
) -> reqwest::Response {
    let mut request = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .json(&chat_body());
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    if let Some(customer) = customer {
        request = request.header("X-Customer-Id", customer);
    }
    request.send().await.expect("tollgate answers")
}

fn key_admin(harness: &Harness) -> CustomerKeys {
    let blnk = BlnkClient::new(&harness.blnk.url(), None, Duration::from_secs(5)).expect("client");
    CustomerKeys { blnk }
}

async fn mint_key(harness: &Harness, customer: &str) -> (KeyId, String) {
    let customer = CustomerId::parse(customer).expect("valid id");
    let issued = key_admin(harness)
        .create(&customer)
        .await
        .expect("key created");
    (issued.key_id, issued.key.expose().to_owned())
}

/// Checks a 401 in OpenAI's shape that does not echo `presented`.
async fn assert_unauthorized(response: reqwest::Response, presented: Option<&str>, case: &str) {
    assert_eq!(response.status(), 401, "{case}");
    assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
    let text = response.text().await.expect("body");
    let error: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(error["error"]["type"], "invalid_request_error", "{case}");
    assert_eq!(error["error"]["code"], "invalid_api_key", "{case}");
    assert!(
        error["error"].get("param").is_some(),
        "{case}: OpenAI error shape"
    );
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("Authorization: Bearer"),
        "{case}: {message}"
    );
    if let Some(presented) = presented.filter(|key| !key.is_empty()) {
        assert!(
            !text.contains(presented),
            "{case}: the key is echoed: {text}"
        );
    }
}

fn usd_source(harness: &Harness, response: &reqwest::Response) -> String {
    let request_id = response.headers()[REQUEST_ID]
        .to_str()
        .expect("id")
        .to_owned();
    let charge = charge_of(&harness.blnk, &request_id);
    charge.usd.expect("a USD leg").source
}

#[tokio::test]
async fn global_key_is_accepted() {
    let harness = start(with_global_keys()).await;
    let created = harness.postpaid("cust_a").await;

    for key in [GLOBAL_KEY, OTHER_GLOBAL_KEY] {
        let response = post_chat(&harness, Some(key), Some("cust_a")).await;
        assert_eq!(response.status(), 200, "{key}");
        assert_eq!(response.headers()["x-tollgate-charge"], "recorded");
        assert_eq!(usd_source(&harness, &response), created.usd_balance_id);
    }
    harness.stop().await;
}

#[tokio::test]
async fn missing_key_is_rejected() {
    let harness = start(with_global_keys()).await;
    harness.postpaid("cust_a").await;

    let response = post_chat(&harness, None, Some("cust_a")).await;
    let message_case = "no Authorization header";
    assert_unauthorized(response, None, message_case).await;

    let response = post_chat(&harness, Some(""), Some("cust_a")).await;
    assert_unauthorized(response, None, "empty bearer token").await;

    assert!(
        harness
            .upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(harness.blnk.transactions().is_empty(), "nothing is billed");
    harness.stop().await;
}

#[tokio::test]
async fn wrong_and_similar_keys_are_rejected() {
    let harness = start(with_global_keys()).await;
    harness.postpaid("cust_a").await;

    let shorter = &GLOBAL_KEY[..GLOBAL_KEY.len() - 1];
    let longer = format!("{GLOBAL_KEY}1");
    let last_changed = format!("{shorter}2");
    let upper = GLOBAL_KEY.to_uppercase();
    let cases = [
        ("unrelated", "some-other-key-0123456789"),
        ("prefix", shorter),
        ("extra character", longer.as_str()),
        ("last character changed", last_changed.as_str()),
        ("case changed", upper.as_str()),
        ("operator key", OPERATOR_KEY),
        ("malformed tollgate key", "tg-not-a-key"),
    ];
    for (case, key) in cases {
        let response = post_chat(&harness, Some(key), Some("cust_a")).await;
        assert_unauthorized(response, Some(key), case).await;
    }

    let basic = harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("Authorization", format!("Basic {GLOBAL_KEY}"))
        .header("X-Customer-Id", "cust_a")
        .json(&chat_body())
        .send()
        .await
        .expect("answer");
    assert_unauthorized(basic, Some(GLOBAL_KEY), "Basic scheme").await;

    assert!(
        harness
            .upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    harness.stop().await;
}

#[tokio::test]
async fn keys_file_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("client-keys");
    let text =
        format!("# billing service\n{GLOBAL_KEY}   # added for tests\n\n{OTHER_GLOBAL_KEY}\n");
    std::fs::write(&file, text).expect("write keys file");
    let harness = start(vec![(
        "TOLLGATE_CLIENT_KEYS_FILE",
        file.display().to_string(),
    )])
    .await;
    harness.postpaid("cust_a").await;

    for key in [GLOBAL_KEY, OTHER_GLOBAL_KEY] {
        let response = post_chat(&harness, Some(key), Some("cust_a")).await;
        assert_eq!(response.status(), 200, "{key}");
    }
    let response = post_chat(&harness, Some("client-key-charlie-0003"), Some("cust_a")).await;
    assert_unauthorized(
        response,
        Some("client-key-charlie-0003"),
        "key not in the file",
    )
    .await;
    harness.stop().await;
}

#[tokio::test]
async fn customer_key_bills_its_own_customer() {
    let harness = start(Vec::new()).await;
    let owner = harness.postpaid("cust_owner").await;
    let other = harness.postpaid("cust_other").await;
    let (_, key) = mint_key(&harness, "cust_owner").await;

    let response = post_chat(&harness, Some(&key), Some("cust_other")).await;
    assert_eq!(response.status(), 200);
    let source = usd_source(&harness, &response);
    assert_eq!(source, owner.usd_balance_id, "billed to the key's customer");
    assert_ne!(source, other.usd_balance_id);

    let response = post_chat(&harness, Some(&key), None).await;
    assert_eq!(response.status(), 200, "no customer header needed");
    assert_eq!(usd_source(&harness, &response), owner.usd_balance_id);

    let forwarded = harness
        .upstream
        .received_requests()
        .await
        .unwrap_or_default();
    assert_eq!(forwarded.len(), 2);
    for request in forwarded {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {OPERATOR_KEY}").as_str()
        );
        assert!(!request.headers.contains_key("x-customer-id"));
    }
    harness.stop().await;
}

#[tokio::test]
async fn customer_key_works_beside_global_keys() {
    let harness = start(with_global_keys()).await;
    let owner = harness.postpaid("cust_owner").await;
    harness.postpaid("cust_other").await;
    let (_, key) = mint_key(&harness, "cust_owner").await;

    let response = post_chat(&harness, Some(&key), Some("cust_other")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(usd_source(&harness, &response), owner.usd_balance_id);
    harness.stop().await;
}

#[tokio::test]
async fn customer_key_with_wrong_secret_is_rejected() {
    let harness = start(Vec::new()).await;
    harness.postpaid("cust_owner").await;
    let (key_id, key) = mint_key(&harness, "cust_owner").await;

    let forged = format!("tg-{key_id}-{}", "0".repeat(64));
    assert_ne!(forged, key);
    let response = post_chat(&harness, Some(&forged), Some("cust_owner")).await;
    assert_unauthorized(response, Some(&forged), "right id, wrong secret").await;

    let unknown = format!("tg-{}-{}", "f".repeat(16), &key[20..]);
    let response = post_chat(&harness, Some(&unknown), Some("cust_owner")).await;
    assert_unauthorized(response, Some(&unknown), "unknown id").await;
    harness.stop().await;
}

#[tokio::test]
async fn revoked_key_is_rejected() {
    let harness = start(vec![("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s".into())]).await;
    harness.postpaid("cust_owner").await;
    let (key_id, key) = mint_key(&harness, "cust_owner").await;
    assert_eq!(post_chat(&harness, Some(&key), None).await.status(), 200);

    let revoked = key_admin(&harness).revoke(&key_id).await.expect("revoked");
    assert_eq!(revoked.customer_ids, ["cust_owner"]);
    assert!(!revoked.already_revoked);

    let response = post_chat(&harness, Some(&key), Some("cust_owner")).await;
    assert_unauthorized(response, Some(&key), "revoked key").await;

    let again = key_admin(&harness)
        .revoke(&key_id)
        .await
        .expect("second revoke");
    assert!(again.already_revoked);
    harness.stop().await;
}

#[tokio::test]
async fn revocation_applies_after_cache_ttl() {
    let harness = start(vec![("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "1s".into())]).await;
    harness.postpaid("cust_owner").await;
    let (key_id, key) = mint_key(&harness, "cust_owner").await;
    assert_eq!(post_chat(&harness, Some(&key), None).await.status(), 200);

    key_admin(&harness).revoke(&key_id).await.expect("revoked");
    let cached = post_chat(&harness, Some(&key), None).await;
    assert_eq!(
        cached.status(),
        200,
        "the cached record is used within the TTL"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = post_chat(&harness, Some(&key), None).await;
    assert_unauthorized(response, Some(&key), "revoked key after the TTL").await;
    harness.stop().await;
}

#[tokio::test]
async fn required_key_rejects_header_only_requests() {
    let harness = start(vec![("TOLLGATE_REQUIRE_CLIENT_KEY", "true".into())]).await;
    harness.postpaid("cust_owner").await;
    let (_, key) = mint_key(&harness, "cust_owner").await;

    let response = post_chat(&harness, None, Some("cust_owner")).await;
    assert_unauthorized(response, None, "header only").await;
    let response = post_chat(
        &harness,
        Some("sk-client-test-0123456789"),
        Some("cust_owner"),
    )
    .await;
    assert_unauthorized(
        response,
        Some("sk-client-test-0123456789"),
        "not a tollgate key",
    )
    .await;

    assert_eq!(post_chat(&harness, Some(&key), None).await.status(), 200);
    harness.stop().await;
}

#[tokio::test]
async fn customer_key_without_upstream_key_is_refused() {
    let harness = start(vec![("OPENAI_API_KEY", String::new())]).await;
    harness.postpaid("cust_owner").await;
    let (_, key) = mint_key(&harness, "cust_owner").await;

    let response = post_chat(&harness, Some(&key), None).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let text = response.text().await.expect("body");
    assert!(!text.contains(&key), "{text}");
    let error: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(error["error"]["code"], "upstream_key_missing");
    assert!(
        harness
            .upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    harness.stop().await;
}

#[tokio::test]
async fn pass_through_routes_need_a_key() {
    let harness = start(with_global_keys()).await;
    harness.postpaid("cust_owner").await;
    let (_, customer_key) = mint_key(&harness, "cust_owner").await;
    let models = format!("{}/v1/models", harness.url);

    let anonymous = harness.http().get(&models).send().await.expect("answer");
    assert_unauthorized(anonymous, None, "models without a key").await;

    for key in [GLOBAL_KEY, customer_key.as_str()] {
        let response = harness
            .http()
            .get(&models)
            .bearer_auth(key)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
    }
    harness.stop().await;
}

#[tokio::test]
async fn key_operations_report_unknown_targets() {
    let harness = start(Vec::new()).await;
    let admin = key_admin(&harness);

    let nobody = CustomerId::parse("nobody").expect("id");
    let error = admin.create(&nobody).await.expect_err("unknown customer");
    assert!(
        matches!(error, KeyAdminError::UnknownCustomer(_)),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("tollgate customer create nobody"),
        "{error}"
    );

    let missing = KeyId::parse("0123456789abcdef").expect("id");
    let error = admin.revoke(&missing).await.expect_err("unknown key");
    assert!(matches!(error, KeyAdminError::UnknownKey(_)), "{error}");
    harness.stop().await;
}

#[tokio::test]
async fn key_list_shows_status() {
    let harness = start(Vec::new()).await;
    let created = harness.postpaid("cust_owner").await;
    let (first, _) = mint_key(&harness, "cust_owner").await;
    let (second, _) = mint_key(&harness, "cust_owner").await;
    let admin = key_admin(&harness);
    admin.revoke(&first).await.expect("revoked");

    let customer = CustomerId::parse("cust_owner").expect("id");
    let listed = admin.list(&customer).await.expect("listed");
    assert_eq!(listed.len(), 2);
    for key in &listed {
        let expected = if key.key_id == first.as_str() {
            "revoked"
        } else {
            "active"
        };
        assert_eq!(key.status, expected, "{}", key.key_id);
    }
    assert!(listed.iter().any(|key| key.key_id == second.as_str()));

    let balance = harness.blnk.balance(&created.usd_balance_id);
    for value in balance.meta_data.values() {
        let text = value.to_string();
        assert!(
            !text.contains("tg-"),
            "a key is stored in plain text: {text}"
        );
    }
    harness.stop().await;
}

/// Runs the `tollgate` binary against the harness's fake Blnk with a clean environment.
async fn run_cli(harness: &Harness, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("BLNK_URL", harness.blnk.url())
        .env("OPENAI_API_KEY", "sk-operator-cli")
        .env("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s")
        .output()
        .await
        .expect("tollgate runs")
}

#[tokio::test]
async fn key_commands_create_list_and_revoke() {
    let harness = start(vec![("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "0s".into())]).await;
    harness.postpaid("cust_cli").await;

    let created = run_cli(&harness, &["key", "create", "cust_cli"]).await;
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(created.status.success(), "{stderr}");
    let key = String::from_utf8(created.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    let key_id = tollgate::auth::parse_key(&key).expect("stdout holds exactly the key");
    assert!(stderr.contains(key_id.as_str()), "{stderr}");
    assert!(!stderr.contains(&key), "stderr repeats the key: {stderr}");

    assert_eq!(post_chat(&harness, Some(&key), None).await.status(), 200);

    let listed = run_cli(&harness, &["key", "list", "cust_cli"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains(&format!("{key_id}  active")), "{listed}");

    let revoked = run_cli(&harness, &["key", "revoke", key_id.as_str()]).await;
    let stdout = String::from_utf8_lossy(&revoked.stdout).into_owned();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(stdout.contains("revoked key"), "{stdout}");

    let response = post_chat(&harness, Some(&key), None).await;
    assert_unauthorized(response, Some(&key), "revoked through the CLI").await;

    let whole_key = run_cli(&harness, &["key", "revoke", &key]).await;
    assert_eq!(
        whole_key.status.code(),
        Some(2),
        "a whole key is a usage error"
    );
    let stderr = String::from_utf8_lossy(&whole_key.stderr).into_owned();
    assert!(
        !stderr.contains(&key[20..]),
        "the secret is echoed: {stderr}"
    );
    harness.stop().await;
}
