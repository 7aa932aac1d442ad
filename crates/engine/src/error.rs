//! The one error type of the engine. Each variant maps to one HTTP status
//! ([`EngineError::http_status`]) so the server stays a thin translation layer.

use echotrace_store::StoreError;

/// Everything that can go wrong in an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The named bank, content item, match, key, user or webhook does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller sent something malformed: bad hex, unknown signal type,
    /// empty signal list, undecodable bytes… (400 / 422).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request conflicts with current state, e.g. a duplicate bank name (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Missing, unknown or revoked credentials (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Valid credentials without the needed role (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A content item was too large or a limit was hit (413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// Storage or another internal failure (500). The message is for logs,
    /// not for callers.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The HTTP status code the server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::NotFound(_) => 404,
            EngineError::InvalidInput(_) => 400,
            EngineError::Conflict(_) => 409,
            EngineError::Unauthorized => 401,
            EngineError::Forbidden(_) => 403,
            EngineError::TooLarge(_) => 413,
            EngineError::Internal(_) => 500,
        }
    }

    /// A short machine-readable code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound(_) => "not_found",
            EngineError::InvalidInput(_) => "invalid_input",
            EngineError::Conflict(_) => "conflict",
            EngineError::Unauthorized => "unauthorized",
            EngineError::Forbidden(_) => "forbidden",
            EngineError::TooLarge(_) => "too_large",
            EngineError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => EngineError::NotFound(what),
            StoreError::Conflict(what) => EngineError::Conflict(what),
            StoreError::InvalidUrl(what) => EngineError::InvalidInput(what),
            StoreError::UnstorableText | StoreError::Invalid(_) => {
                EngineError::InvalidInput(e.to_string())
            }
            other => EngineError::Internal(other.to_string()),
        }
    }
}

/// Result alias used throughout the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
