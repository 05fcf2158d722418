//! Upstream reached by the real binary over TLS and through proxies. The certificate is
//! checked against the trust store that rustls-platform-verifier reads, which `SSL_CERT_FILE`
//! names on Linux. HTTP/2 is negotiated through ALPN for metered and pass-through requests
//! alike. The proxy environment variables route upstream requests: a `CONNECT` tunnel for an
//! https upstream, absolute-form requests for an http one.
//!
//! The fixtures in tests/fixtures/tls are test-only certificates made with openssl: `ca.pem`
//! is a CA that signed `server.pem` (for 127.0.0.1 and localhost, private key `server.key`),
//! and `other-ca.pem` is an unrelated CA.

mod binary;
mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use binary::{Launch, Tollgate, create_customer};
use support::blnk::FakeBlnk;
use support::cases::{Case, charge_of};
use tollgate::accounts::Billing;

/// A streamed chat completion whose usage arrives in its last chunk.
const STREAM_CASE: &str = "02-usage-chunk-forwarded-when-requested";

/// An upstream served over TLS with ALPN `h2` and `http/1.1`.
struct TlsUpstream {
    url: String,
    /// The HTTP version of every request received, in order.
    versions: Arc<Mutex<Vec<Version>>>,
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn server_tls() -> TlsAcceptor {
    let certificates = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("server.pem is readable")
        .collect::<Result<Vec<_>, _>>()
        .expect("server.pem holds certificates");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .expect("certificate and key match");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// Responds to `GET /v1/models` with an empty list and to any other request with the SSE
/// stream of `case`.
async fn respond(
    request: Request<Incoming>,
    case: Arc<Case>,
    versions: Arc<Mutex<Vec<Version>>>,
) -> Result<Response<Full<Bytes>>, http::Error> {
    versions.lock().expect("versions").push(request.version());
    if request.uri().path() == "/v1/models" {
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::from(r#"{"object":"list","data":[]}"#));
    }
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::from(case.upstream_writes().concat()))
}

async fn start_tls_upstream(case: Case) -> TlsUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("address"));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&versions);
    let acceptor = server_tls();
    let case = Arc::new(case);
    tollgate::task::spawn_named("test-tls-upstream", async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let case = Arc::clone(&case);
            let versions = Arc::clone(&recorded);
            tollgate::task::spawn_named("test-tls-connection", async move {
                // A handshake the client aborts (an untrusted certificate) ends here.
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let service = service_fn(move |request| {
                    respond(request, Arc::clone(&case), Arc::clone(&versions))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsUpstream { url, versions }
}

/// A proxy that serves `CONNECT` requests and records each request head it received.
struct TunnelProxy {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn start_tunnel_proxy() -> TunnelProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&heads);
    tollgate::task::spawn_named("test-tunnel-proxy", async move {
        while let Ok((socket, _)) = listener.accept().await {
            let heads = Arc::clone(&recorded);
            tollgate::task::spawn_named("test-tunnel", tunnel(socket, heads));
        }
    });
    TunnelProxy { url, heads }
}

/// Reads a `CONNECT host:port` request, connects to that address, confirms with 200 and
/// copies bytes both ways until either side closes.
async fn tunnel(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    heads.lock().expect("heads").push(head.clone());
    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
    let Ok(mut server) = TcpStream::connect(target.as_str()).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

async fn get_models(tollgate: &Tollgate) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v1/models", tollgate.url))
        .send()
        .await
        .expect("tollgate responds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_upstream_speaks_http2() {
    let case = Case::load(STREAM_CASE);
    let request_body = case.request_body();
    let blnk = FakeBlnk::start().await;
    let upstream = start_tls_upstream(Case::load(STREAM_CASE)).await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    create_customer(
        &blnk.url(),
        "tls-postpaid",
        Billing::Postpaid { credit_limit: None },
        None,
    )
    .await;
    let ca = fixture("ca.pem");
    let launch = Launch::new(blnk.url(), upstream.url.clone(), data_dir.path())
        .with("SSL_CERT_FILE", ca.to_str().expect("UTF-8 path"));
    let tollgate = Tollgate::start(&launch).await;

    let models = get_models(&tollgate).await;
    assert_eq!(models.status(), 200, "log:\n{}", tollgate.logs());
    let listing: Value = models.json().await.expect("JSON");
    assert_eq!(listing["object"], "list");

    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", tollgate.url))
        .header("X-Customer-Id", "tls-postpaid")
        .json(&request_body)
        .send()
        .await
        .expect("tollgate responds");
    assert_eq!(response.status(), 200, "log:\n{}", tollgate.logs());
    let request_id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .expect("ASCII id")
        .to_string();
    let streamed = response.text().await.expect("the stream completes");
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");
    assert_eq!(
        charge_of(&blnk, &request_id).usd_nanos(),
        case.expected_nanos()
    );

    let versions = upstream.versions.lock().expect("versions").clone();
    assert_eq!(versions, vec![Version::HTTP_2, Version::HTTP_2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_upstream_certificate_fails() {
    let blnk = FakeBlnk::start().await;
    let upstream = start_tls_upstream(Case::load(STREAM_CASE)).await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let other_ca = fixture("other-ca.pem");
    let launch = Launch::new(blnk.url(), upstream.url.clone(), data_dir.path())
        .with("SSL_CERT_FILE", other_ca.to_str().expect("UTF-8 path"));
    let tollgate = Tollgate::start(&launch).await;

    let response = tokio::time::timeout(Duration::from_secs(10), get_models(&tollgate))
        .await
        .expect("tollgate responds in time");

    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["error"]["code"], "upstream_unreachable", "{error}");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("failed to connect to {}", upstream.url)),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
    assert!(upstream.versions.lock().expect("versions").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_tunnels_through_proxy() {
    let blnk = FakeBlnk::start().await;
    let upstream = start_tls_upstream(Case::load(STREAM_CASE)).await;
    let proxy = start_tunnel_proxy().await;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let ca = fixture("ca.pem");
    let proxy_url = proxy.url.replace("http://", "http://user:secret@");
    let launch = Launch::new(blnk.url(), upstream.url.clone(), data_dir.path())
        .with("SSL_CERT_FILE", ca.to_str().expect("UTF-8 path"))
        .with("HTTPS_PROXY", &proxy_url);
    let tollgate = Tollgate::start(&launch).await;

    let models = get_models(&tollgate).await;

    assert_eq!(models.status(), 200, "log:\n{}", tollgate.logs());
    let heads = proxy.heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let upstream_address = upstream.url.trim_start_matches("https://");
    assert!(
        heads[0].starts_with(&format!("CONNECT {upstream_address} HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"),
        "{}",
        heads[0]
    );
    let versions = upstream.versions.lock().expect("versions").clone();
    assert_eq!(versions, vec![Version::HTTP_2]);
    assert!(!tollgate.logs().contains("secret"), "{}", tollgate.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_forwards_through_proxy() {
    let blnk = FakeBlnk::start().await;
    let proxy = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("proxy-authorization", "Basic dXNlcjpzZWNyZXQ="))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"object":"list","data":[]}"#, "application/json"),
        )
        .expect(1)
        .mount(&proxy)
        .await;
    // Nothing listens on port 1, so only the proxy can respond for this upstream.
    let unreachable_upstream = "http://127.0.0.1:1";
    let data_dir = tempfile::tempdir().expect("temp dir");
    let proxy_url = proxy.uri().replace("http://", "http://user:secret@");
    let launch = Launch::new(
        blnk.url(),
        unreachable_upstream.to_string(),
        data_dir.path(),
    )
    .with("HTTP_PROXY", &proxy_url);
    let tollgate = Tollgate::start(&launch).await;

    let models = get_models(&tollgate).await;

    assert_eq!(models.status(), 200, "log:\n{}", tollgate.logs());
    let requests = proxy.received_requests().await.expect("recording is on");
    assert_eq!(requests[0].headers["host"], "127.0.0.1:1");
}
