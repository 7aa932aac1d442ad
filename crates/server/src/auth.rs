//! Bearer-key authentication and role checks.
//!
//! [`Caller<R>`](Caller) is an extractor: it reads `Authorization: Bearer
//! <key>`, verifies the key with the engine (401 if missing, malformed,
//! unknown or revoked) and checks the key's role against the route's
//! [`Requirement`] `R` (one of the [`op`] markers; 403 on the wrong role),
//! with the engine's role table (`echotrace_engine::Role`). Because it is a
//! parts extractor and handlers take it before their body extractor, the
//! role is checked **from the headers, before any byte of the body is
//! read**: a wrong-role caller's upload is never buffered, and a reviewer
//! posting `{bad` to `/v1/banks` gets 403, not a JSON error. There is no
//! untyped `Caller`: every route names what it requires (`op::AnyRole` for
//! "any valid key").
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

/// What a route requires of its caller's role (see [`op`]).
pub trait Requirement: Send + Sync + 'static {
    /// The operation the role must allow; `None` = any valid key.
    const OP: Option<Operation>;
}

/// Route requirements, one marker type per [`Operation`].
pub mod op {
    use super::{Operation, Requirement};

    macro_rules! requirements {
        ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {$(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $name;
            impl Requirement for $name {
                const OP: Option<Operation> = $op;
            }
        )*};
    }

    requirements! {
        /// Any valid key, whatever its role.
        AnyRole => None;
        /// [`Operation::Lookup`].
        Lookup => Some(Operation::Lookup);
        /// [`Operation::ReadBanks`].
        ReadBanks => Some(Operation::ReadBanks);
        /// [`Operation::WriteBanks`].
        WriteBanks => Some(Operation::WriteBanks);
        /// [`Operation::ReadMatches`].
        ReadMatches => Some(Operation::ReadMatches);
        /// [`Operation::Decide`].
        Decide => Some(Operation::Decide);
        /// [`Operation::ReadAudit`].
        ReadAudit => Some(Operation::ReadAudit);
        /// [`Operation::Admin`].
        Admin => Some(Operation::Admin);
        /// [`Operation::Exchanges`].
        Exchanges => Some(Operation::Exchanges);
        /// [`Operation::ReadFeeds`].
        ReadFeeds => Some(Operation::ReadFeeds);
    }
}

/// The authenticated caller of a request, whose role was checked against
/// `R` before the handler (and its body extractor) ran.
#[derive(Clone, Debug)]
pub struct Caller<R: Requirement> {
    pub key: ApiKey,
    requirement: std::marker::PhantomData<fn() -> R>,
}

impl<R: Requirement> Caller<R> {
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

/// The verified key of a request (401 unless valid).
async fn verified_key(parts: &Parts, state: &AppState) -> Result<ApiKey, ApiError> {
    let token = bearer(parts)?;
    let digest = hash_api_key(token);
    if let Some(key) = state.keys().get(&digest) {
        return Ok(key);
    }
    let engine = state.engine()?;
    let key = engine.verify_api_key(token).await.map_err(ApiError::from)?;
    state.keys().put(digest, key.clone());
    Ok(key)
}

impl<R: Requirement> FromRequestParts<AppState> for Caller<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = verified_key(parts, state).await?;
        if let Some(op) = R::OP {
            key.role.require(op).map_err(ApiError::from)?;
        }
        Ok(Caller {
            key,
            requirement: std::marker::PhantomData,
        })
    }
}
