//! Maps a request to the endpoint that handles it. Every endpoint runs synchronously on the
//! locked store.

use serde_json::Value;

use super::bulk::post_bulk;
use super::entities;
use super::errors::{ApiError, Reply};
use super::inflight::{InflightAction, put_inflight};
use super::inflight_bulk::bulk_inflight;
use super::listings::{self, Source};
use super::store::Store;
use super::transactions::{get_by_reference, get_transaction, post_transaction};

/// One request, decoded.
pub struct Request<'a> {
    pub method: &'a str,
    /// Percent-decoded path segments, without empty ones.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Request<'_> {
    fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

pub fn dispatch(store: &mut Store, request: &Request<'_>) -> Reply {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    match (request.method, segments.as_slice()) {
        ("GET", []) => Reply::json(200, &"server running..."),
        ("GET", ["health"]) => Reply::json(200, &serde_json::json!({"status": "UP"})),
        ("POST", ["transactions", "bulk"]) => with_body(request, |body| post_bulk(store, body)),
        ("POST", ["transactions", "filter"]) => with_body(request, |body| {
            listings::transactions(store, Source::Body(body))
        }),
        ("POST", ["transactions", "inflight", "bulk", "commit"]) => with_body(request, |body| {
            bulk_inflight(store, InflightAction::Commit, body)
        }),
        ("POST", ["transactions", "inflight", "bulk", "void"]) => with_body(request, |body| {
            bulk_inflight(store, InflightAction::Void, body)
        }),
        ("PUT", ["transactions", "inflight", id]) => {
            with_body(request, |body| put_inflight(store, id, body))
        }
        ("POST", ["transactions"]) => with_body(request, |body| post_transaction(store, body)),
        ("GET", ["transactions"]) => listings::transactions(store, Source::Query(&request.query)),
        ("GET", ["transactions", "reference", reference]) => get_by_reference(store, reference),
        ("GET", ["transactions", id]) => get_transaction(store, id),
        _ => dispatch_entities(store, request, &segments),
    }
}

fn dispatch_entities(store: &mut Store, request: &Request<'_>, segments: &[&str]) -> Reply {
    match (request.method, segments) {
        ("POST", ["ledgers"]) => with_body(request, |body| entities::create_ledger(store, body)),
        ("GET", ["ledgers"]) => listings::ledgers(store, Source::Query(&request.query)),
        ("POST", ["ledgers", "filter"]) => {
            with_body(request, |body| listings::ledgers(store, Source::Body(body)))
        }
        ("GET", ["ledgers", id]) => entities::get_ledger(store, id),
        ("POST", ["identities"]) => {
            with_body(request, |body| entities::create_identity(store, body))
        }
        ("GET", ["identities"]) => listings::identities(store, Source::Query(&request.query)),
        ("POST", ["identities", "filter"]) => with_body(request, |body| {
            listings::identities(store, Source::Body(body))
        }),
        ("GET", ["identities", id]) => entities::get_identity(store, id),
        ("POST", ["balances"]) => with_body(request, |body| entities::create_balance(store, body)),
        ("GET", ["balances"]) => listings::balances(store, Source::Query(&request.query)),
        ("POST", ["balances", "filter"]) => with_body(request, |body| {
            listings::balances(store, Source::Body(body))
        }),
        ("GET", ["balances", "indicator", indicator, "currency", currency]) => {
            entities::get_balance_by_indicator(store, indicator, currency)
        }
        ("GET", ["balances", id, "at"]) => {
            let from_source = request.query_value("from_source") == Some("true");
            entities::balance_at(store, id, request.query_value("timestamp"), from_source)
        }
        ("GET", ["balances", id]) => {
            let with_queued = request.query_value("with_queued") == Some("true");
            entities::get_balance(store, id, with_queued)
        }
        ("POST", [id, "metadata"]) => {
            with_body(request, |body| entities::update_metadata(store, id, body))
        }
        _ => Reply::route_not_found(),
    }
}

/// Parses the JSON body and passes it to `handle`, or returns Blnk's malformed-request error
/// when the body is not JSON.
fn with_body(request: &Request<'_>, handle: impl FnOnce(&Value) -> Reply) -> Reply {
    match serde_json::from_slice::<Value>(request.body) {
        Ok(body) => handle(&body),
        Err(_) => ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input").into(),
    }
}
