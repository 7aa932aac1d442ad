//! Removal rules: how a host says "this is gone" while answering 200 (or
//! 403) — account suspensions, geo-blocks, removal pages recognised by URL
//! — next to the collector's locker rules, which recognise the hosts'
//! "file removed" pages by status and phrase and are consulted first (see
//! [`crate::verdict`]). A table the operator extends with a JSON file
//! (`--removal-rules FILE`); generic rules ship built in.
//!
//! ```json
//! [{"name": "files.example removed page", "host": "files.example",
//!   "state": "removed_notice_page", "status": [200],
//!   "body_contains": ["this file has been removed"]}]
//! ```
//!
//! A rule matches when its host pattern matches (`files.example`,
//! `*.files.example` for the host and its subdomains, `*` or absent for any
//! host), the HTTP status is listed (or `status` is absent), and any of
//! `body_contains` (case-insensitive, in the first 256 KiB) or
//! `final_url_contains` occurs (when both are absent, the status alone
//! decides). Operator rules are tried before the built-in ones, host rules
//! before generic ones, in file order.
//!
//! Rules only name *how* a copy is gone: a response that still serves the
//! matched item is `live` whatever a rule says, so a generic phrase can
//! never remove a live copy (see [`crate::verdict`]).

use serde::Deserialize;

use crate::state::LivenessState;

/// How much of a body the phrases are searched in.
pub const RULE_SCAN_BYTES: usize = 256 * 1024;
/// Most rules a file may hold.
pub const MAX_RULES: usize = 10_000;

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovalRule {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: Option<String>,
    pub state: LivenessState,
    #[serde(default)]
    pub status: Vec<u16>,
    #[serde(default)]
    pub body_contains: Vec<String>,
    #[serde(default)]
    pub final_url_contains: Vec<String>,
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    #[error("removal rules: {0}")]
    Json(String),
    #[error("removal rule {index} ({name:?}): {message}")]
    Invalid {
        index: usize,
        name: String,
        message: String,
    },
    #[error("removal rules: more than {MAX_RULES} rules")]
    TooMany,
}

/// An ordered rule table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovalRules {
    rules: Vec<RemovalRule>,
}

fn generic(
    name: &str,
    state: LivenessState,
    status: &[u16],
    body: &[&str],
    url: &[&str],
) -> RemovalRule {
    RemovalRule {
        name: name.to_string(),
        host: None,
        state,
        status: status.to_vec(),
        body_contains: body.iter().map(|s| s.to_string()).collect(),
        final_url_contains: url.iter().map(|s| s.to_string()).collect(),
    }
}

impl RemovalRules {
    /// The built-in generic rules.
    pub fn builtin() -> RemovalRules {
        use LivenessState::*;
        RemovalRules {
            rules: vec![
                generic("generic: HTTP 451", GeoBlocked, &[451], &[], &[]),
                generic(
                    "generic: account suspended",
                    AccountSuspended,
                    &[200, 403, 404, 410],
                    &[
                        "account has been suspended",
                        "account suspended",
                        "account has been terminated",
                        "account was terminated",
                        "user has been banned",
                    ],
                    &["/suspended", "account_suspended"],
                ),
                generic(
                    "generic: not available in your country",
                    GeoBlocked,
                    &[200, 403],
                    &[
                        "not available in your country",
                        "not available in your region",
                        "blocked in your country",
                        "withheld in your country",
                    ],
                    &[],
                ),
                generic(
                    "generic: removal page by URL",
                    RemovedNoticePage,
                    &[200, 403],
                    &[],
                    &["/removed", "file_removed", "/deleted"],
                ),
            ],
        }
    }

    /// Parse an operator's JSON rules (a list), validated.
    pub fn parse_json(text: &str) -> Result<RemovalRules, RulesError> {
        let rules: Vec<RemovalRule> =
            serde_json::from_str(text).map_err(|e| RulesError::Json(e.to_string()))?;
        if rules.len() > MAX_RULES {
            return Err(RulesError::TooMany);
        }
        for (i, r) in rules.iter().enumerate() {
            let bad = |message: &str| RulesError::Invalid {
                index: i,
                name: r.name.clone(),
                message: message.to_string(),
            };
            if r.state == LivenessState::Live {
                return Err(bad("a rule cannot make a copy live"));
            }
            if r.status.iter().any(|s| !(100..=599).contains(s)) {
                return Err(bad("status codes are 100-599"));
            }
            if r.body_contains
                .iter()
                .chain(&r.final_url_contains)
                .any(|p| p.trim().is_empty() || p.len() > 1000)
            {
                return Err(bad("phrases are 1-1000 bytes and not blank"));
            }
            if r.status.is_empty() && r.body_contains.is_empty() && r.final_url_contains.is_empty()
            {
                return Err(bad("needs status, body_contains or final_url_contains"));
            }
            if let Some(h) = &r.host {
                let h = h.strip_prefix("*.").unwrap_or(h);
                if h.is_empty() || h.len() > 253 || h.contains(['/', ' ', ':']) && h != "*" {
                    return Err(bad("host is a name like files.example or *.files.example"));
                }
            }
        }
        Ok(RemovalRules { rules })
    }

