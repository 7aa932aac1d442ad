//! Recording sightings: what collected items match, and retro-hunting.
//!
//! The collector turns sources into [`SightingItem`]s (a URL and, where
//! there is one, its bytes, its parent and when it was seen). This module
//! is where they meet the banks:
//!
//! * [`Engine::prepare_sighting`] (blocking; CPU only) hashes an item with
//!   the same signals code as every other entry point (an image → pdq, text
//!   → text_minhash signed per equivalence-list version in play, video →
//!   vpdq, a PDF through the isolated extractor, anything else its digests),
//!   adds the URL's `url` and `url_sha256` signals, and matches them against
//!   the in-memory indexes. Bytes are hashed and matched exactly as a
//!   `/v1/lookup` upload of them (`signals::hash_upload`, then
//!   `MatchState::find_with` with the derived query hashes): an image or
//!   video goes through the robust channels too (`dihedral`, `border`,
//!   `window`, `region`, `part`, under each bank's `matching` switches), and
//!   each hit keeps the channel that found it (plain wins for an item),
//!   unless the item's source turned that off (`robust: false`: plain
//!   PDQ/vPDQ and digests only, for image-heavy sources whose operator
//!   prefers ~6× less CPU per image to finding adapted copies). An
//!   allow-bank hit suppresses the block hits, as for a lookup. Nothing is
//!   written, so the caller can put the signals and the match result into
//!   its WARC `metadata` record first.
//! * [`Engine::record_sightings`] writes prepared items inside the caller's
//!   transaction (the collector finishes its frontier job in the same one):
//!   the sighting (unique by URL and bytes), its signals (hashes only, for
//!   retro-hunting; the trailing `sha256`, `url` and `url_sha256`, which
//!   repeat the sighting's own columns, as bits on it rather than rows:
//!   `echotrace_store::split_implied_signals`), and when it matched, a review record exactly like a
//!   lookup's (submission + pending matches + `lookup.match` audit + `match`
//!   outbox event) tagged with its source (actor `source:<name>`, context
//!   `sighting:<id>` and the URL), and the `sighting_matches` rows that tie
//!   it to each bank item (its variant cluster). An unmatched sighting gets
//!   `expires_at` = recorded (or seen, if later) + the retro-hunt window; a match clears it, and the parent of a matched sighting is never swept.
//! * **Retro-hunting** ([`Engine::retro_hunt`], run by
//!   [`Engine::spawn_retro_hunter`]): when bank items are added, the stored
//!   signals of earlier sightings are matched against them, so a hash
//!   added today finds where it was already seen. Exact types are looked up
//!   by value; PDQ, text and vPDQ are scanned page by page and matched with
//!   the live indexes (every bank rule applies), keeping only hits on the new
//!   items. A stored PDQ also meets the bank-side windows and regions of new
//!   items added as files (`RobustQuery::stored_pdq`, through the lookup's
//!   `find_with`), so a crop collected before its original was added is
//!   found, channel `window`; nothing that needs the sighting's pixels is
//!   (docs/ROBUST.md, "Retro-hunting"). The hunter follows the change sequence from a stored cursor under
//!   a lease, so one process does it, and it also sweeps expired unmatched
//!   sightings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use echotrace_signals::canonical_url::canonicalize_url;
use echotrace_signals::content::{detect_kind, ContentKind};
use echotrace_signals::signal::SignalType;
use echotrace_store::{NewSighting, NewSightingMatch, WarcRef, WriteTx};
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::recorder::{record_one, PendingLookup};
use crate::signals::{digest_signals, sign_variants, VideoSampling};
use crate::state::Candidate;
use crate::types::{Actor, BankKind, ContentId, SignalValue, SubmissionContext};
use crate::Engine;

