//! The vPDQ evidence of a video match, computed at render time from the two
//! recorded signal strings: the query and compared shares and the
//! timestamps of the query frames that matched, drawn as a compact strip.
//!
//! Design decisions:
//! * No frame rule is re-implemented here: the shares come from
//!   [`vpdq::compare`], and "does this query frame match" is `compare` of a
//!   one-frame hash against the banked video (100 % query share ⇔ the frame
//!   passes the quality filter and lies within the distance threshold of a
//!   banked frame). Results are cached per distinct frame hash.
//! * Work is bounded: signals are stored already validated, but a hostile
//!   upload may still carry huge vPDQ signals, so above
//!   [`MAX_PAIR_COMPARISONS`] frame pairs the strip is not computed and the
//!   card says so.
//! * The strip is an SVG with presentation attributes (the console's CSP
//!   forbids inline styles), at most [`STRIP_BUCKETS`] ticks, with a text
//!   alternative (`role=img` + `<title>`) and the timestamps listed as text,
//!   collapsed after [`LIST_SHOWN`].
//!
//! **Frame thumbnails** (only with media retention on, issue 7):
//! * A retained video side of a vPDQ match shows up to [`THUMBS_SHOWN`]
//!   stills of its matched frames, spread evenly over them
//!   ([`thumb_timestamps`]): the submission's matched query frames, the bank
//!   item's matched banked frames. They are one media item: rendered
//!   blurred and greyscale by default (the user's settings) and revealed
//!   with the same one-at-a-time button as images.
//! * They are served by `GET /ui/matches/{id}/frames/{side}/{ms}`
//!   ([`frame_thumbnail`]): session-authenticated, `ReadMatches`, 404 when
//!   retention is off, and only for the timestamps the card shows (the
//!   handler recomputes them from the match), so the route cannot be used to
//!   pull arbitrary frames or to spawn unbounded decoders. Responses are
//!   `Cache-Control: private, no-store`.
//! * Decoding is `echotrace_signals::video::extract_thumbnails`: the
//!   hashing decoder's isolation and limits (pipe input, rlimits, timeout;
//!   an MP4 with its index last decodes from the pipe while small enough,
//!   else only in the operator's temp-file mode). One decode produces every
//!   still of a card side; at most [`THUMB_JOBS`] decodes run at once and one
//!   per video ([`Thumbnailer`] stripes a lock by video).
//! * Stills are cached **in memory only**, bounded to [`THUMB_CACHE_BYTES`]
//!   (oldest first out), never written to disk or to the database, and gone
//!   at restart. A video that fails to decode is remembered (bounded) so the
//!   page shows why instead of retrying on every load.
//! * Without ffmpeg (not found when the console first needs it) the strip
//!   is shown with a note and no thumbnails; the route answers 404.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use echotrace_engine::console::{self as cq, MediaOwner};
use echotrace_engine::{Operation, Thresholds};
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::{self, VpdqHash, VpdqMatchOptions};
use echotrace_signals::video::{
    extract_thumbnails, Ffmpeg, FfmpegConfig, ThumbnailOptions, VideoError,
};
use maud::{html, Markup};

use super::session::{error_response, Authed, UiPath};
use super::views::{Evidence, MatchCard};
use super::Ctx;

/// Above this many query×banked frame pairs the strip is skipped.
pub const MAX_PAIR_COMPARISONS: usize = 4_000_000;
/// Horizontal resolution of the strip (ticks are merged per bucket).
pub const STRIP_BUCKETS: usize = 100;
/// Timestamps listed before the rest is collapsed.
pub const LIST_SHOWN: usize = 20;
/// Timestamps listed at most inside the collapsed part.
pub const LIST_MAX: usize = 500;