    /// `self`'s rules, then `other`'s.
    pub fn then(mut self, other: RemovalRules) -> RemovalRules {
        self.rules.extend(other.rules);
        self
    }

    pub fn rules(&self) -> &[RemovalRule] {
        &self.rules
    }

    /// The first rule matching the response (host rules before generic).
    pub fn classify(
        &self,
        host: &str,
        status: u16,
        final_url: &str,
        body: &[u8],
    ) -> Option<&RemovalRule> {
        let host = host.to_ascii_lowercase();
        let mut lowered: Option<String> = None;
        let mut body_text = || -> String {
            lowered
                .get_or_insert_with(|| {
                    let cut = &body[..body.len().min(RULE_SCAN_BYTES)];
                    String::from_utf8_lossy(cut).to_lowercase()
                })
                .clone()
        };
        let url = final_url.to_ascii_lowercase();
        let specific = self
            .rules
            .iter()
            .filter(|r| r.host.as_deref().is_some_and(|h| h != "*"));
        let any = self
            .rules
            .iter()
            .filter(|r| r.host.as_deref().is_none_or(|h| h == "*"));
        for r in specific.chain(any) {
            if let Some(pattern) = &r.host {
                if !host_matches(pattern, &host) {
                    continue;
                }
            }
            if !r.status.is_empty() && !r.status.contains(&status) {
                continue;
            }
            if r.body_contains.is_empty() && r.final_url_contains.is_empty() {
                return Some(r);
            }
            if r.final_url_contains
                .iter()
                .any(|p| url.contains(&p.to_ascii_lowercase()))
            {
                return Some(r);
            }
            if !r.body_contains.is_empty() {
                let text = body_text();
                if r.body_contains
                    .iter()
                    .any(|p| text.contains(&p.to_lowercase()))
                {
                    return Some(r);
                }
            }
        }
        None
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(base) => host == base || host.ends_with(&format!(".{base}")),
        None => host == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rules_win_over_generic_ones() {
        let own = RemovalRules::parse_json(
            r#"[{"name": "lock", "host": "*.lock.example", "state": "account_suspended",
                 "status": [200], "body_contains": ["File Removed"]}]"#,
        )
        .unwrap();
        let rules = own.then(RemovalRules::builtin());
        let r = rules
            .classify(
                "dl.lock.example",
                200,
                "http://dl.lock.example/x",
                b"<h1>file removed</h1>",
            )
            .unwrap();
        assert_eq!(r.name, "lock");
        let r = rules
            .classify(
                "other.example",
                200,
                "http://other.example/file_removed?id=3",
                b"<p>Gone.</p>",
            )
            .unwrap();
        assert_eq!(r.state, LivenessState::RemovedNoticePage);
        assert!(rules
            .classify("other.example", 200, "http://other.example/", b"hello")
            .is_none());
        assert_eq!(
            rules
                .classify("x.example", 451, "http://x.example/", b"")
                .unwrap()
                .state,
            LivenessState::GeoBlocked
        );
    }

    #[test]
    fn bad_rules_are_refused_with_their_index() {
        for bad in [
            "{",
            "{}",
            r#"[{"state": "live", "status": [200]}]"#,
            r#"[{"state": "removed_gone"}]"#,
            r#"[{"state": "removed_gone", "status": [99]}]"#,
            r#"[{"state": "removed_gone", "body_contains": [" "]}]"#,
            r#"[{"state": "nope", "status": [200]}]"#,
            r#"[{"state": "removed_gone", "status": [200], "extra": 1}]"#,
            r#"[{"state": "removed_gone", "status": [200], "host": "a/b"}]"#,
        ] {
            assert!(
                RemovalRules::parse_json(bad).is_err(),
                "{bad} should be refused"
            );
        }
        let e = RemovalRules::parse_json(
            r#"[{"state": "removed_gone", "status": [404]}, {"name": "x", "state": "removed_gone"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("rule 1"), "{e}");
    }
}
