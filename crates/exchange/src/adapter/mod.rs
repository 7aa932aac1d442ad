//! Adapters: one per upstream wire format.
//!
//! An [`Adapter`] turns its upstream into [`Page`]s of
//! [`UpstreamRecord`]s, each page carrying the typed checkpoint (JSON with a
//! `"v"`) that resumes right after it. Adapters never write anything: the
//! worker hands each page to the engine, which applies it and stores the
//! checkpoint in one transaction.
//!
//! | api | wire format | resumes by | deletions |
//! |---|---|---|---|
//! | `echotrace` | another instance's feed (`/v1/feeds/{bank}`) | feed cursor; 410 → full pass | tombstones; checksum drift → full pass |
//! | `tat` | TCAP hash list v2 (`api/hash-list/v2/all`), or the URL list | `after` = `"<utc>,<id>"` | `deleted: true` |
//! | `fb_threatexchange` | `/{privacy_group}/threat_updates` | `start_time` (stale after 85 days) | `should_delete`, or no descriptors |
//! | `file` | CSV, JSONL or `type value` lines, by path or URL | file digest + byte offset | mark-and-sweep on every pass |

pub mod file;
pub mod peer;
pub mod tat;
pub mod te;

use std::sync::Arc;

use echotrace_engine::exchange::{Opinion, OpinionOut, RecordLabels, UpstreamRecord};
use echotrace_engine::BoxFuture;
use echotrace_signals::signal::SignalType;
use serde::Serialize;

use crate::net::{Http, NetError};

/// Why a fetch (or an opinion delivery) failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Net(#[from] NetError),
    /// The page as a whole could not be read (not JSON, wrong shape).
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The upstream refused the credentials (after one re-authentication).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The exchange is misconfigured (missing credentials, bad config).
    #[error("configuration: {0}")]
    Config(String),
    /// The upstream says our cursor is too old: fetch everything again.
    #[error("upstream asks for a full re-fetch: {0}")]
    Restart(String),
    /// The adapter cannot do this (e.g. write-back for a file).
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Io(String),
}

impl FetchError {
    /// Worth retrying after a pause.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Net(e) => e.retryable(),
            _ => false,
        }
    }
}

/// One page of a fetch.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<UpstreamRecord>,
    /// Records skipped as malformed.
    pub malformed_count: u64,
    /// Why, for the first [`MAX_REASONS`] of them: `"<upstream id>: <reason>"`.
    pub malformed: Vec<String>,
    /// Records of signal types echotrace does not support (skipped).
    pub unsupported: u64,
    /// The checkpoint after this page (typed JSON), `None` = unchanged.
    pub checkpoint: Option<String>,
    /// Upstream time the checkpoint corresponds to (ms).
    pub upstream_at: Option<i64>,
    /// These records begin a new full pass (mark-and-sweep).
    pub restart: bool,
    /// Nothing more to fetch right now.
    pub caught_up: bool,
    /// The upstream's checksum of its live set at this checkpoint, when it
    /// publishes one (echotrace peers).
    pub upstream_checksum: Option<String>,
}

/// One upstream wire format.
pub trait Adapter: Send {
    /// The next page after `checkpoint` (`None`: from the beginning).
    fn fetch<'a>(
        &'a mut self,
        checkpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page, FetchError>>;

    /// Send this instance's opinion on a record upstream.
    fn report_opinion<'a>(
        &'a mut self,
        _opinion: &'a OpinionOut,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async {
            Err(FetchError::Unsupported(
                "this exchange has no write-back".into(),
            ))
        })
    }

    /// Whether a stored checkpoint is too old to resume from (then the
    /// worker starts a full fetch).
    fn is_stale(&self, _checkpoint: &str) -> bool {
        false
    }

    /// Whether a fetch blocks server-side until there is news (then the
    /// worker loops without sleeping between rounds).
    fn long_polls(&self) -> bool {
        false
    }
}

/// One field of an API's config or credentials (HMA's schema shape).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FieldSpec {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub choices: Option<&'static [&'static str]>,
}

/// What an API is and can do.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ApiInfo {
    pub name: &'static str,
    pub title: &'static str,
    /// Reviewers' verdicts can be sent upstream.
    pub write_back: bool,
    pub needs_credentials: bool,
    #[serde(skip)]
    pub config_fields: &'static [FieldSpec],
    #[serde(skip)]
    pub credential_fields: &'static [FieldSpec],
}

/// Every API, in display order.
pub const APIS: &[ApiInfo] = &[peer::INFO, tat::INFO, te::INFO, file::INFO];

/// The API named `name`.
pub fn api_info(name: &str) -> Option<&'static ApiInfo> {
    APIS.iter().find(|a| a.name == name)
}

