//! Published feeds: a bank shared with partner keys as an ordered log.
//!
//! * **Derived from the change sequence.** The builder (one process at a
//!   time, lease `feed-builder`) tails `changes` and, for every content
//!   change in a published bank, recomputes the feed entry of each affected
//!   `(signal type, value)`: live through the lowest-id active item that
//!   carries it, or a tombstone. An entry that changes gets the bank's next
//!   sequence number, so "everything after cursor N" is one index range.
//!   Deletions, disables and quarantines all become tombstones; only plain
//!   rows of the `signals` table are published.
//! * **Cursors and the horizon.** A cursor is a sequence number. Tombstones
//!   older than the feed's horizon (default 180 days) are purged; a cursor
//!   below the highest purged sequence gets [`FeedError::Gone`] (HTTP 410:
//!   re-snapshot). Paging from no cursor at all is always allowed — a new
//!   subscriber has nothing to delete.
//! * **Long-poll.** A page request with `wait` returns as soon as an entry
//!   past the cursor exists (woken by this process's builder, or by a
//!   100 ms re-check for builders in other processes), or empty when the
//!   wait ends.
//! * **Checksum.** SHA-256 over the sorted live `(type, value)` set at a
//!   head ([`echotrace_engine::exchange::KeySetHasher`]); included in a
//!   caught-up page when it is known for the current head, computed at most
//!   every [`CHECKSUM_MIN_INTERVAL`] per feed so a busy feed of millions
//!   of entries is not rehashed on every change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use echotrace_engine::exchange::{KeySetHasher, LeaseFence, OpinionCategory};
use echotrace_engine::{Actor, ApiKey, Engine, EngineError, Role};
use echotrace_store::{
    ContentRow, FeedEntryRow, FeedOpinionRow, FeedRow, NewAudit, NewFeedEntry, SignalRow, WriteTx,
};
use serde::Serialize;
use serde_json::json;

/// Default tombstone horizon.
pub const DEFAULT_HORIZON_DAYS: u32 = 180;
/// Largest page.
pub const MAX_PAGE: u32 = 10_000;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// A feed's checksum is recomputed at most this often.
pub const CHECKSUM_MIN_INTERVAL: Duration = Duration::from_secs(2);
/// Name of the builder's lease.
pub const BUILDER_LEASE: &str = "feed-builder";
/// Changes processed per builder transaction.
const CHANGES_PER_PASS: i64 = 500;
/// Items per page when (re)building a whole bank.
const BUILD_PAGE: i64 = 5_000;

/// Why a feed call failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The cursor is older than the purged tombstones (HTTP 410).
    #[error("cursor {cursor} is older than the feed's tombstone horizon (purged up to {purged}); re-snapshot: page again from no cursor, or GET the snapshot")]
    Gone { cursor: i64, purged: i64 },
}

impl From<echotrace_store::StoreError> for FeedError {
    fn from(e: echotrace_store::StoreError) -> Self {
        FeedError::Engine(e.into())
    }
}

/// A feed as listed.
#[derive(Clone, Debug, Serialize)]
pub struct FeedInfo {
    pub bank: String,
    pub bank_id: i64,
    pub head: String,
    pub horizon_days: i64,
    pub partners: Vec<String>,
    pub live: i64,
    pub tombstones: i64,
    pub created_at: i64,
}

/// One record of a feed page.
#[derive(Clone, Debug, Serialize)]
pub struct FeedRecord {
    pub seq: i64,
    pub signal_type: String,
    pub value: String,
    pub deleted: bool,
    pub labels: Vec<String>,
    pub updated_at: i64,
}

impl FeedRecord {
    pub fn from_row(e: &FeedEntryRow) -> FeedRecord {
        FeedRecord {
            seq: e.seq,
            signal_type: e.signal_type.clone(),
            value: e.value.clone(),
            deleted: !e.live,
            labels: serde_json::from_str(&e.labels).unwrap_or_default(),
            updated_at: e.updated_at,
        }
    }
}

/// A feed page.
#[derive(Clone, Debug, Serialize)]
pub struct FeedPage {
    pub bank: String,
    pub records: Vec<FeedRecord>,
    /// Resume after this (cursors are decimal strings).
    pub next_cursor: String,
    pub head: String,
    /// SHA-256 of the live set at `checksum_cursor`, when known.
    pub checksum: Option<String>,
    pub checksum_cursor: Option<String>,
}

