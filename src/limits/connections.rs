//! A listener wrapper that bounds the number of open client connections.
//!
//! Each accepted connection holds one semaphore permit until its socket is dropped. At the
//! limit the wrapper stops accepting, so new connections wait in the kernel's accept queue
//! (or time out in the client) instead of being accepted and starved.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shortest time between two warnings that the limit was reached.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A [`Listener`] that accepts at most `max_connections` connections at a time.
pub struct ConnectionLimit<L> {
    inner: L,
    permits: Arc<Semaphore>,
    max_connections: usize,
    last_warning: Option<Instant>,
    /// Times the limit was reached since the last warning.
    waits_since_warning: u64,
}

/// A connection's socket together with its permit, which is released when the socket is
/// dropped.
pub struct LimitedIo<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I> LimitedIo<I> {
    /// Returns the socket.
    pub fn get_ref(&self) -> &I {
        &self.io
    }
}

impl<L: Listener> ConnectionLimit<L> {
    pub fn new(inner: L, max_connections: usize) -> ConnectionLimit<L> {
        ConnectionLimit {
            inner,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            last_warning: None,
            waits_since_warning: 0,
        }
    }

    /// Returns the number of connections open now.
    pub fn open_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    async fn acquire(&mut self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return permit;
        }
        self.warn_limit_reached();
        match Arc::clone(&self.permits).acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is private and never closed, so this branch cannot run.
            Err(_) => std::future::pending().await,
        }
    }

    fn warn_limit_reached(&mut self) {
        self.waits_since_warning += 1;
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
        if due {
            tracing::warn!(
                max_connections = self.max_connections,
                times_reached = self.waits_since_warning,
                "connection limit reached; new connections wait until an open one closes"
            );
            self.last_warning = Some(Instant::now());
            self.waits_since_warning = 0;
        }
    }
}

impl<L: Listener> Listener for ConnectionLimit<L> {
    type Io = LimitedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = self.acquire().await;
        let (io, addr) = self.inner.accept().await;
        let io = LimitedIo {
            io,
            _permit: permit,
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for LimitedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for LimitedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn permit_is_held_until_the_socket_drops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limited = ConnectionLimit::new(listener, 1);

        let mut first_client = TcpStream::connect(addr).await.unwrap();
        let (mut first, _) = limited.accept().await;
        assert_eq!(limited.open_connections(), 1);

        let _second_client = TcpStream::connect(addr).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(200), limited.accept()).await;
        assert!(
            blocked.is_err(),
            "a second connection was accepted over the limit"
        );

        first_client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        drop(first);
        let accepted = tokio::time::timeout(Duration::from_secs(5), limited.accept()).await;
        assert!(
            accepted.is_ok(),
            "the waiting connection was not accepted after a close"
        );
        assert_eq!(limited.open_connections(), 1);
    }
}
