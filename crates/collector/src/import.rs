//! Offline imports: Telegram Desktop exports and WARC files.
//!
//! Both read their input in bounded memory (a Telegram export of up to
//! [`WHOLE_FILE_MAX`](crate::telegram::WHOLE_FILE_MAX) is parsed from
//! memory, a larger one streamed) and record items in batches (one transaction
//! per batch: sightings, their signals and matches, queued outlinks, the
//! source's counters), so memory stays flat and a crash loses at most the
//! batch in progress; importing the same input again only moves
//! `last_seen_at` (sightings are unique by URL and bytes).
//!
//! **Telegram**: each message becomes a sighting at `https://t.me/c/<chat
//! id>/<message id>` (its text, or a bare URL), dated by `date_unixtime`,
//! with its chat, sender, `forwarded_from` and reply as attributes; each
//! exported media file (`photo`, `file`, `thumbnail`) becomes a sighting at
//! the same URL with the file's bytes (hashed: an image → PDQ, a video →
//! vPDQ when ffmpeg is installed, anything else its digests), parented by
//! the message; every outlink (link and text_link entities, URL buttons)
//! becomes a bare sighting parented by the message, and with the source's
//! `follow_links` a frontier job (depth 1). Placeholders of files that were
//! not exported are counted as missing and noted on the message, never
//! opened. Media paths cannot leave the export folder.
//!
//! **WARC**: each `response` (2xx) or `resource` record becomes a sighting
//! of its payload at `WARC-Target-URI`, dated by `WARC-Date`, pointing at the
//! record (file, offset in the uncompressed stream, `WARC-Record-ID`); HTML
//! payloads also yield their text and outlinks. Records over the per-record
//! cap are skipped and counted as errors; the import goes on.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use echotrace_engine::sighting::{ItemContent, PreparedSighting, SightingItem};
use echotrace_store::{SourceRow, SourceStatsDelta};
use serde::Serialize;
use serde_json::json;

use crate::html::{extract, LinkKind};
use crate::platform::Platforms;
use crate::process::{bare_item, Child, SourceCtx};
use crate::run::{enqueue, Collector, CollectorError, Result};
use crate::telegram::{locate_result_json, media_path, read_export, ChatInfo, Message};
use crate::warc::{parse_http_response, parse_warc_date, WarcReadLimits, WarcReader};

/// Counters of an import (also its progress reports).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub messages: u64,
    pub records: u64,
    /// Sightings recorded (messages, media, outlinks, payloads).
    pub items: u64,
    pub new_sightings: u64,
    pub matched: u64,
    pub media_hashed: u64,
    pub media_missing: u64,
    pub outlinks: u64,
    pub jobs_queued: u64,
    /// Per-item errors (unreadable media, oversized records…).
    pub errors: u64,
    /// The first few errors, for the operator.
    pub error_samples: Vec<String>,
    pub elapsed_ms: u64,
}

impl ImportReport {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.error_samples.len() < 20 {
            self.error_samples.push(e);
        }
    }
}

/// Messages recorded per transaction. Each commit writes every B-tree page
/// it dirtied to the WAL, and the sightings' key index (URL and content
/// digests) takes a random leaf per message: larger transactions write each
/// such page once for more messages (2,000 messages are a few MB of dirty
/// pages, within the writer's 16 MiB page cache). 4,000 bought nothing
/// measurable at 100,000 messages once the key index shrank (session 19)
/// and held 20 MB more.
const BATCH: usize = 2000;

/// WARC records recorded per transaction (a record's payload can yield many
/// outlinks and a page's text, so fewer than messages).
const WARC_BATCH: usize = 200;

/// The most content bytes (media files, record payloads, texts) one batch
/// holds before it is recorded, whatever its count. Batches are bounded by
/// count for the database's sake and by bytes for memory's: a file may be
/// up to `max_media_bytes` (64 MiB by default), and a count alone let 2,000
/// messages with exported videos, or 200 large WARC records, hold gigabytes
/// at once. A batch exceeds this by at most its last unit; with the reader's
/// batch, the one in the channel and the one being recorded, an import holds
/// at most about three of them.
const BATCH_BYTES: usize = 16 << 20;

/// Units gathered for one transaction, bounded by count and by the content
/// bytes they hold.
struct Batcher {
    units: Vec<Unit>,
    bytes: usize,
    max_units: usize,
}

