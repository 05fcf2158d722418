//! A metered request from start to end: identify the customer, read and check the request,
//! reserve, forward, meter, charge.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Collected, Limited};
use tracing::{Instrument, field};

use crate::accounts::{Account, Lookup};
use crate::auth::Caller;
use crate::billing::HoldError;
use crate::billing::request::{PromptBounds, RequestFacts, force_include_usage};
use crate::config::Config;
use crate::error::ProxyError;
use crate::http_client::describe;
use crate::ids::{CustomerId, RequestId};
use crate::limits::check_json_depth;
use crate::money::Usd;
use crate::pricing::QuoteError;
use crate::usage::{Endpoint, Usage, UsageSource, count_text_tokens, read_response};

use super::AppState;
use super::headers::{client_response_headers, forwarded};
use super::ledger_step::{BilledUsage, Metering, Receipt};
use super::stream;
use super::upstream::UpstreamResponse;

pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// Serves one metered request and always returns a response: upstream's, or tollgate's error.
pub async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    request: Request,
    started_at: DateTime<Utc>,
) -> Response {
    let request_id = RequestId::new();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        route = endpoint.path(),
        customer = field::Empty,
        model = field::Empty,
        stream = field::Empty,
    );
    crate::telemetry::request::begin(request_id, &span);
    let started = Instant::now();
    // Boxed: axum moves the handler's future several times, and `serve`'s state is large.
    let mut response = Box::pin(serve(
        Arc::clone(&state),
        endpoint,
        request,
        request_id,
        started_at,
    ))
    .instrument(span.clone())
    .await
    .unwrap_or_else(|error| {
        let (status, _, code) = error.parts();
        crate::telemetry::request::rejected(code, &error);
        span.in_scope(
            || tracing::info!(status = status.as_u16(), code, %error, "request rejected"),
        );
        error.into_response()
    });
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "response headers sent"
        )
    });
    response
}

async fn serve(
    state: Arc<AppState>,
    endpoint: Endpoint,
    request: Request,
    request_id: RequestId,
    started_at: DateTime<Utc>,
) -> Result<Response, ProxyError> {
    let config = &state.config;
    let (parts, body) = request.into_parts();
    // A per-customer key decides the customer; otherwise the customer header does.
    let customer = match state.auth.authenticate(&parts.headers).await? {
        Caller::KeyHolder { customer, .. } => customer,
        Caller::Trusted => customer_id(&parts.headers, &config.customer_header)?,
    };
    tracing::Span::current().record("customer", customer.as_str());
    crate::telemetry::request::identify(&customer);

    let body = read_body(
        body,
        &parts.headers,
        config.max_body_bytes,
        BodyTimeouts::from_config(config),
    )
    .await?;
    check_json_depth(&body, config.max_json_depth).map_err(|exceeded| ProxyError::JsonTooDeep {
        limit: exceeded.max_depth,
    })?;
    let facts = RequestFacts::parse(endpoint, &body)?;
    let span = tracing::Span::current();
    span.record("model", facts.model.as_str());
    span.record("stream", facts.stream);
    crate::telemetry::request::requested(&facts.model, facts.stream);

    let prices = state.price_table();
    let price =
        prices
            .resolve(&facts.model, started_at)
            .ok_or_else(|| ProxyError::ModelNotPriced {
                model: facts.model.clone(),
            })?;
    if price.via_fallback() {
        tracing::warn!(model = %facts.model, billed_as = price.model(), "unlisted dated snapshot priced as its base model");
    }
    if facts.audio && !price.supports_audio() {
        return Err(ProxyError::Unsupported {
            message: format!(
                "model {:?} has no audio prices in tollgate's price file, so audio cannot be billed; \
                 send text only, or ask the operator to add audio_input and audio_output for it",
                facts.model
            ),
            param: Some("model"),
        });
    }

    let account = find_account(&state, &customer).await?;
    let mut metering = Metering {
        state: Arc::clone(&state),
        request_id,
        account,
        endpoint,
        stream: facts.stream,
        model_requested: facts.model.clone(),
        prices: Arc::clone(&prices),
        price,
        started_at,
        quote: None,
        hold: None,
        request_body: body.clone(),
    };
    reserve(&state, &facts, &mut metering).await?;

    let upstream_body =
        if facts.stream && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions) {
            Bytes::from(force_include_usage(&body)?)
        } else {
            body
        };
    let (headers, path) = forwarded(&parts, config);
    let call = UpstreamCall {
        method: parts.method.clone(),
        path,
        headers,
        body: upstream_body,
        stream: facts.stream,
        client_wants_usage: facts.include_usage == Some(true),
    };

    // The exchange runs in this task, and a client that disconnects does not cancel it: the
    // dropped handler hands the rest to a tracked task, which bills the response. Shutdown
    // waits for that task.
    // Boxed first: the future is several KiB, and each wrapper would copy it.
    let exchange = Box::pin(exchange(metering, call));
    let exchange =
        crate::telemetry::request::exchange(exchange).instrument(tracing::Span::current());
    // A panic becomes a 500, as it would in a task of its own.
    let exchange = AssertUnwindSafe(exchange).catch_unwind();
    state
        .biller
        .detachable("upstream-exchange", exchange)
        .await
        .unwrap_or_else(|_| {
            tracing::error!("the upstream exchange panicked; returning 500");
            Err(ProxyError::Internal {
                detail: "the upstream exchange panicked".to_string(),
            })
        })
}

