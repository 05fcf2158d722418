//! Errors of the Blnk client, sorted by cause, and the mapping from Blnk's error responses.
//!
//! Blnk 0.15.0 and later send `{"error": "...", "error_detail": {"code", "message"}}` with a
//! status that fits the cause (404, 409, 423, ...). Older servers send only
//! `{"error": "..."}` or `{"errors": "..."}` and return 400 for nearly every failure, so for
//! them the cause is read from the message text. Validation failures of newer servers also
//! use the `errors` key.

use serde::Deserialize;
use serde_json::Value;

/// Maximum length of a server message kept in an error, in bytes.
const MAX_MESSAGE_LEN: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("Blnk rejected the transaction: insufficient funds in the source balance ({message})")]
    InsufficientFunds { message: String },

    #[error("Blnk rejected the transaction: it exceeds the overdraft limit ({message})")]
    OverdraftLimitExceeded { message: String },

    /// The reference was used before. This does not prove the earlier transaction is still
    /// in effect: an atomic bulk whose later leg failed keeps its references, and its applied
    /// legs are reversed by refund transactions.
    #[error(
        "Blnk rejected the transaction: its reference has already been used ({message}). \
         Look the reference up to see whether the earlier transaction is still in effect"
    )]
    DuplicateReference { message: String },

    /// Another request held a balance lock longer than Blnk's lock wait (3 s by default).
    #[error("Blnk could not lock the balances in time ({message}). Retry later")]
    Locked { message: String },

    #[error("not found in Blnk: {message}")]
    NotFound { message: String },

    #[error("already exists in Blnk: {message}")]
    AlreadyExists { message: String },

    #[error("the hold has already been voided")]
    AlreadyVoided,

    #[error("the hold has already been committed in full")]
    AlreadyCommitted,

    #[error(
        "Blnk rejected the credentials: {message}. Set BLNK_API_KEY to Blnk's master key \
         (its server.secret_key)"
    )]
    Unauthorized { message: String },

    /// Any other 4xx response. `code` is Blnk's `error_detail.code`, absent before 0.15.
    #[error(
        "Blnk rejected the request with HTTP {status}{}: {message}",
        code_suffix(code)
    )]
    Rejected {
        status: u16,
        code: Option<String>,
        message: String,
    },

    #[error("Blnk failed with HTTP {status}: {message}")]
    Server { status: u16, message: String },

    #[error(
        "the Blnk call {operation} timed out; check that Blnk is running and reachable at BLNK_URL"
    )]
    Timeout { operation: &'static str },

    #[error(
        "failed to reach Blnk for {operation}: {}; check BLNK_URL and that Blnk is running",
        crate::http_client::describe(source)
    )]
    Unreachable {
        operation: &'static str,
        source: crate::http_client::TransportError,
    },

    #[error("Blnk sent an invalid response to {operation}: {detail}")]
    InvalidResponse {
        operation: &'static str,
        detail: String,
    },

    /// The request was not sent because Blnk would reject it or misread it.
    #[error("invalid {operation} request: {detail}")]
    InvalidRequest {
        operation: &'static str,
        detail: String,
    },

    #[error("invalid Blnk client configuration: {detail}")]
    InvalidConfig { detail: String },
}