impl Batcher {
    fn new(max_units: usize) -> Self {
        Batcher {
            units: Vec::with_capacity(max_units),
            bytes: 0,
            max_units,
        }
    }

    /// Add a unit; the batch, when it is full by count or by bytes.
    fn push(&mut self, unit: Unit) -> Option<Vec<Unit>> {
        self.bytes = self.bytes.saturating_add(unit.content_bytes());
        self.units.push(unit);
        if self.units.len() >= self.max_units || self.bytes >= BATCH_BYTES {
            self.bytes = 0;
            Some(std::mem::replace(
                &mut self.units,
                Vec::with_capacity(self.max_units),
            ))
        } else {
            None
        }
    }

    /// What is left at the end.
    fn rest(self) -> Vec<Unit> {
        self.units
    }
}

/// Content bytes an item holds until it is hashed.
fn item_bytes(item: &SightingItem) -> usize {
    match &item.content {
        ItemContent::None | ItemContent::Known { .. } => 0,
        ItemContent::Bytes(b) => b.len(),
        ItemContent::Text { text, raw, .. } => text.len() + raw.len(),
    }
}

/// One unit to record: an item plus the items and jobs that hang off it.
struct Unit {
    main: SightingItem,
    media: Vec<SightingItem>,
    outlinks: Vec<SightingItem>,
    children: Vec<Child>,
}

impl Unit {
    fn content_bytes(&self) -> usize {
        std::iter::once(&self.main)
            .chain(&self.media)
            .chain(&self.outlinks)
            .map(item_bytes)
            .sum()
    }
}

impl Collector {
    /// Import a Telegram Desktop export into `source` (see the module doc).
    pub async fn import_telegram<P>(
        &self,
        source: &SourceRow,
        path: &Path,
        progress: P,
    ) -> Result<ImportReport>
    where
        P: Fn(&ImportReport) + Send + Sync,
    {
        let started = std::time::Instant::now();
        let src = Arc::new(Collector::ctx(source)?);
        let (_, root) =
            locate_result_json(path).map_err(|e| CollectorError::Import(e.to_string()))?;
        let platforms = Arc::new(Platforms::load(self.store()).await?);
        let max_media = self.config().max_media_bytes;
        let (tx_units, mut rx_units) = tokio::sync::mpsc::channel::<Vec<Unit>>(1);
        let reader_src = src.clone();
        let reader_platforms = platforms.clone();
        let path = path.to_path_buf();
        // The reader runs on the blocking pool; batches flow through a
        // bounded channel, so reading never runs far ahead of recording.
        let reader = tokio::task::spawn_blocking(move || {
            let mut batch = Batcher::new(BATCH);
            let mut local = ImportReport::default();
            let res = read_export(&path, |chat, msg| {
                let unit = telegram_unit(
                    &reader_src,
                    &reader_platforms,
                    &root,
                    chat,
                    msg,
                    max_media,
                    &mut local,
                );
                if let Some(full) = batch.push(unit) {
                    tx_units
                        .blocking_send(full)
                        .map_err(|_| "import stopped".to_string())?;
                }
                Ok(())
            });
            let rest = batch.rest();
            if !rest.is_empty() {
                let _ = tx_units.blocking_send(rest);
            }
            res.map(|_| local)
        });
        let mut report = ImportReport::default();
        let mut last = std::time::Instant::now();
        while let Some(units) = rx_units.recv().await {
            report.messages += units.len() as u64;
            self.record_units(&src, units, &mut report).await?;
            if last.elapsed() >= std::time::Duration::from_secs(1) {
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                progress(&report);
                last = std::time::Instant::now();
            }
        }
        let local = reader
            .await
            .map_err(|e| CollectorError::Import(format!("export reader failed: {e}")))?
            .map_err(|e| CollectorError::Import(e.to_string()))?;
        report.media_hashed += local.media_hashed;
        report.media_missing += local.media_missing;
        report.errors += local.errors;
        report.error_samples.extend(local.error_samples);
        self.add_import_errors(src.id, &report).await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(&report);
        Ok(report)
    }

