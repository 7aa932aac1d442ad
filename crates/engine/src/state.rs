//! The in-memory matching state: bank/content metadata and the signal
//! indexes, built once from the store and then patched per change.
//!
//! * PDQ codes live in a [`MihIndex`] keyed by signal row id; a query
//!   searches once with the largest PDQ threshold of the candidate banks and
//!   then applies each hit's own bank threshold.
//! * md5, sha256, url and url_sha256 are exact: `(type, value) → signal ids`.
//! * text_minhash signatures live in a [`TextLshIndex`] (bands for
//!   same-size queries, shared-bin counting for texts inside longer pages,
//!   keyed by signal row id, patched incrementally like PDQ). A query asks it for candidates under the loosest text rule of
//!   the enabled banks (lowest Jaccard bound, default containment bound),
//!   then every candidate is **verified exactly** with the text crate's
//!   `compare_text_with` and its own bank's rule, as the old linear scan
//!   did. Two small sets are still scanned because the index cannot
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
//!
//! * Per-bank vPDQ shares: a bank's `vpdq_query_pct` / `vpdq_compared_pct`
//!   thresholds (default 80 / 0) replace the reference's fixed shares in
//!   that check; the index's shares are computed for every candidate anyway.
//! * Per-bank text-equivalence lists: each stored text signal remembers the
//!   list version it was signed with (`SignalEntry::list_version`); parsed
//!   lists are cached by version. A raw-text lookup arrives as
//!   [`TextVariants`] — the query signed once per version present among the
//!   target banks' text items — and each stored item is compared with the
//!   query signed under *its* version. A ready-made `text_minhash` query
//!   cannot be re-normalised and is compared as-is with every item.
//!
//! Applying a change re-reads one bank or one content item (with its
//! signals) and replaces what memory held for it, so it is idempotent and
//! order-insensitive for the same entity.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use echotrace_index::text_lsh::{MinHashSketch, TextLshIndex, TextRule};
use echotrace_index::vpdq_index::{VpdqFrame, VpdqIndex, VpdqIndexOptions};
use echotrace_index::{Hit, MihIndex, MihParams};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::minhash::MinHashParams;
use echotrace_signals::text::{compare_text_with, EquivalenceList, TextMatchRule, TextSignature};
use echotrace_signals::video::vpdq::{compare as compare_vpdq, VpdqHash, VpdqMatchOptions};
use echotrace_store::{BankRow, ContentRow, SignalRow, Store};

use crate::convert::{parse_labels, parse_thresholds};
use crate::error::{EngineError, Result};
use crate::robust::{Channel, DerivedIndex, MatchingSettings, RobustQuery};
use crate::signals::{default_threshold, typed_thresholds};
use crate::types::{
    BankId, BankKind, ContentId, SignalId, SignalValue, VPDQ_COMPARED_PCT, VPDQ_QUERY_PCT,
};
use crate::IndexStats;

#[path = "state_robust.rs"]
mod robust_channels;

struct BankMeta {
    name: String,
    kind: BankKind,
    enabled: bool,
    thresholds: BTreeMap<SignalType, f64>,
    /// Current text-equivalence list version (`None` = no list).
    equivalences: Option<i64>,
    /// vPDQ share rule of the bank, percent.
    vpdq_query_pct: f64,
    vpdq_compared_pct: f64,
}

impl BankMeta {
    fn threshold(&self, t: SignalType) -> f64 {
        self.thresholds
            .get(&t)
            .copied()
            .unwrap_or_else(|| default_threshold(t))
    }
}

struct ContentMeta {
    bank_id: BankId,
    enabled: bool,
    quarantined: bool,
    labels: Vec<String>,
    signal_ids: Vec<SignalId>,
}

struct SignalEntry {
    content_id: ContentId,
    signal_type: SignalType,
    value: String,
    /// Text: the equivalence-list version it was signed with.
    list_version: Option<i64>,
}

/// A raw-text query signed once per equivalence-list version present among
/// the target banks' text items (`None` = no list).
#[derive(Clone, Debug, Default)]
pub(crate) struct TextVariants {
    /// The serialised signature without a list: the query signal these
    /// variants stand for.
    pub base: String,
    pub by_version: Vec<(Option<i64>, TextSignature, String)>,
}

/// One hit before it is recorded.
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
    pub labels: Vec<String>,
    /// The channel that found it (`Plain` for every non-derived hit).
    pub channel: Channel,
    /// JSON detail of a derived-channel hit.
    pub detail: Option<String>,
}

