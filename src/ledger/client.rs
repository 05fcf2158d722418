//! The HTTP transport shared by every Blnk call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::LedgerError;
use super::uri::BaseUri;
use crate::http_client::{self, HttpClient, Route, TransportError};
use crate::secret::Secret;

/// Maximum wait for a connection (DNS lookup, TCP connect and TLS handshake). The request
/// timeout still bounds the whole call, and this shorter bound makes an unreachable host fail
/// fast when the request timeout is long.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection is kept open for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Maximum length of an unparsable response body quoted in an error, in bytes.
const MAX_BODY_EXCERPT: usize = 200;

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

const BLNK_KEY_HEADER: HeaderName = HeaderName::from_static("x-blnk-key");

const TOLLGATE_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION")));

/// Initial capacity of a request body buffer, enough for a typical transaction.
const BODY_CAPACITY: usize = 1024;

/// A client of one Blnk server. Cloning is cheap, and clones share one connection pool.
///
/// Every call is synchronous on Blnk's side: transactions, commits and voids are sent with
/// `skip_queue: true`, so a success means the row is written and a failure means nothing
/// was written.
#[derive(Clone)]
pub struct BlnkClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    base: BaseUri,
    /// Headers sent with every call: `Accept`, `User-Agent` and the key, if any.
    headers: HeaderMap,
    /// Maximum time of one call, from connect to the last byte of the response body.
    timeout: Duration,
    /// URIs of the frequent calls, built once.
    health: Uri,
    transactions: Uri,
    bulk: Uri,
    balances_filter: Uri,
    transactions_filter: Uri,
}

impl BlnkClient {
    /// Builds a client for the Blnk server at `base_url`, such as `http://127.0.0.1:5001`.
    ///
    /// `api_key` is sent as `X-Blnk-Key` on every request. It must be Blnk's master key:
    /// Blnk rewrites the JSON body of a POST made with a scoped key through 64-bit floats,
    /// which corrupts integers above 2^53. `timeout` bounds each call from connect to the
    /// last byte of the response. The client follows no redirects and uses no proxy, also
    /// when proxy environment variables are set.
    pub fn new(
        base_url: &str,
        api_key: Option<Secret>,
        timeout: Duration,
    ) -> Result<BlnkClient, LedgerError> {
        let base = BaseUri::parse(base_url)?;
        if timeout.is_zero() {
            return Err(LedgerError::InvalidConfig {
                detail: "the Blnk request timeout must be greater than zero".to_string(),
            });
        }
        let http = http_client::build(http_client::Settings {
            connect_timeout: timeout.min(MAX_CONNECT_TIMEOUT),
            tcp_keepalive: TCP_KEEPALIVE,
            pool_idle_timeout: POOL_IDLE_TIMEOUT,
            route: Route::Direct,
        })
        .map_err(|error| LedgerError::InvalidConfig {
            detail: format!("cannot build the HTTP client for Blnk: {error}"),
        })?;

        let fixed = |segments: &[&str]| {
            base.join(segments, None)
                .map_err(|error| LedgerError::InvalidConfig {
                    detail: format!("cannot build a Blnk URL from {:?}: {error}", base.as_str()),
                })
        };
        let inner = Inner {
            health: fixed(&["health"])?,
            transactions: fixed(&["transactions"])?,
            bulk: fixed(&["transactions", "bulk"])?,
            balances_filter: fixed(&["balances", "filter"])?,
            transactions_filter: fixed(&["transactions", "filter"])?,
            headers: default_headers(api_key.as_ref())?,
            timeout,
            http,
            base,
        };
        Ok(BlnkClient {
            inner: Arc::new(inner),
        })
    }

    pub(super) fn health_url(&self) -> Uri {
        self.inner.health.clone()
    }

    pub(super) fn transactions_url(&self) -> Uri {
        self.inner.transactions.clone()
    }

    pub(super) fn bulk_url(&self) -> Uri {
        self.inner.bulk.clone()
    }

    pub(super) fn balances_filter_url(&self) -> Uri {
        self.inner.balances_filter.clone()
    }

