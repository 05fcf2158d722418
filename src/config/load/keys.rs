//! The table of configuration keys. Each row drives the unknown-key check of the file, the
//! environment variable that overrides the key, and the built-in default. Adding a key is one
//! row here plus the line in `build.rs` that stores it in [`crate::config::Config`].

/// The form a key's value takes, which decides how it is parsed and validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A non-empty string.
    Text,
    /// A non-empty token, stored as [`crate::secret::Secret`] and never shown in messages.
    Secret,
    /// A list of global client keys, each stored as [`crate::secret::Secret`]. The
    /// environment form is comma-separated.
    ClientKeys,
    /// A non-empty file system path.
    Path,
    /// An http or https base URL, stored without a trailing `/`.
    Url,
    /// An OpenAI-compatible base URL, stored without a trailing `/` or `/v1` as
    /// [`crate::config::UpstreamConfig::url`] requires.
    ApiBaseUrl,
    /// A socket address such as `127.0.0.1:8080`.
    Address,
    /// The name of the request header that carries the customer id.
    CustomerHeader,
    /// A byte count: an integer, or a string with a binary unit such as `64MiB`.
    Size {
        min_bytes: u64,
    },
    /// A whole number greater than 0.
    Count,
    /// A duration that may be zero.
    Duration,
    /// A duration greater than zero, for timeouts and delays where zero makes no sense.
    PositiveDuration,
    Bool,
    /// A decimal number greater than 0, parsed exactly from its text.
    PositiveDecimal,
    /// A `tracing_subscriber::EnvFilter` directive.
    LogFilter,
    LogFormat,
    DisconnectPolicy,
    Durability,
    /// A list of URL paths. The environment form is comma-separated.
    Routes,
}

/// One configuration key: where it lives in the file, how its value is read, and its default.
#[derive(Clone, Copy, Debug)]
pub(super) struct Key {
    /// The `[section]` that contains the key, or `""` for a top-level key.
    pub(super) section: &'static str,
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// The default in environment-variable syntax, or `None` for a key that may stay unset.
    pub(super) default: Option<&'static str>,
    /// A second environment variable for the key, consulted when `TOLLGATE_<SECTION>_<KEY>`
    /// is unset or empty.
    pub(super) alias: Option<&'static str>,
}

impl Key {
    /// Creates a key whose default is given in environment-variable syntax.
    const fn new(
        section: &'static str,
        name: &'static str,
        kind: Kind,
        default: &'static str,
    ) -> Key {
        Key {
            section,
            name,
            kind,
            default: Some(default),
            alias: None,
        }
    }

    /// Creates a secret key, which stays unset unless a source sets it.
    const fn secret(section: &'static str, name: &'static str) -> Key {
        Key::optional(section, name, Kind::Secret)
    }

    /// Creates a key without a default, which stays unset unless a source sets it.
    const fn optional(section: &'static str, name: &'static str, kind: Kind) -> Key {
        Key {
            section,
            name,
            kind,
            default: None,
            alias: None,
        }
    }

    const fn with_alias(self, alias: &'static str) -> Key {
        Key {
            alias: Some(alias),
            ..self
        }
    }

    /// Returns the dotted name used in messages, such as `upstream.url` or `listen`.
    pub(super) fn path(&self) -> String {
        if self.section.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}.{}", self.section, self.name)
        }
    }

    /// Returns the overriding environment variable, such as `TOLLGATE_UPSTREAM_URL`.
    pub(super) fn env_var(&self) -> String {
        if self.section.is_empty() {
            format!("{ENV_PREFIX}{}", self.name.to_ascii_uppercase())
        } else {
            format!(
                "{ENV_PREFIX}{}_{}",
                self.section.to_ascii_uppercase(),
                self.name.to_ascii_uppercase()
            )
        }
    }
}

/// The prefix of every environment variable that tollgate reads as configuration.
pub(super) const ENV_PREFIX: &str = "TOLLGATE_";

/// The variable that names the configuration file.
pub(super) const CONFIG_PATH_VAR: &str = "TOLLGATE_CONFIG";

