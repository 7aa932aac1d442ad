//! The liveness re-check schedule: offsets from an anchor (the time a copy
//! was first seen, or came back), e.g. the default
//! `1h,6h,24h,+1d..30d,+7d..90d`: checks 1 h, 6 h and 24 h after the
//! anchor, then daily to day 30, then weekly to day 90.
//!
//! Grammar: a comma-separated list of items; an item is a duration
//! (`90s`, `15m`, `6h`, `2d`, `1w`, or plain milliseconds `500ms`) — one
//! check at that offset — or `+STEP..UNTIL` — checks every STEP after the
//! previous offset, up to and including UNTIL. Offsets must grow. The list
//! is expanded once (at most [`MAX_SLOTS`] offsets).
//!
//! Adaptive parts live in the state machine ([`crate::machine`]): a first
//! removed check is confirmed after `confirm_after` instead of waiting for
//! the next slot, an inconclusive check is retried after `retry_after`, and
//! a copy that comes back restarts the schedule from that moment.

/// Most offsets a schedule may expand to.
pub const MAX_SLOTS: usize = 10_000;

/// The default schedule of issue 16.
pub const DEFAULT_SCHEDULE: &str = "1h,6h,24h,+1d..30d,+7d..90d";

/// Why a schedule string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("schedule is empty")]
    Empty,
    #[error("schedule item {0:?}: expected a duration like 6h or a repeat like +1d..30d")]
    BadItem(String),
    #[error("schedule item {0:?}: offsets must grow")]
    NotIncreasing(String),
    #[error("schedule expands to more than {MAX_SLOTS} checks")]
    TooManySlots,
}

/// A parsed schedule: ascending offsets in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    offsets: Vec<i64>,
    text: String,
}

/// Parse a duration: `N` + `ms|s|m|h|d|w`.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: i64 = num.parse().ok()?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

impl Schedule {
    /// Parse (see the module doc).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let mut offsets: Vec<i64> = Vec::new();
        for raw in text.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let last = offsets.last().copied().unwrap_or(0);
            if let Some(rep) = item.strip_prefix('+') {
                let (step, until) = rep
                    .split_once("..")
                    .ok_or_else(|| ScheduleError::BadItem(item.into()))?;
                let step = parse_duration_ms(step)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| ScheduleError::BadItem(item.into()))?;
                let until =
                    parse_duration_ms(until).ok_or_else(|| ScheduleError::BadItem(item.into()))?;
                if until <= last {
                    return Err(ScheduleError::NotIncreasing(item.into()));
                }
                let mut at = last;
                loop {
                    at = at.saturating_add(step).min(until);
                    if offsets.len() >= MAX_SLOTS {
                        return Err(ScheduleError::TooManySlots);
                    }
                    offsets.push(at);
                    if at == until {
                        break;
                    }
                }
            } else {
                let at =
                    parse_duration_ms(item).ok_or_else(|| ScheduleError::BadItem(item.into()))?;
                if at <= last && !(offsets.is_empty() && at == 0) {
                    return Err(ScheduleError::NotIncreasing(item.into()));
                }
                if offsets.len() >= MAX_SLOTS {
                    return Err(ScheduleError::TooManySlots);
                }
                offsets.push(at);
            }
        }
        if offsets.is_empty() {
            return Err(ScheduleError::Empty);
        }
        Ok(Schedule {
            offsets,
            text: text.trim().to_string(),
        })
    }

    /// The schedule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Offsets in ms, ascending.
    pub fn offsets(&self) -> &[i64] {
        &self.offsets
    }

    /// The first offset (when a newly tracked copy is first checked).
    pub fn first(&self) -> i64 {
        self.offsets[0]
    }

    /// The last offset (when tracking ends).
    pub fn horizon(&self) -> i64 {
        self.offsets[self.offsets.len() - 1]
    }

    /// The first slot strictly after `now` for a copy anchored at `anchor`;
    /// `None` once the schedule is over. Slots missed while no checker ran
    /// are skipped, not made up.
    pub fn next_after(&self, anchor: i64, now: i64) -> Option<i64> {
        let elapsed = now.saturating_sub(anchor);
        let i = self.offsets.partition_point(|o| *o <= elapsed);
        self.offsets.get(i).map(|o| anchor.saturating_add(*o))
    }
}

impl Default for Schedule {
    fn default() -> Self {
        // The default text is a constant that parses; fall back to a
        // single daily check rather than panicking if it were ever edited
        // into something invalid.
        Schedule::parse(DEFAULT_SCHEDULE).unwrap_or(Schedule {
            offsets: vec![86_400_000],
            text: "24h".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;

    #[test]
    fn default_schedule_expands_as_the_issue_says() {
        let s = Schedule::default();
        let o = s.offsets();
        assert_eq!(&o[..4], &[H, 6 * H, 24 * H, 2 * D]);
        assert!(o.contains(&(30 * D)));
        assert_eq!(o[o.iter().position(|x| *x == 30 * D).unwrap() + 1], 37 * D);
        assert_eq!(s.horizon(), 90 * D);
        // 3 + 29 daily (day 2..30) + 8 weekly (37..86) + day 90
        assert_eq!(o.len(), 3 + 29 + 8 + 1);
    }

    #[test]
    fn next_slot_skips_missed_ones() {
        let s = Schedule::parse("1h,6h,24h").unwrap();
        assert_eq!(s.next_after(0, 0), Some(H));
        assert_eq!(s.next_after(0, H), Some(6 * H));
        assert_eq!(s.next_after(0, 10 * H), Some(24 * H));
        assert_eq!(s.next_after(0, 24 * H), None);
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "",
            " , ",
            "1x",
            "6h,1h",
            "+0s..1d",
            "+1d",
            "h",
            "1h,+1h..30m",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            Schedule::parse("+1ms..1d"),
            Err(ScheduleError::TooManySlots)
        );
        assert!(Schedule::parse("500ms,2s,+1s..5s").is_ok());
    }
}
