//! tollgate's own errors on the proxy listener, sorted by who failed, and the one place
//! that turns them into a status code and OpenAI's error body.
//!
//! Upstream's own error responses never pass through here: they are relayed unchanged.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::ids::InvalidCustomerId;
use crate::money::Usd;

/// Error that tollgate returns itself instead of relaying upstream's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    // The client did not authenticate. Neither message contains the presented key.
    #[error(
        "missing API key: send a tollgate client key as the bearer token \
         (Authorization: Bearer <key>), which is the api_key of an OpenAI SDK"
    )]
    MissingApiKey,
    #[error(
        "invalid API key: the bearer token is not a valid tollgate client key; send the key \
         the operator issued (Authorization: Bearer <key>) as the api_key of your OpenAI SDK"
    )]
    InvalidApiKey,

    // The client sent something tollgate cannot serve.
    #[error("missing customer id: send the paying customer's id in the {header} header")]
    MissingCustomerId { header: String },
    #[error("{source}; send it in the {header} header")]
    InvalidCustomerId {
        header: String,
        source: InvalidCustomerId,
    },
    #[error(
        "invalid customer id: the {header} header appears more than once, so the paying \
         customer is ambiguous; send it exactly once"
    )]
    RepeatedCustomerId { header: String },
    #[error("invalid JSON in the request body: {detail}")]
    InvalidJson { detail: String },
    #[error(
        "invalid JSON in the request body: arrays and objects are nested deeper than {limit} \
         levels, the limit (max_json_depth); flatten the request or ask the operator to raise \
         max_json_depth"
    )]
    JsonTooDeep { limit: usize },
    #[error(
        "request headers too large: {size} bytes of header names and values, above the limit \
         of {limit} bytes (max_header_bytes); send fewer or smaller headers"
    )]
    HeadersTooLarge { size: usize, limit: usize },
    #[error(
        "missing model: the request body must name a model, for example \"model\": \"gpt-4o-mini\""
    )]
    MissingModel,
    #[error(
        "model {model:?} has no price in tollgate's price file, so it cannot be billed; ask the operator to add it to pricing.toml, or use a priced model"
    )]
    ModelNotPriced { model: String },
    #[error("{message}")]
    Unsupported {
        message: String,
        param: Option<&'static str>,
    },
    #[error(
        "request body too large: the limit is {limit} bytes; send a smaller body or ask the operator to raise max_body_bytes"
    )]
    BodyTooLarge { limit: usize },
    #[error(
        "the request body stalled: no bytes arrived for {} ms after the first {received} bytes; send the body without pauses, or ask the operator to raise body_idle_timeout", idle.as_millis()
    )]
    BodyStalled { idle: Duration, received: usize },
    #[error(
        "the request body took longer than {} ms to arrive, and {received} bytes had arrived by then; send it faster, or ask the operator to raise body_read_timeout", limit.as_millis()
    )]
    BodyTooSlow { limit: Duration, received: usize },
    #[error(
        "unknown route {method} {path}: tollgate meters /v1/chat/completions, /v1/responses, /v1/embeddings and /v1/completions, and passes /v1/models through"
    )]
    UnknownRoute { method: String, path: String },
    #[error(
        "unknown customer {customer:?}: no tollgate wallet exists for this id; create it with `tollgate customer create {customer}`"
    )]
    UnknownCustomer { customer: String },
    #[error("{message}")]
    InsufficientFunds { message: String },

    // The ledger failed.
    // The detail (which names the ledger's internal address) is logged, not sent to clients.
    #[error(
        "the billing ledger is unavailable, so this request cannot be reserved or billed; retry later"
    )]
    LedgerUnavailable { detail: String },
    #[error("customer {customer:?} has a misconfigured ledger account: {detail}")]
    AccountMisconfigured { customer: String, detail: String },

    // Upstream failed before it responded.
    #[error("could not reach the upstream API: {detail}; nothing was billed")]
    UpstreamUnreachable { detail: String },
    #[error("the upstream API did not answer within {seconds} s; nothing was billed")]
    UpstreamTimeout { seconds: u64 },

    // tollgate itself failed.
    #[error(
        "tollgate client keys need the operator's OpenAI key, but OPENAI_API_KEY is not set \
         on this server, so the request was not sent upstream; ask the operator to set it"
    )]
    UpstreamKeyMissing,
    #[error("internal error in tollgate: {detail}")]
    Internal { detail: String },
}

impl ProxyError {
    /// Returns the HTTP status, OpenAI error `type` and `code` of each error. There is no
    /// wildcard arm, so a new variant must decide its status here.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ProxyError::*;
        match self {
            MissingApiKey | InvalidApiKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
            ),
            MissingCustomerId { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "missing_customer_id",
            ),
            InvalidCustomerId { .. } | RepeatedCustomerId { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_customer_id",
            ),
            InvalidJson { .. } | JsonTooDeep { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
            ),
            HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "invalid_request_error",
                "headers_too_large",
            ),
            MissingModel => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "missing_model",
            ),
            ModelNotPriced { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "model_not_priced",
            ),
            Unsupported { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_request",
            ),
            BodyTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
            ),
            BodyStalled { .. } | BodyTooSlow { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "body_timeout",
            ),
            UnknownRoute { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unknown_route",
            ),
            UnknownCustomer { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "unknown_customer",
            ),
            InsufficientFunds { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                "insufficient_funds",
            ),
            LedgerUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "ledger_unavailable",
            ),
            AccountMisconfigured { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "account_misconfigured",
            ),
            UpstreamUnreachable { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unreachable",
            ),
            UpstreamTimeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
            ),
            UpstreamKeyMissing => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "upstream_key_missing",
            ),
            Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
            ),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ProxyError::MissingModel | ProxyError::ModelNotPriced { .. } => Some("model"),
            ProxyError::Unsupported { param, .. } => *param,
            _ => None,
        }
    }

    /// Builds the 402 message: which balance, how much it has, what the request may cost,
    /// and how to fix it.
    pub fn insufficient_funds(
        customer: &str,
        available: Option<Usd>,
        quote: Usd,
        limit: Option<Usd>,
    ) -> Self {
        let available = match available {
            Some(amount) => format!("${amount}"),
            None => "an unknown amount".to_string(),
        };
        let terms = match limit {
            Some(limit) => format!(" (credit limit ${limit})"),
            None => String::new(),
        };
        ProxyError::InsufficientFunds {
            message: format!(
                "insufficient funds: customer {customer:?} has {available} available in its USD wallet{terms}, \
                 but this request may cost up to ${quote}; top up the wallet \
                 (`tollgate topup {customer} <USD>`), or lower the request's output limit (max_tokens, max_completion_tokens or max_output_tokens) or its n"
            ),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let (status, kind, code) = self.parts();
        let body = json!({
            "error": {
                "message": self.to_string(),
                "type": kind,
                "param": self.param(),
                "code": code,
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        // Retrying cannot help a request the customer cannot pay for, nor one the server is not
        // configured to send; the SDKs obey this header.
        if matches!(
            self,
            ProxyError::InsufficientFunds { .. } | ProxyError::UpstreamKeyMissing
        ) {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        // RFC 6750 section 3: a 401 names the authentication scheme the server expects.
        if matches!(self, ProxyError::MissingApiKey | ProxyError::InvalidApiKey) {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
