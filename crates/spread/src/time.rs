//! UTC dates without a date crate: formatting Unix ms, and parsing the
//! report window (`--from`/`--to`, `?from=&to=`).

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
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
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn fmt_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
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

/// Why a report window was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum WindowError {
    /// `field` ("from" or "to") is not a time [`parse_time`] accepts.
    Unparsed(&'static str),
    /// `to` is not after `from`.
    Order,
}

/// A report window from optional `from`/`to` texts: `to` defaults to
/// `now`, `from` to 30 days before `to`.
pub fn window(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64), WindowError> {
    let parse = |field: &'static str, v: Option<&str>| match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_time(s).map(Some).ok_or(WindowError::Unparsed(field)),
    };
    let to = parse("to", to)?.unwrap_or(now);
    let from = parse("from", from)?.unwrap_or(to - 30 * 86_400_000);
    if to <= from {
        return Err(WindowError::Order);
    }
    Ok((from, to))
}

/// The accepted time forms, for error messages.
pub const TIME_FORMS: &str = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or Unix milliseconds";

fn days_in(y: i64, m: i64) -> i64 {
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
