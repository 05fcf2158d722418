//! The official OpenAI SDKs for Python and Node as tollgate's clients.
//!
//! Each test starts tollgate against a wiremock upstream and the fake Blnk, then runs
//! clients/python/client_test.py or clients/node/client_test.mjs for one scenario. It checks
//! what the SDK observed and what the ledger recorded: one USD leg and one TOKENS leg with
//! the exact amounts, and no hold left open.
//!
//! The SDKs are found through two variables that `.ci/run` exports after installing them:
//! `TOLLGATE_TEST_PYTHON`, a Python interpreter with the pinned `openai` package, and
//! `TOLLGATE_TEST_NODE_DIR`, the clients/node directory after `npm ci`. When one is unset the
//! tests of that SDK print a notice and pass, except under `CI=true`, where they fail.

#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test on a broken setup"
)]

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use tollgate::customers::Created;
use tollgate::ledger::{BlnkClient, Filter, Transaction, TransactionQuery, TransactionStatus};

use support::harness::Harness;

/// Maximum run time of one client script, interpreter start included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Maximum time for a charge or a hold release to show in the fake Blnk.
const LEDGER_WAIT: Duration = Duration::from_secs(10);

/// The key tollgate sends upstream in place of the client's `sk-client-test`.
const OPERATOR_KEY: &str = "Bearer sk-operator-test";

const PROMPT: &str = "Say hello.";

#[derive(Clone, Copy, Debug)]
enum Sdk {
    Python,
    Node,
}

/// The scenarios of the client scripts, named as the scripts name them.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    Chat,
    ChatStream,
    ChatStreamUsage,
    Responses,
    ResponsesStream,
    Embeddings,
    Completions,
    CompletionsStream,
    InsufficientFunds,
}

/// How the scenario's customer pays.
enum Terms {
    /// Prepaid, topped up with this many USD.
    Prepaid(&'static str),
    /// Postpaid without a credit limit, so no hold is placed.
    Postpaid,
}

/// What one scenario's upstream sends and what the SDK and the ledger must show for it.
struct Case {
    route: &'static str,
    /// A fragment the body that tollgate forwards upstream must contain.
    forwarded: Value,
    /// The upstream response, or `None` when tollgate must not call upstream at all.
    upstream: Option<ResponseTemplate>,
    terms: Terms,
    expected: Expected,
}

/// What the client script must report, and the charge the ledger must hold.
#[derive(Default)]
struct Expected {
    status: u16,
    text: Option<&'static str>,
    embedding: Option<Value>,
    /// The usage object as the SDK exposes it, or `Value::Null` when it must see none.
    usage: Value,
    streamed: bool,
    charge: Option<Charge>,
}

/// One metered request's charge: the USD leg in nano-dollars and the TOKENS leg.
#[derive(Clone, Copy)]
struct Charge {
    cost_usd: &'static str,
    nanos: i128,
    tokens: i128,
}

impl Sdk {
    fn name(self) -> &'static str {
        match self {
            Sdk::Python => "python",
            Sdk::Node => "node",
        }
    }

    /// Builds the command that runs this SDK's client script. Returns `None` when the SDK is
    /// not installed and the tests may skip it.
    fn command(self) -> Option<Command> {
        match self {
            Sdk::Python => {
                let python = sdk_setting(self, "TOLLGATE_TEST_PYTHON")?;
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/client_test.py");
                let mut command = Command::new(python);
                command.arg(script);
                Some(command)
            }
            Sdk::Node => {
                let directory = PathBuf::from(sdk_setting(self, "TOLLGATE_TEST_NODE_DIR")?);
                let mut command = Command::new("node");
                command
                    .arg(directory.join("client_test.mjs"))
                    .current_dir(&directory);
                Some(command)
            }
        }
    }
}