/// What the card shows of a vPDQ match.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoStrip {
    /// Share (0–100) of the query's matchable frames that matched.
    pub query_pct: f64,
    /// Share (0–100) of the banked video's matchable frames that matched;
    /// `None` when the signals were too large to compare at render time.
    pub compared_pct: Option<f64>,
    /// Per-frame distance threshold used.
    pub distance_threshold: u32,
    /// Duration of the query video in seconds (last frame's timestamp).
    pub duration: f64,
    /// Timestamps (s) of matched query frames, ascending; `None` when the
    /// signals were too large to compare at render time.
    pub matched: Option<Vec<f64>>,
    /// Query frames with quality ≥ the quality threshold.
    pub quality_frames: usize,
    /// Timestamps (s) of banked frames that matched a query frame,
    /// ascending; `None` when not computed (as `matched`).
    pub matched_banked: Option<Vec<f64>>,
}

/// Parse both signals and compute the strip; `None` if either signal does
/// not parse (the card then falls back to the plain score). Above
/// [`MAX_PAIR_COMPARISONS`] nothing is compared: the query share is the
/// recorded one (`recorded_similarity` × 100) and the rest is left out.
pub fn compute(
    query_value: &str,
    matched_value: &str,
    distance_threshold: u32,
    recorded_similarity: Option<f64>,
) -> Option<VideoStrip> {
    let query = VpdqHash::from_signal_str(query_value).ok()?;
    let banked = VpdqHash::from_signal_str(matched_value).ok()?;
    let opts = VpdqMatchOptions {
        distance_threshold,
        ..VpdqMatchOptions::default()
    };
    let duration = query
        .features
        .iter()
        .map(|f| f.timestamp)
        .fold(0.0_f64, f64::max);
    let quality: Vec<_> = query
        .features
        .iter()
        .filter(|f| f.quality >= opts.quality_threshold)
        .collect();
    let banked_matchable = banked.matchable(opts.quality_threshold).len();
    if quality.len().saturating_mul(banked_matchable) > MAX_PAIR_COMPARISONS {
        return Some(VideoStrip {
            query_pct: recorded_similarity.unwrap_or(0.0) * 100.0,
            compared_pct: None,
            distance_threshold,
            duration,
            matched: None,
            quality_frames: quality.len(),
            matched_banked: None,
        });
    }
    let cmp = vpdq::compare(&query, &banked, &opts);
    let matched = {
        let mut verdict: HashMap<[u64; 4], bool> = HashMap::new();
        let mut out = Vec::new();
        for f in &quality {
            let hit = *verdict.entry(f.hash.to_words()).or_insert_with(|| {
                let one = VpdqHash {
                    features: vec![(*f).clone()],
                };
                vpdq::compare(&one, &banked, &opts).query_match_pct >= 100.0
            });
            if hit {
                out.push(f.timestamp);
            }
        }
        out.sort_by(|a, b| a.total_cmp(b));
        Some(out)
    };
    // The same rule the other way round: a banked frame matched when, as a
    // one-frame query against the query video, it scores 100 %.
    let matched_banked = {
        let mut verdict: HashMap<[u64; 4], bool> = HashMap::new();
        let mut out = Vec::new();
        for f in banked
            .features
            .iter()
            .filter(|f| f.quality >= opts.quality_threshold)
        {
            let hit = *verdict.entry(f.hash.to_words()).or_insert_with(|| {
                let one = VpdqHash {
                    features: vec![f.clone()],
                };
                vpdq::compare(&one, &query, &opts).query_match_pct >= 100.0
            });
            if hit {
                out.push(f.timestamp);
            }
        }
        out.sort_by(|a, b| a.total_cmp(b));
        Some(out)
    };
    Some(VideoStrip {
        query_pct: cmp.query_match_pct,
        compared_pct: Some(cmp.compared_match_pct),
        distance_threshold,
        duration,
        matched,
        quality_frames: quality.len(),
        matched_banked,
    })
}

// ----- frame thumbnails ---------------------------------------------------------

/// Stills shown per side of a card at most.
pub const THUMBS_SHOWN: usize = 8;
/// Memory for cached stills (JPEG bytes), all videos together.
pub const THUMB_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Decodes running at once.
pub const THUMB_JOBS: usize = 2;
/// Failed videos remembered (then the memory is cleared).
const FAILURES_KEPT: usize = 1024;
/// Lock stripes (one decode per video at a time).
const STRIPES: usize = 16;

