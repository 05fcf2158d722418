//! Client authentication on the proxy listener.
//!
//! Without any configuration tollgate trusts the customer header, which is safe only when
//! the listener is reachable by the application beside it alone (the loopback default).
//! Two kinds of client keys, sent as the OpenAI SDK's `api_key` (`Authorization: Bearer`),
//! narrow that trust:
//!
//! - Global client keys (`client_keys`, `client_keys_file`): when any is configured, every
//!   request needs one of them (or a per-customer key), and the customer header names the
//!   customer as before.
//! - Per-customer keys (`tg-<key-id>-<secret>`, minted with `tollgate key create`): a
//!   request carrying one is billed to that key's customer whatever customer the
//!   customer header names. They work with or without global keys.
//!
//! `require_client_key = true` rejects requests without a valid key even when no global
//! key is configured, which leaves per-customer keys as the only way in.

mod client_keys;
pub mod commands;
mod customer_key;
mod directory;

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::Config;
use crate::error::ProxyError;
use crate::ids::CustomerId;
use crate::ledger::BlnkClient;

pub use client_keys::{
    ClientKeyError, ClientKeySet, KEY_RULE, MAX_KEY_CHARS, MIN_KEY_CHARS, parse_keys_file,
    validate_client_key,
};
pub use commands::{CustomerKeys, IssuedKey, KeyAdminError, KeyCommand, KeyStatus, RevokedKey};
pub use customer_key::{
    InvalidKeyId, KEY_PREFIX, KeyDigest, KeyId, METADATA_PREFIX, MintedKey, REVOKED, RandomError,
    mint, parse_key,
};
pub use directory::{KeyDirectory, KeyRecord, holder_filter, record_from_balances};

/// The sender of a request that passed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A per-customer key: the request is billed to the key's customer.
    KeyHolder { customer: CustomerId, key_id: KeyId },
    /// A global client key, or no key where none is required: the customer header names
    /// the customer.
    Trusted,
}

/// Checks the client key of each request.
pub struct Authenticator {
    global: ClientKeySet,
    require_key: bool,
    upstream_key_configured: bool,
    customer_keys: KeyDirectory,
}

/// The bearer token of a request, as far as it could be read.
enum Presented<'a> {
    Missing,
    Token(&'a str),
    /// An `Authorization` header that is not `Bearer <token>` in visible ASCII.
    Malformed,
}

impl Authenticator {
    /// Loads the global keys (reading the keys file, if any) and sets up the lookup of
    /// per-customer keys with the account cache's TTL and staleness.
    pub fn new(config: &Config, blnk: BlnkClient) -> Result<Authenticator, ClientKeyError> {
        let global = ClientKeySet::load(&config.client_auth)?;
        let customer_keys = KeyDirectory::new(
            blnk,
            config.blnk.account_cache_ttl,
            config.blnk.account_cache_max_stale,
        );
        Ok(Authenticator {
            require_key: config.client_auth.require_key || !global.is_empty(),
            global,
            upstream_key_configured: config.upstream.api_key.is_some(),
            customer_keys,
        })
    }

    /// Returns whether every request needs a valid client key.
    pub fn requires_key(&self) -> bool {
        self.require_key
    }

    /// Returns the number of global client keys.
    pub fn global_key_count(&self) -> usize {
        self.global.len()
    }

    /// Logs how the proxy listener authenticates clients, and warns when it trusts the
    /// customer header on an address other hosts may reach.
    pub fn log_exposure(&self, listen: SocketAddr) {
        tracing::info!(
            global_client_keys = self.global.len(),
            client_key_required = self.require_key,
            "client authentication"
        );
        if !self.require_key && !listen.ip().is_loopback() {
            tracing::warn!(
                %listen,
                "the proxy listens beyond loopback without client keys, so anyone who reaches \
                 it can bill any customer by naming it in the customer header; configure \
                 client_keys or require_client_key"
            );
        }
    }