/// Reads the variable that locates an SDK. Unset, it fails the test under `CI=true` and
/// otherwise prints a notice, once per SDK, that the SDK's tests were skipped.
fn sdk_setting(sdk: Sdk, variable: &str) -> Option<String> {
    if let Some(value) = std::env::var_os(variable).filter(|value| !value.is_empty()) {
        return Some(value.to_string_lossy().into_owned());
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !in_ci,
        "{variable} is unset, but CI=true and the {} SDK client tests must run in CI; \
         run `bash .ci/run`, which installs the SDK and exports {variable}",
        sdk.name()
    );
    static PYTHON_NOTICE: Once = Once::new();
    static NODE_NOTICE: Once = Once::new();
    let notice = match sdk {
        Sdk::Python => &PYTHON_NOTICE,
        Sdk::Node => &NODE_NOTICE,
    };
    notice.call_once(|| {
        // Written to the process's stderr directly, because the test harness captures
        // `eprintln!` output and shows it only for failed tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** NOTICE: the {} SDK client tests in tests/sdk_clients.rs were SKIPPED: {variable} \
             is unset. Run `bash .ci/run` to install the pinned SDKs and run them. ***\n",
            sdk.name()
        );
    });
    None
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Chat => "chat",
            Scenario::ChatStream => "chat_stream",
            Scenario::ChatStreamUsage => "chat_stream_usage",
            Scenario::Responses => "responses",
            Scenario::ResponsesStream => "responses_stream",
            Scenario::Embeddings => "embeddings",
            Scenario::Completions => "completions",
            Scenario::CompletionsStream => "completions_stream",
            Scenario::InsufficientFunds => "insufficient_funds",
        }
    }

    fn case(self) -> Case {
        match self {
            Scenario::Chat => chat_case(),
            Scenario::ChatStream => chat_stream_case(false),
            Scenario::ChatStreamUsage => chat_stream_case(true),
            Scenario::Responses => responses_case(),
            Scenario::ResponsesStream => responses_stream_case(),
            Scenario::Embeddings => embeddings_case(),
            Scenario::Completions => completions_case(),
            Scenario::CompletionsStream => completions_stream_case(),
            Scenario::InsufficientFunds => insufficient_funds_case(),
        }
    }
}

// Upstream responses, shaped as OpenAI's API reference shows them. Prices come from the
// shipped pricing.toml, in USD per 1M tokens. gpt-4o-mini costs 0.15 input, 0.075 cached input
// and 0.60 output. gpt-3.5-turbo-instruct costs 1.50 and 2.00, text-embedding-3-small 0.02.

fn sse(events: &[String]) -> ResponseTemplate {
    let body: String = events.iter().map(|event| format!("{event}\n\n")).collect();
    ResponseTemplate::new(200)
        .insert_header("x-request-id", "req_upstream")
        .set_body_raw(body, "text/event-stream")
}

fn data(value: &Value) -> String {
    format!("data: {value}")
}

fn json_response(body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-request-id", "req_upstream")
        .set_body_json(body)
}

fn chat_case() -> Case {
    // 1000 uncached at 0.15, 1000 cached at 0.075 and 500 output at 0.60 USD per 1M tokens:
    // 150000 + 75000 + 300000 nano-dollars.
    let usage = json!({
        "prompt_tokens": 2000,
        "completion_tokens": 500,
        "total_tokens": 2500,
        "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    });
    let body = json!({
        "id": "chatcmpl-sdk",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_sdk",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from upstream.", "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": usage
    });
    Case {
        route: "/v1/chat/completions",
        forwarded: json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}),
        upstream: Some(json_response(&body)),
        terms: Terms::Prepaid("5"),
        expected: Expected {
            status: 200,
            text: Some("Hello from upstream."),
            usage,
            charge: Some(Charge {
                cost_usd: "0.000525",
                nanos: 525_000,
                tokens: 2500,
            }),
            ..Expected::default()
        },
    }
}

fn chat_chunk(delta: &Value, finish_reason: Option<&str>) -> String {
    data(&json!({
        "id": "chatcmpl-sdk-stream",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_sdk",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null
    }))
}

/// A chat stream whose upstream always ends with the usage-only chunk, because tollgate
/// requests it. The SDK receives that chunk only when `client_asks_usage`.
fn chat_stream_case(client_asks_usage: bool) -> Case {
    // 12 input at 0.15 and 2 output at 0.60 USD per 1M tokens: 1800 + 1200 nano-dollars.
    let usage = json!({
        "prompt_tokens": 12,
        "completion_tokens": 2,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
    });
    let usage_chunk = json!({
        "id": "chatcmpl-sdk-stream",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_sdk",
        "choices": [],
        "usage": usage
    });
    let events = [
        chat_chunk(&json!({"role": "assistant", "content": ""}), None),
        chat_chunk(&json!({"content": "Hel"}), None),
        chat_chunk(&json!({"content": "lo"}), None),
        chat_chunk(&json!({}), Some("stop")),
        data(&usage_chunk),
        "data: [DONE]".to_string(),
    ];
    Case {
        route: "/v1/chat/completions",
        forwarded: json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}}),
        upstream: Some(sse(&events)),
        terms: if client_asks_usage {
            Terms::Postpaid
        } else {
            Terms::Prepaid("5")
        },
        expected: Expected {
            status: 200,
            text: Some("Hello"),
            usage: if client_asks_usage {
                usage
            } else {
                Value::Null
            },
            streamed: true,
            charge: Some(Charge {
                cost_usd: "0.000003",
                nanos: 3000,
                tokens: 14,
            }),
            ..Expected::default()
        },
    }
}

