//! `GET /metrics`: the registry in Prometheus text format, with the outbox and price table
//! read at scrape time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::header::CONTENT_TYPE;

use crate::proxy::AppState;
use crate::telemetry::exposition::{CONTENT_TYPE as EXPOSITION, OutboxGauges, Scrape};
use crate::telemetry::ledger::last_response_age;
use crate::telemetry::metrics;

pub async fn render(State(state): State<Arc<AppState>>) -> Response {
    let scrape = Scrape {
        outbox: outbox_gauges(&state).await,
        price_models: state.price_table().model_count(),
        ledger_response_age: last_response_age(),
    };
    let text = metrics().render(&scrape);
    ([(CONTENT_TYPE, EXPOSITION)], text).into_response()
}

/// Reads the outbox counts. When the read fails the outbox series are left out of this
/// scrape, so Prometheus marks them stale rather than showing a made-up zero.
async fn outbox_gauges(state: &AppState) -> Option<OutboxGauges> {
    let counts = match state.biller.outbox().counts().await {
        Ok(counts) => counts,
        Err(error) => {
            crate::warn_rate_limited!("metrics.outbox_counts", %error, "reading the outbox counts for /metrics failed");
            return None;
        }
    };
    let oldest_pending_age = counts
        .oldest_pending
        .and_then(|created| (Utc::now() - created).to_std().ok())
        .unwrap_or(Duration::ZERO);
    Some(OutboxGauges {
        pending: counts.pending,
        oldest_pending_age,
        dead: counts.dead,
    })
}
