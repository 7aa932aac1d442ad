//! Transparency reports: what was found in a window, what was notified,
//! what came down, how fast, and what came back — as JSON, CSV or one
//! self-contained HTML file ([`crate::html`]).
//!
//! **Population**: matched sightings ("copies") first seen in `[from, to)`.
//! A copy's platform is the operator's platform name for its host, or the
//! host itself; its group is the first label `group:NAME` (prefix
//! configurable) of the bank item it matched (lowest item id), else
//! `(none)`; its content type is the collector's media type.
//!
//! **Time-to-removal** is measured from `first_seen_at` and is known only
//! as an interval `(last live, first removed]` — the last check that found
//! the copy up and the first of the consecutive removed checks that
//! confirmed its removal. Removals confirmed at or after `to` do not count.
//! The Kaplan–Meier curves place each removal at the interval's **right
//! end** (the time the removal was first observed): the curve can only
//! over-state survival, by at most one check interval, and never reports a
//! removal before it was seen. The same estimator on the **left ends**
//! gives a lower bound; both are reported, and the median interval width
//! is given. A copy not (yet) removed is right-censored at the last time it
//! was known to be up, or at `to` if it was known up after `to`.
//!
//! "With notice": a notice covering the copy was sent before its removal
//! was first observed (before censoring for copies still up).

use std::collections::{BTreeMap, HashMap, VecDeque};

use echotrace_store::{CopyRow, Store};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SpreadError};
use crate::survival::{logrank, KaplanMeier, Observation};

/// Sighting ids per page when reading copies.
const PAGE: i64 = 50_000;
/// Pages read ahead (each on its own connection) while one is reduced.
const READ_AHEAD: usize = 2;
/// Points kept per curve in reports (the estimate itself uses every row).
pub const MAX_CURVE_POINTS: usize = 400;
/// Strata shown per breakdown before the rest is pooled as `(other)`.
pub const MAX_STRATA: usize = 8;
// A URL's strata are bits of a u16 in `breakdown` (MAX_STRATA + "(other)").
const _: () = assert!(MAX_STRATA < 16);
const HOUR_MS: f64 = 3_600_000.0;

/// A breakdown of copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stratum {
    Platform,
    Group,
    ContentType,
    Notice,
}

impl Stratum {
    pub fn parse(s: &str) -> Option<Stratum> {
        match s {
            "platform" => Some(Stratum::Platform),
            "group" => Some(Stratum::Group),
            "content_type" => Some(Stratum::ContentType),
            "notice" => Some(Stratum::Notice),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stratum::Platform => "platform",
            Stratum::Group => "group",
            Stratum::ContentType => "content_type",
            Stratum::Notice => "notice",
        }
    }
}

/// What the report is asked for.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub from: i64,
    pub to: i64,
    /// Replace platform and group names by pseudonyms; omit hosts.
    pub redact: bool,
    /// Bank-item labels starting with this name the group (`group:`).
    pub group_prefix: String,
    pub title: String,
    /// When the report is generated (for "as of").
    pub generated_at: i64,
    /// Also a log-rank test between these two strata (by name).
    pub compare: Option<(Stratum, String, String)>,
}

impl ReportOptions {
    pub fn new(from: i64, to: i64) -> ReportOptions {
        ReportOptions {
            from,
            to,
            redact: false,
            group_prefix: "group:".into(),
            title: "Transparency report".into(),
            generated_at: echotrace_store::now_ms(),
            compare: None,
        }
    }
}

/// The checker's settings, as it stored them (`spread_settings.checker`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckerSettings {
    pub schedule: String,
    pub confirm_checks: u32,
    pub confirm_after_secs: u64,
    pub retry_after_secs: u64,
    pub removed_states: Vec<String>,
    pub politeness_ms: u64,
    pub proxy: bool,
    pub removal_rules: usize,
}

/// Removal shares at fixed horizons: `1 − S(t)` of the curve.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RemovedWithin {
    pub h1: f64,
    pub h24: f64,
    pub d7: f64,
}

/// One Kaplan–Meier curve with its summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Curve {
    pub name: String,
    pub n: u64,
    pub removed: u64,
    pub censored: u64,
    pub median_hours: Option<f64>,
    /// 95 % CI of the median (exponential Greenwood band crossing 0.5);
    /// `null` = not reached (∞).
    pub median_ci_hours: [Option<f64>; 2],
    pub removed_within: RemovedWithin,
    /// `[hours, S, lower, upper]` at event times (thinned to ≤ 400).
    pub points: Vec<[f64; 4]>,
    /// Lower-bound curve (removals at the interval's left end): `[hours, S]`.
    pub lower_bound: Vec<[f64; 2]>,
}

