//! The in-memory matching state: bank metadata, compact per-item columns
//! and the signal indexes, built once (from the store, or from a snapshot)
//! and then patched per change.
//!
//! * Every content item and every signal has a dense **slot**; their
//!   metadata is columnar ([`crate::columns`]): content row id, bank,
//!   enabled/quarantined flags and the chain of its signals; signal row id,
//!   content slot and type. Labels, notes and stored signal values are not
//!   held: a lookup reads them from the store for the hits it reports
//!   (`Engine::hydrate`). Every index below is keyed by signal slot.
//! * PDQ codes live in a [`MihIndex`]; a query searches once with the
//!   largest PDQ threshold of the candidate banks and then applies each
//!   hit's own bank threshold.
//! * md5, sha256, url and url_sha256 are exact: a fingerprint of (type,
//!   value) → signal slots ([`ExactIndex`]), confirmed against the stored
//!   value when the hit is read for the answer.
//! * text_minhash signatures live in a [`TextLshIndex`] (bands for
//!   same-size queries, shared-bin counting for texts inside longer pages,
//!   patched incrementally like PDQ). A query asks it for candidates under
//!   the loosest text rule of the enabled banks (lowest Jaccard bound,
//!   default containment bound), then every candidate is **verified
//!   exactly** with the text crate's `compare_text_with` and its own bank's
//!   rule. Two small sets are still scanned because the index cannot
//!   answer for them: stored *short* texts when the query is short (the
//!   word edit-distance rule needs token sequences, not bins), and the
//!   rare signatures the index refuses (non-default K, empty text).
//! * vpdq signals live in a [`VpdqIndex`] (distinct frame codes in a MIH
//!   index, hits aggregated per video) built with the largest per-frame
//!   distance of any bank and share thresholds of 0, so it returns every
//!   video sharing a frame; each candidate is then held to its bank's rule
//!   (bank `vpdq` threshold = per-frame distance, default 31; query share
//!   ≥ 80 %, compared share ≥ 0 %, quality ≥ 50, the reference's rule).
//!   When the bank's distance equals the index's, the index's shares are
//!   already exact; otherwise the pair is re-compared with
//!   `video::vpdq::compare`. A bank threshold change that moves the largest
//!   distance rebuilds the vPDQ index from the parsed signals kept here.
//! * Per-bank vPDQ shares: a bank's `vpdq_query_pct` / `vpdq_compared_pct`
//!   thresholds (default 80 / 0) replace the reference's fixed shares in
//!   that check; the index's shares are computed for every candidate anyway.
//! * Per-bank text-equivalence lists: each stored text signal remembers the
//!   list version it was signed with ([`TextEntry::list_version`]); parsed
//!   lists are cached by version. A raw-text lookup arrives as
//!   [`TextVariants`] — the query signed once per version present among the
//!   target banks' text items — and each stored item is compared with the
//!   query signed under *its* version. A ready-made `text_minhash` query
//!   cannot be re-normalised and is compared as-is with every item.
//!
//! Applying a change re-reads one bank or one content item (with its
//! signals) and replaces what memory held for it, so it is idempotent and
//! order-insensitive for the same entity. The snapshot format
//! ([`crate::snapshot`]) writes these fields section by section.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use echotrace_index::text_lsh::{MinHashSketch, TextLshIndex, TextRule};
use echotrace_index::vpdq_index::VpdqIndex;
use echotrace_index::{Hit, MihIndex, MihParams};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::minhash::MinHashParams;
use echotrace_signals::text::{compare_text_with, EquivalenceList, TextMatchRule, TextSignature};
use echotrace_signals::video::vpdq::{compare as compare_vpdq, VpdqHash, VpdqMatchOptions};
use echotrace_store::{BankRow, ContentFlagsRow, ContentRow, SignalRow, Store};

use crate::columns::{
    fingerprint, ContentColumns, ExactIndex, SignalColumns, Slot, ENABLED, LIVE, NO_SLOT,
    QUARANTINED,
};
use crate::convert::parse_thresholds;
use crate::error::{EngineError, Result};
use crate::robust::{
    vpdq_frames, vpdq_index_options, Channel, DerivedIndex, MatchingSettings, RobustQuery,
};
use crate::signals::{default_threshold, typed_thresholds};
use crate::types::{
    BankId, BankKind, ContentId, SignalId, SignalValue, VPDQ_COMPARED_PCT, VPDQ_QUERY_PCT,
};
use crate::IndexStats;

#[path = "state_robust.rs"]
mod robust_channels;

pub(crate) struct BankMeta {
    pub(crate) id: BankId,
    pub(crate) name: String,
    pub(crate) kind: BankKind,
    pub(crate) enabled: bool,
    thresholds: BTreeMap<SignalType, f64>,
    /// Current text-equivalence list version (`None` = no list).
    pub(crate) equivalences: Option<i64>,
    /// vPDQ share rule of the bank, percent.
    vpdq_query_pct: f64,
    vpdq_compared_pct: f64,
    /// The row it was built from (snapshots store it).
    pub(crate) row: BankRow,
}

impl BankMeta {
    fn threshold(&self, t: SignalType) -> f64 {
        self.thresholds
            .get(&t)
            .copied()
            .unwrap_or_else(|| default_threshold(t))
    }

    /// The bank's vPDQ rule: its per-frame distance and shares.
    fn vpdq_rule(&self) -> VpdqMatchOptions {
        VpdqMatchOptions {
            distance_threshold: threshold_distance(self.threshold(SignalType::Vpdq)),
            query_match_threshold_pct: self.vpdq_query_pct,
            compared_match_threshold_pct: self.vpdq_compared_pct,
            ..VpdqMatchOptions::default()
        }
    }
}

/// A stored text signature and the list version it was signed with.
pub(crate) struct TextEntry {
    pub(crate) sig: TextSignature,
    pub(crate) list_version: Option<i64>,
}

/// A raw-text query signed once per equivalence-list version present among
/// the target banks' text items (`None` = no list).
#[derive(Clone, Debug)]
pub(crate) struct TextVariants {
    /// The serialised signature without a list: the query signal these
    /// variants stand for.
    pub base: String,
    /// `base`, parsed.
    pub base_sig: TextSignature,
    /// Per list version, its signature and serialised form; `None` when
    /// that is the base (no list).
    pub by_version: Vec<(Option<i64>, Option<SignedText>)>,
}