/// One opinion a partner posts.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostedOpinion {
    pub signal_type: String,
    pub value: String,
    pub category: OpinionCategory,
    #[serde(default)]
    pub tags: Vec<String>,
}

struct ChecksumCache {
    head: i64,
    checksum: String,
    computed: Instant,
}

/// Feeds: publishing, reading, the builder.
pub struct FeedHub {
    engine: Engine,
    notify: tokio::sync::watch::Sender<u64>,
    checksums: Mutex<HashMap<i64, ChecksumCache>>,
}

impl FeedHub {
    pub fn new(engine: Engine) -> FeedHub {
        FeedHub {
            engine,
            notify: tokio::sync::watch::channel(0).0,
            checksums: Mutex::new(HashMap::new()),
        }
    }

    fn bump(&self) {
        self.notify.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Publish `bank` to the partner keys named `partners` (keys with role
    /// `partner`, by name), or change an existing feed's partners/horizon.
    pub async fn publish(
        &self,
        actor: &Actor,
        bank: &str,
        partners: &[String],
        horizon_days: Option<u32>,
    ) -> Result<FeedInfo, FeedError> {
        let bank = self.engine.bank_by_name(bank).await?;
        let keys = self.engine.list_api_keys().await?;
        let mut key_ids = Vec::new();
        for name in partners {
            let found: Vec<&ApiKey> = keys
                .iter()
                .filter(|k| k.name == *name && k.revoked_at.is_none())
                .collect();
            match found.as_slice() {
                [k] if k.role == Role::Partner => key_ids.push(k.id),
                [_] => {
                    return Err(EngineError::InvalidInput(format!(
                        "partners: key {name:?} does not have the partner role"
                    ))
                    .into())
                }
                [] => {
                    return Err(EngineError::InvalidInput(format!(
                        "partners: no active key named {name:?} (create one with role partner)"
                    ))
                    .into())
                }
                _ => {
                    return Err(EngineError::InvalidInput(format!(
                        "partners: several active keys are named {name:?}"
                    ))
                    .into())
                }
            }
        }
        let horizon = horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
        if !(1..=3650).contains(&horizon) {
            return Err(EngineError::InvalidInput("horizon_days must be 1-3650".into()).into());
        }
        let store = self.engine.store();
        let start = store.max_change_id().await?;
        let mut tx = store.write().await?;
        let existed = tx.get_feed(bank.id).await?.is_some();
        tx.upsert_feed(
            bank.id,
            i64::from(horizon) * 86_400_000,
            actor.as_str(),
            start,
        )
        .await?;
        tx.set_feed_partners(bank.id, &key_ids).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: if existed {
                "feed.update"
            } else {
                "feed.publish"
            },
            target: &format!("bank:{}", bank.id),
            before: None,
            after: Some(
                json!({"bank": bank.name, "partners": partners, "horizon_days": horizon})
                    .to_string(),
            ),
        })
        .await?;
        tx.commit().await?;
        if !existed {
            self.rebuild_bank(bank.id).await?;
        }
        self.info(bank.id).await
    }

    /// Stop publishing a bank.
    pub async fn unpublish(&self, actor: &Actor, bank: &str) -> Result<(), FeedError> {
        let bank = self.engine.bank_by_name(bank).await?;
        let mut tx = self.engine.store().write().await?;
        tx.delete_feed(bank.id).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "feed.unpublish",
            target: &format!("bank:{}", bank.id),
            before: Some(json!({"bank": bank.name}).to_string()),
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The feed of a bank, by bank name (404 if the bank is not published).
    pub async fn feed_of(&self, bank: &str) -> Result<(String, FeedRow), FeedError> {
        let b = self.engine.bank_by_name(bank).await?;
        match self.engine.store().get_feed(b.id).await? {
            Some(f) => Ok((b.name, f)),
            None => Err(EngineError::NotFound(format!("bank {bank:?} is not published")).into()),
        }
    }

    /// May `key` read the feed of `bank_id`? Admins and curators may read
    /// every feed; partners only those granted to their key.
    pub async fn may_read(&self, key: &ApiKey, bank_id: i64) -> Result<bool, FeedError> {
        Ok(match key.role {
            Role::Partner => self.engine.store().feed_granted(bank_id, key.id).await?,
            r => r.allows(echotrace_engine::Operation::Exchanges),
        })
    }

    async fn info(&self, bank_id: i64) -> Result<FeedInfo, FeedError> {
        let store = self.engine.store();
        let feed = store
            .get_feed(bank_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("feed of bank {bank_id}")))?;
        let bank = self.engine.get_bank(bank_id).await?;
        let keys = self.engine.list_api_keys().await?;
        let partners = store
            .feed_partner_keys(bank_id)
            .await?
            .into_iter()
            .filter_map(|id| keys.iter().find(|k| k.id == id).map(|k| k.name.clone()))
            .collect();
        let (live, tombstones) = store.feed_counts(bank_id).await?;
        Ok(FeedInfo {
            bank: bank.name,
            bank_id,
            head: feed.head_seq.to_string(),
            horizon_days: feed.horizon_ms / 86_400_000,
            partners,
            live,
            tombstones,
            created_at: feed.created_at,
        })
    }

