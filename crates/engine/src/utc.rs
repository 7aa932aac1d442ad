//! UTC calendar dates without a date crate: one copy of the civil-date
//! arithmetic (Howard Hinnant's days-from-civil and back) for every place
//! that prints or reads a timestamp: WARC dates and CDXJ keys, key names,
//! console pages, notices and transparency reports.

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar fields of a Unix-ms time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Utc {
    /// The fields of `ms` (milliseconds since 1970-01-01T00:00:00Z).
    pub fn of_ms(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }

    /// Unix ms of valid fields (a real date, hours < 24, minutes < 60,
    /// seconds ≤ 60 for a leap second); `None` otherwise or on overflow.
    pub fn to_ms(self) -> Option<i64> {
        let ok = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in(self.year, self.month)
            && (0..24).contains(&self.hour)
            && (0..60).contains(&self.minute)
            && (0..=60).contains(&self.second);
        if !ok {
            return None;
        }
        days_from_civil(self.year, self.month, self.day)
            .checked_mul(86_400)?
            .checked_add(self.hour * 3600 + self.minute * 60 + self.second)?
            .checked_mul(1000)
    }
}

/// `YYYY-MM-DD HH:MM` (UTC, no suffix).
pub fn fmt_minute(ms: i64) -> String {
    let t = Utc::of_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn fmt_ts(ms: i64) -> String {
    format!("{} UTC", fmt_minute(ms))
}

/// `YYYY-MM-DD`.
pub fn fmt_day(ms: i64) -> String {
    let (y, mo, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Parse a point in time: Unix milliseconds (digits only), `YYYY-MM-DD`
/// (midnight UTC), or `YYYY-MM-DDTHH:MM[:SS]Z` / `YYYY-MM-DD HH:MM[:SS]`
/// (UTC). Years 1970–9999.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || d < 1 || d > days_in(y, mo) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let rest = &s[10..];
    if !rest.is_empty() {
        let rest = rest.strip_prefix(['T', ' '])?;
        let rest = rest.strip_suffix('Z').unwrap_or(rest);
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return None;
        }
        let mut hms = [0i64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            hms[i] = p.parse().ok()?;
        }
        if hms[0] > 23 || hms[1] > 59 || hms[2] > 59 {
            return None;
        }
        secs += hms[0] * 3600 + hms[1] * 60 + hms[2];
    }
    secs.checked_mul(1000)
}

/// Days in month `m` of year `y`.
pub fn days_in(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2026-03-01T12:30Z"), Some(1_772_368_200_000));
        assert_eq!(fmt_ts(1_772_368_200_000), "2026-03-01 12:30 UTC");
        assert_eq!(parse_time("2024-02-29 00:00:01"), Some(1_709_164_801_000));
        assert_eq!(fmt_day(1_709_164_801_000), "2024-02-29");
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        for bad in [
            "",
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-01-01T25:00Z",
            "2026-01-01X",
            "yesterday",
            "1969-12-31",
            "2026-01-01T1:00",
            "99999999999999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
