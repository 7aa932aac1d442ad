//! Robust matching: the channels that catch adapted re-uploads, their
//! thresholds, per-bank settings, and the separate index of derived hashes.
//!
//! A PDQ lookup made from image bytes carries a [`RobustQuery`] (the
//! signals crate's query set: dihedral variants, border rectangles, small
//! crops). Each comparison belongs to one **channel**:
//!
//! | channel | query side | bank side | threshold |
//! |---|---|---|---|
//! | `plain` | whole-image hash | stored hash | bank `pdq` (31) |
//! | `dihedral` | 7 rotations/flips of the whole image | stored hash | [`DIHEDRAL_THRESHOLD`] |
//! | `border` | content rectangles (8 variants each) | stored hash | [`BORDER_THRESHOLD`] |
//! | `window` | small crops | stored hash | [`WINDOW_THRESHOLD`] |
//! | `window` | every query hash | crop-grid windows of file-added items | [`WINDOW_THRESHOLD`] |
//! | `region` | every query hash | content rectangles of a file-added original | [`REGION_THRESHOLD`] |
//! | `part` | fixed parts (one side cut by a third) of the upload and of its best border rectangle | the *same* part of a file-added original | [`PART_THRESHOLD`] |
//!
//! Thresholds come from the measured distribution of distances between
//! unrelated images under the full channel set (docs/ROBUST.md). A plain
//! match always wins over a derived one for the same item, so decisions on
//! pairs that matched before are unchanged; a derived match reports its
//! channel, the rectangle and window used, and both distances.
//!
//! Per bank ([`MatchingSettings`], `banks.matching`): `dihedral` (on by
//! default), `window` (on by default; off drops the crop needles and the
//! bank's window hashes from its lookups), `part` (on by default) and
//! `refine` (alignment refinement; by default on while the bank holds at
//! most [`REFINE_AUTO_MAX_HELD`] file-added originals, off above, and
//! never while it holds none: [`MatchingSettings::refines`]). Borders and regions are always
//! on. Quality gating happens in the signals crate: no derived or dihedral
//! hash of quality < 50 is ever produced.
//!
//! [`DerivedIndex`] keeps the derived hashes apart from the plain index
//! (own MIH, own load and apply-change functions), so exports and the
//! plain index are untouched and the memory they cost is visible on its own
//! ([`DerivedIndex::memory_bytes`]).

use std::collections::HashMap;

#[path = "robust_parts.rs"]
mod parts;
pub(crate) use parts::DerivedParts;

use echotrace_index::vpdq_index::{VpdqFrame, VpdqIndex, VpdqIndexOptions};
use echotrace_index::{Code256, Hit, MihIndex, MihParams};
use echotrace_signals::robust::{
    decode_bank_hashes, BankSource, QuerySet, QuerySource, VARIANT_NAMES,
};
use echotrace_signals::video::vpdq::{CroppedVpdq, VpdqHash, VpdqMatchOptions};
use echotrace_store::{DerivedRow, DERIVED_PDQ_WINDOWS, DERIVED_VPDQ_CROPPED};
use serde::{Deserialize, Serialize};

use crate::types::{BankId, ContentId};

