//! Serving the proxy router on its listener. Each connection gets the protocol its first
//! bytes name: HTTP/2 when a client opens with the HTTP/2 preface (cleartext HTTP/2 with
//! prior knowledge), HTTP/1.1 otherwise. The bytes are peeked, not read, so an HTTP/1.1
//! connection is served by hyper's HTTP/1 code alone. Detecting the protocol by reading, as
//! hyper-util's automatic builder does, cost about 6 KiB more per open connection in the
//! memory benchmark.
//!
//! Every connection must send its first bytes within the header read timeout, and an HTTP/1.1
//! connection each request's headers, counted from the end of its previous response. A
//! connection that stays silent or stalls inside its headers is closed, so idle connections
//! cannot hold every slot of `max_connections`.
//!
//! On shutdown the listener stops accepting, and each connection finishes the request it is
//! serving and then closes. No connection is upgraded: the proxy relays no WebSocket.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::limits::{ConnectionLimit, LimitedIo};
use crate::task::spawn_named;

/// The first bytes of the HTTP/2 connection preface. The method `PRI` is registered for this
/// preface alone (RFC 7540, section 11.6), so no HTTP/1.1 request starts with them.
const HTTP2_START: &[u8; 3] = b"PRI";

/// The protocol a connection's first bytes name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    /// Fewer bytes than needed have arrived, and they could start either protocol.
    Undecided,
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
    reason = "an async fn keeps its arguments twice in the connection's task (992 bytes against 920)"
)]
fn serve_connection(
    io: LimitedIo<TcpStream>,
    router: Router,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let first_bytes = tokio::time::timeout(protocols.header_read_timeout, sniff(io.get_ref()));
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
        // The rare protocols are boxed, so the task of an HTTP/1.1 connection does not reserve
        // room for their larger state.
        let served = match protocol {
            Protocol::Http1 => {
                let connection = protocols.http1.serve_connection(io, service);
                watcher.watch(connection).await.map_err(Box::from)
            }
            Protocol::Http2 => {
                let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(io, service);
                Box::pin(watcher.watch(connection)).await.map_err(Box::from)
            }
            Protocol::Undecided => {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(protocols.header_read_timeout);
                let connection = builder.serve_connection(io, service);
                Box::pin(watcher.watch(connection)).await
            }
        };
        if let Err(error) = served {
            tracing::trace!(%error, "connection ended with an error");
        }
    }
}

/// Waits for the connection's first bytes and names the protocol they start.
async fn sniff(stream: &TcpStream) -> io::Result<Protocol> {
    let mut start = [0u8; HTTP2_START.len()];
    let peeked = stream.peek(&mut start).await?;
    Ok(protocol_of(&start[..peeked]))
}

/// Names the protocol that `start`, the first bytes a client sent, begins.
fn protocol_of(start: &[u8]) -> Protocol {
    if start.len() >= HTTP2_START.len() {
        if start.starts_with(HTTP2_START) {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    } else if !start.is_empty() && HTTP2_START.starts_with(start) {
        Protocol::Undecided
    } else {
        // Also a connection closed before its first byte: hyper's HTTP/1 code reads the end
        // of the stream and closes it.
        Protocol::Http1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_name_the_protocol() {
        let cases: [(&[u8], Protocol); 9] = [
            (b"POST /v1/chat/completions HTTP/1.1\r\n", Protocol::Http1),
            (b"GET", Protocol::Http1),
            (b"PUT", Protocol::Http1),
            (b"PATCH", Protocol::Http1),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Protocol::Http2),
            (b"PRI", Protocol::Http2),
            (b"PR", Protocol::Undecided),
            (b"P", Protocol::Undecided),
            (b"", Protocol::Http1),
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
