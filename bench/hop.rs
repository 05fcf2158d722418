//! The bare hop: a hyper server that forwards every request to upstream with hyper's pooled
//! client and streams both bodies through untouched. It does no parsing, header rewriting or
//! buffering, so its added latency is the floor of one extra proxy hop on loopback.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use tollgate::task::spawn_named;

type HopClient = Client<HttpConnector, Incoming>;
type HopBody = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Serves the hop on a loopback port until standard input closes. Prints `ready <addr>`.
pub async fn serve(upstream: SocketAddr) -> ExitCode {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: the hop cannot bind a loopback port: {error}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("ready {addr}"),
        Err(error) => {
            eprintln!("error: the hop has no local address: {error}");
            return ExitCode::FAILURE;
        }
    }
    crate::procs::exit_when_stdin_closes(|| std::process::exit(0));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HopClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector);
    let authority = match Authority::try_from(upstream.to_string()) {
        Ok(authority) => authority,
        Err(error) => {
            eprintln!("error: invalid upstream address {upstream}: {error}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        spawn_named("hop-connection", async move {
            let service =
                service_fn(move |request| forward(client.clone(), authority.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: HopClient,
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Response<HopBody>, http::Error> {
    let (mut parts, body) = request.into_parts();
    let mut uri = Uri::builder().scheme(Scheme::HTTP).authority(authority);
    if let Some(path) = parts.uri.path_and_query() {
        uri = uri.path_and_query(path.clone());
    }
    parts.uri = uri.build()?;
    parts.headers.remove(header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
        Err(error) => {
            let body = http_body_util::Full::new(bytes::Bytes::from(format!(
                "hop: upstream failed: {error}"
            )))
            .map_err(|never| match never {})
            .boxed_unsync();
            Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(body)
        }
    }
}