impl Candidate {
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
    banks: HashMap<BankId, BankMeta>,
    contents: HashMap<ContentId, ContentMeta>,
    signals: HashMap<SignalId, SignalEntry>,
    pdq: MihIndex,
    exact: HashMap<(SignalType, String), Vec<SignalId>>,
    /// Every stored text signature (exact verification).
    text: HashMap<SignalId, TextSignature>,
    /// LSH over `text` (candidate generation).
    text_lsh: TextLshIndex,
    /// Stored signatures with a short-text section (edit-distance rule).
    text_short: HashSet<SignalId>,
    /// Stored signatures the LSH index refused; always scanned.
    text_unindexed: HashSet<SignalId>,
    /// Every stored vPDQ signal, parsed (verification and rebuilds).
    vpdq: HashMap<SignalId, VpdqHash>,
    /// Frame index over `vpdq` (candidate generation).
    vpdq_index: VpdqIndex,
    /// Parsed text-equivalence lists by version id.
    lists: HashMap<i64, Arc<EquivalenceList>>,
    /// Text signals per bank and list version they were signed with.
    text_versions: HashMap<BankId, HashMap<Option<i64>, usize>>,
    /// Derived hashes and per-bank robust settings (`crate::robust`).
    derived: DerivedIndex,
}

fn vpdq_frames(h: &VpdqHash) -> Vec<VpdqFrame> {
    h.features
        .iter()
        .map(|f| VpdqFrame {
            code: f.hash.to_words(),
            quality: f.quality,
        })
        .collect()
}

/// Index options for a given per-frame search distance: the reference's
/// quality floor, share thresholds 0 (banks apply theirs afterwards).
fn vpdq_index_options(distance: u32) -> VpdqIndexOptions {
    VpdqIndexOptions {
        quality_threshold: VpdqMatchOptions::default().quality_threshold,
        distance_threshold: distance,
        query_match_threshold_pct: 0.0,
        compared_match_threshold_pct: 0.0,
    }
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

fn to_u64(id: i64) -> u64 {
    // Row ids are positive; the cast is a bijection on i64 anyway.
    id as u64
}

fn to_i64(id: u64) -> i64 {
    id as i64
}

fn bank_meta(row: &BankRow) -> BankMeta {
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
        name: row.name.clone(),
        kind: BankKind::parse(&row.kind).unwrap_or(BankKind::Block),
        enabled: row.enabled,
        thresholds: typed_thresholds(&raw),
        equivalences: row.text_equivalences_id,
        vpdq_query_pct: pct(VPDQ_QUERY_PCT, defaults.query_match_threshold_pct),
        vpdq_compared_pct: pct(VPDQ_COMPARED_PCT, defaults.compared_match_threshold_pct),
    }
}

fn content_meta(row: &ContentRow) -> ContentMeta {
    ContentMeta {
        bank_id: row.bank_id,
        enabled: row.enabled,
        quarantined: row.quarantined,
        labels: parse_labels(&row.labels).unwrap_or_default(),
        signal_ids: Vec::new(),
    }
}

const PAGE: i64 = 10_000;

