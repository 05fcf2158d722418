//! Bearer-token authentication of the admin API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::AdminError;
use crate::proxy::AppState;
use crate::secret::Secret;

/// Passes a request on only when it carries `Authorization: Bearer <admin token>`.
/// Without a configured token, every request gets the "admin API is off" error.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.config.admin.token else {
        return AdminError::disabled().into_response();
    };
    match check(request.headers(), expected) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::warn!(code = error.code, path = %request.uri().path(), "admin API request rejected");
            error.into_response()
        }
    }
}

/// Checks the `Authorization` header against the configured token.
pub fn check(headers: &HeaderMap, expected: &Secret) -> Result<(), AdminError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AdminError::unauthenticated(
            "missing_admin_token",
            "missing admin token: send the header `Authorization: Bearer <token>` with the value of TOLLGATE_ADMIN_TOKEN",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|text| text.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return Err(AdminError::unauthenticated(
            "invalid_admin_token",
            "invalid Authorization header: expected `Bearer <token>` with the value of TOLLGATE_ADMIN_TOKEN",
        ));
    };
    if tokens_match(token, expected.expose()) {
        Ok(())
    } else {
        Err(AdminError::unauthenticated(
            "invalid_admin_token",
            "invalid admin token: the bearer token does not match TOLLGATE_ADMIN_TOKEN",
        ))
    }
}

/// Compares two tokens in time that depends on neither: both are hashed to 32 bytes first,
/// so even their lengths stay hidden, and the digests are compared in constant time.
fn tokens_match(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.as_slice().ct_eq(expected.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(
                AUTHORIZATION,
                HeaderValue::from_str(value).expect("valid header"),
            );
        }
        headers
    }

    #[test]
    fn bearer_token_is_checked() {
        let secret = Secret::new("s3cret-token");
        let cases = [
            (Some("Bearer s3cret-token"), None),
            (Some("bearer s3cret-token"), None),
            (Some("Bearer  s3cret-token "), None),
            (None, Some("missing_admin_token")),
            (Some("Bearer wrong"), Some("invalid_admin_token")),
            (Some("Bearer s3cret-token2"), Some("invalid_admin_token")),
            (Some("Bearer "), Some("invalid_admin_token")),
            (Some("Basic czNjcmV0"), Some("invalid_admin_token")),
            (Some("s3cret-token"), Some("invalid_admin_token")),
        ];
        for (header, expected) in cases {
            let result = check(&headers(header), &secret)
                .err()
                .map(|error| error.code);
            assert_eq!(result, expected, "{header:?}");
        }
    }

    #[test]
    fn messages_never_echo_the_token() {
        let secret = Secret::new("s3cret-token");
        let error = check(&headers(Some("Bearer s3cret-tokem")), &secret).expect_err("wrong token");
        assert!(!error.message.contains("s3cret"), "{}", error.message);
        assert!(
            error.message.contains("TOLLGATE_ADMIN_TOKEN"),
            "{}",
            error.message
        );
    }
}
