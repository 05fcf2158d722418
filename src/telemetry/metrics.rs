//! The process-wide metrics registry: atomic counters, gauges and histograms that the request
//! path updates without locks, rendered in Prometheus text format by [`super::exposition`].
//!
//! Every label has a bounded set of values. Routes and outcomes are enums, and status codes
//! are 100 to 599. Ledger operations are the client's fixed names. Models are the billed
//! models of the price table, and past [`MAX_MODELS`] of them the rest count as `other`. No
//! customer or request id is ever a label.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::money::Nanos;
use crate::reload::ReloadTrigger;
use crate::usage::{Endpoint, Usage};

use super::histogram::{Histogram, LEDGER_BOUNDS, OVERHEAD_BOUNDS, UPSTREAM_BOUNDS};
use super::labels::LabelTable;

/// Distinct billed models with their own label; later ones count as `other`.
pub const MAX_MODELS: usize = 256;

/// Distinct ledger operation names with their own label.
const MAX_OPERATIONS: usize = 64;

/// Status codes 100 to 599 each have a counter per route.
const FIRST_STATUS: u16 = 100;
const STATUS_CODES: usize = 500;

/// The route of a request on the proxy listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// `GET /v1/models` and `GET /v1/models/{model}`, passed through.
    Models,
    /// A route the operator listed in `pass_through_routes`.
    PassThrough,
    /// Any other path, rejected with 404.
    Unknown,
}

/// The token counts of a charge, as the `class` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClass {
    Prompt,
    /// Prompt tokens read from the prompt cache (part of `prompt`).
    Cached,
    /// Prompt tokens written to the prompt cache (part of `prompt`).
    CacheWrite,
    Completion,
    /// Completion tokens spent on reasoning (part of `completion`).
    Reasoning,
}

/// The outcome of one call to Blnk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerOutcome {
    Ok,
    /// Blnk responded with a 4xx other than 401 and 403, a decision against this request.
    Rejected,
    /// Blnk rejected the credentials.
    Unauthorized,
    /// Blnk responded with a 5xx.
    ServerError,
    Timeout,
    /// No connection or the connection broke.
    Unreachable,
    /// Blnk responded 2xx with a body tollgate could not read.
    InvalidResponse,
}

/// Counters of one billed model.
#[derive(Default)]
pub struct ModelCounters {
    /// Indexed by [`TokenClass`].
    pub tokens: [AtomicU64; TokenClass::ALL.len()],
    /// Charged amounts in nano-dollars (1e-9 USD).
    pub charged_nanos: AtomicU64,
}

/// Counters of one ledger operation.
pub struct LedgerCounters {
    /// Indexed by [`LedgerOutcome`].
    pub outcomes: [AtomicU64; LedgerOutcome::ALL.len()],
    pub duration: Histogram,
}

/// Every metric tollgate keeps in memory. Values read from elsewhere at scrape time (the
/// outbox, the price table) are not here.
pub struct Metrics {
    pub(super) requests: [[AtomicU64; STATUS_CODES]; Route::ALL.len()],
    pub(super) insufficient_funds: AtomicU64,
    pub(super) models: LabelTable<ModelCounters, MAX_MODELS>,
    pub(super) ledger: LabelTable<LedgerCounters, MAX_OPERATIONS>,
    /// Index 0 for non-streaming requests, 1 for streams.
    pub(super) upstream: [Histogram; 2],
    pub(super) overhead: Histogram,
    pub(super) holds_open: AtomicI64,
    /// Indexed by [`ReloadTrigger`], then 0 for success and 1 for failure.
    pub(super) price_reloads: [[AtomicU64; 2]; ReloadTrigger::ALL.len()],
}

static METRICS: Metrics = Metrics::new();

/// Returns the registry of this process.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Route {
    pub const ALL: [Route; 7] = [
        Route::ChatCompletions,
        Route::Completions,
        Route::Embeddings,
        Route::Responses,
        Route::Models,
        Route::PassThrough,
        Route::Unknown,
    ];

    /// Returns the `route` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::ChatCompletions => Endpoint::ChatCompletions.path(),
            Route::Completions => Endpoint::Completions.path(),
            Route::Embeddings => Endpoint::Embeddings.path(),
            Route::Responses => Endpoint::Responses.path(),
            Route::Models => "/v1/models",
            Route::PassThrough => "pass_through",
            Route::Unknown => "unknown",
        }
    }
}

impl From<Endpoint> for Route {
    fn from(endpoint: Endpoint) -> Route {
        match endpoint {
            Endpoint::ChatCompletions => Route::ChatCompletions,
            Endpoint::Completions => Route::Completions,
            Endpoint::Embeddings => Route::Embeddings,
            Endpoint::Responses => Route::Responses,
        }
    }
}

impl TokenClass {
    pub const ALL: [TokenClass; 5] = [
        TokenClass::Prompt,
        TokenClass::Cached,
        TokenClass::CacheWrite,
        TokenClass::Completion,
        TokenClass::Reasoning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenClass::Prompt => "prompt",
            TokenClass::Cached => "cached",
            TokenClass::CacheWrite => "cache_write",
            TokenClass::Completion => "completion",
            TokenClass::Reasoning => "reasoning",
        }
    }

    /// Returns the count of this class in `usage`, or zero when it was not reported.
    fn count(self, usage: &Usage) -> u64 {
        match self {
            TokenClass::Prompt => usage.prompt_tokens,
            TokenClass::Cached => usage.cached_tokens.unwrap_or(0),
            TokenClass::CacheWrite => usage.cache_write_tokens.unwrap_or(0),
            TokenClass::Completion => usage.completion_tokens,
            TokenClass::Reasoning => usage.reasoning_tokens.unwrap_or(0),
        }
    }
}

