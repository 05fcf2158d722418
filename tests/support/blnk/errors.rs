//! Blnk's error envelope and the reply type every endpoint returns.
//!
//! Blnk 0.15 sends every error as `{"<legacy key>": "<text>", "error_detail": {"code",
//! "message", "details"?}}`. The legacy key is `error` on most endpoints and `errors` on
//! validation failures of transactions, balances and ledgers.

use serde::Serialize;
use serde_json::{Map, Value, json};

/// A finished HTTP response: status code, content type and body bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// An error response in Blnk's envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub legacy_key: &'static str,
    pub details: Option<Value>,
    pub batch_id: Option<String>,
}

impl Reply {
    /// Serializes `body` as JSON. Typed structs keep `i128` figures exact, which a
    /// `serde_json::Value` cannot hold beyond the `u64` range.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Reply {
        match serde_json::to_vec(body) {
            Ok(bytes) => Reply {
                status,
                content_type: "application/json; charset=utf-8",
                body: bytes,
            },
            Err(error) => ApiError::new(
                "GEN_INTERNAL",
                format!("failed to encode response: {error}"),
            )
            .into_reply(),
        }
    }

    /// Builds Gin's plain-text response for a route that does not exist.
    pub fn route_not_found() -> Reply {
        Reply {
            status: 404,
            content_type: "text/plain",
            body: b"404 page not found".to_vec(),
        }
    }
}

impl ApiError {
    /// Builds an error whose HTTP status follows from `code`, with the legacy key `error`.
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_for_code(code),
            code,
            message: message.into(),
            legacy_key: "error",
            details: None,
            batch_id: None,
        }
    }

    /// Classifies an internal error text the way Blnk's API layer does, falling back to
    /// `default_code` when no pattern matches.
    pub fn classified(message: impl Into<String>, default_code: &'static str) -> ApiError {
        let message = message.into();
        let code = classify_message(&message).unwrap_or(default_code);
        ApiError::new(code, message)
    }

    /// Switches the legacy sibling key to `errors`, as validation failures use.
    pub fn legacy_errors(mut self) -> ApiError {
        self.legacy_key = "errors";
        self
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// Adds the empty `details` object that Blnk sends with typed not-found and filter errors.
    pub fn with_empty_details(self) -> ApiError {
        self.with_details(Value::Object(Map::new()))
    }

    /// Adds the top-level `batch_id` and `details.batch_id` of a failed bulk request.
    pub fn with_batch(mut self, batch_id: &str) -> ApiError {
        self.details = Some(json!({ "batch_id": batch_id }));
        self.batch_id = Some(batch_id.to_owned());
        self
    }

    pub fn into_reply(self) -> Reply {
        let mut detail = Map::new();
        detail.insert("code".into(), Value::from(self.code));
        detail.insert("message".into(), Value::from(self.message.clone()));
        if let Some(details) = self.details {
            detail.insert("details".into(), details);
        }

        let mut body = Map::new();
        body.insert(self.legacy_key.into(), Value::from(self.message));
        body.insert("error_detail".into(), Value::Object(detail));
        if let Some(batch_id) = self.batch_id {
            body.insert("batch_id".into(), Value::from(batch_id));
        }
        Reply::json(self.status, &Value::Object(body))
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Reply {
        error.into_reply()
    }
}

/// Maps an error code to its HTTP status, following Blnk's catalogue.
pub fn status_for_code(code: &str) -> u16 {
    match code {
        "GEN_NOT_FOUND"
        | "TXN_NOT_FOUND"
        | "BAL_NOT_FOUND"
        | "LGR_NOT_FOUND"
        | "IDT_NOT_FOUND"
        | "META_ENTITY_NOT_FOUND" => 404,
        "GEN_CONFLICT"
        | "LGR_DUPLICATE"
        | "TXN_DUPLICATE_REFERENCE"
        | "TXN_ALREADY_COMMITTED"
        | "TXN_ALREADY_VOIDED" => 409,
        "GEN_RESOURCE_LOCKED" => 423,
        "GEN_RATE_LIMITED" => 429,
        "GEN_INTERNAL" => 500,
        "QUEUE_BACKPRESSURE" => 503,
        "AUTH_MISSING_API_KEY" | "AUTH_INVALID_API_KEY" | "AUTH_EXPIRED_API_KEY" => 401,
        _ => 400,
    }
}

/// Derives an error code from an internal message by substring patterns, in Blnk's order:
/// more specific patterns come before broader ones.
pub fn classify_message(message: &str) -> Option<&'static str> {
    const PATTERNS: &[(&[&str], &str)] = &[
        (&["transaction", "not found"], "TXN_NOT_FOUND"),
        (&["not in inflight status"], "TXN_NOT_INFLIGHT"),
        (&["Transaction already committed"], "TXN_ALREADY_COMMITTED"),
        (&["has already been voided"], "TXN_ALREADY_VOIDED"),
        (&["has already been refunded"], "GEN_CONFLICT"),
        (&["has already been used"], "TXN_DUPLICATE_REFERENCE"),
        (&["cannot commit more than"], "TXN_COMMIT_AMOUNT_EXCEEDED"),
        (&["insufficient funds"], "TXN_INSUFFICIENT_FUNDS"),
        (
            &["transaction amount must be positive"],
            "TXN_INVALID_AMOUNT",
        ),
        (&["transaction validation failed"], "TXN_VALIDATION_ERROR"),
        (&["failed to acquire lock"], "GEN_RESOURCE_LOCKED"),
        (&["not found"], "GEN_NOT_FOUND"),
    ];
    PATTERNS
        .iter()
        .find(|(parts, _)| parts.iter().all(|part| message.contains(part)))
        .map(|(_, code)| *code)
}

/// Builds the response for an injected fault status, using the catalogue code Blnk sends with
/// that status and `GEN_INTERNAL` for statuses Blnk has no code for.
pub fn injected_status(status: u16) -> Reply {
    let (code, message) = match status {
        400 => ("GEN_BAD_REQUEST", "bad request (injected fault)"),
        404 => ("GEN_NOT_FOUND", "not found (injected fault)"),
        409 => ("GEN_CONFLICT", "conflict (injected fault)"),
        423 => (
            "GEN_RESOURCE_LOCKED",
            "failed to acquire lock: resource is locked (injected fault)",
        ),
        429 => ("GEN_RATE_LIMITED", "too many requests (injected fault)"),
        503 => ("QUEUE_BACKPRESSURE", "service unavailable (injected fault)"),
        _ => ("GEN_INTERNAL", "internal server error"),
    };
    let mut error = ApiError::new(code, message);
    error.status = status;
    error.into_reply()
}