/// The request tollgate sends upstream.
struct UpstreamCall {
    method: http::Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    stream: bool,
    client_wants_usage: bool,
}

/// Calls upstream and meters its response: relayed unbilled on an upstream error, relayed
/// while metered for a stream, or read whole and charged.
async fn exchange(metering: Metering, call: UpstreamCall) -> Result<Response, ProxyError> {
    let state = Arc::clone(&metering.state);
    crate::telemetry::request::upstream_started();
    let upstream = state
        .upstream
        .send(call.method, &call.path, call.headers, call.body)
        .await?;

    let operator_key = state.config.upstream.api_key.is_some();
    if !upstream.status().is_success() {
        // Upstream's own error: relayed unchanged, nothing billed, the hold released.
        metering.abandon();
        return relay_unbilled(upstream, operator_key).await;
    }
    // An upstream that returns a whole JSON body to a stream request is metered as one.
    if call.stream && is_event_stream(upstream.headers()) {
        return Ok(stream::relay(
            metering,
            upstream,
            call.client_wants_usage,
            operator_key,
        ));
    }
    complete(metering, upstream, operator_key).await
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn customer_id(headers: &HeaderMap, name: &http::HeaderName) -> Result<CustomerId, ProxyError> {
    // Two values could name two customers; billing either would be a guess.
    if headers.get_all(name).iter().nth(1).is_some() {
        return Err(ProxyError::RepeatedCustomerId {
            header: name.to_string(),
        });
    }
    let value = headers
        .get(name)
        .ok_or_else(|| ProxyError::MissingCustomerId {
            header: name.to_string(),
        })?;
    let text = value.to_str().unwrap_or("\u{fffd}");
    CustomerId::parse(text.trim()).map_err(|source| ProxyError::InvalidCustomerId {
        header: name.to_string(),
        source,
    })
}

/// Time limits on reading a request body.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyTimeouts {
    /// Maximum pause between two pieces of the body.
    pub idle: Duration,
    /// Maximum time the whole body may take.
    pub total: Duration,
}

impl BodyTimeouts {
    pub(super) fn from_config(config: &Config) -> BodyTimeouts {
        BodyTimeouts {
            idle: config.body_idle_timeout,
            total: config.body_read_timeout,
        }
    }
}

/// Reads a whole request body of at most `limit` bytes. Fails when `timeouts.idle` passes
/// without a byte of it arriving, or when the whole body takes longer than `timeouts.total`.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeouts: BodyTimeouts,
) -> Result<Bytes, ProxyError> {
    let BodyTimeouts { idle, total } = timeouts;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let mut body = Limited::new(body, limit);
    let mut pieces = Vec::new();
    let mut length = 0;
    // One timer for the whole body, moved on only when it fires, so the many pieces of a
    // large body do not each arm and disarm a timer.
    let mut last_piece = tokio::time::Instant::now();
    let deadline = last_piece + total;
    let stall = tokio::time::sleep(idle.min(total));
    tokio::pin!(stall);
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut stall => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(ProxyError::BodyTooSlow { limit: total, received: length });
                }
                let quiet_until = last_piece + idle;
                if now >= quiet_until {
                    return Err(ProxyError::BodyStalled { idle, received: length });
                }
                stall.as_mut().reset(quiet_until.min(deadline));
                continue;
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            None => break,
            Some(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(ProxyError::BodyTooLarge { limit });
            }
            Some(Err(error)) => {
                return Err(ProxyError::InvalidJson {
                    detail: format!("the request body could not be read: {error}"),
                });
            }
        };
        last_piece = tokio::time::Instant::now();
        if let Ok(data) = frame.into_data() {
            length += data.len();
            pieces.push(data);
        }
    }
    Ok(into_own_allocation(pieces, length))
}

