//! The admin API over HTTP on a loopback port: customers, terms, top-ups, payments, usage
//! and invoices end to end, bearer-token authentication, error statuses and messages, and
//! the OpenAPI document.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::blnk::Fault;
use support::harness::{Harness, Options};

const TOKEN: &str = "admin-test-token";

const PRICES: &str = r#"
[models."alpha"]
input = "2.00"
cached_input = "0.50"
output = "8.00"
max_output_tokens = 1000
"#;

/// A harness and its admin listener.
struct Admin {
    harness: Harness,
    url: String,
    http: reqwest::Client,
}

impl Admin {
    async fn start(token: Option<&str>) -> Admin {
        let mut env = Vec::new();
        if let Some(token) = token {
            env.push(("TOLLGATE_ADMIN_TOKEN", token.to_string()));
        }
        let harness = Harness::start_with(Options {
            env,
            pricing_toml: Some(PRICES.to_string()),
        })
        .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = tollgate::admin::router(Arc::clone(&harness.state));
        tollgate::task::spawn_named(
            "test-admin",
            async move { axum::serve(listener, app).await },
        );
        Admin {
            harness,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request with the admin token and returns the status and JSON body.
    async fn call(&self, method: Method, route: &str, body: Option<Value>) -> (u16, Value) {
        self.send(method, route, body, Some(TOKEN)).await
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{route}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin listener answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{route}: not JSON: {text:?}"));
        (status, json)
    }
}

/// A request (method, route, body) and the status, error code and message fragment it must get.
type ErrorCase = (
    Method,
    &'static str,
    Option<Value>,
    u16,
    &'static str,
    &'static str,
);

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn operator_flow_end_to_end() {
    let admin = Admin::start(Some(TOKEN)).await;
    let new_prepaid = json!({"id": "acme", "name": "Acme Inc", "billing": "prepaid"});
    let (status, created) = admin
        .call(Method::POST, "/admin/customers", Some(new_prepaid.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["billing"], "prepaid");
    let (status, again) = admin
        .call(Method::POST, "/admin/customers", Some(new_prepaid))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created_anything"], false);
    assert_eq!(again["usd_balance_id"], created["usd_balance_id"]);
    let new_postpaid = json!({"id": "bigco", "billing": "postpaid", "credit_limit_usd": "250"});
    let (status, _) = admin
        .call(Method::POST, "/admin/customers", Some(new_postpaid))
        .await;
    assert_eq!(status, 201);
    let (status, conflict) = admin
        .call(
            Method::POST,
            "/admin/customers",
            Some(json!({"id": "bigco", "billing": "prepaid"})),
        )
        .await;
    assert_eq!(status, 409, "{conflict}");
    assert!(
        message(&conflict).contains("PUT /admin/customers/bigco/terms"),
        "{conflict}"
    );

    let topup = json!({"amount_usd": "12.50", "reference": "dep-1"});
    let (status, funded) = admin
        .call(
            Method::POST,
            "/admin/customers/acme/topups",
            Some(topup.clone()),
        )
        .await;
    assert_eq!(status, 201, "{funded}");
    assert_eq!(funded["reference"], "tg:topup:acme:dep-1");
    assert_eq!(funded["amount_usd"], "12.5");
    let (status, repeated) = admin
        .call(Method::POST, "/admin/customers/acme/topups", Some(topup))
        .await;
    assert_eq!(status, 200);
    assert_eq!(repeated["already_recorded"], true);
    let (status, generated) = admin
        .call(
            Method::POST,
            "/admin/customers/acme/topups",
            Some(json!({"amount_usd": "0.5"})),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        generated["reference"]
            .as_str()
            .unwrap()
            .starts_with("tg:topup:acme:"),
        "{generated}"
    );

    // One metered request: (600 * 2 + 400 * 0.5 + 200 * 8) / 1e6 = $0.003.
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "alpha",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                  "prompt_tokens_details": {"cached_tokens": 400}},
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion))
        .mount(&admin.harness.upstream)
        .await;
    let response = admin
        .harness
        .http()
        .post(format!("{}/v1/chat/completions", admin.harness.url))
        .header("X-Customer-Id", "acme")
        .json(&json!({"model": "alpha", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let wallet = created["usd_balance_id"].as_str().unwrap().to_string();
    wait_until(|| admin.harness.blnk.balance(&wallet).inflight_debit_balance == 0).await;

    // The outbox marks the hold's and the charge's entries done after the response.
    let mut shown = Value::Null;
    for _ in 0..200 {
        let (status, body) = admin.call(Method::GET, "/admin/customers/acme", None).await;
        assert_eq!(status, 200, "{body}");
        shown = body;
        if shown["outbox"]["pending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(shown["balance_usd"], "12.997");
    assert_eq!(shown["held_usd"], "0");
    assert_eq!(shown["outbox"]["pending"], 0);
    assert_eq!(shown["outbox"]["dead"], 0);

    let (status, listed) = admin.call(Method::GET, "/admin/customers", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "bigco"]);
    assert_eq!(listed["customers"][0]["name"], "Acme Inc");
    assert_eq!(listed["customers"][1]["credit_limit_usd"], "250");

    let (status, terms) = admin
        .call(
            Method::PUT,
            "/admin/customers/acme/terms",
            Some(json!({"billing": "postpaid", "credit_limit_usd": "100"})),
        )
        .await;
    assert_eq!(status, 200, "{terms}");
    assert_eq!(terms["billing"], "postpaid");
    assert_eq!(terms["credit_limit_usd"], "100");
    let (status, paid) = admin
        .call(
            Method::POST,
            "/admin/customers/acme/payments",
            Some(json!({"amount_usd": "1.003", "reference": "inv-1"})),
        )
        .await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["reference"], "tg:pay:acme:inv-1");

    let period = "from=2000-01-01&to=2100-01-01T00:00:00Z";
    let (status, usage) = admin
        .call(
            Method::GET,
            &format!("/admin/customers/acme/usage?{period}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    let expected_line = json!({"model": "alpha", "requests": 1, "input_tokens": 1000, "cached_tokens": 400,
        "output_tokens": 200, "reasoning_tokens": 0, "amount_usd": "0.003"});
    assert_eq!(usage["usage"], json!([expected_line]));

    let (status, invoice) = admin
        .call(
            Method::GET,
            &format!("/admin/customers/acme/invoice?{period}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{invoice}");
    assert_eq!(invoice["usage"], json!([expected_line]));
    assert_eq!(invoice["opening_balance_usd"], "0");
    assert_eq!(invoice["credits_usd"], "14.003");
    assert_eq!(invoice["debits_usd"], "0.003");
    assert_eq!(invoice["closing_balance_usd"], "14");
    assert_eq!(invoice["amount_due_usd"], "0");
    assert_eq!(invoice["billing"], "postpaid");
    assert_eq!(invoice["topups"].as_array().unwrap().len(), 2);
    assert_eq!(invoice["payments"][0]["amount_usd"], "1.003");
}

#[tokio::test]
async fn token_is_required() {
    let admin = Admin::start(Some(TOKEN)).await;
    let (status, body) = admin
        .send(Method::GET, "/admin/customers", None, None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "missing_admin_token");
    assert!(message(&body).contains("Authorization: Bearer"), "{body}");
    let (status, body) = admin
        .send(Method::GET, "/admin/customers", None, Some("wrong-token"))
        .await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "invalid_admin_token");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(!message(&body).contains("wrong-token"), "{body}");
    let response = admin
        .http
        .get(format!("{}/admin/openapi.json", admin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let health = admin
        .http
        .get(format!("{}/healthz", admin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "probes need no token");
}

#[tokio::test]
async fn api_off_without_token() {
    let admin = Admin::start(None).await;
    for route in ["/admin/customers", "/admin/openapi.json", "/admin"] {
        let (status, body) = admin.call(Method::GET, route, None).await;
        assert_eq!(status, 404, "{route}");
        assert_eq!(code(&body), "admin_api_disabled", "{route}");
        assert!(message(&body).contains("TOLLGATE_ADMIN_TOKEN"), "{body}");
    }
    let health = admin
        .http
        .get(format!("{}/healthz", admin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn errors_have_status_by_cause() {
    let admin = Admin::start(Some(TOKEN)).await;
    let (status, _) = admin
        .call(
            Method::POST,
            "/admin/customers",
            Some(json!({"id": "acme", "billing": "postpaid"})),
        )
        .await;
    assert_eq!(status, 201);

    let cases: Vec<ErrorCase> = vec![
        (
            Method::GET,
            "/admin/customers/ghost",
            None,
            404,
            "unknown_customer",
            "customer ghost not found",
        ),
        (
            Method::GET,
            "/admin/customers/ghost/invoice?from=2026-01-01&to=2026-02-01",
            None,
            404,
            "unknown_customer",
            "ghost",
        ),
        (
            Method::GET,
            "/admin/customers/bad%20id",
            None,
            400,
            "invalid_customer_id",
            "invalid customer id",
        ),
        (
            Method::POST,
            "/admin/customers/acme/topups",
            Some(json!({"amount_usd": 12.5})),
            400,
            "invalid_amount",
            "not a JSON number",
        ),
        (
            Method::POST,
            "/admin/customers/acme/topups",
            Some(json!({"amount_usd": "-3"})),
            400,
            "invalid_amount",
            "greater than zero",
        ),
        (
            Method::POST,
            "/admin/customers/acme/topups",
            Some(json!({"amount": "3"})),
            400,
            "unknown_field",
            "amount_usd",
        ),
        (
            Method::POST,
            "/admin/customers/acme/payments",
            Some(json!({"amount_usd": "3"})),
            400,
            "missing_field",
            "reference",
        ),
        (
            Method::POST,
            "/admin/customers/acme/payments",
            Some(json!({"amount_usd": "3", "reference": "x_refund"})),
            400,
            "invalid_request",
            "invalid reference",
        ),
        (
            Method::PUT,
            "/admin/customers/acme/terms",
            Some(json!({"billing": "postpaid", "credit_limit_usd": 100})),
            400,
            "invalid_amount",
            "not a JSON number",
        ),
        (
            Method::PUT,
            "/admin/customers/acme/terms",
            Some(json!({"billing": "weekly"})),
            400,
            "invalid_terms",
            "\"prepaid\" or \"postpaid\"",
        ),
        (
            Method::GET,
            "/admin/customers/acme/invoice?from=2026-13-01&to=2026-02-01",
            None,
            400,
            "invalid_period",
            "invalid from date",
        ),
        (
            Method::GET,
            "/admin/customers/acme/invoice?from=2026-02-01&to=2026-01-01",
            None,
            400,
            "invalid_period",
            "must be before to",
        ),
        (
            Method::GET,
            "/admin/customers/acme/usage?from=2026-02-01&to=2026-02-01",
            None,
            400,
            "invalid_period",
            "must be before to",
        ),
        (
            Method::GET,
            "/admin/customers/acme/usage?from=2026-02-01",
            None,
            400,
            "invalid_period",
            "missing query parameter to",
        ),
        (
            Method::GET,
            "/admin/nothing-here",
            None,
            404,
            "unknown_route",
            "openapi.json",
        ),
        (
            Method::DELETE,
            "/admin/customers/acme",
            None,
            405,
            "method_not_allowed",
            "DELETE",
        ),
    ];
    for (verb, route, body, expected_status, expected_code, fragment) in cases {
        let (status, answer) = admin.call(verb.clone(), route, body).await;
        assert_eq!(status, expected_status, "{verb} {route}: {answer}");
        assert_eq!(code(&answer), expected_code, "{verb} {route}");
        assert!(
            message(&answer).contains(fragment),
            "{verb} {route}: {answer}"
        );
    }

    let response = admin
        .http
        .post(format!("{}/admin/customers", admin.url))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "invalid_json");
}

#[tokio::test]
async fn ledger_outage_is_503() {
    let admin = Admin::start(Some(TOKEN)).await;
    admin.harness.blnk.inject(Fault::Down);
    let (status, body) = admin.call(Method::GET, "/admin/customers/acme", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(code(&body), "ledger_unavailable");
    admin.harness.blnk.clear_faults();
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let admin = Admin::start(Some(TOKEN)).await;
    let (status, document) = admin.call(Method::GET, "/admin/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let routes = tollgate::admin::routes();
    assert_eq!(routes.len(), 10);
    for (verb, route) in routes {
        let operation = &document["paths"][route][verb.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{verb} {route} missing from the OpenAPI document"
        );
        // Each listed route is mounted, so it never gets the unknown-route or wrong-method error.
        let concrete = route.replace("{id}", "acme");
        let (_, body) = admin.call(verb.clone(), &concrete, Some(json!({}))).await;
        let answer = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            answer != "unknown_route" && answer != "method_not_allowed",
            "{verb} {route}: {body}"
        );
    }
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented, 10,
        "the document lists no route that is not mounted"
    );
}
