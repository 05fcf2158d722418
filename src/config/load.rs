//! Loading of [`Config`] from a TOML file and the environment.
//!
//! Each key takes its value from the first of these sources that sets it:
//!
//! 1. the variable `TOLLGATE_<SECTION>_<KEY>` (`TOLLGATE_<KEY>` for a top-level key);
//! 2. the key's fixed alias, if it has one: `OPENAI_API_KEY` (upstream.api_key), `BLNK_URL`
//!    (blnk.url), `BLNK_API_KEY` (blnk.api_key) or `TOLLGATE_PRICING` (pricing.file);
//! 3. the configuration file;
//! 4. the built-in default.
//!
//! An empty environment variable counts as unset. The key table in `load/keys.rs` lists every
//! key with its kind and default.

mod build;
mod file;
mod keys;
mod units;
mod value;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::Config;
use build::{Setting, Settings};
use file::ConfigFile;
use keys::{CONFIG_PATH_VAR, ENV_PREFIX, KEYS, Key, Kind, RESERVED_VARS};
use value::Raw;

/// A configuration that could not be loaded. Messages name the key, the source of the bad
/// value and the expected form, and never contain the value of a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file is not valid TOML. The message leaves out the offending line because that
    /// line may contain a secret.
    #[error("invalid TOML in {} at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("unknown key {key:?} in {} at line {line}: {accepted}", path.display())]
    UnknownKey {
        key: String,
        path: PathBuf,
        line: usize,
        /// The keys that the enclosing table accepts.
        accepted: String,
    },

    #[error("{section:?} in {} at line {line} must be a table such as [{section}]", path.display())]
    NotATable {
        section: String,
        path: PathBuf,
        line: usize,
    },

    #[error(
        "unknown environment variable {name}: no configuration key uses this name; \
         unset it or correct its spelling"
    )]
    UnknownVariable { name: String },

    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode { name: String },

    #[error("invalid value {value} for {key} (from {origin}): expected {expected}")]
    InvalidValue {
        key: String,
        /// The value as written, quoted when it is a string.
        value: String,
        /// The environment variable, the file and line, or `the default`.
        origin: String,
        expected: Cow<'static, str>,
    },

    /// An invalid secret. The message names the key and the source but not the value.
    #[error("invalid value for {key} (from {origin}): expected {expected}")]
    InvalidSecret {
        key: String,
        origin: String,
        expected: Cow<'static, str>,
    },

    #[error(
        "client keys are configured ({setting}, from {origin}) but upstream.api_key \
         (OPENAI_API_KEY) is not set; set it, because tollgate must send the operator's key \
         upstream and never a client key in its place"
    )]
    ClientKeysWithoutUpstreamKey { setting: String, origin: String },

    #[error(
        "outbox.retry_initial_delay ({initial:?}, from {initial_origin}) is longer than \
         outbox.retry_max_delay ({max:?}, from {max_origin}); lower the first or raise the second"
    )]
    RetryDelays {
        initial: std::time::Duration,
        initial_origin: String,
        max: std::time::Duration,
        max_origin: String,
    },

    /// The code that assembles [`Config`] read a key that is missing from the key table or
    /// has another kind there. This is a bug, and the tests of this module check every key.
    #[error("configuration key {key} is missing from the key table or has another kind")]
    KeyTable { key: String },
}

/// Reads the configuration file and applies overrides from the process environment.
///
/// The file is `path`, or else the one that `TOLLGATE_CONFIG` names. With neither, only the
/// defaults and the environment apply. Unlike [`load_from`], this also rejects any
/// `TOLLGATE_` variable that matches no key.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let vars = read_process_env()?;
    check_var_names(vars.keys().map(String::as_str))?;

    let path = match path {
        Some(path) => Some(path.to_path_buf()),
        None => std::env::var_os(CONFIG_PATH_VAR)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from),
    };
    let text = match &path {
        Some(path) => Some(read_file(path)?),
        None => None,
    };

    let file = path.as_deref().zip(text.as_deref());
    load_from(file, &|name| vars.get(name).cloned())
}

/// Loads the configuration from the file text and the environment lookup `env`, without
/// touching process state.
///
/// `file` is the path (used in messages) and the text of the configuration file. `env`
/// returns the value of an environment variable. A lookup cannot list the variables, so
/// unknown `TOLLGATE_` variables are rejected by [`load`] alone.
pub fn load_from(
    file: Option<(&Path, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file = match file {
        Some((path, text)) => Some(ConfigFile::parse(path, text)?),
        None => None,
    };

    let mut settings = Settings::default();
    for key in KEYS {
        if let Some(setting) = resolve_key(key, file.as_ref(), env)? {
            settings.insert(key, setting);
        }
    }
    build::build_config(&settings)
}

/// Finds the value of `key` in the first source that sets it and parses it.
fn resolve_key(
    key: &Key,
    file: Option<&ConfigFile<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Setting>, ConfigError> {
    if let Some((var, text)) = lookup_env(key, env) {
        return parse_setting(key, Raw::Text(&text), var).map(Some);
    }
    if let Some((value, origin)) = file.and_then(|file| file.value(key)) {
        return parse_setting(key, Raw::Toml(value), origin).map(Some);
    }
    match key.default {
        Some(default) => parse_setting(key, Raw::Text(default), "the default".into()).map(Some),
        None => Ok(None),
    }
}

/// Returns the name and value of the first non-empty variable among `TOLLGATE_...` and the
/// key's alias.
fn lookup_env(key: &Key, env: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let names = std::iter::once(key.env_var()).chain(key.alias.map(str::to_owned));
    for name in names {
        if let Some(value) = env(&name).filter(|value| !value.is_empty()) {
            return Some((name, value));
        }
    }
    None
}

fn parse_setting(key: &Key, raw: Raw<'_>, origin: String) -> Result<Setting, ConfigError> {
    match value::parse(key.kind, raw) {
        Ok(value) => Ok(Setting { value, origin }),
        Err(expected) if matches!(key.kind, Kind::Secret | Kind::ClientKeys) => {
            Err(ConfigError::InvalidSecret {
                key: key.path(),
                origin,
                expected,
            })
        }
        Err(expected) => Err(ConfigError::InvalidValue {
            key: key.path(),
            value: raw.render(),
            origin,
            expected,
        }),
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Collects the variables that configuration may read: those with the `TOLLGATE_` prefix and
/// the aliases. Fails on a non-UTF-8 value, which would otherwise be ignored silently.
fn read_process_env() -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let is_alias = KEYS.iter().any(|key| key.alias == Some(name.as_str()));
        if !name.starts_with(ENV_PREFIX) && !is_alias {
            continue;
        }
        // Reserved variables such as the file path may hold any OS string.
        if RESERVED_VARS.contains(&name.as_str()) {
            continue;
        }
        let value = utf8_value(&name, value)?;
        vars.insert(name, value);
    }
    Ok(vars)
}

fn utf8_value(name: &str, value: OsString) -> Result<String, ConfigError> {
    value.into_string().map_err(|_| ConfigError::NotUnicode {
        name: name.to_owned(),
    })
}

/// Rejects a variable with the `TOLLGATE_` prefix that is neither a key, an alias nor a
/// reserved name, so that a misspelled override fails instead of being ignored.
fn check_var_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    for name in names {
        if name.starts_with(ENV_PREFIX) && !keys::is_known_var(name) {
            return Err(ConfigError::UnknownVariable {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
