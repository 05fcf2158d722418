//! Observability: the logging setup, the one event logged per request, the Prometheus
//! metrics, the tracking of Blnk's responses for readiness, and rate limiting of repeated
//! error logs.

pub mod exposition;
mod fields;
mod histogram;
mod labels;
pub mod ledger;
pub mod limit;
pub mod metrics;
pub mod request;

use axum::response::Response;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub use metrics::{Route, metrics};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// JSON lines carry each event's fields at the top level and the fields of the innermost
/// span under `span`.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    // Colour codes only help a terminal; in a log file or collector they are noise.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A failed write is dropped. Reporting it would write to stderr too, and tracing-subscriber
    // does that with `eprintln!`, which panics when stderr is a closed pipe (a log collector
    // that died), taking down the task that logged: a request, or the signal watcher.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal)
        .log_internal_errors(false);
    let result = match format {
        LogFormat::Text if terminal => builder.try_init(),
        LogFormat::Text => builder.fmt_fields(fields::PlainFields).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A subscriber already installed (for example by a test harness) is kept.
    drop(result);
}

/// Counts a response of an unmetered route and returns it. Metered routes are counted by
/// [`request::metered`].
pub fn count_request(route: Route, response: Response) -> Response {
    metrics().request(route, response.status().as_u16());
    response
}