/// A text signature and its serialised form.
pub(crate) type SignedText = (TextSignature, String);

impl TextVariants {
    /// (list version, signature, serialised form) of every variant.
    pub(crate) fn signed(&self) -> impl Iterator<Item = (Option<i64>, &TextSignature, &str)> {
        self.by_version.iter().map(|(ver, signed)| match signed {
            Some((sig, value)) => (*ver, sig, value.as_str()),
            None => (*ver, &self.base_sig, self.base.as_str()),
        })
    }
}

/// One hit before it is recorded. `matched_value` and `labels` are empty
/// until the hit is read from the store (`Engine::hydrate`).
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub bank_id: BankId,
    pub bank_kind: BankKind,
    pub content_id: ContentId,
    pub signal_id: SignalId,
    pub signal_type: SignalType,
    pub matched_value: String,
    pub query_value: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// vPDQ: the share (0..1) of the bank video's frames with a partner.
    pub compared_similarity: Option<f64>,
    pub labels: Vec<String>,
    /// The channel that found it (`Plain` for every non-derived hit).
    pub channel: Channel,
    /// JSON detail of a derived-channel hit.
    pub detail: Option<String>,
    /// Found by the fingerprint of an exact value ([`ExactIndex`]): the
    /// stored value must equal `query_value` (`Engine::hydrate` checks).
    pub exact: bool,
}

impl Candidate {
    /// A plain-channel hit of a live signal, its figures still unset.
    fn of(live: &LiveHit<'_>, signal_type: SignalType, query_value: &str) -> Candidate {
        Candidate {
            bank_id: live.bank.id,
            bank_kind: live.bank.kind,
            content_id: live.content_id,
            signal_id: live.signal_id,
            signal_type,
            matched_value: String::new(),
            query_value: query_value.to_string(),
            distance: None,
            similarity: None,
            compared_similarity: None,
            labels: Vec::new(),
            channel: Channel::Plain,
            detail: None,
            exact: false,
        }
    }

    /// Higher is better; used to keep one hit per (content, signal type).
    /// A plain hit always beats a derived one (decisions on pairs that
    /// matched before do not change), then channels in rank order.
    fn score(&self) -> f64 {
        let base = match (self.distance, self.similarity) {
            (_, Some(s)) => s,
            (Some(d), None) => -(d as f64) / 1000.0,
            (None, None) => 0.0,
        };
        base - f64::from(self.channel.rank()) * 10.0
    }
}

pub(crate) struct MatchState {
    /// Bank slot → bank (`None` = deleted). Banks are few; slots are not
    /// reused.
    pub(crate) banks: Vec<Option<BankMeta>>,
    pub(crate) bank_slots: HashMap<BankId, Slot>,
    pub(crate) content: ContentColumns,
    pub(crate) signals: SignalColumns,
    pub(crate) pdq: MihIndex,
    pub(crate) exact: ExactIndex,
    /// Every stored text signature (exact verification).
    pub(crate) text: HashMap<Slot, TextEntry>,
    /// LSH over `text` (candidate generation).
    text_lsh: TextLshIndex,
    /// Stored signatures with a short-text section (edit-distance rule).
    text_short: HashSet<Slot>,
    /// Stored signatures the LSH index refused; always scanned.
    text_unindexed: HashSet<Slot>,
    /// Every stored vPDQ signal, parsed (verification and rebuilds).
    pub(crate) vpdq: HashMap<Slot, VpdqHash>,
    /// Frame index over `vpdq` (candidate generation).
    vpdq_index: VpdqIndex,
    /// Parsed text-equivalence lists by version id, with their bodies.
    pub(crate) lists: HashMap<i64, (Arc<EquivalenceList>, String)>,
    /// Text signals per bank and list version they were signed with.
    text_versions: HashMap<BankId, HashMap<Option<i64>, usize>>,
    /// Derived hashes and per-bank robust settings (`crate::robust`).
    pub(crate) derived: DerivedIndex,
}

fn threshold_distance(t: f64) -> u32 {
    t.clamp(0.0, 256.0) as u32
}

fn sketch(sig: &TextSignature) -> MinHashSketch<'_> {
    MinHashSketch {
        mins: &sig.mins,
        set_size: sig.set_size,
    }
}

fn new_text_lsh() -> Result<TextLshIndex> {
    TextLshIndex::new(MinHashParams::default().num_bins)
        .map_err(|e| EngineError::Internal(format!("creating the text index: {e}")))
}

pub(crate) fn bank_meta(row: &BankRow) -> BankMeta {
    let raw = parse_thresholds(&row.thresholds).unwrap_or_default();
    let defaults = VpdqMatchOptions::default();
    let pct = |key: &str, default: f64| {
        raw.0
            .get(key)
            .copied()
            .filter(|v| v.is_finite())
            .map(|v| v.clamp(0.0, 100.0))
            .unwrap_or(default)
    };
    BankMeta {
        id: row.id,
        name: row.name.clone(),
        kind: BankKind::parse(&row.kind).unwrap_or(BankKind::Block),
        enabled: row.enabled,
        thresholds: typed_thresholds(&raw),
        equivalences: row.text_equivalences_id,
        vpdq_query_pct: pct(VPDQ_QUERY_PCT, defaults.query_match_threshold_pct),
        vpdq_compared_pct: pct(VPDQ_COMPARED_PCT, defaults.compared_match_threshold_pct),
        // The list body is kept once, in `lists`.
        row: BankRow {
            text_equivalences: None,
            ..row.clone()
        },
    }
}

/// What the state needs of a content row.
fn flags_of(row: &ContentRow) -> ContentFlagsRow {
    ContentFlagsRow {
        id: row.id,
        bank_id: row.bank_id,
        enabled: row.enabled,
        quarantined: row.quarantined,
    }
}

const PAGE: i64 = 10_000;

/// A live hit's bank and content, as [`MatchState::live`] resolves them.
struct LiveHit<'a> {
    bank: &'a BankMeta,
    content_id: ContentId,
    signal_id: SignalId,
}

