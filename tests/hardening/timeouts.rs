//! Upstream timeouts: connect, first byte, silence between stream chunks, and the longest
//! stream. Each ends the request with an error the client can see, and nothing hangs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::blnk::FakeBlnk;
use crate::support::harness::{Harness, Options};
use crate::support::stream_server::{Pace, Script, StreamServer};

fn content_chunk(text: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-timeouts",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

fn stream_body() -> Value {
    json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

async fn start_streaming(
    script: Script,
    env: Vec<(&'static str, String)>,
) -> (Harness, StreamServer) {
    let server = StreamServer::start(script).await;
    let mut all = vec![("TOLLGATE_UPSTREAM_URL", server.url.clone())];
    all.extend(env);
    let harness = Harness::start_with(Options {
        env: all,
        ..Options::default()
    })
    .await;
    harness.postpaid("cust_timeouts").await;
    (harness, server)
}

async fn post(harness: &Harness, body: &Value) -> reqwest::Response {
    harness
        .http()
        .post(format!("{}/v1/chat/completions", harness.url))
        .header("X-Customer-Id", "cust_timeouts")
        .json(body)
        .send()
        .await
        .expect("tollgate answers")
}

#[tokio::test]
async fn silent_stream_hits_idle_timeout() {
    let pieces = vec![
        content_chunk("Hello"),
        content_chunk(" world"),
        "data: [DONE]\n\n".to_owned(),
    ];
    let never_opened = Arc::new(Semaphore::new(0));
    let (harness, _server) = start_streaming(
        Script::sse(pieces, Pace::Gated(never_opened)),
        vec![("TOLLGATE_UPSTREAM_IDLE_TIMEOUT", "300ms".into())],
    )
    .await;

    let started = Instant::now();
    let response = post(&harness, &stream_body()).await;
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends")
        .expect("body");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains("Hello"), "{text}");
    assert!(!text.contains("world"), "{text}");
    assert!(text.contains("upstream_stream_interrupted"), "{text}");
    harness.stop().await;
}

#[tokio::test]
async fn long_stream_hits_max_duration() {
    let pieces: Vec<String> = (0..40).map(|i| content_chunk(&format!("w{i} "))).collect();
    let (harness, server) = start_streaming(
        Script::sse(pieces, Pace::Every(Duration::from_millis(100))),
        vec![("TOLLGATE_UPSTREAM_MAX_STREAM_DURATION", "500ms".into())],
    )
    .await;

    let started = Instant::now();
    let response = post(&harness, &stream_body()).await;
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends")
        .expect("body");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains("upstream_stream_interrupted"), "{text}");
    assert!(!text.contains("w39"), "the stream was cut");
    assert!(server.pieces_written() < 40);
    harness.stop().await;
}

#[tokio::test]
async fn pass_through_hits_first_byte_timeout() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT", "300ms".into())],
        ..Options::default()
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&harness.upstream)
        .await;

    let started = Instant::now();
    let response = harness
        .http()
        .get(format!("{}/v1/models", harness.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["error"]["code"], "upstream_timeout");
    harness.stop().await;
}

/// Returns a loopback address whose accept queue is full, so a further connection attempt
/// gets no reply (Linux drops the SYN), together with the connections that fill it.
async fn full_backlog_address() -> (
    std::net::SocketAddr,
    tokio::net::TcpListener,
    Vec<TcpStream>,
) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let address = listener.local_addr().expect("address");
    let mut filling = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => filling.push(stream),
            _ => return (address, listener, filling),
        }
    }
    panic!("the accept queue of a listener with backlog 1 never filled");
}

#[tokio::test]
async fn stalled_connect_hits_connect_timeout() {
    let (address, _listener, _filling) = full_backlog_address().await;
    let blnk = FakeBlnk::start().await;
    let unused_mock = MockServer::start().await;
    let harness = Harness::start_on(
        blnk,
        unused_mock,
        Options {
            env: vec![
                ("TOLLGATE_UPSTREAM_URL", format!("http://{address}")),
                ("TOLLGATE_UPSTREAM_CONNECT_TIMEOUT", "300ms".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    harness.postpaid("cust_timeouts").await;

    let started = Instant::now();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&harness, &body).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["error"]["code"], "upstream_unreachable", "{error}");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(message.contains("connect timeout of 300 ms"), "{message}");
    assert!(harness.blnk.transactions().is_empty(), "nothing is billed");
    harness.stop().await;
}
