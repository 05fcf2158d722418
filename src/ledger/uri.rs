//! Request URIs of Blnk calls, built from the base URL by string concatenation, so no URL
//! parser runs on the request path.

use http::Uri;
use http::uri::{Authority, InvalidUri, PathAndQuery, Scheme};

use super::LedgerError;

/// A validated Blnk base URL: an http or https origin and an optional path prefix.
#[derive(Clone)]
pub(super) struct BaseUri {
    /// The URL as configured, for messages and `Debug`.
    text: String,
    scheme: Scheme,
    authority: Authority,
    /// The base path without a trailing `/`: empty, or such as `/blnk`.
    prefix: String,
}

impl BaseUri {
    /// Parses an absolute http or https URL without credentials, query or fragment.
    pub(super) fn parse(base_url: &str) -> Result<BaseUri, LedgerError> {
        let (scheme, authority, prefix) =
            split_base(base_url).map_err(|reason| LedgerError::InvalidConfig {
                detail: format!(
                    "invalid Blnk URL {:?}: {reason}",
                    mask_credentials(base_url)
                ),
            })?;
        Ok(BaseUri {
            text: base_url.to_string(),
            scheme,
            authority,
            prefix,
        })
    }

    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// Builds the URI of `segments` under the base path, percent-encoding each segment (a
    /// `/` inside an id becomes `%2F`), with an optional query parameter.
    pub(super) fn join(
        &self,
        segments: &[&str],
        query: Option<(&str, &str)>,
    ) -> Result<Uri, http::Error> {
        let mut path = String::with_capacity(self.prefix.len() + 64);
        path.push_str(&self.prefix);
        for segment in segments {
            path.push('/');
            push_encoded(&mut path, segment, is_path_char);
        }
        if let Some((name, value)) = query {
            path.push('?');
            push_encoded(&mut path, name, is_query_char);
            path.push('=');
            push_encoded(&mut path, value, is_query_char);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

/// Splits a base URL into its scheme, authority and path prefix without a trailing `/`, or
/// returns the reason it is invalid.
fn split_base(base_url: &str) -> Result<(Scheme, Authority, String), String> {
    const NOT_HTTP: &str = "expected an http:// or https:// URL";
    const NOT_BASE: &str = "expected a base URL without query or fragment";
    // http::Uri drops a fragment silently, so it is rejected before parsing.
    if base_url.contains('#') {
        return Err(NOT_BASE.to_string());
    }
    let uri: Uri = base_url
        .parse()
        .map_err(|error: InvalidUri| error.to_string())?;
    let parts = uri.into_parts();

    let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
        return Err(NOT_HTTP.to_string());
    };
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(NOT_HTTP.to_string());
    }
    if authority.host().is_empty() {
        return Err("expected a host name or address after the scheme".to_string());
    }
    if authority.as_str().contains('@') {
        return Err(
            "expected a URL without credentials; Blnk authenticates with BLNK_API_KEY".to_string(),
        );
    }

    let path = parts
        .path_and_query
        .as_ref()
        .map_or("", PathAndQuery::as_str);
    if path.contains('?') {
        return Err(NOT_BASE.to_string());
    }
    Ok((scheme, authority, path.trim_end_matches('/').to_string()))
}

/// Replaces the user and password of a URL such as `http://user:password@host` with `****`,
/// so that a rejected URL can be shown without them.
fn mask_credentials(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}****{}", &text[..authority_start], &rest[at..]),
        None => text.to_string(),
    }
}

/// Appends `text` with every byte that `keep` rejects written as `%XX`.
fn push_encoded(out: &mut String, text: &str, keep: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Returns true for the characters RFC 3986 allows unencoded in a path segment (`pchar`).
fn is_path_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte)
}

/// Returns true for the characters kept unencoded in a query name or value: those of a path
/// segment except `&`, `=`, `+` and `;`, which form decoders read as separators or a space.
fn is_query_char(byte: u8) -> bool {
    is_path_char(byte) && !b"&=+;".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> BaseUri {
        BaseUri::parse(text).expect("valid base URL")
    }

    #[test]
    fn segments_join_under_base_path() {
        let cases = [
            (
                "http://127.0.0.1:5001",
                "http://127.0.0.1:5001/transactions/bulk",
            ),
            (
                "http://127.0.0.1:5001/",
                "http://127.0.0.1:5001/transactions/bulk",
            ),
            ("http://proxy/blnk", "http://proxy/blnk/transactions/bulk"),
            ("http://proxy/blnk/", "http://proxy/blnk/transactions/bulk"),
            (
                "https://blnk:8443/a/b/",
                "https://blnk:8443/a/b/transactions/bulk",
            ),
        ];
        for (text, expected) in cases {
            let uri = base(text)
                .join(&["transactions", "bulk"], None)
                .expect("uri");
            assert_eq!(uri.to_string(), expected, "base {text}");
        }
    }

    #[test]
    fn reserved_bytes_are_percent_encoded() {
        let uri = base("http://blnk")
            .join(&["balances", "a b/c?d#e%\u{e9}\"<>`{}|^[]\\"], None)
            .expect("uri");
        assert_eq!(
            uri.path(),
            "/balances/a%20b%2Fc%3Fd%23e%25%C3%A9%22%3C%3E%60%7B%7D%7C%5E%5B%5D%5C"
        );
    }

    #[test]
    fn query_value_is_encoded() {
        let uri = base("http://blnk")
            .join(
                &["balances", "b", "at"],
                Some(("timestamp", "2026-12-04T15:57:34+01:00&x=1")),
            )
            .expect("uri");
        assert_eq!(
            uri.query(),
            Some("timestamp=2026-12-04T15:57:34%2B01:00%26x%3D1")
        );
    }

    #[test]
    fn invalid_base_urls_are_rejected() {
        let cases = [
            ("127.0.0.1:5001", "http:// or https://"),
            ("ftp://blnk", "http:// or https://"),
            ("http://blnk/?x=1", "without query"),
            ("http://blnk/#top", "without query or fragment"),
            ("http://user:secret@blnk", "without credentials"),
            ("not a url", "invalid"),
            ("", "invalid"),
        ];
        for (text, expected) in cases {
            let error = BaseUri::parse(text).err().expect("rejected").to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