fn response_object(status: &str, text: Option<&str>, usage: &Value) -> Value {
    let output = match text {
        Some(text) => json!([{
            "type": "message",
            "id": "msg_sdk",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        }]),
        None => json!([]),
    };
    json!({
        "id": "resp_sdk",
        "object": "response",
        "created_at": 1_767_225_600,
        "status": status,
        "model": "gpt-4o-mini-2024-07-18",
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage
    })
}

fn responses_case() -> Case {
    // 60 uncached at 0.15, 40 cached at 0.075 and 50 output at 0.60 USD per 1M tokens:
    // 9000 + 3000 + 30000 nano-dollars.
    let usage = json!({
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 10},
        "total_tokens": 150
    });
    Case {
        route: "/v1/responses",
        forwarded: json!({"model": "gpt-4o-mini", "input": PROMPT}),
        upstream: Some(json_response(&response_object(
            "completed",
            Some("Hello from upstream."),
            &usage,
        ))),
        terms: Terms::Postpaid,
        expected: Expected {
            status: 200,
            text: Some("Hello from upstream."),
            usage,
            charge: Some(Charge {
                cost_usd: "0.000042",
                nanos: 42_000,
                tokens: 150,
            }),
            ..Expected::default()
        },
    }
}

fn responses_event(kind: &str, sequence_number: u64, mut fields: Value) -> String {
    fields["type"] = json!(kind);
    fields["sequence_number"] = json!(sequence_number);
    format!("event: {kind}\ndata: {fields}")
}

fn responses_stream_case() -> Case {
    // 20 input at 0.15 and 10 output at 0.60 USD per 1M tokens: 3000 + 6000 nano-dollars.
    let usage = json!({
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 30
    });
    let part = json!({"item_id": "msg_sdk", "output_index": 0, "content_index": 0});
    let delta = |sequence_number: u64, text: &str| {
        let mut fields = part.clone();
        fields["delta"] = json!(text);
        fields["logprobs"] = json!([]);
        responses_event("response.output_text.delta", sequence_number, fields)
    };
    let mut done = part.clone();
    done["text"] = json!("Hello there");
    done["logprobs"] = json!([]);
    let events = [
        responses_event(
            "response.created",
            0,
            json!({"response": response_object("in_progress", None, &Value::Null)}),
        ),
        delta(1, "Hello"),
        delta(2, " there"),
        responses_event("response.output_text.done", 3, done),
        responses_event(
            "response.completed",
            4,
            json!({"response": response_object("completed", Some("Hello there"), &usage)}),
        ),
    ];
    Case {
        route: "/v1/responses",
        forwarded: json!({"model": "gpt-4o-mini", "stream": true}),
        upstream: Some(sse(&events)),
        terms: Terms::Prepaid("5"),
        expected: Expected {
            status: 200,
            text: Some("Hello there"),
            usage,
            streamed: true,
            charge: Some(Charge {
                cost_usd: "0.000009",
                nanos: 9000,
                tokens: 30,
            }),
            ..Expected::default()
        },
    }
}

fn embeddings_case() -> Case {
    // 8 input tokens at 0.02 USD per 1M: 160 nano-dollars.
    let usage = json!({"prompt_tokens": 8, "total_tokens": 8});
    // Both SDKs request base64 when the caller names no encoding_format, then decode it. This
    // is [0.5, -0.25, 0.125] as little-endian float32, values that survive the round trip.
    let body = json!({
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": "AAAAPwAAgL4AAAA+"}],
        "usage": usage
    });
    Case {
        route: "/v1/embeddings",
        forwarded: json!({"model": "text-embedding-3-small", "input": PROMPT, "encoding_format": "base64"}),
        upstream: Some(json_response(&body)),
        terms: Terms::Postpaid,
        expected: Expected {
            status: 200,
            embedding: Some(json!([0.5, -0.25, 0.125])),
            usage,
            charge: Some(Charge {
                cost_usd: "0.00000016",
                nanos: 160,
                tokens: 8,
            }),
            ..Expected::default()
        },
    }
}