/// Dihedral channel: 8 comparisons per pair instead of 1 (docs/ROBUST.md).
pub const DIHEDRAL_THRESHOLD: u32 = 31;
/// Border channel (≤ 3 rectangles × 8 variants per query).
pub const BORDER_THRESHOLD: u32 = 36;
/// Window channel (query crops × stored hash; any query hash × windows of
/// quality ≥ [`WINDOW_DETAILED_QUALITY`]).
pub const WINDOW_THRESHOLD: u32 = 40;
/// Bank windows of PDQ quality below this are matched at
/// [`WINDOW_LOW_QUALITY_THRESHOLD`]: within 50 bits of an unrelated needle
/// 170× as often as detailed windows (docs/ROBUST.md, "Window quality").
pub const WINDOW_DETAILED_QUALITY: u8 = 90;
/// Window channel against a bank window of quality below
/// [`WINDOW_DETAILED_QUALITY`] (50–89: two-tone wallpapers, skies, large
/// flat areas with one edge).
pub const WINDOW_LOW_QUALITY_THRESHOLD: u32 = 28;
/// A stored plain hash (the retro-hunt's needle: [`RobustQuery::stored_pdq`])
/// meets bank windows and regions within this many bits, whatever their
/// quality. Its own quality is not stored, so the lookup's gate (a plain
/// needle meets derived hashes only at quality ≥ 50) cannot be applied;
/// the pair is held instead to the tightest derived threshold, the one of
/// a low-quality window — 10 bits below the closest unrelated
/// low-quality window measured (38 bits) and 22 below the closest
/// unrelated pairs of all, which came from hashes of quality 3–15
/// (docs/ROBUST.md, "Retro-hunting").
pub const STORED_NEEDLE_THRESHOLD: u32 = WINDOW_LOW_QUALITY_THRESHOLD;
/// Region channel (any query hash × an original's own content rectangles).
pub const REGION_THRESHOLD: u32 = 36;
/// Part channel: a fixed part of the upload (or of its best border
/// rectangle) × the same part of a file-added original — ≤ 8 comparisons
/// per pair, each part only with its own. The binomial budget would allow
/// far more; 28 keeps the project's 10-bit margin below the closest
/// unrelated part measured (38 bits: two dot-grid wallpapers of one
/// design in blue and gold; docs/ROBUST.md, "Thresholds").
pub const PART_THRESHOLD: u32 = 28;
/// Alignment refinement (docs/ROBUST.md, "Alignment refinement"): a bank
/// window that an allowed needle comes within its threshold plus this
/// many bits of, for an item nothing else matched, is worth moving the
/// needle's sides toward (`QuerySet::refine`).
pub const REFINE_MARGIN: u32 = 12;
/// How far a needle may be from a bank window of threshold `threshold`
/// and still be refined toward it: [`REFINE_MARGIN`] bits past the
/// threshold, within the derived index's search radius
/// ([`WINDOW_THRESHOLD`]) — so in effect windows of quality below
/// [`WINDOW_DETAILED_QUALITY`] (threshold 28: needles at 29–40 bits). A
/// detailed window (threshold 40) would need a wider search of every
/// lookup; it is not refined.
pub fn refine_reach(threshold: u32) -> u32 {
    (threshold + REFINE_MARGIN).min(WINDOW_THRESHOLD)
}
/// A refined rectangle matches within this many bits of the window. The
/// refinement searches up to 48 rectangles for the lowest distance to one
/// window, which pulls unrelated pairs closer too: on bench/robust seed 2
/// it brought an unrelated needle from 38 to 30 bits of a quality-50–59
/// window (a flat two-tone graphic against a concrete texture); 20 keeps
/// the project's 10-bit margin below that (docs/ROBUST.md, "Alignment
/// refinement").
pub const REFINE_THRESHOLD: u32 = 20;
/// At most this many (needle, window) pairs are refined per held item,
/// the closest first.
pub const REFINE_PAIRS_PER_ITEM: usize = 3;
/// At most this many window hashes are spent on refinement per lookup,
/// counting every rectangle tried: three refinements of at most
/// [`REFINE_MAX_HASHES`] each (≈ 58 ms at ≈ 0.4 ms a window hash), the
/// closest pairs first whichever items they belong to.
pub const REFINE_BUDGET: u32 = 3 * REFINE_MAX_HASHES;
pub use echotrace_signals::robust::REFINE_MAX_HASHES;
/// A bank whose `refine` setting is left automatic (absent or `null`)
/// refines while it holds at most this many file-added originals (items
/// with derived PDQ hashes in memory). An unrelated upload came near a
/// low-quality window of a given held item 1.5–3.4e-6 of the time on the
/// benchmark, and a lookup that refines costs 6.4× a plain lookup (two
/// refinements; up to ≈ 8.7× at the [`REFINE_BUDGET`] of 144 window
/// hashes) against 3.6× for one that does not: at 10,000 held items
/// ≤ 3.3 % of lookups refine, the median lookup is unchanged (3.62×
/// measured) and the 95th percentile free of refinement; from about a
/// third of lookups refining (≈ 100,000 held at the worst rate) the
/// median passes the 4× target (docs/ROBUST.md, "`refine`: alignment
/// refinement per bank").
pub const REFINE_AUTO_MAX_HELD: u64 = 10_000;

/// Which channel found a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Plain,
    Dihedral,
    Border,
    Region,
    Window,
    Part,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Plain => "plain",
            Channel::Dihedral => "dihedral",
            Channel::Border => "border",
            Channel::Region => "region",
            Channel::Window => "window",
            Channel::Part => "part",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Some(match s {
            "plain" => Channel::Plain,
            "dihedral" => Channel::Dihedral,
            "border" => Channel::Border,
            "region" => Channel::Region,
            "window" => Channel::Window,
            "part" => Channel::Part,
            _ => return None,
        })
    }

    /// Rank for "which hit of one item to report": plain first.
    pub(crate) fn rank(self) -> u32 {
        match self {
            Channel::Plain => 0,
            Channel::Dihedral => 1,
            Channel::Border => 2,
            Channel::Region => 3,
            Channel::Window => 4,
            Channel::Part => 5,
        }
    }
}

/// Per-bank robust-matching settings (`POST/PATCH /v1/banks`
/// `"matching"`). Missing fields keep their defaults (all on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingSettings {
    /// Match the 8 rotations/flips of uploaded images.
    #[serde(default = "yes")]
    pub dihedral: bool,
    /// Match small crops of uploads and the crop-grid windows of the
    /// bank's file-added images.
    #[serde(default = "yes")]
    pub window: bool,
    /// Match the fixed parts of the bank's file-added images (the `part`
    /// channel). Off: parts are neither matched, held in memory, nor
    /// stored for items added while it is off.
    #[serde(default = "yes")]
    pub part: bool,
    /// Alignment refinement of needles that came near one of the bank's
    /// low-quality windows: `true` on, `false` off, absent or `null`
    /// automatic ([`MatchingSettings::refines`]). Needs `window`.
    #[serde(default)]
    pub refine: Option<bool>,
}

