//! Console pages of spread tracking: the "Spread" dashboard (survival
//! curves by platform, matched sightings per day, top hosts, the
//! resurfacing list, the largest clusters, a report download) and one page
//! per variant cluster (the bank item, its copies on a timeline with the
//! state of each URL, notices, and a form to record a new notice).
//!
//! Same rules as every console page: server-rendered, no scripts needed,
//! inline SVG only, URLs of copies shown as text (never links), the bank
//! item's media (when retained) blurred and greyscale until revealed.

use std::collections::BTreeMap;

use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use echotrace_engine::console::{self as cq, MediaOwner};
use echotrace_engine::{EngineError, Operation};
use echotrace_spread::chart::{self, Lane, Series};
use echotrace_spread::cluster::{self, ClusterView};
use echotrace_spread::notice::{self, NoticeRequest};
use echotrace_spread::report::{self, fmt_hours, Report, ReportOptions};
use echotrace_spread::SpreadError;
use maud::{html, Markup};
use serde::Deserialize;

use super::session::{error_response, see_other, Authed, PostForm, UiPath, UiQuery};
use super::views::{self, csrf_field, fmt_ts, Evidence, Flash, Viewer};
use super::{actor, evidence, page, Ctx};
use crate::auth::op;

const DAY_MS: i64 = 86_400_000;

fn spread_error(viewer: &Viewer, e: SpreadError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match &e {
        SpreadError::Internal(m) => {
            eprintln!("echotrace console: {m}");
            "Internal error; see the server log.".to_string()
        }
        other => other.to_string(),
    };
    error_response(Some(viewer), status, &message)
}

#[derive(Deserialize, Default)]
pub(super) struct DaysQuery {
    days: Option<i64>,
    msg: Option<String>,
}

fn days(q: &DaysQuery) -> i64 {
    q.days.unwrap_or(90)
}

// ----- the dashboard -------------------------------------------------------------

struct Dashboard {
    days: i64,
    report: Report,
    per_day: Vec<(String, i64)>,
    top_hosts: Vec<(String, i64, i64)>,
    resurfaced: Vec<(i64, String, String, i64, Option<i64>)>,
    clusters: Vec<cluster::ClusterListItem>,
}

pub(super) async fn dashboard(st: Ctx, auth: Authed, UiQuery(q): UiQuery<DaysQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let days = days(&q);
    let now = echotrace_store::now_ms();
    let built: Result<Dashboard, SpreadError> = async {
        let report =
            report::build(&st.store, &ReportOptions::new(now - days * DAY_MS, now + 1)).await?;
        let since = (now / DAY_MS - 29) * DAY_MS;
        let counts: BTreeMap<i64, i64> = st
            .store
            .sightings_per_day(since)
            .await?
            .into_iter()
            .collect();
        let per_day = (0..30)
            .map(|i| {
                let day = since + i * DAY_MS;
                (
                    echotrace_spread::time::fmt_day(day),
                    counts.get(&day).copied().unwrap_or(0),
                )
            })
            .collect();
        let top_hosts = st.store.top_hosts(10).await?;
        let mut resurfaced = Vec::new();
        for r in st.store.resurfaced_removals(20).await? {
            let s = st.store.get_sighting(r.sighting_id).await?;
            let content = st
                .store
                .sighting_matches(r.sighting_id)
                .await?
                .first()
                .map(|m| m.content_id);
            if let Some(s) = s {
                resurfaced.push((
                    r.sighting_id,
                    s.url,
                    s.host,
                    r.resurfaced_at.unwrap_or(r.confirmed_at),
                    content,
                ));
            }
        }
        let clusters = cluster::list(&st.store, 20).await?;
        Ok(Dashboard {
            days,
            report,
            per_day,
            top_hosts,
            resurfaced,
            clusters,
        })
    }
    .await;
    match built {
        Ok(d) => page(dashboard_view(&auth.viewer, &d)),
        Err(e) => spread_error(&auth.viewer, e),
    }
}

