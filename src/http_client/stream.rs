//! The connection type the pooled client reads and writes: plain TCP, or TLS over TCP.
//!
//! hyper-rustls's `MaybeHttpsStream` keeps the TLS state inline, so every connection is as
//! large as a TLS one, 1,112 bytes against 40 for plain TCP. hyper keeps each connection's
//! stream inside its connection task for as long as the connection is open, and an upstream
//! connection stays busy for the whole of a stream. [`ServerStream`] boxes the TLS state, so a
//! plain connection (a model server on the local network, a sidecar, the benchmark's mock)
//! carries only its socket, and a TLS connection pays for one allocation when it opens.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{Connected, Connection};

use super::route::RoutedStream;

/// An open connection to a server, plain or TLS.
#[derive(Debug)]
pub enum ServerStream {
    Plain(RoutedStream),
    Tls(Box<MaybeHttpsStream<RoutedStream>>),
}

impl From<MaybeHttpsStream<RoutedStream>> for ServerStream {
    fn from(stream: MaybeHttpsStream<RoutedStream>) -> Self {
        match stream {
            MaybeHttpsStream::Http(plain) => ServerStream::Plain(plain),
            tls @ MaybeHttpsStream::Https(_) => ServerStream::Tls(Box::new(tls)),
        }
    }
}

impl Connection for ServerStream {
    fn connected(&self) -> Connected {
        match self {
            ServerStream::Plain(stream) => stream.connected(),
            // Also reports HTTP/2 when the server chose it through ALPN.
            ServerStream::Tls(stream) => stream.connected(),
        }
    }
}

impl Read for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ServerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ServerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ServerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ServerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(stream) => stream.is_write_vectored(),
            ServerStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            ServerStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_stream_omits_tls_state() {
        let plain = std::mem::size_of::<RoutedStream>();
        let inline = std::mem::size_of::<MaybeHttpsStream<RoutedStream>>();
        let boxed = std::mem::size_of::<ServerStream>();
        assert!(
            inline > 4 * plain,
            "the TLS state is small now: {inline} bytes"
        );
        assert!(
            boxed <= plain + 8,
            "{boxed} bytes against {plain} for plain TCP"
        );
    }
}