fn yes() -> bool {
    true
}

impl Default for MatchingSettings {
    fn default() -> Self {
        MatchingSettings {
            dihedral: true,
            window: true,
            part: true,
            refine: None,
        }
    }
}

impl MatchingSettings {
    /// Parse the stored JSON; anything unreadable is the defaults.
    pub fn from_stored(json: &str) -> MatchingSettings {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// Whether the bank matches (and so holds in memory) bank-side
    /// derived hashes of `source`: windows with `window`, parts with
    /// `part`; regions always.
    pub fn holds(self, source: BankSource) -> bool {
        match source {
            BankSource::Window => self.window,
            BankSource::Part => self.part,
            BankSource::Region => true,
        }
    }

    /// Whether lookups refine toward this bank's windows while it holds
    /// `held` file-added originals: never with `window` off or with no
    /// original held (refinement moves a needle toward a bank window, and a
    /// hash-only bank has none); else `refine` when set, and automatically
    /// while `held` ≤ [`REFINE_AUTO_MAX_HELD`].
    pub fn refines(self, held: u64) -> bool {
        self.window && held > 0 && self.refine.unwrap_or(held <= REFINE_AUTO_MAX_HELD)
    }

    /// Apply a `field=word` change as the CLI and the console spell it
    /// (`dihedral`, `window`, `part`: `on`/`off`; `refine`: `on`/`off`/`auto`).
    /// `Err` names what is wrong.
    pub fn set_word(&mut self, field: &str, word: &str) -> Result<(), String> {
        let flag = match word {
            "on" => Some(true),
            "off" => Some(false),
            "auto" if field == "refine" => None,
            _ => {
                let allowed = if field == "refine" {
                    "on, off or auto"
                } else {
                    "on or off"
                };
                return Err(format!("matching.{field}: {word:?} is not {allowed}"));
            }
        };
        match (field, flag) {
            ("refine", f) => self.refine = f,
            ("dihedral", Some(f)) => self.dihedral = f,
            ("window", Some(f)) => self.window = f,
            ("part", Some(f)) => self.part = f,
            _ => return Err(format!("matching.{field}: no such setting")),
        }
        Ok(())
    }

    /// `refine` as the CLI and the console spell it: `on`, `off`, `auto`.
    pub fn refine_word(self) -> &'static str {
        match self.refine {
            Some(true) => "on",
            Some(false) => "off",
            None => "auto",
        }
    }

    /// The JSON stored in `banks.matching`. `part` is written only when
    /// off and `refine` only when set: a bank that leaves them at their
    /// defaults stores what a build from before those settings reads (its
    /// settings struct refuses unknown fields and would take the whole
    /// value for the defaults).
    pub fn to_stored(self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            if self.part {
                o.remove("part");
            }
            if self.refine.is_none() {
                o.remove("refine");
            }
        }
        serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
    }
}

/// The derived query of one lookup made from bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RobustQuery {
    /// An image's query set.
    pub image: Option<QuerySet>,
    /// A video's border-cropped vPDQ.
    pub video: Option<CroppedVpdq>,
    /// The image's plain hash is a stored one ([`RobustQuery::stored_pdq`]):
    /// no pixels, no quality.
    pub stored: bool,
}

impl RobustQuery {
    /// The query a stored plain PDQ hash allows, for the retro-hunt (a
    /// sighting keeps its hash, not its pixels nor the hash's quality): the
    /// hash itself, upright, as the one needle — it meets the bank-side
    /// derived hashes of file-added items (`window`, `region`) under each
    /// bank's switches, at [`STORED_NEEDLE_THRESHOLD`] at most. Nothing
    /// that needs the image (dihedral variants, border rectangles, query
    /// crops, parts, refinement) is in it.
    pub(crate) fn stored_pdq(hash: echotrace_signals::pdq::PdqHash) -> RobustQuery {
        RobustQuery {
            image: Some(QuerySet {
                width: 0,
                height: 0,
                plain: echotrace_signals::pdq::PdqOutput { hash, quality: 0 },
                hashes: Vec::new(),
                borders: Vec::new(),
                work: None,
            }),
            video: None,
            stored: true,
        }
    }
}

