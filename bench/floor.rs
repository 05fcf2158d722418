//! The floor: the bare hop plus the ledger calls that tollgate's design puts on a request's
//! critical path, made in the cheapest way. Its added latency is a base for tollgate's that,
//! unlike the bare hop's, includes the ledger round trips tollgate has to wait for.
//!
//! For a prepaid customer (a customer id starting with `bench-prepaid`, as in the ledger stub)
//! the floor first posts a hold to `POST /transactions` and waits for the response. It then
//! forwards the request as the hop does, reads upstream's response body in full, posts the
//! charge to `POST /transactions/bulk`, waits for the ledger's response, and only then sends
//! the buffered upstream response. An SSE response is streamed through as the hop streams it,
//! with no charge, because finding the end of a stream would mean parsing it.
//!
//! tollgate's own code builds the bodies of both calls once at start: it reads the usage of the
//! mock's completion, prices it with `pricing.toml`, and builds and serialises the leg metadata
//! and the bulk. So the bodies have the shape and size of those tollgate sends for the bench
//! request. Per request the floor parses nothing and does no pricing, logging or outbox write.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value};

use tollgate::billing::metadata::{ChargeFacts, leg_metadata};
use tollgate::billing::request::{PromptBounds, RequestFacts};
use tollgate::billing::{ChargeRecord, SystemBalances, hold_amount, hold_reference};
use tollgate::ids::RequestId;
use tollgate::ledger::NewTransaction;
use tollgate::money::USD_PRECISION;
use tollgate::pricing::{PriceTable, ResolvedPrice};
use tollgate::usage::{Endpoint, UsageSource, read_response};

use crate::hop::{HopBody, HopClient, bad_gateway, upstream_request};
use crate::setup::{POSTPAID_CUSTOMER, PREPAID_CUSTOMER, Request as BenchRequest, Shape};

/// tollgate's default prompt bounds (`pricing.image_token_bound` and the others). The bench
/// request has no images, audio or content from elsewhere, so they do not change its quote.
const PROMPT_BOUNDS: PromptBounds = PromptBounds {
    image_tokens: 10_000,
    audio_tokens: 20_000,
    context_tokens: 1_048_576,
};

/// The hold lifetime written into the hold's expiry. Only the expiry's format matters here,
/// because the stub never expires a hold.
const HOLD_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The floor's ledger client and the fixed bodies it posts.
pub struct Floor {
    ledger: Client<HttpConnector, Full<Bytes>>,
    hold_uri: Uri,
    charge_uri: Uri,
    prepaid: Bodies,
    postpaid: Bodies,
}

/// The fixed ledger bodies of one customer.
struct Bodies {
    /// `None` for a postpaid customer, which gets no hold.
    hold: Option<Bytes>,
    charge: Bytes,
}

impl Floor {
    /// Builds the ledger client and the fixed bodies for the ledger stub at `ledger`.
    pub fn new(ledger: SocketAddr) -> Result<Floor, String> {
        let pricing = Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
        let prices = PriceTable::load(&pricing).map_err(|error| {
            format!(
                "loading the price file {} failed: {error}",
                pricing.display()
            )
        })?;
        let uri = |path: &str| {
            format!("http://{ledger}{path}")
                .parse::<Uri>()
                .map_err(|error| format!("invalid ledger address {ledger}: {error}"))
        };
        let started_at = Utc::now();
        Ok(Floor {
            ledger: crate::hop::pooled_client(),
            hold_uri: uri("/transactions")?,
            charge_uri: uri("/transactions/bulk")?,
            prepaid: Bodies {
                hold: Some(hold_body(&prices, PREPAID_CUSTOMER, started_at)?),
                charge: charge_body(&prices, PREPAID_CUSTOMER, started_at)?,
            },
            postpaid: Bodies {
                hold: None,
                charge: charge_body(&prices, POSTPAID_CUSTOMER, started_at)?,
            },
        })
    }

    fn bodies(&self, headers: &HeaderMap) -> &Bodies {
        let prepaid = headers
            .get("x-customer-id")
            .is_some_and(|id| id.as_bytes().starts_with(PREPAID_CUSTOMER.as_bytes()));
        if prepaid {
            &self.prepaid
        } else {
            &self.postpaid
        }
    }

    /// Posts `body` to the ledger and reads the response to its end, so the connection goes
    /// back to the pool.
    async fn post(&self, uri: &Uri, body: &Bytes) -> Result<(), String> {
        let request = Request::post(uri.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(Full::new(body.clone()))
            .map_err(|error| format!("building POST {uri} failed: {error}"))?;
        let response = self
            .ledger
            .request(request)
            .await
            .map_err(|error| format!("POST {uri} failed: {error}"))?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("reading the response to POST {uri} failed: {error}"))?;
        if !status.is_success() {
            return Err(format!("POST {uri} returned {status}"));
        }
        Ok(())
    }
}

