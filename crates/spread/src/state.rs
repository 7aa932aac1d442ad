//! The liveness vocabulary: the eight check verdicts and how each counts.

use serde::{Deserialize, Serialize};

/// The verdict of one liveness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessState {
    /// The URL serves the matched item (same bytes, or bytes that still
    /// match it within the bank's thresholds).
    Live,
    /// The URL answers 2xx but the matched item is gone or changed.
    LiveAltered,
    /// 404 or 410.
    RemovedGone,
    /// The host's "file removed" page (a removal rule matched).
    RemovedNoticePage,
    /// The host says the uploading account is suspended or terminated.
    AccountSuspended,
    /// 451, or the host's "not available in your country" page.
    GeoBlocked,
    /// The host name does not resolve.
    DnsFail,
    /// Nothing can be concluded: timeout, refused connection, 5xx, 429,
    /// an unexpected 4xx, a body over the cap, or bytes that cannot be
    /// re-hashed.
    Inconclusive,
}

/// Every state, in display order.
pub const ALL_STATES: [LivenessState; 8] = [
    LivenessState::Live,
    LivenessState::LiveAltered,
    LivenessState::RemovedGone,
    LivenessState::RemovedNoticePage,
    LivenessState::AccountSuspended,
    LivenessState::GeoBlocked,
    LivenessState::DnsFail,
    LivenessState::Inconclusive,
];

impl LivenessState {
    pub fn as_str(self) -> &'static str {
        match self {
            LivenessState::Live => "live",
            LivenessState::LiveAltered => "live_altered",
            LivenessState::RemovedGone => "removed_gone",
            LivenessState::RemovedNoticePage => "removed_notice_page",
            LivenessState::AccountSuspended => "account_suspended",
            LivenessState::GeoBlocked => "geo_blocked",
            LivenessState::DnsFail => "dns_fail",
            LivenessState::Inconclusive => "inconclusive",
        }
    }

    pub fn parse(s: &str) -> Option<LivenessState> {
        ALL_STATES.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for LivenessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a verdict moves a copy's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The copy is up: resets a removed run; after a confirmed removal it
    /// is a resurfacing.
    Up,
    /// Counts towards the consecutive removed checks.
    Removed,
    /// Evidence of nothing: leaves the status and the run as they are.
    Neutral,
}

/// A copy's status, derived from its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Live,
    /// One removed check so far; not counted as removed yet.
    RemovalPending,
    /// Confirmed: the required consecutive removed checks.
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::RemovalPending => "removal_pending",
            Status::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "live" => Some(Status::Live),
            "removal_pending" => Some(Status::RemovalPending),
            "removed" => Some(Status::Removed),
            _ => None,
        }
    }
}

/// Which verdicts count as removal, and how many in a row confirm one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalPolicy {
    /// Verdicts that count as "removed". Default: removed_gone,
    /// removed_notice_page, account_suspended and live_altered (the item is
    /// no longer served at that URL). geo_blocked, dns_fail and
    /// inconclusive are neutral unless listed here.
    pub removed: Vec<LivenessState>,
    /// Consecutive removed checks needed (default 2).
    pub confirm_checks: u32,
}

impl Default for RemovalPolicy {
    fn default() -> Self {
        RemovalPolicy {
            removed: vec![
                LivenessState::RemovedGone,
                LivenessState::RemovedNoticePage,
                LivenessState::AccountSuspended,
                LivenessState::LiveAltered,
            ],
            confirm_checks: 2,
        }
    }
}

impl RemovalPolicy {
    pub fn class(&self, s: LivenessState) -> Class {
        if s == LivenessState::Live {
            Class::Up
        } else if self.removed.contains(&s) {
            Class::Removed
        } else {
            Class::Neutral
        }
    }

    /// Parse a comma-separated list of removed states (`--removed-states`).
    pub fn parse_removed(list: &str) -> Result<Vec<LivenessState>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match LivenessState::parse(name) {
                Some(LivenessState::Live) => {
                    return Err("\"live\" cannot count as removed".to_string())
                }
                Some(s) => {
                    if !out.contains(&s) {
                        out.push(s)
                    }
                }
                None => {
                    return Err(format!(
                        "unknown liveness state {name:?} (expected one of {})",
                        ALL_STATES.map(LivenessState::as_str).join(", ")
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err("at least one state must count as removed".to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(LivenessState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(LivenessState::parse("gone"), None);
    }

    #[test]
    fn default_policy_classes() {
        let p = RemovalPolicy::default();
        assert_eq!(p.class(LivenessState::Live), Class::Up);
        assert_eq!(p.class(LivenessState::LiveAltered), Class::Removed);
        assert_eq!(p.class(LivenessState::DnsFail), Class::Neutral);
        assert!(RemovalPolicy::parse_removed("live").is_err());
        assert!(RemovalPolicy::parse_removed("nope").is_err());
        assert_eq!(
            RemovalPolicy::parse_removed("removed_gone, dns_fail").unwrap(),
            vec![LivenessState::RemovedGone, LivenessState::DnsFail]
        );
    }
}