/// Counts for one platform, group, content type or notice stratum.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Breakdown {
    pub name: String,
    pub urls_found: u64,
    pub copies: u64,
    /// Removed as of `to` (confirmed, not back).
    pub removed: u64,
    pub removed_pct: f64,
    /// Copies covered by a notice.
    pub noticed: u64,
    pub curve: Curve,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LogRankRow {
    pub between: String,
    pub a: String,
    pub b: String,
    pub statistic: f64,
    pub p_value: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NoticeRow {
    pub platform: String,
    pub sent: u64,
    pub removed: u64,
    pub rejected: u64,
    pub no_response: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Totals {
    /// Distinct URLs of matched copies first seen in the window (TCAP:
    /// URLs found).
    pub urls_found: u64,
    pub copies: u64,
    pub clusters: u64,
    pub hosts: u64,
    pub platforms: u64,
    /// TCAP: alerts sent.
    pub notices_sent: u64,
    /// TCAP: companies alerted.
    pub platforms_notified: u64,
    /// Removed as of `to` (TCAP: % offline).
    pub removed: u64,
    pub removed_pct: f64,
    /// Copies the checker has not enrolled yet.
    pub not_tracked: u64,
    /// Copies whose (first) removal was confirmed before `to`.
    pub confirmed_removals: u64,
    /// … of which came back before `to`.
    pub resurfaced: u64,
    /// resurfaced / confirmed_removals.
    pub resurfacing_rate: f64,
    pub clusters_with_removal: u64,
    /// Clusters with a new copy first seen after one of theirs was removed.
    pub clusters_reuploaded: u64,
    pub reupload_rate: f64,
    /// Liveness checks done in the window.
    pub checks: u64,
    /// Median width of the removal intervals, hours.
    pub median_interval_hours: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub title: String,
    pub generated_at: i64,
    pub from: i64,
    pub to: i64,
    pub redacted: bool,
    pub totals: Totals,
    pub overall: Curve,
    pub by_platform: Vec<Breakdown>,
    pub by_group: Vec<Breakdown>,
    pub by_content_type: Vec<Breakdown>,
    pub by_notice: Vec<Breakdown>,
    pub logrank: Vec<LogRankRow>,
    pub notices: Vec<NoticeRow>,
    pub checks_by_state: BTreeMap<String, u64>,
    /// The top hosts by copies (empty when redacted).
    pub top_hosts: Vec<(String, u64)>,
    pub settings: Option<CheckerSettings>,
    pub methodology: Vec<String>,
}

impl Report {
    /// The breakdown for one stratum.
    pub fn breakdown(&self, s: Stratum) -> &[Breakdown] {
        match s {
            Stratum::Platform => &self.by_platform,
            Stratum::Group => &self.by_group,
            Stratum::ContentType => &self.by_content_type,
            Stratum::Notice => &self.by_notice,
        }
    }
}

/// One copy reduced to what the report needs.
struct Copy {
    /// Dense id of its URL (0..urls): distinct URLs are counted without
    /// hashing again.
    url: u32,
    platform: u32,
    group: u32,
    content_type: u32,
    noticed: bool,
    removed_at_end: bool,
    obs: Observation,
    lower: Observation,
    confirmed_in_window: bool,
    resurfaced: bool,
    interval_hours: Option<f64>,
}

impl Copy {
    fn key(&self, s: Stratum) -> u32 {
        match s {
            Stratum::Platform => self.platform,
            Stratum::Group => self.group,
            Stratum::ContentType => self.content_type,
            Stratum::Notice => u32::from(self.noticed),
        }
    }
}

#[derive(Default)]
struct Interner(HashMap<String, u32>, Vec<String>);

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.0.get(s) {
            return *i;
        }
        let i = self.1.len() as u32;
        self.0.insert(s.to_string(), i);
        self.1.push(s.to_string());
        i
    }
}

fn hours(ms: i64) -> f64 {
    (ms.max(0) as f64) / HOUR_MS
}

fn url_key(s: &str) -> u64 {
    // The URL's SHA-256 is already a hash: its first 16 hex digits suffice.
    u64::from_str_radix(s.get(..16).unwrap_or("0"), 16).unwrap_or(0)
}

