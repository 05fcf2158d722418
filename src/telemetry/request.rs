//! The access record of one metered request: filled in as the request goes, then logged as
//! one `request finished` event (target `tollgate::request`) and added to the metrics when
//! the request ends. For a stream, the end is when the relay has sent the last event.
//!
//! The record lives in a task-local slot, so the proxy code fills it with one-line calls and
//! no signature carries it. Work that continues in another task takes the record along with
//! [`carry`], [`exchange`] or [`stream`]. Calls made outside a metered request (the outbox
//! worker, the CLI) find no slot and do nothing. The record never contains a prompt, a
//! completion or a key.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::response::Response;

use crate::billing::{ChargeRecord, ChargeStatus};
use crate::error::ProxyError;
use crate::ids::{CustomerId, RequestId};
use crate::money::{Nanos, Usd};
use crate::pricing::Cost;
use crate::usage::{Endpoint, Usage, UsageSource};

use super::metrics::{Route, metrics};

/// The status logged and counted for a request without a response, because its client
/// closed the connection before tollgate had one (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// One record, shared by the tasks that serve its request. Only one of them touches it at a
/// time, so the lock is never contended.
type Shared = Arc<Mutex<RequestRecord>>;

tokio::task_local! {
    static CURRENT: Shared;
}

/// The facts gathered about one request so far.
struct RequestRecord {
    route: Route,
    span: tracing::Span,
    started: Instant,
    request_id: Option<RequestId>,
    customer: Option<String>,
    model_requested: Option<String>,
    stream: Option<bool>,
    status: Option<u16>,
    error_code: Option<&'static str>,
    error: Option<String>,
    hold_reference: Option<String>,
    /// Boxed: filled in only when the request ends, and a stream's record lives as long as
    /// the stream.
    billed: Option<Box<Billed>>,
    ledger: Option<ChargeStatus>,
    upstream_started: Option<Instant>,
    upstream_finished: Option<Instant>,
    ledger_time: Duration,
    /// A stream relay took the record over and logs it when the stream ends.
    streaming: bool,
    /// The handler was dropped before it returned a response, because the client left.
    client_left: bool,
    finished: bool,
}

/// The charge of a request.
struct Billed {
    model: String,
    usage: Usage,
    source: UsageSource,
    cost_usd: Usd,
    amount: Nanos,
    references: String,
    client_disconnected: bool,
}

/// Marks the record when the handler future is dropped before it returns a response.
struct LeftEarly(Option<Shared>);

/// Serves one metered request with a fresh record, then logs and counts it, unless the
/// response is a stream whose relay logs it at the end (see [`stream`]).
pub async fn metered<F>(endpoint: Endpoint, handler: F) -> Response
where
    F: Future<Output = Response>,
{
    let record: Shared = Arc::new(Mutex::new(RequestRecord::new(Route::from(endpoint))));
    let mut left_early = LeftEarly(Some(Arc::clone(&record)));
    let response = CURRENT.scope(Arc::clone(&record), handler).await;
    left_early.0 = None;

    let mut record = lock(&record);
    if !record.streaming {
        record.status = Some(response.status().as_u16());
        record.emit();
    }
    response
}

/// Runs `work` in the current request's record, for work moved to another task.
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let record = current();
    async move {
        match record {
            Some(record) => CURRENT.scope(record, work).await,
            None => work.await,
        }
    }
}

/// Like [`carry`] for the task that calls upstream, and notes its response or error, so the
/// record is complete even when the client left before the response.
pub fn exchange<F>(work: F) -> impl Future<Output = Result<Response, ProxyError>>
where
    F: Future<Output = Result<Response, ProxyError>>,
{
    carry(async move {
        let result = work.await;
        match &result {
            Ok(response) => with(|record| record.status = Some(response.status().as_u16())),
            Err(error) => {
                let (status, _, code) = error.parts();
                with(|record| {
                    record.status = Some(status.as_u16());
                    record.error_code = Some(code);
                    record.error = Some(error.to_string());
                });
            }
        }
        result
    })
}