fn curve_series(c: &report::Curve) -> Series<'_> {
    Series {
        name: &c.name,
        points: c.points.iter().map(|p| [p[0], p[1]]).collect(),
        band: Vec::new(),
        lower_bound: Vec::new(),
    }
}

fn dashboard_view(viewer: &Viewer, d: &Dashboard) -> Markup {
    let r = &d.report;
    let t = &r.totals;
    let o = &r.overall;
    let body = html! {
        h1 { "Spread" }
        form class="panel row" method="get" action="/ui/spread" {
            label for="days" { "Copies first seen in the last" }
            select id="days" name="days" {
                @for n in [7i64, 30, 90, 365] {
                    @if n == d.days { option value=(n) selected { (n) " days" } }
                    @else { option value=(n) { (n) " days" } }
                }
            }
            button type="submit" { "Show" }
            a class="button secondary" href=(format!("/ui/spread/report.html?days={}", d.days)) { "Download the HTML report" }
        }
        div class="grid" {
            div class="panel" { h2 { "Copies" } p class="stat" data-stat="copies" { (t.copies) }
                p class="muted" { (t.urls_found) " URLs on " (t.hosts) " hosts, " (t.clusters) " clusters" } }
            div class="panel" { h2 { "Removed" } p class="stat" data-stat="removed-pct" { (format!("{:.0}%", t.removed_pct)) }
                p class="muted" { (t.removed) " copies removed now; " (t.not_tracked) " not checked yet" } }
            div class="panel" { h2 { "Median time up" } p class="stat" data-stat="median" { (fmt_hours(o.median_hours)) }
                p class="muted" { "95 % CI " (fmt_hours(o.median_ci_hours[0])) " – " (fmt_hours(o.median_ci_hours[1])) "; "
                    (format!("{:.0}%", o.removed_within.h24 * 100.0)) " removed within 24 h" } }
            div class="panel" { h2 { "Resurfacing" } p class="stat" data-stat="resurfacing" { (format!("{:.0}%", t.resurfacing_rate * 100.0)) }
                p class="muted" { (t.resurfaced) " of " (t.confirmed_removals) " removed copies came back; "
                    (t.clusters_reuploaded) " clusters re-uploaded" } }
            div class="panel" { h2 { "Notices" } p class="stat" data-stat="notices" { (t.notices_sent) }
                p class="muted" { "to " (t.platforms_notified) " platforms" } }
        }
        div class="panel chart" {
            h2 { "How long copies stayed up, by platform" }
            @if r.by_platform.is_empty() { p class="muted" { "No matched copies in this window." } }
            @else {
                (chart::survival_chart("Copies still up, by platform", &r.by_platform.iter().map(|b| curve_series(&b.curve)).collect::<Vec<_>>()))
                div class="wide-table" { table {
                    thead { tr { th { "Platform" } th class="num" { "Copies" } th class="num" { "Removed" }
                        th class="num" { "Median up" } th { "95 % CI" } th class="num" { "Censored" } } }
                    tbody { @for b in &r.by_platform { tr {
                        td { (b.name) } td class="num" { (b.copies) } td class="num" { (format!("{:.0}%", b.removed_pct)) }
                        td class="num" { (fmt_hours(b.curve.median_hours)) }
                        td { (fmt_hours(b.curve.median_ci_hours[0])) " – " (fmt_hours(b.curve.median_ci_hours[1])) }
                        td class="num" { (b.curve.censored) }
                    } } }
                } }
            }
        }
        div class="panel chart" {
            h2 { "Matched sightings per day (last 30 days, UTC)" }
            (chart::bars("Matched sightings per day", &d.per_day))
        }
        div class="grid" {
            div class="panel" {
                h2 { "Top hosts" }
                @if d.top_hosts.is_empty() { p class="muted" { "No matched sightings yet." } }
                @else { table { thead { tr { th { "Host" } th class="num" { "Copies" } th class="num" { "Removed" } } }
                    tbody { @for (h, n, rm) in &d.top_hosts { tr { td { code { (h) } } td class="num" { (n) } td class="num" { (rm) } } } } } }
            }
            div class="panel" {
                h2 { "Resurfaced (back after removal)" }
                @if d.resurfaced.is_empty() { p class="muted" { "No copy has come back after a confirmed removal." } }
                @else { table { thead { tr { th { "Copy" } th { "Back since" } th { "Cluster" } } }
                    tbody { @for (id, url, host, at, content) in &d.resurfaced { tr {
                        td { code class="hash" title=(url) { (host) " · #" (id) } }
                        td { (fmt_ts(*at)) }
                        td { @if let Some(c) = content { a href=(format!("/ui/clusters/{c}")) { "item #" (c) } } }
                    } } } } }
            }
        }
        div class="panel" {
            h2 { "Largest clusters" }
            @if d.clusters.is_empty() { p class="muted" { "No bank item has been seen anywhere yet." } }
            @else { div class="wide-table" { table {
                thead { tr { th { "Bank item" } th { "Labels" } th class="num" { "Copies" } th class="num" { "Hosts" }
                    th class="num" { "Removed" } th class="num" { "Resurfaced" } th { "First seen" } } }
                tbody { @for c in &d.clusters { tr {
                    td { a href=(format!("/ui/clusters/{}", c.content_id)) { "#" (c.content_id) } " " span class="muted" { (c.bank.as_deref().unwrap_or("(deleted)")) } }
                    td { @for l in &c.labels { span class="tag" { (l) } } }
                    td class="num" { (c.sightings) } td class="num" { (c.hosts) } td class="num" { (c.removed) }
                    td class="num" { (c.resurfaced) } td { (fmt_ts(c.first_seen_at)) }
                } } }
            } } }
        }
    };
    views::layout("Spread", "spread", Some(viewer), None, body)
}

