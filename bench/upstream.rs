//! Mock OpenAI upstream: chat completions as one JSON body with usage, or as an SSE stream.
//!
//! Each request sets its own shape through headers, which tollgate and the hop forward
//! unchanged: the latency before the response headers, and for streams the number of content
//! chunks and the delay between them. Every stream chunk carries its send time (Unix
//! nanoseconds) in an extra `x_sent_ns` field, so the client can measure each chunk's transit.
//! The first chunk also carries the time the mock's handler received the request
//! (`x_received_ns`), which splits a stream's time to first byte into the request's way to
//! upstream, the mock's own turnaround and the first chunk's way back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use tollgate::task::spawn_named;

use crate::load::unix_nanos;

/// Microseconds the mock waits before it responds.
pub const LATENCY_HEADER: &str = "x-mock-latency-us";
/// Content chunks in a streamed response.
pub const CHUNKS_HEADER: &str = "x-mock-chunks";
/// Microseconds between two content chunks.
pub const INTERVAL_HEADER: &str = "x-mock-chunk-interval-us";
/// The field of each stream chunk that carries its send time.
pub const SENT_AT_FIELD: &[u8] = b"\"x_sent_ns\":";
/// The field of a stream's first chunk that carries the time the request reached the mock.
pub const RECEIVED_AT_FIELD: &[u8] = b"\"x_received_ns\":";

pub type MockBody = UnsyncBoxBody<Bytes, Infallible>;

const MODEL: &str = "gpt-4o-mini-2024-07-18";

/// The non-streaming response body.
pub const COMPLETION: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Every debit has a matching credit."},"#,
    r#""finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":8,"total_tokens":39,"#,
    r#""prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#
);

/// The shape of one streamed response.
struct StreamShape {
    chunks: u32,
    interval: Duration,
    include_usage: bool,
    /// Unix nanoseconds at which the handler received the request.
    received_ns: u64,
}

/// Binds a loopback port and serves the mock until the process exits.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    spawn_named("mock-upstream", accept_loop(listener));
    Ok(addr)
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        spawn_named("mock-upstream-connection", async move {
            let service = service_fn(handle);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(request: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let received_ns = unix_nanos();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let latency = micros_header(&parts.headers, LATENCY_HEADER).unwrap_or(0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    if memmem::find(&body, b"\"stream\":true").is_none() {
        return Ok(json_response());
    }
    let shape = StreamShape {
        chunks: u32::try_from(micros_header(&parts.headers, CHUNKS_HEADER).unwrap_or(10))
            .unwrap_or(u32::MAX),
        interval: Duration::from_micros(
            micros_header(&parts.headers, INTERVAL_HEADER).unwrap_or(1000),
        ),
        include_usage: memmem::find(&body, b"\"include_usage\":true").is_some(),
        received_ns,
    };
    Ok(stream_response(shape))
}

fn micros_header(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn json_response() -> Response<MockBody> {
    let mut response =
        Response::new(Full::new(Bytes::from_static(COMPLETION.as_bytes())).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_response(shape: StreamShape) -> Response<MockBody> {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    spawn_named("mock-upstream-stream", produce(shape, sender));
    let frames = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// Sends the content chunks, the finish chunk, the usage chunk when the request set
/// `include_usage`, and the terminator. Stops when the client has gone.
async fn produce(shape: StreamShape, sender: mpsc::Sender<Bytes>) {
    for index in 0..shape.chunks {
        if index > 0 {
            tokio::time::sleep(shape.interval).await;
        }
        let received_ns = (index == 0).then_some(shape.received_ns);
        if sender.send(content_chunk(received_ns)).await.is_err() {
            return;
        }
    }
    let mut tail = String::from(concat!(
        r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"#,
        r#""model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "\n\n"
    ));
    if shape.include_usage {
        tail.push_str(concat!(
            r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"#,
            r#""model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":31,"#,
            r#""completion_tokens":20,"total_tokens":51}}"#,
            "\n\n"
        ));
    }
    tail.push_str("data: [DONE]\n\n");
    let _ = sender.send(Bytes::from(tail)).await;
}

pub(crate) fn content_chunk(received_ns: Option<u64>) -> Bytes {
    let received = received_ns.map_or(String::new(), |at| format!(",\"x_received_ns\":{at}"));
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\
         \"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"ledger \"}},\
         \"finish_reason\":null}}]{received},\"x_sent_ns\":{}}}\n\n",
        unix_nanos()
    ))
}
