//! Assembly of [`Config`] from the parsed values, and the checks that involve several keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use rust_decimal::Decimal;

use super::ConfigError;
use super::keys::Key;
use super::value::Value;
use crate::config::{
    AdminConfig, BlnkConfig, ClientAuthConfig, Config, DisconnectPolicy, Durability, LogConfig,
    LogFormat, OutboxConfig, PricingConfig, UpstreamConfig,
};
use crate::secret::Secret;

/// A parsed value and where it came from.
pub(super) struct Setting {
    pub(super) value: Value,
    /// The environment variable, the file and line, or `the default`.
    pub(super) origin: String,
}

/// The parsed value of every key that has one, by dotted path such as `upstream.url`.
#[derive(Default)]
pub(super) struct Settings {
    by_path: HashMap<String, Setting>,
}

impl Settings {
    pub(super) fn insert(&mut self, key: &Key, setting: Setting) {
        self.by_path.insert(key.path(), setting);
    }

    /// Returns the value of a key that always has one (every key but the secrets).
    fn get<T: FromValue>(&self, path: &str) -> Result<T, ConfigError> {
        self.by_path
            .get(path)
            .and_then(|setting| T::from_value(&setting.value))
            .ok_or_else(|| key_table_error(path))
    }

    /// Returns the value of a secret, which is `None` when no source sets it.
    fn secret(&self, path: &str) -> Result<Option<Secret>, ConfigError> {
        self.optional(path)
    }

    /// Returns the value of a key without a default, which is `None` when no source sets it.
    fn optional<T: FromValue>(&self, path: &str) -> Result<Option<T>, ConfigError> {
        match self.by_path.get(path) {
            None => Ok(None),
            Some(setting) => T::from_value(&setting.value)
                .map(Some)
                .ok_or_else(|| key_table_error(path)),
        }
    }

    fn origin(&self, path: &str) -> String {
        self.by_path
            .get(path)
            .map(|setting| setting.origin.clone())
            .unwrap_or_default()
    }
}

fn key_table_error(path: &str) -> ConfigError {
    ConfigError::KeyTable {
        key: path.to_owned(),
    }
}

/// Builds the runtime configuration and runs the checks that involve several keys.
pub(super) fn build_config(settings: &Settings) -> Result<Config, ConfigError> {
    let config = Config {
        listen: settings.get("listen")?,
        data_dir: settings.get("data_dir")?,
        customer_header: settings.get("customer_header")?,
        max_body_bytes: settings.get("max_body_bytes")?,
        max_header_bytes: settings.get("max_header_bytes")?,
        header_read_timeout: settings.get("header_read_timeout")?,
        body_idle_timeout: settings.get("body_idle_timeout")?,
        body_read_timeout: settings.get("body_read_timeout")?,
        max_json_depth: settings.get("max_json_depth")?,
        max_connections: settings.get("max_connections")?,
        shutdown_grace: settings.get("shutdown_grace")?,
        pass_through_routes: settings.get("pass_through_routes")?,
        client_auth: ClientAuthConfig {
            keys: settings.optional("client_keys")?.unwrap_or_default(),
            keys_file: settings.optional("client_keys_file")?,
            require_key: settings.get("require_client_key")?,
        },
        log: LogConfig {
            format: settings.get("log.format")?,
            filter: settings.get("log.filter")?,
        },
        admin: AdminConfig {
            listen: settings.get("admin.listen")?,
            token: settings.secret("admin.token")?,
            ledger_probe_interval: settings.get("admin.ledger_probe_interval")?,
            ledger_stale_after: settings.get("admin.ledger_stale_after")?,
        },
        upstream: build_upstream(settings)?,
        blnk: build_blnk(settings)?,
        pricing: build_pricing(settings)?,
        outbox: build_outbox(settings)?,
    };
    check_retry_delays(&config.outbox, settings)?;
    check_upstream_key_for_client_keys(&config, settings)?;
    Ok(config)
}

fn build_upstream(settings: &Settings) -> Result<UpstreamConfig, ConfigError> {
    Ok(UpstreamConfig {
        url: settings.get("upstream.url")?,
        api_key: settings.secret("upstream.api_key")?,
        connect_timeout: settings.get("upstream.connect_timeout")?,
        first_byte_timeout: settings.get("upstream.first_byte_timeout")?,
        idle_timeout: settings.get("upstream.idle_timeout")?,
        max_stream_duration: settings.get("upstream.max_stream_duration")?,
        on_client_disconnect: settings.get("upstream.on_client_disconnect")?,
        drain_timeout: settings.get("upstream.drain_timeout")?,
    })
}

