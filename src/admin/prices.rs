//! `POST /admin/prices/reload`: reloads the price file on an operator's request, behind the
//! admin token check.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::json;

use super::auth;
use super::error::AdminError;
use crate::proxy::AppState;
use crate::reload::{ReloadTrigger, reload_prices};

/// Builds the reload route, which serves only requests that carry the admin token.
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/prices/reload", post(reload))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            auth::require_token,
        ))
}

/// Reloads the price file. Returns 200 with the new table's size, or 422 with the reason
/// the file was rejected, in which case the previous prices stay in force.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    match reload_prices(&state, ReloadTrigger::Admin).await {
        Ok(reloaded) => Json(json!({
            "status": "reloaded",
            "file": reloaded.file.display().to_string(),
            "models": reloaded.models,
            "previous_models": reloaded.previous_models,
            "unchanged": reloaded.unchanged,
        }))
        .into_response(),
        Err(error) => AdminError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "invalid_price_file",
            format!("{error}; the previous prices stay in force"),
        )
        .into_response(),
    }
}
