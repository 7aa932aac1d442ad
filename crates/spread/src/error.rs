//! The error type of spread tracking. Each variant maps to one HTTP status
//! ([`SpreadError::http_status`]) so the server and CLI stay thin.

use echotrace_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SpreadError {
    /// A named notice, sighting or cluster does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Malformed input; the message names the field (400).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Storage or another internal failure (500); for logs, not callers.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SpreadError {
    pub fn http_status(&self) -> u16 {
        match self {
            SpreadError::NotFound(_) => 404,
            SpreadError::InvalidInput(_) => 400,
            SpreadError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            SpreadError::NotFound(_) => "not_found",
            SpreadError::InvalidInput(_) => "invalid_input",
            SpreadError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for SpreadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => SpreadError::NotFound(what),
            StoreError::InvalidUrl(what) => SpreadError::InvalidInput(what),
            other => SpreadError::Internal(other.to_string()),
        }
    }
}

impl From<echotrace_engine::EngineError> for SpreadError {
    fn from(e: echotrace_engine::EngineError) -> Self {
        use echotrace_engine::EngineError as E;
        match e {
            E::NotFound(m) => SpreadError::NotFound(m),
            E::InvalidInput(m) => SpreadError::InvalidInput(m),
            other => SpreadError::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = SpreadError> = std::result::Result<T, E>;