/// The self-contained HTML report, downloaded (never rendered inside the
/// console, whose CSP forbids its inline style).
pub(super) async fn report_download(
    st: Ctx,
    auth: Authed,
    UiQuery(q): UiQuery<DaysQuery>,
) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let now = echotrace_store::now_ms();
    match report::build(
        &st.store,
        &ReportOptions::new(now - days(&q) * DAY_MS, now + 1),
    )
    .await
    {
        Ok(r) => {
            let mut resp = echotrace_spread::html::render(&r).into_response();
            let h = resp.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static(
                    "attachment; filename=\"echotrace-transparency-report.html\"",
                ),
            );
            resp
        }
        Err(e) => spread_error(&auth.viewer, e),
    }
}

// ----- one cluster ---------------------------------------------------------------

struct ClusterPage {
    view: ClusterView,
    item_media: Evidence,
    blur: bool,
    grey: bool,
    notices: Vec<echotrace_store::NoticeRow>,
    flash: Option<Flash>,
}

fn cluster_flash(code: Option<&str>) -> Option<Flash> {
    match code? {
        "notice" => Some(Flash::Ok(
            "Notice recorded; the notice.created event is queued.".into(),
        )),
        "none" => Some(Flash::Error(
            "Select at least one copy for the notice.".into(),
        )),
        _ => None,
    }
}

pub(super) async fn cluster_page(
    st: Ctx,
    auth: Authed,
    UiPath(content_id): UiPath<i64>,
    UiQuery(q): UiQuery<DaysQuery>,
) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let view = match cluster::get(&st.store, content_id).await {
        Ok(v) => v,
        Err(e) => return spread_error(&auth.viewer, e),
    };
    let rest: Result<ClusterPage, EngineError> = async {
        let settings = cq::user_settings(&st.store, auth.session.user.id).await?;
        let item_media = evidence(&st, MediaOwner::Content, content_id).await?;
        let mut notices = BTreeMap::new();
        for s in &view.sightings {
            for id in &s.notices {
                if let Some(n) = st.store.get_notice(*id).await? {
                    notices.insert(n.id, n);
                }
            }
        }
        Ok(ClusterPage {
            view,
            item_media,
            blur: settings.blur_media,
            grey: settings.greyscale_media,
            notices: notices.into_values().rev().collect(),
            flash: cluster_flash(q.msg.as_deref()),
        })
    }
    .await;
    match rest {
        Ok(p) => page(cluster_view(&auth.viewer, &p)),
        Err(e) => super::engine_error(Some(&auth.viewer), e),
    }
}