/// Copies the pieces of a request body into one allocation of exactly its size.
///
/// A body that arrived in one read is a slice of the connection's read buffer. A stream keeps
/// its request body until it ends, to estimate the prompt if upstream reports no usage. If the
/// body were that slice, it would keep the buffer alive, and hyper would allocate another for
/// the connection's next read: 4 KiB more per open stream in the memory benchmark.
fn into_own_allocation(pieces: Vec<Bytes>, length: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(length);
    for piece in pieces {
        body.extend_from_slice(&piece);
    }
    body.freeze()
}

async fn find_account(state: &AppState, customer: &CustomerId) -> Result<Account, ProxyError> {
    use crate::accounts::AccountError;
    match state.accounts.lookup(customer).await {
        Ok(Lookup::Found(account)) => Ok(account),
        Ok(Lookup::Unknown) => Err(ProxyError::UnknownCustomer {
            customer: customer.to_string(),
        }),
        Err(AccountError::Ledger(error)) if error.is_unavailable() => {
            crate::warn_rate_limited!("ledger.no_cached_account", %error, "ledger unreachable and no cached account");
            Err(ProxyError::LedgerUnavailable {
                detail: error.to_string(),
            })
        }
        Err(AccountError::Ledger(error)) => Err(ProxyError::LedgerUnavailable {
            detail: error.to_string(),
        }),
        Err(AccountError::Misconfigured { customer, detail }) => {
            Err(ProxyError::AccountMisconfigured { customer, detail })
        }
    }
}

/// Places the hold for a credit-limited account. Unlimited postpaid accounts skip it.
async fn reserve(
    state: &AppState,
    facts: &RequestFacts,
    metering: &mut Metering,
) -> Result<(), ProxyError> {
    let Some(limit) = metering.account.billing.hold_limit() else {
        return Ok(());
    };
    let pricing = &state.config.pricing;
    let prompt_bound = facts.prompt_bound(
        &metering.request_body,
        &PromptBounds {
            image_tokens: pricing.image_token_bound,
            audio_tokens: pricing.audio_token_bound,
            context_tokens: pricing.context_token_bound,
        },
    );
    let quote = metering
        .price
        .quote(
            prompt_bound,
            facts.max_output_tokens,
            facts.choices,
            facts.service_tier.as_deref(),
            facts.audio,
        )
        .map_err(|error| ProxyError::Unsupported {
            message: match error {
                QuoteError::NoOutputLimit { model } => format!(
                    "the cost of this request cannot be reserved: it sets no output limit and \
                     model {model:?} has none in the price file; set max_tokens (or \
                     max_output_tokens for the Responses API)"
                ),
                too_large @ QuoteError::TooLarge { .. } => too_large.to_string(),
            },
            param: Some("max_tokens"),
        })?;
    // Blnk stores amounts in 64-bit integers in practice; a worst case beyond that (about
    // $9.2 billion) is no real request.
    if crate::billing::hold_amount(quote).0 > i128::from(i64::MAX) {
        return Err(ProxyError::Unsupported {
            message: format!(
                "the worst-case cost of this request (${quote}) is too large to reserve; lower \
                 max_tokens or n"
            ),
            param: Some("max_tokens"),
        });
    }
    metering.quote = Some(quote);

    let request_id = metering.request_id.to_string();
    match state
        .biller
        .reserve(&metering.account, &request_id, quote, limit)
        .await
    {
        Ok(placed) => {
            metering.hold = placed.claim();
            if let Some(hold) = &metering.hold {
                crate::telemetry::request::hold_placed(&hold.record.reference);
            }
            Ok(())
        }
        Err(HoldError::Refused) => {
            let available = available_funds(state, &metering.account).await;
            let limit = (!limit.is_zero()).then_some(limit);
            tracing::info!(quote = %quote, "hold rejected: insufficient funds");
            Err(ProxyError::insufficient_funds(
                metering.account.customer.as_str(),
                available,
                quote,
                limit,
            ))
        }
        Err(HoldError::Unavailable(error)) if state.config.blnk.fail_open_credit_limited => {
            tracing::warn!(%error, "ledger unavailable; serving a credit-limited account without a hold (fail_open_credit_limited)");
            Ok(())
        }
        Err(HoldError::Unavailable(error)) => {
            crate::warn_rate_limited!("ledger.hold_unavailable", %error, "ledger unavailable; the hold could not be placed");
            Err(ProxyError::LedgerUnavailable {
                detail: error.to_string(),
            })
        }
        Err(HoldError::Ledger(error)) => Err(ProxyError::AccountMisconfigured {
            customer: metering.account.customer.to_string(),
            detail: format!("Blnk rejected the hold: {error}"),
        }),
        Err(HoldError::Outbox(detail)) => Err(ProxyError::Internal { detail }),
    }
}