/// The error envelope of every Blnk version this client supports.
#[derive(Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    error_detail: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl LedgerError {
    /// True when the same request may succeed if sent again later: lock contention, server
    /// failures, timeouts, unreachable servers, and HTTP 429 from Blnk's rate limiter.
    /// A retried transaction must reuse its reference so Blnk can reject a duplicate.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LedgerError::Locked { .. }
                | LedgerError::Server { .. }
                | LedgerError::Timeout { .. }
                | LedgerError::Unreachable { .. }
                | LedgerError::Rejected { status: 429, .. }
        )
    }

    /// True when Blnk cannot be reached or is failing, as opposed to having decided
    /// against this particular request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LedgerError::Timeout { .. }
                | LedgerError::Unreachable { .. }
                | LedgerError::Server { .. }
        )
    }

    /// Sorts a non-2xx Blnk response by cause.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> LedgerError {
        let (code, message) = code_and_message(status, body);
        if status == 401 || status == 403 || code.as_deref().is_some_and(is_auth_code) {
            return LedgerError::Unauthorized { message };
        }
        if status >= 500 {
            return LedgerError::Server { status, message };
        }
        let known = match code.as_deref() {
            Some(code) => by_code(code, message),
            None => by_text(message),
        };
        match known {
            Ok(error) => error,
            Err(message) if status == 404 => LedgerError::NotFound { message },
            Err(message) if status == 423 => LedgerError::Locked { message },
            Err(message) => LedgerError::Rejected {
                status,
                code,
                message,
            },
        }
    }
}

fn is_auth_code(code: &str) -> bool {
    code.starts_with("AUTH_")
}

/// Maps a Blnk 0.15+ error code, or hands the message back when the code is not specific.
/// The overdraft-limit failure has no code of its own: it arrives as `TXN_VALIDATION_ERROR`
/// from a single transaction and as `GEN_BAD_REQUEST` from a bulk.
fn by_code(code: &str, message: String) -> Result<LedgerError, String> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("exceeds overdraft limit") {
        return Ok(LedgerError::OverdraftLimitExceeded { message });
    }
    match code {
        "TXN_INSUFFICIENT_FUNDS" => Ok(LedgerError::InsufficientFunds { message }),
        "TXN_DUPLICATE_REFERENCE" => Ok(LedgerError::DuplicateReference { message }),
        "GEN_RESOURCE_LOCKED" => Ok(LedgerError::Locked { message }),
        "TXN_NOT_FOUND" | "BAL_NOT_FOUND" | "GEN_NOT_FOUND" | "LGR_NOT_FOUND" | "IDT_NOT_FOUND" => {
            Ok(LedgerError::NotFound { message })
        }
        "TXN_ALREADY_VOIDED" => Ok(LedgerError::AlreadyVoided),
        "TXN_ALREADY_COMMITTED" => Ok(LedgerError::AlreadyCommitted),
        "LGR_DUPLICATE" => Ok(LedgerError::AlreadyExists { message }),
        // A duplicate identity id arrives as 400 IDT_VALIDATION_ERROR and a duplicate
        // internal balance as 409 GEN_CONFLICT. Both messages contain "already exists".
        _ if lower.contains("already exists") => Ok(LedgerError::AlreadyExists { message }),
        _ => Err(message),
    }
}

/// Maps the message of a server older than 0.15, which sends no code.
fn by_text(message: String) -> Result<LedgerError, String> {
    let lower = message.to_ascii_lowercase();
    let error = if lower.contains("exceeds overdraft limit") {
        LedgerError::OverdraftLimitExceeded { message }
    } else if lower.contains("insufficient funds") {
        LedgerError::InsufficientFunds { message }
    } else if lower.contains("has already been used") {
        LedgerError::DuplicateReference { message }
    } else if lower.contains("failed to acquire lock") {
        LedgerError::Locked { message }
    } else if lower.contains("already been voided") {
        LedgerError::AlreadyVoided
    } else if lower.contains("already committed") {
        LedgerError::AlreadyCommitted
    } else if lower.contains("already exists") {
        LedgerError::AlreadyExists { message }
    } else if lower.contains("not found") {
        LedgerError::NotFound { message }
    } else {
        return Err(message);
    };
    Ok(error)
}

/// Extracts `error_detail.code` and the most specific message from an error body. A body
/// that is not Blnk's JSON envelope (a proxy's HTML page, a bare 500) becomes the message
/// as text, or the status alone when it is empty.
fn code_and_message(status: u16, body: &[u8]) -> (Option<String>, String) {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let (code, detail_message) = match parsed.error_detail {
        Some(detail) => (detail.code.filter(|code| !code.is_empty()), detail.message),
        None => (None, None),
    };
    let message = detail_message
        .filter(|message| !message.is_empty())
        .or_else(|| parsed.error.and_then(value_text))
        .or_else(|| parsed.errors.and_then(value_text))
        .unwrap_or_else(|| body_text(status, body));
    (code, truncate(message))
}

