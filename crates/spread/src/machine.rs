//! The liveness state machine: one verdict moves one copy's status.
//!
//! * `live` → resets the removed run; after a confirmed removal it is a
//!   **resurfacing**: the removal episode gets `resurfaced_at`, the copy is
//!   live again, and its schedule restarts from now (anchor = now).
//! * removed-class verdict (see [`RemovalPolicy`]) → the run grows; the
//!   first one records `first_removed_at` and makes the copy
//!   `removal_pending`; the `confirm_checks`-th in a row (default 2)
//!   **confirms** the removal: an episode (last live, first removed,
//!   confirmed) is recorded and the copy is `removed`.
//! * neutral verdict (`geo_blocked`, `dns_fail`, `inconclusive` by
//!   default) → nothing moves; the run is neither broken nor extended.
//!
//! Next check (adaptive): the next schedule slot after now; sooner —
//! `confirm_after` — while a removal awaits confirmation (even past the
//! schedule's end), and `retry_after` after a neutral verdict while the
//! schedule runs. A removed copy stays on its schedule, so a copy that
//! comes back later is seen.

use std::time::Duration;

use echotrace_store::{CheckWrite, DueCheck, RemovalRow};

use crate::schedule::Schedule;
use crate::state::{Class, RemovalPolicy, Status};
use crate::verdict::Verdict;

/// Timing of the adaptive parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub schedule: Schedule,
    /// Delay before the confirming check after a first removed one.
    pub confirm_after: Duration,
    /// Delay before retrying after an inconclusive (neutral) check.
    pub retry_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            schedule: Schedule::default(),
            confirm_after: Duration::from_secs(3600),
            retry_after: Duration::from_secs(3600),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Apply `verdict`, checked at `now` by `holder`, to the leased `due` row.
