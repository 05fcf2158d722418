//! The admin listener: health, readiness and metrics for probes and Prometheus, and the
//! authenticated admin API for operators.

mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::proxy::AppState;

/// Builds the admin router. The admin API is mounted only when an admin token is configured.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
