//! Live reload of the price file, on SIGHUP, when the file changes on disk, and on
//! `POST /admin/prices/reload`.
//!
//! A reload parses the whole file first and replaces the table only when every model is
//! valid, so an invalid file leaves the old prices in force. The error is logged and counted
//! in `tollgate_price_reloads_total{outcome="failed"}`. A request keeps the table it started
//! with (`AppState::price_table` hands out an `Arc`), so a reload never prices one request
//! with two tables. Reloads run one at a time, so an older read of the file can never
//! replace a newer one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::PricingConfig;
use crate::pricing::{PriceTable, PricingError};
use crate::proxy::AppState;
use crate::telemetry::metrics;

/// The cause of a reload, as the `trigger` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// SIGHUP.
    Signal,
    /// The watch saw new contents in the price file.
    FileChange,
    /// `POST /admin/prices/reload`.
    Admin,
}

/// A reload that replaced the price table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reloaded {
    pub file: PathBuf,
    pub models: usize,
    pub previous_models: usize,
    /// Whether the file's contents equal those of the table it replaced.
    pub unchanged: bool,
}

/// SHA-256 of a price file's text.
type Fingerprint = [u8; 32];

/// The fingerprint of the text each price file was last loaded from, by path.
static APPLIED: Mutex<BTreeMap<PathBuf, Fingerprint>> = Mutex::new(BTreeMap::new());

/// Held while a reload reads the file and replaces the table.
static RELOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl ReloadTrigger {
    pub const ALL: [ReloadTrigger; 3] = [
        ReloadTrigger::Signal,
        ReloadTrigger::FileChange,
        ReloadTrigger::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "signal",
            ReloadTrigger::FileChange => "file_change",
            ReloadTrigger::Admin => "admin",
        }
    }
}

/// Loads the price file at startup and remembers its contents, so the file watch reloads
/// only after a change.
pub fn load_prices(config: &PricingConfig) -> Result<PriceTable, PricingError> {
    let text = std::fs::read_to_string(&config.file).map_err(|source| PricingError::Read {
        path: config.file.clone(),
        source,
    })?;
    let table = parse(config, &text)?;
    remember(&config.file, fingerprint(&text));
    tracing::info!(file = %config.file.display(), models = table.model_count(), "prices loaded");
    Ok(table)
}

/// Reads the price file again and puts its table in force. On failure the old table stays.
/// Either way the outcome is logged and counted under `trigger`.
pub async fn reload_prices(
    state: &AppState,
    trigger: ReloadTrigger,
) -> Result<Reloaded, PricingError> {
    let _one_at_a_time = RELOADING.lock().await;
    let path = &state.config.pricing.file;
    let result = read(path).await.and_then(|text| apply(state, &text));
    report(trigger, path, &result);
    result
}

/// Reloads the price file on every SIGHUP until `stop` is cancelled.
pub async fn reload_on_hangup(state: Arc<AppState>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "listening for SIGHUP failed; reload prices with POST /admin/prices/reload instead");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            received = hangups.recv() => {
                if received.is_none() {
                    break;
                }
                tracing::info!(file = %state.config.pricing.file.display(), "SIGHUP received; reloading the price file");
                let _logged_and_counted = reload_prices(&state, ReloadTrigger::Signal).await;
            }
        }
    }
}

/// Polls the price file every `pricing.watch_interval` while `pricing.watch` is on, and
/// reloads it when its contents change. Contents that failed to load are not retried until
/// they change again.
pub async fn watch_file(state: Arc<AppState>, stop: CancellationToken) {
    let pricing = &state.config.pricing;
    if !pricing.watch {
        return;
    }
    let interval_ms = u64::try_from(pricing.watch_interval.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(file = %pricing.file.display(), interval_ms, "watching the price file for changes");
    let mut rejected: Option<Fingerprint> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pricing.watch_interval) => {}
        }
        check_file(&state, &mut rejected).await;
    }
    tracing::info!(file = %pricing.file.display(), "price file watch stopped");
}

async fn check_file(state: &AppState, rejected: &mut Option<Fingerprint>) {
    let _one_at_a_time = RELOADING.lock().await;
    let path = &state.config.pricing.file;
    let text = match read(path).await {
        Ok(text) => text,
        Err(error) => {
            crate::warn_rate_limited!("pricing.watch_read", %error, "the price file watch cannot read the file; the current prices stay in force");
            return;
        }
    };
    let current = fingerprint(&text);
    if applied(path) == Some(current) || *rejected == Some(current) {
        return;
    }
    tracing::info!(file = %path.display(), "the price file changed; reloading it");
    let result = apply(state, &text);
    report(ReloadTrigger::FileChange, path, &result);
    *rejected = result.is_err().then_some(current);
}

async fn read(path: &Path) -> Result<String, PricingError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| PricingError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses `text` and, when it is valid, puts its table in force.
fn apply(state: &AppState, text: &str) -> Result<Reloaded, PricingError> {
    let config = &state.config.pricing;
    let table = parse(config, text)?;
    let current = fingerprint(text);
    let unchanged = applied(&config.file) == Some(current);
    let reloaded = Reloaded {
        file: config.file.clone(),
        models: table.model_count(),
        previous_models: state.price_table().model_count(),
        unchanged,
    };
    state.replace_prices(table);
    remember(&config.file, current);
    Ok(reloaded)
}

fn parse(config: &PricingConfig, text: &str) -> Result<PriceTable, PricingError> {
    let table = PriceTable::from_toml(text).map_err(|error| PricingError::File {
        path: config.file.clone(),
        source: Box::new(error),
    })?;
    table.with_default_markup(config.default_markup)
}

fn report(trigger: ReloadTrigger, path: &Path, result: &Result<Reloaded, PricingError>) {
    metrics().price_reload(trigger, result.is_ok());
    match result {
        Ok(reloaded) => tracing::info!(
            trigger = trigger.as_str(),
            file = %path.display(),
            models = reloaded.models,
            previous_models = reloaded.previous_models,
            unchanged = reloaded.unchanged,
            "prices reloaded"
        ),
        Err(error) => tracing::error!(
            trigger = trigger.as_str(),
            file = %path.display(),
            %error,
            "price reload failed; the previous prices stay in force"
        ),
    }
}

fn fingerprint(text: &str) -> Fingerprint {
    Sha256::digest(text.as_bytes()).into()
}

fn applied(path: &Path) -> Option<Fingerprint> {
    let applied = APPLIED.lock().unwrap_or_else(PoisonError::into_inner);
    applied.get(path).copied()
}

fn remember(path: &Path, fingerprint: Fingerprint) {
    let mut applied = APPLIED.lock().unwrap_or_else(PoisonError::into_inner);
    applied.insert(path.to_path_buf(), fingerprint);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_labels_are_distinct() {
        let labels: Vec<&str> = ReloadTrigger::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(labels, vec!["signal", "file_change", "admin"]);
    }

    #[test]
    fn fingerprint_follows_contents() {
        assert_eq!(fingerprint("a = 1\n"), fingerprint("a = 1\n"));
        assert_ne!(fingerprint("a = 1\n"), fingerprint("a = 2\n"));
    }
}
