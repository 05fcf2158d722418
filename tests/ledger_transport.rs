//! The Blnk client's HTTP transport: the call timeout while the body is still arriving, the
//! connect timeout, the headers sent with every call, redirects, and the text of connection
//! errors.

#![allow(
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test on a broken setup"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tollgate::ledger::{BlnkClient, LedgerError};
use tollgate::secret::Secret;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "test-master-key";

fn client_for(base_url: &str, timeout: Duration) -> BlnkClient {
    BlnkClient::new(base_url, Some(Secret::new(KEY)), timeout).expect("valid client settings")
}

/// Starts a server that responds to every request with a 200 head and the first byte of a
/// 100-byte body, then sends nothing more while the connection stays open.
async fn stalled_body_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tollgate::task::spawn_named("test-stalled-body-server", async move {
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            read_head(&mut socket).await;
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.flush().await;
            open.push(socket);
        }
    });
    address
}

/// Reads until the end of the request head. The requests of these tests have no body.
async fn read_head(socket: &mut TcpStream) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Returns the address of a listener with backlog 1 whose accept queue is full, so a new
/// connection attempt stays unanswered, and what keeps the queue full.
async fn full_backlog_address() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
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
async fn stalled_body_hits_call_timeout() {
    let address = stalled_body_server().await;
    let client = client_for(&format!("http://{address}"), Duration::from_millis(300));

    let started = Instant::now();
    let error = client.get_balance("bln_1").await.expect_err("timed out");
    let elapsed = started.elapsed();

    assert!(
        matches!(
            error,
            LedgerError::Timeout {
                operation: "get_balance"
            }
        ),
        "{error:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(error.is_unavailable());
}

#[tokio::test]
async fn stalled_connect_is_timeout() {
    let (address, _listener, _filling) = full_backlog_address().await;
    let client = client_for(&format!("http://{address}"), Duration::from_millis(300));

    let started = Instant::now();
    let error = client.health().await.expect_err("timed out");

    assert!(
        matches!(
            error,
            LedgerError::Timeout {
                operation: "health"
            }
        ),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connection_names_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().expect("bound address");
    drop(listener);
    let client = client_for(&format!("http://{address}"), Duration::from_secs(5));

    let error = client.get_balance("bln_1").await.expect_err("refused");
    let message = error.to_string();

    assert!(
        message.starts_with("failed to reach Blnk for get_balance: "),
        "{message}"
    );
    assert!(
        message.contains(&format!("failed to connect to http://{address}: ")),
        "{message}"
    );
    assert!(message.contains("check BLNK_URL"), "{message}");
    assert!(!message.contains("client error (Connect)"), "{message}");
}

#[tokio::test]
async fn default_headers_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .and(header("accept", "application/json"))
        .and(header("x-blnk-key", KEY))
        .and(header(
            "user-agent",
            concat!("tollgate/", env!("CARGO_PKG_VERSION")),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"UP"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri(), Duration::from_secs(5));

    client.health().await.expect("healthy");
}

#[tokio::test]
async fn post_sends_json_with_length() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/balances/filter"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri(), Duration::from_secs(5));

    let balances = client.filter_balances(&[]).await.expect("filtered");

    assert!(balances.is_empty());
    let requests = server.received_requests().await.expect("recording is on");
    let length = requests[0]
        .headers
        .get("content-length")
        .expect("content-length");
    assert_eq!(
        length.to_str().ok(),
        Some(requests[0].body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let server = MockServer::start().await;
    let target = format!("{}/elsewhere", server.uri());
    Mock::given(method("GET"))
        .and(path("/balances/bln_1"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", target.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server.uri(), Duration::from_secs(5));

    let error = client.get_balance("bln_1").await.expect_err("not followed");

    assert!(
        matches!(
            error,
            LedgerError::InvalidResponse {
                operation: "get_balance",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("307"), "{error}");
}