/// One stored copy as (right-end observation, left-end observation,
/// removal confirmed in the window, interval width in hours).
fn observe(c: &CopyRow, to: i64) -> (Observation, Observation, bool, Option<f64>) {
    let origin = c.first_seen_at;
    if let Some(r) = &c.removal {
        if r.confirmed_at < to {
            let upper = hours(r.first_removed_at - origin);
            let lower = hours(r.last_live_at - origin).min(upper);
            return (
                Observation {
                    time: upper,
                    event: true,
                },
                Observation {
                    time: lower,
                    event: true,
                },
                true,
                Some(upper - lower),
            );
        }
    }
    let known_up = match &c.removal {
        Some(r) => r.last_live_at,
        None => c
            .live_last_live_at
            .unwrap_or(c.last_seen_at)
            .max(c.last_seen_at),
    };
    let o = Observation {
        time: hours(known_up.min(to) - origin),
        event: false,
    };
    (o, o, false, None)
}

fn group_of(labels: &[String], prefix: &str) -> Option<String> {
    let mut groups: Vec<&str> = labels
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort_unstable();
    groups.first().map(|g| g.to_string())
}

/// Page reads in flight; dropped (the report abandoned) they are aborted.
struct ReadAhead(VecDeque<tokio::task::JoinHandle<echotrace_store::Result<Vec<CopyRow>>>>);

impl Drop for ReadAhead {
    fn drop(&mut self) {
        for fetch in &self.0 {
            fetch.abort();
        }
    }
}

/// Copies of the window, with the names their keys refer to.
#[derive(Default)]
struct Population {
    copies: Vec<Copy>,
    platforms: Interner,
    groups: Interner,
    types: Interner,
    hosts: HashMap<String, u64>,
    /// URL key → dense id ([`Copy::url`]).
    urls: HashMap<u64, u32>,
    /// content id → (earliest confirmed removal, first-seen times).
    clusters: HashMap<i64, (Option<i64>, Vec<i64>)>,
    not_tracked: u64,
}

impl Population {
    fn names(&self, s: Stratum) -> Vec<String> {
        match s {
            Stratum::Platform => self.platforms.1.clone(),
            Stratum::Group => self.groups.1.clone(),
            Stratum::ContentType => self.types.1.clone(),
            Stratum::Notice => vec!["without notice".into(), "with notice".into()],
        }
    }
}

