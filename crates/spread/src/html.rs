//! The HTML transparency report: one self-contained file — inline CSS,
//! inline SVG charts, no scripts, no fonts, no images, no links out — with
//! a Content-Security-Policy of `default-src 'none'` so even a viewer that
//! would follow something cannot make a request. Prints and reads at phone
//! width.

use maud::{html, Markup, DOCTYPE};

use crate::chart::{share_bars, survival_chart, Series};
use crate::report::{fmt_hours as hours, Breakdown, Curve, Report};
use crate::time::fmt_ts;

const CSS: &str = "
:root { --ink: #1c2430; --muted: #5a6472; --line: #d8dde3; --card: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--ink);
       margin: 0 auto; padding: 1.2rem; max-width: 980px; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
.muted, .legend .muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .6rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.card .v { font-size: 1.5rem; font-weight: 650; display: block; }
.card .k { color: var(--muted); font-size: .85rem; }
svg { width: 100%; height: auto; display: block; }
.legend { list-style: none; padding: 0; margin: .3rem 0 0; display: flex; flex-wrap: wrap; gap: .3rem 1rem;
          font-size: .85rem; }
.legend svg { display: inline-block; width: 28px; height: 10px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.method p { margin: .4rem 0; }
footer { margin-top: 2rem; color: var(--muted); font-size: .8rem; }
@media print { body { max-width: none; } h2 { break-after: avoid; } svg { break-inside: avoid; } }
";

fn ci(c: &Curve) -> String {
    format!(
        "{} – {}",
        hours(c.median_ci_hours[0]),
        hours(c.median_ci_hours[1])
    )
}

fn pct(p: f64) -> String {
    format!("{p:.1}%")
}

fn series(c: &Curve, with_band: bool) -> Series<'_> {
    Series {
        name: &c.name,
        points: c.points.iter().map(|p| [p[0], p[1]]).collect(),
        band: if with_band {
            c.points.iter().map(|p| [p[0], p[2], p[3]]).collect()
        } else {
            Vec::new()
        },
        lower_bound: if with_band {
            c.lower_bound.clone()
        } else {
            Vec::new()
        },
    }
}

fn breakdown_table(caption: &str, rows: &[Breakdown]) -> Markup {
    html! {
        div class="scroll" {
            table {
                caption class="muted" { (caption) }
                thead { tr {
                    th { "Name" } th class="num" { "URLs found" } th class="num" { "Copies" }
                    th class="num" { "Removed" } th class="num" { "% removed" }
                    th class="num" { "Noticed" } th class="num" { "Median up" } th { "95 % CI" }
                    th class="num" { "≤ 1 h" } th class="num" { "≤ 24 h" } th class="num" { "≤ 7 d" }
                    th class="num" { "Censored" }
                } }
                tbody {
                    @for b in rows {
                        tr {
                            td { (b.name) }
                            td class="num" { (b.urls_found) }
                            td class="num" { (b.copies) }
                            td class="num" { (b.removed) }
                            td class="num" { (pct(b.removed_pct)) }
                            td class="num" { (b.noticed) }
                            td class="num" { (hours(b.curve.median_hours)) }
                            td { (ci(&b.curve)) }
                            td class="num" { (pct(b.curve.removed_within.h1 * 100.0)) }
                            td class="num" { (pct(b.curve.removed_within.h24 * 100.0)) }
                            td class="num" { (pct(b.curve.removed_within.d7 * 100.0)) }
                            td class="num" { (b.curve.censored) }
                        }
                    }
                }
            }
        }
    }
}

/// The whole report as one HTML document.
pub fn render(r: &Report) -> String {
    let t = &r.totals;
    let o = &r.overall;
    let shares: Vec<(String, f64, u64)> = r
        .by_platform
        .iter()
        .map(|b| (b.name.clone(), b.removed_pct, b.copies))
        .collect();
    let group_shares: Vec<(String, f64, u64)> = r
        .by_group
        .iter()
        .map(|b| (b.name.clone(), b.removed_pct, b.copies))
        .collect();
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'";
                meta name="referrer" content="no-referrer";
                title { (r.title) }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { (r.title) }
                    p class="muted" {
                        "Copies first seen " (fmt_ts(r.from)) " – " (fmt_ts(r.to))
                        ". Generated " (fmt_ts(r.generated_at)) " by echotrace."
                        @if r.redacted { " Platform and group names are redacted." }
                    }
                }
                section aria-labelledby="summary" {
                    h2 id="summary" { "Summary" }
                    div class="cards" {
                        div class="card" { span class="v" data-k="urls_found" { (t.urls_found) } span class="k" { "URLs found" } }
                        div class="card" { span class="v" data-k="notices_sent" { (t.notices_sent) } span class="k" { "notices sent" } }
                        div class="card" { span class="v" data-k="platforms_notified" { (t.platforms_notified) } span class="k" { "platforms notified" } }
                        div class="card" { span class="v" data-k="removed_pct" { (pct(t.removed_pct)) } span class="k" { "removed at the window's end (" (t.removed) " of " (t.copies) " copies)" } }
                        div class="card" { span class="v" data-k="median" { (hours(o.median_hours)) } span class="k" { "median time to removal (95 % CI " (ci(o)) ")" } }
                        div class="card" { span class="v" { (pct(o.removed_within.h24 * 100.0)) } span class="k" { "removed within 24 h (" (pct(o.removed_within.h1 * 100.0)) " within 1 h, " (pct(o.removed_within.d7 * 100.0)) " within 7 d)" } }
                        div class="card" { span class="v" data-k="resurfacing_rate" { (pct(t.resurfacing_rate * 100.0)) } span class="k" { "resurfacing rate (" (t.resurfaced) " of " (t.confirmed_removals) " removed copies came back)" } }
                        div class="card" { span class="v" { (t.clusters_reuploaded) " / " (t.clusters_with_removal) } span class="k" { "clusters re-uploaded after a removal" } }
                    }
                }
                section aria-labelledby="survival" {
                    h2 id="survival" { "How long copies stayed up" }
                    (survival_chart("All copies", &[series(o, true)]))
                    p class="muted" {
                        (o.n) " copies: " (o.removed) " removals observed, " (o.censored)
                        " censored (still up, or not confirmed removed, at the window's end)."
                    }
                    @if r.by_platform.len() > 1 {
                        h2 id="by-platform-curve" { "By platform" }
                        (survival_chart("By platform", &r.by_platform.iter().map(|b| series(&b.curve, false)).collect::<Vec<_>>()))
                    }
                    @if r.by_notice.len() > 1 {
                        h2 id="by-notice-curve" { "With and without a notice" }
                        (survival_chart("With and without a notice", &r.by_notice.iter().map(|b| series(&b.curve, false)).collect::<Vec<_>>()))
                    }
                }
                section aria-labelledby="removed" {
                    h2 id="removed" { "% removed by platform and group" }
                    (share_bars("% removed by platform", &shares))
                    @if !group_shares.is_empty() {
                        (share_bars("% removed by group", &group_shares))
                    }
                    (breakdown_table("By platform", &r.by_platform))
                    (breakdown_table("By group (bank item labels)", &r.by_group))
                    (breakdown_table("By content type", &r.by_content_type))
                    (breakdown_table("With and without a notice", &r.by_notice))
                }
                @if !r.logrank.is_empty() {
                    section aria-labelledby="tests" {
                        h2 id="tests" { "Log-rank tests" }
                        div class="scroll" { table {
                            thead { tr { th { "Between" } th { "Groups" } th class="num" { "χ²" } th class="num" { "p" } } }
                            tbody { @for l in &r.logrank {
                                tr { td { (l.between) } td { (l.a) " vs " (l.b) }
                                     td class="num" { (format!("{:.3}", l.statistic)) }
                                     td class="num" { (format!("{:.4}", l.p_value)) } }
                            } }
                        } }
                    }
                }
                section aria-labelledby="notices" {
                    h2 id="notices" { "Notices" }
                    @if r.notices.is_empty() { p class="muted" { "No notices were sent in this window." } }
                    @else {
                        div class="scroll" { table {
                            thead { tr { th { "Platform" } th class="num" { "Sent" } th class="num" { "Removed" }
                                         th class="num" { "Rejected" } th class="num" { "No response" } } }
                            tbody { @for n in &r.notices {
                                tr { td { (n.platform) } td class="num" { (n.sent) } td class="num" { (n.removed) }
                                     td class="num" { (n.rejected) } td class="num" { (n.no_response) } }
                            } }
                        } }
                    }
                }
                section aria-labelledby="checks" {
                    h2 id="checks" { "Liveness checks in the window" }
                    @if r.checks_by_state.is_empty() { p class="muted" { "No checks in this window." } }
                    @else {
                        div class="scroll" { table {
                            thead { tr { th { "Verdict" } th class="num" { "Checks" } } }
                            tbody { @for (s, n) in &r.checks_by_state { tr { td { code { (s) } } td class="num" { (n) } } } }
                        } }
                    }
                    @if !r.top_hosts.is_empty() {
                        h2 id="hosts" { "Top hosts" }
                        div class="scroll" { table {
                            thead { tr { th { "Host" } th class="num" { "Copies" } } }
                            tbody { @for (h, n) in &r.top_hosts { tr { td { (h) } td class="num" { (n) } } } }
                        } }
                    }
                }
                section class="method" aria-labelledby="method" {
                    h2 id="method" { "Methodology" }
                    @for p in &r.methodology { p { (p) } }
                }
                footer { "echotrace transparency report · self-contained: no scripts, no external resources." }
            }
        }
    };
    doc.into_string()
}