/// Up to [`THUMBS_SHOWN`] of `matched` (ascending), spread evenly and
/// including the first and the last.
pub fn thumb_timestamps(matched: &[f64]) -> Vec<f64> {
    let n = matched.len();
    if n <= THUMBS_SHOWN {
        return matched.to_vec();
    }
    (0..THUMBS_SHOWN)
        .filter_map(|i| matched.get(i * (n - 1) / (THUMBS_SHOWN - 1)).copied())
        .collect()
}

/// A timestamp in whole milliseconds (how the route names a still).
pub fn millis(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 {
        (t * 1000.0).round() as u64
    } else {
        0
    }
}

/// Which video of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The uploaded video (matched query frames).
    Submission,
    /// The bank item's video (matched banked frames).
    Content,
}

impl Side {
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "submission" => Some(Side::Submission),
            "content" => Some(Side::Content),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Submission => "submission",
            Side::Content => "content",
        }
    }

    fn owner(self) -> MediaOwner {
        match self {
            Side::Submission => MediaOwner::Submission,
            Side::Content => MediaOwner::Content,
        }
    }

    /// This side's matched timestamps in a strip.
    fn matched(self, strip: &VideoStrip) -> Option<&[f64]> {
        match self {
            Side::Submission => strip.matched.as_deref(),
            Side::Content => strip.matched_banked.as_deref(),
        }
    }
}

/// What a retained video side of a card shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VideoThumbs {
    /// (timestamp in seconds, still URL), ascending.
    pub items: Vec<(f64, String)>,
    /// Why there are no (or fewer) stills, when there are none.
    pub note: Option<String>,
}

/// A still's key: (side, owner id, timestamp in ms).
type StillKey = (Side, i64, u64);

#[derive(Default)]
struct Cache {
    stills: HashMap<StillKey, Arc<Vec<u8>>>,
    order: VecDeque<StillKey>,
    bytes: usize,
    failures: HashMap<(Side, i64), String>,
}

impl Cache {
    fn insert(&mut self, key: StillKey, jpeg: Vec<u8>) {
        if jpeg.len() > THUMB_CACHE_BYTES || self.stills.contains_key(&key) {
            return;
        }
        self.bytes += jpeg.len();
        self.stills.insert(key, Arc::new(jpeg));
        self.order.push_back(key);
        while self.bytes > THUMB_CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(j) = self.stills.remove(&old) {
                self.bytes = self.bytes.saturating_sub(j.len());
            }
        }
    }
}