    /// Feeds `key` may read.
    pub async fn list(&self, key: &ApiKey) -> Result<Vec<FeedInfo>, FeedError> {
        let mut out = Vec::new();
        for f in self.engine.store().list_feeds().await? {
            if self.may_read(key, f.bank_id).await? {
                out.push(self.info(f.bank_id).await?);
            }
        }
        Ok(out)
    }

    /// A page of the feed after `after` (no cursor: from the start),
    /// waiting up to `wait` for news when there is none.
    pub async fn page(
        &self,
        bank: &str,
        after: Option<i64>,
        limit: u32,
        wait: Duration,
    ) -> Result<FeedPage, FeedError> {
        let (name, feed) = self.feed_of(bank).await?;
        if let Some(c) = after {
            if c < feed.purged_seq {
                return Err(FeedError::Gone {
                    cursor: c,
                    purged: feed.purged_seq,
                });
            }
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let from = after.unwrap_or(0);
        let store = self.engine.store();
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut rx = self.notify.subscribe();
        let entries = loop {
            let entries = store
                .feed_entries_after(feed.bank_id, from, i64::from(limit))
                .await?;
            if !entries.is_empty() || tokio::time::Instant::now() >= deadline {
                break entries;
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = rx.changed() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        };
        let next = entries.last().map(|e| e.seq).unwrap_or(from);
        let head = store
            .get_feed(feed.bank_id)
            .await?
            .map(|f| f.head_seq)
            .unwrap_or(feed.head_seq);
        let caught_up = (entries.len() as u32) < limit;
        let (checksum, checksum_cursor) = if caught_up && next >= head {
            match self.checksum(feed.bank_id, false).await? {
                Some((h, c)) if h == next => (Some(c), Some(h.to_string())),
                _ => (None, None),
            }
        } else {
            (None, None)
        };
        Ok(FeedPage {
            bank: name,
            records: entries.iter().map(FeedRecord::from_row).collect(),
            next_cursor: next.to_string(),
            head: head.to_string(),
            checksum,
            checksum_cursor,
        })
    }

    /// The checksum of a feed's live set at its current head: cached per
    /// head; recomputed when stale, at most every
    /// [`CHECKSUM_MIN_INTERVAL`] unless `fresh`. `None` when the head moved
    /// while hashing.
    pub async fn checksum(
        &self,
        bank_id: i64,
        fresh: bool,
    ) -> Result<Option<(i64, String)>, FeedError> {
        let store = self.engine.store();
        let Some(feed) = store.get_feed(bank_id).await? else {
            return Ok(None);
        };
        if let Ok(map) = self.checksums.lock() {
            if let Some(c) = map.get(&bank_id) {
                if c.head == feed.head_seq {
                    return Ok(Some((c.head, c.checksum.clone())));
                }
                if !fresh && c.computed.elapsed() < CHECKSUM_MIN_INTERVAL {
                    return Ok(None);
                }
            }
        }
        let mut h = KeySetHasher::default();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store
                .feed_live_page(
                    bank_id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    i64::MAX,
                    50_000,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.signal_type.clone(), last.value.clone()));
            for e in &page {
                h.push(&e.signal_type, &e.value);
            }
        }
        let checksum = h.finish();
        let head_after = store.get_feed(bank_id).await?.map(|f| f.head_seq);
        if let Ok(mut map) = self.checksums.lock() {
            map.insert(
                bank_id,
                ChecksumCache {
                    head: feed.head_seq,
                    checksum: checksum.clone(),
                    computed: Instant::now(),
                },
            );
        }
        Ok((head_after == Some(feed.head_seq)).then_some((feed.head_seq, checksum)))
    }

