//! The pooled HTTP client behind the Blnk client and the upstream client: hyper-util's
//! legacy client over plain TCP or rustls, with HTTP/2 when a TLS server offers it through
//! ALPN and HTTP/1.1 otherwise. It follows no redirects, and it uses a proxy only on a
//! [`Route::Proxy`] route.

mod connect;
mod error;
mod route;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;

pub use connect::TimedConnector;
pub use error::{BuildError, TransportError, describe};
pub use route::{Route, RoutedConnector, RoutedStream};
pub use stream::ServerStream;

/// A pooled client that sends bodies held whole in memory.
pub type HttpClient = Client<TimedConnector<HttpsConnector<RoutedConnector>>, Full<Bytes>>;

/// Time between TCP keepalive probes once the first one went unanswered.
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Unanswered TCP keepalive probes before the kernel drops the connection.
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Maximum time sent data may stay unacknowledged before the kernel drops the connection.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection and pool settings of one client.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Maximum time for the DNS lookup, the TCP connect and the TLS handshake together.
    pub connect_timeout: Duration,
    /// Idle time of a connection before the first TCP keepalive probe.
    pub tcp_keepalive: Duration,
    /// How long an idle pooled connection is kept open for reuse.
    pub pool_idle_timeout: Duration,
    /// The way to the server: directly or through a proxy.
    pub route: Route,
}

/// Builds a client with `TCP_NODELAY`, TCP keepalive, and certificates verified against the
/// operating system's trust store by rustls-platform-verifier. Fails only when that verifier
/// cannot be set up.
pub fn build(settings: Settings) -> Result<HttpClient, BuildError> {
    let connect_timeout = settings.connect_timeout;
    let mut tcp = HttpConnector::new();
    // The TLS layer above decides the scheme, so the TCP layer must accept https:// too.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_keepalive(Some(settings.tcp_keepalive));
    tcp.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
    tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    tcp.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));

    let tls = HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(RoutedConnector::new(tcp, settings.route));
    let connector = TimedConnector::new(tls, connect_timeout);
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .build(connector);
    Ok(client)
}

/// Builds the TLS settings: TLS 1.2 and 1.3 with the process's default crypto provider, or
/// aws-lc-rs when none is installed, and the platform verifier.
fn tls_config() -> Result<ClientConfig, BuildError> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.try_with_platform_verifier())
        .map_err(BuildError::Tls)?
        .with_no_client_auth();
    Ok(config)
}
