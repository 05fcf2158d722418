//! Identifiers that cross tollgate's interfaces: customer ids and request ids.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Maximum length of a customer id, in bytes.
pub const CUSTOMER_ID_MAX_LEN: usize = 128;

/// A customer id matching `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`, the same rule for the
/// request header, the CLI and the admin API.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid customer id {shown:?}: use 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -, starting with a letter or digit"
)]
pub struct InvalidCustomerId {
    shown: String,
}

impl CustomerId {
    pub fn parse(text: &str) -> Result<CustomerId, InvalidCustomerId> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= CUSTOMER_ID_MAX_LEN
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if valid {
            Ok(CustomerId(text.to_string()))
        } else {
            // Echo at most a short, printable prefix so a hostile header cannot flood logs.
            let shown: String = text.chars().take(64).filter(|c| !c.is_control()).collect();
            Err(InvalidCustomerId { shown })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CustomerId {
    type Err = InvalidCustomerId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CustomerId::parse(text)
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one proxied request: a UUIDv7, so ids sort by time. It names the request's
/// ledger references (`tg:<request-id>:usd`) and is returned in `x-tollgate-request-id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub Uuid);

impl RequestId {
    pub fn new() -> Self {
        RequestId(Uuid::now_v7())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RequestId {
    type Err = uuid::Error;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(RequestId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_id_pattern() {
        for good in ["a", "cust_001", "Acme.eu:team-7", &"x".repeat(128)] {
            assert!(CustomerId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "_x", "-x", "a b", "a/b", "é", &"x".repeat(129), "a\nb"] {
            assert!(CustomerId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
