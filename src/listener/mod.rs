//! Serving the proxy router on its listener. Each connection gets the protocol its first
//! bytes name: HTTP/2 when a client opens with the whole HTTP/2 preface (cleartext HTTP/2 with
//! prior knowledge), HTTP/1.1 otherwise. The bytes are peeked, not read, so an HTTP/1.1
//! connection is served by hyper's HTTP/1 code alone. Detecting the protocol by reading, as
//! hyper-util's automatic builder does, cost about 6 KiB more per open connection in the
//! memory benchmark.
//!
//! The header read timeout bounds every wait for a client: the first request's headers (or
//! the HTTP/2 preface) must arrive within it of the connection's opening, and each later
//! request's headers within it of the end of the previous response. A connection that stays
//! silent or stalls is closed, so idle connections cannot hold every slot of
//! `max_connections`. An HTTP/2 connection that has sent its preface is pinged after each
//! quiet period of that length and closed when it leaves a ping unanswered as long, or when
//! none of its requests has been open for as long ([`http2`]).
//!
//! On shutdown the listener stops accepting, and each connection finishes the request it is
//! serving and then closes. No connection is upgraded: the proxy relays no WebSocket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::{ConnectionLimit, LimitedIo};
use crate::task::spawn_named;

mod http2;

/// The HTTP/2 connection preface (RFC 9113, section 3.4). The method `PRI` is registered for
/// this preface alone, so no HTTP/1.1 request starts with it.
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long the listener waits before it peeks again at a connection whose first bytes are a
/// part of the HTTP/2 preface. Only a client that splits its first bytes waits this long.
const PEEK_AGAIN: Duration = Duration::from_millis(5);

/// The protocol a connection's first bytes name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The settings every connection is served with, built once.
struct Protocols {
    http1: http1::Builder,
    header_read_timeout: Duration,
}

impl Protocols {
    fn new(header_read_timeout: Duration) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        Protocols {
            http1,
            header_read_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits until every
/// connection has closed.
pub async fn serve<L>(
    mut listener: ConnectionLimit<L>,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) where
    L: Listener<Io = TcpStream>,
{
    let protocols = Arc::new(Protocols::new(header_read_timeout));
    let graceful = GracefulShutdown::new();
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let connection = serve_connection(
            io,
            router.clone(),
            Arc::clone(&protocols),
            graceful.watcher(),
            shutdown.clone(),
        );
        spawn_named("proxy-connection", connection);
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection with the protocol its first bytes name.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in the connection's task, which lives as long as the connection"
)]
fn serve_connection(
    io: LimitedIo<TcpStream>,
    router: Router,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let deadline = Instant::now() + protocols.header_read_timeout;
        let first_bytes = tokio::time::timeout_at(deadline, sniff(io.get_ref()));
        let protocol = tokio::select! {
            sniffed = first_bytes => match sniffed {
                Ok(Ok(protocol)) => protocol,
                // The peer reset the connection before sending a request.
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!("connection closed: no request within the header read timeout");
                    return;
                }
            },
            // A connection that has not sent a byte yet is closed at once.
            () = shutdown.cancelled() => return,
        };
        // The router accepts hyper's request body and boxes it, as it does under axum::serve.
        let service = TowerToHyperService::new(router);
        let io = TokioIo::new(io);
        // HTTP/2, the rare protocol, is boxed, so the task of an HTTP/1.1 connection does not
        // reserve room for its larger state.
        let served = match protocol {
            Protocol::Http1 => {
                // The builder is a temporary, so the connection's task does not keep it.
                let connection = {
                    let mut http1 = protocols.http1.clone();
                    http1.timer(FirstRequestDeadline::new(deadline.into_std()));
                    http1.serve_connection(io, service)
                };
                watcher.watch(connection).await
            }
            Protocol::Http2 => {
                let idle_timeout = protocols.header_read_timeout;
                Box::pin(http2::serve(io, service, idle_timeout, watcher, shutdown)).await
            }
        };
        if let Err(error) = served {
            tracing::trace!(%error, "connection ended with an error");
        }
    }
}

/// hyper's timer for one HTTP/1.1 connection: tokio's timer, except that the first request's
/// header read timeout ends no later than the connection's deadline. So the wait for the first
/// bytes counts against the first request, and later requests get the whole timeout.
struct FirstRequestDeadline {
    deadline: std::time::Instant,
    first_used: AtomicBool,
}

impl FirstRequestDeadline {
    fn new(deadline: std::time::Instant) -> Self {
        FirstRequestDeadline {
            deadline,
            first_used: AtomicBool::new(false),
        }
    }
}

impl hyper::rt::Timer for FirstRequestDeadline {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // hyper creates a new sleep for each request's headers.
        let deadline = if self.first_used.swap(true, Ordering::Relaxed) {
            deadline
        } else {
            deadline.min(self.deadline)
        };
        TokioTimer::new().sleep_until(deadline)
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        TokioTimer::new().reset(sleep, new_deadline);
    }

    fn now(&self) -> std::time::Instant {
        TokioTimer::new().now()
    }
}

/// Waits until the connection's first bytes name a protocol, and names it.
async fn sniff(stream: &TcpStream) -> io::Result<Protocol> {
    let mut start = [0u8; HTTP2_PREFACE.len()];
    loop {
        let peeked = stream.peek(&mut start).await?;
        if let Some(protocol) = protocol_of(&start[..peeked]) {
            return Ok(protocol);
        }
        // A peek returns the waiting bytes again and again, so it cannot see that the client
        // closed the connection after them. hyper's HTTP/1 code reads that end and closes.
        if stream.ready(Interest::READABLE).await?.is_read_closed() {
            return Ok(Protocol::Http1);
        }
        // A peek returns at once while any bytes are waiting, so it cannot wait for more.
        tokio::time::sleep(PEEK_AGAIN).await;
    }
}

/// Names the protocol that `start`, the first bytes a client sent, begins, or returns `None`
/// while they are a part of the HTTP/2 preface that could still go either way.
fn protocol_of(start: &[u8]) -> Option<Protocol> {
    if start.is_empty() {
        // A connection closed before its first byte: hyper's HTTP/1 code reads the end of the
        // stream and closes it.
        return Some(Protocol::Http1);
    }
    if !HTTP2_PREFACE.starts_with(start) {
        return Some(Protocol::Http1);
    }
    (start.len() == HTTP2_PREFACE.len()).then_some(Protocol::Http2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_name_the_protocol() {
        let cases: [(&[u8], Option<Protocol>); 11] = [
            (
                b"POST /v1/chat/completions HTTP/1.1\r\n",
                Some(Protocol::Http1),
            ),
            (b"GET", Some(Protocol::Http1)),
            (b"PUT", Some(Protocol::Http1)),
            (b"PATCH", Some(Protocol::Http1)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Protocol::Http2)),
            (b"PRI * HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"PRI * HTTP/2.0\r\n", None),
            (b"PRI", None),
            (b"PR", None),
            (b"P", None),
            (b"", Some(Protocol::Http1)),
        ];
        for (start, expected) in cases {
            assert_eq!(
                protocol_of(start),
                expected,
                "{:?}",
                String::from_utf8_lossy(start)
            );
        }
    }
}
