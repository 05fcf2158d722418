//! The proxy listener: metered OpenAI routes, pass-through routes, and OpenAI-shaped
//! errors for everything else.

mod client_queue;
mod headers;
mod ledger_step;
mod metered;
mod passthrough;
mod routes;
mod stream;
mod upstream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::Utc;

use crate::accounts::AccountDirectory;
use crate::auth::Authenticator;
use crate::billing::Biller;
use crate::config::Config;
use crate::error::ProxyError;
use crate::pricing::PriceTable;
use crate::usage::Endpoint;

pub use upstream::{UpstreamClient, UpstreamClientError};

/// Shared state of the proxy listener.
pub struct AppState {
    pub config: Arc<Config>,
    pub prices: RwLock<Arc<PriceTable>>,
    pub accounts: AccountDirectory,
    pub auth: Authenticator,
    pub biller: Biller,
    pub upstream: UpstreamClient,
    /// Set when shutdown begins; readiness fails from then on.
    pub shutting_down: AtomicBool,
}

impl AppState {
    /// Returns whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Returns the price table in force now. A request keeps the table it started with.
    pub fn price_table(&self) -> Arc<PriceTable> {
        match self.prices.read() {
            Ok(table) => Arc::clone(&table),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the price table for requests that start from now on.
    pub fn replace_prices(&self, table: PriceTable) {
        let table = Arc::new(table);
        match self.prices.write() {
            Ok(mut current) => *current = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }
}

/// Builds the proxy router. Tests call this to serve the real app on a loopback port.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(passthrough::forward))
        .route("/v1/models/{model}", get(passthrough::forward));
    for pattern in routes::pass_through_patterns(&state.config.pass_through_routes) {
        router = router.route(&pattern, any(pass_through));
    }
    let header_limit = axum::middleware::from_fn_with_state(
        state.config.max_header_bytes,
        crate::limits::enforce_header_limit,
    );
    router
        .method_not_allowed_fallback(unknown_route)
        .fallback(unknown_route)
        .layer(header_limit)
        .with_state(state)
}

async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::request::metered(
        Endpoint::ChatCompletions,
        metered::handle(state, Endpoint::ChatCompletions, request, Utc::now()),
    )
    .await
}

async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::request::metered(
        Endpoint::Completions,
        metered::handle(state, Endpoint::Completions, request, Utc::now()),
    )
    .await
}

async fn embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::request::metered(
        Endpoint::Embeddings,
        metered::handle(state, Endpoint::Embeddings, request, Utc::now()),
    )
    .await
}

async fn responses(State(state): State<Arc<AppState>>, request: Request) -> Response {
    crate::telemetry::request::metered(
        Endpoint::Responses,
        metered::handle(state, Endpoint::Responses, request, Utc::now()),
    )
    .await
}

/// Forwards a route listed in `pass_through_routes`. A POST to a metered endpoint spelled
/// another way (`/v1/chat/completions/`, `/chat/completions`) is rejected instead, because it
/// must not pass unmetered.
async fn pass_through(state: State<Arc<AppState>>, request: Request) -> Response {
    let metered = Endpoint::from_path(request.uri().path()).is_some();
    if metered && request.method() == http::Method::POST {
        return unknown_route(request).await;
    }
    passthrough::forward_logged(state, request).await
}

async fn unknown_route(request: Request) -> Response {
    let response = ProxyError::UnknownRoute {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
    }
    .into_response();
    crate::telemetry::count_request(crate::telemetry::Route::Unknown, response)
}