/// How a derived-channel match was found (`MatchRecord.channel_detail`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelDetail {
    /// Dihedral variant of the query hash (`orig`, `rot90`, `flipx`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Where the query hash came from: `whole`, `border`, `crop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_source: Option<String>,
    /// Query rectangle `[x, y, w, h]` in the upload's pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_rect: Option<[u32; 4]>,
    /// Upload size `[w, h]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_size: Option<[u32; 2]>,
    /// `window`, `region` or `part` when a bank-side derived hash matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_source: Option<String>,
    /// Shares of the bank original removed `[left, top, right, bottom]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_removed: Option<[f32; 4]>,
    /// PDQ quality of the bank window or region that matched (a window's
    /// threshold depends on it, [`window_threshold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_quality: Option<u8>,
    /// Distance of the plain hashes (whole upload vs stored hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_distance: Option<u32>,
    /// The channel's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Alignment refinement: the needle's distance before its sides were
    /// moved to `query_rect` (docs/ROBUST.md, "Alignment refinement").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refined_from: Option<u32>,
    /// vPDQ: the query share of the plain (uncropped) videos, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_query_pct: Option<f64>,
}

impl ChannelDetail {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A hit of the derived index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DerivedHit {
    pub content_id: ContentId,
    /// The stored derived code.
    pub code: Option<Code256>,
    pub source: BankSource,
    pub removed: [u8; 4],
    /// PDQ quality of the stored derived hash.
    pub quality: u8,
    pub distance: u32,
}

/// Ids in the derived MIH: content id × 4096 + record index.
const RECORD_BITS: u32 = 12;
const MAX_RECORDS: usize = 1 << RECORD_BITS;

/// Per content item: where each record came from, and its PDQ quality.
struct ItemMeta {
    records: Vec<(BankSource, [u8; 4], u8)>,
    /// The item's bank (`None` until known: an index rebuilt from a
    /// snapshot learns it from the match state, [`DerivedIndex::assign_banks`]).
    bank: Option<BankId>,
}

/// Derived hashes of file-added bank items, apart from the plain index.
pub(crate) struct DerivedIndex {
    pdq: MihIndex,
    items: HashMap<ContentId, ItemMeta>,
    /// Border-cropped vPDQ of bank videos, by content id.
    vpdq: HashMap<ContentId, VpdqHash>,
    vpdq_index: VpdqIndex,
    /// Per-bank matching settings (absent = defaults).
    settings: HashMap<BankId, MatchingSettings>,
    /// Fingerprint of each item's stored rows: a metadata-only change
    /// (enable, labels) re-reads the rows but leaves the index alone.
    stamps: HashMap<ContentId, u64>,
    /// File-added originals held per bank (items in `items`): the
    /// automatic `refine` setting's count ([`MatchingSettings::refines`]).
    held: HashMap<BankId, u64>,
}

/// `held`: the bank's [`MatchingSettings::holds`] flags (window, part) the
/// records were indexed under, so a bank turning a channel off or on
/// re-indexes its items ([`DerivedIndex::apply_content`]).
fn stamp(rows: &[DerivedRow], held: (bool, bool)) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    held.hash(&mut h);
    for r in rows {
        r.kind.hash(&mut h);
        r.value.hash(&mut h);
    }
    h.finish()
}

/// A vPDQ hash's frames as the frame index takes them.
pub(crate) fn vpdq_frames(h: &VpdqHash) -> Vec<VpdqFrame> {
    h.features
        .iter()
        .map(|f| VpdqFrame {
            code: f.hash.to_words(),
            quality: f.quality,
        })
        .collect()
}

/// Frame-index options for a per-frame search distance: the reference's
/// quality floor, share thresholds 0 (banks apply theirs afterwards).
pub(crate) fn vpdq_index_options(distance: u32) -> VpdqIndexOptions {
    VpdqIndexOptions {
        quality_threshold: VpdqMatchOptions::default().quality_threshold,
        distance_threshold: distance,
        query_match_threshold_pct: 0.0,
        compared_match_threshold_pct: 0.0,
    }
}

