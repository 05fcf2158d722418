//! The bare hop: a hyper server that forwards every request to upstream with hyper's pooled
//! client and streams both bodies through untouched. It does no parsing, header rewriting or
//! buffering, so its added latency is the floor of one extra proxy hop on loopback.
//!
//! Started with a ledger address, the same server runs as the floor instead
//! ([`crate::floor`]): the hop plus the ledger calls on tollgate's critical path.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::service::{HttpService, service_fn};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use tollgate::task::spawn_named;

use crate::floor::Floor;

pub type HopClient = Client<HttpConnector, Incoming>;
pub type HopBody = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Serves the hop on a loopback port until standard input closes, as the floor when `ledger`
/// is given. Prints `ready <addr>`.
pub async fn serve(upstream: SocketAddr, ledger: Option<SocketAddr>) -> ExitCode {
    let authority = match Authority::try_from(upstream.to_string()) {
        Ok(authority) => authority,
        Err(error) => {
            eprintln!("error: invalid upstream address {upstream}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let floor = match ledger.map(Floor::new).transpose() {
        Ok(floor) => floor.map(Arc::new),
        Err(error) => {
            eprintln!("error: the floor cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
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

    let client = pooled_client();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        match &floor {
            None => serve_connection(
                stream,
                service_fn(move |request| forward(client.clone(), authority.clone(), request)),
            ),
            Some(floor) => {
                let floor = Arc::clone(floor);
                serve_connection(
                    stream,
                    service_fn(move |request| {
                        crate::floor::forward(
                            Arc::clone(&floor),
                            client.clone(),
                            authority.clone(),
                            request,
                        )
                    }),
                );
            }
        }
    }
}

/// Builds hyper's pooled client with `TCP_NODELAY`, as the hop and the floor use it.
pub fn pooled_client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

fn serve_connection<S>(stream: tokio::net::TcpStream, service: S)
where
    S: HttpService<Incoming, ResBody = HopBody> + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    spawn_named("hop-connection", async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
}

async fn forward(
    client: HopClient,
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Response<HopBody>, http::Error> {
    match client.request(upstream_request(authority, request)?).await {
        Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
        Err(error) => bad_gateway(format!("hop: upstream failed: {error}")),
    }
}

/// Points `request` at upstream: the scheme and authority of `authority`, the same path and
/// query, and no `Host` header (the client sets it from the URI).
pub fn upstream_request(
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Request<Incoming>, http::Error> {
    let (mut parts, body) = request.into_parts();
    let mut uri = Uri::builder().scheme(Scheme::HTTP).authority(authority);
    if let Some(path) = parts.uri.path_and_query() {
        uri = uri.path_and_query(path.clone());
    }
    parts.uri = uri.build()?;
    parts.headers.remove(header::HOST);
    Ok(Request::from_parts(parts, body))
}

/// Builds a `502 Bad Gateway` response with `message` as its body.
pub fn bad_gateway(message: String) -> Result<Response<HopBody>, http::Error> {
    let body = http_body_util::Full::new(bytes::Bytes::from(message))
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(body)
}
