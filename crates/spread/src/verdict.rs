//! One check's verdict, from what the host served — never from the status
//! code alone, because soft-404s and "file removed" pages answer 200.
//!
//! 1. No response: DNS failure → `dns_fail`; anything else (timeout,
//!    refused, proxy, policy) → `inconclusive`.
//! 2. A body cut at the size cap → `inconclusive` (it cannot be re-hashed).
//! 3. 2xx: the served bytes are **re-hashed**. Same SHA-256 as the
//!    sighting, or signals that still match the sighting's item within the
//!    bank's thresholds (a re-encode, a resize) → `live`. Otherwise the
//!    collector's locker rules for the host may recognise its "file
//!    removed" page (`removed_notice_page`), or a removal rule may say how
//!    it is gone (`removed_notice_page`, `account_suspended`,
//!    `geo_blocked`); without one the page is up but the item is not →
//!    `live_altered`. A sighting without bytes (a bare
//!    link) is `live` on 2xx unless a rule matches.
//! 4. 404/410 → `removed_gone` (or what a host rule for that status says);
//!    451 → `geo_blocked`; other statuses (401, 403, 429, 5xx, an
//!    unfollowed 3xx) → a rule's state, else `inconclusive`.

use crate::fetch::{FetchFailure, FetchResult};
use crate::rules::RemovalRules;
use crate::state::LivenessState;

/// The host's "file removed" page by the collector's locker rules:
/// (status, body) → why, when it is one.
pub type LockerCheck<'a> = &'a (dyn Fn(u16, &[u8]) -> Option<String> + Sync);

/// What is being checked.
#[derive(Clone)]
pub struct Target<'a> {
    pub url: &'a str,
    pub host: &'a str,
    /// SHA-256 of the bytes the collector saw ('' for a bare link).
    pub content_sha256: &'a str,
    /// The locker rules that apply to this URL, if any.
    pub locker: Option<LockerCheck<'a>>,
}

/// Whether served bytes (other than the sighting's) still carry its item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// They match the item (detail: how, e.g. "pdq distance 6 ≤ 31").
    Matches(String),
    /// They do not.
    Differs(String),
    /// They could not be compared (e.g. a video without ffmpeg).
    Unknown(String),
}

/// A check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub state: LivenessState,
    pub http_status: Option<u16>,
    pub final_url: String,
    /// SHA-256 of what was served ('' when nothing was).
    pub served_sha256: String,
    pub detail: String,
}

