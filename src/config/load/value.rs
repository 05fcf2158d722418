//! Parsing and validation of one value according to its [`Kind`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Uri};
use rust_decimal::Decimal;
use toml::de::DeValue;

use super::keys::Kind;
use super::units::{parse_duration, parse_size};
use crate::config::{DisconnectPolicy, Durability, LogFormat};
use crate::secret::Secret;

/// A value as written, before parsing.
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    /// The text of an environment variable or a built-in default.
    Text(&'a str),
    /// A value of the configuration file.
    Toml(&'a DeValue<'a>),
}

/// A parsed and validated value.
#[derive(Clone, Debug)]
pub(super) enum Value {
    Text(String),
    Secret(Secret),
    ClientKeys(Vec<Secret>),
    Path(PathBuf),
    Address(SocketAddr),
    Header(HeaderName),
    Integer(u64),
    Duration(Duration),
    Bool(bool),
    Decimal(Decimal),
    LogFormat(LogFormat),
    DisconnectPolicy(DisconnectPolicy),
    Durability(Durability),
    Routes(Vec<String>),
}

/// The expected form of a value, for the message about an invalid one.
type Expected = Cow<'static, str>;

const DURATION: &str = "a duration such as 500ms, 10s or 5m";
const SIZE: &str = "a size in bytes such as 1048576, 512KiB, 64MiB or 1GiB";
const URL: &str = "an http or https URL such as https://api.example.com";

/// Header names that must not carry the customer id: hop-by-hop headers, which proxies
/// remove or rewrite on the way, and `authorization`, which carries the client's API key.
const FORBIDDEN_CUSTOMER_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Raw<'_> {
    /// Renders the value for a message: strings quoted and escaped, other TOML values as
    /// written, arrays and tables abbreviated. Never called for secrets.
    pub(super) fn render(&self) -> String {
        match self {
            Raw::Text(text) => format!("{:?}", mask_userinfo(text)),
            Raw::Toml(DeValue::String(text)) => format!("{:?}", mask_userinfo(text)),
            Raw::Toml(DeValue::Integer(integer)) => integer.to_string(),
            Raw::Toml(DeValue::Float(float)) => float.to_string(),
            Raw::Toml(DeValue::Boolean(flag)) => flag.to_string(),
            Raw::Toml(DeValue::Datetime(datetime)) => datetime.to_string(),
            Raw::Toml(DeValue::Array(_)) => "[...]".to_owned(),
            Raw::Toml(DeValue::Table(_)) => "{...}".to_owned(),
        }
    }

    /// Returns the text of an environment value, a default or a TOML string.
    fn text(&self) -> Option<&str> {
        match self {
            Raw::Text(text) => Some(text),
            Raw::Toml(value) => value.as_str(),
        }
    }

    /// Returns the value of a non-negative TOML integer, or `None` for any other value.
    fn toml_u64(&self) -> Option<u64> {
        match self {
            Raw::Toml(DeValue::Integer(integer)) => {
                u64::from_str_radix(integer.as_str(), integer.radix()).ok()
            }
            _ => None,
        }
    }
}

/// Replaces the user and password of a URL such as `https://user:password@host` with `****`,
/// so that a rejected URL can be shown without its credentials.
fn mask_userinfo(text: &str) -> Cow<'_, str> {
    let Some(scheme_end) = text.find("://") else {
        return Cow::Borrowed(text);
    };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}****{}", &text[..authority_start], &rest[at..])),
        None => Cow::Borrowed(text),
    }
}

/// Parses and validates `raw` as a value of `kind`. On failure, returns the expected form
/// for the error message.
pub(super) fn parse(kind: Kind, raw: Raw<'_>) -> Result<Value, Expected> {
    match kind {
        Kind::Text => parse_text(raw).map(Value::Text),
        Kind::Secret => parse_secret(raw).map(Value::Secret),
        Kind::ClientKeys => parse_client_keys(raw).map(Value::ClientKeys),
        Kind::Path => parse_path(raw).map(Value::Path),
        Kind::Url => parse_url(raw, false).map(Value::Text),
        Kind::ApiBaseUrl => parse_url(raw, true).map(Value::Text),
        Kind::Address => parse_address(raw).map(Value::Address),
        Kind::CustomerHeader => parse_customer_header(raw).map(Value::Header),
        Kind::Size { min_bytes } => parse_size_value(raw, min_bytes).map(Value::Integer),
        Kind::Count => parse_count(raw).map(Value::Integer),
        Kind::Duration => parse_duration_value(raw).map(Value::Duration),
        Kind::PositiveDuration => parse_positive_duration(raw).map(Value::Duration),
        Kind::Bool => parse_bool(raw).map(Value::Bool),
        Kind::PositiveDecimal => parse_positive_decimal(raw).map(Value::Decimal),
        Kind::LogFilter => parse_log_filter(raw).map(Value::Text),
        Kind::LogFormat => parse_log_format(raw).map(Value::LogFormat),
        Kind::DisconnectPolicy => parse_disconnect_policy(raw).map(Value::DisconnectPolicy),
        Kind::Durability => parse_durability(raw).map(Value::Durability),
        Kind::Routes => parse_routes(raw).map(Value::Routes),
    }
}