/// What a source produced.
#[derive(Clone, Debug)]
pub struct SightingItem {
    pub source_id: Option<i64>,
    /// For the review record's tag (`source:<name>`).
    pub source_name: String,
    pub url: String,
    /// From the operator's host → platform table ('' when unknown).
    pub platform: String,
    /// The sighting (page, message) that linked to this one.
    pub parent_id: Option<i64>,
    /// When it was seen, Unix ms.
    pub seen_at: i64,
    pub content: ItemContent,
    /// What the source said about the item (chat, author, forwarded_from,
    /// HTTP status…), stored as the sighting's attributes.
    pub attributes: Option<serde_json::Value>,
    /// Where its evidence was written.
    pub warc: Option<WarcRef>,
    /// Match an image or video through the robust channels, as a
    /// `/v1/lookup` of its bytes (the source's `robust`, default true);
    /// `false`: its plain PDQ/vPDQ and digests only.
    pub robust: bool,
}

/// The payload of an item.
#[derive(Clone, Debug)]
pub enum ItemContent {
    /// A bare URL (an outlink not fetched): matched on its URL signals.
    None,
    /// Bytes of unknown kind: hashed by the content dispatcher; bytes of no
    /// recognised kind (an archive, an executable) keep their digests.
    Bytes(bytes::Bytes),
    /// Text already extracted from `raw` (a page's visible text, a
    /// message): `text_minhash` of the text, digests of `raw`.
    Text {
        text: String,
        raw: bytes::Bytes,
        media_type: String,
    },
    /// Bytes already hashed under another URL (content dedup): these
    /// signals are reused.
    Known {
        content_sha256: String,
        media_type: String,
        signals: Vec<SignalValue>,
    },
}

/// One bank hit of a prepared item, as written to evidence records.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SightingHit {
    pub bank_id: i64,
    pub bank_name: String,
    pub content_id: ContentId,
    pub signal_type: SignalType,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// The channel that found it (`plain`, `dihedral`, `border`, …).
    pub channel: &'static str,
}

/// An item hashed and matched, ready to record.
#[derive(Clone, Debug)]
pub struct PreparedSighting {
    pub source_id: Option<i64>,
    pub source_name: String,
    pub url: String,
    pub url_canonical: String,
    pub url_sha256: String,
    pub host: String,
    pub platform: String,
    pub parent_id: Option<i64>,
    pub seen_at: i64,
    /// SHA-256 of the payload, '' for a bare URL.
    pub content_sha256: String,
    /// `image`, `video`, `pdf`, `text`, `html`, `other`, or '' (bare URL).
    pub media_type: String,
    /// Every signal (content signals, then `url` and `url_sha256`).
    pub signals: Vec<SignalValue>,
    /// Why the content could not be fully hashed (digests only), if so.
    pub hash_error: Option<String>,
    pub attributes: Option<serde_json::Value>,
    pub warc: Option<WarcRef>,
    /// Block-bank hits (empty when an allow bank suppressed them).
    candidates: Vec<Candidate>,
    bank_names: HashMap<i64, String>,
    /// True when an allow-bank hit suppressed block hits.
    pub suppressed_by_allow: bool,
}

impl PreparedSighting {
    pub fn is_match(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// The hits, for evidence records and progress reports.
    pub fn hits(&self) -> Vec<SightingHit> {
        self.candidates
            .iter()
            .map(|c| SightingHit {
                bank_id: c.bank_id,
                bank_name: self.bank_names.get(&c.bank_id).cloned().unwrap_or_default(),
                content_id: c.content_id,
                signal_type: c.signal_type,
                distance: c.distance,
                similarity: c.similarity,
                channel: c.channel.as_str(),
            })
            .collect()
    }

    /// Set the evidence record (after hashing, before recording).
    pub fn set_warc(&mut self, warc: WarcRef) {
        self.warc = Some(warc);
    }
}

/// What [`Engine::record_sightings`] wrote for one item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedSighting {
    pub sighting_id: i64,
    /// False when the same bytes at the same URL were seen before (only
    /// `last_seen_at` moved).
    pub is_new: bool,
    pub matched: bool,
    /// The review record that queued its matches, when one was written.
    pub submission_id: Option<i64>,
    pub match_ids: Vec<i64>,
}

/// Settings of sighting recording.
#[derive(Clone, Debug)]
pub struct SightingConfig {
    /// How long an unmatched sighting's hashes are kept for retro-hunting
    /// (`None`: for ever).
    pub unmatched_ttl: Option<Duration>,
}