async fn load(store: &Store, opts: &ReportOptions) -> Result<Population> {
    let labels: HashMap<i64, Vec<String>> = store
        .matched_item_labels()
        .await?
        .into_iter()
        .map(|l| {
            (
                l.content_id,
                serde_json::from_str::<Vec<String>>(&l.labels).unwrap_or_default(),
            )
        })
        .collect();
    let mut p = Population::default();
    let Some((first_id, last_id)) = store.copy_id_range(opts.from, opts.to).await? else {
        return Ok(p);
    };
    // Pages are spans of PAGE sighting ids, read READ_AHEAD at a time on
    // their own connections while the previous one is reduced here.
    let mut pages = ReadAhead(VecDeque::new());
    let mut next = first_id.saturating_sub(1);
    let mut group_of_item: HashMap<Option<i64>, u32> = HashMap::new();
    loop {
        while pages.0.len() < READ_AHEAD && next < last_id {
            let upper = next.saturating_add(PAGE).min(last_id);
            let (store, from, to, after) = (store.clone(), opts.from, opts.to, next);
            pages.0.push_back(tokio::spawn(async move {
                store.copy_rows_page(from, to, after, upper, PAGE).await
            }));
            next = upper;
        }
        let Some(fetch) = pages.0.pop_front() else {
            break;
        };
        let page = fetch
            .await
            .map_err(|e| SpreadError::Internal(format!("report page: {e}")))??;
        for c in &page {
            let platform = if c.platform.is_empty() {
                &c.host
            } else {
                &c.platform
            };
            let group = match group_of_item.get(&c.content_id) {
                Some(&g) => g,
                None => {
                    let name = c
                        .content_id
                        .and_then(|id| labels.get(&id))
                        .and_then(|l| group_of(l, &opts.group_prefix))
                        .unwrap_or_else(|| "(none)".to_string());
                    let g = p.groups.id(&name);
                    group_of_item.insert(c.content_id, g);
                    g
                }
            };
            let content_type = if c.media_type.is_empty() {
                "(unknown)"
            } else {
                &c.media_type
            };
            let (obs, lower, confirmed, interval) = observe(c, opts.to);
            let observed_until = c.first_seen_at + (obs.time * HOUR_MS) as i64;
            let noticed = c
                .first_notice_at
                .is_some_and(|n| n < opts.to && n <= observed_until);
            if c.status.is_none() {
                p.not_tracked += 1;
            }
            match p.hosts.get_mut(&c.host) {
                Some(n) => *n += 1,
                None => {
                    p.hosts.insert(c.host.clone(), 1);
                }
            }
            if let Some(id) = c.content_id {
                let e = p.clusters.entry(id).or_insert((None, Vec::new()));
                if confirmed {
                    let at = c.removal.as_ref().map(|r| r.confirmed_at);
                    e.0 = match (e.0, at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                e.1.push(c.first_seen_at);
            }
            let copy = Copy {
                url: {
                    let next = p.urls.len() as u32;
                    *p.urls.entry(url_key(&c.url_prefix)).or_insert(next)
                },
                platform: p.platforms.id(platform),
                group,
                content_type: p.types.id(content_type),
                noticed,
                removed_at_end: c.removed_at_end.is_some(),
                obs,
                lower,
                confirmed_in_window: confirmed,
                resurfaced: confirmed
                    && c.removal
                        .as_ref()
                        .and_then(|r| r.resurfaced_at)
                        .is_some_and(|t| t < opts.to),
                interval_hours: interval,
            };
            p.copies.push(copy);
        }
    }
    Ok(p)
}

/// Build the report.
pub async fn build(store: &Store, opts: &ReportOptions) -> Result<Report> {
    if opts.to <= opts.from {
        return Err(SpreadError::InvalidInput(
            "\"to\" must be after \"from\"".into(),
        ));
    }
    let pop = load(store, opts).await?;
    let copies = &pop.copies;
    let (notices_sent, platforms_notified) = store.notice_counts(opts.from, opts.to).await?;
    let mut notice_rows: BTreeMap<String, NoticeRow> = BTreeMap::new();
    for (platform, response, n) in store.notice_responses(opts.from, opts.to).await? {
        let row = notice_rows
            .entry(platform.clone())
            .or_insert_with(|| NoticeRow {
                platform,
                sent: 0,
                removed: 0,
                rejected: 0,
                no_response: 0,
            });
        let n = n.max(0) as u64;
        row.sent += n;
        match response.as_str() {
            "removed" => row.removed += n,
            "rejected" => row.rejected += n,
            _ => row.no_response += n,
        }
    }
    let checks_by_state: BTreeMap<String, u64> = store
        .check_counts(opts.from, opts.to)
        .await?
        .into_iter()
        .map(|(s, n)| (s, n.max(0) as u64))
        .collect();
    let settings = match store.get_spread_setting("checker").await? {
        Some((json, _)) => serde_json::from_str::<CheckerSettings>(&json).ok(),
        None => None,
    };

    // ----- totals ------------------------------------------------------
    let removed = copies.iter().filter(|c| c.removed_at_end).count() as u64;
    let confirmed = copies.iter().filter(|c| c.confirmed_in_window).count() as u64;
    let resurfaced = copies.iter().filter(|c| c.resurfaced).count() as u64;
    let clusters_with_removal = pop.clusters.values().filter(|c| c.0.is_some()).count() as u64;
    let clusters_reuploaded = pop
        .clusters
        .values()
        .filter(|(t, seen)| t.is_some_and(|t| seen.iter().any(|s| *s > t)))
        .count() as u64;
    let mut widths: Vec<f64> = copies.iter().filter_map(|c| c.interval_hours).collect();
    widths.sort_unstable_by(f64::total_cmp);
    let totals = Totals {
        urls_found: pop.urls.len() as u64,
        copies: copies.len() as u64,
        clusters: pop.clusters.len() as u64,
        hosts: pop.hosts.len() as u64,
        platforms: pop.platforms.1.len() as u64,
        notices_sent: notices_sent.max(0) as u64,
        platforms_notified: platforms_notified.max(0) as u64,
        removed,
        removed_pct: pct(removed, copies.len() as u64),
        not_tracked: pop.not_tracked,
        confirmed_removals: confirmed,
        resurfaced,
        resurfacing_rate: ratio(resurfaced, confirmed),
        clusters_with_removal,
        clusters_reuploaded,
        reupload_rate: ratio(clusters_reuploaded, clusters_with_removal),
        checks: checks_by_state.values().sum(),
        median_interval_hours: median_sorted(&widths),
    };

    // ----- curves -------------------------------------------------------
    let overall = {
        let obs: Vec<Observation> = copies.iter().map(|c| c.obs).collect();
        let lower: Vec<Observation> = copies.iter().map(|c| c.lower).collect();
        curve("all copies", &obs, &lower)?
    };
    let by_platform = breakdown(&pop, Stratum::Platform)?;
    let by_group = breakdown(&pop, Stratum::Group)?;
    let by_content_type = breakdown(&pop, Stratum::ContentType)?;
    let by_notice = breakdown(&pop, Stratum::Notice)?;
    let mut tests = Vec::new();
    for (stratum, rows) in [
        (Stratum::Notice, &by_notice),
        (Stratum::Platform, &by_platform),
        (Stratum::Group, &by_group),
    ] {
        if rows.len() >= 2 && rows[0].curve.removed + rows[1].curve.removed > 0 {
            if let Some(row) = logrank_between(&pop, stratum, &rows[0].name, &rows[1].name)? {
                tests.push(row);
            }
        }
    }
    if let Some((stratum, a, b)) = &opts.compare {
        let row = logrank_between(&pop, *stratum, a, b)?.ok_or_else(|| {
            SpreadError::InvalidInput(format!(
                "no copies in {} {a:?} or {b:?} in this window",
                stratum.as_str()
            ))
        })?;
        tests.retain(|l| !(l.between == row.between && l.a == row.a && l.b == row.b));
        tests.push(row);
    }
    let mut top_hosts: Vec<(String, u64)> = pop.hosts.clone().into_iter().collect();
    top_hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top_hosts.truncate(10);

    let mut report = Report {
        title: opts.title.clone(),
        generated_at: opts.generated_at,
        from: opts.from,
        to: opts.to,
        redacted: opts.redact,
        totals,
        overall,
        by_platform,
        by_group,
        by_content_type,
        by_notice,
        logrank: tests,
        notices: notice_rows.into_values().collect(),
        checks_by_state,
        top_hosts,
        settings,
        methodology: Vec::new(),
    };
    if opts.redact {
        redact(&mut report);
    }
    report.methodology = methodology(&report, opts);
    Ok(report)
}

fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64) * 100.0 / (of as f64)
    }
}

fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64) / (of as f64)
    }
}

fn median_sorted(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// A curve from right-end observations and their left-end counterparts.
fn curve(name: &str, obs: &[Observation], lower: &[Observation]) -> Result<Curve> {
    if obs.is_empty() {
        return Ok(Curve {
            name: name.to_string(),
            n: 0,
            removed: 0,
            censored: 0,
            median_hours: None,
            median_ci_hours: [None, None],
            removed_within: RemovedWithin {
                h1: 0.0,
                h24: 0.0,
                d7: 0.0,
            },
            points: Vec::new(),
            lower_bound: Vec::new(),
        });
    }
    let km = KaplanMeier::fit(obs).map_err(|e| SpreadError::Internal(e.to_string()))?;
    let lo = KaplanMeier::fit(lower).map_err(|e| SpreadError::Internal(e.to_string()))?;
    let m = km.median();
    let points = thin(&km.times, &km.events)
        .iter()
        .map(|&i| [km.times[i], km.survival[i], km.ci_lower[i], km.ci_upper[i]])
        .collect();
    let lower_bound = thin(&lo.times, &lo.events)
        .iter()
        .map(|&i| [lo.times[i], lo.survival[i]])
        .collect();
    Ok(Curve {
        name: name.to_string(),
        n: km.n(),
        removed: km.total_events(),
        censored: km.total_censored(),
        median_hours: m.median,
        median_ci_hours: [m.lower, m.upper],
        removed_within: RemovedWithin {
            h1: 1.0 - km.survival_at(1.0),
            h24: 1.0 - km.survival_at(24.0),
            d7: 1.0 - km.survival_at(168.0),
        },
        points,
        lower_bound,
    })
}

/// Indices of the timeline kept for drawing: the origin, every event
/// time (thinned evenly past [`MAX_CURVE_POINTS`]) and the last time.
fn thin(times: &[f64], events: &[u64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..times.len())
        .filter(|&i| i == 0 || events[i] > 0 || i + 1 == times.len())
        .collect();
    if idx.len() > MAX_CURVE_POINTS {
        let step = idx.len() as f64 / MAX_CURVE_POINTS as f64;
        let last = idx[idx.len() - 1];
        idx = (0..MAX_CURVE_POINTS)
            .map(|k| idx[((k as f64) * step) as usize])
            .collect();
        if idx.last() != Some(&last) {
            idx.push(last);
        }
    }
    idx
}

/// Per-stratum counts and curves; strata past [`MAX_STRATA`] pooled.
fn breakdown(pop: &Population, s: Stratum) -> Result<Vec<Breakdown>> {
    let names = pop.names(s);
    let mut per_key = vec![0u64; names.len()];
    for c in &pop.copies {
        if let Some(n) = per_key.get_mut(c.key(s) as usize) {
            *n += 1;
        }
    }
    let mut counts: Vec<(u32, u64)> = per_key
        .into_iter()
        .enumerate()
        .map(|(k, n)| (k as u32, n))
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(names[a.0 as usize].cmp(&names[b.0 as usize]))
    });
    let shown: Vec<u32> = counts.iter().take(MAX_STRATA).map(|(k, _)| *k).collect();
    let mut names_shown: Vec<String> = shown.iter().map(|&k| names[k as usize].clone()).collect();
    if counts.len() > MAX_STRATA {
        names_shown.push("(other)".to_string());
    }
    // Key → its stratum's slot (shown ones in order, the rest pooled), so
    // ONE pass over the copies fills every stratum, in copy order.
    let mut slot = vec![MAX_STRATA; names.len()];
    for (i, &k) in shown.iter().enumerate() {
        slot[k as usize] = i;
    }
    #[derive(Default)]
    struct Acc {
        urls: u64,
        removed: u64,
        noticed: u64,
        obs: Vec<Observation>,
        lower: Vec<Observation>,
    }
    let mut acc: Vec<Acc> = names_shown.iter().map(|_| Acc::default()).collect();
    // Distinct URLs per stratum: bit i of a URL's mask is set once it was
    // counted in stratum i (at most MAX_STRATA + 1 strata).
    let mut seen = vec![0u16; pop.urls.len()];
    for c in &pop.copies {
        let i = slot.get(c.key(s) as usize).copied().unwrap_or(MAX_STRATA);
        let Some(a) = acc.get_mut(i) else {
            continue;
        };
        if let Some(mask) = seen.get_mut(c.url as usize) {
            if *mask & (1 << i) == 0 {
                *mask |= 1 << i;
                a.urls += 1;
            }
        }
        a.removed += u64::from(c.removed_at_end);
        a.noticed += u64::from(c.noticed);
        a.obs.push(c.obs);
        a.lower.push(c.lower);
    }
    let mut out = Vec::with_capacity(acc.len());
    for (name, a) in names_shown.into_iter().zip(acc) {
        let copies = a.obs.len() as u64;
        out.push(Breakdown {
            urls_found: a.urls,
            copies,
            removed: a.removed,
            removed_pct: pct(a.removed, copies),
            noticed: a.noticed,
            curve: curve(&name, &a.obs, &a.lower)?,
            name,
        });
    }
    Ok(out)
}