fn value_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

fn body_text(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() {
        return text.to_string();
    }
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("unknown status");
    format!("no response body ({reason})")
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

fn code_suffix(code: &Option<String>) -> String {
    match code {
        Some(code) => format!(" {code}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! recorded {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!(
                    "../../tests/fixtures/blnk/recorded/",
                    $name,
                    ".json"
                )),
            )
        };
    }

    /// Names the variant and, for `Rejected` and `Server`, the status and code.
    fn kind(error: &LedgerError) -> String {
        match error {
            LedgerError::Rejected { status, code, .. } => {
                format!("Rejected {status} {}", code.as_deref().unwrap_or("-"))
            }
            LedgerError::Server { status, .. } => format!("Server {status}"),
            other => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    fn map_recorded(recorded: &str) -> LedgerError {
        let exchange: Value = serde_json::from_str(recorded).expect("fixture is JSON");
        let status = exchange["response"]["status"].as_u64().expect("status") as u16;
        let body = exchange["response"]["body"].to_string();
        LedgerError::from_response(status, body.as_bytes())
    }

    #[test]
    fn recorded_errors_map_by_cause() {
        let cases = [
            (recorded!("00b-auth-missing-key"), "Unauthorized"),
            (recorded!("00c-auth-wrong-key"), "Unauthorized"),
            (
                recorded!("04a-topup-from-World-without-overdraft"),
                "InsufficientFunds",
            ),
            (
                recorded!("06a-bulk-atomic-insufficient-funds"),
                "InsufficientFunds",
            ),
            (
                recorded!("07c-overdraft-limit-exceeded"),
                "OverdraftLimitExceeded",
            ),
            (
                recorded!("07c0-single-txn-missing-description"),
                "Rejected 400 TXN_VALIDATION_ERROR",
            ),
            (recorded!("08g-commit-after-void-fails"), "AlreadyVoided"),
            (
                recorded!("08j-second-hold-exceeds-available"),
                "InsufficientFunds",
            ),
            (
                recorded!("08k-commit-more-than-held"),
                "Rejected 400 TXN_COMMIT_AMOUNT_EXCEEDED",
            ),
            (
                recorded!("10a-duplicate-reference-single-sync"),
                "DuplicateReference",
            ),
            (recorded!("10d-duplicate-bulk"), "DuplicateReference"),
            (
                recorded!("10i-get-txn-id-returned-for-queued-duplicate"),
                "NotFound",
            ),
            (
                recorded!("12d-filter-bad-operator"),
                "Rejected 400 GEN_BAD_REQUEST",
            ),
            (recorded!("17e-void-after-expiry"), "AlreadyVoided"),
            (
                recorded!("18c-hold-3-against-credit-limit"),
                "OverdraftLimitExceeded",
            ),
            (
                recorded!("19b-charge-without-overdraft-fails-against-own-hold"),
                "InsufficientFunds",
            ),
            (recorded!("20d-retry-same-references"), "DuplicateReference"),
        ];
        for ((name, recorded), expected) in cases {
            assert_eq!(kind(&map_recorded(recorded)), expected, "fixture {name}");
        }
    }

    #[test]
    fn recorded_messages_are_kept() {
        let (_, recorded) = recorded!("07c0-single-txn-missing-description");
        let error = map_recorded(recorded);
        assert!(
            error.to_string().contains("description: cannot be blank."),
            "{error}"
        );

        let (_, recorded) = recorded!("10a-duplicate-reference-single-sync");
        let error = map_recorded(recorded);
        assert!(error.to_string().contains("topup-cust001-0002"), "{error}");
    }

    #[test]
    fn unauthorized_names_the_setting() {
        let (_, recorded) = recorded!("00c-auth-wrong-key");
        let message = map_recorded(recorded).to_string();
        assert!(message.contains("Invalid API key"), "{message}");
        assert!(message.contains("BLNK_API_KEY"), "{message}");
    }

    #[test]
    fn modern_codes_without_recordings_map() {
        let cases: &[(u16, &str, &str)] = &[
            (
                409,
                r#"{"error":"x","error_detail":{"code":"TXN_ALREADY_COMMITTED","message":"error occurred during processing: [cannot void. Transaction already committed]"}}"#,
                "AlreadyCommitted",
            ),
            (
                423,
                r#"{"error":"x","error_detail":{"code":"GEN_RESOURCE_LOCKED","message":"failed to acquire lock: held"}}"#,
                "Locked",
            ),
            (423, r#"{"error":"locked"}"#, "Locked"),
            (
                404,
                r#"{"error":"x","error_detail":{"code":"BAL_NOT_FOUND","message":"Balance with ID 'bln_x' not found"}}"#,
                "NotFound",
            ),
            (
                404,
                r#"{"error":"x","error_detail":{"code":"LGR_NOT_FOUND","message":"ledger not found"}}"#,
                "NotFound",
            ),
            (
                404,
                r#"{"error":"x","error_detail":{"code":"IDT_NOT_FOUND","message":"identity not found"}}"#,
                "NotFound",
            ),
            (
                404,
                r#"{"error":"x","error_detail":{"code":"GEN_NOT_FOUND","message":"route"}}"#,
                "NotFound",
            ),
            (404, "", "NotFound"),
            (
                400,
                r#"{"error":"x","error_detail":{"code":"IDT_VALIDATION_ERROR","message":"Identity already exists: idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5"}}"#,
                "AlreadyExists",
            ),
            (
                400,
                r#"{"error":"x","error_detail":{"code":"IDT_VALIDATION_ERROR","message":"identity_id must start with the 'idt_' prefix"}}"#,
                "Rejected 400 IDT_VALIDATION_ERROR",
            ),
            (
                409,
                r#"{"error":"x","error_detail":{"code":"LGR_DUPLICATE","message":"Ledger with this name or ID already exists"}}"#,
                "AlreadyExists",
            ),
            (
                409,
                r#"{"error":"x","error_detail":{"code":"GEN_CONFLICT","message":"a commit or void is already queued for this transaction"}}"#,
                "Rejected 409 GEN_CONFLICT",
            ),
            (
                400,
                r#"{"batch_id":"bulk_1","error":"x","error_detail":{"code":"GEN_BAD_REQUEST","message":"failed to queue transaction 1 (Reference: r): failed to apply transaction to balances: transaction exceeds overdraft limit. All transactions in this batch have been refunded."}}"#,
                "OverdraftLimitExceeded",
            ),
            (
                403,
                r#"{"error":"x","error_detail":{"code":"AUTH_UNKNOWN_RESOURCE","message":"Unknown resource type"}}"#,
                "Unauthorized",
            ),
            (
                429,
                r#"{"error":"x","error_detail":{"code":"GEN_RATE_LIMITED","message":"too many requests"}}"#,
                "Rejected 429 GEN_RATE_LIMITED",
            ),
            (
                500,
                r#"{"error":"internal server error","error_detail":{"code":"GEN_INTERNAL","message":"internal server error"}}"#,
                "Server 500",
            ),
            (
                503,
                r#"{"error":"x","error_detail":{"code":"QUEUE_BACKPRESSURE","message":"queue full"}}"#,
                "Server 503",
            ),
            (500, "", "Server 500"),
            (502, "<html><body>Bad Gateway</body></html>", "Server 502"),
        ];
        for (status, body, expected) in cases {
            let error = LedgerError::from_response(*status, body.as_bytes());
            assert_eq!(kind(&error), *expected, "status {status}, body {body}");
        }
    }

    #[test]
    fn pre_015_text_bodies_map() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"error":"failed to apply transaction to balances: insufficient funds in source balance"}"#,
                "InsufficientFunds",
            ),
            (
                r#"{"error":"failed to apply transaction to balances: transaction exceeds overdraft limit"}"#,
                "OverdraftLimitExceeded",
            ),
            (
                r#"{"error":"transaction validation failed: reference req-1:usd has already been used"}"#,
                "DuplicateReference",
            ),
            (
                r#"{"error":"failed to acquire lock: resource busy"}"#,
                "Locked",
            ),
            (
                r#"{"error":"NOT_FOUND: Transaction with reference 'r' not found"}"#,
                "NotFound",
            ),
            (
                r#"{"error":"error occurred during processing: [transaction has already been voided]"}"#,
                "AlreadyVoided",
            ),
            (
                r#"{"error":"cannot commit. Transaction already committed"}"#,
                "AlreadyCommitted",
            ),
            (
                r#"{"error":"Identity already exists: idt_b59b73e1-49fb-444e-9812-3f34ee51f6a5"}"#,
                "AlreadyExists",
            ),
            (
                r#"{"errors":"description: cannot be blank."}"#,
                "Rejected 400 -",
            ),
            (
                r#"{"errors":"transaction exceeds overdraft limit"}"#,
                "OverdraftLimitExceeded",
            ),
            (
                r#"{"errors":[{"Param":"x","Message":"bad"}]}"#,
                "Rejected 400 -",
            ),
            ("not json at all", "Rejected 400 -"),
        ];
        for (body, expected) in cases {
            let error = LedgerError::from_response(400, body.as_bytes());
            assert_eq!(kind(&error), *expected, "body {body}");
        }
    }

    #[test]
    fn message_falls_back_through_envelope() {
        let cases: &[(u16, &str, &str)] = &[
            (
                400,
                r#"{"errors":[{"Param":"x","Message":"bad"}]}"#,
                r#"[{"Message":"bad","Param":"x"}]"#,
            ),
            (
                400,
                r#"{"error":{"message":"admin failure"}}"#,
                r#"{"message":"admin failure"}"#,
            ),
            (400, "plain text", "plain text"),
            (500, "", "no response body (Internal Server Error)"),
        ];
        for (status, body, expected) in cases {
            let (_, message) = code_and_message(*status, body.as_bytes());
            assert_eq!(message, *expected, "body {body}");
        }
    }

    #[test]
    fn long_messages_are_truncated() {
        let body = format!(r#"{{"error":"{}"}}"#, "é".repeat(MAX_MESSAGE_LEN));
        let (_, message) = code_and_message(400, body.as_bytes());
        assert!(message.len() <= MAX_MESSAGE_LEN + 3);
        assert!(message.ends_with("..."));
    }

    #[test]
    fn retryable_and_unavailable_by_variant() {
        let message = || "m".to_string();
        let cases = [
            (LedgerError::Locked { message: message() }, true, false),
            (
                LedgerError::Server {
                    status: 500,
                    message: message(),
                },
                true,
                true,
            ),
            (
                LedgerError::Timeout {
                    operation: "post_bulk",
                },
                true,
                true,
            ),
            (
                LedgerError::Rejected {
                    status: 429,
                    code: None,
                    message: message(),
                },
                true,
                false,
            ),
            (
                LedgerError::Rejected {
                    status: 400,
                    code: None,
                    message: message(),
                },
                false,
                false,
            ),
            (
                LedgerError::InsufficientFunds { message: message() },
                false,
                false,
            ),
            (
                LedgerError::DuplicateReference { message: message() },
                false,
                false,
            ),
            (LedgerError::NotFound { message: message() }, false, false),
            (LedgerError::AlreadyVoided, false, false),
            (
                LedgerError::Unauthorized { message: message() },
                false,
                false,
            ),
            (
                LedgerError::InvalidResponse {
                    operation: "get_balance",
                    detail: message(),
                },
                false,
                false,
            ),
        ];
        for (error, retryable, unavailable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
            assert_eq!(error.is_unavailable(), unavailable, "{error:?}");
        }
    }
}