    /// Live entries for a snapshot, in key order after `after`, up to
    /// `max_seq`.
    pub async fn snapshot_page(
        &self,
        bank_id: i64,
        after: Option<(&str, &str)>,
        max_seq: i64,
        limit: i64,
    ) -> Result<Vec<FeedRecord>, FeedError> {
        Ok(self
            .engine
            .store()
            .feed_live_page(bank_id, after, max_seq, limit)
            .await?
            .iter()
            .map(FeedRecord::from_row)
            .collect())
    }

    /// Store opinions a partner posted on a feed's records. Every record
    /// must be in the feed (live or a tombstone).
    pub async fn post_opinions(
        &self,
        key: &ApiKey,
        bank: &str,
        opinions: &[PostedOpinion],
    ) -> Result<usize, FeedError> {
        let (_, feed) = self.feed_of(bank).await?;
        if opinions.is_empty() || opinions.len() > 1000 {
            return Err(EngineError::InvalidInput("opinions: give 1-1000 opinions".into()).into());
        }
        let mut tx = self.engine.store().write().await?;
        for (i, o) in opinions.iter().enumerate() {
            if o.tags.len() > 50 || o.tags.iter().any(|t| t.len() > 100) {
                return Err(EngineError::InvalidInput(format!(
                    "opinions[{i}].tags: at most 50 tags of at most 100 bytes"
                ))
                .into());
            }
            let found = tx
                .feed_entries_by_values(feed.bank_id, &o.signal_type, &[o.value.as_str()])
                .await?;
            if found.is_empty() {
                return Err(EngineError::InvalidInput(format!(
                    "opinions[{i}]: {} {} is not in this feed",
                    o.signal_type, o.value
                ))
                .into());
            }
            tx.upsert_feed_opinion(&FeedOpinionRow {
                bank_id: feed.bank_id,
                key_id: key.id,
                signal_type: o.signal_type.clone(),
                value: o.value.clone(),
                category: o.category.as_str().to_string(),
                tags: serde_json::to_string(&o.tags).unwrap_or_else(|_| "[]".into()),
                received_at: echotrace_store::now_ms(),
            })
            .await?;
        }
        tx.audit(&NewAudit {
            actor: &format!("key:{}", key.id),
            action: "feed.opinion",
            target: &format!("bank:{}", feed.bank_id),
            before: None,
            after: Some(
                json!({"opinions": opinions.iter().map(|o| json!({
                    "signal_type": o.signal_type, "value": o.value,
                    "category": o.category.as_str()})).collect::<Vec<_>>()})
                .to_string(),
            ),
        })
        .await?;
        tx.commit().await?;
        Ok(opinions.len())
    }