/// Log-rank test between the copies of two named strata (None when one is
/// empty).
fn logrank_between(pop: &Population, s: Stratum, a: &str, b: &str) -> Result<Option<LogRankRow>> {
    let names = pop.names(s);
    let select = |name: &str| -> Vec<Observation> {
        match names.iter().position(|n| n == name) {
            Some(k) => pop
                .copies
                .iter()
                .filter(|c| c.key(s) == k as u32)
                .map(|c| c.obs)
                .collect(),
            None => Vec::new(),
        }
    };
    let (oa, ob) = (select(a), select(b));
    if oa.is_empty() || ob.is_empty() {
        return Ok(None);
    }
    let r = logrank(&oa, &ob).map_err(|e| SpreadError::Internal(e.to_string()))?;
    Ok(Some(LogRankRow {
        between: s.as_str().to_string(),
        a: a.to_string(),
        b: b.to_string(),
        statistic: r.statistic,
        p_value: r.p_value,
    }))
}

/// Spreadsheet-style letters: 0 → A, 25 → Z, 26 → AA.
fn letters(i: usize) -> String {
    let mut s = String::new();
    let mut n = i;
    loop {
        s.insert(0, (b'A' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s
}

/// Replace platform and group names by pseudonyms (by size: Platform A is
/// the largest), pool notices, drop hosts.
fn redact(r: &mut Report) {
    let mut platform_names: HashMap<String, String> = HashMap::new();
    for (i, b) in r.by_platform.iter_mut().enumerate() {
        if b.name != "(other)" {
            let alias = format!("Platform {}", letters(i));
            platform_names.insert(b.name.clone(), alias.clone());
            b.name = alias.clone();
            b.curve.name = alias;
        }
    }
    let mut group_names: HashMap<String, String> = HashMap::new();
    for (i, b) in r.by_group.iter_mut().enumerate() {
        if b.name != "(other)" && b.name != "(none)" {
            let alias = format!("Group {}", i + 1);
            group_names.insert(b.name.clone(), alias.clone());
            b.name = alias.clone();
            b.curve.name = alias;
        }
    }
    for row in &mut r.logrank {
        let map = match row.between.as_str() {
            "platform" => &platform_names,
            "group" => &group_names,
            _ => continue,
        };
        for side in [&mut row.a, &mut row.b] {
            if let Some(alias) = map.get(side.as_str()) {
                *side = alias.clone();
            }
        }
    }
    let mut all = NoticeRow {
        platform: "(all platforms)".into(),
        sent: 0,
        removed: 0,
        rejected: 0,
        no_response: 0,
    };
    for n in r.notices.drain(..) {
        all.sent += n.sent;
        all.removed += n.removed;
        all.rejected += n.rejected;
        all.no_response += n.no_response;
    }
    if all.sent > 0 {
        r.notices.push(all);
    }
    r.top_hosts.clear();
}

/// Hours as the report prints them.
pub fn fmt_hours(h: Option<f64>) -> String {
    match h {
        None => "not reached".to_string(),
        Some(h) if h < 1.0 => format!("{:.0} min", h * 60.0),
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} days", h / 24.0),
    }
}

/// The methodology section, generated from the settings and the data.
fn methodology(r: &Report, opts: &ReportOptions) -> Vec<String> {
    let mut m = Vec::new();
    m.push(format!(
        "Population: {} matched copies ({} distinct URLs) first seen from {} to {} \
         (UTC; the end is excluded). A copy is one item seen at one URL that matched a bank \
         item; the copies of one bank item form its variant cluster ({} clusters).",
        r.totals.copies,
        r.totals.urls_found,
        crate::time::fmt_ts(opts.from),
        crate::time::fmt_ts(opts.to),
        r.totals.clusters
    ));
    match &r.settings {
        Some(s) => m.push(format!(
            "Liveness: each copy's URL was re-checked on the schedule \"{}\" (offsets from \
             first seen; a copy that came back restarts it), re-checking {} s after a first \
             removed check and {} s after an inconclusive one. The verdict comes from \
             re-hashing what the URL served, not from the HTTP status: the same bytes, or bytes \
             still matching the bank item within its thresholds, are live; {} removal rules name \
             the hosts' \"file removed\", suspension and geo-block pages. A copy counts as \
             removed after {} consecutive checks with one of: {}. Requests to one host were \
             spaced by at least {} ms{}.",
            s.schedule,
            s.confirm_after_secs,
            s.retry_after_secs,
            s.removal_rules,
            s.confirm_checks,
            s.removed_states.join(", "),
            s.politeness_ms,
            if s.proxy {
                "; checks went through a SOCKS proxy (Tor) where configured"
            } else {
                ""
            }
        )),
        None if r.totals.checks == 0 && r.totals.confirmed_removals == 0 => m.push(
            "Liveness: no checker settings are recorded in this database (no liveness check \
             has run), so no copy has a confirmed removal."
                .to_string(),
        ),
        // Checks without the checker's settings (e.g. `serve --demo`'s
        // seeded history): the counts stand, the settings are unknown.
        None => m.push(format!(
            "Liveness: {} checks in the window and {} confirmed removals are recorded, but \
             not the settings of the checker that made them (`echotrace liveness run` \
             records its own), so its schedule and removal rules are not stated here.",
            r.totals.checks, r.totals.confirmed_removals
        )),
    }
    m.push(format!(
        "Time to removal is measured from when a copy was first seen and is known only as \
         the interval (last check that found it up, first of the consecutive removed checks]; \
         the median interval is {}. The Kaplan–Meier estimate places each removal at the \
         interval's right end (when it was first observed), so it can only over-state how long \
         copies stayed up, by at most one check interval; the lower-bound curve places removals \
         at the left end. Removals confirmed after the window's end do not count.",
        fmt_hours(r.totals.median_interval_hours)
    ));
    m.push(format!(
        "Censoring: {} of {} copies had no confirmed removal by the window's end and are \
         right-censored at the last time they were known to be up ({} not yet checked at all). \
         Medians come with 95 % confidence intervals from the exponential Greenwood \
         (log-log) band, as in lifelines; \"not reached\" means the curve never fell to one \
         half. Shares removed within 1 h, 24 h and 7 days are 1 − S(t) of the same curve. \
         The log-rank test compares the two largest strata of a breakdown.",
        r.overall.censored, r.overall.n, r.totals.not_tracked
    ));
    m.push(format!(
        "\"% removed\" counts copies whose confirmed removal was in force at the window's end \
         (a copy that came back is not removed). The resurfacing rate is the share of copies \
         removed in the window whose URL served the item again; a cluster is re-uploaded when a \
         new copy of its item was first seen after one of its copies was removed. Platforms \
         are the operator's host→platform table, or the host. Groups are the \"{}\" labels of \
         the matched bank item. \"With notice\" means a notice covering the copy was sent \
         before its removal was observed.",
        opts.group_prefix
    ));
    if r.redacted {
        m.push(
            "Redacted: platform and group names are replaced by pseudonyms ordered by size, \
             notices are pooled, and hosts are omitted."
                .to_string(),
        );
    }
    m
}

/// CSV rows being collected: `section,name,metric,value`.
struct CsvRows(String);

impl CsvRows {
    fn row(&mut self, section: &str, name: &str, metric: &str, value: String) {
        self.0.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(section),
            csv_field(name),
            csv_field(metric),
            csv_field(&value)
        ));
    }

    fn curve(&mut self, section: &str, c: &Curve) {
        self.row(section, &c.name, "n", c.n.to_string());
        self.row(section, &c.name, "removed_observed", c.removed.to_string());
        self.row(section, &c.name, "censored", c.censored.to_string());
        self.row(section, &c.name, "median_hours", opt(c.median_hours));
        self.row(
            section,
            &c.name,
            "median_ci_lower_hours",
            opt(c.median_ci_hours[0]),
        );
        self.row(
            section,
            &c.name,
            "median_ci_upper_hours",
            opt(c.median_ci_hours[1]),
        );
        self.row(
            section,
            &c.name,
            "removed_within_1h",
            num(c.removed_within.h1),
        );
        self.row(
            section,
            &c.name,
            "removed_within_24h",
            num(c.removed_within.h24),
        );
        self.row(
            section,
            &c.name,
            "removed_within_7d",
            num(c.removed_within.d7),
        );
    }
}

