//! Size and shape limits of the strings the engine stores, in one place.
//!
//! Every caller-supplied string that ends up in a row (and so in later
//! pages, API responses, audit entries and webhook payloads) has a limit
//! here, checked by the engine whatever the entry point (API, HMA routes,
//! console, CLI); over it is [`EngineError::InvalidInput`] (400) naming the
//! field. The server documents the same constants in its OpenAPI document.
//! Without these, eight lookups with a 20 MiB `context.content_id` made the
//! review queue a 160 MiB page.

use crate::error::{EngineError, Result};
use crate::types::SubmissionContext;

/// A caller's own id: `context.content_id`, `context.uploader_id`.
pub const MAX_ID_BYTES: usize = 2 * 1024;
/// A URL: `context.url`, a webhook's `url`.
pub const MAX_URL_BYTES: usize = 2 * 1024;
/// Free text written by people: a content item's `note`, a decision's
/// `note`, a bank's `description`.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// A webhook's signing secret.
pub const MAX_SECRET_BYTES: usize = 1024;
/// The shortest webhook signing secret: it keys the HMAC-SHA256 signature
/// of every delivery, and an empty or one-character key makes that
/// signature something anyone can forge.
pub const MIN_SECRET_BYTES: usize = 16;
/// A bank name (see [`validate_bank_name`]).
pub const MAX_BANK_NAME_BYTES: usize = 100;
/// One label of a content item.
pub const MAX_LABEL_BYTES: usize = 100;
/// Labels per content item.
pub const MAX_LABELS: usize = 50;
/// An API key's name.
pub const MAX_KEY_NAME_BYTES: usize = 200;

/// `field` must be at most `max` bytes.
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(EngineError::InvalidInput(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

/// `field` (optional) must be at most `max` bytes.
fn check_opt(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    value.map_or(Ok(()), |v| check_len(field, v, max))
}

impl SubmissionContext {
    /// The context's fields within their limits; `prefix` goes before the
    /// field names in the error (`items[3].`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        check_opt(
            &format!("{prefix}context.content_id"),
            self.content_id.as_deref(),
            MAX_ID_BYTES,
        )?;
        check_opt(
            &format!("{prefix}context.uploader_id"),
            self.uploader_id.as_deref(),
            MAX_ID_BYTES,
        )?;
        check_opt(
            &format!("{prefix}context.url"),
            self.url.as_deref(),
            MAX_URL_BYTES,
        )
    }
}

/// Bank names are addressed as one URL path segment (`/v1/banks/{name}`,
/// the console's links, HMA's `/c/bank/{name}`): 1–100 characters of
/// `A-Z a-z 0-9 _ - .`, and not `.` or `..`, which clients and servers
/// resolve as dot-segments before routing.
pub fn validate_bank_name(name: &str) -> Result<()> {
    let chars_ok = !name.is_empty()
        && name.len() <= MAX_BANK_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !chars_ok {
        return Err(EngineError::InvalidInput(format!(
            "bank names are 1-{MAX_BANK_NAME_BYTES} characters of A-Z a-z 0-9 _ - ."
        )));
    }
    if name == "." || name == ".." {
        return Err(EngineError::InvalidInput(
            "bank name cannot be \".\" or \"..\" (not addressable as a URL path segment)".into(),
        ));
    }
    Ok(())
}

/// A key name, or when blank a default naming the role and the time of
/// creation (`matcher-20250102T030405Z`).
pub(crate) fn key_name(name: &str, role: &str, now_ms: i64) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(format!("{role}-{}", utc_stamp(now_ms)));
    }
    check_len("key name", name, MAX_KEY_NAME_BYTES)?;
    Ok(name.to_string())
}

/// Unix milliseconds as a compact UTC timestamp, `YYYYMMDDTHHMMSSZ`.
fn utc_stamp(ms: i64) -> String {
    let t = crate::utc::Utc::of_ms(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A typed object from caller JSON (a source's or an exchange's config,
/// credentials), with a reason that names the field when one is wrong:
/// `prefix.field.path: what is wrong` (`robust: invalid type: string
/// "no", expected a boolean` with no prefix; `config.locker_rules[0].host:
/// …` with prefix `config`; an unknown field is named so too), or
/// `prefix: what is wrong` when the object itself is. serde's own
/// errors give a line and column instead, which name nothing once the
/// JSON was re-serialised. Anything but a JSON object is refused as such
/// (serde would read an array as the fields in order).
pub fn typed_json<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: serde_json::Value,
) -> std::result::Result<T, String> {
    if !value.is_object() {
        return Err(match prefix {
            "" => "expected a JSON object".to_string(),
            p => format!("{p}: expected a JSON object"),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = match (prefix, path.as_str()) {
            (p, ".") => p.to_string(),
            ("", path) => path.to_string(),
            (p, path) if path.starts_with('[') => format!("{p}{path}"),
            (p, path) => format!("{p}.{path}"),
        };
        if at.is_empty() {
            e.inner().to_string()
        } else {
            format!("{at}: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_names() {
        for ok in ["a", "known-media", "v1.2", "A_b-c.d", "...", ".hidden"] {
            assert!(validate_bank_name(ok).is_ok(), "{ok}");
        }
        for bad in [".", "..", "", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(validate_bank_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_and_key_names() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
        assert_eq!(utc_stamp(1_735_787_045_000), "20250102T030405Z");
        assert_eq!(
            key_name("  ", "matcher", 1_735_787_045_000).unwrap(),
            "matcher-20250102T030405Z"
        );
        assert_eq!(key_name(" svc ", "admin", 0).unwrap(), "svc");
        assert!(key_name(&"k".repeat(201), "admin", 0).is_err());
    }

    #[test]
    fn context_limits_name_the_field() {
        let c = SubmissionContext {
            content_id: Some("x".repeat(MAX_ID_BYTES + 1)),
            ..SubmissionContext::default()
        };
        let e = c.validate("items[2].").unwrap_err().to_string();
        assert!(e.contains("items[2].context.content_id"), "{e}");
        assert!(SubmissionContext::default().validate("").is_ok());
    }
}
