//! Credentials and permissions: roles, API keys, console users, and the
//! HMAC signature of outgoing webhook bodies.
//!
//! * API keys are 32 random bytes shown once as `et_<base62>`; only their
//!   SHA-256 (hex) is stored, so a database leak does not leak keys. Keys are
//!   high-entropy, so a fast hash is enough (no argon2 on every request).
//! * User passwords are low-entropy, so they are stored as argon2id PHC strings.
//! * Roles are a fixed set; [`Role::allows`] is the single place that says
//!   which operation each role may perform.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including keys, users and webhooks.
    Admin,
    /// Manages banks and their content; may also look up and read matches.
    Curator,
    /// Submits lookups only (platform integrations).
    Matcher,
    /// Reads matches and makes decisions.
    Reviewer,
    /// A partner organisation: reads the feeds it was granted and posts
    /// opinions on their records, nothing else.
    Partner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Curator,
        Role::Matcher,
        Role::Reviewer,
        Role::Partner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Curator => "curator",
            Role::Matcher => "matcher",
            Role::Reviewer => "reviewer",
            Role::Partner => "partner",
        }
    }

    /// Every role's name, for messages: "admin, curator, matcher,
    /// reviewer, partner".
    pub fn names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }

    /// The roles a review-console user may have: those that can open a
    /// console page. `matcher` (lookups only) and `partner` (feeds only)
    /// are for API keys: every console page needs more than they allow, so
    /// such a user could sign in to nothing but 403 pages.
    pub const CONSOLE: [Role; 3] = [Role::Admin, Role::Curator, Role::Reviewer];

    /// The console roles' names, for messages: "admin, curator, reviewer".
    pub fn console_names() -> String {
        Role::CONSOLE.map(Role::as_str).join(", ")
    }

    /// [`EngineError::InvalidInput`] naming the allowed roles unless a
    /// console user may have this role (checked by `Engine::create_user`;
    /// the CLI asks too, before it reads a password).
    pub fn require_console(self) -> Result<()> {
        if Role::CONSOLE.contains(&self) {
            return Ok(());
        }
        Err(EngineError::InvalidInput(format!(
            "role: {} is for API keys only (a console user with it could open no \
             console page); a console user's role must be one of {}",
            self.as_str(),
            Role::console_names()
        )))
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "curator" => Some(Role::Curator),
            "matcher" => Some(Role::Matcher),
            "reviewer" => Some(Role::Reviewer),
            "partner" => Some(Role::Partner),
            _ => None,
        }
    }

    /// Whether this role may perform `op`.
    pub fn allows(self, op: Operation) -> bool {
        use Operation::*;
        match self {
            Role::Admin => true,
            Role::Curator => matches!(
                op,
                Lookup | ReadBanks | WriteBanks | ReadMatches | ReadAudit | Exchanges
            ),
            Role::Matcher => matches!(op, Lookup),
            Role::Reviewer => matches!(op, ReadBanks | ReadMatches | Decide),
            // Which feeds: only those granted to the key (checked per feed).
            Role::Partner => matches!(op, ReadFeeds),
        }
    }

    /// [`Role::allows`] as a `Result`, with a message naming the operation.
    pub fn require(self, op: Operation) -> Result<()> {
        if self.allows(op) {
            Ok(())
        } else {
            Err(EngineError::Forbidden(format!(
                "role {} may not {}",
                self.as_str(),
                op.as_str()
            )))
        }
    }
}

/// An operation guarded by a role check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Submit signals or bytes for matching.
    Lookup,
    /// List/read banks and content.
    ReadBanks,
    /// Create/update banks, add/enable/disable/delete content, release quarantine.
    WriteBanks,
    /// List/read matches and submissions.
    ReadMatches,
    /// Confirm or reject matches.
    Decide,
    /// Read the audit log and outbox.
    ReadAudit,
    /// Manage API keys, users and webhooks.
    Admin,
    /// Manage exchanges (fetching upstream hash lists into banks) and
    /// publish banks as feeds.
    Exchanges,
    /// Read a published feed and post opinions on its records (partners:
    /// only feeds granted to their key).
    ReadFeeds,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Lookup => "lookup",
            Operation::ReadBanks => "read banks",
            Operation::WriteBanks => "write banks",
            Operation::ReadMatches => "read matches",
            Operation::Decide => "decide",
            Operation::ReadAudit => "read audit",
            Operation::Admin => "administer",
            Operation::Exchanges => "manage exchanges",
            Operation::ReadFeeds => "read feeds",
        }
    }
}

/// An API key's metadata (never the key itself).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A console user (never the password hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "et_";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 of a big-endian byte string (fixed width for 32 bytes: 43 chars).
fn base62(bytes: &[u8]) -> String {
    // Repeated division of the big-endian number by 62.
    let mut num: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    let digits = (bytes.len() * 8 * 1000).div_ceil(5954); // log2(62) ≈ 5.954
    for _ in 0..digits {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 62) as u8;
            rem = cur % 62;
        }
        out.push(BASE62[rem as usize]);
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Fill `buf` from the OS random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| EngineError::Internal(format!("OS random source: {e}")))
}

/// A fresh API key: `et_` + base62 of 32 random bytes.
pub fn generate_api_key() -> Result<String> {
    let mut raw = [0u8; 32];
    random_bytes(&mut raw)?;
    Ok(format!("{API_KEY_PREFIX}{}", base62(&raw)))
}

/// The stored form of an API key: lowercase hex SHA-256 of the full key string.
pub fn hash_api_key(key: &str) -> String {
    hex_lower(&Sha256::digest(key.trim().as_bytes()))
}

/// argon2id PHC string of a password.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| EngineError::Internal(format!("salt encoding: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Internal(format!("argon2: {e}")))
}

/// Whether `password` matches the stored PHC string (false on a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// HMAC-SHA256 of a webhook body, as the header value `sha256=<hex>`.
pub fn sign_body(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex_lower(&mac.finalize().into_bytes()))
}

/// Constant-time check of a `sha256=<hex>` signature produced by [`sign_body`].
pub fn verify_body_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

pub(crate) use echotrace_signals::digest::to_hex as hex_lower;

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match p {
            [h, l] => Some((nib(*h)? << 4) | nib(*l)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_unique_prefixed_base62() {
        let a = generate_api_key().unwrap();
        let b = generate_api_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("et_"));
        assert_eq!(a.len(), 3 + 43);
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), hash_api_key(&b));
    }

    #[test]
    fn base62_known_values() {
        assert_eq!(base62(&[0]), "00");
        assert_eq!(base62(&[61]), "0z");
        assert_eq!(base62(&[62]), "10");
        assert_eq!(base62(&[255]), "47"); // 4*62+7 = 255
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn hmac_matches_rfc4231_case2() {
        // RFC 4231 test case 2.
        let sig = sign_body(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_body_signature(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_body_signature(b"Jefe", b"tampered", &sig));
        assert!(!verify_body_signature(b"Jefe", b"x", "sha256=zz"));
    }

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Operation::Admin));
        assert!(Role::Matcher.allows(Operation::Lookup));
        assert!(!Role::Matcher.allows(Operation::WriteBanks));
        assert!(!Role::Reviewer.allows(Operation::Lookup));
        assert!(Role::Reviewer.allows(Operation::Decide));
        assert!(!Role::Curator.allows(Operation::Decide));
        assert!(Role::Curator.require(Operation::Admin).is_err());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