/// Forwards one request with the floor's ledger calls around it. A failed call or upstream
/// failure becomes a `502`, which the load generator counts as an error.
pub async fn forward(
    floor: Arc<Floor>,
    client: HopClient,
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Response<HopBody>, http::Error> {
    let bodies = floor.bodies(request.headers());
    if let Some(hold) = &bodies.hold
        && let Err(error) = floor.post(&floor.hold_uri, hold).await
    {
        return bad_gateway(format!("floor: the hold failed: {error}"));
    }
    let response = match client.request(upstream_request(authority, request)?).await {
        Ok(response) => response,
        Err(error) => return bad_gateway(format!("floor: upstream failed: {error}")),
    };
    if is_event_stream(response.headers()) || !response.status().is_success() {
        return Ok(response.map(BodyExt::boxed_unsync));
    }
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return bad_gateway(format!("floor: reading upstream failed: {error}")),
    };
    if let Err(error) = floor.post(&floor.charge_uri, &bodies.charge).await {
        return bad_gateway(format!("floor: the charge failed: {error}"));
    }
    let body = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(Response::from_parts(parts, body))
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
}

/// Builds the charge bulk tollgate posts for the bench request when the mock returns its
/// non-streaming completion.
fn charge_body(
    prices: &PriceTable,
    customer: &str,
    started_at: DateTime<Utc>,
) -> Result<Bytes, String> {
    let endpoint = Endpoint::ChatCompletions;
    let response = read_response(endpoint, crate::upstream::COMPLETION.as_bytes())
        .map_err(|error| format!("reading the mock's completion failed: {error}"))?;
    let usage = response
        .usage
        .ok_or("the mock's completion is missing its usage object")?;
    let requested = bench_price(prices, started_at)?;
    let billed = response
        .model
        .and_then(|model| prices.resolve(&model, started_at))
        .unwrap_or(requested);
    let cost = billed.cost(&usage, None);
    let request_id = RequestId::new().to_string();
    let metadata = leg_metadata(&ChargeFacts {
        customer_id: customer,
        request_id: &request_id,
        endpoint,
        stream: false,
        model_requested: crate::setup::BENCH_MODEL,
        usage: &usage,
        usage_source: UsageSource::Reported,
        cost: &cost,
        client_disconnected: false,
        quote_exceeded: false,
    });
    let record = ChargeRecord {
        request_id,
        customer_id: customer.to_string(),
        usd_balance_id: format!("bln_usd_{customer}"),
        tokens_balance_id: format!("bln_tokens_{customer}"),
        amount: cost.amount,
        tokens: usage.billable_tokens(),
        metadata: metadata.into(),
        effective_date: started_at,
        attempt: 1,
    };
    let bulk = record.to_bulk(&system_balances());
    serde_json::to_vec(&bulk)
        .map(Bytes::from)
        .map_err(|error| format!("serialising the charge failed: {error}"))
}

/// Builds the hold tollgate posts for the bench request of a prepaid customer.
fn hold_body(
    prices: &PriceTable,
    customer: &str,
    started_at: DateTime<Utc>,
) -> Result<Bytes, String> {
    let price = bench_price(prices, started_at)?;
    let plain = Shape {
        latency: std::time::Duration::ZERO,
        stream: None,
    };
    let request = BenchRequest::chat(plain);
    let facts = RequestFacts::parse(Endpoint::ChatCompletions, &request.body)
        .map_err(|error| format!("reading the bench request failed: {error}"))?;

    let quote = price
        .quote(
            facts.prompt_bound(&request.body, &PROMPT_BOUNDS),
            facts.max_output_tokens,
            facts.choices,
            facts.service_tier.as_deref(),
            facts.audio,
        )
        .map_err(|error| format!("quoting the bench request failed: {error}"))?;

    // The keys of tollgate's hold metadata (`hold_metadata` in src/billing/hold.rs).
    let request_id = RequestId::new().to_string();
    let mut metadata = Map::new();
    metadata.insert("tollgate_customer_id".into(), Value::from(customer));
    metadata.insert(
        "tollgate_request_id".into(),
        Value::from(request_id.as_str()),
    );
    metadata.insert("tollgate_leg".into(), Value::from("hold"));

    let hold = NewTransaction {
        precise_amount: hold_amount(quote).0,
        precision: USD_PRECISION,
        currency: "USD".into(),
        source: format!("bln_usd_{customer}"),
        destination: system_balances().revenue,
        reference: hold_reference(&request_id),
        description: format!("tollgate hold for request {request_id}"),
        allow_overdraft: false,
        overdraft_limit: None,
        inflight: true,
        inflight_expiry_date: Some(started_at + HOLD_LIFETIME),
        effective_date: None,
        meta_data: metadata,
    };
    serde_json::to_vec(&hold)
        .map(Bytes::from)
        .map_err(|error| format!("serialising the hold failed: {error}"))
}

fn bench_price(prices: &PriceTable, at: DateTime<Utc>) -> Result<ResolvedPrice, String> {
    let model = crate::setup::BENCH_MODEL;
    prices.resolve(model, at).ok_or_else(|| {
        format!("pricing.toml has no price for model {model}, which every bench request uses")
    })
}

/// tollgate's default system balances (`blnk.revenue_balance` and the others).
fn system_balances() -> SystemBalances {
    SystemBalances {
        revenue: "@Revenue-USD".into(),
        token_pool: "@TokenPool".into(),
        world: "@World-USD".into(),
    }
}