impl LedgerOutcome {
    pub const ALL: [LedgerOutcome; 7] = [
        LedgerOutcome::Ok,
        LedgerOutcome::Rejected,
        LedgerOutcome::Unauthorized,
        LedgerOutcome::ServerError,
        LedgerOutcome::Timeout,
        LedgerOutcome::Unreachable,
        LedgerOutcome::InvalidResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOutcome::Ok => "ok",
            LedgerOutcome::Rejected => "rejected",
            LedgerOutcome::Unauthorized => "unauthorized",
            LedgerOutcome::ServerError => "server_error",
            LedgerOutcome::Timeout => "timeout",
            LedgerOutcome::Unreachable => "unreachable",
            LedgerOutcome::InvalidResponse => "invalid_response",
        }
    }

    /// Returns whether the response shows that Blnk works: a success, or a decision
    /// against this one request.
    pub fn responded(self) -> bool {
        matches!(self, LedgerOutcome::Ok | LedgerOutcome::Rejected)
    }
}

impl Default for LedgerCounters {
    fn default() -> Self {
        LedgerCounters {
            outcomes: Default::default(),
            duration: Histogram::new(LEDGER_BOUNDS),
        }
    }
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; STATUS_CODES] }; Route::ALL.len()],
            insufficient_funds: AtomicU64::new(0),
            models: LabelTable::new(),
            ledger: LabelTable::new(),
            upstream: [
                Histogram::new(UPSTREAM_BOUNDS),
                Histogram::new(UPSTREAM_BOUNDS),
            ],
            overhead: Histogram::new(OVERHEAD_BOUNDS),
            holds_open: AtomicI64::new(0),
            price_reloads: [const { [const { AtomicU64::new(0) }; 2] }; ReloadTrigger::ALL.len()],
        }
    }

    /// Counts a finished request. Status codes outside 100 to 599 count as 599.
    pub fn request(&self, route: Route, status: u16) {
        let index = usize::from(status.saturating_sub(FIRST_STATUS)).min(STATUS_CODES - 1);
        self.requests[route as usize][index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused with 402 because the hold was refused.
    pub fn insufficient_funds(&self) {
        self.insufficient_funds.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a charge's tokens and amount to its billed model. `model` must come from the
    /// price table, which bounds the number of labels.
    pub fn charge(&self, model: &str, usage: &Usage, amount: Nanos) {
        let counters = self.models.get(model);
        for class in TokenClass::ALL {
            counters.tokens[class as usize].fetch_add(class.count(usage), Ordering::Relaxed);
        }
        let nanos = u64::try_from(amount.0).unwrap_or(0);
        counters.charged_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn ledger_call(&self, operation: &'static str, outcome: LedgerOutcome, elapsed: Duration) {
        let counters = self.ledger.get(operation);
        counters.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        counters.duration.observe(elapsed);
    }

    /// Records how long upstream took for one request.
    pub fn upstream(&self, stream: bool, elapsed: Duration) {
        self.upstream[usize::from(stream)].observe(elapsed);
    }

    /// Records tollgate's own share of one request: total time minus upstream and ledger.
    pub fn overhead(&self, elapsed: Duration) {
        self.overhead.observe(elapsed);
    }

    pub fn hold_opened(&self) {
        self.holds_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hold_closed(&self) {
        self.holds_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn price_reload(&self, trigger: ReloadTrigger, succeeded: bool) {
        let outcome = usize::from(!succeeded);
        self.price_reloads[trigger as usize][outcome].fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_clamped() {
        let metrics = Metrics::new();
        for status in [0, 99, 100, 200, 599, 600, u16::MAX] {
            metrics.request(Route::Unknown, status);
        }
        let row = &metrics.requests[Route::Unknown as usize];
        assert_eq!(
            row[0].load(Ordering::Relaxed),
            3,
            "0, 99 and 100 count as 100"
        );
        assert_eq!(row[100].load(Ordering::Relaxed), 1);
        assert_eq!(
            row[STATUS_CODES - 1].load(Ordering::Relaxed),
            3,
            "599 and above count as 599"
        );
    }

    #[test]
    fn charge_adds_every_token_class() {
        let metrics = Metrics::new();
        let usage = Usage {
            prompt_tokens: 100,
            completion_tokens: 40,
            cached_tokens: Some(30),
            reasoning_tokens: Some(10),
            ..Usage::default()
        };
        metrics.charge("gpt-4o", &usage, Nanos(1_500));
        metrics.charge("gpt-4o", &usage, Nanos(500));

        let counters = metrics.models.get("gpt-4o");
        let tokens: Vec<u64> = counters
            .tokens
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(tokens, vec![200, 60, 0, 80, 20]);
        assert_eq!(counters.charged_nanos.load(Ordering::Relaxed), 2_000);
    }
}