async fn available_funds(state: &AppState, account: &Account) -> Option<Usd> {
    let balance = state
        .biller
        .blnk()
        .get_balance(&account.usd_balance_id)
        .await
        .ok()?;
    Some(crate::money::Nanos(balance.available()).to_usd())
}

/// Relays a non-2xx upstream response unchanged.
async fn relay_unbilled(
    upstream: UpstreamResponse,
    operator_key: bool,
) -> Result<Response, ProxyError> {
    let (head, body) = upstream.into_parts();
    let status = head.status;
    let headers = client_response_headers(&head.headers, operator_key);
    let body = body
        .collect()
        .await
        .map(Collected::to_bytes)
        .unwrap_or_default();
    crate::telemetry::request::upstream_finished();
    tracing::info!(
        status = status.as_u16(),
        "upstream error relayed; nothing billed"
    );
    Ok(build_response(status, headers, Body::from(body)))
}

/// Reads a whole 2xx response, charges its usage, then returns it.
async fn complete(
    metering: Metering,
    upstream: UpstreamResponse,
    operator_key: bool,
) -> Result<Response, ProxyError> {
    let (head, body) = upstream.into_parts();
    let status = head.status;
    let mut headers = client_response_headers(&head.headers, operator_key);
    let timeout = metering.state.upstream.first_byte_timeout();
    let body = match tokio::time::timeout(timeout, body.collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) => {
            metering.abandon();
            return Err(ProxyError::UpstreamUnreachable {
                detail: format!("the response body broke off: {}", describe(&error)),
            });
        }
        Err(_) => {
            metering.abandon();
            return Err(metering_timeout(timeout));
        }
    };
    crate::telemetry::request::upstream_finished();

    let billed = billed_usage(&metering, &body);
    let receipt = metering.charge(billed).await;
    add_receipt_headers(&mut headers, &receipt);
    log_receipt(&receipt);
    Ok(build_response(status, headers, Body::from(body)))
}

fn metering_timeout(timeout: std::time::Duration) -> ProxyError {
    ProxyError::UpstreamTimeout {
        seconds: timeout.as_secs(),
    }
}

/// Reads the usage of a complete response body, or estimates it when the body has none.
fn billed_usage(metering: &Metering, body: &[u8]) -> BilledUsage {
    let facts = match read_response(metering.endpoint, body) {
        Ok(facts) => facts,
        Err(error) => {
            tracing::warn!(%error, "the response's usage could not be read; estimating it");
            Default::default()
        }
    };
    let (usage, source) = match facts.usage {
        Some(usage) => (usage, UsageSource::Reported),
        None => {
            let completion = count_text_tokens(&metering.model_requested, &response_text(body));
            let usage = Usage {
                prompt_tokens: metering.estimate_prompt(),
                completion_tokens: completion,
                ..Usage::default()
            };
            tracing::warn!(
                prompt = usage.prompt_tokens,
                completion,
                "a 2xx response reported no usage; billing a tokenizer estimate"
            );
            (usage, UsageSource::Estimated)
        }
    };
    BilledUsage {
        usage,
        source,
        response_model: facts.model,
        service_tier: facts.service_tier,
        client_disconnected: false,
    }
}

