//! `file`: a hash list in a file (by path) or at a URL — CSV, JSONL, or
//! python-threatexchange's `type value` lines.
//!
//! A file is a snapshot source: every pass reads it whole and the worker
//! sweeps what the pass did not see, so a line removed from the file is
//! deleted here (pytx's local-file exchange never deletes). A path source
//! is fingerprinted (SHA-256) at the start of each round: an unchanged,
//! fully read file costs one hash and nothing else; an unchanged file read
//! part-way (a crash) resumes at the byte offset of the last committed
//! batch; a changed file starts a new pass. A URL source is re-read whole
//! each round.
//!
//! Lines are read with a bound ([`MAX_LINE`]); a longer line is skipped in
//! bounded steps and counted as malformed, so a file without newlines is
//! never read into memory whole.
//!
//! Formats (`format`, or by extension / first byte with `auto`):
//! * `lines`: `type value` (pytx's names: `pdq`, `video_md5`, `photo_md5`,
//!   `md5`, `url`, … and echotrace's wire names), or just `value` with
//!   `signal_type` set — or a bare PDQ hash (64 hex digits) without it;
//! * `csv`: `signal_type,value[,labels]` or `pdq_hex[,labels]` (as
//!   `echotrace bank import` reads), labels separated by `;`; a header
//!   line (`signal_type,…`, `pdq_hex,…`) is skipped;
//! * `jsonl`: `{"signal_type": …, "value": …, "labels": [...], "id": …,
//!   "deleted": false}` per line.

use std::sync::Arc;

use echotrace_engine::exchange::RecordLabels;
use echotrace_engine::BoxFuture;
use echotrace_signals::signal::SignalType;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};

use super::{record, Adapter, ApiInfo, FetchError, FieldSpec, Page};
use crate::net::{Http, NetError};

pub const API: &str = "file";

/// Longest line read, bytes.
pub const MAX_LINE: usize = 1 << 20;

pub const INFO: ApiInfo = ApiInfo {
    name: API,
    title: "File or URL (CSV, JSONL, pytx lines)",
    write_back: false,
    needs_credentials: false,
    config_fields: &[
        FieldSpec {
            name: "path",
            kind: "string",
            required: false,
            default: None,
            help: "Path of the file on the server (give path or url)",
            choices: None,
        },
        FieldSpec {
            name: "url",
            kind: "string",
            required: false,
            default: None,
            help: "http(s) URL of the file (give path or url)",
            choices: None,
        },
        FieldSpec {
            name: "format",
            kind: "string",
            required: false,
            default: Some("auto"),
            help: "auto, csv, jsonl or lines (pytx `type value`)",
            choices: Some(&["auto", "csv", "jsonl", "lines"]),
        },
        FieldSpec {
            name: "signal_type",
            kind: "string",
            required: false,
            default: None,
            help: "Signal type of lines that hold only a value",
            choices: None,
        },
        FieldSpec {
            name: "batch",
            kind: "int",
            required: false,
            default: Some("10000"),
            help: "Records per transaction",
            choices: None,
        },
    ],
    credential_fields: &[],
};

/// How lines are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Auto,
    Csv,
    Jsonl,
    Lines,
}

/// Config of a `file` exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default = "v1")]
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub format: FileFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_type: Option<String>,
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn v1() -> u32 {
    1
}

fn default_batch() -> usize {
    10_000
}

impl FileConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err("version: expected 1".into());
        }
        match (&self.path, &self.url) {
            (Some(p), None) if !p.trim().is_empty() => {}
            (None, Some(u)) if u.starts_with("http://") || u.starts_with("https://") => {}
            (None, Some(_)) => return Err("url: must be http(s)".into()),
            _ => return Err("give exactly one of path or url".into()),
        }
        if let Some(t) = &self.signal_type {
            signal_type_of(t).ok_or_else(|| format!("signal_type: unknown type {t:?}"))?;
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err("batch: must be 1-100000".into());
        }
        Ok(())
    }
}

/// Checkpoint of a file exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FileCheckpoint {
    v: u32,
    /// SHA-256 of the file (path sources).
    digest: String,
    /// Byte offset after the last line of the last committed batch.
    offset: u64,
    line: u64,
    /// The whole file was read.
    done: bool,
}

/// pytx and echotrace type names.
pub fn signal_type_of(name: &str) -> Option<SignalType> {
    match name.trim() {
        "video_md5" | "photo_md5" | "md5" => Some(SignalType::Md5),
        other => other.parse().ok(),
    }
}

