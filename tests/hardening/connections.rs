//! Client connections: at `max_connections`, a further connection is not served until an open
//! one closes, and a connection that does not send a request's headers within
//! `header_read_timeout` is closed, as is an HTTP/2 connection with no open request for as
//! long.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::harness::{Harness, Options};
use crate::support::stream_server::{Pace, Script, StreamServer};

const REQUEST: &[u8] =
    b"GET /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\nConnection: close\r\n\r\n";

async fn connect(harness: &Harness) -> TcpStream {
    let address = harness.url.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Sends a request and reads the status line of the response, waiting at most `wait`.
async fn status_line(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).trim().to_owned())
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

#[tokio::test]
async fn connection_limit_defers_extra_connections() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_MAX_CONNECTIONS", "2".into())],
        ..Options::default()
    })
    .await;

    // Two idle connections take both slots. A served request proves each was accepted.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&harness).await;
        stream
            .write_all(b"GET /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\n\r\n")
            .await
            .expect("write");
        let status = status_line(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));
        idle.push(stream);
    }

    let mut waiting = connect(&harness).await;
    waiting.write_all(REQUEST).await.expect("write");
    let early = status_line(&mut waiting, Duration::from_millis(500)).await;
    assert_eq!(
        early, None,
        "a third connection was served over the limit of 2"
    );

    drop(idle.pop());
    let late = status_line(&mut waiting, Duration::from_secs(5)).await;
    assert_eq!(
        late.as_deref(),
        Some("HTTP/1.1 404 Not Found"),
        "served once a slot freed"
    );
    harness.stop().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let harness = Harness::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");

    let response = client
        .get(format!("{}/v1/no-such-route", harness.url))
        .send()
        .await
        .expect("an HTTP/2 response");

    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    harness.stop().await;
}

#[tokio::test]
async fn request_split_after_its_first_byte_is_served() {
    let harness = Harness::start().await;
    let mut stream = connect(&harness).await;
    let request: &[u8] = b"POST /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    // `P` could start the HTTP/2 preface too, so the listener must read on to decide.
    stream.write_all(&request[..1]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(&request[1..]).await.expect("write");

    let status = status_line(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));
    harness.stop().await;
}

/// Waits at most `wait` for the server to close `stream`, reading and discarding anything it
/// sends. Returns whether it closed.
async fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_to_end).await.is_ok()
}

async fn start_with_header_timeout() -> Harness {
    Harness::start_with(Options {
        env: vec![("TOLLGATE_HEADER_READ_TIMEOUT", "300ms".into())],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn header_timeout_closes_stalled_request() {
    let harness = start_with_header_timeout().await;
    let mut stalled = connect(&harness).await;
    stalled
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: tollgate\r\n")
        .await
        .expect("write");

    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(10)).await,
        "a connection that stopped inside its headers stayed open"
    );

    let mut fresh = connect(&harness).await;
    fresh.write_all(REQUEST).await.expect("write");
    let status = status_line(&mut fresh, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_closes_silent_connection() {
    let harness = start_with_header_timeout().await;
    let mut silent = connect(&harness).await;

    assert!(
        closed_by_server(&mut silent, Duration::from_secs(10)).await,
        "a connection that never sent a byte stayed open"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_closes_idle_keep_alive() {
    let harness = start_with_header_timeout().await;
    let mut idle = connect(&harness).await;
    idle.write_all(b"GET /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\n\r\n")
        .await
        .expect("write");
    let status = status_line(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));

    assert!(
        closed_by_server(&mut idle, Duration::from_secs(10)).await,
        "a kept-alive connection with no next request stayed open"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_spares_slow_client_within_it() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_HEADER_READ_TIMEOUT", "5s".into())],
        ..Options::default()
    })
    .await;
    let mut slow = connect(&harness).await;
    let (head, rest) = REQUEST.split_at(20);
    slow.write_all(head).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    slow.write_all(rest).await.expect("write");

    let status = status_line(&mut slow, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_closes_stall_after_p() {
    let harness = start_with_header_timeout().await;
    let mut stalled = connect(&harness).await;
    // `P` starts both `POST` and the HTTP/2 preface, so the listener cannot yet tell the
    // protocol. A client that sends it and nothing more must still be closed in time.
    stalled.write_all(b"P").await.expect("write");

    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(5)).await,
        "a connection that stopped after `P` stayed open"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_closes_stalled_http2_preface() {
    let harness = start_with_header_timeout().await;
    let mut stalled = connect(&harness).await;
    stalled
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");

    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(5)).await,
        "a connection that stopped inside the HTTP/2 preface stayed open"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_counts_from_opening() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_HEADER_READ_TIMEOUT", "1s".into())],
        ..Options::default()
    })
    .await;
    let mut slow = connect(&harness).await;
    let (first, rest) = REQUEST.split_at(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    slow.write_all(first).await.expect("write");
    // The whole header is sent 1.6 s after the connection opened, past the 1 s timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = slow.write_all(rest).await;

    let status = status_line(&mut slow, Duration::from_secs(3)).await;
    assert_eq!(
        status, None,
        "headers completed 1.6 s after opening were served under a 1 s timeout"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_restarts_after_late_first_request() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_HEADER_READ_TIMEOUT", "1s".into())],
        ..Options::default()
    })
    .await;
    let request = b"GET /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\n\r\n";
    let mut late = connect(&harness).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    late.write_all(request).await.expect("write");
    let first = status_line(&mut late, Duration::from_secs(5)).await;
    assert_eq!(first.as_deref(), Some("HTTP/1.1 404 Not Found"));
    let mut rest = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(100), late.read(&mut rest)).await;

    // 1.3 s after the connection opened, but only 0.6 s after the previous response.
    tokio::time::sleep(Duration::from_millis(500)).await;
    late.write_all(request).await.expect("write");
    let second = status_line(&mut late, Duration::from_secs(5)).await;
    assert_eq!(
        second.as_deref(),
        Some("HTTP/1.1 404 Not Found"),
        "a later request got only the time left from the connection's opening"
    );
    harness.stop().await;
}

/// Reads from `stream` until the server closes it or `wait` passes, and returns what arrived.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    };
    let _ = tokio::time::timeout(wait, read_to_end).await;
    received
}

