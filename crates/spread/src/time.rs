//! Report windows: `--from`/`--to` and `?from=&to=`. The calendar
//! arithmetic and the time formats are the engine's ([`echotrace_engine::utc`]).

pub use echotrace_engine::utc::{fmt_day, fmt_ts, parse_time};

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