    pub(super) fn transactions_filter_url(&self) -> Uri {
        self.inner.transactions_filter.clone()
    }

    /// Builds the URL of `segments` under the base URL, percent-encoding each segment (a `/`
    /// inside an id becomes `%2F`). Rejects empty, `.` and `..` segments, which would
    /// address a different resource.
    pub(super) fn url(
        &self,
        operation: &'static str,
        segments: &[&str],
    ) -> Result<Uri, LedgerError> {
        self.url_with_query(operation, segments, None)
    }

    /// Builds the URL of `segments` as [`BlnkClient::url`] does, with one query parameter.
    pub(super) fn url_with_query(
        &self,
        operation: &'static str,
        segments: &[&str],
        query: Option<(&str, &str)>,
    ) -> Result<Uri, LedgerError> {
        let invalid = segments
            .iter()
            .find(|segment| matches!(**segment, "" | "." | ".."));
        if let Some(segment) = invalid {
            return Err(LedgerError::InvalidRequest {
                operation,
                detail: format!("{segment:?} is not a valid id"),
            });
        }
        self.inner
            .base
            .join(segments, query)
            .map_err(|error| LedgerError::InvalidRequest {
                operation,
                detail: format!("cannot build the URL of {segments:?}: {error}"),
            })
    }

    /// Sends a GET and returns the raw body of a 2xx response.
    pub(super) async fn get_bytes(
        &self,
        operation: &'static str,
        url: Uri,
    ) -> Result<Bytes, LedgerError> {
        let request = self.request(Method::GET, url, None);
        crate::telemetry::ledger::observe(operation, self.execute(operation, request)).await
    }

    /// Sends a GET and parses the JSON body of a 2xx response.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: Uri,
    ) -> Result<T, LedgerError> {
        let body = self.get_bytes(operation, url).await?;
        decode(operation, &body)
    }

    /// Sends `body` as JSON and parses the JSON body of a 2xx response.
    pub(super) async fn send<B, T>(
        &self,
        operation: &'static str,
        method: Method,
        url: Uri,
        body: &B,
    ) -> Result<T, LedgerError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut payload = Vec::with_capacity(BODY_CAPACITY);
        serde_json::to_writer(&mut payload, body).map_err(|error| LedgerError::InvalidRequest {
            operation,
            detail: format!("cannot encode the request body: {error}"),
        })?;
        let request = self.request(method, url, Some(payload));
        let response =
            crate::telemetry::ledger::observe(operation, self.execute(operation, request)).await?;
        decode(operation, &response)
    }

    /// Builds a request with the default headers, and `Content-Type: application/json` when
    /// it has a body.
    fn request(&self, method: Method, url: Uri, json: Option<Vec<u8>>) -> Request<Full<Bytes>> {
        let mut headers = self.inner.headers.clone();
        let body = match json {
            Some(json) => {
                headers.insert(CONTENT_TYPE, APPLICATION_JSON);
                Bytes::from(json)
            }
            None => Bytes::new(),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = url;
        *request.headers_mut() = headers;
        request
    }

    /// Sends the request and reads the whole response within the call timeout, then sorts
    /// every failure: timeouts, other transport errors, then non-2xx statuses.
    async fn execute(
        &self,
        operation: &'static str,
        request: Request<Full<Bytes>>,
    ) -> Result<Bytes, LedgerError> {
        let uri = request.uri().clone();
        let exchange = async {
            let response = self
                .inner
                .http
                .request(request)
                .await
                .map_err(|error| TransportError::request(uri.clone(), error))?;
            let (head, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| TransportError::body(uri.clone(), error))?;
            Ok::<_, TransportError>((head.status, body.to_bytes()))
        };
        let (status, body) = match tokio::time::timeout(self.inner.timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(transport_error(operation, error)),
            Err(_) => return Err(LedgerError::Timeout { operation }),
        };

        if status.is_success() {
            Ok(body)
        } else if status.is_client_error() || status.is_server_error() {
            Err(LedgerError::from_response(status.as_u16(), &body))
        } else {
            Err(LedgerError::InvalidResponse {
                operation,
                detail: format!("unexpected HTTP status {status}"),
            })
        }
    }
}