/// Hands the current record to a stream relay that responded with `status`. The relay logs
/// the record when it calls [`finish`].
pub fn stream<F: Future>(status: u16, relay: F) -> impl Future<Output = F::Output> {
    with(|record| {
        record.streaming = true;
        record.status = Some(status);
    });
    carry(relay)
}

/// Logs and counts the current request now; later calls do nothing.
pub fn finish() {
    with(RequestRecord::emit);
}

/// Names the request and the span its event is logged in.
pub fn begin(request_id: RequestId, span: &tracing::Span) {
    with(|record| {
        record.request_id = Some(request_id);
        record.span = span.clone();
    });
}

pub fn identify(customer: &CustomerId) {
    with(|record| record.customer = Some(customer.to_string()));
}

pub fn requested(model: &str, stream: bool) {
    with(|record| {
        record.model_requested = Some(model.to_string());
        record.stream = Some(stream);
    });
}

/// Notes tollgate's own error response: its `code` and message.
pub fn rejected(code: &'static str, error: &dyn std::fmt::Display) {
    with(|record| {
        record.error_code = Some(code);
        record.error = Some(error.to_string());
    });
}

/// Notes a placed hold and counts it as open until its release.
pub fn hold_placed(reference: &str) {
    metrics().hold_opened();
    with(|record| record.hold_reference = Some(reference.to_string()));
}

/// Marks the moment the request is sent upstream.
pub fn upstream_started() {
    with(|record| record.upstream_started = Some(Instant::now()));
}

/// Marks the moment upstream's body ended (or the stream ended).
pub fn upstream_finished() {
    with(|record| record.upstream_finished = Some(Instant::now()));
}

/// Notes what the request is charged, just before the charge is recorded.
pub fn charged(
    usage: &Usage,
    source: UsageSource,
    client_disconnected: bool,
    cost: &Cost,
    charge: &ChargeRecord,
) {
    let billed = Billed {
        model: cost.model.clone(),
        usage: usage.clone(),
        source,
        cost_usd: cost.customer_price,
        amount: cost.amount,
        references: charge.leg_references().join(","),
        client_disconnected,
    };
    with(|record| record.billed = Some(Box::new(billed)));
}

/// Notes whether the charge was recorded before the response completed.
pub fn ledger_outcome(status: ChargeStatus) {
    with(|record| record.ledger = Some(status));
}

/// Awaits `call` and adds its duration to the current request's ledger time.
pub async fn time_ledger<F: Future>(call: F) -> F::Output {
    let started = Instant::now();
    let output = call.await;
    add_ledger_time(started.elapsed());
    output
}

/// Adds `elapsed` to the current request's ledger time.
pub(super) fn add_ledger_time(elapsed: Duration) {
    with(|record| record.ledger_time += elapsed);
}

fn current() -> Option<Shared> {
    CURRENT.try_with(Arc::clone).ok()
}

fn with(update: impl FnOnce(&mut RequestRecord)) {
    let _outside_request = CURRENT.try_with(|record| update(&mut lock(record)));
}

fn lock(record: &Shared) -> std::sync::MutexGuard<'_, RequestRecord> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for LeftEarly {
    fn drop(&mut self) {
        if let Some(record) = &self.0 {
            lock(record).client_left = true;
        }
    }
}

impl RequestRecord {
    fn new(route: Route) -> RequestRecord {
        RequestRecord {
            route,
            span: tracing::Span::none(),
            started: Instant::now(),
            request_id: None,
            customer: None,
            model_requested: None,
            stream: None,
            status: None,
            error_code: None,
            error: None,
            hold_reference: None,
            billed: None,
            ledger: None,
            upstream_started: None,
            upstream_finished: None,
            ledger_time: Duration::ZERO,
            streaming: false,
            client_left: false,
            finished: false,
        }
    }

