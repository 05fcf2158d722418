//! The HTTP side of the fake: an axum server on a loopback port that checks the API key,
//! acts out injected faults and hands each request to the router under the store's lock.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::errors::{ApiError, Reply, injected_status};
use super::faults::{Fault, FaultBook};
use super::routes::{Request, dispatch};
use super::store::Store;

/// Blnk's default maximum request body, 5 MiB.
const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// State shared by the server task and the `FakeBlnk` handle.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<ServerState>,
}

#[derive(Debug)]
pub struct ServerState {
    pub store: Store,
    pub faults: FaultBook,
    /// Method and path of every request received, in order.
    pub requests: Vec<(String, String)>,
    /// The master key the fake requires in `X-Blnk-Key`, if any.
    pub key: Option<String>,
}

/// What the handler does once the lock is released.
enum Plan {
    Answer(Reply),
    AnswerAfter(std::time::Duration, Reply),
}

impl Shared {
    pub fn new(key: Option<String>) -> Shared {
        let state = ServerState {
            store: Store::new(),
            faults: FaultBook::default(),
            requests: Vec::new(),
            key,
        };
        Shared {
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A panic while locked cannot leave the state half-written in a way
    /// that matters to a test double, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts serving on `listener` in a background task, which ends when the handle is aborted.
pub fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    let router = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    // The fake lives outside the library, so it cannot use the library's named-task helper.
    // The `FakeBlnk` handle owns this task and aborts it on drop.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("fake Blnk server stopped: {error}");
        }
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plan = plan_response(&shared, method.as_str(), &uri, &headers, &body);
    let reply = match plan {
        Plan::Answer(reply) => reply,
        Plan::AnswerAfter(delay, reply) => {
            tokio::time::sleep(delay).await;
            reply
        }
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// Decides the response under the lock, and applies the request unless a fault prevents it.
fn plan_response(
    shared: &Shared,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Plan {
    let path = uri.path();
    let mut state = shared.lock();
    state.requests.push((method.to_owned(), path.to_owned()));

    let fault = state.faults.take(method, path);
    if fault == Some(Fault::Down) {
        return Plan::Answer(injected_status(503));
    }
    if let Some(rejection) = check_key(state.key.as_deref(), method, path, headers) {
        return Plan::Answer(rejection);
    }

    let request = Request {
        method,
        segments: path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(percent_decode)
            .collect(),
        query: Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|query| query.0)
            .unwrap_or_default(),
        body,
    };
    match fault {
        Some(Fault::Status(status)) => Plan::Answer(injected_status(status)),
        Some(Fault::Hang(delay)) => Plan::AnswerAfter(delay, injected_status(500)),
        Some(Fault::ApplyThenFail(status)) => {
            dispatch(&mut state.store, &request);
            Plan::Answer(injected_status(status))
        }
        Some(Fault::ApplyThenHang(delay)) => {
            Plan::AnswerAfter(delay, dispatch(&mut state.store, &request))
        }
        Some(Fault::Down) | None => Plan::Answer(dispatch(&mut state.store, &request)),
    }
}

/// Blnk's master-key check. `GET /` and `GET /health` need no key.
fn check_key(key: Option<&str>, method: &str, path: &str, headers: &HeaderMap) -> Option<Reply> {
    let key = key?;
    if method == "GET" && matches!(path, "/" | "/health") {
        return None;
    }
    match headers.get("x-blnk-key").map(|value| value.as_bytes()) {
        None => {
            let message = "Authentication required. Use X-Blnk-Key header";
            Some(ApiError::new("AUTH_MISSING_API_KEY", message).into())
        }
        Some(sent) if sent == key.as_bytes() => None,
        Some(_) => Some(ApiError::new("AUTH_INVALID_API_KEY", "Invalid API key").into()),
    }
}

/// Decodes `%XX` escapes in one path segment.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok());
        match (
            bytes[index],
            escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
