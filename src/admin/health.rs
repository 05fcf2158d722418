//! Liveness and readiness probes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::proxy::AppState;

/// The process runs.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready to serve: prices loaded, Blnk answering, outbox writable. The body names each check.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let prices = state.price_table().model_count() > 0;
    let outbox = state.biller.outbox().writable();
    let ledger = state.biller.blnk().health().await.is_ok();
    let ready = prices && outbox && ledger;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "prices_loaded": prices,
            "ledger_reachable": ledger,
            "outbox_writable": outbox,
        }
    });
    (status, Json(body)).into_response()
}