fn cluster_view(viewer: &Viewer, p: &ClusterPage) -> Markup {
    let v = &p.view;
    let s = &v.summary;
    let now = echotrace_store::now_ms();
    let lanes: Vec<Lane> = v
        .sightings
        .iter()
        .take(60)
        .map(|c| {
            let mut marks: Vec<(i64, String)> = Vec::new();
            for r in &c.removals {
                marks.push((r.confirmed_at, "removed".into()));
                if let Some(t) = r.resurfaced_at {
                    marks.push((t, "resurfaced".into()));
                }
            }
            for n in p.notices.iter().filter(|n| c.notices.contains(&n.id)) {
                marks.push((n.sent_at, "notice".into()));
            }
            Lane {
                label: format!("#{} {}", c.sighting_id, c.host),
                from: c.first_seen_at,
                status: c.status.clone(),
                marks,
            }
        })
        .collect();
    let body = html! {
        h1 { "Cluster: bank item #" (s.content_id) }
        div class="grid" {
            div class="panel" {
                h2 { "The item" }
                dl class="facts" {
                    dt { "Bank" } dd { @match (s.bank_id, &s.bank) {
                        (Some(id), Some(name)) => { a href=(format!("/ui/banks/{id}")) { (name) } }
                        _ => { "(item deleted)" }
                    } }
                    dt { "Labels" } dd { @for l in &s.labels { span class="tag" { (l) } } }
                    dt { "First seen" } dd { (fmt_ts(s.first_seen_at)) }
                    dt { "Last seen" } dd { (fmt_ts(s.last_seen_at)) }
                }
                (views::evidence(&p.item_media, "cluster-item-media", "Bank item media (hidden until revealed)", p.blur, p.grey, None, None))
            }
            div class="panel" {
                h2 { "Spread" }
                p { span class="stat" data-stat="copies" { (s.sightings) } " copies on " (s.hosts) " hosts and " (s.platforms) " platforms" }
                p { (s.removed) " removed now · " (s.resurfaced) " came back after removal" }
                @if v.truncated { p class="muted" { "Showing the first " (v.sightings.len()) " copies." } }
            }
        }
        div class="panel chart" {
            h2 { "Copies over time" }
            (chart::timeline("Copies of this item over time", &lanes, now))
            p class="muted" { "Bars: red live, amber removal pending, green removed, grey not checked yet. ✕ removal confirmed, ● back up, ▲ notice sent." }
        }
        form method="post" action=(format!("/ui/clusters/{}/notice", s.content_id)) {
            (csrf_field(&viewer.csrf))
            div class="panel" {
                h2 { "Copies" }
                div class="wide-table" { table id="copies" {
                    thead { tr {
                        @if viewer.can_decide { th { "Select" } }
                        th { "#" } th { "URL" } th { "Platform" } th { "Matched by" } th { "First seen" }
                        th { "Status" } th { "Last check" } th class="num" { "Checks" } th { "Next check" } th { "Notices" }
                    } }
                    tbody { @for c in &v.sightings { tr data-sighting=(c.sighting_id) data-status=(c.status) {
                        @if viewer.can_decide { td { input type="checkbox" name="sighting" value=(c.sighting_id)
                            aria-label=(format!("Include copy {} in a notice", c.sighting_id)); } }
                        td { (c.sighting_id) }
                        td { code class="hash" { (c.url) } }
                        td { (c.platform) }
                        td { @for m in &c.matched_by { span class="tag" { (m.signal_type)
                            @if let Some(d) = m.distance { " " (d) }
                            @if let Some(x) = m.similarity { " " (format!("{x:.2}")) } } } }
                        td { (fmt_ts(c.first_seen_at)) }
                        td { span class=(format!("tag status-{}", c.status)) { (c.status) } }
                        td { code { (c.state) } @if let Some(t) = c.last_checked_at { br; span class="muted" { (fmt_ts(t)) } } }
                        td class="num" { (c.checks) }
                        td { @if let Some(t) = c.next_check_at { (fmt_ts(t)) } @else { span class="muted" { "—" } } }
                        td { @for n in &c.notices { "#" (n) " " } }
                    } } }
                } }
            }
            @if viewer.can_decide {
                div class="panel" {
                    h2 { "Record a takedown notice for the selected copies" }
                    p class="muted" { "echotrace records and exports the notice and queues the notice.created webhook event; it does not send it." }
                    div class="row" {
                        div { label for="channel" { "Channel" }
                            select id="channel" name="channel" {
                                option value="email" { "Email" } option value="api" { "Platform API" }
                                option value="dsa_art16" { "DSA Art. 16 notice" } option value="tco_order" { "TCO removal order" }
                            } }
                        div { label for="platform" { "Platform (default: the copies' platform)" } input id="platform" name="platform" type="text"; }
                        div { label for="reference" { "Reference" } input id="reference" name="reference" type="text"; }
                    }
                    p { button type="submit" { "Record the notice" } }
                }
            }
        }
        div class="panel" {
            h2 { "Notices" }
            @if p.notices.is_empty() { p class="muted" { "No notice covers these copies yet." } }
            @else { div class="wide-table" { table {
                thead { tr { th { "#" } th { "Platform" } th { "Channel" } th { "Reference" } th { "Sent" } th { "Response" } th { "Export" } } }
                tbody { @for n in &p.notices { tr {
                    td { (n.id) } td { (n.platform) } td { (n.channel) } td { (n.reference) } td { (fmt_ts(n.sent_at)) } td { (n.response) }
                    td { a href=(format!("/ui/notices/{}/export?format=text", n.id)) { "text" } " · " a href=(format!("/ui/notices/{}/export?format=json", n.id)) { "JSON" } }
                } } }
            } } }
        }
        div class="panel" {
            h2 { "Timeline" }
            div class="wide-table" { table {
                thead { tr { th { "When" } th { "Event" } th { "Copy" } th { "Detail" } } }
                tbody { @for e in &v.timeline { tr {
                    td { (fmt_ts(e.at)) } td { code { (e.kind) } }
                    td { @if let Some(id) = e.sighting_id { "#" (id) } }
                    td { code class="hash" { (e.detail) } }
                } } }
            } }
        }
    };
    views::layout(
        &format!("Cluster #{}", s.content_id),
        "spread",
        Some(viewer),
        p.flash.as_ref(),
        body,
    )
}