    /// Authenticates a request by its bearer token. Fails with 401 for a missing or invalid
    /// key. A per-customer key is always checked, and any other token only when keys are
    /// required.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ProxyError> {
        match bearer_token(headers) {
            Presented::Token(token) if token.starts_with(customer_key::KEY_PREFIX) => {
                self.verify_customer_key(token).await
            }
            _ if !self.require_key => Ok(Caller::Trusted),
            Presented::Token(token) if self.global.verify(token) => Ok(Caller::Trusted),
            Presented::Token(_) | Presented::Malformed => Err(ProxyError::InvalidApiKey),
            Presented::Missing => Err(ProxyError::MissingApiKey),
        }
    }

    async fn verify_customer_key(&self, token: &str) -> Result<Caller, ProxyError> {
        let Some(key_id) = customer_key::parse_key(token) else {
            tracing::info!("rejected a malformed tollgate key");
            return Err(ProxyError::InvalidApiKey);
        };
        if !self.upstream_key_configured {
            tracing::warn!(key_id = %key_id, "a tollgate key was presented, but OPENAI_API_KEY is not set");
            return Err(ProxyError::UpstreamKeyMissing);
        }

        let record = self.customer_keys.lookup(&key_id).await.map_err(|error| {
            tracing::warn!(key_id = %key_id, %error, "client key lookup failed");
            ProxyError::LedgerUnavailable {
                detail: error.to_string(),
            }
        })?;
        let presented = KeyDigest::of(token);
        match record {
            KeyRecord::Active { customer, digest } if bool::from(digest.ct_eq(&presented)) => {
                tracing::debug!(key_id = %key_id, customer = %customer, "tollgate key accepted");
                Ok(Caller::KeyHolder { customer, key_id })
            }
            KeyRecord::Active { .. } => reject(&key_id, "the secret does not match"),
            KeyRecord::Revoked { .. } => reject(&key_id, "the key is revoked"),
            KeyRecord::Unknown => reject(&key_id, "no balance holds this key id"),
            KeyRecord::Unusable { .. } => reject(&key_id, "the stored key record is unusable"),
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("global_keys", &self.global.len())
            .field("require_key", &self.require_key)
            .field("upstream_key_configured", &self.upstream_key_configured)
            .finish_non_exhaustive()
    }
}

fn reject(key_id: &KeyId, reason: &'static str) -> Result<Caller, ProxyError> {
    tracing::info!(key_id = %key_id, reason, "rejected a tollgate key");
    Err(ProxyError::InvalidApiKey)
}

/// Reads `Authorization: Bearer <token>`. An empty token counts as missing, because the
/// SDKs send `Bearer ` when `api_key` is an empty string.
fn bearer_token(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Presented::Missing;
    };
    let Ok(text) = value.to_str() else {
        return Presented::Malformed;
    };
    let text = text.trim();
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Malformed;
    }
    match token.trim() {
        "" => Presented::Missing,
        token if token.bytes().all(|b| b.is_ascii_graphic()) => Presented::Token(token),
        _ => Presented::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn read(value: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        match bearer_token(&headers) {
            Presented::Missing => "missing".to_owned(),
            Presented::Token(token) => format!("token {token}"),
            Presented::Malformed => "malformed".to_owned(),
        }
    }

    #[test]
    fn bearer_token_cases() {
        let cases = [
            (None, "missing"),
            (Some("Bearer abc"), "token abc"),
            (Some("bearer   abc  "), "token abc"),
            (Some("BEARER abc"), "token abc"),
            (Some("Bearer "), "missing"),
            (Some("Bearer"), "missing"),
            (Some("Basic dXNlcjpwYXNz"), "malformed"),
            (Some("abc"), "malformed"),
            (Some("Bearer a b"), "malformed"),
        ];
        for (value, expected) in cases {
            assert_eq!(read(value), expected, "{value:?}");
        }
    }
}