impl MatchState {
    pub(crate) fn empty() -> Result<Self> {
        Ok(MatchState {
            banks: Vec::new(),
            bank_slots: HashMap::new(),
            content: ContentColumns::default(),
            signals: SignalColumns::default(),
            pdq: MihIndex::new(),
            exact: ExactIndex::default(),
            text: HashMap::new(),
            text_lsh: new_text_lsh()?,
            text_short: HashSet::new(),
            text_unindexed: HashSet::new(),
            vpdq: HashMap::new(),
            vpdq_index: VpdqIndex::new(vpdq_index_options(threshold_distance(default_threshold(
                SignalType::Vpdq,
            )))),
            lists: HashMap::new(),
            text_versions: HashMap::new(),
            derived: DerivedIndex::empty(),
        })
    }

    /// Load everything from the store, page by page (startup without a
    /// usable snapshot).
    pub(crate) async fn load(store: &Store) -> Result<Self> {
        let mut st = MatchState::empty()?;
        for l in store.text_equivalences_in_use().await? {
            st.insert_list(l.id, &l.body);
        }
        for b in store.list_banks().await? {
            st.apply_bank(b.id, Some(&b));
        }
        st.refresh_vpdq_distance();
        let mut after = 0;
        loop {
            let page = store.content_flags_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for c in &page {
                st.set_content(c);
            }
        }
        let mut pdq_entries = Vec::new();
        let mut after = 0;
        loop {
            let page = store.all_signals_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for s in &page {
                let Some(cs) = st.content.slot_of(s.content_id) else {
                    continue;
                };
                if let Some((slot, code)) = st.index_signal_except_pdq(cs, s) {
                    pdq_entries.push((u64::from(slot), code));
                }
            }
        }
        st.pdq = MihIndex::build(pdq_entries, MihParams::default())
            .map_err(|e| EngineError::Internal(format!("building the PDQ index: {e}")))?;
        st.derived = crate::robust::load_derived(store).await?;
        st.shrink();
        Ok(st)
    }

    /// Give back the spare capacity the columns grew into while loading
    /// (up to half of them after doubling).
    fn shrink(&mut self) {
        let c = &mut self.content;
        c.ids.shrink_to_fit();
        c.bank.shrink_to_fit();
        c.flags.shrink_to_fit();
        c.first_signal.shrink_to_fit();
        let s = &mut self.signals;
        s.ids.shrink_to_fit();
        s.content.shrink_to_fit();
        s.next.shrink_to_fit();
        s.kind.shrink_to_fit();
    }

    /// The bank slot of a bank id (a placeholder slot for a bank not seen
    /// yet: its content stays unmatched until the bank arrives).
    fn bank_slot(&mut self, id: BankId) -> Slot {
        if let Some(s) = self.bank_slots.get(&id) {
            return *s;
        }
        let s = Slot::try_from(self.banks.len()).unwrap_or(NO_SLOT);
        self.banks.push(None);
        self.bank_slots.insert(id, s);
        s
    }

    fn bank_of_slot(&self, slot: Slot) -> Option<&BankMeta> {
        self.banks.get(slot as usize).and_then(Option::as_ref)
    }

    fn bank(&self, id: BankId) -> Option<&BankMeta> {
        self.bank_of_slot(*self.bank_slots.get(&id)?)
    }

    /// Make `row` live in the content columns (its signals untouched).
    fn set_content(&mut self, row: &ContentFlagsRow) -> Slot {
        let bank = self.bank_slot(row.bank_id);
        let slot = self.content.slot_for(row.id);
        self.content.set(slot, bank, row.enabled, row.quarantined);
        slot
    }

    /// Register a signal of content slot `cs` in the columns (linked first
    /// in its chain) and in the exact/text/vPDQ indexes; returns its slot
    /// and PDQ code if it belongs in the PDQ index (caller inserts it).
    fn index_signal_except_pdq(&mut self, cs: Slot, s: &SignalRow) -> Option<(Slot, [u64; 4])> {
        let t = s.signal_type.parse::<SignalType>().ok()?;
        let bank_id = self.bank_id_of_content(cs)?;
        let slot = self.signals.alloc(s.id, cs, t);
        let first = self.content.first_signal.get_mut(cs as usize)?;
        self.signals.next[slot as usize] = *first;
        *first = slot;
        let key = u64::from(slot);
        match t {
            SignalType::Pdq => PdqHash::from_hex(&s.value)
                .ok()
                .map(|h| (slot, h.to_words())),
            SignalType::TextMinhash | SignalType::OcrText => {
                if let Ok(sig) = s.value.parse::<TextSignature>() {
                    self.add_text(slot, bank_id, sig, s.equivalences_id, key);
                }
                None
            }
            SignalType::Vpdq => {
                if let Ok(h) = VpdqHash::from_signal_str(&s.value) {
                    // A video without matchable frames is simply not indexed.
                    let _ = self.vpdq_index.insert_video(key, &vpdq_frames(&h));
                    self.vpdq.insert(slot, h);
                }
                None
            }
            _ => {
                self.exact.insert(fingerprint(t, &s.value), slot);
                None
            }
        }
    }

    fn add_text(
        &mut self,
        slot: Slot,
        bank_id: BankId,
        sig: TextSignature,
        list_version: Option<i64>,
        key: u64,
    ) {
        *self
            .text_versions
            .entry(bank_id)
            .or_default()
            .entry(list_version)
            .or_default() += 1;
        if sig.short.is_some() {
            self.text_short.insert(slot);
        }
        if self.text_lsh.insert(key, sketch(&sig)).is_err() {
            self.text_unindexed.insert(slot);
        }
        self.text.insert(slot, TextEntry { sig, list_version });
    }

    fn bank_id_of_content(&self, cs: Slot) -> Option<BankId> {
        let b = *self.content.bank.get(cs as usize)?;
        self.banks
            .get(b as usize)
            .and_then(Option::as_ref)
            .map(|m| m.id)
            .or_else(|| {
                self.bank_slots
                    .iter()
                    .find(|(_, s)| **s == b)
                    .map(|(id, _)| *id)
            })
    }