#[tokio::test]
async fn header_timeout_is_full_for_next_request() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_HEADER_READ_TIMEOUT", "1s".into())],
        ..Options::default()
    })
    .await;
    let mut client = connect(&harness).await;
    let keep_alive: &[u8] = b"GET /v1/no-such-route HTTP/1.1\r\nHost: tollgate\r\n\r\n";

    // The first request arrives 800 ms after the opening, within the 1 s timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    client.write_all(keep_alive).await.expect("write");
    // The next request follows 500 ms after the first response, also within the timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.write_all(REQUEST).await;

    let received = read_until_closed(&mut client, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&received);
    assert_eq!(
        text.matches("HTTP/1.1 404 Not Found").count(),
        2,
        "the second request, sent 500 ms after the first response under a 1 s timeout, \
         was not served: {text:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn closed_partial_preface_frees_its_slot() {
    let harness = Harness::start_with(Options {
        env: vec![("TOLLGATE_MAX_CONNECTIONS", "1".into())],
        ..Options::default()
    })
    .await;
    let mut left = connect(&harness).await;
    // `P` could start the HTTP/2 preface, and then the client closes the connection.
    left.write_all(b"P").await.expect("write");
    left.shutdown().await.expect("shutdown");
    drop(left);

    let mut next = connect(&harness).await;
    next.write_all(REQUEST).await.expect("write");
    let status = status_line(&mut next, Duration::from_secs(3)).await;
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 404 Not Found"),
        "a connection closed after `P` kept the only slot for the 30 s header read timeout"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_closes_silent_http2() {
    let harness = start_with_header_timeout().await;
    let mut silent = connect(&harness).await;
    // The whole preface, then no SETTINGS frame and no request.
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");

    assert!(
        closed_by_server(&mut silent, Duration::from_secs(5)).await,
        "an HTTP/2 connection that sent only its preface stayed open past the 300 ms timeout"
    );
    harness.stop().await;
}

/// Opens an HTTP/2 connection to tollgate with hyper's client, which acknowledges pings.
/// Returns the request sender and the connection's task, which ends when the connection closes.
async fn http2_connection(
    harness: &Harness,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = connect(harness).await;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    (
        sender,
        tollgate::task::spawn_named("test-http2-connection", connection),
    )
}

#[tokio::test]
async fn header_timeout_closes_idle_http2() {
    let harness = start_with_header_timeout().await;
    let (mut sender, mut connection) = http2_connection(&harness).await;

    let request = http::Request::get(format!("{}/v1/no-such-route", harness.url))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), 404);
    response.into_body().collect().await.expect("body");

    // The client acknowledges every ping, so only the idle timeout can close the connection.
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut connection).await;
    assert!(
        closed.is_ok(),
        "an idle HTTP/2 connection that answers pings stayed open past the 300 ms timeout"
    );
    harness.stop().await;
}

#[tokio::test]
async fn header_timeout_spares_http2_with_an_open_request() {
    let pieces = vec![
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"slow\"},\"finish_reason\":null}]}\n\n".to_owned(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" reply\"},\"finish_reason\":null}]}\n\n".to_owned(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ];
    // Four pieces 250 ms apart: the request stays open for 750 ms, beyond the 300 ms timeout.
    let upstream =
        StreamServer::start(Script::sse(pieces, Pace::Every(Duration::from_millis(250)))).await;
    let harness = Harness::start_with(Options {
        env: vec![
            ("TOLLGATE_HEADER_READ_TIMEOUT", "300ms".into()),
            ("TOLLGATE_UPSTREAM_URL", upstream.url.clone()),
        ],
        ..Options::default()
    })
    .await;
    harness.postpaid("cust_http2").await;
    let (mut sender, _connection) = http2_connection(&harness).await;

    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = http::Request::post(format!("{}/v1/chat/completions", harness.url))
        .header("content-type", "application/json")
        .header("x-customer-id", "cust_http2")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), 200);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("the whole stream");
    let text = String::from_utf8_lossy(&text.to_bytes()).into_owned();
    assert!(text.contains(" reply"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    // The quiet period starts when the request ends, so the connection still takes another.
    let request = http::Request::get(format!("{}/v1/no-such-route", harness.url))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .expect("a second response");
    assert_eq!(response.status(), 404);
    harness.stop().await;
}