impl DerivedIndex {
    pub(crate) fn empty() -> DerivedIndex {
        DerivedIndex {
            pdq: MihIndex::new(),
            items: HashMap::new(),
            vpdq: HashMap::new(),
            vpdq_index: VpdqIndex::new(vpdq_index_options(
                VpdqMatchOptions::default().distance_threshold,
            )),
            settings: HashMap::new(),
            stamps: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Hold `meta` as `content_id`'s records, keeping the per-bank count.
    fn insert_item(&mut self, content_id: ContentId, meta: ItemMeta) {
        if let Some(b) = meta.bank {
            *self.held.entry(b).or_default() += 1;
        }
        if let Some(old) = self.items.insert(content_id, meta) {
            self.forget_held(&old);
        }
    }

    fn forget_held(&mut self, old: &ItemMeta) {
        if let Some(n) = old.bank.and_then(|b| self.held.get_mut(&b)) {
            *n = n.saturating_sub(1);
        }
    }

    /// File-added originals the bank holds (see [`MatchingSettings::refines`]).
    pub(crate) fn held(&self, bank_id: BankId) -> u64 {
        self.held.get(&bank_id).copied().unwrap_or(0)
    }

    /// Whether lookups refine toward the bank's windows now.
    pub(crate) fn refines(&self, bank_id: BankId) -> bool {
        self.settings(bank_id).refines(self.held(bank_id))
    }

    /// Whether `content_id` is a held item (it has derived hashes).
    pub(crate) fn holds_item(&self, content_id: ContentId) -> bool {
        self.items.contains_key(&content_id)
    }

    /// The content ids of the held items.
    pub(crate) fn item_ids(&self) -> impl Iterator<Item = ContentId> + '_ {
        self.items.keys().copied()
    }

    /// Give every held item its bank (an index rebuilt from a snapshot,
    /// whose records carry none) and count them again.
    pub(crate) fn assign_banks(&mut self, bank_of: impl Fn(ContentId) -> Option<BankId>) {
        self.held.clear();
        for (content_id, meta) in self.items.iter_mut() {
            meta.bank = bank_of(*content_id);
            if let Some(b) = meta.bank {
                *self.held.entry(b).or_default() += 1;
            }
        }
    }

    fn add_row(&mut self, r: &DerivedRow, insert: &mut dyn FnMut(u64, Code256)) {
        match r.kind.as_str() {
            DERIVED_PDQ_WINDOWS => {
                let Some(list) = decode_bank_hashes(&r.value) else {
                    tracing::warn!(
                        content_id = r.content_id,
                        "unreadable derived hashes ignored"
                    );
                    return;
                };
                let mut meta = ItemMeta {
                    records: Vec::with_capacity(list.len().min(MAX_RECORDS)),
                    bank: Some(r.bank_id),
                };
                // A channel the bank has turned off costs no memory.
                let settings = self.settings(r.bank_id);
                let held = list.iter().filter(|h| settings.holds(h.source));
                for (k, h) in held.take(MAX_RECORDS).enumerate() {
                    let id = ((r.content_id as u64) << RECORD_BITS) | k as u64;
                    insert(id, h.hash.to_words());
                    meta.records.push((h.source, h.removed, h.quality));
                }
                self.insert_item(r.content_id, meta);
            }
            DERIVED_VPDQ_CROPPED => {
                if let Ok(h) = VpdqHash::from_signal_str(&r.value) {
                    let _ = self
                        .vpdq_index
                        .insert_video(r.content_id as u64, &vpdq_frames(&h));
                    self.vpdq.insert(r.content_id, h);
                }
            }
            other => tracing::warn!(kind = other, "unknown derived hash kind ignored"),
        }
    }

    /// Replace what the index holds for a content item (`rows` empty or
    /// the item deleted: nothing).
    pub(crate) fn apply_content(&mut self, content_id: ContentId, rows: &[DerivedRow]) {
        let new_stamp = (!rows.is_empty()).then(|| self.stamp_of(rows));
        if self.stamps.get(&content_id).copied() == new_stamp {
            return;
        }
        match new_stamp {
            Some(s) => self.stamps.insert(content_id, s),
            None => self.stamps.remove(&content_id),
        };
        if let Some(old) = self.items.remove(&content_id) {
            self.forget_held(&old);
            for k in 0..old.records.len() {
                self.pdq
                    .remove(((content_id as u64) << RECORD_BITS) | k as u64);
            }
        }
        if self.vpdq.remove(&content_id).is_some() {
            self.vpdq_index.remove_video(content_id as u64);
        }
        let mut inserts = Vec::new();
        for r in rows {
            self.add_row(r, &mut |id, code| inserts.push((id, code)));
        }
        for (id, code) in inserts {
            self.pdq.insert(id, code);
        }
    }

    /// Replace a bank's settings (`None`: bank deleted). True when the
    /// bank now holds other derived records than before (`window` or
    /// `part` changed): its items' rows must be applied again
    /// ([`DerivedIndex::apply_content`] re-indexes them, their stamps
    /// having changed).
    pub(crate) fn apply_bank(
        &mut self,
        bank_id: BankId,
        settings: Option<MatchingSettings>,
    ) -> bool {
        let before = self.settings(bank_id);
        match settings {
            Some(s) => {
                self.settings.insert(bank_id, s);
                (s.window, s.part) != (before.window, before.part)
            }
            None => {
                self.settings.remove(&bank_id);
                false
            }
        }
    }

    /// The stamp of an item's rows under its bank's current settings.
    fn stamp_of(&self, rows: &[DerivedRow]) -> u64 {
        let s = rows
            .first()
            .map(|r| self.settings(r.bank_id))
            .unwrap_or_default();
        stamp(rows, (s.window, s.part))
    }

    pub(crate) fn settings(&self, bank_id: BankId) -> MatchingSettings {
        self.settings.get(&bank_id).copied().unwrap_or_default()
    }

    /// Derived PDQ codes held.
    pub(crate) fn len(&self) -> usize {
        self.pdq.len()
    }

    /// Approximate memory of the derived PDQ index: codes, ids, MIH
    /// postings and per-record metadata (source, shares, quality).
    pub(crate) fn memory_bytes(&self) -> usize {
        let n = self.pdq.len();
        n * (32 + 8 + 4 * self.pdq.substrings() + 6)
    }

    /// Every derived code within `radius` of any needle: best distance per
    /// (content, record).
    pub(crate) fn search(&self, needles: &[Code256], radius: u32) -> Vec<DerivedHit> {
        let mut hits: Vec<Hit> = Vec::new();
        if needles.is_empty() || self.pdq.is_empty() {
            return Vec::new();
        }
        self.pdq.search_multi(needles, radius, &mut hits);
        hits.iter()
            .filter_map(|h| {
                let content_id = (h.id >> RECORD_BITS) as ContentId;
                let k = (h.id & (MAX_RECORDS as u64 - 1)) as usize;
                let (source, removed, quality) = *self.items.get(&content_id)?.records.get(k)?;
                Some(DerivedHit {
                    content_id,
                    code: self.pdq.get(h.id),
                    source,
                    removed,
                    quality,
                    distance: h.distance,
                })
            })
            .collect()
    }

    /// Bank videos whose cropped vPDQ shares frames with `frames`
    /// (content id, query share %, compared share %).
    pub(crate) fn search_vpdq(&self, query: &VpdqHash) -> Vec<(ContentId, f64, f64)> {
        let mut out = Vec::new();
        self.vpdq_index.query(&vpdq_frames(query), &mut out);
        out.into_iter()
            .map(|c| {
                (
                    c.video_id as ContentId,
                    c.query_match_pct,
                    c.compared_match_pct,
                )
            })
            .collect()
    }

    /// The stored cropped vPDQ of an item.
    pub(crate) fn cropped_vpdq(&self, content_id: ContentId) -> Option<&VpdqHash> {
        self.vpdq.get(&content_id)
    }
}

/// Query needles of one channel group.
pub(crate) struct NeedleGroup {
    pub channel: Channel,
    /// Only the original orientation (variant 0)?
    pub orig_only: bool,
    pub needles: Vec<(Code256, usize)>,
}

/// The query set's hashes grouped by the channel they belong to against
/// the *plain* index, split by orientation (banks may turn dihedral off).
pub(crate) fn plain_groups(set: &QuerySet) -> Vec<NeedleGroup> {
    let mut groups: Vec<NeedleGroup> = Vec::new();
    for (i, q) in set.hashes.iter().enumerate() {
        let channel = match q.source {
            QuerySource::Whole => Channel::Dihedral,
            QuerySource::Border => Channel::Border,
            QuerySource::Crop => Channel::Window,
            // Parts meet only the same part of held originals.
            QuerySource::Part => continue,
        };
        let orig_only = q.variant == 0;
        match groups
            .iter_mut()
            .find(|g| g.channel == channel && g.orig_only == orig_only)
        {
            Some(g) => g.needles.push((q.hash.to_words(), i)),
            None => groups.push(NeedleGroup {
                channel,
                orig_only,
                needles: vec![(q.hash.to_words(), i)],
            }),
        }
    }
    groups
}

/// Threshold of the window channel against a bank window of PDQ quality
/// `quality` (the crop grid of a file-added item).
///
/// Every needle of a query meets every window of every held item (≈ 4e3
/// comparisons per pair), and windows of middling quality — a two-tone
/// wallpaper, a sky with one line — land close to unrelated needles far
/// more often than detailed ones: over 1.7e9 unrelated needle × window
/// comparisons of quality 50–89 in bench/robust (two seeds), 7.6e-8 came
/// within 50 bits against 4.5e-10 of 6.7e9 for windows of quality ≥ 90.
/// Such a window is matched 12 bits tighter (docs/ROBUST.md, "Window
/// quality").
pub fn window_threshold(quality: u8) -> u32 {
    if quality >= WINDOW_DETAILED_QUALITY {
        WINDOW_THRESHOLD
    } else {
        WINDOW_LOW_QUALITY_THRESHOLD
    }
}

/// Threshold of a hit on a bank-side derived hash: a window's depends on
/// its quality ([`window_threshold`]), a region's is [`REGION_THRESHOLD`].
pub(crate) fn bank_hash_threshold(source: BankSource, quality: u8) -> u32 {
    match source {
        BankSource::Window => window_threshold(quality),
        BankSource::Region => REGION_THRESHOLD,
        BankSource::Part => PART_THRESHOLD,
    }
}

/// Threshold of a derived channel.
pub fn channel_threshold(c: Channel) -> u32 {
    match c {
        Channel::Plain | Channel::Dihedral => DIHEDRAL_THRESHOLD,
        Channel::Border => BORDER_THRESHOLD,
        Channel::Window => WINDOW_THRESHOLD,
        Channel::Region => REGION_THRESHOLD,
        Channel::Part => PART_THRESHOLD,
    }
}

/// Detail of the query hash `i` of `set` (or the plain hash for `None`).
pub(crate) fn query_detail(set: &QuerySet, i: Option<usize>) -> ChannelDetail {
    let mut d = ChannelDetail {
        query_size: Some([set.width, set.height]),
        ..ChannelDetail::default()
    };
    match i.and_then(|i| set.hashes.get(i)) {
        Some(q) => {
            d.variant = VARIANT_NAMES
                .get(usize::from(q.variant))
                .map(|s| s.to_string());
            d.query_source = Some(
                match q.source {
                    QuerySource::Whole => "whole",
                    QuerySource::Border => "border",
                    QuerySource::Crop => "crop",
                    QuerySource::Part => "part",
                }
                .into(),
            );
            d.query_rect = Some([q.rect.x, q.rect.y, q.rect.w, q.rect.h]);
        }
        None => {
            d.variant = Some("orig".into());
            d.query_source = Some("whole".into());
            d.query_rect = Some([0, 0, set.width, set.height]);
        }
    }
    d
}

/// The needle of `candidates` (indexes into `set.hashes`, `None` = the
/// plain hash) closest to `code`, with its distance.
pub(crate) fn closest(
    set: &QuerySet,
    candidates: impl Iterator<Item = Option<usize>>,
    code: &Code256,
) -> Option<(Option<usize>, u32)> {
    candidates
        .map(|i| {
            let h = match i {
                Some(i) => set.hashes.get(i).map(|q| q.hash.to_words()),
                None => Some(set.plain.hash.to_words()),
            };
            (
                i,
                h.map(|h| echotrace_index::hamming(&h, code))
                    .unwrap_or(u32::MAX),
            )
        })
        .min_by_key(|(_, d)| *d)
}

/// Load every derived hash and bank setting from the store (startup).
pub(crate) async fn load_derived(
    store: &echotrace_store::Store,
) -> crate::error::Result<DerivedIndex> {
    // Page by page: only the decoded codes are kept, never the rows.
    let mut ix = DerivedIndex::empty();
    // Settings first: a bank's records are held as its settings say.
    for (bank_id, json) in store.all_bank_matching().await? {
        ix.apply_bank(bank_id, Some(MatchingSettings::from_stored(&json)));
    }
    let mut entries: Vec<(u64, Code256)> = Vec::new();
    let mut after = 0;
    loop {
        let page = store.derived_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.content_id;
        let mut by_item: HashMap<ContentId, Vec<&DerivedRow>> = HashMap::new();
        for r in &page {
            ix.add_row(r, &mut |id, code| entries.push((id, code)));
            by_item.entry(r.content_id).or_default().push(r);
        }
        for (id, rows) in by_item {
            let rows: Vec<DerivedRow> = rows.into_iter().cloned().collect();
            let s = ix.stamp_of(&rows);
            ix.stamps.insert(id, s);
        }
    }
    ix.pdq = MihIndex::build(entries, MihParams::default()).map_err(|e| {
        crate::error::EngineError::Internal(format!("building the derived PDQ index: {e}"))
    })?;
    Ok(ix)
}

/// Derived hashes of a bank entry, ready to store (`derived_hashes` rows).
pub(crate) type DerivedValues = Vec<(&'static str, String)>;

/// The channels stored derived rows serve ([`crate::Engine::derived_channels`]).
pub(crate) fn channels_of_rows(rows: &[DerivedRow]) -> Vec<&'static str> {
    let mut has = [false; 3];
    for r in rows {
        match r.kind.as_str() {
            DERIVED_PDQ_WINDOWS => {
                for h in decode_bank_hashes(&r.value).unwrap_or_default() {
                    let k = match h.source {
                        BankSource::Window => 0,
                        BankSource::Region => 1,
                        BankSource::Part => 2,
                    };
                    has[k] = true;
                }
            }
            DERIVED_VPDQ_CROPPED => has[1] = true,
            _ => {}
        }
    }
    ["window", "region", "part"]
        .into_iter()
        .zip(has)
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
}

/// The derived values a bank with `settings` stores for a new item:
/// without its parts when `part` is off. Windows are stored whatever
/// `window` says (as before parts existed), so that channel can be turned
/// on again without re-adding; off, they are only left out of memory
/// ([`DerivedIndex`]). docs/ROBUST.md, "Per-bank switches".
pub(crate) fn stored_values(values: DerivedValues, settings: MatchingSettings) -> DerivedValues {
    if settings.part {
        return values;
    }
    values
        .into_iter()
        .filter_map(|(kind, value)| {
            if kind != DERIVED_PDQ_WINDOWS {
                return Some((kind, value));
            }
            let Some(list) = decode_bank_hashes(&value) else {
                return Some((kind, value));
            };
            let kept: Vec<_> = list
                .into_iter()
                .filter(|h| h.source != BankSource::Part)
                .collect();
            (!kept.is_empty()).then(|| (kind, echotrace_signals::robust::encode_bank_hashes(&kept)))
        })
        .collect()
}

/// An image or video hashed by [`hash_robust`].
pub(crate) struct RobustHashed {
    /// Exactly the signals of the plain path.
    pub signals: Vec<crate::types::SignalValue>,
    pub query: RobustQuery,
    /// Bank entries only: the derived hashes to store.
    pub derived: DerivedValues,
    /// With an OCR gate: the image (or the video's key frames, taken in
    /// the same decoding pass) prepared for OCR.
    pub ocr: Option<crate::ocr::PendingOcr>,
}

/// Hash an image or video with its derived hashes (`role`): the signals
/// are exactly those of the plain path; with `ocr_gate`, the OCR input is
/// prepared as on the plain path (`signals::hash_non_pdf_deferred`).
/// `None` for every other kind (the caller then takes the plain path).
/// Blocking.
pub(crate) fn hash_robust(
    bytes: &[u8],
    sampling: crate::signals::VideoSampling,
    role: echotrace_signals::content::RobustRole,
    ocr_gate: Option<echotrace_signals::content::OcrGate>,
) -> crate::error::Result<Option<RobustHashed>> {
    use echotrace_signals::content::{detect_kind, ContentHasher, ContentKind, RobustRole};
    match detect_kind(bytes) {
        Some(ContentKind::Image(_)) | Some(ContentKind::Video) => {}
        _ => return Ok(None),
    }
    let opts = crate::signals::hash_options(bytes, sampling);
    let out = ContentHasher::new()
        .hash_robust_deferred(
            bytes,
            &opts,
            role,
            &echotrace_signals::robust::RobustOptions::default(),
            ocr_gate,
        )
        .map_err(crate::signals::map_hash_error)?;
    let signals = out
        .signals
        .into_iter()
        .map(|s| crate::types::SignalValue {
            signal_type: s.signal_type,
            value: s.value,
        })
        .collect();
    let mut derived: DerivedValues = Vec::new();
    if role == RobustRole::BankEntry {
        if let Some(list) = out.bank.as_ref().filter(|l| !l.is_empty()) {
            derived.push((
                DERIVED_PDQ_WINDOWS,
                echotrace_signals::robust::encode_bank_hashes(list),
            ));
        }
        if let Some(v) = out.video.as_ref().filter(|v| !v.vpdq.features.is_empty()) {
            derived.push((DERIVED_VPDQ_CROPPED, v.vpdq.to_signal_string()));
        }
    }
    let ocr = (!out.ocr_inputs.is_empty()).then_some(crate::ocr::PendingOcr {
        inputs: out.ocr_inputs,
    });
    Ok(Some(RobustHashed {
        signals,
        query: RobustQuery {
            image: out.query,
            video: out.video,
            stored: false,
        },
        derived,
        ocr,
    }))
}

/// A match a lookup *would* record, for the console's match debugger
/// (nothing is recorded).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatchPreview {
    pub bank_id: BankId,
    pub bank_name: String,
    pub content_id: ContentId,
    pub signal_type: String,
    pub channel: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    pub detail: Option<ChannelDetail>,
}

