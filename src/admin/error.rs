//! The admin API's one error shape, `{"error": {"message", "type", "code"}}`, and the status
//! of each cause: 400 invalid input, 401 authentication, 404 unknown customer or route,
//! 409 conflict, 502 and 503 when Blnk fails or cannot be reached.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::customers::OperationError;
use crate::invoice::{InvoiceError, StatementError};
use crate::ledger::LedgerError;

/// An error response of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: StatusCode,
    /// The error `type`, such as `invalid_request_error`.
    pub kind: &'static str,
    /// A stable machine-readable `code`, such as `invalid_amount`.
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        AdminError {
            status,
            kind,
            code,
            message: message.into(),
        }
    }

    /// Builds a 400 for input that cannot be served.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        AdminError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// Builds a 401 for a missing or wrong bearer token.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        AdminError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            code,
            message,
        )
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        AdminError::new(StatusCode::NOT_FOUND, "not_found_error", code, message)
    }

    /// Builds the error of every `/admin` route while no admin token is configured.
    pub fn disabled() -> Self {
        AdminError::not_found(
            "admin_api_disabled",
            "the admin API is off: set TOLLGATE_ADMIN_TOKEN (admin.token) to a secret and restart tollgate to turn it on",
        )
    }

    fn ledger(error: &LedgerError) -> Self {
        let unavailable = error.is_unavailable()
            || matches!(
                error,
                LedgerError::Locked { .. } | LedgerError::Rejected { status: 429, .. }
            );
        if unavailable {
            AdminError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "ledger_unavailable",
                format!("the ledger (Blnk) is unavailable; retry later ({error})"),
            )
        } else {
            AdminError::new(
                StatusCode::BAD_GATEWAY,
                "ledger_error",
                "ledger_error",
                format!("the ledger (Blnk) failed: {error}"),
            )
        }
    }
}

impl From<OperationError> for AdminError {
    fn from(error: OperationError) -> Self {
        match &error {
            OperationError::UnknownCustomer(_) => {
                AdminError::not_found("unknown_customer", error.to_string())
            }
            OperationError::Invalid(message) => {
                AdminError::invalid("invalid_request", message.clone())
            }
            OperationError::Conflict(message) => AdminError::new(
                StatusCode::CONFLICT,
                "conflict_error",
                "conflict",
                message.clone(),
            ),
            OperationError::Ledger(ledger) => AdminError::ledger(ledger),
            OperationError::Account(message) => AdminError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "account_misconfigured",
                message.clone(),
            ),
        }
    }
}

impl From<InvoiceError> for AdminError {
    fn from(error: InvoiceError) -> Self {
        match error {
            InvoiceError::Operation(error) => AdminError::from(error),
            InvoiceError::Paging { .. } | InvoiceError::Statement(StatementError::Row(_)) => {
                AdminError::new(
                    StatusCode::BAD_GATEWAY,
                    "ledger_error",
                    "ledger_error",
                    error.to_string(),
                )
            }
            InvoiceError::Statement(unbalanced @ StatementError::Unbalanced(_)) => AdminError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "invoice_unbalanced",
                unbalanced.to_string(),
            ),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, "admin API request failed");
        }
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate admin\""),
            );
        }
        response
    }
}
