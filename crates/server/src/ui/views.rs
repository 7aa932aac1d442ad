//! HTML of every console page, as `maud` templates: compile-time checked and
//! auto-escaping (every interpolated string is HTML-escaped; nothing here
//! uses `PreEscaped` on data). Pages take plain view models, so the
//! templates never touch the engine or the database.
//!
//! Every `<form method=post>` is built with [`csrf_field`]; the server
//! rejects a POST whose token is missing or wrong.

use maud::{html, Markup, DOCTYPE};

use super::textdiff;
use super::videostrip::{self, VideoStrip};

/// Who is looking at the page, and what they may do.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    pub can_decide: bool,
    pub can_write_banks: bool,
    pub can_audit: bool,
    pub can_admin: bool,
}

/// One-line message shown above the page content.
#[derive(Clone, Debug)]
pub enum Flash {
    Ok(String),
    Error(String),
}

/// The hidden CSRF input every POST form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Times as the console shows them (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM UTC`).
pub use echotrace_engine::utc::{fmt_day, fmt_ts};

/// The page frame: skip link, navigation, flash, content.
pub fn layout(
    title: &str,
    active: &str,
    viewer: Option<&Viewer>,
    flash: Option<&Flash>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · echotrace" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "echotrace" }
                    @if let Some(v) = viewer {
                        nav aria-label="Console" {
                            (nav_link("/ui/", "Dashboard", active == "dashboard"))
                            (nav_link("/ui/queue", "Review queue", active == "queue"))
                            (nav_link("/ui/banks", "Banks", active == "banks"))
                            (nav_link("/ui/debug", "Match debugger", active == "debug"))
                            @if v.can_write_banks { (nav_link("/ui/exchanges", "Exchanges", active == "exchanges")) }
                            (nav_link("/ui/spread", "Spread", active == "spread"))
                            (nav_link("/ui/sightings", "Sightings", active == "sightings"))
                            (nav_link("/ui/sources", "Sources", active == "sources"))
                            @if v.can_audit { (nav_link("/ui/audit", "Audit log", active == "audit")) }
                            @if v.can_admin { (nav_link("/ui/keys", "API keys", active == "keys")) }
                            (nav_link("/ui/settings", "Settings", active == "settings"))
                        }
                        div class="who" {
                            span { (v.username) " (" (v.role) ")" }
                            form class="inline" method="post" action="/ui/logout" {
                                (csrf_field(&v.csrf))
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(f) = flash {
                        @match f {
                            Flash::Ok(m) => { p class="flash ok" role="status" { (m) } }
                            Flash::Error(m) => { p class="flash error" role="alert" { (m) } }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn nav_link(href: &str, text: &str, current: bool) -> Markup {
    html! {
        @if current { a href=(href) aria-current="page" { (text) } }
        @else { a href=(href) { (text) } }
    }
}

/// Login form. The token is the pre-session CSRF token (double-submit cookie).
pub fn login(csrf: &str, error: Option<&str>, next: &str) -> Markup {
    let body = html! {
        div class="login panel" {
            h1 { "Sign in" }
            p class="muted" { "Review console. Media is hidden by default." }
            form method="post" action="/ui/login" {
                (csrf_field(csrf))
                input type="hidden" name="next" value=(next);
                label for="username" { "Username" }
                input id="username" name="username" type="text" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        }
    };
    let flash = error.map(|e| Flash::Error(e.to_string()));
    layout("Sign in", "login", None, flash.as_ref(), body)
}

/// A plain error page (403, 404, 400…).
pub fn error_page(viewer: Option<&Viewer>, status: u16, message: &str) -> Markup {
    let title = match status {
        403 => "Forbidden",
        404 => "Not found",
        400 => "Bad request",
        409 => "Conflict",
        413 => "Too large",
        _ => "Error",
    };
    layout(
        title,
        "",
        viewer,
        None,
        html! {
            h1 { (status) " " (title) }
            p { (message) }
            p { a href="/ui/" { "Back to the dashboard" } }
        },
    )
}

// ----- dashboard -------------------------------------------------------------

/// Figures for the dashboard.
#[derive(Clone, Debug, Default)]
pub struct DashboardView {
    pub pending: i64,
    pub confirmed: i64,
    pub rejected: i64,
    pub per_day: Vec<(i64, i64)>,
    pub top_banks: Vec<(i64, String, i64)>,
    pub top_labels: Vec<(String, i64)>,
    pub index_sizes: Vec<(String, i64)>,
    pub retain_media: bool,
}

/// Inline SVG bar chart of matches per day (no scripts, no CDN).
pub fn per_day_chart(per_day: &[(i64, i64)]) -> Markup {
    let max = per_day.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let n = per_day.len().max(1) as i64;
    let (w, h, pad) = (600i64, 180i64, 24i64);
    let bw = (w - pad) / n;
    let total: i64 = per_day.iter().map(|d| d.1).sum();
    let label = format!(
        "Matches per day, last {} days: {} in total, at most {} on one day",
        per_day.len(),
        total,
        per_day.iter().map(|d| d.1).max().unwrap_or(0)
    );
    html! {
        svg viewBox=(format!("0 0 {w} {}", h + 20)) role="img" aria-label=(label) {
            title { (label) }
            line class="axis" x1=(pad) y1=(h) x2=(w) y2=(h) stroke-width="1" {}
            text x="0" y="10" { (max) }
            text x="0" y=(h) { "0" }
            @for (i, (day, count)) in per_day.iter().enumerate() {
                @let bh = count * (h - 12) / max;
                @let x = pad + i as i64 * bw;
                rect class="bar" x=(x + 1) y=(h - bh) width=((bw - 2).max(1)) height=(bh) {
                    title { (fmt_day(*day)) ": " (count) }
                }
                @if i % 7 == 0 || (i + 1 == per_day.len() && i % 7 >= 4) {
                    text x=(x) y=(h + 14) { (fmt_day(*day).get(5..).unwrap_or("")) }
                }
            }
        }
    }
}

pub fn dashboard(viewer: &Viewer, d: &DashboardView) -> Markup {
    let body = html! {
        h1 { "Dashboard" }
        div class="grid" {
            div class="panel" { h2 { "Pending" } p class="stat pending" data-stat="pending" { (d.pending) } a href="/ui/queue" { "Open the review queue" } }
            div class="panel" { h2 { "Confirmed" } p class="stat confirmed" data-stat="confirmed" { (d.confirmed) } }
            div class="panel" { h2 { "Rejected" } p class="stat rejected" data-stat="rejected" { (d.rejected) } }
        }
        div class="panel chart" {
            h2 { "Matches per day (last 30 days, UTC)" }
            (per_day_chart(&d.per_day))
        }
        div class="grid" {
            div class="panel" {
                h2 { "Top banks" }
                @if d.top_banks.is_empty() { p class="muted" { "No matches yet." } }
                @else {
                    table { thead { tr { th { "Bank" } th class="num" { "Matches" } } }
                        tbody { @for (id, name, n) in &d.top_banks {
                            tr { td { a href=(format!("/ui/banks/{id}")) { (name) } } td class="num" { (n) } }
                        } } }
                }
            }
            div class="panel" {
                h2 { "Top labels" }
                @if d.top_labels.is_empty() { p class="muted" { "No matches yet." } }
                @else {
                    table { thead { tr { th { "Label" } th class="num" { "Matches" } } }
                        tbody { @for (l, n) in &d.top_labels { tr { td { span class="tag" { (l) } } td class="num" { (n) } } } } }
                }
            }
            div class="panel" {
                h2 { "Index size per signal type" }
                @if d.index_sizes.is_empty() { p class="muted" { "No signals banked." } }
                @else {
                    table { thead { tr { th { "Signal type" } th class="num" { "Signals" } } }
                        tbody { @for (t, n) in &d.index_sizes { tr { td { code { (t) } } td class="num" { (n) } } } } }
                }
                p class="muted" {
                    "Media retention: " @if d.retain_media { "on" } @else { "off (hashing only)" }
                }
            }
        }
    };
    layout("Dashboard", "dashboard", Some(viewer), None, body)
}

// ----- review queue -----------------------------------------------------------

/// What the reviewer sees of retained media or text for one side of a match.
#[derive(Clone, Debug)]
pub enum Evidence {
    /// Retention is off or nothing was retained.
    NotRetained,
    /// An image served at this URL.
    Image { url: String },
    /// Retained text.
    Text(String),
    /// A retained video: stills of its matched frames (or why none).
    Video(videostrip::VideoThumbs),
}

/// One match card.
#[derive(Clone, Debug)]
pub struct MatchCard {
    pub id: i64,
    pub status: String,
    pub signal_type: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    pub threshold: String,
    pub created_at: i64,
    pub bank_id: i64,
    pub bank_name: String,
    pub bank_kind: String,
    pub content_id: i64,
    pub labels: Vec<String>,
    pub note: String,
    pub source: String,
    pub submission_id: i64,
    pub platform_content_id: Option<String>,
    pub url: Option<String>,
    pub uploader: Option<String>,
    pub submitted_by: String,
    pub query_value: String,
    pub matched_value: String,
    pub submission_evidence: Evidence,
    pub bank_evidence: Evidence,
    /// Set while the decision is still inside its undo window.
    pub undo_until: Option<i64>,
    pub decided_verdict: Option<String>,
    /// vPDQ matches: shares and matched-frame timestamps (render-time).
    pub video: Option<VideoStrip>,
    /// The matching channel (`plain`, `dihedral`, `border`, `window`,
    /// `region`, `part`) and how a derived channel matched.
    pub channel: String,
    pub channel_detail: Option<echotrace_engine::robust::ChannelDetail>,
}

/// A rectangle as shares `[x, y, w, h]` of the image it is drawn on.
pub type Overlay = [f32; 4];

/// The query rectangle of a derived match, as shares of the upload.
pub fn query_overlay(d: &echotrace_engine::robust::ChannelDetail) -> Option<Overlay> {
    let r = d.query_rect?;
    let s = d.query_size?;
    if s[0] == 0 || s[1] == 0 {
        return None;
    }
    let (w, h) = (s[0] as f32, s[1] as f32);
    Some([
        r[0] as f32 / w,
        r[1] as f32 / h,
        r[2] as f32 / w,
        r[3] as f32 / h,
    ])
}

/// The bank window of a derived match, as shares of the bank original.
pub fn bank_overlay(d: &echotrace_engine::robust::ChannelDetail) -> Option<Overlay> {
    let f = d.bank_removed?;
    Some([
        f[0],
        f[1],
        (1.0 - f[0] - f[2]).max(0.0),
        (1.0 - f[1] - f[3]).max(0.0),
    ])
}

/// "window · distance 38 ≤ 40 · plain distance 97 · rot90 · crop 12,8 200×150".
pub fn channel_summary(
    channel: &str,
    d: Option<&echotrace_engine::robust::ChannelDetail>,
) -> String {
    let mut parts = vec![channel.to_string()];
    if let Some(d) = d {
        if let Some(t) = d.threshold {
            parts.push(format!("threshold {t}"));
        }
        if let Some(p) = d.plain_distance {
            parts.push(format!("plain distance {p}"));
        }
        if let Some(p) = d.plain_query_pct {
            parts.push(format!("plain query share {p:.0}%"));
        }
        if let Some(v) = d.variant.as_deref().filter(|v| *v != "orig") {
            parts.push(v.to_string());
        }
        if let (Some(src), Some(r)) = (d.query_source.as_deref(), d.query_rect) {
            parts.push(format!(
                "upload {src} {}×{} at {},{}",
                r[2], r[3], r[0], r[1]
            ));
        }
        if let Some(f) = d.bank_removed {
            parts.push(format!(
                "bank {} cut {:.1}/{:.1}/{:.1}/{:.1} %",
                d.bank_source.as_deref().unwrap_or("window"),
                f[0] * 100.0,
                f[1] * 100.0,
                f[2] * 100.0,
                f[3] * 100.0
            ));
        }
    }
    parts.join(" · ")
}

/// An SVG rectangle over a media frame (not blurred: it is not media).
pub fn overlay_svg(o: Option<Overlay>) -> Markup {
    html! {
        @if let Some(o) = o {
            svg class="overlay" viewBox="0 0 100 100" preserveAspectRatio="none" aria-hidden="true" {
                rect x=(format!("{:.2}", o[0] * 100.0)) y=(format!("{:.2}", o[1] * 100.0))
                    width=(format!("{:.2}", o[2] * 100.0)) height=(format!("{:.2}", o[3] * 100.0)) {}
            }
        }
    }
}

/// Cards grouped by the bank item they matched.
#[derive(Clone, Debug)]
pub struct MatchGroup {
    pub content_id: i64,
    pub bank_name: String,
    pub labels: Vec<String>,
    pub cards: Vec<MatchCard>,
}

#[derive(Clone, Debug)]
pub struct QueueView {
    pub groups: Vec<MatchGroup>,
    /// Recently decided, still undoable.
    pub recent: Vec<MatchCard>,
    pub order: String,
    pub blur: bool,
    pub grey: bool,
    pub retain_media: bool,
    pub undo_secs: u64,
}

fn media_classes(blur: bool, grey: bool) -> String {
    let mut c = String::from("media");
    if blur {
        c.push_str(" blur");
    }
    if grey {
        c.push_str(" grey");
    }
    c
}

pub(crate) fn evidence(
    e: &Evidence,
    id: &str,
    alt: &str,
    blur: bool,
    grey: bool,
    other_text: Option<&str>,
    overlay: Option<Overlay>,
) -> Markup {
    html! {
        @match e {
            Evidence::NotRetained => { div class="no-media" { "Media not retained (hashing only)." } }
            Evidence::Video(t) => { (videostrip::render_thumbs(t, id, &media_classes(blur, grey))) }
            Evidence::Image { url } => {
                div class="media-box" {
                    div class="media-frame" {
                        img id=(id) class=(media_classes(blur, grey)) src=(url) alt=(alt) loading="lazy";
                        (overlay_svg(overlay))
                    }
                    button type="button" class="secondary" data-reveal=(id) aria-pressed="false" aria-controls=(id) { "Reveal media" }
                }
            }
            Evidence::Text(t) => {
                pre { @for (seg, hl) in textdiff::highlight(t, other_text.unwrap_or("")) {
                    @if hl { mark { (seg) } } @else { (seg) }
                } }
            }
        }
    }
}

fn score(c: &MatchCard) -> String {
    if let Some(v) = &c.video {
        return videostrip::shares_label(v);
    }
    match (c.distance, c.similarity) {
        (_, Some(s)) if c.signal_type == "vpdq" => format!("query share {:.0}%", s * 100.0),
        (_, Some(s)) => format!("similarity {:.2}", s),
        (Some(d), None) => format!("distance {d}"),
        (None, None) => "exact".to_string(),
    }
}

fn match_card(viewer: &Viewer, c: &MatchCard, q: &QueueView, group_key: i64) -> Markup {
    let sub_text = match &c.submission_evidence {
        Evidence::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let bank_text = match &c.bank_evidence {
        Evidence::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let both_text = sub_text.is_some() && bank_text.is_some();
    html! {
        article class=(if c.undo_until.is_some() { "card decided" } else { "card" }) data-match=(c.id) tabindex="-1" aria-labelledby=(format!("m{}-h", c.id)) {
            div {
                h3 id=(format!("m{}-h", c.id)) { "Match #" (c.id) " · " code { (c.signal_type) } " · " (score(c)) }
                dl {
                    dt { "Bank" } dd { a href=(format!("/ui/banks/{}", c.bank_id)) { (c.bank_name) } " " span class=(format!("tag {}", c.bank_kind)) { (c.bank_kind) } }
                    dt { "Bank item" } dd { "#" (c.content_id) }
                    dt { "Labels" } dd { @for l in &c.labels { span class="tag" { (l) } } }
                    dt { "Note" } dd { (c.note) }
                    dt { "Source" } dd { (c.source) }
                    dt { "Threshold" } dd { (c.threshold) }
                    dt { "Channel" } dd class="channel" { (channel_summary(&c.channel, c.channel_detail.as_ref())) }
                    dt { "Matched" } dd { (fmt_ts(c.created_at)) }
                }
                @if c.signal_type == "ocr_text" {
                    p { a href=(format!("/ui/matches/{}/text", c.id)) { "OCR text beside the bank text, diffed" } }
                }
                @if let Some(v) = &c.video {
                    h3 { "Matched frames" }
                    (videostrip::render(v, &format!("m{}-strip", c.id)))
                }
                @if !both_text {
                    h3 { "Bank item" }
                    (evidence(&c.bank_evidence, &format!("bank-media-{}", c.id), "Banked media (hidden until revealed)", q.blur, q.grey, sub_text, c.channel_detail.as_ref().and_then(bank_overlay)))
                }
            }
            div {
                h3 { "Submission #" (c.submission_id) }
                dl {
                    dt { "Platform id" } dd { (c.platform_content_id.as_deref().unwrap_or("—")) }
                    dt { "URL" } dd { (c.url.as_deref().unwrap_or("—")) }
                    dt { "Uploader" } dd { (c.uploader.as_deref().unwrap_or("—")) }
                    dt { "Submitted by" } dd { (c.submitted_by) }
                    dt { "Query signal" } dd { code class="hash" { (c.query_value) } }
                    dt { "Bank signal" } dd { code class="hash" { (c.matched_value) } }
                }
                @if both_text {
                    div class="texts" {
                        div { h3 { "Bank text" } (evidence(&c.bank_evidence, "", "", false, false, sub_text, None)) }
                        div { h3 { "Submitted text" } (evidence(&c.submission_evidence, "", "", false, false, bank_text, None)) }
                    }
                } @else {
                    (evidence(&c.submission_evidence, &format!("sub-media-{}", c.id), "Submitted media (hidden until revealed)", q.blur, q.grey, bank_text, c.channel_detail.as_ref().and_then(query_overlay)))
                }
            }
            div class="actions" {
                @if let Some(until) = c.undo_until {
                    div class="undo" data-publish-at=(until) {
                        p { "Decided: " strong { (c.decided_verdict.as_deref().unwrap_or("")) } ". Published in " span class="countdown" { "…" } }
                        form method="post" action=(format!("/ui/matches/{}/undo", c.id)) {
                            (csrf_field(&viewer.csrf))
                            button type="submit" class="undo-btn secondary" { "Undo " kbd { "u" } }
                        }
                    }
                } @else if viewer.can_decide && c.status == "pending" {
                    label class="row" { input type="checkbox" name="ids" value=(c.id) form="bulk" data-group=(group_key); "Select " kbd { "x" } }
                    form method="post" action=(format!("/ui/matches/{}/decide", c.id)) {
                        (csrf_field(&viewer.csrf))
                        input type="hidden" name="order" value=(q.order);
                        div class="row" {
                            button type="submit" name="verdict" value="confirm" class="confirm" { "Confirm " kbd { "c" } }
                            button type="submit" name="verdict" value="reject" class="reject" { "Reject " kbd { "r" } }
                        }
                    }
                } @else {
                    p class="muted" { "Status: " (c.status) }
                }
            }
        }
    }
}

pub fn queue(viewer: &Viewer, q: &QueueView, flash: Option<&Flash>) -> Markup {
    let pending: usize = q.groups.iter().map(|g| g.cards.len()).sum();
    let body = html! {
        h1 { "Review queue" }
        div class="row" {
            p { (pending) " pending, " (q.groups.len()) " bank items. " }
            p class="muted" { "Order: "
                @if q.order == "priority" { a href="/ui/queue?order=newest" { "newest first" } " · " strong { "highest priority first" } }
                @else { strong { "newest first" } " · " a href="/ui/queue?order=priority" { "highest priority first" } }
            }
        }
        details class="help" id="shortcuts-box" {
            summary { "Keyboard shortcuts" }
            ul id="shortcuts" {
                li { kbd { "j" } " / " kbd { "k" } " next / previous match" }
                li { kbd { "c" } " confirm, " kbd { "r" } " reject, " kbd { "u" } " undo" }
                li { kbd { "v" } " reveal or hide the media of the current match (one at a time)" }
                li { kbd { "x" } " select for a bulk decision" }
            }
        }
        @if !q.retain_media { p class="muted" { "Media retention is off: reviewing by signals only." } }
        @if !q.recent.is_empty() {
            section aria-labelledby="recent-h" {
                h2 id="recent-h" { "Just decided (undo within " (q.undo_secs) " s)" }
                @for c in &q.recent { (match_card(viewer, c, q, 0)) }
            }
        }
        @if viewer.can_decide && pending > 0 {
            form id="bulk" class="bulkbar row" method="post" action="/ui/queue/bulk" {
                (csrf_field(&viewer.csrf))
                input type="hidden" name="order" value=(q.order);
                span { "Selected matches:" }
                button type="submit" name="verdict" value="confirm" class="confirm" { "Confirm selected" }
                button type="submit" name="verdict" value="reject" class="reject" { "Reject selected" }
            }
        }
        @if q.groups.is_empty() { p class="panel" { "Nothing to review." } }
        @for g in &q.groups {
            section class="group" aria-label=(format!("Matches of bank item {}", g.content_id)) {
                div class="group-head" {
                    span { strong { (g.bank_name) } " · item #" (g.content_id) " · " (g.cards.len()) " match(es) " @for l in &g.labels { span class="tag" { (l) } } }
                    @if viewer.can_decide && g.cards.len() > 1 {
                        label class="row" { input type="checkbox" data-group-all=(g.content_id); "Select all of this item" }
                    }
                }
                @for c in &g.cards { (match_card(viewer, c, q, g.content_id)) }
            }
        }
    };
    layout("Review queue", "queue", Some(viewer), flash, body)
}

// ----- banks -----------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct BankRowView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub description: String,
    pub thresholds: Vec<(String, f64)>,
    /// Current text-equivalence list body ("" = none).
    pub text_equivalences: String,
    pub text_equivalences_version: Option<i64>,
    /// Text items signed under another list version than the current one.
    pub text_items_older_list: u64,
    /// Robust-matching settings.
    pub matching: echotrace_engine::robust::MatchingSettings,
    /// File-added originals held, and whether lookups refine now.
    pub held_originals: u64,
    pub refining: bool,
}

pub fn banks(viewer: &Viewer, banks: &[BankRowView], flash: Option<&Flash>) -> Markup {
    let body = html! {
        h1 { "Banks" }
        div class="wide-table" {
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "State" } th { "Thresholds" } th { "Text list" } th { "Description" } } }
                tbody {
                    @for b in banks {
                        tr {
                            td { a href=(format!("/ui/banks/{}", b.id)) { (b.name) } }
                            td { span class=(format!("tag {}", b.kind)) { (b.kind) } }
                            td { @if b.enabled { "enabled" } @else { span class="tag off" { "disabled" } } }
                            td { @for (t, v) in &b.thresholds { code { (t) "=" (v) } " " } }
                            td {
                                @if let Some(v) = b.text_equivalences_version { "version " (v) } @else { "none" }
                                @if b.text_items_older_list > 0 { " (" (b.text_items_older_list) " items on an older list)" }
                            }
                            td { (b.description) }
                        }
                    }
                }
            }
        }
        @if viewer.can_write_banks {
            h2 { "Create a bank" }
            form class="panel" method="post" action="/ui/banks" {
                (csrf_field(&viewer.csrf))
                label for="name" { "Name" }
                input id="name" name="name" type="text" required maxlength="100";
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="block" { "block — report matches" }
                    option value="allow" { "allow — known benign, suppresses block hits" }
                }
                label for="description" { "Description" }
                input id="description" name="description" type="text" maxlength="500";
                (threshold_inputs(&[]))
                (equivalence_input(""))
                p { button type="submit" { "Create bank" } }
            }
        }
    };
    layout("Banks", "banks", Some(viewer), flash, body)
}

fn on_off(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}

fn threshold_inputs(current: &[(String, f64)]) -> Markup {
    let get = |k: &str| {
        current
            .iter()
            .find(|(t, _)| t == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    html! {
        fieldset {
            legend { "Thresholds (blank = engine default)" }
            label for="t_pdq" { "PDQ: max Hamming distance (0–256)" }
            input id="t_pdq" name="t_pdq" type="number" min="0" max="256" step="1" value=(get("pdq"));
            label for="t_vpdq" { "vPDQ: max Hamming distance per frame (0–256)" }
            input id="t_vpdq" name="t_vpdq" type="number" min="0" max="256" step="1" value=(get("vpdq"));
            label for="t_text" { "Text: min similarity (0–1)" }
            input id="t_text" name="t_text_minhash" type="number" min="0" max="1" step="0.01" value=(get("text_minhash"));
            label for="t_vpdq_query_pct" { "vPDQ: min share of the upload's frames matched, % (default 80)" }
            input id="t_vpdq_query_pct" name="t_vpdq_query_pct" type="number" min="0" max="100" step="any" value=(get("vpdq_query_pct"));
            label for="t_vpdq_compared_pct" { "vPDQ: min share of the bank video's frames matched, % (default 0)" }
            input id="t_vpdq_compared_pct" name="t_vpdq_compared_pct" type="number" min="0" max="100" step="any" value=(get("vpdq_compared_pct"));
        }
    }
}

/// The text-equivalence list textarea of the bank forms.
fn equivalence_input(current: &str) -> Markup {
    html! {
        label for="text_equivalences" { "Text equivalence list (optional)" }
        p class="hint" id="text_equivalences_hint" {
            "One group per line, terms separated by “=”, e.g. "
            code { "daesh = isis = isil = islamic state" } ". Lines starting with # are comments. "
            "Applied to this bank's text when it is added and to looked-up text. "
            "Changing it keeps older items matching under the list they were added with. "
            "Leave blank for none."
        }
        textarea id="text_equivalences" name="text_equivalences" rows="4" aria-describedby="text_equivalences_hint" { (current) }
    }
}

#[derive(Clone, Debug)]
pub struct ContentView {
    pub id: i64,
    pub enabled: bool,
    pub labels: Vec<String>,
    pub note: String,
    pub quarantine: Option<(String, i64)>,
    pub signals: Vec<(String, String)>,
    pub created_at: i64,
}

pub fn bank_detail(
    viewer: &Viewer,
    bank: &BankRowView,
    items: &[ContentView],
    flash: Option<&Flash>,
) -> Markup {
    let quarantined: Vec<&ContentView> = items.iter().filter(|c| c.quarantine.is_some()).collect();
    let body = html! {
        h1 { "Bank: " (bank.name) " " span class=(format!("tag {}", bank.kind)) { (bank.kind) } }
        p { (bank.description) }
        @if let Some(v) = bank.text_equivalences_version {
            p id="equivalences-state" {
                "Text equivalence list: version " (v) ", "
                (bank.text_equivalences.lines().filter(|l| l.contains('=') && !l.trim_start().starts_with('#')).count())
                " group(s)."
            }
        }
        p id="matching-state" {
            "Robust matching: rotations/flips " (on_off(bank.matching.dihedral))
            ", crop windows " (on_off(bank.matching.window))
            ", parts " (on_off(bank.matching.part))
            ", alignment refinement " (bank.matching.refine_word())
            " (" (if bank.refining { "refining" } else { "not refining" }) ", "
            (bank.held_originals) " file-added original(s) held; automatic refines up to "
            (echotrace_engine::robust::REFINE_AUTO_MAX_HELD) ")."
        }
        @if bank.text_items_older_list > 0 {
            p id="equivalences-older" class="flash" {
                (bank.text_items_older_list)
                " text item(s) were added under an older (or no) equivalence list. They keep matching "
                "under the list they were added with; re-add them to use the current list."
            }
        }
        @if viewer.can_write_banks {
            details class="panel" {
                summary { "Edit bank" }
                form method="post" action=(format!("/ui/banks/{}", bank.id)) {
                    (csrf_field(&viewer.csrf))
                    label for="description" { "Description" }
                    input id="description" name="description" type="text" value=(bank.description) maxlength="500";
                    label class="row" { input type="checkbox" name="enabled" value="1" checked[bank.enabled]; "Enabled" }
                    (threshold_inputs(&bank.thresholds))
                    (equivalence_input(&bank.text_equivalences))
                    label for="refine" { "Alignment refinement (a lookup that refines costs ≈ 6–9× a plain one)" }
                    select id="refine" name="refine" {
                        @for (word, text) in [("auto", "automatic (on up to the held-original limit)"), ("on", "on"), ("off", "off")] {
                            option value=(word) selected[bank.matching.refine_word() == word] { (text) }
                        }
                    }
                    p { button type="submit" { "Save bank" } }
                }
            }
            div class="grid" {
                form class="panel" method="post" action=(format!("/ui/banks/{}/content", bank.id)) enctype="multipart/form-data" {
                    (csrf_field(&viewer.csrf))
                    h2 { "Add by upload" }
                    label for="file" { "File (image, video or text)" }
                    input id="file" name="file" type="file" required;
                    (content_meta_inputs("u"))
                    p { button type="submit" { "Hash and add" } }
                }
                form class="panel" method="post" action=(format!("/ui/banks/{}/content", bank.id)) enctype="multipart/form-data" {
                    (csrf_field(&viewer.csrf))
                    h2 { "Add text" }
                    label for="text" { "Text" }
                    textarea id="text" name="text" required {}
                    (content_meta_inputs("t"))
                    p { button type="submit" { "Add text" } }
                }
                form class="panel" method="post" action=(format!("/ui/banks/{}/content", bank.id)) enctype="multipart/form-data" {
                    (csrf_field(&viewer.csrf))
                    h2 { "Add hashes (CSV)" }
                    label for="csv" { "One item per line: signal_type,value[,label;label][,note] — e.g. pdq,<64 hex>" }
                    textarea id="csv" name="csv" required {}
                    p { button type="submit" { "Add hashes" } }
                }
            }
        }
        @if !quarantined.is_empty() {
            h2 { "Quarantined items" }
            table {
                thead { tr { th { "Item" } th { "Reason" } th { "Since" } } }
                tbody { @for c in &quarantined {
                    @if let Some((reason, at)) = &c.quarantine {
                        tr { td { "#" (c.id) } td { (reason) } td { (fmt_ts(*at)) } }
                    }
                } }
            }
        }
        h2 { "Items (" (items.len()) ")" }
        div class="wide-table" {
            table {
                thead { tr { th { "Item" } th { "Labels" } th { "Note" } th { "Signals" } th { "State" } th { "Action" } } }
                tbody {
                    @for c in items {
                        tr {
                            td { "#" (c.id) }
                            td { @for l in &c.labels { span class="tag" { (l) } } }
                            td { (c.note) }
                            td { @for (t, v) in &c.signals { div { code { (t) } " " code class="hash" { (v.chars().take(24).collect::<String>()) @if v.chars().count() > 24 { "…" } } } } }
                            td {
                                @if let Some((reason, _)) = &c.quarantine { span class="tag off" title=(reason) { "quarantined" } " " }
                                @if c.enabled { "enabled" } @else { span class="tag off" { "disabled" } }
                            }
                            td {
                                @if viewer.can_write_banks {
                                    form class="inline" method="post" action=(format!("/ui/content/{}/toggle", c.id)) {
                                        (csrf_field(&viewer.csrf))
                                        input type="hidden" name="bank" value=(bank.id);
                                        @if c.enabled { button type="submit" class="secondary" name="enabled" value="0" { "Disable" } }
                                        @else { button type="submit" class="secondary" name="enabled" value="1" { "Enable" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        &format!("Bank {}", bank.name),
        "banks",
        Some(viewer),
        flash,
        body,
    )
}

fn content_meta_inputs(prefix: &str) -> Markup {
    html! {
        label for=(format!("{prefix}-labels")) { "Labels (comma-separated)" }
        input id=(format!("{prefix}-labels")) name="labels" type="text" maxlength="500";
        label for=(format!("{prefix}-note")) { "Note" }
        input id=(format!("{prefix}-note")) name="note" type="text" maxlength="1000";
    }
}

// ----- match debugger ---------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct DebugHit {
    pub bank_id: i64,
    pub bank_name: String,
    pub bank_kind: String,
    pub content_id: i64,
    pub labels: Vec<String>,
    pub signal_type: String,
    pub value: String,
    pub score: String,
    pub threshold: String,
    /// `match`, `no` or `suppressed`.
    pub verdict: &'static str,
    pub why: String,
}

#[derive(Clone, Debug, Default)]
pub struct DebugView {
    pub query_signals: Vec<(String, String)>,
    pub hits: Vec<DebugHit>,
    pub radius_note: String,
    pub ran: bool,
    /// OCR status and what OCR read from the upload (never stored).
    pub ocr_status: Option<echotrace_engine::ocr::OcrStatus>,
    pub ocr: Option<echotrace_engine::ocr::OcrReading>,
    /// What a lookup would match through every channel (robust matching).
    pub channels: Vec<echotrace_engine::robust::MatchPreview>,
}

/// The upload's outline with the query rectangle and, beside it, the bank
/// original's outline with the window: a drawing of how a derived channel
/// matched (the debugger keeps no media to draw on).
fn channel_drawing(d: &echotrace_engine::robust::ChannelDetail) -> Markup {
    let q = query_overlay(d);
    let b = bank_overlay(d);
    html! {
        @if q.is_some() || b.is_some() {
            span class="channel-drawing" {
                @if let Some(q) = q { span class="frame" title="upload: the rectangle that matched" { (overlay_svg(Some(q))) } }
                @if let Some(b) = b { span class="frame" title="bank original: the window that matched" { (overlay_svg(Some(b))) } }
            }
        }
    }
}

pub fn debugger(viewer: &Viewer, d: &DebugView, flash: Option<&Flash>) -> Markup {
    let body = html! {
        h1 { "Match debugger" }
        p class="muted" { "Shows every bank item near the query — also those that would not match — and why. Nothing is recorded as a submission." }
        form class="panel" method="post" action="/ui/debug" enctype="multipart/form-data" {
            (csrf_field(&viewer.csrf))
            div class="grid" {
                div { label for="dfile" { "Upload a file" } input id="dfile" name="file" type="file"; }
                div { label for="dtext" { "or paste text" } textarea id="dtext" name="text" {} }
                div { label for="dhash" { "or a hash: type,value (e.g. pdq,<64 hex>) or bare 64-hex PDQ" } input id="dhash" name="hash" type="text"; }
            }
            p { button type="submit" { "Explain matches" } }
        }
        @if d.ran {
            h2 { "Query signals" }
            ul { @for (t, v) in &d.query_signals { li { code { (t) } " " code class="hash" { (v) } } } }
            @if let Some(status) = &d.ocr_status { (super::ocr::panel(status, d.ocr.as_ref())) }
            h2 { "Bank items within the search radius" }
            p class="muted" { (d.radius_note) }
            @if d.hits.is_empty() { p class="panel" { "No bank item within the radius." } }
            @else {
                div class="wide-table" {
                    table id="debug-hits" {
                        thead { tr { th { "Bank" } th { "Item" } th { "Signal" } th { "Distance / similarity" } th { "Threshold" } th { "Result" } th { "Why" } } }
                        tbody { @for h in &d.hits {
                            tr {
                                td { a href=(format!("/ui/banks/{}", h.bank_id)) { (h.bank_name) } " " span class=(format!("tag {}", h.bank_kind)) { (h.bank_kind) } }
                                td { "#" (h.content_id) " " @for l in &h.labels { span class="tag" { (l) } } }
                                td { code { (h.signal_type) } }
                                td class="num" { (h.score) }
                                td class="num" { (h.threshold) }
                                td { @match h.verdict {
                                    "match" => { span class="why-ok" { "match" } }
                                    "suppressed" => { span class="why-sup" { "suppressed" } }
                                    _ => { span class="why-no" { "no match" } }
                                } }
                                td { (h.why) }
                            }
                        } }
                    }
                }
            }
            @if !d.channels.is_empty() {
                h2 { "What a lookup would match, by channel" }
                div class="wide-table" {
                    table id="debug-channels" {
                        thead { tr { th { "Bank" } th { "Item" } th { "Signal" } th { "Channel" } th { "Distance / share" } th { "How" } th { "Drawing" } } }
                        tbody { @for c in &d.channels {
                            tr {
                                td { a href=(format!("/ui/banks/{}", c.bank_id)) { (c.bank_name) } }
                                td { "#" (c.content_id) }
                                td { code { (c.signal_type) } }
                                td { strong { (c.channel) } }
                                td class="num" { @match (c.distance, c.similarity) {
                                    (Some(x), None) => { (x) }
                                    (_, Some(sim)) => { (format!("{:.0}%", sim * 100.0)) }
                                    _ => { "—" }
                                } }
                                td { (channel_summary(&c.channel, c.detail.as_ref())) }
                                td { @if let Some(det) = &c.detail { (channel_drawing(det)) } }
                            }
                        } }
                    }
                }
            }
        }
    };
    layout("Match debugger", "debug", Some(viewer), flash, body)
}

// ----- audit, keys, settings ---------------------------------------------------------

#[derive(Clone, Debug)]
pub struct AuditRowView {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

pub fn audit(
    viewer: &Viewer,
    rows: &[AuditRowView],
    actor: &str,
    action: &str,
    target: &str,
) -> Markup {
    let body = html! {
        h1 { "Audit log" }
        form class="panel row" method="get" action="/ui/audit" role="search" {
            div { label for="f-actor" { "Actor" } input id="f-actor" name="actor" type="text" value=(actor); }
            div { label for="f-action" { "Action" } input id="f-action" name="action" type="text" value=(action); }
            div { label for="f-target" { "Target" } input id="f-target" name="target" type="text" value=(target); }
            div { button type="submit" { "Filter" } }
        }
        div class="wide-table" {
            table {
                thead { tr { th { "#" } th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Detail" } } }
                tbody { @for r in rows {
                    tr { td { (r.id) } td { (fmt_ts(r.at)) } td { (r.actor) } td { code { (r.action) } } td { (r.target) } td { code class="hash" { (r.detail) } } }
                } }
            }
        }
    };
    layout("Audit log", "audit", Some(viewer), None, body)
}

#[derive(Clone, Debug)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn keys(
    viewer: &Viewer,
    keys: &[KeyView],
    new_key: Option<&str>,
    flash: Option<&Flash>,
) -> Markup {
    let body = html! {
        h1 { "API keys" }
        @if let Some(k) = new_key {
            div class="flash ok" role="status" {
                p { "New key — copy it now, it is shown only once:" }
                p { code id="new-key" class="hash" { (k) } }
            }
        }
        table {
            thead { tr { th { "#" } th { "Name" } th { "Role" } th { "Created" } th { "State" } th { "Action" } } }
            tbody { @for k in keys {
                tr {
                    td { (k.id) } td { (k.name) } td { (k.role) } td { (fmt_ts(k.created_at)) }
                    td { @if let Some(r) = k.revoked_at { "revoked " (fmt_ts(r)) } @else { "active" } }
                    td { @if k.revoked_at.is_none() {
                        form class="inline" method="post" action=(format!("/ui/keys/{}/revoke", k.id)) {
                            (csrf_field(&viewer.csrf))
                            button type="submit" class="secondary" { "Revoke" }
                        }
                    } }
                }
            } }
        }
        h2 { "Create a key" }
        form class="panel" method="post" action="/ui/keys" {
            (csrf_field(&viewer.csrf))
            label for="kname" { "Name" }
            input id="kname" name="name" type="text" required maxlength="100";
            label for="krole" { "Role" }
            select id="krole" name="role" {
                option value="matcher" { "matcher — lookups only" }
                option value="reviewer" { "reviewer — read matches, decide" }
                option value="curator" { "curator — manage banks" }
                option value="admin" { "admin — everything" }
                option value="partner" { "partner — read the feeds published to it" }
            }
            p { button type="submit" { "Create key" } }
        }
    };
    layout("API keys", "keys", Some(viewer), flash, body)
}

pub fn settings(
    viewer: &Viewer,
    blur: bool,
    grey: bool,
    order: &str,
    flash: Option<&Flash>,
) -> Markup {
    let body = html! {
        h1 { "Settings" }
        form class="panel" method="post" action="/ui/settings" {
            (csrf_field(&viewer.csrf))
            fieldset {
                legend { "Retained media (wellness protections)" }
                label class="row" { input type="checkbox" name="blur" value="1" checked[blur]; "Blur media until I reveal it" }
                label class="row" { input type="checkbox" name="grey" value="1" checked[grey]; "Show media in greyscale until I reveal it" }
            }
            label for="order" { "Queue order" }
            select id="order" name="order" {
                option value="newest" selected[order == "newest"] { "Newest first" }
                option value="priority" selected[order == "priority"] { "Highest priority first (closest matches)" }
            }
            p { button type="submit" { "Save settings" } }
        }
    };
    layout("Settings", "settings", Some(viewer), flash, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formatting() {
        assert_eq!(fmt_ts(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_ts(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(fmt_day(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn chart_has_one_bar_per_day() {
        let days: Vec<(i64, i64)> = (0..30).map(|i| (i * 86_400_000, i % 4)).collect();
        let svg = per_day_chart(&days).into_string();
        assert_eq!(svg.matches("<rect").count(), 30);
        assert!(svg.contains("role=\"img\""));
    }

    #[test]
    fn templates_escape() {
        let v = Viewer {
            username: "<script>alert(1)</script>".into(),
            role: "admin",
            csrf: "tok\"en".into(),
            can_decide: true,
            can_write_banks: true,
            can_audit: true,
            can_admin: true,
        };
        let page = settings(&v, true, true, "newest", None).into_string();
        assert!(!page.contains("<script>alert(1)"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("value=\"tok&quot;en\""));
    }
}