    /// Remove a signal slot from every index and free it (the caller
    /// unlinks it from its chain).
    fn unindex_signal(&mut self, slot: Slot) {
        let Some(t) = self.signals.signal_type(slot) else {
            return;
        };
        let key = u64::from(slot);
        match t {
            SignalType::Pdq => {
                self.pdq.remove(key);
            }
            SignalType::TextMinhash | SignalType::OcrText => {
                if let Some(entry) = self.text.remove(&slot) {
                    let cs = self.signals.content[slot as usize];
                    if let Some(bank) = self.bank_id_of_content(cs) {
                        if let Some(per_bank) = self.text_versions.get_mut(&bank) {
                            if let Some(n) = per_bank.get_mut(&entry.list_version) {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    per_bank.remove(&entry.list_version);
                                }
                            }
                        }
                    }
                }
                self.text_lsh.remove(key);
                self.text_short.remove(&slot);
                self.text_unindexed.remove(&slot);
            }
            SignalType::Vpdq => {
                self.vpdq.remove(&slot);
                self.vpdq_index.remove_video(key);
            }
            _ => self.exact.remove(slot),
        }
        self.signals.release(slot);
    }

    /// Replace what memory holds for a bank (`None` = deleted).
    pub(crate) fn apply_bank(&mut self, id: BankId, row: Option<&BankRow>) {
        match row {
            Some(r) => {
                if let (Some(v), Some(body)) = (r.text_equivalences_id, &r.text_equivalences) {
                    self.insert_list(v, body);
                }
                let slot = self.bank_slot(id);
                if let Some(b) = self.banks.get_mut(slot as usize) {
                    *b = Some(bank_meta(r));
                }
            }
            None => {
                if let Some(slot) = self.bank_slots.get(&id) {
                    if let Some(b) = self.banks.get_mut(*slot as usize) {
                        *b = None;
                    }
                }
                self.text_versions.remove(&id);
            }
        }
        self.refresh_vpdq_distance();
    }

    /// Cache a parsed equivalence-list version (no-op when cached). Lists
    /// are validated before they are stored, so a parse failure here means a
    /// corrupt row: logged, and items signed with it then match only
    /// ready-made signature queries.
    pub(crate) fn insert_list(&mut self, version: i64, body: &str) {
        if self.lists.contains_key(&version) {
            return;
        }
        match crate::signals::parse_equivalences(body) {
            Ok(list) => {
                self.lists.insert(
                    version,
                    (Arc::new(list.unwrap_or_default()), body.to_string()),
                );
            }
            Err(e) => tracing::warn!(version, error = %e, "stored equivalence list unusable"),
        }
    }

    /// List versions referenced by these signal rows that are not cached.
    pub(crate) fn missing_lists(&self, signals: &[SignalRow]) -> Vec<i64> {
        let mut out: Vec<i64> = signals
            .iter()
            .filter_map(|s| s.equivalences_id)
            .filter(|v| !self.lists.contains_key(v))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The bank's current list version and list, if it has one.
    pub(crate) fn bank_list(&self, bank_id: BankId) -> Option<(i64, Arc<EquivalenceList>)> {
        let v = self.bank(bank_id)?.equivalences?;
        Some((v, self.lists.get(&v)?.0.clone()))
    }

    /// Whether the bank is known to this state.
    pub(crate) fn has_bank(&self, bank_id: BankId) -> bool {
        self.bank(bank_id).is_some()
    }

    fn live_banks(&self) -> impl Iterator<Item = &BankMeta> {
        self.banks.iter().filter_map(Option::as_ref)
    }

    /// Text signals of a bank signed under another list version than its
    /// current one.
    pub(crate) fn text_items_older_list(&self, bank_id: BankId) -> u64 {
        let current = self.bank(bank_id).and_then(|b| b.equivalences);
        self.text_versions
            .get(&bank_id)
            .map(|m| {
                m.iter()
                    .filter(|(v, _)| **v != current)
                    .map(|(_, n)| *n as u64)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The list versions a raw-text query must be signed under: every
    /// version present among the text items of the banks a lookup can hit
    /// (enabled; allow banks always, block banks inside the filter), with
    /// the cached list (`None` version = no list). Usually one or two.
    pub(crate) fn text_query_lists(
        &self,
        banks: Option<&[BankId]>,
    ) -> Vec<(Option<i64>, Option<Arc<EquivalenceList>>)> {
        let mut versions: Vec<Option<i64>> = Vec::new();
        for b in self.live_banks() {
            if !b.enabled {
                continue;
            }
            if b.kind == BankKind::Block && banks.is_some_and(|f| !f.contains(&b.id)) {
                continue;
            }
            if let Some(m) = self.text_versions.get(&b.id) {
                versions.extend(m.iter().filter(|(_, n)| **n > 0).map(|(v, _)| *v));
            }
        }
        versions.sort_unstable();
        versions.dedup();
        versions
            .into_iter()
            .filter_map(|v| match v {
                None => Some((None, None)),
                Some(id) => self
                    .lists
                    .get(&id)
                    .map(|(l, _)| (Some(id), Some(l.clone()))),
            })
            .collect()
    }

    /// The per-frame distance the vPDQ index must search with: the largest
    /// of any bank's (enabled or not, so toggles never rebuild).
    fn vpdq_distance(&self) -> u32 {
        self.live_banks()
            .map(|b| threshold_distance(b.threshold(SignalType::Vpdq)))
            .max()
            .unwrap_or_else(|| threshold_distance(default_threshold(SignalType::Vpdq)))
    }

    /// Rebuild the vPDQ index if the search distance changed.
    fn refresh_vpdq_distance(&mut self) {
        let distance = self.vpdq_distance();
        if distance == self.vpdq_index.options().distance_threshold {
            return;
        }
        self.rebuild_vpdq_index(distance);
    }

    fn rebuild_vpdq_index(&mut self, distance: u32) {
        let mut ix = VpdqIndex::new(vpdq_index_options(distance));
        for (slot, h) in &self.vpdq {
            let _ = ix.insert_video(u64::from(*slot), &vpdq_frames(h));
        }
        self.vpdq_index = ix;
    }

    /// The signal slots of content slot `cs`, in chain order.
    fn chain(&self, cs: Slot) -> Vec<Slot> {
        let mut out = Vec::new();
        let mut s = self
            .content
            .first_signal
            .get(cs as usize)
            .copied()
            .unwrap_or(NO_SLOT);
        while s != NO_SLOT && out.len() <= self.signals.len() {
            out.push(s);
            s = self
                .signals
                .next
                .get(s as usize)
                .copied()
                .unwrap_or(NO_SLOT);
        }
        out
    }

    /// Drop every signal of content slot `cs` from the indexes and free
    /// their slots.
    fn release_signals(&mut self, cs: Slot) {
        let slots = self.chain(cs);
        if let Some(f) = self.content.first_signal.get_mut(cs as usize) {
            *f = NO_SLOT;
        }
        for s in slots {
            self.unindex_signal(s);
        }
    }

    /// Replace what memory holds for a content item (`None` = deleted).
    pub(crate) fn apply_content(
        &mut self,
        id: ContentId,
        row: Option<&ContentRow>,
        signals: &[SignalRow],
    ) {
        let existing = self
            .content
            .slot_of(id)
            .filter(|s| self.content.is_live(*s));
        let Some(row) = row else {
            if let Some(cs) = existing {
                self.release_signals(cs);
                self.content.kill(cs);
                self.maybe_compact();
            }
            return;
        };
        if let Some(cs) = existing {
            let mut old: Vec<SignalId> = self
                .chain(cs)
                .iter()
                .map(|s| self.signals.ids[*s as usize])
                .collect();
            old.sort_unstable();
            let mut new: Vec<SignalId> = signals.iter().map(|s| s.id).collect();
            new.sort_unstable();
            if old == new {
                // Metadata-only change (enable, labels, quarantine): a flag flip.
                self.set_content(&flags_of(row));
                return;
            }
            self.release_signals(cs);
        }
        let cs = self.set_content(&flags_of(row));
        for s in signals {
            if let Some((slot, code)) = self.index_signal_except_pdq(cs, s) {
                self.pdq.insert(u64::from(slot), code);
            }
        }
    }

    /// Re-sort the content columns when deletions or out-of-order ids have
    /// piled up (rewrites the signals' content slots).
    fn maybe_compact(&mut self) {
        if !self.content.needs_compaction() {
            return;
        }
        let remap = self.content.compact();
        for c in self.signals.content.iter_mut() {
            if *c != NO_SLOT {
                *c = remap.get(*c as usize).copied().unwrap_or(NO_SLOT);
            }
        }
    }

    /// Replace the derived hashes of a content item (none: removed).
    pub(crate) fn apply_derived(&mut self, id: ContentId, rows: &[echotrace_store::DerivedRow]) {
        self.derived.apply_content(id, rows);
    }

    /// Replace a bank's robust settings (`None`: bank deleted). True when
    /// the bank's derived rows must be applied again (a channel it holds
    /// in memory was turned off or on).
    pub(crate) fn apply_bank_matching(
        &mut self,
        id: BankId,
        settings: Option<MatchingSettings>,
    ) -> bool {
        self.derived.apply_bank(id, settings)
    }

    /// A bank's robust settings.
    pub(crate) fn bank_matching(&self, id: BankId) -> MatchingSettings {
        self.derived.settings(id)
    }

    /// File-added originals whose derived hashes the bank holds.
    pub(crate) fn held_originals(&self, id: BankId) -> u64 {
        self.derived.held(id)
    }

    pub(crate) fn bank_name(&self, id: BankId) -> Option<&str> {
        self.bank(id).map(|b| b.name.as_str())
    }

    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            banks: self.live_banks().count(),
            content: self.content.live,
            signals: self.signals.live,
            pdq: self.pdq.len(),
            exact: self.exact.len(),
            text: self.text.len(),
            vpdq: self.vpdq.len(),
            derived_pdq: self.derived.len(),
            derived_bytes: self.derived.memory_bytes(),
        }
    }

    /// Whether a signal slot is live for this query: content enabled and
    /// not quarantined, bank enabled, and (for block banks) inside the
    /// filter.
    fn live(&self, slot: Slot, filter: Option<&HashSet<BankId>>) -> Option<LiveHit<'_>> {
        let i = slot as usize;
        let cs = *self.signals.content.get(i)?;
        let c = cs as usize;
        let flags = *self.content.flags.get(c)?;
        if flags & (LIVE | ENABLED | QUARANTINED) != LIVE | ENABLED {
            return None;
        }
        let b = self.bank_of_slot(*self.content.bank.get(c)?)?;
        if !b.enabled {
            return None;
        }
        if b.kind == BankKind::Block && filter.is_some_and(|f| !f.contains(&b.id)) {
            return None;
        }
        Some(LiveHit {
            bank: b,
            content_id: self.content.id_of(cs),
            signal_id: *self.signals.ids.get(i)?,
        })
    }

    /// Stored text signatures worth verifying against `qsig`: the LSH
    /// index's hits under the loosest rule of the enabled banks, plus the
    /// scanned sets (module doc). Sorted, deduplicated.
    fn text_candidates(&self, qsig: &TextSignature) -> Vec<Slot> {
        let d = TextMatchRule::default();
        let floor = self
            .live_banks()
            .filter(|b| b.enabled)
            .map(|b| {
                b.threshold(SignalType::TextMinhash)
                    .min(b.threshold(SignalType::OcrText))
            })
            .fold(d.jaccard, f64::min);
        let rule = TextRule {
            jaccard: floor,
            containment: d.containment,
            min_contained_shingles: d.min_contained_shingles,
        };
        let mut out: Vec<Slot> = self
            .text_lsh
            .query(sketch(qsig), &rule)
            .map(|hits| {
                hits.into_iter()
                    .filter_map(|(id, _)| Slot::try_from(id).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.extend(self.text_unindexed.iter().copied());
        if qsig.short.is_some() {
            out.extend(self.text_short.iter().copied());
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// All hits of the query signals, one per (content, signal type), best first.
    #[cfg(test)]
    pub(crate) fn find(&self, query: &[SignalValue], banks: Option<&[BankId]>) -> Vec<Candidate> {
        self.find_with(query, banks, None, None)
    }

    /// [`MatchState::find`] where the query's text signal (`variants.base`)
    /// came from raw text that was also signed under each list version in
    /// `variants`: each stored text item is compared with the signature made
    /// under its own version.
    pub(crate) fn find_with(
        &self,
        query: &[SignalValue],
        banks: Option<&[BankId]>,
        variants: Option<&TextVariants>,
        robust: Option<&RobustQuery>,
    ) -> Vec<Candidate> {
        let filter: Option<HashSet<BankId>> = banks.map(|b| b.iter().copied().collect());
        let filter = filter.as_ref();
        let mut best: HashMap<(ContentId, SignalType), Candidate> = HashMap::new();
        let mut push = |c: Candidate| {
            let key = (c.content_id, c.signal_type);
            match best.get(&key) {
                Some(old) if old.score() >= c.score() => {}
                _ => {
                    best.insert(key, c);
                }
            }
        };
        let mut hits: Vec<Hit> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        // The first vPDQ query, parsed once for the derived channels too.
        let mut plain_vpdq: Option<(&str, VpdqHash)> = None;
        for q in query {
            match q.signal_type {
                SignalType::Pdq => {
                    let Ok(hash) = PdqHash::from_hex(&q.value) else {
                        continue;
                    };
                    let radius = self
                        .live_banks()
                        .filter(|b| b.enabled)
                        .map(|b| b.threshold(SignalType::Pdq))
                        .fold(0.0_f64, f64::max)
                        .clamp(0.0, 256.0) as u32;
                    hits.clear();
                    self.pdq.search(&hash.to_words(), radius, &mut hits);
                    for h in &hits {
                        let Some(live) =
                            Slot::try_from(h.id).ok().and_then(|s| self.live(s, filter))
                        else {
                            continue;
                        };
                        if f64::from(h.distance) > live.bank.threshold(SignalType::Pdq) {
                            continue;
                        }
                        push(Candidate {
                            distance: Some(i64::from(h.distance)),
                            ..Candidate::of(&live, SignalType::Pdq, &q.value)
                        });
                    }
                }
                SignalType::TextMinhash | SignalType::OcrText => {
                    let plain;
                    // (version to hold items to, query signature, its value)
                    let signed: Vec<(Option<Option<i64>>, &TextSignature, &str)> =
                        match variants.filter(|v| v.base == q.value) {
                            Some(v) => v
                                .signed()
                                .map(|(ver, sig, val)| (Some(ver), sig, val))
                                .collect(),
                            None => {
                                let Ok(sig) = q.value.parse::<TextSignature>() else {
                                    continue;
                                };
                                plain = sig;
                                vec![(None, &plain, q.value.as_str())]
                            }
                        };
                    for &(version, qsig, qvalue) in &signed {
                        for slot in self.text_candidates(qsig) {
                            let Some(entry) = self.text.get(&slot) else {
                                continue;
                            };
                            let Some(live) = self.live(slot, filter) else {
                                continue;
                            };
                            if version.is_some_and(|v| v != entry.list_version) {
                                continue;
                            }
                            // Either side read by OCR: the bank's ocr_text rule.
                            let kind = if q.signal_type == SignalType::OcrText
                                || self.signals.signal_type(slot) == Some(SignalType::OcrText)
                            {
                                SignalType::OcrText
                            } else {
                                SignalType::TextMinhash
                            };
                            let rule = TextMatchRule {
                                jaccard: live.bank.threshold(kind),
                                ..TextMatchRule::default()
                            };
                            let Ok(cmp) = compare_text_with(qsig, &entry.sig, &rule) else {
                                continue;
                            };
                            if !cmp.is_match {
                                continue;
                            }
                            let similarity = cmp
                                .jaccard
                                .max(cmp.containment_a_in_b)
                                .max(cmp.containment_b_in_a);
                            push(Candidate {
                                similarity: Some(similarity),
                                ..Candidate::of(&live, kind, qvalue)
                            });
                        }
                    }
                }
                SignalType::Vpdq => {
                    let Ok(qh) = VpdqHash::from_signal_str(&q.value) else {
                        continue;
                    };
                    let index_distance = self.vpdq_index.options().distance_threshold;
                    let mut videos = Vec::new();
                    self.vpdq_index.query(&vpdq_frames(&qh), &mut videos);
                    for v in videos {
                        let Ok(slot) = Slot::try_from(v.video_id) else {
                            continue;
                        };
                        let Some(live) = self.live(slot, filter) else {
                            continue;
                        };
                        let opts = live.bank.vpdq_rule();
                        let (query_pct, compared_pct) = if opts.distance_threshold == index_distance
                        {
                            (v.query_match_pct, v.compared_match_pct)
                        } else {
                            let Some(stored) = self.vpdq.get(&slot) else {
                                continue;
                            };
                            let cmp = compare_vpdq(&qh, stored, &opts);
                            (cmp.query_match_pct, cmp.compared_match_pct)
                        };
                        if query_pct < opts.query_match_threshold_pct
                            || compared_pct < opts.compared_match_threshold_pct
                        {
                            continue;
                        }
                        push(Candidate {
                            similarity: Some(query_pct / 100.0),
                            compared_similarity: Some(compared_pct / 100.0),
                            ..Candidate::of(&live, SignalType::Vpdq, &q.value)
                        });
                    }
                    if plain_vpdq.is_none() {
                        plain_vpdq = Some((&q.value, qh));
                    }
                }
                t => {
                    slots.clear();
                    self.exact.get(fingerprint(t, &q.value), &mut slots);
                    for slot in &slots {
                        if self.signals.signal_type(*slot) != Some(t) {
                            continue;
                        }
                        let Some(live) = self.live(*slot, filter) else {
                            continue;
                        };
                        // Confirmed against the stored value by `hydrate`.
                        push(Candidate {
                            distance: Some(0),
                            exact: true,
                            ..Candidate::of(&live, t, &q.value)
                        });
                    }
                }
            }
        }
        if let Some(r) = robust {
            let plain_vpdq = plain_vpdq.as_ref().map(|(v, h)| (*v, h));
            self.find_robust(r, query, plain_vpdq, filter, &mut push);
        }
        let mut out: Vec<Candidate> = best.into_values().collect();
        out.sort_by(|a, b| {
            b.score()
                .partial_cmp(&a.score())
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.content_id.cmp(&b.content_id))
                .then(a.signal_type.cmp(&b.signal_type))
        });
        out
    }

    /// Rebuild what is derived from the snapshotted fields: the text LSH
    /// index and its scanned sets, per-bank text counts, the vPDQ index.
    pub(crate) fn rebuild_derived(&mut self) -> Result<()> {
        self.text_lsh = new_text_lsh()?;
        self.text_short.clear();
        self.text_unindexed.clear();
        self.text_versions.clear();
        let entries: Vec<(Slot, Option<i64>)> = self
            .text
            .iter()
            .map(|(s, e)| (*s, e.list_version))
            .collect();
        for (slot, version) in entries {
            let cs = self.signals.content[slot as usize];
            if let Some(bank) = self.bank_id_of_content(cs) {
                *self
                    .text_versions
                    .entry(bank)
                    .or_default()
                    .entry(version)
                    .or_default() += 1;
            }
            let Some(entry) = self.text.get(&slot) else {
                continue;
            };
            if entry.sig.short.is_some() {
                self.text_short.insert(slot);
            }
            if self
                .text_lsh
                .insert(u64::from(slot), sketch(&entry.sig))
                .is_err()
            {
                self.text_unindexed.insert(slot);
            }
        }
        let distance = self.vpdq_distance();
        self.rebuild_vpdq_index(distance);
        let banks: HashMap<ContentId, BankId> = self
            .derived
            .item_ids()
            .filter_map(|c| {
                let cs = self.content.slot_of(c)?;
                Some((c, self.bank_id_of_content(cs)?))
            })
            .collect();
        self.derived.assign_banks(|c| banks.get(&c).copied());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echotrace_signals::text::text_signature;

    fn bank_row(id: BankId, thresholds: &str) -> BankRow {
        BankRow {
            id,
            name: format!("bank{id}"),
            kind: "block".into(),
            enabled: true,
            description: String::new(),
            thresholds: thresholds.into(),
            created_at: 0,
            updated_at: 0,
            text_equivalences_id: None,
            text_equivalences: None,
        }
    }

    fn content_row(id: ContentId, bank_id: BankId) -> ContentRow {
        ContentRow {
            id,
            bank_id,
            enabled: true,
            labels: "[]".into(),
            note: String::new(),
            quarantined: false,
            quarantine_reason: None,
            quarantined_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn add_text(st: &mut MatchState, id: i64, bank_id: BankId, text: &str) {
        let row = content_row(id, bank_id);
        let sig = SignalRow {
            id,
            content_id: id,
            bank_id,
            signal_type: "text_minhash".into(),
            value: text_signature(text).to_string(),
            created_at: 0,
            equivalences_id: None,
        };
        st.apply_content(id, Some(&row), &[sig]);
    }

    /// Deterministic pseudo-random prose from a 5,000-word vocabulary.
    fn words(seed: u64, n: usize) -> String {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("w{}", x % 5000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn query(text: &str) -> Vec<SignalValue> {
        vec![SignalValue {
            signal_type: SignalType::TextMinhash,
            value: text_signature(text).to_string(),
        }]
    }

    #[test]
    fn text_lsh_finds_embedded_near_duplicate_without_scanning() {
        let mut st = MatchState::empty().unwrap();
        st.apply_bank(1, Some(&bank_row(1, "{}")));
        for i in 0..2000 {
            add_text(&mut st, 100 + i, 1, &words(1000 + i as u64, 120));
        }
        let article = words(7, 150);
        add_text(&mut st, 5000, 1, &article);
        assert_eq!(st.stats().text, 2001);
        assert_eq!(st.text_lsh.len(), 2001);

        // A longer page: unrelated text around a lightly edited copy.
        let mut edited: Vec<&str> = article.split(' ').collect();
        edited[40] = "changed";
        edited[90] = "words";
        let page = format!("{} {} {}", words(99, 200), edited.join(" "), words(98, 200));
        let qsig = text_signature(&page);

        let candidates: Vec<SignalId> = st
            .text_candidates(&qsig)
            .iter()
            .map(|s| st.signals.ids[*s as usize])
            .collect();
        assert!(candidates.contains(&5000), "{candidates:?}");
        assert!(
            candidates.len() < 20,
            "index should narrow 2001 texts to a few candidates, got {}",
            candidates.len()
        );

        let hits = st.find(&query(&page), None);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].content_id, 5000);
        let sim = hits[0].similarity.unwrap_or(0.0);
        assert!(sim >= 0.7, "containment of the article in the page: {sim}");

        // Incremental removal: the deleted item is no longer a candidate.
        st.apply_content(5000, None, &[]);
        assert_eq!(st.text_lsh.len(), 2000);
        assert!(st.find(&query(&page), None).is_empty());
        let ids: Vec<SignalId> = st
            .text_candidates(&qsig)
            .iter()
            .map(|s| st.signals.ids[*s as usize])
            .collect();
        assert!(!ids.contains(&5000));
    }

    #[test]
    fn text_bank_thresholds_still_apply() {
        let mut st = MatchState::empty().unwrap();
        // Bank 2 accepts looser text matches than the default 0.5; the
        // index must still offer its candidates (the query floor is the
        // loosest enabled bank's bound) and bank 1 must still refuse them.
        st.apply_bank(1, Some(&bank_row(1, "{}")));
        st.apply_bank(2, Some(&bank_row(2, r#"{"text_minhash": 0.3}"#)));
        let base = words(3, 200);
        add_text(&mut st, 1, 1, &base);
        add_text(&mut st, 2, 2, &base);
        // Every 7th word replaced: Jaccard about 0.4, containment about
        // 0.57, below both the default Jaccard and containment bounds.
        let edited: Vec<String> = base
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i % 7 == 3 {
                    format!("x{i}")
                } else {
                    w.to_string()
                }
            })
            .collect();
        let hits = st.find(&query(&edited.join(" ")), None);
        let contents: Vec<_> = hits.iter().map(|h| h.content_id).collect();
        assert_eq!(contents, vec![2], "{hits:?}");
        // Identical text matches both banks.
        assert_eq!(st.find(&query(&base), None).len(), 2);
        // Disabling bank 2 removes its hit.
        let mut off = bank_row(2, r#"{"text_minhash": 0.3}"#);
        off.enabled = false;
        st.apply_bank(2, Some(&off));
        assert!(st.find(&query(&edited.join(" ")), None).is_empty());
    }

    fn fixture_vpdq(name: &str) -> VpdqHash {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
        let path = format!("{dir}/vpdq/expected/{name}.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{path}: {e} (is ../shared/fixtures missing? the vPDQ tests need it)")
        });
        VpdqHash::from_reference_text(&text).unwrap()
    }

    /// One frame a second of a 30 fps every-frame hash, like an upload.
    fn one_per_second(h: &VpdqHash) -> VpdqHash {
        VpdqHash {
            features: h
                .features
                .iter()
                .filter(|f| f.frame_number % 30 == 0)
                .cloned()
                .collect(),
        }
    }

    fn add_vpdq(st: &mut MatchState, id: i64, bank_id: BankId, h: &VpdqHash) {
        let row = content_row(id, bank_id);
        let sig = SignalRow {
            id,
            content_id: id,
            bank_id,
            signal_type: "vpdq".into(),
            value: h.to_signal_string(),
            created_at: 0,
            equivalences_id: None,
        };
        st.apply_content(id, Some(&row), &[sig]);
    }

    fn vpdq_query(h: &VpdqHash) -> Vec<SignalValue> {
        vec![SignalValue {
            signal_type: SignalType::Vpdq,
            value: h.to_signal_string(),
        }]
    }

    #[test]
    fn vpdq_uploads_match_every_frame_bank_entries_by_bank_rule() {
        let mut st = MatchState::empty().unwrap();
        st.apply_bank(1, Some(&bank_row(1, "{}")));
        add_vpdq(&mut st, 1, 1, &fixture_vpdq("chair-orig-22-sd-bar"));
        add_vpdq(&mut st, 2, 1, &fixture_vpdq("pattern-sd-grey-bar"));
        assert_eq!(st.stats().vpdq, 2);

        let chair = vpdq_query(&one_per_second(&fixture_vpdq("chair-22-sd-grey-bar")));
        let hits = st.find(&chair, None);
        let contents: Vec<_> = hits.iter().map(|h| h.content_id).collect();
        assert_eq!(contents, vec![1], "{hits:?}");
        let share = hits[0].similarity.unwrap_or(0.0);
        assert!((0.8..=1.0).contains(&share), "query share {share}");

        let pattern = vpdq_query(&one_per_second(&fixture_vpdq(
            "pattern-sd-with-small-logo-bar",
        )));
        let hits = st.find(&pattern, None);
        let contents: Vec<_> = hits.iter().map(|h| h.content_id).collect();
        assert_eq!(contents, vec![2], "{hits:?}");

        // Bank 1 now demands identical frames: the index is rebuilt with
        // distance 0 and the grey copy no longer matches.
        st.apply_bank(1, Some(&bank_row(1, r#"{"vpdq": 0}"#)));
        assert_eq!(st.vpdq_index.options().distance_threshold, 0);
        assert!(st.find(&chair, None).is_empty());

        // A second bank with the default distance widens the index again;
        // bank 1's stricter rule is then re-checked pair by pair.
        st.apply_bank(2, Some(&bank_row(2, "{}")));
        add_vpdq(&mut st, 3, 2, &fixture_vpdq("chair-orig-22-sd-bar"));
        assert_eq!(st.vpdq_index.options().distance_threshold, 31);
        let hits = st.find(&chair, None);
        let contents: Vec<_> = hits.iter().map(|h| h.content_id).collect();
        assert_eq!(contents, vec![3], "{hits:?}");
        // The exact query video itself matches under distance 0 too.
        let exact = vpdq_query(&one_per_second(&fixture_vpdq("chair-orig-22-sd-bar")));
        let mut contents: Vec<_> = st.find(&exact, None).iter().map(|h| h.content_id).collect();
        contents.sort_unstable();
        assert_eq!(contents, vec![1, 3]);

        // Removal is incremental.
        st.apply_content(3, None, &[]);
        assert!(st.find(&chair, None).is_empty());
        assert_eq!(st.stats().vpdq, 2);
    }

    #[test]
    fn urls_match_exactly_on_canonical_form_and_hash() {
        use crate::signals::normalize_signals;
        let url = |v: &str| SignalValue {
            signal_type: SignalType::Url,
            value: v.into(),
        };
        let mut st = MatchState::empty().unwrap();
        st.apply_bank(1, Some(&bank_row(1, "{}")));
        let stored =
            normalize_signals(&[url("http://Example.com/post/1/?utm_source=tw&id=7")]).unwrap();
        let rows: Vec<SignalRow> = stored
            .iter()
            .enumerate()
            .map(|(i, v)| SignalRow {
                id: 10 + i as i64,
                content_id: 1,
                bank_id: 1,
                signal_type: v.signal_type.as_str().into(),
                value: v.value.clone(),
                created_at: 0,
                equivalences_id: None,
            })
            .collect();
        st.apply_content(1, Some(&content_row(1, 1)), &rows);
        assert_eq!(st.stats().exact, 2);

        let q = normalize_signals(&[url("https://example.com/post/1?id=7#top")]).unwrap();
        let hits = st.find(&q, None);
        let types: Vec<_> = hits.iter().map(|h| h.signal_type).collect();
        assert_eq!(types.len(), 2, "{hits:?}");
        assert!(types.contains(&SignalType::Url) && types.contains(&SignalType::UrlSha256));
        // The hash alone (shared without the URL) matches too.
        let only_hash: Vec<_> = q
            .into_iter()
            .filter(|v| v.signal_type == SignalType::UrlSha256)
            .collect();
        assert_eq!(st.find(&only_hash, None).len(), 1);
        let other = normalize_signals(&[url("https://example.com/post/2")]).unwrap();
        assert!(st.find(&other, None).is_empty());
    }

    #[test]
    fn short_texts_match_by_edit_distance() {
        let mut st = MatchState::empty().unwrap();
        st.apply_bank(1, Some(&bank_row(1, "{}")));
        add_text(&mut st, 1, 1, "join us at the square tonight");
        add_text(&mut st, 2, 1, "completely different short message here");
        let hits = st.find(&query("join us in the square tonight"), None);
        let contents: Vec<_> = hits.iter().map(|h| h.content_id).collect();
        assert_eq!(contents, vec![1], "{hits:?}");
    }
}