impl Default for SightingConfig {
    fn default() -> Self {
        SightingConfig {
            unmatched_ttl: Some(Duration::from_secs(90 * 24 * 3600)),
        }
    }
}

/// What one retro-hunt pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetroHuntReport {
    pub content_items: usize,
    pub signals_scanned: u64,
    pub sightings_matched: usize,
    pub matches_recorded: usize,
}

/// The lease and cursor names of the retro-hunter.
pub const RETRO_HUNT_LEASE: &str = "collector:retro-hunt";
pub const RETRO_HUNT_CURSOR: &str = "retro_hunt";

/// The review-record actor of a source: `source:<name>`.
pub fn source_actor(name: &str) -> Actor {
    Actor(format!("source:{name}"))
}

/// The sighting media type of some bytes: `image`, `video`, `pdf`, `text`
/// or `other` (by magic bytes, like the hashing dispatcher).
pub fn media_type_of(bytes: &[u8]) -> &'static str {
    match detect_kind(bytes) {
        Some(ContentKind::Image(_)) => "image",
        Some(ContentKind::Video) => "video",
        Some(ContentKind::Pdf) => "pdf",
        Some(ContentKind::Text) => "text",
        _ => "other",
    }
}

impl Engine {
    /// Hash and match one item (no writes). Blocking: run it off the async
    /// runtime. An item whose URL is not a canonicalisable http(s) URL is
    /// [`EngineError::InvalidInput`]; content that cannot be hashed keeps
    /// its digests and says why in `hash_error`.
    pub fn prepare_sighting(&self, item: SightingItem) -> Result<PreparedSighting> {
        let canon = canonicalize_url(&item.url).map_err(|e| {
            EngineError::InvalidInput(format!("sighting URL {:?}: {e}", short(&item.url)))
        })?;
        let mut hash_error = None;
        // Raw text (a text file's, a PDF's) to sign under the banks'
        // equivalence lists, and an image's or video's derived query hashes
        // (the robust channels): both as `/v1/lookup` makes them.
        let mut query_text: Option<crate::signals::QueryText> = None;
        let mut robust: Option<crate::robust::RobustQuery> = None;
        // Text signed here is signed once, for every list version in play.
        let mut variants = None;
        let (content_sha256, media_type, mut signals) = match item.content {
            ItemContent::None => (String::new(), String::new(), Vec::new()),
            ItemContent::Known {
                content_sha256,
                media_type,
                signals,
            } => (content_sha256, media_type, signals),
            ItemContent::Bytes(bytes) => {
                let sha = echotrace_signals::digest::sha256_hex(&bytes);
                let media = media_type_of(&bytes);
                let signals = if media == "other" {
                    digest_signals(&bytes)
                } else {
                    // The lookup's own hashing (no OCR: collected items are
                    // not OCRed), so an item matches exactly as a
                    // `/v1/lookup` of the same bytes.
                    match crate::signals::hash_upload_with(
                        bytes.clone(),
                        VideoSampling::Query,
                        self.inner.config.pdf_extractor.as_deref(),
                        None,
                        item.robust,
                    ) {
                        Ok(h) => {
                            query_text = h.text;
                            robust = h.robust;
                            h.signals
                        }
                        Err(e) => {
                            hash_error = Some(e.to_string());
                            digest_signals(&bytes)
                        }
                    }
                };
                (sha, media.to_string(), signals)
            }
            ItemContent::Text {
                text,
                raw,
                media_type,
            } => {
                let mut signals = Vec::with_capacity(5);
                let lists = self.text_lists(None)?;
                if let Some(v) = sign_variants(&text, &lists, None) {
                    signals.push(SignalValue {
                        signal_type: SignalType::TextMinhash,
                        value: v.base.clone(),
                    });
                    variants = Some(v);
                }
                let digest = digest_signals(&raw);
                let sha = digest[1].value.clone();
                signals.extend(digest);
                (sha, media_type, signals)
            }
        };
        signals.push(SignalValue {
            signal_type: SignalType::Url,
            value: canon.canonical.clone(),
        });
        signals.push(SignalValue {
            signal_type: SignalType::UrlSha256,
            value: canon.sha256.clone(),
        });
        if let (None, Some(t)) = (&variants, &query_text) {
            let lists = self.text_lists(None)?;
            let base = crate::signals::text_minhash_of(&signals).map(str::to_string);
            variants = sign_variants(t.as_str(), &lists, base.as_deref());
        }
        let (candidates, bank_names, suppressed) = {
            let st = self.inner.state.read().map_err(crate::lock_err)?;
            // Every channel a lookup goes through (plain first; each bank's
            // `matching` switches apply), by the lookup's own function.
            let found = st.find_with(&signals, None, variants.as_ref(), robust.as_ref());
            let (allowed, blocked): (Vec<Candidate>, Vec<Candidate>) = found
                .into_iter()
                .partition(|c| c.bank_kind == BankKind::Allow);
            let suppressed = !allowed.is_empty() && !blocked.is_empty();
            let blocked = if allowed.is_empty() {
                blocked
            } else {
                Vec::new()
            };
            let names = blocked
                .iter()
                .filter_map(|c| st.bank_name(c.bank_id).map(|n| (c.bank_id, n.to_string())))
                .collect();
            (blocked, names, suppressed)
        };
        Ok(PreparedSighting {
            source_id: item.source_id,
            source_name: item.source_name,
            url: item.url,
            url_canonical: canon.canonical,
            url_sha256: canon.sha256,
            host: canon.host,
            platform: item.platform,
            parent_id: item.parent_id,
            seen_at: item.seen_at,
            content_sha256,
            media_type,
            signals,
            hash_error,
            attributes: item.attributes,
            warc: item.warc,
            candidates,
            bank_names,
            suppressed_by_allow: suppressed,
        })
    }