impl MatchState {
    pub(crate) fn empty() -> Result<Self> {
        Ok(MatchState {
            banks: HashMap::new(),
            contents: HashMap::new(),
            signals: HashMap::new(),
            pdq: MihIndex::new(),
            exact: HashMap::new(),
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

    /// Load everything from the store (startup only).
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
            let page = store.all_content_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for c in &page {
                st.contents.insert(c.id, content_meta(c));
            }
        }
        let mut pdq_entries = Vec::new();
        let mut after = 0;
        loop {
            let page = store.all_signals_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for s in &page {
                if let Some(code) = st.index_signal_except_pdq(s) {
                    pdq_entries.push((to_u64(s.id), code));
                }
            }
        }
        st.pdq = MihIndex::build(pdq_entries, MihParams::default())
            .map_err(|e| EngineError::Internal(format!("building the PDQ index: {e}")))?;
        st.derived = crate::robust::load_derived(store).await?;
        Ok(st)
    }

    /// Register a signal in metadata and the exact/text indexes; returns the
    /// PDQ code if it belongs in the PDQ index (caller inserts it).
    fn index_signal_except_pdq(&mut self, s: &SignalRow) -> Option<[u64; 4]> {
        let t = s.signal_type.parse::<SignalType>().ok()?;
        let content = self.contents.get_mut(&s.content_id)?;
        content.signal_ids.push(s.id);
        let list_version = if t.is_text() {
            *self
                .text_versions
                .entry(content.bank_id)
                .or_default()
                .entry(s.equivalences_id)
                .or_default() += 1;
            s.equivalences_id
        } else {
            None
        };
        self.signals.insert(
            s.id,
            SignalEntry {
                content_id: s.content_id,
                signal_type: t,
                value: s.value.clone(),
                list_version,
            },
        );
        match t {
            SignalType::Pdq => PdqHash::from_hex(&s.value).ok().map(|h| h.to_words()),
            SignalType::TextMinhash | SignalType::OcrText => {
                if let Ok(sig) = s.value.parse::<TextSignature>() {
                    if sig.short.is_some() {
                        self.text_short.insert(s.id);
                    }
                    if self.text_lsh.insert(to_u64(s.id), sketch(&sig)).is_err() {
                        self.text_unindexed.insert(s.id);
                    }
                    self.text.insert(s.id, sig);
                }
                None
            }
            SignalType::Vpdq => {
                if let Ok(h) = VpdqHash::from_signal_str(&s.value) {
                    // A video without matchable frames is simply not indexed.
                    let _ = self.vpdq_index.insert_video(to_u64(s.id), &vpdq_frames(&h));
                    self.vpdq.insert(s.id, h);
                }
                None
            }
            _ => {
                self.exact
                    .entry((t, s.value.clone()))
                    .or_default()
                    .push(s.id);
                None
            }
        }
    }

    fn unindex_signal(&mut self, id: SignalId) {
        let Some(entry) = self.signals.remove(&id) else {
            return;
        };
        if entry.signal_type.is_text() {
            let bank = self.contents.get(&entry.content_id).map(|c| c.bank_id);
            if let Some(per_bank) = bank.and_then(|b| self.text_versions.get_mut(&b)) {
                if let Some(n) = per_bank.get_mut(&entry.list_version) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        per_bank.remove(&entry.list_version);
                    }
                }
            }
        }
        match entry.signal_type {
            SignalType::Pdq => {
                self.pdq.remove(to_u64(id));
            }
            SignalType::TextMinhash | SignalType::OcrText => {
                self.text.remove(&id);
                self.text_lsh.remove(to_u64(id));
                self.text_short.remove(&id);
                self.text_unindexed.remove(&id);
            }
            SignalType::Vpdq => {
                self.vpdq.remove(&id);
                self.vpdq_index.remove_video(to_u64(id));
            }
            t => {
                let key = (t, entry.value);
                if let Some(ids) = self.exact.get_mut(&key) {
                    ids.retain(|x| *x != id);
                    if ids.is_empty() {
                        self.exact.remove(&key);
                    }
                }
            }
        }
    }

    /// Replace what memory holds for a bank (`None` = deleted).
    pub(crate) fn apply_bank(&mut self, id: BankId, row: Option<&BankRow>) {
        match row {
            Some(r) => {
                if let (Some(v), Some(body)) = (r.text_equivalences_id, &r.text_equivalences) {
                    self.insert_list(v, body);
                }
                self.banks.insert(id, bank_meta(r));
            }
            None => {
                self.banks.remove(&id);
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
                self.lists
                    .insert(version, Arc::new(list.unwrap_or_default()));
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
        let v = self.banks.get(&bank_id)?.equivalences?;
        Some((v, self.lists.get(&v)?.clone()))
    }

    /// Whether the bank is known to this state.
    pub(crate) fn has_bank(&self, bank_id: BankId) -> bool {
        self.banks.contains_key(&bank_id)
    }

    /// Text signals of a bank signed under another list version than its
    /// current one.
    pub(crate) fn text_items_older_list(&self, bank_id: BankId) -> u64 {
        let current = self.banks.get(&bank_id).and_then(|b| b.equivalences);
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
        for (id, b) in &self.banks {
            if !b.enabled {
                continue;
            }
            if b.kind == BankKind::Block && banks.is_some_and(|f| !f.contains(id)) {
                continue;
            }
            if let Some(m) = self.text_versions.get(id) {
                versions.extend(m.iter().filter(|(_, n)| **n > 0).map(|(v, _)| *v));
            }
        }
        versions.sort_unstable();
        versions.dedup();
        versions
            .into_iter()
            .filter_map(|v| match v {
                None => Some((None, None)),
                Some(id) => self.lists.get(&id).map(|l| (Some(id), Some(l.clone()))),
            })
            .collect()
    }

    /// The per-frame distance the vPDQ index must search with: the largest
    /// of any bank's (enabled or not, so toggles never rebuild).
    fn vpdq_distance(&self) -> u32 {
        self.banks
            .values()
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
        let mut ix = VpdqIndex::new(vpdq_index_options(distance));
        for (sid, h) in &self.vpdq {
            let _ = ix.insert_video(to_u64(*sid), &vpdq_frames(h));
        }
        self.vpdq_index = ix;
    }

    /// Replace what memory holds for a content item (`None` = deleted).
    pub(crate) fn apply_content(
        &mut self,
        id: ContentId,
        row: Option<&ContentRow>,
        signals: &[SignalRow],
    ) {
        let old_ids = self
            .contents
            .get(&id)
            .map(|c| c.signal_ids.clone())
            .unwrap_or_default();
        let Some(row) = row else {
            for sid in old_ids {
                self.unindex_signal(sid);
            }
            self.contents.remove(&id);
            return;
        };
        let new_ids: Vec<SignalId> = signals.iter().map(|s| s.id).collect();
        if old_ids == new_ids && self.contents.contains_key(&id) {
            // Metadata-only change (enable, labels, quarantine): a flag flip.
            let signal_ids = old_ids;
            let mut meta = content_meta(row);
            meta.signal_ids = signal_ids;
            self.contents.insert(id, meta);
            return;
        }
        for sid in old_ids {
            self.unindex_signal(sid);
        }
        self.contents.insert(id, content_meta(row));
        for s in signals {
            if let Some(code) = self.index_signal_except_pdq(s) {
                self.pdq.insert(to_u64(s.id), code);
            }
        }
    }

    /// Replace the derived hashes of a content item (none: removed).
    pub(crate) fn apply_derived(&mut self, id: ContentId, rows: &[echotrace_store::DerivedRow]) {
        self.derived.apply_content(id, rows);
    }

    /// Replace a bank's robust settings (`None`: bank deleted).
    pub(crate) fn apply_bank_matching(&mut self, id: BankId, settings: Option<MatchingSettings>) {
        self.derived.apply_bank(id, settings);
    }

    /// A bank's robust settings.
    pub(crate) fn bank_matching(&self, id: BankId) -> MatchingSettings {
        self.derived.settings(id)
    }

    pub(crate) fn bank_name(&self, id: BankId) -> Option<&str> {
        self.banks.get(&id).map(|b| b.name.as_str())
    }

    pub(crate) fn labels(&self, content_id: ContentId) -> Vec<String> {
        self.contents
            .get(&content_id)
            .map(|c| c.labels.clone())
            .unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            banks: self.banks.len(),
            content: self.contents.len(),
            signals: self.signals.len(),
            pdq: self.pdq.len(),
            exact: self.exact.values().map(Vec::len).sum(),
            text: self.text.len(),
            vpdq: self.vpdq.len(),
            derived_pdq: self.derived.len(),
            derived_bytes: self.derived.memory_bytes(),
        }
    }

    /// Whether a signal is live for this query: content enabled and not
    /// quarantined, bank enabled, and (for block banks) inside the filter.
    fn live(
        &self,
        sid: SignalId,
        filter: Option<&HashSet<BankId>>,
    ) -> Option<(&SignalEntry, &ContentMeta, &BankMeta, BankId)> {
        let s = self.signals.get(&sid)?;
        let c = self.contents.get(&s.content_id)?;
        if !c.enabled || c.quarantined {
            return None;
        }
        let b = self.banks.get(&c.bank_id)?;
        if !b.enabled {
            return None;
        }
        if b.kind == BankKind::Block {
            if let Some(f) = filter {
                if !f.contains(&c.bank_id) {
                    return None;
                }
            }
        }
        Some((s, c, b, c.bank_id))
    }

    /// Stored text signatures worth verifying against `qsig`: the LSH
    /// index's hits under the loosest rule of the enabled banks, plus the
    /// scanned sets (module doc). Sorted, deduplicated.
    fn text_candidates(&self, qsig: &TextSignature) -> Vec<SignalId> {
        let d = TextMatchRule::default();
        let floor = self
            .banks
            .values()
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
        let mut out: Vec<SignalId> = self
            .text_lsh
            .query(sketch(qsig), &rule)
            .map(|hits| hits.into_iter().map(|(id, _)| to_i64(id)).collect())
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
        for q in query {
            match q.signal_type {
                SignalType::Pdq => {
                    let Ok(hash) = PdqHash::from_hex(&q.value) else {
                        continue;
                    };
                    let radius = self
                        .banks
                        .values()
                        .filter(|b| b.enabled)
                        .map(|b| b.threshold(SignalType::Pdq))
                        .fold(0.0_f64, f64::max)
                        .clamp(0.0, 256.0) as u32;
                    hits.clear();
                    self.pdq.search(&hash.to_words(), radius, &mut hits);
                    for h in &hits {
                        let sid = to_i64(h.id);
                        let Some((s, c, b, bank_id)) = self.live(sid, filter) else {
                            continue;
                        };
                        if f64::from(h.distance) > b.threshold(SignalType::Pdq) {
                            continue;
                        }
                        push(Candidate {
                            bank_id,
                            bank_kind: b.kind,
                            content_id: s.content_id,
                            signal_id: sid,
                            signal_type: SignalType::Pdq,
                            matched_value: s.value.clone(),
                            query_value: q.value.clone(),
                            distance: Some(i64::from(h.distance)),
                            similarity: None,
                            labels: c.labels.clone(),
                            channel: Channel::Plain,
                            detail: None,
                        });
                    }
                }
                SignalType::TextMinhash | SignalType::OcrText => {
                    let Ok(plain) = q.value.parse::<TextSignature>() else {
                        continue;
                    };
                    // (version to hold items to, query signature, its value)
                    let signed: Vec<(Option<Option<i64>>, TextSignature, String)> =
                        match variants.filter(|v| v.base == q.value) {
                            Some(v) => v
                                .by_version
                                .iter()
                                .map(|(ver, sig, val)| (Some(*ver), sig.clone(), val.clone()))
                                .collect(),
                            None => vec![(None, plain, q.value.clone())],
                        };
                    for (version, qsig, qvalue) in &signed {
                        for sid in self.text_candidates(qsig) {
                            let Some(sig) = self.text.get(&sid) else {
                                continue;
                            };
                            let Some((s, c, b, bank_id)) = self.live(sid, filter) else {
                                continue;
                            };
                            if version.is_some_and(|v| v != s.list_version) {
                                continue;
                            }
                            // Either side read by OCR: the bank's ocr_text rule.
                            let kind = if q.signal_type == SignalType::OcrText
                                || s.signal_type == SignalType::OcrText
                            {
                                SignalType::OcrText
                            } else {
                                SignalType::TextMinhash
                            };
                            let rule = TextMatchRule {
                                jaccard: b.threshold(kind),
                                ..TextMatchRule::default()
                            };
                            let Ok(cmp) = compare_text_with(qsig, sig, &rule) else {
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
                                bank_id,
                                bank_kind: b.kind,
                                content_id: s.content_id,
                                signal_id: sid,
                                signal_type: kind,
                                matched_value: s.value.clone(),
                                query_value: qvalue.clone(),
                                distance: None,
                                similarity: Some(similarity),
                                labels: c.labels.clone(),
                                channel: Channel::Plain,
                                detail: None,
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
                        let sid = to_i64(v.video_id);
                        let Some((s, c, b, bank_id)) = self.live(sid, filter) else {
                            continue;
                        };
                        let opts = VpdqMatchOptions {
                            distance_threshold: threshold_distance(b.threshold(SignalType::Vpdq)),
                            query_match_threshold_pct: b.vpdq_query_pct,
                            compared_match_threshold_pct: b.vpdq_compared_pct,
                            ..VpdqMatchOptions::default()
                        };
                        let (query_pct, compared_pct) = if opts.distance_threshold == index_distance
                        {
                            (v.query_match_pct, v.compared_match_pct)
                        } else {
                            let Some(stored) = self.vpdq.get(&sid) else {
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
                            bank_id,
                            bank_kind: b.kind,
                            content_id: s.content_id,
                            signal_id: sid,
                            signal_type: SignalType::Vpdq,
                            matched_value: s.value.clone(),
                            query_value: q.value.clone(),
                            distance: None,
                            similarity: Some(query_pct / 100.0),
                            labels: c.labels.clone(),
                            channel: Channel::Plain,
                            detail: None,
                        });
                    }
                }
                t => {
                    let Some(ids) = self.exact.get(&(t, q.value.clone())) else {
                        continue;
                    };
                    for sid in ids {
                        let Some((s, c, b, bank_id)) = self.live(*sid, filter) else {
                            continue;
                        };
                        push(Candidate {
                            bank_id,
                            bank_kind: b.kind,
                            content_id: s.content_id,
                            signal_id: *sid,
                            signal_type: t,
                            matched_value: s.value.clone(),
                            query_value: q.value.clone(),
                            distance: Some(0),
                            similarity: None,
                            labels: c.labels.clone(),
                            channel: Channel::Plain,
                            detail: None,
                        });
                    }
                }
            }
        }
        if let Some(r) = robust {
            self.find_robust(r, query, filter, &mut push);
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

        let candidates = st.text_candidates(&qsig);
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
        assert!(!st.text_candidates(&qsig).contains(&5000));
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