enum Source {
    File(BufReader<tokio::fs::File>),
    Http {
        resp: reqwest::Response,
        pending: Vec<u8>,
        eof: bool,
    },
}

/// An open pass over the file.
struct Pass {
    source: Source,
    format: FileFormat,
    digest: String,
    offset: u64,
    line: u64,
    hasher: Option<sha2::Sha256>,
}

pub struct FileAdapter {
    config: FileConfig,
    http: Arc<Http>,
    pass: Option<Pass>,
}

impl FileAdapter {
    pub fn new(config: FileConfig, http: Arc<Http>) -> FileAdapter {
        FileAdapter {
            config,
            http,
            pass: None,
        }
    }

    fn format_for(&self, first: &[u8]) -> FileFormat {
        if self.config.format != FileFormat::Auto {
            return self.config.format;
        }
        let name = self
            .config
            .path
            .as_deref()
            .or(self.config.url.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase();
        if name.ends_with(".csv") {
            FileFormat::Csv
        } else if name.ends_with(".jsonl")
            || name.ends_with(".ndjson")
            || first.first() == Some(&b'{')
        {
            FileFormat::Jsonl
        } else if first.contains(&b',') {
            FileFormat::Csv
        } else {
            FileFormat::Lines
        }
    }

    async fn open(&mut self, cp: &FileCheckpoint) -> Result<Option<(Pass, bool)>, FetchError> {
        if let Some(path) = &self.config.path {
            let digest = file_digest(path).await?;
            let (offset, line, restart) = if cp.digest == digest {
                if cp.done {
                    return Ok(None);
                }
                (cp.offset, cp.line, false)
            } else {
                (0, 0, true)
            };
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| FetchError::Io(format!("opening the file: {}", e.kind())))?;
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| FetchError::Io(format!("seeking the file: {}", e.kind())))?;
            let mut reader = BufReader::with_capacity(1 << 20, f);
            let first = reader
                .fill_buf()
                .await
                .map_err(|e| FetchError::Io(format!("reading the file: {}", e.kind())))?
                .to_vec();
            let format = self.format_for(&first);
            return Ok(Some((
                Pass {
                    source: Source::File(reader),
                    format,
                    digest,
                    offset,
                    line,
                    hasher: None,
                },
                restart,
            )));
        }
        let url = self.config.url.clone().unwrap_or_default();
        let resp = self.http.open_stream(&url).await?;
        let format = if self.config.format == FileFormat::Auto {
            self.format_for(url.as_bytes().get(..0).unwrap_or_default())
        } else {
            self.config.format
        };
        Ok(Some((
            Pass {
                source: Source::Http {
                    resp,
                    pending: Vec::new(),
                    eof: false,
                },
                format,
                digest: String::new(),
                offset: 0,
                line: 0,
                hasher: Some(sha2::Sha256::new()),
            },
            true,
        )))
    }
}

async fn file_digest(path: &str) -> Result<String, FetchError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| FetchError::Io(format!("opening the file: {}", e.kind())))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| FetchError::Io(format!("reading the file: {}", e.kind())))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(echotrace_signals::digest::to_hex(&h.finalize()))
}

/// One line: its bytes (without the newline), or "too long", and how many
/// bytes it took from the source.
enum Line {
    Text(Vec<u8>, u64),
    TooLong(u64),
}

