//! Bearer-key authentication and role checks.
//!
//! [`Caller`] is an extractor: it reads `Authorization: Bearer <key>`,
//! verifies the key with the engine (401 if missing, malformed, unknown or
//! revoked) and carries the key's role. Handlers then call
//! [`Caller::require`] with the engine's [`Operation`] (403 on the wrong
//! role), so the role table lives in one place (`echotrace_engine::Role`).
//!
//! Verified keys are cached by the SHA-256 of the key (never the key) for a
//! short TTL; the cache is bounded and simply cleared when full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use echotrace_engine::{hash_api_key, Actor, ApiKey, Operation, Role};

use crate::error::ApiError;
use crate::AppState;

const MAX_CACHED_KEYS: usize = 10_000;

/// Short-lived cache of verified keys.
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (ApiKey, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, digest: &str) -> Option<ApiKey> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.entries.lock().ok()?;
        match map.get(digest) {
            Some((key, at)) if at.elapsed() < self.ttl => Some(key.clone()),
            _ => None,
        }
    }

    fn put(&self, digest: String, key: ApiKey) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_CACHED_KEYS {
                map.clear();
            }
            map.insert(digest, (key, Instant::now()));
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    pub fn role(&self) -> Role {
        self.key.role
    }

    /// The audit-log actor for this caller.
    pub fn actor(&self) -> Actor {
        Actor::key(self.key.id)
    }

    /// 403 unless the caller's role may perform `op`.
    pub fn require(&self, op: Operation) -> Result<(), ApiError> {
        self.key.role.require(op).map_err(ApiError::from)
    }

    /// 403 unless the caller's role may perform at least one of `ops`.
    pub fn require_any(&self, ops: &[Operation]) -> Result<(), ApiError> {
        if ops.iter().any(|op| self.key.role.allows(*op)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this",
                self.key.role.as_str()
            )))
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key>"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "expected Authorization: Bearer <key>",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let digest = hash_api_key(token);
        if let Some(key) = state.keys().get(&digest) {
            return Ok(Caller { key });
        }
        let engine = state.engine()?;
        let key = engine.verify_api_key(token).await.map_err(ApiError::from)?;
        state.keys().put(digest, key.clone());
        Ok(Caller { key })
    }
}