fn completion_object(text: &str, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "cmpl-sdk",
        "object": "text_completion",
        "created": 1_767_225_600,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason}]
    })
}

fn completions_case() -> Case {
    // 5 input at 1.50 and 7 output at 2.00 USD per 1M tokens: 7500 + 14000 nano-dollars.
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
    let mut body = completion_object("Hello from upstream.", Some("stop"));
    body["usage"] = usage.clone();
    Case {
        route: "/v1/completions",
        forwarded: json!({"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT}),
        upstream: Some(json_response(&body)),
        terms: Terms::Prepaid("5"),
        expected: Expected {
            status: 200,
            text: Some("Hello from upstream."),
            usage,
            charge: Some(Charge {
                cost_usd: "0.0000215",
                nanos: 21_500,
                tokens: 12,
            }),
            ..Expected::default()
        },
    }
}

fn completions_stream_case() -> Case {
    // 4 input at 1.50 and 3 output at 2.00 USD per 1M tokens: 6000 + 6000 nano-dollars.
    let mut usage_chunk = completion_object("", None);
    usage_chunk["choices"] = json!([]);
    usage_chunk["usage"] = json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7});
    let events = [
        data(&completion_object("Hel", None)),
        data(&completion_object("lo", Some("stop"))),
        data(&usage_chunk),
        "data: [DONE]".to_string(),
    ];
    Case {
        route: "/v1/completions",
        forwarded: json!({"model": "gpt-3.5-turbo-instruct", "stream": true, "stream_options": {"include_usage": true}}),
        upstream: Some(sse(&events)),
        terms: Terms::Prepaid("5"),
        expected: Expected {
            status: 200,
            text: Some("Hello"),
            usage: Value::Null,
            streamed: true,
            charge: Some(Charge {
                cost_usd: "0.000012",
                nanos: 12_000,
                tokens: 7,
            }),
            ..Expected::default()
        },
    }
}

fn insufficient_funds_case() -> Case {
    // The script sets max_tokens to 100, so the quote is at least 100 output tokens at 0.60
    // USD per 1M tokens, 60 times the wallet's one micro-dollar.
    Case {
        route: "/v1/chat/completions",
        forwarded: json!({}),
        upstream: None,
        terms: Terms::Prepaid("0.000001"),
        expected: Expected {
            status: 402,
            usage: Value::Null,
            ..Expected::default()
        },
    }
}

/// Runs one scenario with one SDK and checks the client's report and the ledger.
async fn run(sdk: Sdk, scenario: Scenario) {
    let Some(command) = sdk.command() else {
        return;
    };
    let case = scenario.case();
    let harness = Harness::start().await;
    mount_upstream(&harness, &case).await;

    let customer = format!("sdk-{}-{}", sdk.name(), scenario.name().replace('_', "-"));
    let created = match case.terms {
        Terms::Prepaid(funds) => harness.prepaid(&customer, funds).await,
        Terms::Postpaid => harness.postpaid(&customer).await,
    };

    let report = run_client(command, sdk, scenario, &harness, &customer, &case.expected).await;
    check_report(&report, sdk, scenario, &case.expected);
    check_ledger(&harness, &customer, &created, &report, &case.expected).await;

    harness.upstream.verify().await;
    harness.stop().await;
}

async fn mount_upstream(harness: &Harness, case: &Case) {
    match &case.upstream {
        Some(response) => {
            Mock::given(method("POST"))
                .and(path(case.route))
                .and(header("authorization", OPERATOR_KEY))
                .and(body_partial_json(&case.forwarded))
                .respond_with(response.clone())
                .expect(1)
                .named(format!("upstream {}", case.route))
                .mount(&harness.upstream)
                .await;
        }
        None => {
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(500))
                .expect(0)
                .named("upstream, which tollgate must not call")
                .mount(&harness.upstream)
                .await;
        }
    }
}

/// Builds the observations the script checks itself, so a mismatch fails with the SDK's view.
fn expectations(expected: &Expected) -> Value {
    let mut expect = json!({});
    if let Some(text) = expected.text {
        expect["text"] = json!(text);
    }
    if let Some(embedding) = &expected.embedding {
        expect["embedding"] = embedding.clone();
    }
    if !expected.usage.is_null() {
        expect["usage"] = expected.usage.clone();
    }
    if let Some(charge) = expected.charge.filter(|_| !expected.streamed) {
        expect["cost_usd"] = json!(charge.cost_usd);
    }
    expect
}