/// Variables with the `TOLLGATE_` prefix that are not configuration keys but are accepted.
pub(super) const RESERVED_VARS: &[&str] = &[CONFIG_PATH_VAR];

/// Every configuration key, in the order in which values are checked.
#[rustfmt::skip]
pub(super) const KEYS: &[Key] = &[
    Key::new("", "listen", Kind::Address, "127.0.0.1:8080"),
    Key::new("", "data_dir", Kind::Path, "./data"),
    Key::new("", "customer_header", Kind::CustomerHeader, "X-Customer-Id"),
    Key::new("", "max_body_bytes", Kind::Size { min_bytes: 1024 }, "64MiB"),
    Key::new("", "max_header_bytes", Kind::Size { min_bytes: 1024 }, "32KiB"),
    Key::new("", "header_read_timeout", Kind::PositiveDuration, "30s"),
    Key::new("", "body_idle_timeout", Kind::PositiveDuration, "30s"),
    Key::new("", "body_read_timeout", Kind::PositiveDuration, "5m"),
    Key::new("", "max_json_depth", Kind::Count, "64"),
    Key::new("", "max_connections", Kind::Count, "4096"),
    Key::new("", "shutdown_grace", Kind::Duration, "30s"),
    Key::new("", "pass_through_routes", Kind::Routes, ""),
    Key::optional("", "client_keys", Kind::ClientKeys),
    Key::optional("", "client_keys_file", Kind::Path),
    Key::new("", "require_client_key", Kind::Bool, "false"),
    Key::new("log", "format", Kind::LogFormat, "text"),
    Key::new("log", "filter", Kind::LogFilter, "info"),
    Key::new("admin", "listen", Kind::Address, "127.0.0.1:9090"),
    Key::secret("admin", "token"),
    Key::new("admin", "ledger_probe_interval", Kind::PositiveDuration, "5s"),
    Key::new("admin", "ledger_stale_after", Kind::PositiveDuration, "15s"),
    Key::new("upstream", "url", Kind::ApiBaseUrl, "https://api.openai.com"),
    Key::secret("upstream", "api_key").with_alias("OPENAI_API_KEY"),
    Key::new("upstream", "connect_timeout", Kind::PositiveDuration, "10s"),
    Key::new("upstream", "first_byte_timeout", Kind::PositiveDuration, "10m"),
    Key::new("upstream", "idle_timeout", Kind::PositiveDuration, "5m"),
    Key::new("upstream", "max_stream_duration", Kind::PositiveDuration, "30m"),
    Key::new("upstream", "on_client_disconnect", Kind::DisconnectPolicy, "drain"),
    Key::new("upstream", "drain_timeout", Kind::PositiveDuration, "5m"),
    Key::new("blnk", "url", Kind::Url, "http://127.0.0.1:5001").with_alias("BLNK_URL"),
    Key::secret("blnk", "api_key").with_alias("BLNK_API_KEY"),
    Key::new("blnk", "request_timeout", Kind::PositiveDuration, "5s"),
    Key::new("blnk", "ledger_name", Kind::Text, "tollgate customer wallets"),
    Key::new("blnk", "revenue_balance", Kind::Text, "@Revenue-USD"),
    Key::new("blnk", "token_pool_balance", Kind::Text, "@TokenPool"),
    Key::new("blnk", "world_balance", Kind::Text, "@World-USD"),
    Key::new("blnk", "account_cache_ttl", Kind::Duration, "30s"),
    Key::new("blnk", "account_cache_max_stale", Kind::Duration, "5m"),
    Key::new("blnk", "charge_timeout", Kind::PositiveDuration, "2s"),
    Key::new("blnk", "hold_expiry_margin", Kind::Duration, "5m"),
    Key::new("blnk", "fail_open_credit_limited", Kind::Bool, "false"),
    Key::new("blnk", "fail_open_postpaid", Kind::Bool, "true"),
    Key::new("pricing", "file", Kind::Path, "pricing.toml").with_alias("TOLLGATE_PRICING"),
    Key::new("pricing", "watch", Kind::Bool, "true"),
    Key::new("pricing", "watch_interval", Kind::PositiveDuration, "5s"),
    Key::new("pricing", "image_token_bound", Kind::Count, "50000"),
    Key::new("pricing", "audio_token_bound", Kind::Count, "20000"),
    Key::new("pricing", "context_token_bound", Kind::Count, "1048576"),
    Key::new("pricing", "default_markup", Kind::PositiveDecimal, "1"),
    Key::new("outbox", "durability", Kind::Durability, "process"),
    Key::new("outbox", "retry_initial_delay", Kind::PositiveDuration, "1s"),
    Key::new("outbox", "retry_max_delay", Kind::PositiveDuration, "5m"),
    Key::new("outbox", "max_age", Kind::PositiveDuration, "72h"),
    Key::new("outbox", "done_retention", Kind::PositiveDuration, "24h"),
];

