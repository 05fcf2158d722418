//! Routes forwarded without metering: `GET /v1/models` and the operator's configured list.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use crate::error::ProxyError;

use super::AppState;
use super::headers::{client_response_headers, upstream_request_headers};
use super::metered::build_response;

/// Forwards a request that costs nothing (model listings).
pub async fn forward(State(state): State<Arc<AppState>>, request: Request) -> Response {
    relay(state, request).await.unwrap_or_else(IntoResponse::into_response)
}

/// Forwards a route the operator listed in `pass_through_routes`, and logs it: its usage, if
/// any, is not billed.
pub async fn forward_logged(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let customer = request
        .headers()
        .get(&state.config.customer_header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    tracing::info!(method = %request.method(), path = %request.uri().path(), customer = %customer,
        "unmetered pass-through request");
    forward(State(state), request).await
}

async fn relay(state: Arc<AppState>, request: Request) -> Result<Response, ProxyError> {
    let config = &state.config;
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, config.max_body_bytes)
        .collect()
        .await
        .map_err(|_| ProxyError::BodyTooLarge {
            limit: config.max_body_bytes,
        })?
        .to_bytes();
    let headers = upstream_request_headers(&parts.headers, &config.customer_header, config.upstream.api_key.as_ref());
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let upstream = state.upstream.send(parts.method, path, headers, body).await?;

    let status = upstream.status();
    let headers = client_response_headers(upstream.headers(), config.upstream.api_key.is_some());
    let stream = upstream.bytes_stream();
    Ok(build_response(status, headers, Body::from_stream(stream)))
}
