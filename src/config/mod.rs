//! Configuration: a TOML file, overridden key by key from the environment, validated once
//! into the runtime types below. Durations, sizes and prices are normalised at load.

mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::secret::Secret;

pub use load::{ConfigError, load, load_from};

/// The validated configuration of one tollgate process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Proxy listener. `TOLLGATE_LISTEN`.
    pub listen: SocketAddr,
    /// Outbox and other local state. `TOLLGATE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Header naming the paying customer. `TOLLGATE_CUSTOMER_HEADER`.
    pub customer_header: http::HeaderName,
    /// Maximum request body size; a larger body gets 413.
    pub max_body_bytes: usize,
    /// Largest total size of the request's header names and values. Larger headers are
    /// rejected with 431.
    pub max_header_bytes: usize,
    /// Time a client connection gets to send a request's headers, from its opening or from
    /// the end of its previous response. A connection that has not sent them is closed, and
    /// so is an HTTP/2 connection with no open request for as long.
    pub header_read_timeout: Duration,
    /// Maximum pause within a request body that tollgate reads whole (metered and
    /// pass-through routes). A longer pause gets 408.
    pub body_idle_timeout: Duration,
    /// Maximum time a request body that tollgate reads whole may take to arrive, from the end
    /// of the request's headers. A body that trickles in with short pauses gets 408 once it
    /// passes, so it cannot hold a connection slot for long.
    pub body_read_timeout: Duration,
    /// Deepest nesting of JSON arrays and objects accepted in a metered request body. Deeper
    /// bodies are rejected with 400 `invalid_json`.
    pub max_json_depth: usize,
    /// Most concurrent client connections on the proxy listener.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_grace: Duration,
    /// Paths (such as `/v1/files`) forwarded without metering. Every other unmetered path
    /// gets 404.
    pub pass_through_routes: Vec<String>,
    pub client_auth: ClientAuthConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub blnk: BlnkConfig,
    pub pricing: PricingConfig,
    pub outbox: OutboxConfig,
}

/// Client keys on the proxy listener. With none configured and `require_key` false, the
/// customer header is trusted as it is.
#[derive(Clone, Debug)]
pub struct ClientAuthConfig {
    /// Global client keys. `TOLLGATE_CLIENT_KEYS`, comma-separated.
    pub keys: Vec<Secret>,
    /// A file of more global client keys, one per line, read at start.
    /// `TOLLGATE_CLIENT_KEYS_FILE`.
    pub keys_file: Option<PathBuf>,
    /// Reject requests without a valid client key even when no global key is configured,
    /// so that only per-customer keys are accepted.
    pub require_key: bool,
}

impl ClientAuthConfig {
    /// Returns whether any setting requires client keys.
    pub fn uses_keys(&self) -> bool {
        !self.keys.is_empty() || self.keys_file.is_some() || self.require_key
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or `tollgate=debug`.
    pub filter: String,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Health, readiness, metrics and admin API listener. `TOLLGATE_ADMIN_LISTEN`.
    pub listen: SocketAddr,
    /// Bearer token of the admin API; `None` turns the admin API off. `TOLLGATE_ADMIN_TOKEN`.
    pub token: Option<Secret>,
    /// Time without a response from Blnk after which a background health check calls it.
    pub ledger_probe_interval: Duration,
    /// Time without a response from Blnk after which `/readyz` reports not ready.
    pub ledger_stale_after: Duration,
}

/// Handling of the upstream stream when the client disconnects mid-stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectPolicy {
    /// Keep reading upstream to its end (bounded by `drain_timeout`) and bill the reported usage.
    Drain,
    /// Stop reading at once and bill an estimate of what was generated so far.
    Stop,
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Base URL without a trailing `/v1` (stripped at load). `TOLLGATE_UPSTREAM_URL`.
    pub url: String,
    /// Key sent upstream; `None` passes the client's own key through. `OPENAI_API_KEY`.
    pub api_key: Option<Secret>,
    pub connect_timeout: Duration,
    /// Maximum wait for the response headers (and, for a non-streaming call, the whole body).
    pub first_byte_timeout: Duration,
    /// Maximum silence between two chunks of a streamed response.
    pub idle_timeout: Duration,
    /// Maximum total duration of a streamed response.
    pub max_stream_duration: Duration,
    pub on_client_disconnect: DisconnectPolicy,
    /// Maximum time tollgate keeps draining upstream after the client left (policy `drain`).
    pub drain_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct BlnkConfig {
    /// `BLNK_URL`.
    pub url: String,
    /// Blnk's master key, sent as `X-Blnk-Key`. `BLNK_API_KEY`.
    pub api_key: Option<Secret>,
    /// Timeout of every ledger call.
    pub request_timeout: Duration,
    /// Name of the ledger that contains customer wallets.
    pub ledger_name: String,
    pub revenue_balance: String,
    pub token_pool_balance: String,
    pub world_balance: String,
    /// How long a customer's account, read from Blnk, is reused without asking again.
    pub account_cache_ttl: Duration,
    /// How long a cached account may still be used while Blnk cannot be reached.
    pub account_cache_max_stale: Duration,
    /// Maximum time the response (or the stream terminator) waits for the charge to be recorded.
    pub charge_timeout: Duration,
    /// Added to the longest possible request duration to set a hold's expiry.
    pub hold_expiry_margin: Duration,
    /// Serve credit-limited accounts without a hold when Blnk is unreachable.
    pub fail_open_credit_limited: bool,
    /// Serve unlimited postpaid accounts when Blnk is unreachable (their charge is queued).
    pub fail_open_postpaid: bool,
}

#[derive(Clone, Debug)]
pub struct PricingConfig {
    /// Price file. `TOLLGATE_PRICING`.
    pub file: PathBuf,
    /// Reload the price file when it changes on disk.
    pub watch: bool,
    /// How often the watch reads the price file to look for a change.
    pub watch_interval: Duration,
    /// Quote bound for one image in a request, in tokens. The default, 50,000, covers
    /// gpt-4o-mini's largest high-detail image under OpenAI's tile rule: 2,833 tokens plus
    /// 5,667 for each of at most 8 tiles of 512 pixels, 48,169 in all.
    pub image_token_bound: u64,
    /// Quote bound for one audio clip in a request, in tokens.
    pub audio_token_bound: u64,
    /// Quote bound for a whole prompt that takes in content the body does not carry (a
    /// stored response or conversation, a file, hosted search results), in tokens.
    pub context_token_bound: u64,
    /// Markup applied when the price file sets none, as a factor (1 = none).
    pub default_markup: Decimal,
}

/// Durability of an outbox commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A write survives a crash of the process (`kill -9`) but not a power loss.
    Process,
    /// Every commit is flushed to disk with fsync and survives a power loss.
    Power,
}

#[derive(Clone, Debug)]
pub struct OutboxConfig {
    pub durability: Durability,
    /// First retry delay of a pending entry; doubles up to `retry_max_delay`, with jitter.
    pub retry_initial_delay: Duration,
    pub retry_max_delay: Duration,
    /// Entries still pending after this age move to the dead-letter list.
    pub max_age: Duration,
    /// Done entries are deleted this long after they were marked done.
    pub done_retention: Duration,
}