fn parse_text(raw: Raw<'_>) -> Result<String, Expected> {
    match raw.text() {
        Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
        _ => Err("a non-empty string".into()),
    }
}

/// Accepts visible ASCII characters without spaces, so that the secret fits in an HTTP header
/// such as `Authorization: Bearer <key>`.
fn parse_secret(raw: Raw<'_>) -> Result<Secret, Expected> {
    let text = raw.text().unwrap_or_default();
    let is_token = !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic());
    if is_token {
        Ok(Secret::new(text))
    } else {
        Err("a non-empty string of visible ASCII characters without spaces".into())
    }
}

/// Accepts a TOML array of strings, or comma-separated text in which empty entries are
/// skipped. At least one key must remain, and each must pass
/// [`crate::auth::validate_client_key`].
fn parse_client_keys(raw: Raw<'_>) -> Result<Vec<Secret>, Expected> {
    let entries: Option<Vec<&str>> = match raw {
        Raw::Toml(DeValue::Array(items)) => {
            items.iter().map(|item| item.get_ref().as_str()).collect()
        }
        _ => raw.text().map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .collect()
        }),
    };
    match entries {
        Some(entries)
            if !entries.is_empty()
                && entries
                    .iter()
                    .all(|entry| crate::auth::validate_client_key(entry).is_ok()) =>
        {
            Ok(entries.into_iter().map(Secret::new).collect())
        }
        _ => Err(format!(
            "a list of one or more keys (comma-separated in an environment variable), each {}",
            crate::auth::KEY_RULE
        )
        .into()),
    }
}

fn parse_path(raw: Raw<'_>) -> Result<PathBuf, Expected> {
    match raw.text() {
        Some(text) if !text.trim().is_empty() => Ok(PathBuf::from(text)),
        _ => Err("a non-empty path".into()),
    }
}

/// Accepts an absolute http or https URL without credentials, query or fragment. Returns it
/// without trailing `/`, and also without a final `/v1` when `strip_version` is set.
fn parse_url(raw: Raw<'_>, strip_version: bool) -> Result<String, Expected> {
    let text = raw.text().map(str::trim).ok_or(URL)?;
    if text.contains(['#', ' ']) {
        return Err(URL.into());
    }
    let uri = Uri::from_str(text).map_err(|_| URL)?;
    let is_http = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority = uri.authority().map(|authority| authority.as_str());
    let has_host = authority.is_some_and(|authority| !authority.is_empty());
    if !is_http || !has_host {
        return Err(URL.into());
    }
    if authority.is_some_and(|authority| authority.contains('@')) || uri.query().is_some() {
        return Err("an http or https URL without credentials or query".into());
    }

    // Without query and fragment the text ends with the path. When the path is `/`, a final
    // `v1` belongs to the host, as in `https://v1`, and stays.
    let base = text.trim_end_matches('/');
    let base = match base.strip_suffix("/v1") {
        Some(shorter) if strip_version && uri.path() != "/" => shorter.trim_end_matches('/'),
        _ => base,
    };
    Ok(base.to_owned())
}

fn parse_address(raw: Raw<'_>) -> Result<SocketAddr, Expected> {
    raw.text()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| "a socket address such as 127.0.0.1:8080 or [::1]:8080".into())
}

fn parse_customer_header(raw: Raw<'_>) -> Result<HeaderName, Expected> {
    let header = raw
        .text()
        .and_then(|text| HeaderName::from_str(text.trim()).ok())
        .ok_or("a header name such as X-Customer-Id")?;
    if FORBIDDEN_CUSTOMER_HEADERS.contains(&header.as_str()) {
        return Err("a header name other than Authorization and hop-by-hop headers".into());
    }
    Ok(header)
}

fn parse_size_value(raw: Raw<'_>, min_bytes: u64) -> Result<u64, Expected> {
    let bytes = match raw.text() {
        Some(text) => parse_size(text),
        None => raw.toml_u64(),
    }
    .ok_or(SIZE)?;
    if bytes < min_bytes {
        return Err(format!("{SIZE}, of at least {min_bytes} bytes").into());
    }
    Ok(bytes)
}