/// Collects the generated text of a response without usage, for an estimate. The case is
/// rare, so a full parse is fine.
fn response_text(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    let mut text = String::new();
    collect_text(&value, &mut text);
    text
}

fn collect_text(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    (
                        "content" | "text" | "arguments" | "refusal",
                        serde_json::Value::String(s),
                    ) => {
                        out.push_str(s);
                        out.push('\n');
                    }
                    _ => collect_text(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        _ => {}
    }
}

pub fn add_receipt_headers(headers: &mut HeaderMap, receipt: &Receipt) {
    if let Ok(value) = HeaderValue::from_str(&receipt.amount.to_usd().to_string()) {
        headers.insert("x-tollgate-cost-usd", value);
    }
    headers.insert(
        "x-tollgate-charge",
        HeaderValue::from_static(receipt.status.as_str()),
    );
}

pub fn log_receipt(receipt: &Receipt) {
    tracing::debug!(
        model_billed = %receipt.cost.model,
        cost_usd = %receipt.cost.customer_price,
        amount_nanos = %receipt.amount,
        charge = receipt.status.as_str(),
        "request billed"
    );
}

pub fn build_response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    use super::*;

    const TIMEOUTS: BodyTimeouts = BodyTimeouts {
        idle: Duration::from_secs(5),
        total: Duration::from_secs(60),
    };

    /// Builds a body of `pieces` one-byte pieces, each sent after `pause`.
    fn trickle(pieces: usize, pause: Duration) -> Body {
        let stream = futures_util::stream::iter(0..pieces).then(move |_| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b" ")))
        });
        Body::new(StreamBody::new(stream))
    }

    #[tokio::test]
    async fn read_body_releases_read_buffer() {
        let read_buffer = Bytes::from(vec![b'x'; 8192]);
        let request = read_buffer.slice(..300);

        let body = read_body(
            Body::new(Full::new(request)),
            &HeaderMap::new(),
            1 << 20,
            TIMEOUTS,
        )
        .await
        .expect("a body under the limit");

        assert_eq!(body.len(), 300);
        assert!(
            read_buffer.is_unique(),
            "the body still holds the read buffer"
        );
    }

    #[tokio::test]
    async fn read_body_joins_pieces_in_order() {
        let pieces = ["{\"model\":", "\"gpt-4o\",", "\"messages\":[]}"]
            .map(|piece| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(piece))));
        let streamed = Body::new(StreamBody::new(futures_util::stream::iter(pieces)));

        let body = read_body(streamed, &HeaderMap::new(), 1 << 20, TIMEOUTS)
            .await
            .expect("a body under the limit");

        assert_eq!(&body[..], b"{\"model\":\"gpt-4o\",\"messages\":[]}");
    }

    #[tokio::test(start_paused = true)]
    async fn trickling_body_hits_total_timeout() {
        let timeouts = BodyTimeouts {
            idle: Duration::from_secs(5),
            total: Duration::from_secs(10),
        };
        // A byte every 2 s never pauses for the idle timeout, but takes 40 s in all.
        let body = trickle(20, Duration::from_secs(2));

        let error = read_body(body, &HeaderMap::new(), 1 << 20, timeouts)
            .await
            .expect_err("the body outlasts its total timeout");

        let ProxyError::BodyTooSlow { limit, received } = error else {
            panic!("expected BodyTooSlow, got {error:?}");
        };
        assert_eq!(limit, Duration::from_secs(10));
        assert_eq!(received, 5, "bytes that arrived within 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_body_within_total_is_read() {
        let body = trickle(20, Duration::from_secs(2));

        let body = read_body(body, &HeaderMap::new(), 1 << 20, TIMEOUTS)
            .await
            .expect("40 s is within the total timeout");

        assert_eq!(body.len(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_hits_idle_timeout_first() {
        let body = trickle(2, Duration::from_secs(6));

        let error = read_body(body, &HeaderMap::new(), 1 << 20, TIMEOUTS)
            .await
            .expect_err("a 6 s pause outlasts the idle timeout");

        assert!(
            matches!(error, ProxyError::BodyStalled { received: 0, .. }),
            "{error:?}"
        );
    }
}
