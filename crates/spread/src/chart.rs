//! Inline SVG charts (maud, so every label is escaped): survival curves on
//! a log time axis, bars per day, and share bars. Used by the HTML report
//! and the console; no scripts, no external resources. Each chart carries
//! `role="img"`, a `<title>` and an `aria-label` summary; the report and
//! console print the same figures as tables.

use maud::{html, Markup};

/// Series colours (Okabe–Ito, distinguishable with colour-vision
/// deficiencies) and dash patterns (distinguishable in greyscale).
const COLOURS: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
];
const DASHES: [&str; 8] = ["", "6 3", "2 3", "8 3 2 3", "", "6 3", "2 3", "8 3 2 3"];

/// One survival curve to draw: `[hours, S]` points (steps), an optional
/// band `[hours, lower, upper]` and an optional lower-bound curve.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<[f64; 2]>,
    pub band: Vec<[f64; 3]>,
    pub lower_bound: Vec<[f64; 2]>,
}

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
const T_MIN: f64 = 1.0 / 60.0;

struct Axis {
    lo: f64,
    hi: f64,
}

impl Axis {
    fn x(&self, hours: f64) -> f64 {
        let t = hours.max(T_MIN).log10();
        let f = ((t - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        LEFT + f * (W - LEFT - RIGHT)
    }
}

fn y(s: f64) -> f64 {
    TOP + (1.0 - s.clamp(0.0, 1.0)) * (H - TOP - BOTTOM)
}

fn step_path(axis: &Axis, pts: &[[f64; 2]], end: f64) -> String {
    let mut d = format!("M{:.1},{:.1}", axis.x(T_MIN), y(1.0));
    for p in pts {
        d.push_str(&format!("H{:.1}V{:.1}", axis.x(p[0]), y(p[1])));
    }
    d.push_str(&format!("H{:.1}", axis.x(end)));
    d
}

fn band_path(axis: &Axis, band: &[[f64; 3]], end: f64) -> String {
    if band.is_empty() {
        return String::new();
    }
    let mut upper = format!("M{:.1},{:.1}", axis.x(T_MIN), y(1.0));
    for p in band {
        upper.push_str(&format!("H{:.1}V{:.1}", axis.x(p[0]), y(p[2])));
    }
    upper.push_str(&format!("H{:.1}", axis.x(end)));
    let last_lower = band.last().map_or(1.0, |p| p[1]);
    upper.push_str(&format!("V{:.1}", y(last_lower)));
    for i in (0..band.len()).rev() {
        let prev_lower = if i == 0 { 1.0 } else { band[i - 1][1] };
        upper.push_str(&format!("H{:.1}V{:.1}", axis.x(band[i][0]), y(prev_lower)));
    }
    upper.push_str(&format!("H{:.1}Z", axis.x(T_MIN)));
    upper
}

/// Survival curves S(t) on a log time axis (1 min … the longest time).
pub fn survival_chart(title: &str, series: &[Series<'_>]) -> Markup {
    let t_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[0]))
        .fold(24.0f64, f64::max)
        * 1.1;
    let axis = Axis {
        lo: T_MIN.log10(),
        hi: t_max.log10(),
    };
    let ticks: Vec<(f64, &str)> = [
        (1.0 / 60.0, "1 min"),
        (10.0 / 60.0, "10 min"),
        (1.0, "1 h"),
        (6.0, "6 h"),
        (24.0, "1 d"),
        (168.0, "7 d"),
        (720.0, "30 d"),
        (2160.0, "90 d"),
        (8760.0, "1 y"),
    ]
    .into_iter()
    .filter(|(t, _)| *t <= t_max)
    .collect();
    let label = format!(
        "{title}: share of copies still up over time since first seen, log time axis; {}",
        series
            .iter()
            .map(|s| format!(
                "{} ends at {:.0}%",
                s.name,
                s.points.last().map_or(100.0, |p| p[1] * 100.0)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    html! {
        svg class="survival" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label)
            xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            @for s in [0.0, 0.25, 0.5, 0.75, 1.0] {
                line x1=(LEFT) x2=(W - RIGHT) y1=(y(s)) y2=(y(s)) stroke="#d0d4da" stroke-width="1" {}
                text x=(LEFT - 4.0) y=(y(s) + 4.0) text-anchor="end" font-size="11" fill="#444" {
                    (format!("{:.0}%", s * 100.0))
                }
            }
            @for (t, name) in &ticks {
                line x1=(axis.x(*t)) x2=(axis.x(*t)) y1=(TOP) y2=(H - BOTTOM) stroke="#e4e7eb" stroke-width="1" {}
                text x=(axis.x(*t)) y=(H - BOTTOM + 14.0) text-anchor="middle" font-size="11" fill="#444" { (name) }
            }
            text x=(LEFT + (W - LEFT - RIGHT) / 2.0) y=(H - 6.0) text-anchor="middle" font-size="11" fill="#444" {
                "time since first seen (log scale)"
            }
            @for (i, s) in series.iter().enumerate() {
                @let colour = COLOURS[i % COLOURS.len()];
                @if !s.band.is_empty() {
                    path d=(band_path(&axis, &s.band, t_max)) fill=(colour) fill-opacity="0.12" stroke="none" {}
                }
                @if !s.lower_bound.is_empty() {
                    path d=(step_path(&axis, &s.lower_bound, t_max)) fill="none" stroke=(colour)
                        stroke-width="1" stroke-dasharray="1 3" {}
                }
                path class="curve" data-series=(s.name) d=(step_path(&axis, &s.points, t_max)) fill="none"
                    stroke=(colour) stroke-width="2" stroke-dasharray=(DASHES[i % DASHES.len()]) {}
            }
        }
        @if series.len() > 1 || series.iter().any(|s| !s.band.is_empty()) {
            ul class="legend" {
                @for (i, s) in series.iter().enumerate() {
                    li {
                        svg width="28" height="10" aria-hidden="true" xmlns="http://www.w3.org/2000/svg" {
                            line x1="0" y1="5" x2="28" y2="5" stroke=(COLOURS[i % COLOURS.len()]) stroke-width="2"
                                stroke-dasharray=(DASHES[i % DASHES.len()]) {}
                        }
                        " " (s.name)
                    }
                }
                @if series.iter().any(|s| !s.band.is_empty()) {
                    li class="muted" { "shaded: 95 % confidence band" }
                }
                @if series.iter().any(|s| !s.lower_bound.is_empty()) {
                    li class="muted" { "dotted: lower bound (removals at the last live check)" }
                }
            }
        }
    }
}

/// Vertical bars, one per (label, value), e.g. sightings per day.
pub fn bars(title: &str, values: &[(String, i64)]) -> Markup {
    let max = values.iter().map(|v| v.1).max().unwrap_or(0).max(1);
    let n = values.len().max(1) as f64;
    let (w, h, pad) = (600.0, 160.0, 28.0);
    let bw = (w - pad) / n;
    let total: i64 = values.iter().map(|v| v.1).sum();
    let label = format!("{title}: {total} in total, at most {max} on one day");
    html! {
        svg viewBox=(format!("0 0 {w} {}", h + 20.0)) role="img" aria-label=(label)
            xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            line x1=(pad) y1=(h) x2=(w) y2=(h) stroke="#888" stroke-width="1" {}
            text x="0" y="10" font-size="11" fill="#444" { (max) }
            text x="0" y=(h) font-size="11" fill="#444" { "0" }
            @for (i, (name, v)) in values.iter().enumerate() {
                @let bh = (*v as f64) * (h - 12.0) / (max as f64);
                @let x = pad + (i as f64) * bw;
                rect class="bar" x=(format!("{:.1}", x + 1.0)) y=(format!("{:.1}", h - bh))
                    width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{bh:.1}")) fill="#0072b2" {
                    title { (name) ": " (v) }
                }
                @if i % 7 == 0 {
                    text x=(format!("{x:.1}")) y=(h + 14.0) font-size="10" fill="#444" { (name.get(5..).unwrap_or(name)) }
                }
            }
        }
    }
}

