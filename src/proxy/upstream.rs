//! The HTTP client that calls upstream (OpenAI or a compatible API).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::config::UpstreamConfig;
use crate::error::ProxyError;

/// A keep-alive client for upstream with `TCP_NODELAY` and the configured connect timeout.
/// It follows no redirects, so a 3xx from upstream comes back as the response and the proxy
/// relays its status and `Location` header to the client.
#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base: String,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(config: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(UpstreamClient {
            http,
            base: config.url.trim_end_matches('/').to_string(),
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
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response, ProxyError> {
        let url = format!("{}{}", self.base, path_and_query);
        let request = self.http.request(method, url).headers(headers).body(body);
        match tokio::time::timeout(self.first_byte_timeout, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            // A connection that could not be opened is a connection failure (502), also when
            // the connect timeout is what ended it.
            Ok(Err(error)) if error.is_connect() && error.is_timeout() => {
                Err(ProxyError::UpstreamUnreachable {
                    detail: format!(
                        "no connection within the connect timeout of {} ms ({})",
                        self.connect_timeout.as_millis(),
                        describe(&error)
                    ),
                })
            }
            Ok(Err(error)) if error.is_timeout() => Err(self.timeout_error()),
            Ok(Err(error)) => Err(ProxyError::UpstreamUnreachable {
                detail: describe(&error),
            }),
            Err(_) => Err(self.timeout_error()),
        }
    }

    pub fn timeout_error(&self) -> ProxyError {
        ProxyError::UpstreamTimeout {
            seconds: self.first_byte_timeout.as_secs(),
        }
    }
}

/// Formats a reqwest error with its chain of causes.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::method;
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
}
