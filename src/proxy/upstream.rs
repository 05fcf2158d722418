//! The HTTP client that calls upstream (OpenAI or a compatible API).

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::config::UpstreamConfig;
use crate::error::ProxyError;
use crate::http_client::{self, BuildError, HttpClient, Route, TransportError, describe};

/// Failure to build the upstream client.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamClientError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(
        "invalid upstream URL {url:?}: {reason}; set an http or https URL such as https://api.openai.com"
    )]
    InvalidUrl { url: String, reason: String },
}

/// How long an idle pooled connection is kept open for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle time of an upstream connection before the first TCP keepalive probe.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// A response from upstream whose body is still arriving.
pub type UpstreamResponse = Response<Incoming>;

/// A keep-alive client for upstream with `TCP_NODELAY` and the configured connect timeout.
/// It follows no redirects, so a 3xx from upstream comes back as the response and the proxy
/// relays its status and `Location` header to the client. It goes through the HTTP proxy
/// that `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` names for upstream's URL, unless
/// `NO_PROXY` lists its host.
#[derive(Clone)]
pub struct UpstreamClient {
    http: HttpClient,
    scheme: Scheme,
    authority: Authority,
    /// The path of the configured URL without a trailing `/`, such as `/openai`, or empty.
    prefix: String,
    /// `Proxy-Authorization` of every request when requests go to an http upstream through
    /// a proxy whose URL has a user and password.
    proxy_authorization: Option<HeaderValue>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamClientError> {
        let (scheme, authority, prefix) = split_base(&config.url)?;
        let server = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|error| UpstreamClientError::InvalidUrl {
                url: config.url.clone(),
                reason: error.to_string(),
            })?;
        let route = Route::from_env(&server)?;
        if let Route::Proxy { proxy, .. } = &route {
            tracing::info!(%proxy, "upstream requests go through the proxy from the environment");
        }
        let proxy_authorization = route.forward_authorization(&server).cloned();
        let http = http_client::build(http_client::Settings {
            connect_timeout: config.connect_timeout,
            tcp_keepalive: TCP_KEEPALIVE,
            pool_idle_timeout: POOL_IDLE_TIMEOUT,
            route,
        })?;
        Ok(UpstreamClient {
            http,
            scheme,
            authority,
            prefix,
            proxy_authorization,
            connect_timeout: config.connect_timeout,
            first_byte_timeout: config.first_byte_timeout,
        })
    }

    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    /// Sends a request and waits for the response headers, at most `first_byte_timeout`.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, ProxyError> {
        let uri = self.uri(path_and_query)?;
        // hyper 1 sends no Content-Length for an empty body, but under RFC 9110 (section 8.6)
        // a client sends `Content-Length: 0` with a POST that has no content.
        if body.is_empty() && matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        if let Some(value) = &self.proxy_authorization {
            headers.insert(header::PROXY_AUTHORIZATION, value.clone());
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;

        let sending = self.http.request(request);
        match tokio::time::timeout(self.first_byte_timeout, sending).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.classify(TransportError::request(uri, error))),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Sorts a failed call: a connection that could not be opened is a connection failure
    /// (502), also when the connect timeout is what ended it, and other timeouts are 504.
    fn classify(&self, error: TransportError) -> ProxyError {
        if error.is_connect() && error.is_timeout() {
            ProxyError::UpstreamUnreachable {
                detail: format!(
                    "no connection within the connect timeout of {} ms ({})",
                    self.connect_timeout.as_millis(),
                    describe(&error)
                ),
            }
        } else if error.is_timeout() {
            self.timeout_error()
        } else {
            ProxyError::UpstreamUnreachable {
                detail: describe(&error),
            }
        }
    }

    pub fn timeout_error(&self) -> ProxyError {
        ProxyError::UpstreamTimeout {
            seconds: self.first_byte_timeout.as_secs(),
        }
    }

    /// Builds the upstream URI of a client request's path and query.
    fn uri(&self, path_and_query: &str) -> Result<Uri, ProxyError> {
        let mut path = String::with_capacity(self.prefix.len() + path_and_query.len());
        path.push_str(&self.prefix);
        path.push_str(path_and_query);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|error| ProxyError::Internal {
                detail: format!("cannot build the upstream URL for {path_and_query:?}: {error}"),
            })
    }
}