    /// Partners' opinions on a feed, newest first.
    pub async fn opinions(
        &self,
        bank: &str,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, FeedError> {
        let (_, feed) = self.feed_of(bank).await?;
        let keys = self.engine.list_api_keys().await?;
        Ok(self
            .engine
            .store()
            .feed_opinions(feed.bank_id, i64::from(limit.clamp(1, 1000)))
            .await?
            .into_iter()
            .map(|o| {
                json!({
                    "partner": keys.iter().find(|k| k.id == o.key_id).map(|k| k.name.clone()),
                    "signal_type": o.signal_type,
                    "value": o.value,
                    "category": o.category,
                    "tags": serde_json::from_str::<Vec<String>>(&o.tags).unwrap_or_default(),
                    "received_at": o.received_at,
                })
            })
            .collect())
    }

    // ----- the builder -------------------------------------------------------

    /// Apply pending changes to the feeds (one transaction, fenced).
    /// Returns how many changes were consumed.
    pub async fn build_once(&self, fence: Option<&LeaseFence>) -> Result<usize, FeedError> {
        let store = self.engine.store();
        let Some(cursor) = store.feed_builder_cursor().await? else {
            return Ok(0);
        };
        let changes = store.changes_after(cursor, CHANGES_PER_PASS).await?;
        let Some(last) = changes.last().map(|c| c.id) else {
            return Ok(0);
        };
        let feeds: HashSet<i64> = store
            .list_feeds()
            .await?
            .into_iter()
            .map(|f| f.bank_id)
            .collect();
        let mut tx = store.write().await?;
        if let Some(f) = fence {
            if !tx.holds_lease(&f.name, &f.holder, f.epoch).await? {
                return Ok(0);
            }
        }
        let mut plan = Plan::default();
        if !feeds.is_empty() {
            let mut items: Vec<i64> = Vec::new();
            let mut ranges: Vec<(i64, i64)> = Vec::new();
            for c in &changes {
                match c.entity.as_str() {
                    "content" => items.push(c.entity_id),
                    echotrace_store::CONTENT_RANGE_ENTITY => {
                        if let Some(last) = echotrace_store::parse_content_range_op(&c.op) {
                            ranges.push((c.entity_id, last));
                        }
                    }
                    _ => {}
                }
            }
            items.sort_unstable();
            items.dedup();
            for cid in items {
                let row = tx.get_content(cid).await?;
                let signals = match &row {
                    Some(_) => store.signals_of_content(cid).await?,
                    None => Vec::new(),
                };
                for e in tx.feed_entries_of_content(cid).await? {
                    if feeds.contains(&e.bank_id) {
                        plan.recheck(e.bank_id, &e.signal_type, &e.value);
                    }
                }
                if let Some(r) = &row {
                    if feeds.contains(&r.bank_id) {
                        plan.add(r, &signals);
                    }
                }
            }
            for (first, last) in ranges {
                let mut after = first.saturating_sub(1);
                loop {
                    let rows = store
                        .content_range_page(first, last, after, BUILD_PAGE)
                        .await?;
                    let (Some(lo), Some(hi)) = (rows.first(), rows.last()) else {
                        break;
                    };
                    let (lo, hi) = (lo.id, hi.id);
                    after = hi;
                    if !rows.iter().any(|r| feeds.contains(&r.bank_id)) {
                        continue;
                    }
                    let signals = store.signals_of_content_range(lo, hi).await?;
                    plan.add_rows(&rows, &signals, &feeds);
                }
            }
        }
        let written = plan.apply(&mut tx).await?;
        tx.set_feed_builder_cursor(last).await?;
        tx.commit().await?;
        if written > 0 {
            self.bump();
        }
        Ok(changes.len())
    }

    /// Recompute every entry of one bank's feed from its items (first
    /// publication).
    pub async fn rebuild_bank(&self, bank_id: i64) -> Result<(), FeedError> {
        let store = self.engine.store();
        let feeds: HashSet<i64> = [bank_id].into_iter().collect();
        let mut after = 0;
        loop {
            let rows = store.list_content(bank_id, after, BUILD_PAGE).await?;
            let (Some(lo), Some(hi)) = (rows.first(), rows.last()) else {
                break;
            };
            let (lo, hi) = (lo.id, hi.id);
            after = hi;
            let signals = store.signals_of_content_range(lo, hi).await?;
            let mut plan = Plan::default();
            plan.add_rows(&rows, &signals, &feeds);
            let mut tx = store.write().await?;
            plan.apply(&mut tx).await?;
            tx.commit().await?;
        }
        self.bump();
        Ok(())
    }

    /// Purge tombstones past each feed's horizon.
    pub async fn purge(&self) -> Result<u64, FeedError> {
        let store = self.engine.store();
        let now = echotrace_store::now_ms();
        let mut total = 0;
        for f in store.list_feeds().await? {
            let mut tx = store.write().await?;
            total += tx
                .purge_feed_tombstones(f.bank_id, now - f.horizon_ms)
                .await?;
            tx.commit().await?;
        }
        Ok(total)
    }

    /// Run the builder until aborted: wake on local changes or every
    /// 250 ms, one process at a time (lease).
    pub async fn run_builder(&self, holder: String) {
        let mut changes = self.engine.subscribe_changes();
        let mut last_purge = Instant::now();
        loop {
            let ttl = Duration::from_secs(30);
            match self
                .engine
                .store()
                .try_lease(BUILDER_LEASE, &holder, ttl)
                .await
            {
                Ok(Some(epoch)) => {
                    let fence = LeaseFence {
                        name: BUILDER_LEASE.into(),
                        holder: holder.clone(),
                        epoch,
                    };
                    loop {
                        match self.build_once(Some(&fence)).await {
                            Ok(n) if n as i64 >= CHANGES_PER_PASS => continue,
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "feed builder: pass failed");
                                break;
                            }
                        }
                    }
                    if last_purge.elapsed() > Duration::from_secs(3600) {
                        last_purge = Instant::now();
                        if let Err(e) = self.purge().await {
                            tracing::warn!(error = %e, "feed builder: purge failed");
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "feed builder: lease failed"),
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// `(signal type, value)`.
type FeedKey = (String, String);
/// The lowest active item carrying a key in this pass, with its labels.
type Carrier = Option<(i64, String)>;

/// The entries a builder pass recomputes, per bank and key.
#[derive(Default)]
struct Plan {
    /// bank → key → carrier, or `None` = re-check against the store.
    keys: BTreeMap<i64, BTreeMap<FeedKey, Carrier>>,
}

fn active(c: &ContentRow) -> bool {
    c.enabled && !c.quarantined
}

impl Plan {
    fn recheck(&mut self, bank: i64, t: &str, v: &str) {
        self.keys
            .entry(bank)
            .or_default()
            .entry((t.to_string(), v.to_string()))
            .or_insert(None);
    }

    fn add(&mut self, c: &ContentRow, signals: &[SignalRow]) {
        let bank = self.keys.entry(c.bank_id).or_default();
        for s in signals {
            let slot = bank
                .entry((s.signal_type.clone(), s.value.clone()))
                .or_insert(None);
            if active(c) {
                match slot {
                    Some((id, _)) if *id <= c.id => {}
                    _ => *slot = Some((c.id, c.labels.clone())),
                }
            }
        }
    }

    fn add_rows(&mut self, rows: &[ContentRow], signals: &[SignalRow], feeds: &HashSet<i64>) {
        let mut rest = signals;
        for row in rows {
            let skip = rest.iter().take_while(|s| s.content_id < row.id).count();
            rest = rest.get(skip..).unwrap_or_default();
            let n = rest.iter().take_while(|s| s.content_id == row.id).count();
            let (mine, tail) = rest.split_at(n.min(rest.len()));
            if feeds.contains(&row.bank_id) {
                self.add(row, mine);
            }
            rest = tail;
        }
    }

    /// Resolve every key against the stored entries and write the changes.
    async fn apply(self, tx: &mut WriteTx) -> Result<usize, FeedError> {
        let mut written = 0;
        for (bank, keys) in self.keys {
            let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (t, v) in keys.keys() {
                by_type.entry(t.as_str()).or_default().push(v.as_str());
            }
            let mut existing: HashMap<(String, String), FeedEntryRow> = HashMap::new();
            for (t, values) in by_type {
                for e in tx.feed_entries_by_values(bank, t, &values).await? {
                    existing.insert((e.signal_type.clone(), e.value.clone()), e);
                }
            }
            let mut out: Vec<NewFeedEntry> = Vec::new();
            for ((t, v), candidate) in keys {
                let old = existing.get(&(t.clone(), v.clone()));
                let state = match (&candidate, old) {
                    // New key, carried by an active item: no lookup needed.
                    (Some(c), None) => Some(c.clone()),
                    (Some((cid, labels)), Some(o)) if o.live && o.content_id == Some(*cid) => {
                        Some((*cid, labels.clone()))
                    }
                    (Some(c), Some(o)) if !o.live => Some(c.clone()),
                    _ => tx.active_content_with_signal(bank, &t, &v).await?,
                };
                match (state, old) {
                    (None, None) => {}
                    (None, Some(o)) if !o.live => {}
                    (Some((cid, labels)), Some(o)) if o.live && o.labels == labels => {
                        if o.content_id != Some(cid) {
                            tx.repoint_feed_entry(bank, &t, &v, cid).await?;
                        }
                    }
                    (state, _) => out.push(NewFeedEntry {
                        signal_type: t,
                        value: v,
                        live: state.is_some(),
                        content_id: state.as_ref().map(|s| s.0),
                        labels: state.map(|s| s.1).unwrap_or_else(|| "[]".into()),
                    }),
                }
            }
            if !out.is_empty() {
                written += out.len();
                tx.write_feed_entries(bank, &out).await?;
            }
        }
        Ok(written)
    }
}