    fn upstream_time(&self) -> Option<Duration> {
        let started = self.upstream_started?;
        let finished = self.upstream_finished.unwrap_or_else(Instant::now);
        Some(finished.saturating_duration_since(started))
    }

    /// Adds the request to the metrics and logs its event, once.
    fn emit(&mut self) {
        self.emit_once(false);
    }

    /// `aborted`: the last task holding the record was dropped before the request finished.
    fn emit_once(&mut self, aborted: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        let durations = Durations::of(self);
        self.count(&durations);
        self.span.in_scope(|| self.log(&durations, aborted));
    }

    fn count(&self, durations: &Durations) {
        let metrics = metrics();
        metrics.request(self.route, self.status.unwrap_or(CLIENT_CLOSED));
        if self.error_code == Some("insufficient_funds") {
            metrics.insufficient_funds();
        }
        if let Some(billed) = &self.billed {
            metrics.charge(&billed.model, &billed.usage, billed.amount);
        }
        if let Some(upstream) = durations.upstream {
            metrics.upstream(self.stream.unwrap_or(false), upstream);
        }
        metrics.overhead(durations.overhead);
    }

    fn log(&self, durations: &Durations, aborted: bool) {
        let billed = self.billed.as_deref();
        let usage = billed.map(|billed| &billed.usage);
        let client_disconnected = billed
            .map(|billed| billed.client_disconnected || self.client_left)
            .or(self.client_left.then_some(true));
        tracing::info!(
            target: "tollgate::request",
            request_id = self.request_id.map(display),
            customer_id = self.customer.as_deref(),
            route = self.route.as_str(),
            model_requested = self.model_requested.as_deref(),
            model_billed = billed.map(|billed| billed.model.as_str()),
            stream = self.stream,
            status = self.status.unwrap_or(CLIENT_CLOSED),
            error_code = self.error_code,
            error = self.error.as_deref(),
            prompt_tokens = usage.map(|usage| usage.prompt_tokens),
            cached_tokens = usage.and_then(|usage| usage.cached_tokens),
            cache_write_tokens = usage.and_then(|usage| usage.cache_write_tokens),
            completion_tokens = usage.map(|usage| usage.completion_tokens),
            reasoning_tokens = usage.and_then(|usage| usage.reasoning_tokens),
            usage_source = billed.map(|billed| source_name(billed.source)),
            cost_usd = billed.map(|billed| display(billed.cost_usd)),
            amount_usd = billed.map(|billed| display(billed.amount.to_usd())),
            hold_reference = self.hold_reference.as_deref(),
            charge_references = billed.map(|billed| billed.references.as_str()),
            ledger = self.ledger.map(ChargeStatus::as_str),
            client_disconnected,
            duration_us = micros(durations.total),
            upstream_us = durations.upstream.map(micros),
            ledger_us = micros(self.ledger_time),
            overhead_us = micros(durations.overhead),
            aborted = aborted.then_some(true),
            "request finished"
        );
    }
}

impl Drop for RequestRecord {
    /// Logs a request that no task finished, so that every request gets its event: its
    /// client left before the response, or its stream relay was cut by shutdown.
    fn drop(&mut self) {
        let aborted = !self.client_left;
        self.emit_once(aborted);
    }
}

/// The split of a request's time.
struct Durations {
    total: Duration,
    upstream: Option<Duration>,
    /// The total minus upstream and ledger time.
    overhead: Duration,
}

impl Durations {
    fn of(record: &RequestRecord) -> Durations {
        let total = record.started.elapsed();
        let upstream = record.upstream_time();
        let overhead = total
            .saturating_sub(upstream.unwrap_or_default())
            .saturating_sub(record.ledger_time);
        Durations {
            total,
            upstream,
            overhead,
        }
    }
}

fn source_name(source: UsageSource) -> &'static str {
    match source {
        UsageSource::Reported => "reported",
        UsageSource::Estimated => "estimated",
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
