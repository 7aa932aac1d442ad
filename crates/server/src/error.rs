//! One error type for every handler, rendered as
//! `{"error":{"code":"...","message":"..."}}` with the right status.
//!
//! Bad input must never surface as a 500: engine errors are mapped by
//! variant, and axum's own extractor rejections (malformed JSON, wrong
//! content type, oversized body, bad path/query) are converted by the
//! custom extractors in [`crate::extract`] into 4xx errors of this shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use echotrace_engine::EngineError;

/// An HTTP-facing error: status, a stable machine code, a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (503 overload, 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// The same error with a `Retry-After: secs` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// The same error with `prefix` in front of its message.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// Map a JSON body rejection (syntax, shape, content type, size) to 4xx.
pub(crate) fn from_json_rejection(r: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as J;
    match r {
        J::MissingJsonContentType(_) => {
            ApiError::unsupported_media("expected Content-Type: application/json")
        }
        J::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {}", e.body_text()),
        ),
        J::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.body_text(),
        ),
        J::BytesRejection(e) => body_error(e.status(), e.body_text()),
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Map a body-read failure (most often the size cap) to a 4xx.
pub(crate) fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("request body exceeds the configured limit")
    } else if status.is_client_error() {
        ApiError::new(status, "invalid_input", text)
    } else {
        ApiError::bad_request(text)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            // Internal details go to the log, not to the caller.
            EngineError::Internal(detail) => {
                eprintln!("echotrace-server: internal error: {detail}");
                "internal error".to_string()
            }
            EngineError::Unauthorized => "missing, unknown or revoked API key".to_string(),
            EngineError::NotFound(m)
            | EngineError::InvalidInput(m)
            | EngineError::Conflict(m)
            | EngineError::Forbidden(m)
            | EngineError::TooLarge(m) => m.clone(),
        };
        ApiError::new(status, e.code(), message)
    }
}