pub(super) async fn create_notice(
    st: Ctx,
    UiPath(content_id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::Decide>,
) -> Response {
    let ids: Vec<i64> = form
        .fields
        .iter()
        .filter(|(k, _)| k == "sighting")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return see_other(&format!("/ui/clusters/{content_id}?msg=none"));
    }
    let field = |k: &str| form.get(k).map(str::to_string).unwrap_or_default();
    let req = NoticeRequest {
        platform: Some(field("platform")).filter(|p| !p.trim().is_empty()),
        channel: field("channel"),
        reference: field("reference"),
        sighting_ids: ids,
        sent_at: None,
        note: String::new(),
    };
    match notice::create(&st.store, &actor(&auth), req).await {
        Ok(_) => see_other(&format!("/ui/clusters/{content_id}?msg=notice")),
        Err(e) => spread_error(&auth.viewer, e),
    }
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    format: Option<String>,
}

pub(super) async fn export_notice(
    st: Ctx,
    auth: Authed,
    UiPath(id): UiPath<i64>,
    UiQuery(q): UiQuery<ExportQuery>,
) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let Some(format) = notice::ExportFormat::parse(q.format.as_deref().unwrap_or("text")) else {
        return error_response(
            Some(&auth.viewer),
            StatusCode::BAD_REQUEST,
            "format must be text or json",
        );
    };
    match notice::get(&st.store, id).await {
        Ok(n) => {
            let mut resp = notice::export(&n, format).into_response();
            let ct = match format {
                notice::ExportFormat::Text => "text/plain; charset=utf-8",
                notice::ExportFormat::Json => "application/json",
            };
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            resp
        }
        Err(e) => spread_error(&auth.viewer, e),
    }
}