    /// Import a WARC file into `source` (see the module doc).
    pub async fn import_warc<P>(
        &self,
        source: &SourceRow,
        path: &Path,
        progress: P,
    ) -> Result<ImportReport>
    where
        P: Fn(&ImportReport) + Send + Sync,
    {
        let started = std::time::Instant::now();
        let src = Arc::new(Collector::ctx(source)?);
        let platforms = Arc::new(Platforms::load(self.store()).await?);
        let limits = WarcReadLimits {
            max_record_bytes: self.config().max_media_bytes,
            ..WarcReadLimits::default()
        };
        let mut reader = WarcReader::open(path, limits.clone())
            .map_err(|e| CollectorError::Import(format!("{}: {e}", path.display())))?;
        let file_name = path.display().to_string();
        let html_limits = self.config().html.clone();
        let (tx_units, mut rx_units) = tokio::sync::mpsc::channel::<(Vec<Unit>, ImportReport)>(1);
        let reader_src = src.clone();
        let reader_platforms = platforms.clone();
        let task = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
            let mut batch = Batcher::new(WARC_BATCH);
            let mut local = ImportReport::default();
            while let Some(rec) = reader.next_record() {
                let rec = rec.map_err(|e| format!("{file_name}: {e}"))?;
                local.records += 1;
                let kind = rec.record_type().to_ascii_lowercase();
                if kind != "response" && kind != "resource" {
                    continue;
                }
                let Some(uri) = rec
                    .header("WARC-Target-URI")
                    .map(|u| u.trim_matches(['<', '>']).to_string())
                else {
                    local.error(format!(
                        "record {} at byte {}: no WARC-Target-URI",
                        rec.number, rec.offset
                    ));
                    continue;
                };
                let Some(block) = rec.block.as_deref() else {
                    local.error(format!(
                        "record {} at byte {} ({uri}): block of {} bytes over the {}-byte cap, skipped",
                        rec.number, rec.offset, rec.block_length, limits.max_record_bytes
                    ));
                    continue;
                };
                let (status, payload, ctype) = if kind == "response" {
                    match parse_http_response(block) {
                        Some(h) => (
                            h.status,
                            h.payload,
                            h.header("content-type").map(str::to_string),
                        ),
                        None => {
                            local.error(format!(
                                "record {} at byte {} ({uri}): not an HTTP response",
                                rec.number, rec.offset
                            ));
                            continue;
                        }
                    }
                } else {
                    (200, block, rec.header("Content-Type").map(str::to_string))
                };
                if !(200..300).contains(&status) {
                    continue;
                }
                let seen_at = rec
                    .header("WARC-Date")
                    .and_then(parse_warc_date)
                    .unwrap_or_else(echotrace_store::now_ms);
                let warc = echotrace_store::WarcRef {
                    file: file_name.clone(),
                    offset: i64::try_from(rec.offset).unwrap_or(i64::MAX),
                    length: i64::try_from(rec.block_length).unwrap_or(i64::MAX),
                    record_id: rec.header("WARC-Record-ID").unwrap_or("").to_string(),
                };
                let unit = warc_unit(
                    &reader_src,
                    &reader_platforms,
                    &uri,
                    payload,
                    ctype.as_deref(),
                    seen_at,
                    warc,
                    &html_limits,
                );
                // Outlinks are counted as they are recorded (`record_units`).
                if let Some(full) = batch.push(unit) {
                    let rep = std::mem::take(&mut local);
                    tx_units
                        .blocking_send((full, rep))
                        .map_err(|_| "import stopped".to_string())?;
                }
            }
            let rest = batch.rest();
            if !rest.is_empty() || local.records > 0 {
                let _ = tx_units.blocking_send((rest, local));
            }
            Ok(())
        });
        let mut report = ImportReport::default();
        let mut last = std::time::Instant::now();
        while let Some((units, local)) = rx_units.recv().await {
            report.records += local.records;
            report.outlinks += local.outlinks;
            report.errors += local.errors;
            report.error_samples.extend(local.error_samples);
            self.record_units(&src, units, &mut report).await?;
            if last.elapsed() >= std::time::Duration::from_secs(1) {
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                progress(&report);
                last = std::time::Instant::now();
            }
        }
        let res = task
            .await
            .map_err(|e| CollectorError::Import(format!("WARC reader failed: {e}")))?;
        self.add_import_errors(src.id, &report).await?;
        res.map_err(CollectorError::Import)?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(&report);
        Ok(report)
    }

    async fn add_import_errors(&self, source_id: i64, report: &ImportReport) -> Result<()> {
        if report.errors == 0 {
            return Ok(());
        }
        let mut tx = self.store().write().await?;
        tx.add_source_stats(
            source_id,
            &SourceStatsDelta {
                errors: i64::try_from(report.errors).unwrap_or(i64::MAX),
                last_error: report.error_samples.last().cloned(),
                ..SourceStatsDelta::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Hash and record a batch of units in one transaction.
    async fn record_units(
        &self,
        src: &SourceCtx,
        units: Vec<Unit>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let engine = self.engine().clone();
        let prepared = tokio::task::spawn_blocking(move || {
            units
                .into_iter()
                .map(|u| {
                    let main = engine.prepare_sighting(u.main);
                    let media: Vec<_> = u
                        .media
                        .into_iter()
                        .map(|m| engine.prepare_sighting(m))
                        .collect();
                    let outs: Vec<_> = u
                        .outlinks
                        .into_iter()
                        .filter_map(|o| engine.prepare_sighting(o).ok())
                        .collect();
                    (main, media, outs, u.children)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| CollectorError::Import(format!("hashing failed: {e}")))?;
        let cfg = self.config().sightings.clone();
        let mut tx = self.store().write().await?;
        let mut items = 0i64;
        let mut mains: Vec<PreparedSighting> = Vec::with_capacity(prepared.len());
        let mut rest = Vec::with_capacity(prepared.len());
        for (main, media, outs, children) in prepared {
            match main {
                Ok(m) => {
                    mains.push(m);
                    rest.push((media, outs, children));
                }
                Err(e) => report.error(e.to_string()),
            }
        }
        let recs = self
            .engine()
            .record_sightings(&mut tx, &mains, &cfg)
            .await?;
        let mut hangers: Vec<PreparedSighting> = Vec::new();
        for (rec, (media, outs, children)) in recs.iter().zip(rest) {
            for m in media {
                match m {
                    Ok(mut m) => {
                        m.parent_id = Some(rec.sighting_id);
                        hangers.push(m);
                    }
                    Err(e) => report.error(e.to_string()),
                }
            }
            for mut o in outs {
                o.parent_id = Some(rec.sighting_id);
                report.outlinks += 1;
                hangers.push(o);
            }
            if !children.is_empty() {
                report.jobs_queued +=
                    enqueue(&mut tx, src, &children, Some(rec.sighting_id)).await?;
            }
        }
        let recs2 = self
            .engine()
            .record_sightings(&mut tx, &hangers, &cfg)
            .await?;
        for r in recs.iter().chain(recs2.iter()) {
            items += 1;
            if r.is_new {
                report.new_sightings += 1;
            }
            if !r.match_ids.is_empty() {
                report.matched += 1;
            }
        }
        report.items += items as u64;
        tx.add_source_stats(
            src.id,
            &SourceStatsDelta {
                items,
                ..SourceStatsDelta::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn telegram_unit(
    src: &SourceCtx,
    platforms: &Platforms,
    root: &Path,
    chat: &ChatInfo,
    mut msg: Message,
    max_media: u64,
    report: &mut ImportReport,
) -> Unit {
    let url = msg.url(chat);
    let seen_at = msg
        .date_unixtime
        .map(|s| s.saturating_mul(1000))
        .unwrap_or_else(echotrace_store::now_ms);
    let missing: Vec<String> = msg.media.iter().filter_map(|m| m.missing.clone()).collect();
    report.media_missing += missing.len() as u64;
    let mut attrs = json!({
        "telegram": {
            "chat_id": chat.id,
            "chat": chat.name,
            "chat_type": chat.kind,
            "message_id": msg.id,
            "type": msg.kind,
        }
    });
    if let Some(t) = attrs.get_mut("telegram").and_then(|v| v.as_object_mut()) {
        for (k, v) in [
            ("from", msg.from.clone()),
            ("from_id", msg.from_id.clone()),
            ("forwarded_from", msg.forwarded_from.clone()),
        ] {
            if let Some(v) = v {
                t.insert(k.into(), v.into());
            }
        }
        if let Some(r) = msg.reply_to_message_id {
            t.insert("reply_to_message_id".into(), r.into());
        }
        if !missing.is_empty() {
            t.insert("missing_media".into(), missing.clone().into());
        }
    }
    let platform = platforms.platform_of("t.me");
    let content = if msg.text.trim().is_empty() {
        ItemContent::None
    } else {
        let text = std::mem::take(&mut msg.text);
        ItemContent::Text {
            raw: bytes::Bytes::from(text.clone().into_bytes()),
            text,
            media_type: "text".into(),
        }
    };
    let main = SightingItem {
        source_id: Some(src.id),
        source_name: src.name.clone(),
        url: url.clone(),
        platform: platform.clone(),
        parent_id: None,
        seen_at,
        content,
        attributes: Some(attrs),
        warc: None,
        robust: src.config.robust,
    };
    let mut media = Vec::new();
    for m in &msg.media {
        let Some(rel) = &m.path else { continue };
        let full = match media_path(root, rel) {
            Ok(p) => p,
            Err(e) => {
                report.error(format!("message {} in chat {}: {e}", msg.id, chat.id));
                continue;
            }
        };
        let bytes = match read_capped(&full, max_media) {
            Ok(b) => b,
            Err(e) => {
                report.error(format!(
                    "message {} in chat {}: {rel}: {e}",
                    msg.id, chat.id
                ));
                continue;
            }
        };
        report.media_hashed += 1;
        media.push(SightingItem {
            source_id: Some(src.id),
            source_name: src.name.clone(),
            url: url.clone(),
            platform: platform.clone(),
            parent_id: None,
            seen_at,
            content: ItemContent::Bytes(bytes),
            attributes: Some(json!({"telegram": {"field": m.field, "path": rel, "media_type": m.media_type, "mime_type": m.mime_type, "file_name": m.file_name}})),
            warc: None,
            robust: src.config.robust,
        });
    }
    let mut outlinks = Vec::new();
    let mut children = Vec::new();
    for l in &msg.links {
        outlinks.push(bare_item(src, platforms, l, None, seen_at, None));
        if src.config.follow_links {
            if let Some(host) = url::Url::parse(l)
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            {
                let kind = if src
                    .lockers
                    .rule_for(&host, "", &src.config.locker_hosts)
                    .is_some()
                {
                    "locker"
                } else {
                    "page"
                };
                children.push(Child {
                    url: l.clone(),
                    kind,
                    depth: 1,
                    seed_host: host,
                });
            }
        }
    }
    Unit {
        main,
        media,
        outlinks,
        children,
    }
}

/// Read a file of at most `max` bytes.
fn read_capped(path: &Path, max: u64) -> std::result::Result<bytes::Bytes, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max {
        return Err(format!("{len} bytes, over the {max}-byte media cap"));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > max {
        return Err(format!("over the {max}-byte media cap"));
    }
    Ok(bytes::Bytes::from(buf))
}

#[allow(clippy::too_many_arguments)]
fn warc_unit(
    src: &SourceCtx,
    platforms: &Platforms,
    uri: &str,
    payload: &[u8],
    ctype: Option<&str>,
    seen_at: i64,
    warc: echotrace_store::WarcRef,
    html_limits: &crate::html::HtmlLimits,
) -> Unit {
    let host = url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let is_html = ctype
        .map(|c| c.to_ascii_lowercase().contains("html"))
        .unwrap_or(false);
    let mut outlinks = Vec::new();
    let mut children = Vec::new();
    let content = match (is_html, url::Url::parse(uri)) {
        (true, Ok(base)) => match extract(payload, &base, None, html_limits, &[]) {
            Ok(page) => {
                for l in &page.links {
                    outlinks.push(bare_item(src, platforms, &l.url, None, seen_at, None));
                    if src.config.follow_links && l.kind != LinkKind::Media {
                        if let Some(h) = url::Url::parse(&l.url)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                        {
                            children.push(Child {
                                url: l.url.clone(),
                                kind: "page",
                                depth: 1,
                                seed_host: h,
                            });
                        }
                    }
                }
                ItemContent::Text {
                    text: page.text,
                    raw: bytes::Bytes::copy_from_slice(payload),
                    media_type: "html".into(),
                }
            }
            Err(_) => ItemContent::Bytes(bytes::Bytes::copy_from_slice(payload)),
        },
        _ => ItemContent::Bytes(bytes::Bytes::copy_from_slice(payload)),
    };
    Unit {
        main: SightingItem {
            source_id: Some(src.id),
            source_name: src.name.clone(),
            url: uri.to_string(),
            platform: platforms.platform_of(&host),
            parent_id: None,
            seen_at,
            content,
            attributes: Some(json!({"warc": {"record_id": warc.record_id}})),
            warc: Some(warc),
            robust: src.config.robust,
        },
        media: Vec::new(),
        outlinks,
        children,
    }
}
