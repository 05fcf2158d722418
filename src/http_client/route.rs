//! Routes from a client to its server: directly, or through the HTTP proxy that the standard
//! environment variables name (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, in
//! upper or lower case). hyper-util 0.1's `Matcher` reads them following curl's rules.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::Scheme;
use http::{HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use super::BuildError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The way to every request's server. A client talks to one server, so the route is chosen
/// once, when the client is built.
#[derive(Clone, Debug, Default)]
pub enum Route {
    /// A TCP connection to the server itself.
    #[default]
    Direct,
    /// An HTTP proxy at `proxy`: a `CONNECT` tunnel for an https server, or requests in
    /// absolute form for an http server. `authorization` is the `Proxy-Authorization`
    /// value built from the proxy URL's user and password.
    Proxy {
        proxy: Uri,
        authorization: Option<HeaderValue>,
    },
}

impl Route {
    /// Chooses the route to `server` from the proxy environment variables.
    pub fn from_env(server: &Uri) -> Result<Route, BuildError> {
        Route::with_matcher(&Matcher::from_env(), server)
    }

    /// Chooses the route to `server` with the proxy rules of `matcher`. Fails for a proxy
    /// that is not reached over plain HTTP, such as `https://` or `socks5://`.
    pub fn with_matcher(matcher: &Matcher, server: &Uri) -> Result<Route, BuildError> {
        let Some(intercept) = matcher.intercept(server) else {
            return Ok(Route::Direct);
        };
        let proxy = intercept.uri().clone();
        if proxy.scheme() != Some(&Scheme::HTTP) {
            let scheme = proxy.scheme_str().unwrap_or("none").to_string();
            return Err(BuildError::ProxyScheme { scheme });
        }
        let mut authorization = intercept.basic_auth().cloned();
        if let Some(value) = &mut authorization {
            value.set_sensitive(true);
        }
        Ok(Route::Proxy {
            proxy,
            authorization,
        })
    }

    /// Returns the `Proxy-Authorization` value that a request sent in absolute form to an
    /// http server through the proxy must carry. A tunnel sends it in its `CONNECT` request.
    pub fn forward_authorization(&self, server: &Uri) -> Option<&HeaderValue> {
        match self {
            Route::Proxy { authorization, .. } if server.scheme() == Some(&Scheme::HTTP) => {
                authorization.as_ref()
            }
            _ => None,
        }
    }
}

/// A TCP connector that follows a [`Route`].
#[derive(Clone, Debug)]
pub struct RoutedConnector {
    tcp: HttpConnector,
    route: Route,
}

impl RoutedConnector {
    pub fn new(tcp: HttpConnector, route: Route) -> Self {
        RoutedConnector { tcp, route }
    }
}

impl Service<Uri> for RoutedConnector {
    type Response = RoutedStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<RoutedStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, server: Uri) -> Self::Future {
        match &self.route {
            Route::Direct => {
                let connecting = self.tcp.call(server);
                Box::pin(async move { Ok(RoutedStream::new(connecting.await?, false)) })
            }
            Route::Proxy {
                proxy,
                authorization,
            } if server.scheme() == Some(&Scheme::HTTPS) => {
                let mut tunnel = Tunnel::new(proxy.clone(), self.tcp.clone());
                if let Some(value) = authorization {
                    tunnel = tunnel.with_auth(value.clone());
                }
                let connecting = tunnel.call(server);
                Box::pin(async move { Ok(RoutedStream::new(connecting.await?, false)) })
            }
            Route::Proxy { proxy, .. } => {
                let connecting = self.tcp.call(proxy.clone());
                Box::pin(async move { Ok(RoutedStream::new(connecting.await?, true)) })
            }
        }
    }
}

/// A TCP connection opened by [`RoutedConnector`].
#[derive(Debug)]
pub struct RoutedStream {
    io: TokioIo<TcpStream>,
    /// True for a connection to a proxy that forwards requests sent in absolute form.
    forwarding: bool,
}

impl RoutedStream {
    fn new(io: TokioIo<TcpStream>, forwarding: bool) -> Self {
        RoutedStream { io, forwarding }
    }
}

impl Connection for RoutedStream {
    fn connected(&self) -> Connected {
        // A proxied connection makes hyper-util write the request target in absolute form.
        self.io.connected().proxy(self.forwarding)
    }
}

impl Read for RoutedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for RoutedStream {
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

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn no_proxy_variables_route_directly() {
        let matcher = Matcher::builder().build();

        let route = Route::with_matcher(&matcher, &uri("https://api.openai.com")).unwrap();

        assert!(matches!(route, Route::Direct), "{route:?}");
    }

    #[test]
    fn https_server_uses_https_proxy() {
        let matcher = Matcher::builder()
            .https("http://user:secret@proxy:3128")
            .http("http://other:8080")
            .build();
        let server = uri("https://api.openai.com");

        let route = Route::with_matcher(&matcher, &server).unwrap();

        let Route::Proxy {
            proxy,
            authorization,
        } = &route
        else {
            panic!("expected a proxy, got {route:?}");
        };
        assert_eq!(proxy.host(), Some("proxy"));
        assert_eq!(proxy.port_u16(), Some(3128));
        let authorization = authorization.as_ref().unwrap();
        assert_eq!(authorization, "Basic dXNlcjpzZWNyZXQ=");
        assert!(authorization.is_sensitive());
        assert!(route.forward_authorization(&server).is_none());
    }

    #[test]
    fn http_server_forwards_with_authorization() {
        let matcher = Matcher::builder()
            .http("http://user:secret@proxy:3128")
            .build();
        let server = uri("http://llm.internal:4000");

        let route = Route::with_matcher(&matcher, &server).unwrap();

        let authorization = route.forward_authorization(&server).unwrap();
        assert_eq!(authorization, "Basic dXNlcjpzZWNyZXQ=");
    }

    #[test]
    fn no_proxy_list_bypasses_proxy() {
        let matcher = Matcher::builder()
            .all("http://proxy:3128")
            .no("internal, .example.com")
            .build();
        let cases = [
            ("http://internal:4000", false),
            ("https://llm.example.com", false),
            ("https://api.openai.com", true),
        ];
        for (server, proxied) in cases {
            let route = Route::with_matcher(&matcher, &uri(server)).unwrap();
            assert_eq!(
                matches!(route, Route::Proxy { .. }),
                proxied,
                "{server}: {route:?}"
            );
        }
    }

    #[test]
    fn tls_and_socks_proxies_are_rejected() {
        for proxy in ["https://proxy:3128", "socks5://proxy:1080"] {
            let matcher = Matcher::builder().all(proxy).build();

            let error = Route::with_matcher(&matcher, &uri("https://api.openai.com"))
                .unwrap_err()
                .to_string();

            assert!(error.contains("http://"), "{proxy}: {error}");
        }
    }
}