/// Horizontal share bars (0–100 %), e.g. % removed by platform.
pub fn share_bars(title: &str, rows: &[(String, f64, u64)]) -> Markup {
    let row_h = 22.0;
    let h = row_h * rows.len().max(1) as f64 + 8.0;
    let (w, label_w) = (600.0, 180.0);
    let label = format!(
        "{title}: {}",
        rows.iter()
            .map(|(n, p, c)| format!("{n} {p:.0}% of {c}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    html! {
        svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            @for (i, (name, p, count)) in rows.iter().enumerate() {
                @let y0 = 4.0 + (i as f64) * row_h;
                @let bw = (w - label_w - 70.0) * p.clamp(0.0, 100.0) / 100.0;
                text x=(label_w - 6.0) y=(y0 + 14.0) text-anchor="end" font-size="12" fill="#222" {
                    (truncate(name, 26))
                }
                rect x=(label_w) y=(y0 + 3.0) width=(w - label_w - 70.0) height=(row_h - 8.0) fill="#e8ecf1" {}
                rect class="share" x=(label_w) y=(y0 + 3.0) width=(format!("{bw:.1}")) height=(row_h - 8.0) fill="#009e73" {}
                text x=(w - 64.0) y=(y0 + 14.0) font-size="12" fill="#222" { (format!("{p:.0}% of {count}")) }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One row of a cluster timeline: a copy from first seen to now.
pub struct Lane {
    pub label: String,
    pub from: i64,
    /// `live`, `removal_pending`, `removed` or `untracked`.
    pub status: String,
    /// (time, kind): `removed`, `resurfaced`, `notice`.
    pub marks: Vec<(i64, String)>,
}

fn status_colour(s: &str) -> &'static str {
    match s {
        "removed" => "#009e73",
        "removal_pending" => "#e69f00",
        "untracked" => "#8a94a3",
        _ => "#d55e00",
    }
}

/// The copies of a cluster on a time axis (first seen → `end`), coloured
/// by status, with removal (✕), resurfacing (●) and notice (▲) marks.
pub fn timeline(title: &str, lanes: &[Lane], end: i64) -> Markup {
    let start = lanes.iter().map(|l| l.from).min().unwrap_or(end);
    let span = (end - start).max(1) as f64;
    let (w, left, lane_h, top) = (640.0, 150.0, 18.0, 18.0);
    let h = top + lane_h * lanes.len().max(1) as f64 + 6.0;
    let x = |t: i64| left + ((t - start) as f64 / span).clamp(0.0, 1.0) * (w - left - 10.0);
    let label = format!(
        "{title}: {} copies from {} to {}",
        lanes.len(),
        crate::time::fmt_day(start),
        crate::time::fmt_day(end)
    );
    html! {
        svg class="timeline" viewBox=(format!("0 0 {w} {h:.0}")) role="img" aria-label=(label)
            xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            text x=(left) y="12" font-size="11" fill="#444" { (crate::time::fmt_day(start)) }
            text x=(w - 10.0) y="12" font-size="11" fill="#444" text-anchor="end" { (crate::time::fmt_day(end)) }
            @for (i, l) in lanes.iter().enumerate() {
                @let y0 = top + (i as f64) * lane_h;
                text x=(left - 6.0) y=(y0 + 12.0) text-anchor="end" font-size="11" fill="#222" { (truncate(&l.label, 24)) }
                rect class="lane" data-status=(l.status) x=(format!("{:.1}", x(l.from))) y=(y0 + 4.0)
                    width=(format!("{:.1}", (x(end) - x(l.from)).max(2.0))) height=(lane_h - 8.0)
                    fill=(status_colour(&l.status)) fill-opacity="0.55" {
                    title { (l.label) ": " (l.status) }
                }
                @for (t, kind) in &l.marks {
                    @let cx = x(*t);
                    @let cy = y0 + lane_h / 2.0;
                    @match kind.as_str() {
                        "removed" => {
                            path d=(format!("M{:.1},{:.1}l8,8m0,-8l-8,8", cx - 4.0, cy - 4.0)) stroke="#1b1f24" stroke-width="2" {
                                title { "removed " (crate::time::fmt_ts(*t)) }
                            }
                        }
                        "resurfaced" => {
                            circle cx=(format!("{cx:.1}")) cy=(format!("{cy:.1}")) r="4" fill="#cc79a7" stroke="#1b1f24" {
                                title { "back up " (crate::time::fmt_ts(*t)) }
                            }
                        }
                        _ => {
                            path d=(format!("M{:.1},{:.1}l5,9h-10z", cx, cy - 5.0)) fill="#0072b2" {
                                title { "notice " (crate::time::fmt_ts(*t)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