fn parse_count(raw: Raw<'_>) -> Result<u64, Expected> {
    let count = match raw.text() {
        Some(text) => text.trim().parse().ok(),
        None => raw.toml_u64(),
    };
    match count {
        Some(count) if count > 0 => Ok(count),
        _ => Err("a whole number greater than 0".into()),
    }
}

/// Accepts a duration string, or a whole number of seconds as a TOML integer.
fn parse_duration_value(raw: Raw<'_>) -> Result<Duration, Expected> {
    match raw.text() {
        Some(text) => parse_duration(text),
        None => raw.toml_u64().map(Duration::from_secs),
    }
    .ok_or_else(|| DURATION.into())
}

fn parse_positive_duration(raw: Raw<'_>) -> Result<Duration, Expected> {
    let duration = parse_duration_value(raw)?;
    if duration.is_zero() {
        return Err("a duration greater than zero, such as 500ms, 10s or 5m".into());
    }
    Ok(duration)
}

fn parse_bool(raw: Raw<'_>) -> Result<bool, Expected> {
    if let Raw::Toml(DeValue::Boolean(flag)) = raw {
        return Ok(*flag);
    }
    let text = raw.text().map(str::trim).unwrap_or_default();
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") || text == "0" {
        Ok(false)
    } else {
        Err("true or false".into())
    }
}

/// Parses the decimal from its text, so that a TOML float such as `1.1` never passes
/// through a binary float.
fn parse_positive_decimal(raw: Raw<'_>) -> Result<Decimal, Expected> {
    let decimal = match raw {
        Raw::Toml(DeValue::Integer(integer)) => {
            i64::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .map(Decimal::from)
        }
        Raw::Toml(DeValue::Float(float)) => decimal_from_text(float.as_str()),
        _ => raw.text().and_then(decimal_from_text),
    };
    match decimal {
        Some(decimal) if decimal > Decimal::ZERO => Ok(decimal),
        _ => Err("a decimal number greater than 0 such as 1 or 1.25".into()),
    }
}

fn decimal_from_text(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

fn parse_log_filter(raw: Raw<'_>) -> Result<String, Expected> {
    match raw.text() {
        Some(text) if tracing_subscriber::EnvFilter::try_new(text).is_ok() => Ok(text.to_owned()),
        _ => Err("a tracing filter such as info or tollgate=debug,info".into()),
    }
}

fn parse_log_format(raw: Raw<'_>) -> Result<LogFormat, Expected> {
    match lowercase_word(raw).as_deref() {
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        _ => Err("text or json".into()),
    }
}

fn parse_disconnect_policy(raw: Raw<'_>) -> Result<DisconnectPolicy, Expected> {
    match lowercase_word(raw).as_deref() {
        Some("drain") => Ok(DisconnectPolicy::Drain),
        Some("stop") => Ok(DisconnectPolicy::Stop),
        _ => Err("drain or stop".into()),
    }
}

fn parse_durability(raw: Raw<'_>) -> Result<Durability, Expected> {
    match lowercase_word(raw).as_deref() {
        Some("process") => Ok(Durability::Process),
        Some("power") => Ok(Durability::Power),
        _ => Err("process or power".into()),
    }
}

fn lowercase_word(raw: Raw<'_>) -> Option<String> {
    raw.text().map(|text| text.trim().to_ascii_lowercase())
}

/// Accepts a TOML array of strings, or comma-separated text in which empty entries are
/// skipped. Every entry must be a URL path: it starts with `/` and has no whitespace, query
/// or fragment.
fn parse_routes(raw: Raw<'_>) -> Result<Vec<String>, Expected> {
    let entries: Option<Vec<&str>> = match raw {
        Raw::Text(text) => Some(
            text.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .collect(),
        ),
        Raw::Toml(DeValue::Array(items)) => {
            items.iter().map(|item| item.get_ref().as_str()).collect()
        }
        Raw::Toml(_) => None,
    };
    match entries {
        Some(entries) if entries.iter().all(|entry| is_route(entry)) => {
            Ok(entries.into_iter().map(str::to_owned).collect())
        }
        _ => Err(
            "a list of paths that start with /, such as [\"/v1/files\"] \
                  (comma-separated in an environment variable)"
                .into(),
        ),
    }
}

fn is_route(entry: &str) -> bool {
    entry.starts_with('/')
        && !entry.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
}

#[cfg(test)]
mod tests;