/// The report as CSV: `section,name,metric,value` rows.
pub fn to_csv(r: &Report) -> String {
    let mut out = CsvRows(String::from("section,name,metric,value\n"));
    let t = &r.totals;
    out.row("window", "", "from", crate::time::fmt_ts(r.from));
    out.row("window", "", "to", crate::time::fmt_ts(r.to));
    for (metric, v) in [
        ("urls_found", t.urls_found as f64),
        ("copies", t.copies as f64),
        ("clusters", t.clusters as f64),
        ("hosts", t.hosts as f64),
        ("platforms", t.platforms as f64),
        ("notices_sent", t.notices_sent as f64),
        ("platforms_notified", t.platforms_notified as f64),
        ("removed", t.removed as f64),
        ("removed_pct", t.removed_pct),
        ("not_tracked", t.not_tracked as f64),
        ("confirmed_removals", t.confirmed_removals as f64),
        ("resurfaced", t.resurfaced as f64),
        ("resurfacing_rate", t.resurfacing_rate),
        ("clusters_with_removal", t.clusters_with_removal as f64),
        ("clusters_reuploaded", t.clusters_reuploaded as f64),
        ("reupload_rate", t.reupload_rate),
        ("checks", t.checks as f64),
    ] {
        out.row("totals", "", metric, num(v));
    }
    out.curve("survival", &r.overall);
    for (section, rows) in [
        ("by_platform", &r.by_platform),
        ("by_group", &r.by_group),
        ("by_content_type", &r.by_content_type),
        ("by_notice", &r.by_notice),
    ] {
        for b in rows.iter() {
            out.row(section, &b.name, "urls_found", b.urls_found.to_string());
            out.row(section, &b.name, "copies", b.copies.to_string());
            out.row(section, &b.name, "removed", b.removed.to_string());
            out.row(section, &b.name, "removed_pct", num(b.removed_pct));
            out.row(section, &b.name, "noticed", b.noticed.to_string());
            out.curve(section, &b.curve);
        }
    }
    for l in &r.logrank {
        let name = format!("{} vs {}", l.a, l.b);
        let section = format!("logrank_{}", l.between);
        out.row(&section, &name, "statistic", num(l.statistic));
        out.row(&section, &name, "p_value", num(l.p_value));
    }
    for n in &r.notices {
        out.row("notices", &n.platform, "sent", n.sent.to_string());
        out.row("notices", &n.platform, "removed", n.removed.to_string());
        out.row("notices", &n.platform, "rejected", n.rejected.to_string());
        out.row(
            "notices",
            &n.platform,
            "no_response",
            n.no_response.to_string(),
        );
    }
    for (state, n) in &r.checks_by_state {
        out.row("checks", state, "count", n.to_string());
    }
    for (h, n) in &r.top_hosts {
        out.row("top_hosts", h, "copies", n.to_string());
    }
    for (i, p) in r.methodology.iter().enumerate() {
        out.row("methodology", &(i + 1).to_string(), "text", p.clone());
    }
    out.0
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `@` (or a `-` that
/// is not a number) gets a `'` so spreadsheets never run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_safe() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("-3.5"), "-3.5");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn thinning_keeps_ends() {
        let times: Vec<f64> = (0..2000).map(f64::from).collect();
        let events = vec![1u64; 2000];
        let idx = thin(&times, &events);
        assert!(idx.len() <= MAX_CURVE_POINTS + 1);
        assert_eq!(idx[0], 0);
        assert_eq!(*idx.last().unwrap(), 1999);
    }

    #[test]
    fn pseudonyms() {
        assert_eq!(letters(0), "A");
        assert_eq!(letters(25), "Z");
        assert_eq!(letters(26), "AA");
    }
}