/// Decodes and caches frame stills of retained videos (see the module
/// docs). One per console.
pub struct Thumbnailer {
    config: FfmpegConfig,
    options: ThumbnailOptions,
    ffmpeg: OnceLock<Result<Ffmpeg, String>>,
    cache: Mutex<Cache>,
    jobs: tokio::sync::Semaphore,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnailer")
            .field("ffmpeg", &self.config.ffmpeg)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why a still cannot be served.
#[derive(Debug, PartialEq)]
pub enum StillError {
    /// No such still (not retained, not a video, past its end).
    NotFound,
    /// Stills cannot be made (no ffmpeg, or the video does not decode).
    Unavailable(String),
}

impl Thumbnailer {
    /// `config` is the decoder's (the same limits as hashing by default).
    pub fn new(config: FfmpegConfig) -> Self {
        Thumbnailer {
            config,
            options: ThumbnailOptions::default(),
            ffmpeg: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            jobs: tokio::sync::Semaphore::new(THUMB_JOBS),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// The located ffmpeg, or why there is none (looked up once; a path
    /// lookup only, nothing is run).
    pub fn ffmpeg(&self) -> Result<&Ffmpeg, &str> {
        self.ffmpeg
            .get_or_init(|| {
                Ffmpeg::resolve(self.config.clone()).map_err(|e| {
                    eprintln!("echotrace console: no video frame thumbnails: {e}");
                    match e {
                        VideoError::FfmpegMissing { .. } => "ffmpeg is not installed".to_string(),
                        other => other.to_string(),
                    }
                })
            })
            .as_ref()
            .map_err(String::as_str)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, key: &StillKey) -> Option<Arc<Vec<u8>>> {
        self.lock().stills.get(key).cloned()
    }

    /// Why this video has no stills, if it failed to decode before.
    pub fn failure(&self, side: Side, owner_id: i64) -> Option<String> {
        self.lock().failures.get(&(side, owner_id)).cloned()
    }

    /// The still at `ms` of a video. On a miss, `load` fetches the retained
    /// video bytes (`None`: not retained) and one decode makes the stills
    /// of every timestamp in `wanted_ms`.
    pub async fn still<F>(
        &self,
        side: Side,
        owner_id: i64,
        ms: u64,
        wanted_ms: &[u64],
        load: F,
    ) -> Result<Arc<Vec<u8>>, StillError>
    where
        F: std::future::Future<Output = Option<Vec<u8>>>,
    {
        let key = (side, owner_id, ms);
        if let Some(j) = self.cached(&key) {
            return Ok(j);
        }
        let ffmpeg = self
            .ffmpeg()
            .map_err(|e| StillError::Unavailable(e.to_string()))?
            .clone();
        let stripe =
            (owner_id as u64 as usize).wrapping_mul(2) + usize::from(side == Side::Content);
        let Some(lock) = self.stripes.get(stripe % STRIPES) else {
            return Err(StillError::NotFound);
        };
        let _video = lock.lock().await;
        // Another request may have decoded it meanwhile.
        if let Some(j) = self.cached(&key) {
            return Ok(j);
        }
        if let Some(why) = self.failure(side, owner_id) {
            return Err(StillError::Unavailable(why));
        }
        // The decode permit is taken before the retained video is loaded,
        // so at most THUMB_JOBS videos are in memory at once.
        let _job = self
            .jobs
            .acquire()
            .await
            .map_err(|_| StillError::Unavailable("shutting down".into()))?;
        let bytes = load.await.ok_or(StillError::NotFound)?;
        let seconds: Vec<f64> = wanted_ms.iter().map(|m| *m as f64 / 1000.0).collect();
        let options = self.options;
        let result = tokio::task::spawn_blocking(move || {
            extract_thumbnails(&ffmpeg, Arc::from(bytes), &seconds, &options)
        })
        .await;
        match result {
            Ok(Ok(stills)) => {
                let mut cache = self.lock();
                for t in stills {
                    cache.insert((side, owner_id, millis(t.timestamp)), t.jpeg);
                }
            }
            Ok(Err(e)) => {
                eprintln!(
                    "echotrace console: frame stills of {} {owner_id}: {e}",
                    side.as_str()
                );
                if matches!(e, VideoError::Timeout(_)) {
                    // Load-dependent: not remembered as a lasting failure.
                    return Err(StillError::Unavailable("decoding timed out".into()));
                }
                let mut cache = self.lock();
                if cache.failures.len() >= FAILURES_KEPT {
                    cache.failures.clear();
                }
                let why = match e {
                    VideoError::NeedsSeekableInput => {
                        "the MP4 keeps its index at the end (needs the temp-file mode)"
                    }
                    _ => "the retained video could not be decoded",
                };
                cache.failures.insert((side, owner_id), why.to_string());
                return Err(StillError::Unavailable(why.to_string()));
            }
            Err(_) => return Err(StillError::Unavailable("decoding task failed".into())),
        }
        self.cached(&key).ok_or(StillError::NotFound)
    }
}

/// The stills of one card side, or a note why there are none.
fn side_thumbs(
    card_id: i64,
    side: Side,
    owner_id: i64,
    strip: Option<&VideoStrip>,
    thumbs: &Thumbnailer,
) -> VideoThumbs {
    let none = |note: &str| VideoThumbs {
        items: Vec::new(),
        note: Some(note.to_string()),
    };
    let Some(strip) = strip else {
        return none("Video retained; its vPDQ signals could not be compared, so no frame thumbnails are shown.");
    };
    let Some(matched) = side.matched(strip) else {
        return none("Video retained; too many frames to choose thumbnails here.");
    };
    if matched.is_empty() {
        return none("Video retained; no matched frames to show.");
    }
    if let Err(why) = thumbs.ffmpeg() {
        return none(&format!(
            "Video retained; frame thumbnails unavailable: {why}."
        ));
    }
    if let Some(why) = thumbs.failure(side, owner_id) {
        return none(&format!(
            "Video retained; frame thumbnails unavailable: {why}."
        ));
    }
    VideoThumbs {
        items: thumb_timestamps(matched)
            .into_iter()
            .map(|t| {
                let url = format!(
                    "/ui/matches/{card_id}/frames/{}/{}",
                    side.as_str(),
                    millis(t)
                );
                (t, url)
            })
            .collect(),
        note: None,
    }
}

/// Fills the thumbnails of a card's retained video sides (after the card's
/// strip is computed).
pub fn attach_thumbnails(card: &mut MatchCard, thumbs: &Thumbnailer) {
    let (id, sub, content) = (card.id, card.submission_id, card.content_id);
    let strip = card.video.as_ref();
    let sub_thumbs = match &card.submission_evidence {
        Evidence::Video(_) => Some(side_thumbs(id, Side::Submission, sub, strip, thumbs)),
        _ => None,
    };
    let bank_thumbs = match &card.bank_evidence {
        Evidence::Video(_) => Some(side_thumbs(id, Side::Content, content, strip, thumbs)),
        _ => None,
    };
    if let Some(t) = sub_thumbs {
        card.submission_evidence = Evidence::Video(t);
    }
    if let Some(t) = bank_thumbs {
        card.bank_evidence = Evidence::Video(t);
    }
}

/// The stills of one side: a single media item (`id`, `classes` carry the
/// blur/greyscale state) with the console's reveal button.
pub fn render_thumbs(t: &VideoThumbs, id: &str, classes: &str) -> Markup {
    html! {
        @if t.items.is_empty() {
            div class="no-media" { (t.note.as_deref().unwrap_or("Video retained; no frame thumbnails.")) }
        } @else {
            div class="media-box" {
                div class="media-frame" {
                    div id=(id) class=(format!("{classes} thumbs")) role="group" aria-label="Matched frames (hidden until revealed)" {
                        @for (ts, url) in &t.items {
                            figure class="thumb" {
                                img src=(url) alt=(format!("Frame at {}", fmt_timestamp(*ts))) width="160" loading="lazy";
                                figcaption { (fmt_timestamp(*ts)) }
                            }
                        }
                    }
                }
                button type="button" class="secondary" data-reveal=(id) aria-pressed="false" aria-controls=(id) { "Reveal media" }
            }
        }
    }
}

/// `GET /ui/matches/{id}/frames/{side}/{ms}`: one still (see module docs).
pub async fn frame_thumbnail(
    st: Ctx,
    auth: Authed,
    UiPath((id, side, ms)): UiPath<(i64, String, u64)>,
) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let viewer = Some(&auth.viewer);
    let not_found = |m: &str| error_response(viewer, StatusCode::NOT_FOUND, m);
    if !st.config.retain_media {
        return not_found("Media retention is off.");
    }
    let Some(side) = Side::parse(&side) else {
        return not_found("No such frame.");
    };
    let Ok(m) = st.engine.get_match(id).await else {
        return not_found("No such match.");
    };
    if m.signal_type != SignalType::Vpdq {
        return not_found("Not a video match.");
    }
    let thresholds = match st.engine.get_bank(m.bank_id).await {
        Ok(b) => b.thresholds,
        Err(_) => Thresholds::default(),
    };
    let (thr, _) = super::threshold_label(&thresholds, SignalType::Vpdq);
    let Some(strip) = compute(
        &m.query_value,
        &m.matched_value,
        thr.clamp(0.0, 256.0) as u32,
        m.similarity,
    ) else {
        return not_found("No such frame.");
    };
    let wanted: Vec<u64> = thumb_timestamps(side.matched(&strip).unwrap_or(&[]))
        .into_iter()
        .map(millis)
        .collect();
    if !wanted.contains(&ms) {
        return not_found("No such frame.");
    }
    let owner_id = match side {
        Side::Submission => m.submission_id,
        Side::Content => m.content_id,
    };
    let owner = side.owner();
    match cq::has_retained(&st.store, owner, owner_id).await {
        Ok(Some(mime)) if mime.starts_with("video/") => {}
        Ok(_) => return not_found("No retained video."),
        Err(_) => return not_found("No retained video."),
    }
    let store = st.store.clone();
    let load = async move {
        cq::retained_media(&store, owner, owner_id)
            .await
            .ok()
            .flatten()
            .map(|(_, bytes)| bytes)
    };
    match st.thumbs.still(side, owner_id, ms, &wanted, load).await {
        Ok(jpeg) => {
            let mut r = jpeg.as_ref().clone().into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            r
        }
        Err(StillError::NotFound) => not_found("No such frame."),
        Err(StillError::Unavailable(why)) => {
            not_found(&format!("Frame thumbnails unavailable: {why}."))
        }
    }
}

/// `m:ss`, or `h:mm:ss` from one hour on (whole seconds, rounded down).
pub fn fmt_timestamp(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The shares line, e.g. `query share 85% · compared share 60%`.
pub fn shares_label(v: &VideoStrip) -> String {
    match v.compared_pct {
        Some(c) => format!("query share {:.0}% · compared share {:.0}%", v.query_pct, c),
        None => format!(
            "query share {:.0}% · compared share not computed",
            v.query_pct
        ),
    }
}

/// Buckets (0..STRIP_BUCKETS) that contain at least one matched timestamp.
fn buckets(matched: &[f64], duration: f64) -> Vec<usize> {
    let mut on = [false; STRIP_BUCKETS];
    for t in matched {
        let b = if duration > 0.0 {
            ((t / duration) * STRIP_BUCKETS as f64) as usize
        } else {
            0
        };
        if let Some(slot) = on.get_mut(b.min(STRIP_BUCKETS - 1)) {
            *slot = true;
        }
    }
    on.iter()
        .enumerate()
        .filter_map(|(i, x)| x.then_some(i))
        .collect()
}

/// The strip: shares, an SVG timeline of matched frames and the list of
/// their timestamps. `id` must be unique on the page.
pub fn render(v: &VideoStrip, id: &str) -> Markup {
    let title_id = format!("{id}-title");
    html! {
        div class="video-strip" {
            p { strong { (shares_label(v)) } " (frame distance ≤ " (v.distance_threshold) ")" }
            @match &v.matched {
                None => {
                    p class="muted" { "Too many frames to compute the matched-frame strip here (" (v.quality_frames) " query frames)." }
                }
                Some(matched) => {
                    @let alt = format!(
                        "{} of {} query frames matched, between {} and {} of a {} video",
                        matched.len(),
                        v.quality_frames,
                        matched.first().map(|t| fmt_timestamp(*t)).unwrap_or_else(|| "—".into()),
                        matched.last().map(|t| fmt_timestamp(*t)).unwrap_or_else(|| "—".into()),
                        fmt_timestamp(v.duration),
                    );
                    svg class="strip" width="100%" height="24" viewBox="0 0 1000 24" preserveAspectRatio="none" role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg" {
                        title id=(title_id) { (alt) }
                        rect x="0" y="4" width="1000" height="16" fill="#e3e8f0" stroke="#4a5361" stroke-width="1" {}
                        @for b in buckets(matched, v.duration) {
                            rect class="tick" x=(b * 10) y="2" width="8" height="20" fill="#0b4f9c" {}
                        }
                    }
                    div class="row muted" aria-hidden="true" { span { "0:00" } " — " span { (fmt_timestamp(v.duration)) } }
                    p {
                        "Matched frames at: "
                        @if matched.is_empty() { "none" }
                        @let shown: Vec<String> = matched.iter().take(LIST_SHOWN).map(|t| fmt_timestamp(*t)).collect();
                        span class="timestamps" { (shown.join(", ")) }
                    }
                    @if matched.len() > LIST_SHOWN {
                        details {
                            summary { (matched.len() - LIST_SHOWN) " more" }
                            @let rest: Vec<String> = matched.iter().skip(LIST_SHOWN).take(LIST_MAX).map(|t| fmt_timestamp(*t)).collect();
                            p { (rest.join(", ")) @if matched.len() > LIST_SHOWN + LIST_MAX { ", …" } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use echotrace_signals::pdq::PdqHash;
    use echotrace_signals::video::vpdq::VpdqFeature;

    /// A hash with the given bits set.
    pub(crate) fn hash(bits: &[usize]) -> PdqHash {
        let mut w = [0u64; 4];
        for &b in bits {
            if let Some(word) = w.get_mut(b / 64) {
                *word |= 1u64 << (b % 64);
            }
        }
        PdqHash::from_words(w)
    }

    pub(crate) fn video(frames: &[(PdqHash, u8)]) -> VpdqHash {
        VpdqHash {
            features: frames
                .iter()
                .enumerate()
                .map(|(i, (h, q))| VpdqFeature {
                    frame_number: i as u64,
                    hash: *h,
                    quality: *q,
                    timestamp: i as f64,
                })
                .collect(),
        }
    }

    /// Query: 10 one-second frames; frames 3 and 4 are near banked frames
    /// (distance 2 and 31), frame 5 is at distance 32 (outside), frame 6
    /// matches but has quality 49 (ignored), the rest are far.
    pub(crate) fn query_and_bank() -> (VpdqHash, VpdqHash) {
        let a = hash(&(0..40).collect::<Vec<_>>());
        let b = hash(&(100..160).collect::<Vec<_>>());
        let far = |k: usize| hash(&((200 + k)..(200 + k + 50).min(256)).collect::<Vec<_>>());
        let near_a = hash(&(2..40).collect::<Vec<_>>()); // distance 2 from a
        let b31: Vec<usize> = (100..160).chain(0..31).collect();
        let b32: Vec<usize> = (100..160).chain(0..32).collect();
        let query = video(&[
            (far(0), 90),
            (far(1), 90),
            (far(2), 90),
            (near_a, 90),
            (hash(&b31), 90),
            (hash(&b32), 90),
            (a, 49),
            (far(3), 90),
            (far(4), 90),
            (far(5), 90),
        ]);
        let bank = video(&[(a, 100), (b, 100), (far(40), 100), (far(41), 100)]);
        (query, bank)
    }

    #[test]
    fn matched_frames_follow_the_reference_rule() {
        let (q, c) = query_and_bank();
        let v = compute(&q.to_signal_string(), &c.to_signal_string(), 31, None).expect("parses");
        assert_eq!(v.matched, Some(vec![3.0, 4.0]));
        assert_eq!(v.quality_frames, 9);
        // 2 of 9 distinct matchable query frames; 2 of 4 banked frames.
        let expected = vpdq::compare(&q, &c, &VpdqMatchOptions::default());
        assert!((v.query_pct - 200.0 / 9.0).abs() < 1e-9);
        assert_eq!(v.query_pct, expected.query_match_pct);
        assert_eq!(v.compared_pct, Some(50.0));
        assert_eq!(v.duration, 9.0);
        // A tighter per-frame threshold drops the distance-31 frame.
        let tight =
            compute(&q.to_signal_string(), &c.to_signal_string(), 30, None).expect("parses");
        assert_eq!(tight.matched, Some(vec![3.0]));
        // Banked side: frame 0 (a, near query frame 3) and frame 1 (b, at
        // distance 31 of query frame 4); far frames do not match.
        assert_eq!(v.matched_banked, Some(vec![0.0, 1.0]));
        assert_eq!(tight.matched_banked, Some(vec![0.0]));
    }

    #[test]
    fn thumbnails_are_spread_and_bounded() {
        let few = [1.0, 2.0, 3.0];
        assert_eq!(thumb_timestamps(&few), few);
        let many: Vec<f64> = (0..100).map(f64::from).collect();
        let picked = thumb_timestamps(&many);
        assert_eq!(picked.len(), THUMBS_SHOWN);
        assert_eq!(picked.first(), Some(&0.0));
        assert_eq!(picked.last(), Some(&99.0));
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        assert!(thumb_timestamps(&[]).is_empty());
        assert_eq!(millis(1.0005), 1001);
        assert_eq!(millis(0.1), 100);
        assert_eq!(millis(f64::NAN), 0);
        assert_eq!(Side::parse("content"), Some(Side::Content));
        assert_eq!(Side::parse("other"), None);
    }

    #[test]
    fn still_cache_is_bounded_oldest_first() {
        let mut c = Cache::default();
        let big = THUMB_CACHE_BYTES / 3 + 1;
        for ms in 0..3u64 {
            c.insert((Side::Submission, 1, ms), vec![0u8; big]);
        }
        // The third insert pushed the total over the bound: the first went.
        assert!(c.bytes <= THUMB_CACHE_BYTES);
        assert!(!c.stills.contains_key(&(Side::Submission, 1, 0)));
        assert!(c.stills.contains_key(&(Side::Submission, 1, 2)));
        assert_eq!(c.order.len(), c.stills.len());
        c.insert((Side::Content, 2, 0), vec![0u8; THUMB_CACHE_BYTES + 1]);
        assert!(!c.stills.contains_key(&(Side::Content, 2, 0)));
    }

    #[test]
    fn thumbs_render_as_one_blurred_media_item() {
        let t = VideoThumbs {
            items: vec![(1.0, "/ui/matches/7/frames/submission/1000".into())],
            note: None,
        };
        let html = render_thumbs(&t, "sub-media-7", "media blur grey").into_string();
        assert!(
            html.contains("id=\"sub-media-7\" class=\"media blur grey thumbs\""),
            "{html}"
        );
        assert!(html.contains("data-reveal=\"sub-media-7\""));
        assert!(html.contains("src=\"/ui/matches/7/frames/submission/1000\""));
        assert!(html.contains("Frame at 0:01"));
        let none = VideoThumbs {
            items: vec![],
            note: Some("why".into()),
        };
        let html = render_thumbs(&none, "x", "media").into_string();
        assert!(html.contains("why") && !html.contains("<img"));
    }

    #[test]
    fn bad_signals_give_none_and_timestamps_format() {
        assert!(compute("not json", "[]", 31, None).is_none());
        assert_eq!(fmt_timestamp(3.9), "0:03");
        assert_eq!(fmt_timestamp(75.0), "1:15");
        assert_eq!(fmt_timestamp(3725.0), "1:02:05");
        assert_eq!(fmt_timestamp(f64::NAN), "0:00");
    }

    #[test]
    fn long_lists_collapse_and_ticks_are_bounded() {
        let v = VideoStrip {
            query_pct: 100.0,
            compared_pct: Some(90.0),
            distance_threshold: 31,
            duration: 999.0,
            matched: Some((0..1000).map(f64::from).collect()),
            quality_frames: 1000,
            matched_banked: None,
        };
        let html = render(&v, "s1").into_string();
        assert!(html.contains("0:19") && html.contains("980 more"), "{html}");
        assert_eq!(html.matches("class=\"tick\"").count(), STRIP_BUCKETS);
        assert!(html.contains("role=\"img\""));
        assert!(html.contains("1000 of 1000 query frames matched"));
        assert!(html.contains(", …"));
    }

    #[test]
    fn oversized_signals_are_not_compared() {
        // 2100 query frames × ~2070 distinct banked frames > MAX_PAIR_COMPARISONS.
        let frames: Vec<_> = (0..2100usize)
            .map(|i| (hash(&[i % 256, (i / 256) + 100, 255 - (i % 7)]), 90u8))
            .collect();
        let big = video(&frames);
        let n = big.matchable(50).len();
        assert!(
            frames.len() * n > MAX_PAIR_COMPARISONS,
            "{n} distinct frames"
        );
        let s = big.to_signal_string();
        let v = compute(&s, &s, 31, Some(0.95)).expect("parses");
        assert_eq!(v.matched, None);
        assert_eq!(v.compared_pct, None);
        assert!((v.query_pct - 95.0).abs() < 1e-9);
        let html = render(&v, "s2").into_string();
        assert!(html.contains("compared share not computed"));
        assert!(html.contains("Too many frames"));
    }
}
