//! Serving an HTTP/2 connection. A client that acknowledges pings could otherwise keep an
//! idle connection, and its slot of `max_connections`, without limit, because HTTP/2 has no
//! next request whose headers a timeout could wait for. So the connection counts its open
//! requests, from their headers to the end of their response bodies, and is closed with a
//! GOAWAY frame once none has been open for the header read timeout. That is also the time an
//! HTTP/1.1 connection may stay idle between requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

type Request = http::Request<Incoming>;
type Response<B> = http::Response<B>;

/// Serves `io` as HTTP/2 until the client closes it, it stays idle for `idle_timeout`, or
/// shutdown begins. `watcher` is held until the connection has closed, so shutdown waits for
/// its requests.
pub(super) async fn serve<I, S>(
    io: I,
    service: S,
    idle_timeout: Duration,
    watcher: Watcher,
    shutdown: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (open, changes) = watch::channel(0usize);
    let service = Counted {
        inner: service,
        open: Arc::new(open),
    };

    // A client that leaves a ping unacknowledged is closed, as one that sent only the preface
    // and nothing more.
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(idle_timeout)
        .keep_alive_timeout(idle_timeout);
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));

    let mut idle = std::pin::pin!(idle_for(changes, idle_timeout));
    let mut closing = false;
    let served = loop {
        tokio::select! {
            served = connection.as_mut() => break served,
            () = &mut idle, if !closing => {
                tracing::debug!("HTTP/2 connection closed: no open request within the header read timeout");
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    };
    drop(watcher);

    served
}

/// Returns once no request has been open for `timeout`. `open` carries the number of open
/// requests.
async fn idle_for(mut open: watch::Receiver<usize>, timeout: Duration) {
    loop {
        if open.wait_for(|count| *count == 0).await.is_err() {
            // The connection has dropped its service, so it is closing already.
            return std::future::pending().await;
        }
        let busy_again = tokio::time::timeout(timeout, open.wait_for(|count| *count > 0));
        if busy_again.await.is_err() {
            return;
        }
    }
}

/// The router, counting each request as open until its response body ends or is dropped.
struct Counted<S> {
    inner: S,
    open: Arc<watch::Sender<usize>>,
}

/// One open request. Dropping it closes the request in the count.
struct OpenRequest(Arc<watch::Sender<usize>>);

impl OpenRequest {
    fn new(open: &Arc<watch::Sender<usize>>) -> Self {
        open.send_modify(|count| *count += 1);
        OpenRequest(Arc::clone(open))
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl<S> hyper::service::Service<Request> for Counted<S>
where
    S: hyper::service::Service<Request, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<CountedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, request: Request) -> Self::Future {
        let open = OpenRequest::new(&self.open);
        let responding = self.inner.call(request);
        Box::pin(async move {
            let response = responding.await?;
            Ok(response.map(|body| CountedBody { body, _open: open }))
        })
    }
}

/// A response body that keeps its request open in the count until it is dropped.
struct CountedBody {
    body: Body,
    _open: OpenRequest,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_restarts_after_open_request() {
        let (open, changes) = watch::channel(0usize);
        let open = Arc::new(open);
        let timeout = Duration::from_secs(30);
        let mut idle = std::pin::pin!(idle_for(changes, timeout));

        // A request opens before the period ends and stays open beyond it.
        let request = tokio::select! {
            () = &mut idle => panic!("idle while a request opened in time"),
            () = tokio::time::sleep(Duration::from_secs(20)) => OpenRequest::new(&open),
        };
        tokio::select! {
            () = &mut idle => panic!("idle while a request was open"),
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }

        // The period starts again when it closes.
        drop(request);
        let closed_at = tokio::time::Instant::now();
        idle.await;
        assert_eq!(closed_at.elapsed(), timeout);
    }
}
