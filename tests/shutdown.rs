//! Graceful shutdown of the real binary: SIGTERM and SIGINT stop new connections, let an
//! open stream finish and be billed, flush the outbox and exit 0. A second signal exits at
//! once, and whatever was not finished resumes at the next start.

mod binary;
mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use binary::{Launch, Tollgate, create_customer};
use support::blnk::{FakeBlnk, Fault};
use support::cases::{Case, all_charge_legs, charge_of};
use support::stream_server::{Pace, Script, StreamServer};
use tollgate::accounts::Billing;

const STREAM_CASE: &str = "02-usage-chunk-forwarded-when-requested";

async fn post(tollgate: &Tollgate, customer: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", tollgate.url))
        .header("Authorization", "Bearer sk-client-test")
        .header("X-Customer-Id", customer)
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

fn request_id(response: &reqwest::Response) -> String {
    let id = response.headers()["x-tollgate-request-id"].to_str();
    id.expect("the request id is ASCII").to_string()
}

/// A tollgate binary in front of an upstream that streams `case` 200 ms a piece, with one
/// postpaid customer.
struct StreamServed {
    blnk: FakeBlnk,
    tollgate: Tollgate,
    _upstream: StreamServer,
    _data_dir: tempfile::TempDir,
}

impl StreamServed {
    async fn start(case: &Case, customer: &str) -> StreamServed {
        let blnk = FakeBlnk::start().await;
        let upstream = StreamServer::start(Script::sse(
            case.upstream_writes(),
            Pace::Every(Duration::from_millis(200)),
        ))
        .await;
        let data_dir = tempfile::tempdir().expect("temp dir");
        create_customer(
            &blnk.url(),
            customer,
            Billing::Postpaid { credit_limit: None },
            None,
        )
        .await;
        let launch = Launch::new(blnk.url(), upstream.url.clone(), data_dir.path());
        let tollgate = Tollgate::start(&launch).await;
        StreamServed {
            blnk,
            tollgate,
            _upstream: upstream,
            _data_dir: data_dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_open_stream_finish() {
    let case = Case::load(STREAM_CASE);
    // The upstream and the data directory stay bound, so they live until the test ends.
    let StreamServed {
        blnk,
        mut tollgate,
        _upstream,
        _data_dir,
    } = StreamServed::start(&case, "stream-postpaid").await;

    let response = post(&tollgate, "stream-postpaid", &case.request_body()).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let mut body = response.bytes_stream();
    let mut received = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();

    tollgate.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/models", tollgate.url))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "no new connection after SIGTERM: {refused:?}"
    );

    while let Some(chunk) = body.next().await {
        received.push_str(std::str::from_utf8(&chunk.expect("the stream is not cut")).unwrap());
    }
    assert_eq!(
        received,
        case.upstream_writes().concat(),
        "the whole stream arrives"
    );
    assert!(received.ends_with("data: [DONE]\n\n"));
    let charge = charge_of(&blnk, &id);
    assert_eq!(
        charge.usd_nanos(),
        case.expected_nanos(),
        "the stream is billed"
    );
    assert_eq!(charge.tokens(), case.expected_tokens());

    let status = tollgate.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", tollgate.logs());
}

/// A log collector that dies closes tollgate's stderr. Writing a log line then fails, and
/// tollgate must go on serving, billing and handling signals without its logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_log_pipe_keeps_serving() {
    let case = Case::load(STREAM_CASE);
    let blnk = FakeBlnk::start().await;
    let _upstream = StreamServer::start(Script::sse(
        case.upstream_writes(),
        Pace::Every(Duration::from_millis(20)),
    ))
    .await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    create_customer(
        &blnk.url(),
        "quiet",
        Billing::Postpaid { credit_limit: None },
        None,
    )
    .await;
    for format in ["text", "json"] {
        let mut launch = Launch::new(blnk.url(), _upstream.url.clone(), data_dir.path())
            .with("TOLLGATE_LOG_FORMAT", format);
        launch.close_stderr = true;
        let mut tollgate = Tollgate::start(&launch).await;

        let response = post(&tollgate, "quiet", &case.request_body()).await;
        assert_eq!(response.status(), 200, "{format} logs");
        let id = request_id(&response);
        let text = response.text().await.expect("the whole stream arrives");
        assert!(text.ends_with("data: [DONE]\n\n"), "{format} logs: {text}");
        assert_eq!(charge_of(&blnk, &id).usd_nanos(), case.expected_nanos());

        tollgate.signal("TERM");
        let status = tollgate.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(0), "{format} logs");
    }
}

/// Returns the base URL of the admin listener, read from the line that announces it, so the
/// test takes no port that another test could take too.
async fn admin_url(tollgate: &Tollgate) -> String {
    for _ in 0..250 {
        let logs = tollgate.logs();
        if let Some(line) = logs
            .lines()
            .find(|line| line.contains("admin listener serving"))
        {
            let start = line
                .find("127.0.0.1:")
                .unwrap_or_else(|| panic!("no address in {line:?}"));
            let address: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return format!("http://{address}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no admin listener in the log:\n{}", tollgate.logs());
}

/// Returns the status and JSON body of the admin listener's `/readyz`.
async fn readiness(admin: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{admin}/readyz"))
        .await
        .expect("the admin listener answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_requests_drain() {
    let case = Case::load(STREAM_CASE);
    let StreamServed {
        blnk: _blnk,
        mut tollgate,
        _upstream,
        _data_dir,
    } = StreamServed::start(&case, "drain-postpaid").await;
    let admin = admin_url(&tollgate).await;

    let response = post(&tollgate, "drain-postpaid", &case.request_body()).await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    let (status, before) = readiness(&admin).await;
    assert_eq!(status, 200, "ready before the signal: {before}");
    assert_eq!(before["checks"]["accepting_requests"], true);

    tollgate.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, draining) = readiness(&admin).await;
    assert_eq!(status, 503, "not ready while draining: {draining}");
    assert_eq!(draining["checks"]["accepting_requests"], false);
    assert_eq!(
        draining["failed"],
        serde_json::json!(["accepting_requests"])
    );

    while let Some(chunk) = body.next().await {
        chunk.expect("the stream is not cut");
    }
    let status = tollgate.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", tollgate.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_exits_at_once() {
    let case = Case::load(STREAM_CASE);
    let blnk = FakeBlnk::start().await;
    // Seven pieces two seconds apart: the stream would need twelve seconds.
    let upstream = StreamServer::start(Script::sse(
        case.upstream_writes(),
        Pace::Every(Duration::from_secs(2)),
    ))
    .await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let customer =
        create_customer(&blnk.url(), "stream-prepaid", Billing::Prepaid, Some("1")).await;
    let launch = Launch::new(blnk.url(), upstream.url.clone(), data_dir.path());
    let mut tollgate = Tollgate::start(&launch).await;

    let mut body = post(&tollgate, "stream-prepaid", &case.request_body())
        .await
        .bytes_stream();
    body.next().await.unwrap().unwrap();
    tollgate.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    tollgate.signal("INT");
    let status = tollgate.wait_exit(Duration::from_secs(2)).await;
    assert_eq!(status.code(), Some(130), "log:\n{}", tollgate.logs());
    assert!(
        all_charge_legs(&blnk).is_empty(),
        "the cut stream was never metered"
    );
    assert!(
        blnk.balance(&customer.usd_balance_id)
            .inflight_debit_balance
            > 0,
        "its hold is left open"
    );

    // The next start voids the hold that the cut request left.
    let mut next = Tollgate::start(&launch).await;
    wait_for(Duration::from_secs(10), || {
        blnk.balance(&customer.usd_balance_id)
            .inflight_debit_balance
            == 0
    })
    .await;
    next.signal("TERM");
    let status = next.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", next.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unflushed_charge_resumes_next_start() {
    let case = Case::load("15-ledger-post-retry-same-reference");
    let blnk = FakeBlnk::start().await;
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(case.upstream_json()))
        .mount(&upstream)
        .await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let customer = create_customer(
        &blnk.url(),
        "cust_postpaid_01",
        Billing::Postpaid { credit_limit: None },
        None,
    )
    .await;
    let launch = Launch::new(blnk.url(), upstream.uri(), data_dir.path());

    blnk.inject(
        Fault::Status(503)
            .on("POST", "/transactions/bulk")
            .times(10_000),
    );
    let mut tollgate = Tollgate::start(&launch).await;
    let response = post(&tollgate, "cust_postpaid_01", &case.request_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-charge"], "pending");
    let id = request_id(&response);

    tollgate.signal("INT");
    let status = tollgate.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT stops gracefully too; log:\n{}",
        tollgate.logs()
    );
    assert!(
        charge_of(&blnk, &id).usd.is_none(),
        "Blnk refused the flush as well"
    );

    blnk.clear_faults();
    let mut next = Tollgate::start(&launch).await;
    wait_for(Duration::from_secs(10), || {
        charge_of(&blnk, &id).tokens.is_some()
    })
    .await;
    assert_eq!(charge_of(&blnk, &id).usd_nanos(), case.expected_nanos());
    assert_eq!(all_charge_legs(&blnk).len(), 2, "exactly one charge");
    assert_eq!(
        blnk.balance(&customer.usd_balance_id).balance,
        -case.expected_nanos()
    );
    next.signal("TERM");
    let status = next.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", next.logs());
}

async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(condition(), "condition not reached within {limit:?}");
}
