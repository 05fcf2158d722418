//! Header hygiene between the client, tollgate and upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::Config;
use crate::secret::Secret;

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and the framing headers tollgate recomputes.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers that describe the operator's OpenAI account. They are not the client's business
/// when tollgate calls upstream with the operator's key.
const OPERATOR_ACCOUNT: [&str; 2] = ["openai-organization", "openai-project"];

/// Builds the headers sent upstream from the client's. Hop-by-hop headers, `Host`,
/// `Content-Length` and the customer header are dropped. `Accept-Encoding` becomes `identity`,
/// because a compressed body cannot be metered. The client's key is replaced by the
/// operator's when one is configured.
pub fn upstream_request_headers(
    client: &HeaderMap,
    customer_header: &HeaderName,
    api_key: Option<&Secret>,
) -> HeaderMap {
    let listed = connection_listed(client);
    let mut out = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        let drop = HOP_BY_HOP.contains(name)
            || listed.contains(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::ACCEPT_ENCODING
            || name == customer_header
            || (api_key.is_some()
                && (name == header::AUTHORIZATION || OPERATOR_ACCOUNT.contains(&name.as_str())));
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Some(key) = api_key
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
    {
        value.set_sensitive(true);
        out.insert(header::AUTHORIZATION, value);
    }
    out
}

/// Returns the headers and the path with query that a client request is forwarded upstream
/// with.
pub fn forwarded(parts: &http::request::Parts, config: &Config) -> (HeaderMap, String) {
    let headers = upstream_request_headers(
        &parts.headers,
        &config.customer_header,
        config.upstream.api_key.as_ref(),
    );
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    (headers, path.to_string())
}

/// Builds the headers returned to the client from upstream's. Hop-by-hop headers,
/// `Content-Length` (recomputed) and cookies are dropped. With the operator's key, so are the
/// headers that name the operator's OpenAI organization and project.
pub fn client_response_headers(upstream: &HeaderMap, operator_key: bool) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 3);
    for (name, value) in upstream {
        let drop = HOP_BY_HOP.contains(name)
            || listed.contains(name)
            || name == header::CONTENT_LENGTH
            || name == header::SET_COOKIE
            || (operator_key && OPERATOR_ACCOUNT.contains(&name.as_str()));
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Header names listed in a `Connection` header, which are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn operator_key_replaces_client_key() {
        let client = map(&[
            ("authorization", "Bearer sk-client"),
            ("x-customer-id", "c1"),
            ("host", "tollgate"),
            ("content-length", "10"),
            ("accept-encoding", "gzip"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("openai-organization", "org-client"),
            ("x-stainless-lang", "python"),
        ]);
        let customer = HeaderName::from_static("x-customer-id");
        let out = upstream_request_headers(&client, &customer, Some(&Secret::new("sk-operator")));
        assert_eq!(out["authorization"], "Bearer sk-operator");
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["x-stainless-lang"], "python");
        for gone in [
            "x-customer-id",
            "host",
            "content-length",
            "connection",
            "x-private",
            "openai-organization",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn client_key_passes_without_operator_key() {
        let client = map(&[
            ("authorization", "Bearer sk-client"),
            ("openai-project", "p"),
        ]);
        let customer = HeaderName::from_static("x-customer-id");
        let out = upstream_request_headers(&client, &customer, None);
        assert_eq!(out["authorization"], "Bearer sk-client");
        assert_eq!(out["openai-project"], "p");
    }

    #[test]
    fn response_headers_drop_framing_and_cookies() {
        let upstream = map(&[
            ("content-type", "application/json"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "__cf=1"),
            ("x-request-id", "req_1"),
            ("retry-after", "1"),
            ("openai-organization", "org-op"),
        ]);
        let out = client_response_headers(&upstream, true);
        assert_eq!(out["x-request-id"], "req_1");
        assert_eq!(out["retry-after"], "1");
        for gone in [
            "content-length",
            "transfer-encoding",
            "set-cookie",
            "openai-organization",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
    }
}
