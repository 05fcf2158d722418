//! Liveness and readiness probes.
//!
//! Readiness never calls Blnk itself. It reads when Blnk last responded to any call, which
//! the ledger client notes on every call and a background probe refreshes while tollgate is
//! idle (`admin.ledger_probe_interval`). Blnk counts as reachable while that response is
//! younger than `admin.ledger_stale_after`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::proxy::AppState;
use crate::telemetry::ledger::last_response_age;

/// Returns 200 while the process serves HTTP.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Checks readiness to serve: not shutting down, prices loaded, Blnk responded recently,
/// outbox writable.
/// Returns 200 or 503, with a body that names each check, the failed ones, and the facts
/// behind them.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let models = state.price_table().model_count();
    let response_age = last_response_age();
    let checks = [
        ("prices_loaded", models > 0),
        (
            "ledger_reachable",
            response_age.is_some_and(|age| age <= state.config.admin.ledger_stale_after),
        ),
        ("outbox_writable", state.biller.outbox().writable()),
        ("accepting_requests", !state.is_shutting_down()),
    ];

    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    let ready = failed.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "prices_loaded": checks[0].1,
            "ledger_reachable": checks[1].1,
            "outbox_writable": checks[2].1,
            "accepting_requests": checks[3].1,
        },
        "failed": failed,
        "price_models": models,
        "ledger_last_response_ms": response_age.map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