/// Validate an API's config (JSON object) and return it canonicalised
/// (defaults filled in, `version` set). The error names the field.
pub fn validate_config(api: &str, config: &serde_json::Value) -> Result<String, String> {
    match api {
        peer::API => canonical::<peer::PeerConfig>(config).and_then(|(s, c)| c.check().map(|_| s)),
        tat::API => canonical::<tat::TatConfig>(config).and_then(|(s, c)| c.check().map(|_| s)),
        te::API => canonical::<te::TeConfig>(config).and_then(|(s, c)| c.check().map(|_| s)),
        file::API => canonical::<file::FileConfig>(config).and_then(|(s, c)| c.check().map(|_| s)),
        other => Err(format!(
            "unknown api {other:?} (expected one of {})",
            APIS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Validate an API's credentials (JSON object); returns the canonical JSON
/// to seal.
pub fn validate_credentials(api: &str, creds: &serde_json::Value) -> Result<String, String> {
    match api {
        peer::API => canonical::<peer::PeerCredentials>(creds).map(|(s, _)| s),
        tat::API => canonical::<tat::TatCredentials>(creds).map(|(s, _)| s),
        te::API => canonical::<te::TeCredentials>(creds).and_then(|(s, c)| c.check().map(|_| s)),
        file::API => Err("file exchanges take no credentials".into()),
        other => Err(format!("unknown api {other:?}")),
    }
}

fn canonical<T: serde::de::DeserializeOwned + Serialize>(
    v: &serde_json::Value,
) -> Result<(String, T), String> {
    let t: T = echotrace_engine::limits::typed_json("", v.clone())?;
    let s = serde_json::to_string(&t).map_err(|e| e.to_string())?;
    Ok((s, t))
}

/// Build the adapter of an exchange. `credentials` is the opened
/// (plaintext) credential JSON, if any.
pub fn build(
    api: &str,
    config: &str,
    credentials: Option<&[u8]>,
    http: Arc<Http>,
) -> Result<Box<dyn Adapter>, FetchError> {
    let parse_config = |what: &str| FetchError::Config(format!("stored {what} config: "));
    let need_creds = || {
        credentials.ok_or_else(|| {
            FetchError::Config(format!(
                "no credentials set for this {api} exchange (set them on the exchange or with \
                 /c/exchanges/api/{api})"
            ))
        })
    };
    let bad_creds = |e: serde_json::Error| FetchError::Config(format!("stored credentials: {e}"));
    Ok(match api {
        peer::API => {
            let c: peer::PeerConfig = serde_json::from_str(config)
                .map_err(|e| FetchError::Config(format!("{}{e}", parse_config(api))))?;
            let k: peer::PeerCredentials =
                serde_json::from_slice(need_creds()?).map_err(bad_creds)?;
            Box::new(peer::PeerAdapter::new(c, k, http))
        }
        tat::API => {
            let c: tat::TatConfig = serde_json::from_str(config)
                .map_err(|e| FetchError::Config(format!("{}{e}", parse_config(api))))?;
            let k: tat::TatCredentials =
                serde_json::from_slice(need_creds()?).map_err(bad_creds)?;
            Box::new(tat::TatAdapter::new(c, k, http))
        }
        te::API => {
            let c: te::TeConfig = serde_json::from_str(config)
                .map_err(|e| FetchError::Config(format!("{}{e}", parse_config(api))))?;
            let k: te::TeCredentials = serde_json::from_slice(need_creds()?).map_err(bad_creds)?;
            Box::new(te::TeAdapter::new(c, k, http))
        }
        file::API => {
            let c: file::FileConfig = serde_json::from_str(config)
                .map_err(|e| FetchError::Config(format!("{}{e}", parse_config(api))))?;
            Box::new(file::FileAdapter::new(c, http))
        }
        other => return Err(FetchError::Config(format!("unknown api {other:?}"))),
    })
}

/// Build one record: the signal normalised as the engine stores it, label
/// sizes checked. `Err` is the reason it is malformed.
pub fn record(
    signal_type: SignalType,
    value: &str,
    upstream_id: String,
    labels: RecordLabels,
    opinions: Vec<Opinion>,
    times: (Option<i64>, Option<i64>),
    deleted: bool,
) -> Result<UpstreamRecord, String> {
    let signal = echotrace_engine::normalize_signal(signal_type, value).map_err(|e| match e {
        echotrace_engine::EngineError::InvalidInput(m) => m,
        other => other.to_string(),
    })?;
    labels.validate()?;
    for o in &opinions {
        if o.owner.len() > echotrace_engine::exchange::MAX_LABEL_BYTES
            || o.tags
                .iter()
                .any(|t| t.len() > echotrace_engine::exchange::MAX_LABEL_BYTES)
        {
            return Err("opinion owner or tag too long".into());
        }
    }
    Ok(UpstreamRecord {
        signal,
        upstream_id,
        labels,
        opinions,
        created_at: times.0,
        updated_at: times.1,
        deleted,
    })
}

/// Keep at most this many malformed-record reasons per page (the rest are
/// only counted).
pub const MAX_REASONS: usize = 20;

impl Page {
    /// Keep a record [`record`] built, or count it malformed under `label`.
    pub(crate) fn keep(&mut self, label: &str, built: Result<UpstreamRecord, String>) {
        match built {
            Ok(r) => self.records.push(r),
            Err(why) => self.skip_malformed(label, &why),
        }
    }

    /// Count a malformed record, keeping its reason if there is room.
    pub(crate) fn skip_malformed(&mut self, id: &str, why: &str) {
        self.malformed_count += 1;
        if self.malformed.len() < MAX_REASONS {
            let why: String = why.chars().take(200).collect();
            let id: String = id.chars().take(64).collect();
            self.malformed.push(format!("{id}: {why}"));
        }
    }
}

/// One response page parsed without I/O (each adapter's `parse_*_page`,
/// public so the fuzz targets reach the wire parsers): its records and
/// skips, the `next` link as given (the caller checks where it points), and
/// the adapter's own cursor.
pub struct Parsed<C> {
    pub page: Page,
    pub next: Option<String>,
    pub cursor: C,
}

/// An upstream id as text: a string as is, a number as written, else empty.
pub(crate) fn id_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A page body parsed as `P`; a body that is not `P` is refused, naming
/// `what` ("hash list page").
pub(crate) fn page_json<P: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<P, FetchError> {
    serde_json::from_slice(body)
        .map_err(|e| FetchError::Malformed(format!("{what} is not the expected JSON: {e}")))
}

/// Each raw record of a page parsed as `R` and handed to `take`. A record
/// that does not parse is counted malformed on `page`, labelled
/// `"<key> <its key>"` (`id 26`, `seq 7`; the key empty when it has none).
pub(crate) fn each_record<R: serde::de::DeserializeOwned>(
    page: &mut Page,
    raws: &[Box<serde_json::value::RawValue>],
    key: &str,
    mut take: impl FnMut(&mut Page, R),
) {
    for raw in raws {
        match serde_json::from_str::<R>(raw.get()) {
            Ok(r) => take(page, r),
            Err(e) => {
                let value = serde_json::from_str::<serde_json::Value>(raw.get())
                    .ok()
                    .and_then(|v| v.get(key).map(id_string))
                    .unwrap_or_default();
                page.skip_malformed(&format!("{key} {value}"), &e.to_string());
            }
        }
    }
}

/// An upstream time: seconds (integer or fractional) or an RFC 3339 string,
/// as milliseconds.
pub(crate) fn time_ms(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64()?;
            secs.is_finite().then_some((secs * 1000.0) as i64)
        }
        serde_json::Value::String(s) => {
            if let Ok(secs) = s.trim().parse::<f64>() {
                return secs.is_finite().then_some((secs * 1000.0) as i64);
            }
            rfc3339_ms(s)
        }
        _ => None,
    }
}

/// Minimal RFC 3339 / ISO 8601 (`2024-01-01T10:00:00[.fff][Z|±hh:mm]`).
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (time, offset_ms) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|i| *i >= 8) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let mut hm = off.get(1..)?.split(':');
        let oh: i64 = hm.next()?.parse().ok()?;
        let om: i64 = hm.next().unwrap_or("0").parse().ok()?;
        if !(0..=23).contains(&oh) || !(0..=59).contains(&om) {
            return None;
        }
        (t, sign * (oh * 3600 + om * 60) * 1000)
    } else {
        (rest, 0)
    };
    let mut t = time.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let secs: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Bounded fields keep the arithmetic below in range whatever an
    // upstream sends (a year of 19 digits, an offset of 10^15 hours, `inf`
    // or `NaN` seconds).
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&hh)
        || !(0..=59).contains(&mm)
        || !(0.0..61.0).contains(&secs)
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = days * 86_400_000 + hh * 3_600_000 + mm * 60_000 + (secs * 1000.0) as i64;
    Some(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        // Out-of-range fields are refused, not overflowed.
        for hostile in [
            "9223372036854775807-01-01T00:00:00Z",
            "2024-01-01T00:00:00+9223372036854775807:00",
            "2024-01-01T00:00:00-00:9223372036854775807",
            "2024-01-01T00:00:inf",
            "2024-01-01T00:00:NaN",
            "2024-01-01T00:00:1e300Z",
            "2024-01-01T-1:00:00Z",
            "10000-01-01T00:00:00Z",
        ] {
            assert_eq!(rfc3339_ms(hostile), None, "{hostile}");
        }
        assert_eq!(
            rfc3339_ms("9999-12-31T23:59:60.5Z"),
            Some(253_402_300_800_500)
        );
        assert_eq!(rfc3339_ms("2024-01-01T00:00:00Z"), Some(1_704_067_200_000));
        assert_eq!(
            rfc3339_ms("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            rfc3339_ms("2024-01-01T00:00:00.500000"),
            Some(1_704_067_200_500)
        );
        assert_eq!(
            time_ms(&serde_json::json!(1704067200.5)),
            Some(1_704_067_200_500)
        );
        assert_eq!(
            time_ms(&serde_json::json!("1704067200")),
            Some(1_704_067_200_000)
        );
        assert_eq!(rfc3339_ms("garbage"), None);
    }
}