impl Pass {
    async fn next_line(&mut self, max_total: usize) -> Result<Option<Line>, FetchError> {
        match &mut self.source {
            Source::File(r) => {
                let mut out = Vec::new();
                let mut used: u64 = 0;
                let mut too_long = false;
                loop {
                    let buf = r
                        .fill_buf()
                        .await
                        .map_err(|e| FetchError::Io(format!("reading the file: {}", e.kind())))?;
                    if buf.is_empty() {
                        if used == 0 {
                            return Ok(None);
                        }
                        break;
                    }
                    let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (buf.len(), false),
                    };
                    if !too_long {
                        let body = buf.get(..take).unwrap_or_default();
                        if out.len() + body.len() > MAX_LINE + 1 {
                            too_long = true;
                            out.clear();
                        } else {
                            out.extend_from_slice(body);
                        }
                    }
                    r.consume(take);
                    used += take as u64;
                    if done {
                        break;
                    }
                }
                if too_long {
                    return Ok(Some(Line::TooLong(used)));
                }
                while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    out.pop();
                }
                Ok(Some(Line::Text(out, used)))
            }
            Source::Http { resp, pending, eof } => {
                let mut too_long = false;
                loop {
                    if let Some(i) = pending.iter().position(|b| *b == b'\n') {
                        let mut line: Vec<u8> = pending.drain(..=i).collect();
                        let used = line.len() as u64;
                        if too_long {
                            return Ok(Some(Line::TooLong(used)));
                        }
                        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            line.pop();
                        }
                        return Ok(Some(Line::Text(line, used)));
                    }
                    if pending.len() > MAX_LINE {
                        too_long = true;
                        pending.clear();
                    }
                    if *eof {
                        if pending.is_empty() {
                            return Ok(None);
                        }
                        let line = std::mem::take(pending);
                        let used = line.len() as u64;
                        return Ok(Some(if too_long {
                            Line::TooLong(used)
                        } else {
                            Line::Text(line, used)
                        }));
                    }
                    match resp.chunk().await.map_err(|e| {
                        FetchError::Net(NetError::Network(e.without_url().to_string()))
                    })? {
                        Some(chunk) => {
                            if self.offset as usize + chunk.len() > max_total {
                                return Err(FetchError::Net(NetError::TooLarge(max_total)));
                            }
                            self.offset += chunk.len() as u64;
                            if let Some(h) = &mut self.hasher {
                                h.update(&chunk);
                            }
                            pending.extend_from_slice(&chunk);
                        }
                        None => *eof = true,
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct JsonLine {
    signal_type: String,
    value: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    deleted: bool,
}

/// One parsed line: (type, value, labels, upstream id, deleted).
pub type ParsedLine = (SignalType, String, Vec<String>, String, bool);

/// Parse one line; `Ok(None)` for blank lines, comments and a CSV header.
/// The value is checked afterwards, by [`super::record`]. Public for the
/// fuzz target `exchange_wire`.
pub fn parse_line(
    text: &str,
    format: FileFormat,
    default_type: Option<SignalType>,
    line_no: u64,
) -> Result<Option<ParsedLine>, String> {
    let t = text.trim().trim_start_matches('\u{feff}');
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let id = format!("line {line_no}");
    match format {
        FileFormat::Jsonl => {
            let j: JsonLine =
                serde_json::from_str(t).map_err(|e| format!("not a JSON record: {e}"))?;
            let st = signal_type_of(&j.signal_type)
                .ok_or_else(|| format!("unknown signal type {:?}", j.signal_type))?;
            let id = match j.id {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => id,
            };
            Ok(Some((st, j.value, j.labels, id, j.deleted)))
        }
        FileFormat::Csv => {
            let mut parts = t.split(',');
            let first = parts.next().unwrap_or("").trim();
            if line_no == 1 && echotrace_engine::is_hash_list_header(first) {
                return Ok(None);
            }
            let (st, value) = match default_type.or_else(|| bare_pdq(first)) {
                Some(st) => (st, first.to_string()),
                None => {
                    let st = signal_type_of(first)
                        .ok_or_else(|| format!("unknown signal type {first:?}"))?;
                    (st, parts.next().unwrap_or("").trim().to_string())
                }
            };
            let labels = parts
                .flat_map(|p| p.split(';'))
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            Ok(Some((st, value, labels, id, false)))
        }
        FileFormat::Lines | FileFormat::Auto => {
            let (st, value) = match default_type.or_else(|| bare_pdq(t)) {
                Some(st) => (st, t.to_string()),
                None => {
                    let (name, value) = t
                        .split_once([' ', '\t'])
                        .ok_or_else(|| "expected `type value` (or a bare PDQ hash)".to_string())?;
                    let st = signal_type_of(name)
                        .ok_or_else(|| format!("unknown signal type {name:?}"))?;
                    (st, value.trim().to_string())
                }
            };
            Ok(Some((st, value, Vec::new(), id, false)))
        }
    }
}

/// A value without a signal type that is a PDQ hash (64 hex digits) is
/// one, as in `echotrace bank import`: hash lists are mostly bare PDQs.
fn bare_pdq(value: &str) -> Option<SignalType> {
    echotrace_signals::digest::is_hex(value, 64).then_some(SignalType::Pdq)
}

/// Largest file read from a URL, bytes.
pub const MAX_URL_FILE: usize = 4 << 30;

impl Adapter for FileAdapter {
    fn fetch<'a>(
        &'a mut self,
        checkpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page, FetchError>> {
        Box::pin(async move {
            let cp: FileCheckpoint = checkpoint
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default();
            let mut page = Page::default();
            if self.pass.is_none() {
                match self.open(&cp).await? {
                    None => {
                        page.caught_up = true;
                        return Ok(page);
                    }
                    Some((pass, restart)) => {
                        page.restart = restart;
                        self.pass = Some(pass);
                    }
                }
            }
            let default_type = self.config.signal_type.as_deref().and_then(signal_type_of);
            let batch = self.config.batch.max(1);
            let max_total = MAX_URL_FILE.min(self.http.policy().max_body.max(MAX_URL_FILE));
            let Some(pass) = self.pass.as_mut() else {
                return Ok(page);
            };
            let mut done = false;
            while page.records.len() < batch {
                let Some(line) = pass.next_line(max_total).await? else {
                    done = true;
                    break;
                };
                pass.line += 1;
                let line_no = pass.line;
                let text = match line {
                    Line::TooLong(used) => {
                        if matches!(pass.source, Source::File(_)) {
                            pass.offset += used;
                        }
                        page.skip_malformed(
                            &format!("line {line_no}"),
                            &format!("line longer than {MAX_LINE} bytes"),
                        );
                        continue;
                    }
                    Line::Text(bytes, used) => {
                        if matches!(pass.source, Source::File(_)) {
                            pass.offset += used;
                        }
                        match String::from_utf8(bytes) {
                            Ok(s) => s,
                            Err(_) => {
                                page.skip_malformed(&format!("line {line_no}"), "not UTF-8");
                                continue;
                            }
                        }
                    }
                };
                match parse_line(&text, pass.format, default_type, line_no) {
                    Ok(None) => {}
                    Ok(Some((st, value, labels, id, deleted))) => {
                        let labels = RecordLabels::from_flat(&labels);
                        let times = (None, None);
                        let built =
                            record(st, &value, id.clone(), labels, Vec::new(), times, deleted);
                        page.keep(&id, built);
                    }
                    Err(why) => page.skip_malformed(&format!("line {line_no}"), &why),
                }
            }
            let digest = match (&pass.source, pass.hasher.take()) {
                (Source::Http { .. }, Some(h)) if done => {
                    echotrace_signals::digest::to_hex(&h.finalize())
                }
                (_, h) => {
                    pass.hasher = h;
                    pass.digest.clone()
                }
            };
            page.checkpoint = Some(
                serde_json::to_string(&FileCheckpoint {
                    v: 1,
                    digest,
                    offset: pass.offset,
                    line: pass.line,
                    done,
                })
                .map_err(|e| FetchError::Io(e.to_string()))?,
            );
            page.caught_up = done;
            if done {
                self.pass = None;
            }
            Ok(page)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        let pdq = "f".repeat(64);
        let l = parse_line(&format!("pdq {pdq}"), FileFormat::Lines, None, 1).unwrap();
        assert_eq!(l.map(|x| x.0), Some(SignalType::Pdq));
        let l = parse_line(
            &format!("video_md5 {}", "a".repeat(32)),
            FileFormat::Lines,
            None,
            1,
        )
        .unwrap();
        assert_eq!(l.map(|x| x.0), Some(SignalType::Md5));
        assert_eq!(parse_line("# c", FileFormat::Lines, None, 1).unwrap(), None);
        assert!(parse_line("nospace", FileFormat::Lines, None, 1).is_err());
        let l = parse_line(&format!("pdq,{pdq},a;b"), FileFormat::Csv, None, 2).unwrap();
        assert_eq!(l.map(|x| x.2), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            parse_line("signal_type,value", FileFormat::Csv, None, 1).unwrap(),
            None
        );
        let l = parse_line(
            &format!("{{\"signal_type\":\"pdq\",\"value\":\"{pdq}\",\"id\":7}}"),
            FileFormat::Jsonl,
            None,
            3,
        )
        .unwrap();
        assert_eq!(l.map(|x| x.3), Some("7".to_string()));
        let l = parse_line(&pdq, FileFormat::Lines, Some(SignalType::Pdq), 1).unwrap();
        assert_eq!(l.map(|x| x.1), Some(pdq.clone()));
        // `bank import`'s shapes: a bare PDQ, with labels in CSV, a header.
        let l = parse_line(&pdq, FileFormat::Lines, None, 1).unwrap();
        assert_eq!(l.map(|x| (x.0, x.1)), Some((SignalType::Pdq, pdq.clone())));
        let l = parse_line(&format!("{pdq},a;b"), FileFormat::Csv, None, 2).unwrap();
        assert_eq!(
            l.map(|x| (x.0, x.2)),
            Some((SignalType::Pdq, vec!["a".to_string(), "b".to_string()]))
        );
        assert_eq!(
            parse_line("pdq_hex,labels", FileFormat::Csv, None, 1).unwrap(),
            None
        );
        assert!(parse_line("abc,x", FileFormat::Csv, None, 2).is_err());
    }
}
