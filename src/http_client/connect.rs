//! A connector wrapper that bounds the whole connection setup by one timeout and hands the
//! client a [`ServerStream`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use tower_service::Service;

use super::stream::ServerStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a connector so that the DNS lookup, the TCP connect and the TLS handshake together
/// end after `timeout`. The connect timeout of hyper-util 0.1's `HttpConnector` covers the
/// TCP connect alone.
#[derive(Debug, Clone)]
pub struct TimedConnector<C> {
    inner: C,
    timeout: Duration,
}

impl<C> TimedConnector<C> {
    pub fn new(inner: C, timeout: Duration) -> Self {
        TimedConnector { inner, timeout }
    }
}

impl<C> Service<Uri> for TimedConnector<C>
where
    C: Service<Uri>,
    C::Response: Into<ServerStream>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = ServerStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ServerStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map(Into::into).map_err(Into::into),
                Err(_) => Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", timeout.as_millis()),
                )) as BoxError),
            }
        })
    }
}