/// Runs the client script against tollgate and returns the JSON line it printed.
async fn run_client(
    mut command: Command,
    sdk: Sdk,
    scenario: Scenario,
    harness: &Harness,
    customer: &str,
    expected: &Expected,
) -> Value {
    // The scripts must reach only the loopback tollgate: no proxy, and none of the OPENAI_*
    // settings of the developer's shell (base URL, key, custom headers).
    for (name, _) in std::env::vars_os() {
        if name
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("OPENAI_")
        {
            command.env_remove(&name);
        }
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("TOLLGATE_BASE_URL", format!("{}/v1", harness.url))
        .env("TOLLGATE_CUSTOMER", customer)
        .env("TOLLGATE_SCENARIO", scenario.name())
        .env("TOLLGATE_EXPECT", expectations(expected).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);

    let child = command.spawn().unwrap_or_else(|error| {
        panic!(
            "the {} client script could not be started: {error}",
            sdk.name()
        )
    });
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the {} client script ran longer than {CLIENT_TIMEOUT:?}",
                sdk.name()
            )
        })
        .expect("the client script's output is readable");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {} client script failed in scenario {} with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        sdk.name(),
        scenario.name(),
        output.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!("the {} client script printed no JSON line ({error})\nstdout:\n{stdout}\nstderr:\n{stderr}", sdk.name())
    })
}

fn check_report(report: &Value, sdk: Sdk, scenario: Scenario, expected: &Expected) {
    assert_eq!(report["sdk"], sdk.name(), "report: {report}");
    assert_eq!(report["scenario"], scenario.name(), "report: {report}");
    assert_eq!(report["status"], expected.status, "report: {report}");
    if let Some(text) = expected.text {
        assert_eq!(report["text"], text, "report: {report}");
    }
    if let Some(embedding) = &expected.embedding {
        assert_eq!(&report["embedding"], embedding, "report: {report}");
    }
    assert_eq!(report["usage"], expected.usage, "report: {report}");

    let headers = &report["headers"];
    let request_id = headers["x-tollgate-request-id"]
        .as_str()
        .unwrap_or_else(|| panic!("no x-tollgate-request-id in the report: {report}"));
    let request_id = uuid::Uuid::parse_str(request_id).expect("x-tollgate-request-id is a UUID");
    assert_eq!(
        request_id.get_version_num(),
        7,
        "x-tollgate-request-id is a UUIDv7"
    );

    if expected.streamed {
        assert_eq!(
            headers["content-type"], "text/event-stream",
            "report: {report}"
        );
    } else if let Some(charge) = expected.charge {
        assert_eq!(
            headers["x-tollgate-cost-usd"], charge.cost_usd,
            "report: {report}"
        );
        assert_eq!(headers["x-tollgate-charge"], "recorded", "report: {report}");
    }

    if expected.status == 402 {
        assert_eq!(
            report["error"]["code"], "insufficient_funds",
            "report: {report}"
        );
        assert_eq!(
            report["error"]["type"], "insufficient_quota",
            "report: {report}"
        );
        assert_eq!(headers["x-should-retry"], "false", "report: {report}");
    }
}