    /// Write prepared items in `tx` (see the module doc). Returns one
    /// [`RecordedSighting`] per item, in order.
    pub async fn record_sightings(
        &self,
        tx: &mut WriteTx,
        prepared: &[PreparedSighting],
        config: &SightingConfig,
    ) -> Result<Vec<RecordedSighting>> {
        let ttl_ms = config
            .unmatched_ttl
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4));
        // Attributes (with a hash error, if any) as JSON text.
        let attrs: Vec<Option<String>> = prepared
            .iter()
            .map(|p| match &p.hash_error {
                // Serialised in place: no copy of the attributes.
                None => p.attributes.as_ref().map(json_text),
                Some(e) => {
                    let mut a = p.attributes.clone();
                    let obj = a.get_or_insert_with(|| serde_json::json!({}));
                    if let serde_json::Value::Object(m) = obj {
                        m.insert("hash_error".into(), e.clone().into());
                    }
                    a.as_ref().map(json_text)
                }
            })
            .collect();
        // The retro-hunt window runs from when a sighting was recorded, not
        // from its own date: an imported export of old messages is hunted
        // for as long as a fresh crawl.
        let recorded_at = echotrace_store::now_ms();
        // Each item's signals as stored: the trailing ones that repeat the
        // sighting's own columns (sha256, url, url_sha256) are flagged on it
        // instead of written as rows (`echotrace_store::split_implied_signals`).
        let mut kept: Vec<&[SignalValue]> = Vec::with_capacity(prepared.len());
        let rows: Vec<(NewSighting<'_>, Option<&str>)> = prepared
            .iter()
            .zip(&attrs)
            .map(|(p, a)| {
                let expires_at = match (p.is_match(), ttl_ms) {
                    (false, Some(ttl)) => Some(p.seen_at.max(recorded_at).saturating_add(ttl)),
                    _ => None,
                };
                let mut s = NewSighting {
                    source_id: p.source_id,
                    url: &p.url,
                    url_canonical: &p.url_canonical,
                    url_sha256: &p.url_sha256,
                    host: &p.host,
                    platform: &p.platform,
                    parent_id: p.parent_id,
                    content_sha256: &p.content_sha256,
                    media_type: &p.media_type,
                    seen_at: p.seen_at,
                    expires_at,
                    warc: p.warc.as_ref(),
                    implied_signals: 0,
                };
                let pairs: Vec<(&str, &str)> = p
                    .signals
                    .iter()
                    .map(|v| (v.signal_type.as_str(), v.value.as_str()))
                    .collect();
                let (bits, keep) = echotrace_store::split_implied_signals(&s, &pairs);
                s.implied_signals = bits;
                kept.push(&p.signals[..keep]);
                (s, a.as_deref())
            })
            .collect();
        let upserted = tx.upsert_sightings_bulk(&rows).await?;
        let mut out = Vec::with_capacity(prepared.len());
        let mut signal_rows: Vec<(i64, &str, &str)> = Vec::new();
        let mut matched_now: HashSet<i64> = HashSet::new();
        // Hits carry their stored value and labels only once hydrated from
        // the store (the in-memory state keeps neither): one query for every
        // sighting of the batch that records hits now.
        let mut hits_of: Vec<Vec<Candidate>> = prepared
            .iter()
            .zip(&upserted)
            .map(|(p, row)| {
                if p.is_match() && (row.is_new || !row.matched) {
                    p.candidates.clone()
                } else {
                    Vec::new()
                }
            })
            .collect();
        {
            let mut lists: Vec<&mut Vec<Candidate>> = hits_of.iter_mut().collect();
            self.hydrate_lists(&mut lists).await?;
        }
        for (((p, row), hits), stored) in prepared.iter().zip(&upserted).zip(hits_of).zip(kept) {
            if row.is_new {
                signal_rows.extend(
                    stored
                        .iter()
                        .map(|s| (row.id, s.signal_type.as_str(), s.value.as_str())),
                );
            }
            let mut recorded = RecordedSighting {
                sighting_id: row.id,
                is_new: row.is_new,
                matched: row.matched,
                submission_id: row.submission_id,
                match_ids: Vec::new(),
            };
            if !hits.is_empty() && matched_now.insert(row.id) {
                let (submission_id, match_ids) = record_hits(
                    tx,
                    row.id,
                    &p.source_name,
                    &p.url,
                    &p.signals,
                    &hits,
                    &p.bank_names,
                    "fetch",
                )
                .await?;
                recorded.matched = true;
                recorded.submission_id = Some(submission_id);
                recorded.match_ids = match_ids;
            }
            out.push(recorded);
        }
        tx.insert_sighting_signals_bulk(&signal_rows).await?;
        Ok(out)
    }

    /// Match the stored signals of earlier sightings against `content_ids`
    /// (bank items just added) and record what they match, `found_by`
    /// `retro_hunt`. The engine's indexes must already hold the items
    /// ([`Engine::sync_changes`] is called first).
    pub async fn retro_hunt(&self, content_ids: &[ContentId]) -> Result<RetroHuntReport> {
        self.sync_changes().await?;
        let wanted: HashSet<ContentId> = content_ids.iter().copied().collect();
        let mut report = RetroHuntReport {
            content_items: wanted.len(),
            ..RetroHuntReport::default()
        };
        if wanted.is_empty() {
            return Ok(report);
        }
        // Stored PDQ hashes meet derived hashes only when a new item has
        // some (added as a file): hash-only additions, as exchanges make
        // them in bulk, cost no derived search.
        let derived_new = {
            let st = self.inner.state.read().map_err(crate::lock_err)?;
            wanted.iter().any(|c| st.derived.holds_item(*c))
        };
        let store = self.store().clone();
        // sighting id -> (signal that matched -> hits)
        let mut found: BTreeMap<i64, Vec<(SignalValue, Vec<Candidate>)>> = BTreeMap::new();
        for t in [
            SignalType::Pdq,
            SignalType::TextMinhash,
            SignalType::Vpdq,
            SignalType::Md5,
            SignalType::Sha256,
            SignalType::Url,
            SignalType::UrlSha256,
        ] {
            // Stored rows first, then the ones rebuilt from sightings' own
            // columns (sha256, url, url_sha256; see `echotrace_store::sighting`).
            for implied in [false, true] {
                let mut after = 0;
                loop {
                    let page = if implied {
                        store.implied_signals_page(t.as_str(), after, 2000).await?
                    } else {
                        store.sighting_signals_page(t.as_str(), after, 2000).await?
                    };
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    report.signals_scanned += page.len() as u64;
                    let st = self.inner.state.read().map_err(crate::lock_err)?;
                    for s in &page {
                        // A PDQ hash also meets the new items' bank-side
                        // derived hashes (windows, regions): all a stored
                        // hash without its pixels allows.
                        let pdq = (t == SignalType::Pdq)
                            .then(|| echotrace_signals::pdq::PdqHash::from_hex(&s.value).ok())
                            .flatten();
                        let q = [SignalValue {
                            signal_type: t,
                            value: pdq.map_or_else(|| s.value.clone(), |h| h.to_hex()),
                        }];
                        let robust = pdq
                            .filter(|_| derived_new)
                            .map(crate::robust::RobustQuery::stored_pdq);
                        let hits: Vec<Candidate> = st
                            .find_with(&q, None, None, robust.as_ref())
                            .into_iter()
                            .filter(|c| {
                                wanted.contains(&c.content_id) && c.bank_kind == BankKind::Block
                            })
                            .collect();
                        if !hits.is_empty() {
                            found
                                .entry(s.sighting_id)
                                .or_default()
                                .push((q[0].clone(), hits));
                        }
                    }
                }
            }
        }
        let mut sources: HashMap<i64, String> = HashMap::new();
        for s in store.list_sources().await? {
            sources.insert(s.id, s.name);
        }
        let ids: Vec<i64> = found.keys().copied().collect();
        for chunk in ids.chunks(200) {
            let mut tx = store.write().await?;
            for id in chunk {
                let Some(row) = tx_sighting(&store, *id).await? else {
                    continue;
                };
                // A sighting already tied to a bank item (by any signal)
                // needs no second record for it.
                let already: HashSet<i64> = store
                    .sighting_matches(*id)
                    .await?
                    .into_iter()
                    .map(|m| m.content_id)
                    .collect();
                let mut candidates = Vec::new();
                let mut query = Vec::new();
                for (signal, hits) in found.get(id).into_iter().flatten() {
                    let mut any = false;
                    for c in hits {
                        let dup = candidates
                            .iter()
                            .any(|x: &Candidate| x.content_id == c.content_id);
                        if !already.contains(&c.content_id) && !dup {
                            candidates.push(c.clone());
                            any = true;
                        }
                    }
                    if any {
                        query.push(signal.clone());
                    }
                }
                self.hydrate_lists(&mut [&mut candidates]).await?;
                if candidates.is_empty() {
                    continue;
                }
                let names: HashMap<i64, String> = {
                    let st = self.inner.state.read().map_err(crate::lock_err)?;
                    candidates
                        .iter()
                        .filter_map(|c| st.bank_name(c.bank_id).map(|n| (c.bank_id, n.to_string())))
                        .collect()
                };
                let source = row
                    .source_id
                    .and_then(|s| sources.get(&s).cloned())
                    .unwrap_or_else(|| "retro-hunt".to_string());
                let (_, match_ids) = record_hits(
                    &mut tx,
                    *id,
                    &source,
                    &row.url,
                    &query,
                    &candidates,
                    &names,
                    "retro_hunt",
                )
                .await?;
                report.sightings_matched += 1;
                report.matches_recorded += match_ids.len();
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// One step of the retro-hunter: take the lease, retro-hunt the content
    /// items changed since the stored cursor, advance it, and sweep up to
    /// `sweep` expired unmatched sightings. Returns `None` when another
    /// process holds the lease.
    pub async fn retro_hunt_step(
        &self,
        holder: &str,
        lease_ttl: Duration,
        sweep: i64,
    ) -> Result<Option<RetroHuntReport>> {
        let store = self.store().clone();
        let Some(epoch) = store.try_lease(RETRO_HUNT_LEASE, holder, lease_ttl).await? else {
            return Ok(None);
        };
        let cursor = store.cursor(RETRO_HUNT_CURSOR).await?;
        let changes = store.changes_after(cursor, 10_000).await?;
        let mut report = RetroHuntReport::default();
        if let Some(last) = changes.last() {
            let mut ids: Vec<ContentId> = Vec::new();
            for c in &changes {
                match c.entity.as_str() {
                    "content" if c.op != "delete" => ids.push(c.entity_id),
                    echotrace_store::CONTENT_RANGE_ENTITY => {
                        if let Some(end) = echotrace_store::parse_content_range_op(&c.op) {
                            ids.extend(
                                c.entity_id..=end.min(c.entity_id.saturating_add(1_000_000)),
                            );
                        }
                    }
                    _ => {}
                }
            }
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() && store.any_sighting_digests().await? {
                report = self.retro_hunt(&ids).await?;
            }
            let mut tx = store.write().await?;
            if !tx.holds_lease(RETRO_HUNT_LEASE, holder, epoch).await? {
                return Ok(None);
            }
            tx.set_cursor(RETRO_HUNT_CURSOR, last.id).await?;
            tx.commit().await?;
        }
        if sweep > 0 {
            let mut tx = store.write().await?;
            tx.delete_expired_sightings(echotrace_store::now_ms(), sweep)
                .await?;
            tx.commit().await?;
        }
        Ok(Some(report))
    }

    /// Run [`Engine::retro_hunt_step`] every `every` until aborted.
    pub fn spawn_retro_hunter(
        &self,
        holder: String,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let ttl = (every * 4).max(Duration::from_secs(30));
            loop {
                match engine.retro_hunt_step(&holder, ttl, 1000).await {
                    Ok(Some(r)) if r.sightings_matched > 0 => {
                        tracing::info!(?r, "retro-hunt: earlier sightings matched new bank items");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retro-hunt pass failed; retrying"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

async fn tx_sighting(
    store: &echotrace_store::Store,
    id: i64,
) -> Result<Option<echotrace_store::SightingRow>> {
    Ok(store.get_sighting(id).await?)
}

/// Queue one sighting's hits for review (a lookup record tagged with its
/// source), tie the sighting to each bank item, and mark it matched.
/// Returns the submission id and the match ids.
#[allow(clippy::too_many_arguments)]
async fn record_hits(
    tx: &mut WriteTx,
    sighting_id: i64,
    source_name: &str,
    url: &str,
    signals: &[SignalValue],
    candidates: &[Candidate],
    bank_names: &HashMap<i64, String>,
    found_by: &str,
) -> Result<(i64, Vec<i64>)> {
    let actor = source_actor(source_name);
    let pending = PendingLookup {
        actor: actor.as_str().to_string(),
        context: SubmissionContext {
            content_id: Some(format!("sighting:{sighting_id}")),
            url: Some(url.to_string()),
            uploader_id: Some(actor.as_str().to_string()),
        },
        query_json: crate::to_json(&signals),
        recorded: candidates.to_vec(),
        bank_names: bank_names.clone(),
        suppressed: 0,
        // Collected items are not uploads: they never feed the flood guard.
        flood_hits: Vec::new(),
    };
    let recorded = record_one(tx, &pending).await?;
    let mut match_ids = Vec::with_capacity(recorded.matches.len());
    for (m, c) in recorded.matches.iter().zip(candidates) {
        tx.insert_sighting_match(&NewSightingMatch {
            sighting_id,
            content_id: c.content_id,
            bank_id: c.bank_id,
            signal_type: c.signal_type.as_str(),
            match_id: Some(m.id),
            distance: c.distance,
            similarity: c.similarity,
            channel: c.channel.as_str(),
            found_by,
        })
        .await?;
        match_ids.push(m.id);
    }
    tx.mark_sighting_matched(sighting_id, Some(recorded.submission_id))
        .await?;
    Ok((recorded.submission_id, match_ids))
}

fn short(url: &str) -> String {
    url.chars().take(200).collect()
}

/// A JSON value as text, written straight into a buffer (`Value`'s
/// `Display`, which `to_string` goes through, writes every fragment through
/// `fmt` and grows its string from nothing).
fn json_text(v: &serde_json::Value) -> String {
    let mut buf = Vec::with_capacity(128);
    match serde_json::to_writer(&mut buf, v) {
        // serde_json writes UTF-8 only.
        Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| v.to_string()),
        Err(_) => v.to_string(),
    }
}