pub fn advance(
    due: &DueCheck,
    verdict: &Verdict,
    via: &str,
    now: i64,
    holder: &str,
    policy: &RemovalPolicy,
    timing: &Timing,
) -> CheckWrite {
    let l = &due.liveness;
    let mut status = Status::parse(&l.status).unwrap_or(Status::Live);
    let mut streak = l.removed_streak;
    let mut last_live = l.last_live_at;
    let mut first_removed = l.first_removed_at;
    let mut removals = l.removals;
    let mut resurfaced = l.resurfaced;
    let mut anchor = l.anchor_at;
    let mut confirmed_removal = None;
    let mut resurfaced_episode = None;
    let class = policy.class(verdict.state);
    match class {
        Class::Up => {
            if status == Status::Removed {
                resurfaced += 1;
                resurfaced_episode = Some(removals);
                anchor = now;
            }
            status = Status::Live;
            streak = 0;
            first_removed = None;
            last_live = last_live.max(now);
        }
        Class::Removed => {
            streak += 1;
            if streak == 1 || first_removed.is_none() {
                first_removed = Some(now);
            }
            if status != Status::Removed {
                if streak >= i64::from(policy.confirm_checks.max(1)) {
                    status = Status::Removed;
                    removals += 1;
                    confirmed_removal = Some(RemovalRow {
                        sighting_id: l.sighting_id,
                        episode: removals,
                        last_live_at: last_live,
                        first_removed_at: first_removed.unwrap_or(now),
                        confirmed_at: now,
                        removed_state: verdict.state.as_str().to_string(),
                        resurfaced_at: None,
                    });
                } else {
                    status = Status::RemovalPending;
                }
            }
        }
        Class::Neutral => {}
    }
    let slot = timing.schedule.next_after(anchor, now);
    let next_check_at = match (status, class) {
        (Status::RemovalPending, _) => {
            let confirm = now.saturating_add(ms(timing.confirm_after));
            Some(slot.map_or(confirm, |s| s.min(confirm)))
        }
        (_, Class::Neutral) => slot.map(|s| s.min(now.saturating_add(ms(timing.retry_after)))),
        _ => slot,
    };
    CheckWrite {
        sighting_id: l.sighting_id,
        holder: holder.to_string(),
        expected_checks: l.checks,
        checked_at: now,
        state: verdict.state.as_str().to_string(),
        http_status: verdict.http_status.map(i64::from),
        final_url: verdict.final_url.clone(),
        served_sha256: verdict.served_sha256.clone(),
        detail: verdict.detail.clone(),
        via: via.to_string(),
        warc: None,
        status: status.as_str().to_string(),
        removed_streak: streak,
        last_live_at: last_live,
        first_removed_at: first_removed,
        removals,
        resurfaced,
        anchor_at: anchor,
        next_check_at,
        confirmed_removal,
        resurfaced_episode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LivenessState;
    use echotrace_store::LivenessRow;

    const H: i64 = 3_600_000;

    fn due(l: &LivenessRow) -> DueCheck {
        DueCheck {
            liveness: l.clone(),
            url: "http://x.example/a".into(),
            host: "x.example".into(),
            content_sha256: "ab".into(),
            media_type: "image".into(),
            source_id: None,
        }
    }

    fn verdict(state: LivenessState) -> Verdict {
        Verdict {
            state,
            http_status: Some(200),
            final_url: String::new(),
            served_sha256: String::new(),
            detail: String::new(),
        }
    }

    /// Fold a sequence of (hours after anchor, verdict) into the row.
    fn run(steps: &[(i64, LivenessState)]) -> (LivenessRow, Vec<CheckWrite>) {
        let mut l = LivenessRow {
            sighting_id: 1,
            state: "unchecked".into(),
            status: "live".into(),
            removed_streak: 0,
            checks: 0,
            last_checked_at: None,
            last_live_at: 0,
            first_removed_at: None,
            removals: 0,
            resurfaced: 0,
            anchor_at: 0,
            next_check_at: Some(H),
            created_at: 0,
            updated_at: 0,
        };
        let timing = Timing::default();
        let mut writes = Vec::new();
        for (h, st) in steps {
            let w = advance(
                &due(&l),
                &verdict(*st),
                "clearnet",
                h * H,
                "t",
                &RemovalPolicy::default(),
                &timing,
            );
            l.state = w.state.clone();
            l.status = w.status.clone();
            l.removed_streak = w.removed_streak;
            l.checks += 1;
            l.last_live_at = w.last_live_at;
            l.first_removed_at = w.first_removed_at;
            l.removals = w.removals;
            l.resurfaced = w.resurfaced;
            l.anchor_at = w.anchor_at;
            l.next_check_at = w.next_check_at;
            writes.push(w);
        }
        (l, writes)
    }

    #[test]
    fn two_consecutive_removed_checks_confirm() {
        use LivenessState::*;
        let (l, w) = run(&[(1, Live), (6, RemovedGone)]);
        assert_eq!(l.status, "removal_pending");
        assert_eq!(l.next_check_at, Some(7 * H), "confirmation comes sooner");
        assert!(w.iter().all(|w| w.confirmed_removal.is_none()));
        let (l, w) = run(&[(1, Live), (6, RemovedGone), (7, RemovedNoticePage)]);
        assert_eq!(l.status, "removed");
        let r = w[2].confirmed_removal.as_ref().unwrap();
        assert_eq!(
            (r.last_live_at, r.first_removed_at, r.confirmed_at),
            (H, 6 * H, 7 * H)
        );
        assert_eq!(l.next_check_at, Some(24 * H), "back on the schedule");
    }

    #[test]
    fn a_live_check_between_breaks_the_run_and_neutral_ones_do_not() {
        use LivenessState::*;
        let (l, _) = run(&[(1, RemovedGone), (2, Live), (6, RemovedGone)]);
        assert_eq!(l.status, "removal_pending");
        let (l, w) = run(&[(1, RemovedGone), (2, Inconclusive), (3, RemovedGone)]);
        assert_eq!(l.status, "removed");
        assert_eq!(w[2].confirmed_removal.as_ref().unwrap().first_removed_at, H);
        assert_eq!(
            w[1].next_check_at,
            Some(3 * H),
            "pending: confirm after 1 h"
        );
        let (_, w) = run(&[(1, Live), (2, DnsFail)]);
        assert_eq!(w[1].next_check_at, Some(3 * H), "retry after 1 h");
    }

    #[test]
    fn coming_back_after_removal_is_resurfacing() {
        use LivenessState::*;
        let (l, w) = run(&[(1, Live), (6, RemovedGone), (7, RemovedGone), (24, Live)]);
        assert_eq!(l.status, "live");
        assert_eq!(l.resurfaced, 1);
        assert_eq!(w[3].resurfaced_episode, Some(1));
        assert_eq!(l.anchor_at, 24 * H, "schedule restarts");
        assert_eq!(l.next_check_at, Some(25 * H));
        // Removed again: a second episode.
        let (l, w) = run(&[
            (1, RemovedGone),
            (2, RemovedGone),
            (24, Live),
            (25, LiveAltered),
            (26, LiveAltered),
        ]);
        assert_eq!(l.removals, 2);
        let r = w[4].confirmed_removal.as_ref().unwrap();
        assert_eq!((r.episode, r.last_live_at), (2, 24 * H));
    }
}