fn build_blnk(settings: &Settings) -> Result<BlnkConfig, ConfigError> {
    Ok(BlnkConfig {
        url: settings.get("blnk.url")?,
        api_key: settings.secret("blnk.api_key")?,
        request_timeout: settings.get("blnk.request_timeout")?,
        ledger_name: settings.get("blnk.ledger_name")?,
        revenue_balance: settings.get("blnk.revenue_balance")?,
        token_pool_balance: settings.get("blnk.token_pool_balance")?,
        world_balance: settings.get("blnk.world_balance")?,
        account_cache_ttl: settings.get("blnk.account_cache_ttl")?,
        account_cache_max_stale: settings.get("blnk.account_cache_max_stale")?,
        charge_timeout: settings.get("blnk.charge_timeout")?,
        hold_expiry_margin: settings.get("blnk.hold_expiry_margin")?,
        fail_open_credit_limited: settings.get("blnk.fail_open_credit_limited")?,
        fail_open_postpaid: settings.get("blnk.fail_open_postpaid")?,
    })
}

fn build_pricing(settings: &Settings) -> Result<PricingConfig, ConfigError> {
    Ok(PricingConfig {
        file: settings.get("pricing.file")?,
        watch: settings.get("pricing.watch")?,
        watch_interval: settings.get("pricing.watch_interval")?,
        image_token_bound: settings.get("pricing.image_token_bound")?,
        audio_token_bound: settings.get("pricing.audio_token_bound")?,
        context_token_bound: settings.get("pricing.context_token_bound")?,
        default_markup: settings.get("pricing.default_markup")?,
    })
}

fn build_outbox(settings: &Settings) -> Result<OutboxConfig, ConfigError> {
    Ok(OutboxConfig {
        durability: settings.get("outbox.durability")?,
        retry_initial_delay: settings.get("outbox.retry_initial_delay")?,
        retry_max_delay: settings.get("outbox.retry_max_delay")?,
        max_age: settings.get("outbox.max_age")?,
        done_retention: settings.get("outbox.done_retention")?,
    })
}

fn check_retry_delays(outbox: &OutboxConfig, settings: &Settings) -> Result<(), ConfigError> {
    if outbox.retry_initial_delay <= outbox.retry_max_delay {
        return Ok(());
    }
    Err(ConfigError::RetryDelays {
        initial: outbox.retry_initial_delay,
        initial_origin: settings.origin("outbox.retry_initial_delay"),
        max: outbox.retry_max_delay,
        max_origin: settings.origin("outbox.retry_max_delay"),
    })
}

/// Client keys must never reach upstream as if they were the operator's OpenAI key, so any
/// client key setting needs `upstream.api_key`, which replaces the client's key upstream.
fn check_upstream_key_for_client_keys(
    config: &Config,
    settings: &Settings,
) -> Result<(), ConfigError> {
    if config.upstream.api_key.is_some() || !config.client_auth.uses_keys() {
        return Ok(());
    }
    let auth = &config.client_auth;
    let setting = if !auth.keys.is_empty() {
        "client_keys"
    } else if auth.keys_file.is_some() {
        "client_keys_file"
    } else {
        "require_client_key"
    };
    Err(ConfigError::ClientKeysWithoutUpstreamKey {
        setting: setting.to_owned(),
        origin: settings.origin(setting),
    })
}

/// Conversion from a parsed [`Value`] to the type of a [`Config`] field. Returns `None` when
/// the value has another kind, which only a mistake in the key table can cause.
trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

/// Implements [`FromValue`] for types that a single `Value` variant contains unchanged.
macro_rules! from_value {
    ($($variant:ident => $type:ty),* $(,)?) => {
        $(
            impl FromValue for $type {
                fn from_value(value: &Value) -> Option<Self> {
                    match value {
                        Value::$variant(inner) => Some(inner.clone()),
                        _ => None,
                    }
                }
            }
        )*
    };
}

from_value! {
    Text => String,
    Secret => Secret,
    ClientKeys => Vec<Secret>,
    Path => PathBuf,
    Address => SocketAddr,
    Header => HeaderName,
    Integer => u64,
    Duration => Duration,
    Bool => bool,
    Decimal => Decimal,
    LogFormat => LogFormat,
    DisconnectPolicy => DisconnectPolicy,
    Durability => Durability,
    Routes => Vec<String>,
}

// NOTE: on a target with 32-bit `usize`, a count above `usize::MAX` ends in the key-table
// error instead of an invalid-value error naming the key.
impl FromValue for usize {
    fn from_value(value: &Value) -> Option<Self> {
        u64::from_value(value).and_then(|integer| usize::try_from(integer).ok())
    }
}