/// Splits the configured upstream URL into its scheme, authority and path prefix without a
/// trailing `/`. The configuration has checked the URL already, so this fails only for a
/// client built from an unchecked [`UpstreamConfig`].
fn split_base(url: &str) -> Result<(Scheme, Authority, String), UpstreamClientError> {
    let invalid = |reason: &str| UpstreamClientError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| invalid(&error.to_string()))?;
    let parts = uri.into_parts();
    let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
        return Err(invalid("the scheme or host is missing"));
    };
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(invalid("the scheme is neither http nor https"));
    }
    let path = parts
        .path_and_query
        .as_ref()
        .map_or("", PathAndQuery::as_str);
    if path.contains('?') {
        return Err(invalid("a base URL has no query"));
    }
    Ok((scheme, authority, path.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::DisconnectPolicy;

    fn config(url: String) -> UpstreamConfig {
        UpstreamConfig {
            url,
            api_key: None,
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            max_stream_duration: Duration::from_secs(60),
            on_client_disconnect: DisconnectPolicy::Drain,
            drain_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn redirect_is_returned_unfollowed() {
        let server = MockServer::start().await;
        let target = format!("{}/v1/elsewhere", server.uri());
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", target.as_str()))
            .expect(1)
            .mount(&server)
            .await;
        let client = UpstreamClient::new(&config(server.uri())).unwrap();

        let response = client
            .send(
                Method::POST,
                "/v1/chat/completions",
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();

        assert_eq!(response.status(), http::StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(response.headers()["location"], target.as_str());
    }

    /// Starts an HTTP/1.1 server that sends a chunked response in two pieces, the second
    /// only after `gate` gets a permit. Returns its base URL.
    async fn two_piece_server(gate: Arc<Semaphore>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        crate::task::spawn_named("test-two-piece-server", async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                let read = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..read]);
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(b"6\r\nfirst\n\r\n").await.unwrap();
            gate.acquire().await.unwrap().forget();
            socket
                .write_all(b"7\r\nsecond\n\r\n0\r\n\r\n")
                .await
                .unwrap();
        });
        url
    }

    #[tokio::test]
    async fn http1_body_streams_in_pieces() {
        let gate = Arc::new(Semaphore::new(0));
        let url = two_piece_server(Arc::clone(&gate)).await;
        let client = UpstreamClient::new(&config(url)).unwrap();

        let response = client
            .send(
                Method::POST,
                "/v1/chat/completions",
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        let mut body = response.into_body();

        // The head and the first piece arrive before the server sends the second.
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"first\n");
        gate.add_permits(1);
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"second\n");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn path_joins_under_base_path() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/openai/v1/models"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let client = UpstreamClient::new(&config(format!("{}/openai", server.uri()))).unwrap();

        let response = client
            .send(
                Method::GET,
                "/v1/models?limit=2",
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap();

        assert_eq!(response.status(), http::StatusCode::OK);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests[0].url.query(), Some("limit=2"));
        assert!(requests[0].headers.get("content-length").is_none());
    }

    #[tokio::test]
    async fn empty_post_sends_zero_length() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let client = UpstreamClient::new(&config(server.uri())).unwrap();

        client
            .send(Method::POST, "/v1/files", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();

        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests[0].headers["content-length"], "0");
    }

    #[tokio::test]
    async fn refused_connect_names_origin() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = UpstreamClient::new(&config(format!("http://{address}"))).unwrap();

        let error = client
            .send(Method::GET, "/v1/models", HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();

        let ProxyError::UpstreamUnreachable { detail } = &error else {
            panic!("expected an unreachable upstream, got {error:?}");
        };
        assert!(
            detail.starts_with(&format!("failed to connect to http://{address}: ")),
            "{detail}"
        );
        assert!(!detail.contains("client error (Connect)"), "{detail}");
    }

    #[test]
    fn invalid_base_url_is_rejected() {
        for url in ["ftp://host", "/relative", "http://host/?q=1"] {
            let error = UpstreamClient::new(&config(url.to_string())).err();
            assert!(
                matches!(error, Some(UpstreamClientError::InvalidUrl { .. })),
                "{url}: {error:?}"
            );
        }
    }
}