/// Checks that the ledger contains exactly the expected charge for `customer`, or none, and
/// that no hold is left open.
async fn check_ledger(
    harness: &Harness,
    customer: &str,
    created: &Created,
    report: &Value,
    expected: &Expected,
) {
    let blnk = harness.operations().blnk;
    let request_id = report["headers"]["x-tollgate-request-id"]
        .as_str()
        .expect("request id");

    if let Some(charge) = expected.charge {
        let usd = wait_for_reference(&blnk, &format!("tg:{request_id}:usd")).await;
        assert_eq!(usd.status, TransactionStatus::Applied, "USD leg: {usd:?}");
        assert_eq!(
            usd.precise_amount, charge.nanos,
            "USD leg in nano-dollars: {usd:?}"
        );
        assert_eq!(usd.source, created.usd_balance_id, "USD leg: {usd:?}");
        let meta = &usd.meta_data;
        assert_eq!(
            meta.get("tollgate_customer_id"),
            Some(&json!(customer)),
            "USD leg: {usd:?}"
        );
        assert_eq!(
            meta.get("cost_usd"),
            Some(&json!(charge.cost_usd)),
            "USD leg: {usd:?}"
        );
        assert_eq!(
            meta.get("stream"),
            Some(&json!(expected.streamed)),
            "USD leg: {usd:?}"
        );

        let tokens = wait_for_reference(&blnk, &format!("tg:{request_id}:tokens")).await;
        assert_eq!(
            tokens.status,
            TransactionStatus::Applied,
            "TOKENS leg: {tokens:?}"
        );
        assert_eq!(
            tokens.precise_amount, charge.tokens,
            "TOKENS leg: {tokens:?}"
        );
        assert_eq!(
            tokens.source, created.tokens_balance_id,
            "TOKENS leg: {tokens:?}"
        );
    }

    let (usd_legs, tokens_legs) = applied_charge_legs(&blnk, customer).await;
    let charge = expected.charge;
    assert_eq!(
        usd_legs,
        charge.map(|c| c.nanos).into_iter().collect::<Vec<_>>(),
        "applied USD legs"
    );
    assert_eq!(
        tokens_legs,
        charge.map(|c| c.tokens).into_iter().collect::<Vec<_>>(),
        "applied TOKENS legs"
    );

    let wallet = wait_for_released_holds(&blnk, &created.usd_balance_id).await;
    assert_eq!(
        wallet.debit_balance,
        charge.map_or(0, |c| c.nanos),
        "wallet debits: {wallet:?}"
    );
    let tokens = blnk
        .get_balance(&created.tokens_balance_id)
        .await
        .expect("TOKENS balance");
    assert_eq!(
        tokens.debit_balance,
        charge.map_or(0, |c| c.tokens),
        "TOKENS debits: {tokens:?}"
    );
}

/// Waits for the transaction with `reference`. A charge can still be on its way when the
/// SDK returns, if tollgate responded with `x-tollgate-charge: pending`.
async fn wait_for_reference(blnk: &BlnkClient, reference: &str) -> Transaction {
    let deadline = tokio::time::Instant::now() + LEDGER_WAIT;
    loop {
        let found = blnk
            .transaction_by_reference(reference)
            .await
            .expect("Blnk returns the transaction or 404");
        if let Some(transaction) = found {
            return transaction;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transaction with reference {reference} after {LEDGER_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no hold is open on the balance, since tollgate releases holds after
/// responding, and returns the balance.
async fn wait_for_released_holds(blnk: &BlnkClient, balance_id: &str) -> tollgate::ledger::Balance {
    let deadline = tokio::time::Instant::now() + LEDGER_WAIT;
    loop {
        let balance = blnk.get_balance(balance_id).await.expect("wallet balance");
        if balance.inflight_debit_balance == 0 {
            return balance;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a hold is still open on the wallet after {LEDGER_WAIT:?}: {balance:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lists the amounts of the customer's applied USD and TOKENS charge legs.
async fn applied_charge_legs(blnk: &BlnkClient, customer: &str) -> (Vec<i128>, Vec<i128>) {
    let query = TransactionQuery::new(vec![Filter::eq("meta_data.tollgate_customer_id", customer)]);
    let rows = blnk
        .filter_transactions(&query)
        .await
        .expect("Blnk filters transactions");
    let mut usd = Vec::new();
    let mut tokens = Vec::new();
    for row in rows
        .iter()
        .filter(|row| row.status == TransactionStatus::Applied)
    {
        match row.meta_data.get("tollgate_leg").and_then(Value::as_str) {
            Some("usd") => usd.push(row.precise_amount),
            Some("tokens") => tokens.push(row.precise_amount),
            _ => {}
        }
    }
    (usd, tokens)
}

/// One test per scenario for an SDK, in a module named after the SDK.
macro_rules! sdk_tests {
    ($module:ident, $sdk:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chat_completion_is_billed() {
                run($sdk, Scenario::Chat).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chat_stream_hides_usage_chunk() {
                run($sdk, Scenario::ChatStream).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chat_stream_keeps_requested_usage() {
                run($sdk, Scenario::ChatStreamUsage).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn response_is_billed() {
                run($sdk, Scenario::Responses).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn response_stream_is_billed() {
                run($sdk, Scenario::ResponsesStream).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn base64_embedding_is_billed() {
                run($sdk, Scenario::Embeddings).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn legacy_completion_is_billed() {
                run($sdk, Scenario::Completions).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn legacy_stream_hides_usage_chunk() {
                run($sdk, Scenario::CompletionsStream).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unfunded_customer_gets_402() {
                run($sdk, Scenario::InsufficientFunds).await;
            }
        }
    };
}

sdk_tests!(python, Sdk::Python);
sdk_tests!(node, Sdk::Node);
