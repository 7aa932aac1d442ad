//! Console pages of the collector: sources with their status (last run,
//! items, errors, politeness waits) and a form to add one; sightings with
//! filters by bank item, source, host, platform, matched and time; one
//! sighting with its signals, matches, parent chain and WARC evidence; and
//! the collected items awaiting review.
//!
//! URLs of sightings are shown as text, never as links: a reviewer should
//! not open propaganda by accident. Media is never shown here.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use echotrace_collector::registry;
use echotrace_collector::views::{list_sightings, sighting_detail, SightingFilter, SightingView};
use echotrace_collector::{SourceConfig, SourceKind, SourceView};
use echotrace_engine::{MatchStatus, Operation};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::{error_response, see_other, Authed, PostForm, UiPath, UiQuery};
use super::views::{csrf_field, layout, Flash, Viewer};
use super::{actor, page, Ctx, FlashQuery, UiState};
use crate::auth::op;

pub(super) fn routes() -> Router<UiState> {
    Router::new()
        .route("/ui/sources", get(sources_page).post(source_create))
        .route("/ui/sources/{name}/run", post(source_run))
        .route("/ui/sources/{name}/toggle", post(source_toggle))
        .route("/ui/sightings", get(sightings_page))
        .route("/ui/sightings/review", get(review_page))
        .route("/ui/sightings/{id}", get(sighting_page))
}

fn when(ms: i64) -> String {
    echotrace_collector::warc::warc_date(ms)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

fn collector_page_error(viewer: &Viewer, e: echotrace_collector::CollectorError) -> Response {
    let api = crate::routes::collector_api_error(e);
    error_response(
        Some(viewer),
        StatusCode::from_u16(api.status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST),
        &api.message,
    )
}

fn flash(code: Option<&str>) -> Option<Flash> {
    Some(match code? {
        "created" => Flash::Ok("Source added.".into()),
        "queued" => Flash::Ok("Seeds queued; a collector process will fetch them.".into()),
        "toggled" => Flash::Ok("Source updated.".into()),
        _ => return None,
    })
}

// ----- sources -------------------------------------------------------------------

async fn sources_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<FlashQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadBanks) {
        return r;
    }
    match registry::list_sources(&st.store).await {
        Ok(list) => page(sources_view(
            &auth.viewer,
            &list,
            flash(q.msg.as_deref()).as_ref(),
            None,
        )),
        Err(e) => collector_page_error(&auth.viewer, e),
    }
}