impl fmt::Debug for BlnkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlnkClient")
            .field("base_url", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

fn default_headers(api_key: Option<&Secret>) -> Result<HeaderMap, LedgerError> {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(ACCEPT, APPLICATION_JSON);
    headers.insert(USER_AGENT, TOLLGATE_USER_AGENT);
    if let Some(key) = api_key {
        // The message leaves the key out on purpose.
        let mut value =
            HeaderValue::from_str(key.expose()).map_err(|_| LedgerError::InvalidConfig {
                detail: "BLNK_API_KEY contains characters that cannot be sent in an HTTP header"
                    .to_string(),
            })?;
        value.set_sensitive(true);
        headers.insert(BLNK_KEY_HEADER, value);
    }
    Ok(headers)
}

fn transport_error(operation: &'static str, error: TransportError) -> LedgerError {
    if error.is_timeout() {
        LedgerError::Timeout { operation }
    } else {
        LedgerError::Unreachable {
            operation,
            source: error,
        }
    }
}

fn decode<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, LedgerError> {
    serde_json::from_slice(body).map_err(|error| {
        let text = String::from_utf8_lossy(body);
        let mut end = text.len().min(MAX_BODY_EXCERPT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        LedgerError::InvalidResponse {
            operation,
            detail: format!("{error}; the body starts with {:?}", &text[..end]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_validated() {
        let timeout = Duration::from_secs(1);
        for valid in [
            "http://127.0.0.1:5001",
            "http://127.0.0.1:5001/",
            "https://blnk/api/",
        ] {
            assert!(BlnkClient::new(valid, None, timeout).is_ok(), "{valid}");
        }
        for invalid in [
            "127.0.0.1:5001",
            "ftp://blnk",
            "http://blnk/?x=1",
            "not a url",
            "",
        ] {
            assert!(
                BlnkClient::new(invalid, None, timeout).is_err(),
                "{invalid}"
            );
        }
        assert!(BlnkClient::new("http://blnk", None, Duration::ZERO).is_err());
    }

    #[test]
    fn urls_join_under_base_path() {
        let timeout = Duration::from_secs(1);
        let cases = [
            (
                "http://127.0.0.1:5001",
                "http://127.0.0.1:5001/transactions/bulk",
            ),
            (
                "http://127.0.0.1:5001/",
                "http://127.0.0.1:5001/transactions/bulk",
            ),
            ("http://proxy/blnk", "http://proxy/blnk/transactions/bulk"),
            ("http://proxy/blnk/", "http://proxy/blnk/transactions/bulk"),
        ];
        for (base, expected) in cases {
            let client = BlnkClient::new(base, None, timeout).expect("valid base");
            assert_eq!(client.bulk_url().to_string(), expected);
        }
    }

    #[test]
    fn ids_are_escaped_as_one_segment() {
        let client = BlnkClient::new("http://blnk", None, Duration::from_secs(1)).expect("client");
        let url = client
            .url(
                "transaction_by_reference",
                &["transactions", "reference", "tg:a b/c?d#e%"],
            )
            .expect("valid id");
        assert_eq!(
            url.path(),
            "/transactions/reference/tg:a%20b%2Fc%3Fd%23e%25"
        );
        for bad in ["", ".", ".."] {
            assert!(
                client.url("get_balance", &["balances", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn api_key_hidden_from_output() {
        let key = Secret::new("bad\nkey-secret");
        let error = BlnkClient::new("http://blnk", Some(key), Duration::from_secs(1))
            .expect_err("newline is not a header character");
        assert!(!error.to_string().contains("key-secret"), "{error}");

        let key = Secret::new("master-key-secret");
        let client =
            BlnkClient::new("http://blnk", Some(key), Duration::from_secs(1)).expect("client");
        assert!(!format!("{client:?}").contains("master-key-secret"));
    }
}
