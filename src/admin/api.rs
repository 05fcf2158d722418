//! The admin API: customers, billing terms, top-ups, payments, usage and invoices over HTTP,
//! with JSON in and out. It calls the same operations as the CLI.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post, put};
use http::{Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::error::AdminError;
use super::{auth, openapi};
use crate::customers::{Funded, Funding, Operations};
use crate::ids::CustomerId;
use crate::invoice::Period;
use crate::proxy::AppState;

type Handler = MethodRouter<Arc<AppState>>;

/// The `from` and `to` query parameters of the usage and invoice routes.
#[derive(Debug, Deserialize)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Every route of the admin API: method, path (in axum's `{param}` syntax) and handler.
/// The router and [`routes`] are both built from this table, so the OpenAPI document can
/// be checked against what is mounted.
fn table() -> Vec<(Method, &'static str, Handler)> {
    vec![
        (Method::GET, "/admin/openapi.json", get(openapi_document)),
        (Method::POST, "/admin/customers", post(create_customer)),
        (Method::GET, "/admin/customers", get(list_customers)),
        (Method::GET, "/admin/customers/{id}", get(show_customer)),
        (Method::PUT, "/admin/customers/{id}/terms", put(set_terms)),
        (Method::POST, "/admin/customers/{id}/topups", post(top_up)),
        (Method::POST, "/admin/customers/{id}/payments", post(pay)),
        (Method::GET, "/admin/customers/{id}/usage", get(usage)),
        (Method::GET, "/admin/customers/{id}/invoice", get(invoice)),
    ]
}

/// The method and path of every admin API route.
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Builds the admin API behind bearer-token authentication. Without a configured token it
/// builds a router that returns 404 "admin API is off" for every `/admin` path.
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    if state.config.admin.token.is_none() {
        return Router::new()
            .route("/admin", any(disabled))
            .route("/admin/{*rest}", any(disabled));
    }
    let mut router = Router::new();
    for (_, path, handler) in table() {
        router = router.route(path, handler);
    }
    router
        .route("/admin", any(unknown_route))
        .route("/admin/{*rest}", any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            auth::require_token,
        ))
}

fn operations(state: &AppState) -> Operations {
    Operations {
        blnk: state.biller.blnk().clone(),
        ledger_name: state.config.blnk.ledger_name.clone(),
        system: state.biller.system().clone(),
    }
}

fn customer_id(text: &str) -> Result<CustomerId, AdminError> {
    CustomerId::parse(text)
        .map_err(|error| AdminError::invalid("invalid_customer_id", error.to_string()))
}

fn period(query: Result<Query<PeriodQuery>, QueryRejection>) -> Result<Period, AdminError> {
    let Query(query) = query.map_err(|error| {
        AdminError::invalid("invalid_period", format!("invalid query string: {error}"))
    })?;
    let missing = |name: &str| {
        AdminError::invalid(
            "invalid_period",
            format!(
                "missing query parameter {name}: a UTC date such as 2026-05-01 or an RFC 3339 timestamp"
            ),
        )
    };
    let from = query.from.ok_or_else(|| missing("from"))?;
    let to = query.to.ok_or_else(|| missing("to"))?;
    Period::parse(&from, &to)
        .map_err(|error| AdminError::invalid("invalid_period", error.to_string()))
}

async fn openapi_document() -> Response {
    Json(openapi::document()).into_response()
}

async fn create_customer(
    State(state): State<Arc<AppState>>,
    bytes: Bytes,
) -> Result<Response, AdminError> {
    let body = Body::parse(&bytes, &["id", "name", "billing", "credit_limit_usd"])?;
    let id = customer_id(body.required_text("id")?)?;
    let name = body.text("name")?;
    let billing = body.billing()?;
    let created = operations(&state)
        .create_customer(&id, name, billing)
        .await?;
    state.accounts.forget(&id);
    let status = if created.created_anything {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(customer = %id, created = created.created_anything, billing = %created.billing, "admin API: customer created");
    Ok((status, Json(created)).into_response())
}

async fn list_customers(State(state): State<Arc<AppState>>) -> Result<Response, AdminError> {
    let customers = operations(&state).list_customers().await?;
    Ok(Json(json!({ "customers": customers })).into_response())
}

async fn show_customer(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let view = operations(&state).show_customer(&id).await?;
    let mut body = serde_json::to_value(&view).map_err(|error| {
        AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            error.to_string(),
        )
    })?;
    let outbox = match state.biller.outbox().counts_for_customer(id.as_str()).await {
        Ok(counts) => json!({
            "pending": counts.pending,
            "dead": counts.dead,
            "oldest_pending": counts.oldest_pending,
        }),
        Err(error) => {
            tracing::warn!(customer = %id, %error, "admin API: outbox counts unavailable");
            Value::Null
        }
    };
    if let Value::Object(fields) = &mut body {
        fields.insert("outbox".into(), outbox);
    }
    Ok(Json(body).into_response())
}

async fn set_terms(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let body = Body::parse(&bytes, &["billing", "credit_limit_usd"])?;
    let billing = body.billing()?;
    let view = operations(&state).set_terms(&id, billing).await?;
    // This replica applies the terms at once; the others within their account cache TTL.
    state.accounts.forget(&id);
    tracing::info!(customer = %id, billing = %view.billing, credit_limit_usd = ?view.credit_limit_usd, "admin API: billing terms changed");
    Ok(Json(view).into_response())
}

async fn top_up(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let body = Body::parse(&bytes, &["amount_usd", "reference"])?;
    let amount = body.required_money("amount_usd")?;
    let funded = operations(&state)
        .record_funding(&id, amount, Funding::TopUp, body.text("reference")?)
        .await?;
    Ok(funded_response(funded))
}

async fn pay(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let body = Body::parse(&bytes, &["amount_usd", "reference"])?;
    let amount = body.required_money("amount_usd")?;
    let reference = body.required_text("reference")?;
    let funded = operations(&state)
        .record_funding(&id, amount, Funding::Payment, Some(reference))
        .await?;
    Ok(funded_response(funded))
}

/// 201 for a new transaction, 200 when the reference was already recorded.
fn funded_response(funded: Funded) -> Response {
    tracing::info!(customer = %funded.customer_id, reference = %funded.reference, amount_usd = %funded.amount_usd,
        already_recorded = funded.already_recorded, "admin API: wallet funded");
    let status = if funded.already_recorded {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(funded)).into_response()
}

async fn usage(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let period = period(query)?;
    let report = operations(&state).usage(&id, period).await?;
    Ok(Json(report).into_response())
}

async fn invoice(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let id = customer_id(&id)?;
    let period = period(query)?;
    let invoice = operations(&state).invoice(&id, period).await?;
    Ok(Json(invoice).into_response())
}

async fn disabled() -> Response {
    AdminError::disabled().into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    AdminError::not_found(
        "unknown_route",
        format!(
            "unknown admin route {method} {}; GET /admin/openapi.json lists the routes",
            uri.path()
        ),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!(
            "method {method} is not allowed on {}; GET /admin/openapi.json lists the routes",
            uri.path()
        ),
    )
    .into_response()
}
