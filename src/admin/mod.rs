//! The admin listener: health, readiness and metrics for probes and Prometheus, and the
//! authenticated admin API for operators.

mod api;
mod auth;
mod body;
mod error;
mod health;
mod metrics;
mod openapi;
mod prices;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::proxy::AppState;

pub use error::AdminError;
pub use openapi::document as openapi_document;

/// The method and path of every authenticated `/admin` route, for the OpenAPI document and
/// its tests. The price reload route is mounted by [`prices::router`].
pub fn routes() -> Vec<(http::Method, &'static str)> {
    let mut routes = api::routes();
    routes.push((http::Method::POST, "/admin/prices/reload"));
    routes
}

/// Builds the admin router. The admin API under `/admin` answers only when an admin token
/// is configured; without one, every `/admin` path answers 404 with a JSON error.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .merge(prices::router(&state))
        .merge(api::router(&state))
        .with_state(state)
}