#[cfg(test)]
mod tests {
    use super::MatchingSettings;

    #[test]
    fn stored_settings_name_part_only_when_off() {
        let on = MatchingSettings::default();
        // What a build from before the part channel stores and reads.
        assert_eq!(on.to_stored(), r#"{"dihedral":true,"window":true}"#);
        assert_eq!(MatchingSettings::from_stored(&on.to_stored()), on);
        let off = MatchingSettings {
            dihedral: false,
            part: false,
            ..on
        };
        let stored: serde_json::Value = serde_json::from_str(&off.to_stored()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"dihedral": false, "window": true, "part": false})
        );
        assert_eq!(MatchingSettings::from_stored(&off.to_stored()), off);
    }

    #[test]
    fn refinement_switch_is_automatic_by_held_originals() {
        use super::REFINE_AUTO_MAX_HELD as MAX;
        let auto = MatchingSettings::default();
        assert!(auto.refines(1) && auto.refines(MAX));
        assert!(!auto.refines(MAX + 1));
        // Nothing held (a hash-only bank): no window to refine toward.
        assert!(!auto.refines(0));
        let mut on = auto;
        on.set_word("refine", "on").unwrap();
        assert!(on.refines(MAX * 100));
        assert!(!on.refines(0));
        // Refinement moves needles toward windows: none with windows off.
        on.set_word("window", "off").unwrap();
        assert!(!on.refines(1));
        let mut off = auto;
        off.set_word("refine", "off").unwrap();
        assert!(!off.refines(1));
        // Stored only when set, read back as set.
        assert_eq!(auto.to_stored(), r#"{"dihedral":true,"window":true}"#);
        let stored: serde_json::Value = serde_json::from_str(&off.to_stored()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"dihedral": true, "window": true, "refine": false})
        );
        assert_eq!(MatchingSettings::from_stored(&off.to_stored()), off);
        off.set_word("refine", "auto").unwrap();
        assert_eq!(off, auto);
        let mut a = auto;
        let e = a.set_word("refine", "maybe").unwrap_err();
        assert!(e.contains("matching.refine") && e.contains("auto"), "{e}");
        assert!(a.set_word("window", "auto").is_err());
        assert!(a.set_word("colour", "on").is_err());
        assert_eq!(a, auto);
    }
}
