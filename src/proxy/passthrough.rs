//! Routes forwarded without metering: `GET /v1/models` and the operator's configured list.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::ids::CustomerId;

use super::AppState;
use super::headers::{client_response_headers, forwarded};
use super::metered::{BodyTimeouts, build_response, read_body};

/// Forwards a request that costs nothing (model listings).
pub async fn forward(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::count_request(
        crate::telemetry::Route::Models,
        respond(relay(state, request, false).await),
    )
}

/// Forwards a route the operator listed in `pass_through_routes`, and logs it: its usage, if
/// any, is not billed.
pub async fn forward_logged(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::count_request(
        crate::telemetry::Route::PassThrough,
        respond(relay(state, request, true).await),
    )
}

fn respond(result: Result<Response, ProxyError>) -> Response {
    result.unwrap_or_else(|error| {
        let (status, _, code) = error.parts();
        tracing::info!(status = status.as_u16(), code, %error, "pass-through request rejected");
        error.into_response()
    })
}

async fn relay(state: Arc<AppState>, request: Request, log: bool) -> Result<Response, ProxyError> {
    let config = &state.config;
    let (parts, body) = request.into_parts();
    let caller = state.auth.authenticate(&parts.headers).await?;
    if log {
        log_unmetered(&parts, &caller, &config.customer_header);
    }
    let body = read_body(
        body,
        &parts.headers,
        config.max_body_bytes,
        BodyTimeouts::from_config(config),
    )
    .await?;
    let (headers, path) = forwarded(&parts, config);
    let upstream = state
        .upstream
        .send(parts.method, &path, headers, body)
        .await?;

    let (head, body) = upstream.into_parts();
    let headers = client_response_headers(&head.headers, config.upstream.api_key.is_some());
    // Data frames only: trailers from upstream are not relayed.
    let stream = body.into_data_stream();
    Ok(build_response(
        head.status,
        headers,
        Body::from_stream(stream),
    ))
}

/// Logs an unmetered request with its customer: the key's, or the customer header's when it
/// contains a valid customer id.
fn log_unmetered(
    parts: &http::request::Parts,
    caller: &Caller,
    customer_header: &http::HeaderName,
) {
    let customer = match caller {
        Caller::KeyHolder { customer, .. } => Some(customer.clone()),
        Caller::Trusted => parts
            .headers
            .get(customer_header)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| CustomerId::parse(text.trim()).ok()),
    };
    let customer = customer.as_ref().map_or("-", CustomerId::as_str);
    tracing::info!(method = %parts.method, path = %parts.uri.path(), customer,
        "unmetered pass-through request");
}
