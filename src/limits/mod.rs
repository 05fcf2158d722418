//! Limits on what a client may send to the proxy listener: header size, JSON nesting depth
//! and open connections. The body size limit is applied where the body is read.

mod connections;
mod json_depth;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use crate::error::ProxyError;

pub use connections::{ConnectionLimit, LimitedIo};
pub use json_depth::{DepthExceeded, check_json_depth};

/// Returns the size of a request's headers: the bytes of every name and value. Separators,
/// the request line and HTTP/2 pseudo-headers are not counted.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// Rejects a request with 431 in OpenAI's error shape when its headers are larger than
/// `max_header_bytes`, before any handler runs. Used as axum middleware.
pub async fn enforce_header_limit(
    State(max_header_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let size = header_bytes(request.headers());
    if size <= max_header_bytes {
        return next.run(request).await;
    }
    tracing::info!(
        header_bytes = size,
        max_header_bytes,
        path = request.uri().path(),
        "request rejected: headers too large"
    );
    ProxyError::HeadersTooLarge {
        size,
        limit: max_header_bytes,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn header_bytes_counts_names_and_values() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_bytes(&headers), 0);
        headers.insert(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("12345"),
        );
        headers.append(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("6"),
        );
        headers.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer k"),
        );
        assert_eq!(header_bytes(&headers), (3 + 5) + (3 + 1) + (13 + 8));
    }
}