async fn source_create(st: Ctx, PostForm { auth, form, .. }: PostForm<op::WriteBanks>) -> Response {
    let kind = form.get("kind").unwrap_or("page").to_string();
    let lines = |name: &str| -> Vec<String> {
        form.get(name)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut cfg = SourceConfig {
        urls: lines("urls"),
        path: form.get("path").map(str::to_string),
        locker_hosts: lines("locker_hosts"),
        extra_hosts: lines("extra_hosts"),
        proxy: form.get("proxy").map(str::to_string),
        ignore_robots: form.get("ignore_robots") == Some("on"),
        follow_links: form.get("follow_links") == Some("on"),
        robust: form.get("plain_only") != Some("on"),
        ..SourceConfig::default()
    };
    if let Some(d) = form.get("depth") {
        match d.parse::<u8>() {
            Ok(d) => cfg.depth = d,
            Err(_) => {
                return rerender(&st, &auth, "config.depth: 0, 1 or 2").await;
            }
        }
    }
    let name = form.get("name").unwrap_or("").to_string();
    match registry::add_source(&st.store, &actor(&auth), &name, &kind, &cfg.to_json()).await {
        Ok(_) => see_other("/ui/sources?msg=created"),
        Err(e) => rerender(&st, &auth, &e.to_string()).await,
    }
}

async fn rerender(st: &Ctx, auth: &Authed, message: &str) -> Response {
    let list = registry::list_sources(&st.store).await.unwrap_or_default();
    let f = Flash::Error(message.to_string());
    let mut r = page(sources_view(&auth.viewer, &list, Some(&f), None));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

async fn source_run(
    st: Ctx,
    UiPath(name): UiPath<String>,
    PostForm { auth, .. }: PostForm<op::WriteBanks>,
) -> Response {
    match registry::queue_seeds(&st.store, &actor(&auth), &name).await {
        Ok(_) => see_other("/ui/sources?msg=queued"),
        Err(e) => collector_page_error(&auth.viewer, e),
    }
}

async fn source_toggle(
    st: Ctx,
    UiPath(name): UiPath<String>,
    PostForm { auth, .. }: PostForm<op::WriteBanks>,
) -> Response {
    let current = match registry::get_source(&st.store, &name).await {
        Ok(s) => s,
        Err(e) => return collector_page_error(&auth.viewer, e),
    };
    match registry::update_source(
        &st.store,
        &actor(&auth),
        &name,
        None,
        Some(!current.enabled),
    )
    .await
    {
        Ok(_) => see_other("/ui/sources?msg=toggled"),
        Err(e) => collector_page_error(&auth.viewer, e),
    }
}

/// Items and errors per source as horizontal bars (inline SVG).
fn sources_chart(list: &[SourceView]) -> Markup {
    let max = list
        .iter()
        .map(|s| s.items.max(s.errors))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let row_h = 22.0;
    let height = row_h * list.len() as f64 + 8.0;
    html! {
        svg class="chart" viewBox={"0 0 400 " (height)} role="img" aria-label="Items and errors per source" {
            @for (i, s) in list.iter().enumerate() {
                @let y = 4.0 + row_h * i as f64;
                @let wi = 260.0 * s.items as f64 / max;
                @let we = 260.0 * s.errors as f64 / max;
                text x="0" y=(y + 14.0) font-size="11" { (s.name.chars().take(18).collect::<String>()) }
                rect x="130" y=(y + 2.0) width=(wi) height="8" fill="currentColor" opacity="0.7" {}
                rect x="130" y=(y + 11.0) width=(we) height="6" fill="#b3261e" {}
                text x=(134.0 + wi.max(we)) y=(y + 14.0) font-size="10" { (s.items) " / " (s.errors) }
            }
        }
    }
}

/// How a source's images and videos are matched, from its stored config
/// (`robust` absent means on).
fn image_matching(config: &serde_json::Value) -> &'static str {
    match config.get("robust").and_then(serde_json::Value::as_bool) {
        Some(false) => "plain only",
        _ => "robust",
    }
}

fn sources_view(
    viewer: &Viewer,
    list: &[SourceView],
    flash: Option<&Flash>,
    _x: Option<()>,
) -> Markup {
    let body = html! {
        h1 { "Sources" }
        p class="muted" { "What the collector reads. Fetching runs in collector processes (" code { "echotrace collect run" } " or " code { "serve --collect" } "); “Queue run” queues a source's seeds for them." }
        @if !list.is_empty() {
            figure class="panel" { (sources_chart(list)) figcaption class="muted" { "Items recorded (bar) and errors (red) per source" } }
        }
        div class="wide-table" {
            table {
                thead { tr {
                    th { "Source" } th { "Kind" } th { "Enabled" } th { "Images" } th { "Last run" } th { "Items" }
                    th { "Errors" } th { "Politeness waits" } th { "Queued / done / failed" } th { "Last error" }
                    @if viewer.can_write_banks { th { "Actions" } }
                } }
                tbody { @for s in list {
                    tr {
                        td { a href={"/ui/sightings?source=" (s.name)} { (s.name) } }
                        td { (s.kind) }
                        td { @if s.enabled { "yes" } @else { "no" } }
                        td title="How collected images and videos are matched" { (image_matching(&s.config)) }
                        td { @match s.last_run_at { Some(t) => { (when(t)) " · " (s.last_run_status) }, None => "never" } }
                        td { (s.items) }
                        td { (s.errors) }
                        td { (s.politeness_waits) " (" (s.politeness_wait_ms / 1000) " s)" }
                        td { (s.queued) " / " (s.done) " / " (s.failed) }
                        td { code class="hash" { (s.last_error.clone().unwrap_or_default().chars().take(160).collect::<String>()) } }
                        @if viewer.can_write_banks {
                            td {
                                form class="inline" method="post" action={"/ui/sources/" (s.name) "/run"} {
                                    (csrf_field(&viewer.csrf)) button type="submit" class="secondary" { "Queue run" }
                                }
                                form class="inline" method="post" action={"/ui/sources/" (s.name) "/toggle"} {
                                    (csrf_field(&viewer.csrf))
                                    button type="submit" class="secondary" { @if s.enabled { "Disable" } @else { "Enable" } }
                                }
                            }
                        }
                    }
                } }
            }
        }
        @if viewer.can_write_banks {
            form class="panel" method="post" action="/ui/sources" {
                h2 { "Add a source" }
                (csrf_field(&viewer.csrf))
                label for="s-name" { "Name" } input id="s-name" name="name" type="text" required;
                label for="s-kind" { "Kind" }
                select id="s-kind" name="kind" {
                    @for k in SourceKind::ALL { option value=(k.as_str()) { (k.as_str()) } }
                }
                label for="s-urls" { "Seed URLs (one per line)" } textarea id="s-urls" name="urls" rows="3" {}
                label for="s-path" { "Local path (URL list, Telegram export, WARC file)" } input id="s-path" name="path" type="text";
                label for="s-depth" { "Depth (0-2)" } input id="s-depth" name="depth" type="number" min="0" max="2" value="1";
                label for="s-lockers" { "File-locker and paste hosts (one per line)" } textarea id="s-lockers" name="locker_hosts" rows="2" {}
                label for="s-extra" { "Other hosts in scope (one per line)" } textarea id="s-extra" name="extra_hosts" rows="2" {}
                label for="s-proxy" { "SOCKS proxy (socks5h://host:port, for Tor)" } input id="s-proxy" name="proxy" type="text";
                p { label { input type="checkbox" name="follow_links"; " Imports: queue outlinks for fetching" } }
                p { label { input type="checkbox" name="ignore_robots"; " Ignore robots.txt (recorded in the audit log)" } }
                p { label { input type="checkbox" name="plain_only"; " Images and videos: plain hashes only (about 6× less CPU per image; mirrored, framed or cropped copies are missed)" } }
                p { button type="submit" { "Add source" } }
            }
        }
    };
    layout("Sources", "sources", Some(viewer), flash, body)
}

// ----- sightings -----------------------------------------------------------------

#[derive(Deserialize, Default)]
struct SightingsQuery {
    content_id: Option<String>,
    source: Option<String>,
    host: Option<String>,
    platform: Option<String>,
    matched: Option<String>,
    /// YYYY-MM-DD (UTC).
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// Unix ms of a `YYYY-MM-DD` date (UTC midnight).
fn day_ms(s: &str) -> Option<i64> {
    echotrace_collector::warc::parse_warc_date(&format!("{}T00:00:00Z", s.trim()))
}

fn blank(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn sightings_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<SightingsQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let bad = |m: &str| error_response(Some(&auth.viewer), StatusCode::BAD_REQUEST, m);
    let content_id = match blank(&q.content_id) {
        Some(v) => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return bad("bank item must be a content id (a number)"),
        },
        None => None,
    };
    let from = match blank(&q.from) {
        Some(v) => match day_ms(&v) {
            Some(t) => Some(t),
            None => return bad("from must be a date, YYYY-MM-DD"),
        },
        None => None,
    };
    let to = match blank(&q.to) {
        Some(v) => match day_ms(&v) {
            Some(t) => Some(t + 86_400_000),
            None => return bad("to must be a date, YYYY-MM-DD"),
        },
        None => None,
    };
    let matched = match blank(&q.matched).as_deref() {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        _ => None,
    };
    let cursor = blank(&q.cursor).and_then(|c| c.parse::<i64>().ok());
    let filter = SightingFilter {
        url: None,
        content_id,
        source: blank(&q.source),
        host: blank(&q.host),
        platform: blank(&q.platform),
        matched,
        from,
        to,
        before: cursor,
        limit: 100,
    };
    let sources = registry::list_sources(&st.store).await.unwrap_or_default();
    match list_sightings(&st.store, &filter).await {
        Ok((rows, next)) => page(sightings_view(&auth.viewer, &rows, next, &q, &sources)),
        Err(e) => collector_page_error(&auth.viewer, e),
    }
}

/// Sightings per day as bars (inline SVG), newest page only.
fn timeline(rows: &[SightingView]) -> Markup {
    let mut days: std::collections::BTreeMap<i64, (u32, u32)> = std::collections::BTreeMap::new();
    for r in rows {
        let d = r.first_seen_at.div_euclid(86_400_000);
        let e = days.entry(d).or_default();
        e.0 += 1;
        if r.matched {
            e.1 += 1;
        }
    }
    let max = days.values().map(|v| v.0).max().unwrap_or(1).max(1) as f64;
    let n = days.len().max(1) as f64;
    let w = 400.0 / n;
    html! {
        svg class="chart" viewBox="0 0 400 80" role="img" aria-label="Sightings per day on this page (matched in red)" {
            @for (i, (day, (all, hit))) in days.iter().enumerate() {
                @let h = 60.0 * f64::from(*all) / max;
                @let hh = 60.0 * f64::from(*hit) / max;
                rect x=(w * i as f64 + 1.0) y=(64.0 - h) width=((w - 2.0).max(1.0)) height=(h) fill="currentColor" opacity="0.5" {
                    title { (when(day * 86_400_000).chars().take(10).collect::<String>()) ": " (all) " sightings, " (hit) " matched" }
                }
                rect x=(w * i as f64 + 1.0) y=(64.0 - hh) width=((w - 2.0).max(1.0)) height=(hh) fill="#b3261e" {}
            }
            text x="0" y="78" font-size="10" { @if let Some(d) = days.keys().next() { (when(d * 86_400_000).chars().take(10).collect::<String>()) } }
        }
    }
}

fn sightings_view(
    viewer: &Viewer,
    rows: &[SightingView],
    next: Option<i64>,
    q: &SightingsQuery,
    sources: &[SourceView],
) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let next_url = next.map(|n| {
        let mut parts: Vec<String> = Vec::new();
        for (k, val) in [
            ("content_id", &q.content_id),
            ("source", &q.source),
            ("host", &q.host),
            ("platform", &q.platform),
            ("matched", &q.matched),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            if let Some(x) = blank(val) {
                parts.push(format!("{k}={}", urlencode(&x)));
            }
        }
        parts.push(format!("cursor={n}"));
        format!("/ui/sightings?{}", parts.join("&"))
    });
    let body = html! {
        h1 { "Sightings" }
        p class="muted" { "Where the collector found content: every URL with its signals and evidence. URLs are shown as text, not links." " " a href="/ui/sightings/review" { "Collected items awaiting review" } }
        form class="panel row" method="get" action="/ui/sightings" role="search" {
            div { label for="f-content" { "Bank item (content id)" } input id="f-content" name="content_id" type="text" inputmode="numeric" value=(v(&q.content_id)); }
            div { label for="f-source" { "Source" }
                select id="f-source" name="source" {
                    option value="" { "any" }
                    @for s in sources { option value=(s.name) selected[q.source.as_deref() == Some(s.name.as_str())] { (s.name) } }
                }
            }
            div { label for="f-host" { "Host" } input id="f-host" name="host" type="text" value=(v(&q.host)); }
            div { label for="f-platform" { "Platform" } input id="f-platform" name="platform" type="text" value=(v(&q.platform)); }
            div { label for="f-matched" { "Matched" }
                select id="f-matched" name="matched" {
                    option value="" { "any" }
                    option value="yes" selected[q.matched.as_deref() == Some("yes")] { "matched" }
                    option value="no" selected[q.matched.as_deref() == Some("no")] { "unmatched" }
                }
            }
            div { label for="f-from" { "From" } input id="f-from" name="from" type="date" value=(v(&q.from)); }
            div { label for="f-to" { "To" } input id="f-to" name="to" type="date" value=(v(&q.to)); }
            div { button type="submit" { "Filter" } }
        }
        @if rows.is_empty() {
            p class="panel" { "No sightings match these filters." }
        } @else {
            figure class="panel" { (timeline(rows)) figcaption class="muted" { "Sightings per day on this page; matched in red" } }
            div class="wide-table" {
                table {
                    thead { tr { th { "#" } th { "First seen" } th { "Source" } th { "Platform" } th { "Host" } th { "URL" } th { "Media" } th { "Bank items" } th { "Evidence" } } }
                    tbody { @for r in rows {
                        tr {
                            td { a href={"/ui/sightings/" (r.id)} { (r.id) } }
                            td { (when(r.first_seen_at)) }
                            td { (r.source.clone().unwrap_or_default()) }
                            td { (r.platform) }
                            td { (r.host) }
                            td { code class="hash" { (r.url.chars().take(120).collect::<String>()) } }
                            td { @if r.media_type.is_empty() { "link" } @else { (r.media_type) } }
                            td { @if r.matches.is_empty() { "—" } @else {
                                @for m in &r.matches { a href={"/ui/sightings?content_id=" (m.content_id)} { "#" (m.content_id) } " " }
                            } }
                            td { @if let Some(e) = &r.evidence { code class="hash" { (e.file) "@" (e.offset) } } @else { "—" } }
                        }
                    } }
                }
            }
            @if let Some(u) = next_url { p { a href=(u) { "Older sightings →" } } }
        }
    };
    layout("Sightings", "sightings", Some(viewer), None, body)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn sighting_page(st: Ctx, auth: Authed, UiPath(id): UiPath<i64>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    match sighting_detail(&st.store, id).await {
        Ok(d) => {
            let s = &d.sighting;
            let attrs = serde_json::to_string_pretty(&d.attributes).unwrap_or_default();
            let body = html! {
                h1 { "Sighting #" (s.id) }
                dl class="panel" {
                    dt { "URL" } dd { code class="hash" { (s.url) } }
                    dt { "Canonical URL" } dd { code class="hash" { (s.url_canonical) } }
                    dt { "Host / platform" } dd { (s.host) " / " @if s.platform.is_empty() { "unknown" } @else { (s.platform) } }
                    dt { "Source" } dd { (s.source.clone().unwrap_or_else(|| "—".into())) }
                    dt { "Seen" } dd { "first " (when(s.first_seen_at)) ", last " (when(s.last_seen_at)) }
                    dt { "Content" } dd { @if s.content_sha256.is_empty() { "a link (no bytes)" } @else { (s.media_type) ", SHA-256 " code class="hash" { (s.content_sha256) } } }
                    dt { "Kept" } dd { @match s.expires_at { Some(t) => { "hashes until " (when(t)) " (unmatched; retro-hunt window)" }, None => "for good" } }
                    dt { "Evidence" } dd { @match &s.evidence {
                        Some(e) => { "WARC " code class="hash" { (e.file) } " offset " (e.offset) ", " (e.length) " bytes, record " code class="hash" { (e.record_id) } },
                        None => "none (not fetched)",
                    } }
                }
                h2 { "Bank matches" }
                @if s.matches.is_empty() { p { "None." } } @else {
                    table { thead { tr { th { "Bank item" } th { "Signal" } th { "Channel" } th { "Distance / similarity" } th { "Found by" } th { "Match" } } }
                        tbody { @for m in &s.matches { tr {
                            td { a href={"/ui/sightings?content_id=" (m.content_id)} { "#" (m.content_id) } }
                            td { (m.signal_type) }
                            td { (m.channel) }
                            td { @if let Some(d) = m.distance { (d) } @if let Some(x) = m.similarity { (format!("{x:.2}")) } }
                            td { (m.found_by) }
                            td { @if let Some(mid) = m.match_id { "#" (mid) } }
                        } } }
                    }
                }
                h2 { "Linked from" }
                @if d.parents.is_empty() { p { "Nothing (a seed or a message)." } } @else {
                    ol { @for p in &d.parents { li { a href={"/ui/sightings/" (p.id)} { "#" (p.id) } " " code class="hash" { (p.url.chars().take(120).collect::<String>()) } } } }
                }
                h2 { "Signals" }
                table { thead { tr { th { "Type" } th { "Value" } } }
                    tbody { @for sig in &d.signals { tr {
                        td { (sig["type"].as_str().unwrap_or("")) }
                        td { code class="hash" { (sig["value"].as_str().unwrap_or("").chars().take(200).collect::<String>()) } }
                    } } }
                }
                h2 { "Attributes" }
                pre class="panel" { (attrs) }
            };
            page(layout(
                "Sighting",
                "sightings",
                Some(&auth.viewer),
                None,
                body,
            ))
        }
        Err(e) => collector_page_error(&auth.viewer, e),
    }
}

/// Collected items whose matches await review, with the queue's decide
/// buttons.
async fn review_page(st: Ctx, auth: Authed) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let filter = SightingFilter {
        matched: Some(true),
        limit: 200,
        ..SightingFilter::default()
    };
    let rows = match list_sightings(&st.store, &filter).await {
        Ok((rows, _)) => rows,
        Err(e) => return collector_page_error(&auth.viewer, e),
    };
    let mut items = Vec::new();
    for r in rows {
        let mut pending = Vec::new();
        for m in &r.matches {
            if let Some(mid) = m.match_id {
                if let Ok(rec) = st.engine.get_match(mid).await {
                    if rec.status == MatchStatus::Pending {
                        pending.push(rec);
                    }
                }
            }
        }
        if !pending.is_empty() {
            items.push((r, pending));
        }
    }
    let viewer = &auth.viewer;
    let body = html! {
        h1 { "Collected items awaiting review" }
        p class="muted" { "Matches the collector queued for review, by sighting. Decisions go through the review queue (same undo window)." }
        @if items.is_empty() { p class="panel" { "Nothing awaiting review." } }
        @for (s, pending) in &items {
            section class="panel" {
                h2 { a href={"/ui/sightings/" (s.id)} { "Sighting #" (s.id) } " · " (s.source.clone().unwrap_or_default()) " · " (s.platform) }
                p { code class="hash" { (s.url.chars().take(160).collect::<String>()) } }
                ul { @for m in pending {
                    li {
                        "Match #" (m.id) ": bank " (m.bank_name) ", item #" (m.content_id) " (" (m.signal_type.as_str()) ")"
                        @if viewer.can_decide {
                            form class="inline" method="post" action={"/ui/matches/" (m.id) "/decide"} {
                                (csrf_field(&viewer.csrf))
                                button type="submit" name="verdict" value="confirm" { "Confirm" }
                                button type="submit" name="verdict" value="reject" class="secondary" { "Reject" }
                            }
                        }
                    }
                } }
            }
        }
    };
    page(layout(
        "Collected items",
        "sightings",
        Some(viewer),
        None,
        body,
    ))
}