/// Returns the key named `name` in `section` (`""` for the top level).
pub(super) fn find_key(section: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|key| key.section == section && key.name == name)
}

/// Returns whether `name` is a `[section]` of the file.
pub(super) fn is_section(name: &str) -> bool {
    !name.is_empty() && KEYS.iter().any(|key| key.section == name)
}

/// Returns the names of the keys in `section`, for the message about an unknown key.
pub(super) fn key_names(section: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|key| key.section == section)
        .map(|key| key.name)
        .collect()
}

/// Returns the names of all sections, in table order.
pub(super) fn section_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for key in KEYS {
        if !key.section.is_empty() && !names.contains(&key.section) {
            names.push(key.section);
        }
    }
    names
}

/// Returns whether an environment variable with the `TOLLGATE_` prefix is one tollgate reads.
pub(super) fn is_known_var(name: &str) -> bool {
    RESERVED_VARS.contains(&name)
        || KEYS
            .iter()
            .any(|key| key.env_var() == name || key.alias == Some(name))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn env_var_names_are_unique() {
        let mut seen = HashSet::new();
        for key in KEYS {
            assert!(
                seen.insert(key.env_var()),
                "{} is used twice",
                key.env_var()
            );
            if let Some(alias) = key.alias {
                assert!(seen.insert(alias.to_owned()), "{alias} is used twice");
            }
        }
    }

    #[test]
    fn only_secrets_and_client_keys_lack_defaults() {
        for key in KEYS {
            let optional = key.kind == Kind::Secret
                || key.kind == Kind::ClientKeys
                || key.path() == "client_keys_file";
            assert_eq!(key.default.is_none(), optional, "{}", key.path());
        }
    }

    #[test]
    fn env_var_follows_section_and_name() {
        let cases = [
            ("", "listen", "TOLLGATE_LISTEN"),
            ("", "data_dir", "TOLLGATE_DATA_DIR"),
            ("upstream", "url", "TOLLGATE_UPSTREAM_URL"),
            ("blnk", "charge_timeout", "TOLLGATE_BLNK_CHARGE_TIMEOUT"),
            ("admin", "token", "TOLLGATE_ADMIN_TOKEN"),
        ];
        for (section, name, expected) in cases {
            let key = find_key(section, name).expect("key exists");
            assert_eq!(key.env_var(), expected);
        }
    }

    #[test]
    fn known_vars_include_aliases_and_reserved() {
        let cases = [
            ("TOLLGATE_LISTEN", true),
            ("TOLLGATE_PRICING", true),
            ("TOLLGATE_PRICING_FILE", true),
            ("TOLLGATE_CONFIG", true),
            ("TOLLGATE_CLIENT_KEYS", true),
            ("TOLLGATE_CLIENT_KEYS_FILE", true),
            ("TOLLGATE_UPSTREAM_URLL", false),
            ("TOLLGATE_LOG", false),
            ("TOLLGATE_", false),
        ];
        for (name, known) in cases {
            assert_eq!(is_known_var(name), known, "{name}");
        }
    }
}