/// Decide a check (see the module doc). `presence` is called only when
/// the served bytes differ from the sighting's.
pub fn decide(
    target: &Target<'_>,
    fetched: &FetchResult,
    rules: &RemovalRules,
    presence: impl FnOnce(&[u8]) -> Presence,
) -> Verdict {
    let resp = match fetched {
        Ok(r) => r,
        Err(f) => {
            let state = match f {
                FetchFailure::Dns(_) => LivenessState::DnsFail,
                _ => LivenessState::Inconclusive,
            };
            return Verdict {
                state,
                http_status: None,
                final_url: String::new(),
                served_sha256: String::new(),
                detail: f.to_string(),
            };
        }
    };
    let served = echotrace_signals::digest::sha256_hex(&resp.body);
    let verdict = |state: LivenessState, detail: String| Verdict {
        state,
        http_status: Some(resp.status),
        final_url: resp.final_url.clone(),
        served_sha256: served.clone(),
        detail,
    };
    if resp.truncated {
        return verdict(
            LivenessState::Inconclusive,
            format!(
                "body larger than the {}-byte cap; cannot re-hash",
                resp.body.len()
            ),
        );
    }
    let rule = || rules.classify(target.host, resp.status, &resp.final_url, &resp.body);
    let locker = || match (target.locker, resp.status) {
        (Some(check), 200..=299 | 403) => check(resp.status, &resp.body),
        _ => None,
    };
    let by_rule = |fallback: LivenessState, why: String| {
        if let Some(why) = locker() {
            return verdict(
                LivenessState::RemovedNoticePage,
                format!("HTTP {}: locker rule: {why}", resp.status),
            );
        }
        match rule() {
            Some(r) => verdict(
                r.state,
                format!("HTTP {}: removal rule {:?}", resp.status, r.name),
            ),
            None => verdict(fallback, why),
        }
    };
    match resp.status {
        200..=299 => {
            if target.content_sha256.is_empty() {
                return by_rule(
                    LivenessState::Live,
                    format!("HTTP {}; a bare link (no bytes to compare)", resp.status),
                );
            }
            if served == target.content_sha256 {
                return verdict(
                    LivenessState::Live,
                    format!("HTTP {}; same bytes (sha256)", resp.status),
                );
            }
            match presence(&resp.body) {
                Presence::Matches(how) => verdict(
                    LivenessState::Live,
                    format!("HTTP {}; other bytes, same item: {how}", resp.status),
                ),
                Presence::Differs(how) => by_rule(
                    LivenessState::LiveAltered,
                    format!("HTTP {}; the item is gone or changed: {how}", resp.status),
                ),
                Presence::Unknown(why) => by_rule(
                    LivenessState::Inconclusive,
                    format!("HTTP {}; cannot re-hash: {why}", resp.status),
                ),
            }
        }
        404 | 410 => by_rule(LivenessState::RemovedGone, format!("HTTP {}", resp.status)),
        451 => by_rule(LivenessState::GeoBlocked, "HTTP 451".to_string()),
        s => by_rule(LivenessState::Inconclusive, format!("HTTP {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::Fetched;

    fn served(status: u16, body: &[u8]) -> FetchResult {
        Ok(Fetched {
            status,
            final_url: "http://files.example/a".into(),
            body: body.to_vec(),
            truncated: false,
        })
    }

    fn target(sha: &str) -> Target<'_> {
        Target {
            url: "http://files.example/a",
            host: "files.example",
            content_sha256: sha,
            locker: None,
        }
    }

    #[test]
    fn verdicts_come_from_the_bytes() {
        let rules = RemovalRules::builtin();
        let item = b"the original bytes";
        let sha = echotrace_signals::digest::sha256_hex(item);
        let never = |_: &[u8]| -> Presence { panic!("not needed") };
        let d = |r: FetchResult, p: Presence| decide(&target(&sha), &r, &rules, |_| p).state;
        assert_eq!(
            decide(&target(&sha), &served(200, item), &rules, never).state,
            LivenessState::Live
        );
        assert_eq!(
            d(served(200, b"x"), Presence::Matches("pdq 3".into())),
            LivenessState::Live
        );
        assert_eq!(
            d(
                served(200, b"<p>hello</p>"),
                Presence::Differs("pdq 120".into())
            ),
            LivenessState::LiveAltered
        );
        assert_eq!(
            decide(
                &target(&sha),
                &Ok(Fetched {
                    status: 200,
                    final_url: "http://files.example/file_removed".into(),
                    body: b"Sorry.".to_vec(),
                    truncated: false,
                }),
                &rules,
                |_| Presence::Differs("text".into())
            )
            .state,
            LivenessState::RemovedNoticePage
        );
        assert_eq!(
            d(served(404, b""), Presence::Differs("-".into())),
            LivenessState::RemovedGone
        );
        assert_eq!(
            d(served(451, b""), Presence::Differs("-".into())),
            LivenessState::GeoBlocked
        );
        assert_eq!(
            d(served(503, b""), Presence::Differs("-".into())),
            LivenessState::Inconclusive
        );
        assert_eq!(
            d(
                served(403, b"This account has been suspended"),
                Presence::Differs("-".into())
            ),
            LivenessState::AccountSuspended
        );
        assert_eq!(
            d(
                Err(FetchFailure::Dns("nx".into())),
                Presence::Differs("-".into())
            ),
            LivenessState::DnsFail
        );
        assert_eq!(
            d(
                Err(FetchFailure::Timeout("30 s".into())),
                Presence::Differs("-".into())
            ),
            LivenessState::Inconclusive
        );
        // A rule can never remove a copy that still serves the item.
        let removed_page_with_item = b"This account has been suspended";
        let sha2 = echotrace_signals::digest::sha256_hex(removed_page_with_item);
        assert_eq!(
            decide(
                &target(&sha2),
                &served(200, removed_page_with_item),
                &rules,
                never
            )
            .state,
            LivenessState::Live
        );
    }

    #[test]
    fn truncated_bodies_are_inconclusive() {
        let r = Ok(Fetched {
            status: 200,
            final_url: "http://x.example/".into(),
            body: vec![0; 10],
            truncated: true,
        });
        let v = decide(&target("ab"), &r, &RemovalRules::builtin(), |_| {
            Presence::Differs("-".into())
        });
        assert_eq!(v.state, LivenessState::Inconclusive);
    }

    #[test]
    fn locker_rules_name_the_removed_page() {
        let check = |_: u16, body: &[u8]| -> Option<String> {
            String::from_utf8_lossy(body)
                .contains("gone fishing")
                .then(|| "page says \"gone fishing\"".to_string())
        };
        let t = Target {
            locker: Some(&check),
            ..target("ab")
        };
        let v = decide(
            &t,
            &served(200, b"<p>gone fishing</p>"),
            &RemovalRules::default(),
            |_| Presence::Differs("-".into()),
        );
        assert_eq!(v.state, LivenessState::RemovedNoticePage);
        assert!(v.detail.contains("locker rule"), "{}", v.detail);
    }
}
