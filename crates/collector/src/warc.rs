//! WARC 1.1 evidence: a writer (one gzip member per record, with a CDXJ
//! index) and a streaming reader with per-record caps.
//!
//! **Writer.** Every fetch becomes a `request`, a `response` and a
//! `metadata` record (`WARC-Concurrent-To` the response) holding
//! echotrace's signals and match result as JSON. Files are
//! `<prefix>-<UTC time>-<n>.warc.gz` under the operator's directory, rotated
//! at a size; each gets a `warcinfo` record first and a `.cdxj` index
//! beside it (`urlkey timestamp {json}` per response, sorted when the file
//! is closed). With media retention off (the default) the `response`
//! record's block is the HTTP status line and headers only: the payload is
//! not written, only its digest (`WARC-Payload-Digest`) and
//! `WARC-Truncated: length` — evidence of what was served, when and from
//! where, without keeping the content. With `--retain-media` the payload is
//! written too. Digests are `sha256:<base32>` (RFC 4648, as `sha1:` is
//! customarily written). Records are written whole (into a buffer) before
//! the caller records the sighting that points at them, and
//! [`WarcWriter::sync`] flushes them and makes them durable before the
//! sighting's transaction commits. Each record's gzip member comes from one
//! raw-deflate compressor kept by the writer (reset per record).
//!
//! **Reader.** [`WarcReader`] reads `.warc` or `.warc.gz` (one or many gzip
//! members) as a stream: headers are capped (64 KiB), a block larger than
//! the per-record cap is skipped by reading through it (never held in
//! memory) and reported as an error for that record, and a block larger
//! than [`WarcReadLimits::max_skip_bytes`] stops the read with an error
//! naming the record's position. Errors name the record number and byte
//! offset.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use echotrace_engine::utc::Utc;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256};

/// A record written: where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenRecord {
    /// File name (relative to the WARC directory).
    pub file: String,
    /// Offset of the record's gzip member, and its compressed length.
    pub offset: u64,
    pub length: u64,
    /// `<urn:uuid:…>`.
    pub record_id: String,
}

/// What a fetch leaves as evidence.
pub struct FetchEvidence<'a> {
    pub target_uri: &'a str,
    /// When the request started, Unix ms.
    pub date_ms: i64,
    pub remote_ip: Option<std::net::IpAddr>,
    /// Request line + headers as sent (`GET /x HTTP/1.1\r\nHost: …\r\n`).
    pub request_head: String,
    pub status: u16,
    pub response_headers: &'a [(String, String)],
    pub payload: &'a [u8],
    /// The payload's SHA-256 in hex, when the caller already has it (the
    /// fetcher computes it): not hashed again.
    pub payload_sha256_hex: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The `metadata` record's JSON text (signals, match result).
    pub metadata: String,
}

/// The records of one fetch.
#[derive(Clone, Debug)]
pub struct FetchRecords {
    pub response: WrittenRecord,
    pub metadata: WrittenRecord,
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct WarcConfig {
    pub dir: PathBuf,
    /// File name prefix (e.g. the collector's holder id).
    pub prefix: String,
    /// Keep payloads (the operator's `--retain-media`).
    pub retain_payloads: bool,
    /// Rotate to a new file past this size.
    pub max_file_bytes: u64,
}

/// Why writing evidence failed.
#[derive(Debug, thiserror::Error)]
pub enum WarcError {
    #[error("WARC directory {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("writing WARC file {0}: {1}")]
    Write(String, std::io::Error),
}

/// An open WARC file and its CDXJ index. Writes are buffered: what
/// [`WarcWriter::sync`] has not flushed is not evidence yet (nothing that
/// points at it has been committed).
struct OpenFile {
    name: String,
    file: BufWriter<File>,
    cdxj: BufWriter<File>,
    cdxj_path: PathBuf,
    size: u64,
}

/// Appends records to rotating `.warc.gz` files (one per writer).
pub struct WarcWriter {
    config: WarcConfig,
    current: Option<OpenFile>,
    seq: u64,
    /// One raw-deflate compressor, reset for each record's gzip member (a
    /// new one per record allocated and zeroed its tables every time).
    deflate: Compress,
    /// The member being built.
    member: Vec<u8>,
}

/// A gzip member's header: deflate, no flags, no time, fastest, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// `input` as one gzip member (RFC 1952) appended to `out`, through
/// `deflate` (raw deflate, reset first).
fn gzip_member(deflate: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    deflate.reset();
    out.extend_from_slice(&GZIP_HEADER);
    let mut rest = input;
    loop {
        out.reserve(rest.len() / 2 + 256);
        let before = deflate.total_in();
        let status = deflate
            .compress_vec(rest, out, FlushCompress::Finish)
            .map_err(std::io::Error::other)?;
        let used = usize::try_from(deflate.total_in() - before).unwrap_or(rest.len());
        rest = &rest[used.min(rest.len())..];
        if status == Status::StreamEnd {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input's length modulo 2^32.
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Ok(())
}

impl WarcWriter {
    /// A writer into `config.dir` (created if missing).
    pub fn new(config: WarcConfig) -> Result<Self, WarcError> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| WarcError::Dir(config.dir.display().to_string(), e))?;
        Ok(WarcWriter {
            config,
            current: None,
            seq: 0,
            deflate: Compress::new(Compression::fast(), false),
            member: Vec::new(),
        })
    }

    pub fn config(&self) -> &WarcConfig {
        &self.config
    }

    fn open(&mut self) -> Result<&mut OpenFile, WarcError> {
        let rotate = self
            .current
            .as_ref()
            .is_some_and(|f| f.size >= self.config.max_file_bytes);
        if rotate {
            self.close()?;
        }
        if self.current.is_none() {
            self.seq += 1;
            let stamp = warc_date(echotrace_store::now_ms()).replace([':', '-'], "");
            let name = format!(
                "{}-{}-{:05}.warc.gz",
                sanitize(&self.config.prefix),
                stamp.trim_end_matches('Z'),
                self.seq
            );
            let path = self.config.dir.join(&name);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| WarcError::Write(name.clone(), e))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let cdxj_path = self.config.dir.join(format!("{name}.cdxj"));
            let cdxj = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&cdxj_path)
                .map_err(|e| WarcError::Write(name.clone(), e))?;
            self.current = Some(OpenFile {
                name: name.clone(),
                file: BufWriter::with_capacity(64 << 10, file),
                cdxj: BufWriter::with_capacity(16 << 10, cdxj),
                cdxj_path,
                size,
            });
            let info = format!(
                "software: echotrace/{}\r\nformat: WARC File Format 1.1\r\n\
                 conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n\
                 payload-retention: {}\r\n",
                env!("CARGO_PKG_VERSION"),
                if self.config.retain_payloads { "on" } else { "off (digests and headers only)" }
            );
            let head = vec![
                ("WARC-Type", "warcinfo".to_string()),
                ("WARC-Date", warc_date(echotrace_store::now_ms())),
                ("WARC-Filename", name),
                ("Content-Type", "application/warc-fields".to_string()),
            ];
            self.append(&head, info.as_bytes())?;
        }
        self.current
            .as_mut()
            .ok_or_else(|| WarcError::Write("?".into(), std::io::Error::other("no open file")))
    }

    /// Append one record (a new gzip member); returns where it is.
    fn append(
        &mut self,
        headers: &[(&str, String)],
        block: &[u8],
    ) -> Result<WrittenRecord, WarcError> {
        use std::fmt::Write as _;
        let record_id = new_record_id();
        let mut head = String::with_capacity(512);
        head.push_str("WARC/1.1\r\nWARC-Record-ID: ");
        head.push_str(&record_id);
        head.push_str("\r\n");
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            push_header_value(&mut head, v);
            head.push_str("\r\n");
        }
        head.push_str("WARC-Block-Digest: sha256:");
        head.push_str(&base32(&Sha256::digest(block)));
        let _ = write!(head, "\r\nContent-Length: {}\r\n\r\n", block.len());
        let f = self
            .current
            .as_mut()
            .ok_or_else(|| WarcError::Write("?".into(), std::io::Error::other("no open file")))?;
        let io = |e| WarcError::Write(f.name.clone(), e);
        let mut record = head.into_bytes();
        record.reserve(block.len() + 4);
        record.extend_from_slice(block);
        record.extend_from_slice(b"\r\n\r\n");
        self.member.clear();
        gzip_member(&mut self.deflate, &record, &mut self.member).map_err(io)?;
        let offset = f.size;
        f.file.write_all(&self.member).map_err(io)?;
        f.size += self.member.len() as u64;
        Ok(WrittenRecord {
            file: f.name.clone(),
            offset,
            length: self.member.len() as u64,
            record_id,
        })
    }

    /// Write the records of one fetch (see the module doc).
    pub fn write_fetch(&mut self, ev: &FetchEvidence<'_>) -> Result<FetchRecords, WarcError> {
        self.open()?;
        let date = warc_date(ev.date_ms);
        let ip = ev.remote_ip.map(|i| i.to_string());
        let mut req_headers = vec![
            ("WARC-Type", "request".to_string()),
            ("WARC-Target-URI", ev.target_uri.to_string()),
            ("WARC-Date", date.clone()),
            (
                "Content-Type",
                "application/http;msgtype=request".to_string(),
            ),
        ];
        if let Some(ip) = &ip {
            req_headers.push(("WARC-IP-Address", ip.clone()));
        }
        let request = self.append(&req_headers, ev.request_head.as_bytes())?;
        let mut http_head = format!("HTTP/1.1 {} {}\r\n", ev.status, reason(ev.status));
        for (k, v) in ev.response_headers {
            http_head.push_str(k);
            http_head.push_str(": ");
            push_header_value(&mut http_head, v);
            http_head.push_str("\r\n");
        }
        http_head.push_str("\r\n");
        let mut block = http_head.into_bytes();
        let known = ev.payload_sha256_hex.and_then(hex32);
        let payload_digest = match known {
            Some(d) => format!("sha256:{}", base32(&d)),
            None => format!("sha256:{}", base32(&Sha256::digest(ev.payload))),
        };
        let mut resp_headers = vec![
            ("WARC-Type", "response".to_string()),
            ("WARC-Target-URI", ev.target_uri.to_string()),
            ("WARC-Date", date.clone()),
            ("WARC-Concurrent-To", request.record_id.clone()),
            ("WARC-Payload-Digest", payload_digest.clone()),
            (
                "Content-Type",
                "application/http;msgtype=response".to_string(),
            ),
        ];
        if let Some(ip) = &ip {
            resp_headers.push(("WARC-IP-Address", ip.clone()));
        }
        if self.config.retain_payloads {
            block.extend_from_slice(ev.payload);
        } else if !ev.payload.is_empty() {
            resp_headers.push(("WARC-Truncated", "length".to_string()));
            resp_headers.push((
                "WARC-Echotrace-Payload-Length",
                ev.payload.len().to_string(),
            ));
        }
        let response = self.append(&resp_headers, &block)?;
        let meta_headers = vec![
            ("WARC-Type", "metadata".to_string()),
            ("WARC-Target-URI", ev.target_uri.to_string()),
            ("WARC-Date", date),
            ("WARC-Concurrent-To", response.record_id.clone()),
            ("Content-Type", "application/json".to_string()),
        ];
        let metadata = self.append(&meta_headers, ev.metadata.as_bytes())?;
        let cdx = serde_json::json!({
            "url": ev.target_uri,
            "mime": ev.content_type.unwrap_or("unk"),
            "status": ev.status.to_string(),
            "digest": payload_digest,
            "length": response.length.to_string(),
            "offset": response.offset.to_string(),
            "filename": response.file,
        });
        let line = format!(
            "{} {} {}\n",
            surt(ev.target_uri),
            cdx_timestamp(ev.date_ms),
            cdx
        );
        if let Some(f) = self.current.as_mut() {
            f.cdxj
                .write_all(line.as_bytes())
                .map_err(|e| WarcError::Write(f.name.clone(), e))?;
        }
        Ok(FetchRecords { response, metadata })
    }

    /// Make everything written so far durable (fsync).
    pub fn sync(&mut self) -> Result<(), WarcError> {
        if let Some(f) = self.current.as_mut() {
            let io = |e| WarcError::Write(f.name.clone(), e);
            f.file.flush().map_err(io)?;
            f.file.get_ref().sync_data().map_err(io)?;
            f.cdxj.flush().map_err(io)?;
            f.cdxj.get_ref().sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Close the current file: sync it and sort its CDXJ index.
    pub fn close(&mut self) -> Result<(), WarcError> {
        self.sync()?;
        if let Some(f) = self.current.take() {
            sort_cdxj(&f.cdxj_path).map_err(|e| WarcError::Write(f.name.clone(), e))?;
        }
        Ok(())
    }
}

impl Drop for WarcWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn sort_cdxj(path: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    let tmp = path.with_extension("cdxj.tmp");
    let mut out = File::create(&tmp)?;
    for l in lines {
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.sync_data()?;
    std::fs::rename(tmp, path)
}

fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() {
        "echotrace".into()
    } else {
        s
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// `<urn:uuid:…>` from 16 random bytes (version 4).
pub fn new_record_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // Fall back to time + counter: unique within the process.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[..8].copy_from_slice(&(echotrace_store::now_ms() as u64).to_be_bytes());
        b[8..].copy_from_slice(&n.to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = echotrace_signals::digest::to_hex(&b);
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// RFC 4648 base32 (upper case, no padding is ever needed for 32 bytes
/// but it is added for other lengths).
/// A header value on one line: CR and LF become spaces.
fn push_header_value(out: &mut String, v: &str) {
    if v.contains(['\r', '\n']) {
        out.push_str(&v.replace(['\r', '\n'], " "));
    } else {
        out.push_str(v);
    }
}

/// 32 bytes from 64 hex digits (either case), else `None`.
fn hex32(hex: &str) -> Option<[u8; 32]> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i])? << 4) | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

pub fn base32(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(A[((v >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC) from Unix ms.
pub fn warc_date(ms: i64) -> String {
    let t = Utc::of_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// CDXJ's 14-digit timestamp.
pub fn cdx_timestamp(ms: i64) -> String {
    let t = Utc::of_ms(ms);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Unix ms of a WARC date (`YYYY-MM-DDThh:mm:ss[.fff]Z`), if it parses.
pub fn parse_warc_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |a: usize, z: usize| s.get(a..z)?.parse::<i64>().ok();
    Utc {
        year: n(0, 4)?,
        month: n(5, 7)?,
        day: n(8, 10)?,
        hour: n(11, 13)?,
        minute: n(14, 16)?,
        second: n(17, 19)?,
    }
    .to_ms()
}

/// Sort-friendly URL key (SURT): `com,example)/path?query`.
pub fn surt(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return url.to_ascii_lowercase();
    };
    let host = u.host_str().unwrap_or("").trim_start_matches("www.");
    let mut parts: Vec<&str> = host.split('.').collect();
    parts.reverse();
    let mut key = parts.join(",");
    if let Some(p) = u.port() {
        key.push_str(&format!(":{p}"));
    }
    key.push(')');
    key.push_str(&u.path().to_ascii_lowercase());
    if let Some(q) = u.query() {
        key.push('?');
        key.push_str(&q.to_ascii_lowercase());
    }
    key
}

// ----- reading ---------------------------------------------------------------

/// Reader caps.
#[derive(Clone, Debug)]
pub struct WarcReadLimits {
    /// A record's header block.
    pub max_header_bytes: usize,
    /// Blocks larger than this are skipped (an error for that record).
    pub max_record_bytes: u64,
    /// A block larger than this stops the read (no skipping through it).
    pub max_skip_bytes: u64,
}

impl Default for WarcReadLimits {
    fn default() -> Self {
        WarcReadLimits {
            max_header_bytes: 64 << 10,
            max_record_bytes: 64 << 20,
            max_skip_bytes: 4 << 30,
        }
    }
}

/// A record read.
#[derive(Clone, Debug)]
pub struct WarcRecord {
    /// 1-based record number in the file.
    pub number: u64,
    /// Byte offset of the record in the (decompressed) stream.
    pub offset: u64,
    pub headers: Vec<(String, String)>,
    /// The block, or `None` when it was over the cap (skipped).
    pub block: Option<Vec<u8>>,
    pub block_length: u64,
}

impl WarcRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn record_type(&self) -> &str {
        self.header("WARC-Type").unwrap_or("")
    }
}

/// Why reading stopped or a record was refused.
#[derive(Debug, thiserror::Error)]
pub enum WarcReadError {
    #[error("record {number} at byte {offset}: {message}")]
    Record {
        number: u64,
        offset: u64,
        message: String,
    },
    #[error("reading the WARC stream at byte {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
}

struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A streaming WARC reader (see the module doc).
pub struct WarcReader<R: Read> {
    input: BufReader<Counting<R>>,
    limits: WarcReadLimits,
    number: u64,
    done: bool,
}

impl WarcReader<Box<dyn Read + Send>> {
    /// Open a `.warc` or `.warc.gz` file (gzip recognised by its magic).
    pub fn open(path: &Path, limits: WarcReadLimits) -> std::io::Result<Self> {
        let mut f = BufReader::new(File::open(path)?);
        let gz = f.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let inner: Box<dyn Read + Send> = if gz {
            Box::new(flate2::bufread::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        Ok(WarcReader::new(inner, limits))
    }
}

impl<R: Read> WarcReader<R> {
    /// Read records from an uncompressed WARC stream.
    pub fn new(input: R, limits: WarcReadLimits) -> Self {
        WarcReader {
            input: BufReader::with_capacity(
                64 << 10,
                Counting {
                    inner: input,
                    count: 0,
                },
            ),
            limits,
            number: 0,
            done: false,
        }
    }

    fn offset(&self) -> u64 {
        self.input.get_ref().count - self.input.buffer().len() as u64
    }

    fn io_err(&self, e: std::io::Error) -> WarcReadError {
        WarcReadError::Io {
            offset: self.offset(),
            source: e,
        }
    }

    /// Read one line (with its CRLF), at most `max` bytes.
    fn read_line(&mut self, max: usize) -> Result<Option<Vec<u8>>, WarcReadError> {
        let mut line = Vec::new();
        let mut limited = (&mut self.input).take(max as u64 + 1);
        let n = limited
            .read_until(b'\n', &mut line)
            .map_err(|e| WarcReadError::Io {
                offset: 0,
                source: e,
            })?;
        if n == 0 {
            return Ok(None);
        }
        if line.len() > max {
            return Err(WarcReadError::Record {
                number: self.number,
                offset: self.offset(),
                message: format!("header line longer than {max} bytes"),
            });
        }
        Ok(Some(line))
    }

    /// The next record; `None` at the end. After an error the reader stops.
    pub fn next_record(&mut self) -> Option<Result<WarcRecord, WarcReadError>> {
        if self.done {
            return None;
        }
        let r = self.read_record();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    fn read_record(&mut self) -> Option<Result<WarcRecord, WarcReadError>> {
        // Skip blank lines between records.
        let first = loop {
            match self.read_line(self.limits.max_header_bytes) {
                Ok(None) => return None,
                Ok(Some(l)) if l.iter().all(|b| b.is_ascii_whitespace()) => continue,
                Ok(Some(l)) => break l,
                Err(e) => return Some(Err(e)),
            }
        };
        self.number += 1;
        let offset = self.offset() - first.len() as u64;
        let number = self.number;
        let fail = |message: String| WarcReadError::Record {
            number,
            offset,
            message,
        };
        let version = String::from_utf8_lossy(&first).trim().to_string();
        if !version.starts_with("WARC/1.") && version != "WARC/0.18" {
            return Some(Err(fail(format!(
                "expected a WARC/1.x version line, found {:?}",
                version.chars().take(40).collect::<String>()
            ))));
        }
        let mut headers = Vec::new();
        let mut header_bytes = first.len();
        loop {
            let line = match self.read_line(self.limits.max_header_bytes) {
                Ok(Some(l)) => l,
                Ok(None) => return Some(Err(fail("stream ended inside the record header".into()))),
                Err(e) => return Some(Err(e)),
            };
            header_bytes += line.len();
            if header_bytes > self.limits.max_header_bytes {
                return Some(Err(fail(format!(
                    "record header longer than {} bytes",
                    self.limits.max_header_bytes
                ))));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            match text.split_once(':') {
                Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
                None => {
                    return Some(Err(fail(format!(
                        "malformed header line {:?}",
                        text.chars().take(60).collect::<String>()
                    ))))
                }
            }
        }
        let length = match headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.parse::<u64>())
        {
            Some(Ok(n)) => n,
            Some(Err(_)) => return Some(Err(fail("Content-Length is not a number".into()))),
            None => return Some(Err(fail("record has no Content-Length".into()))),
        };
        if length > self.limits.max_skip_bytes {
            return Some(Err(fail(format!(
                "block of {length} bytes exceeds the {}-byte limit; stopping",
                self.limits.max_skip_bytes
            ))));
        }
        let block = if length > self.limits.max_record_bytes {
            match std::io::copy(&mut (&mut self.input).take(length), &mut std::io::sink()) {
                Ok(n) if n == length => None,
                Ok(n) => {
                    return Some(Err(fail(format!(
                        "stream ended inside the block ({n} of {length} bytes)"
                    ))))
                }
                Err(e) => return Some(Err(self.io_err(e))),
            }
        } else {
            let mut buf = Vec::with_capacity(usize::try_from(length.min(1 << 20)).unwrap_or(0));
            match (&mut self.input).take(length).read_to_end(&mut buf) {
                Ok(n) if n as u64 == length => Some(buf),
                Ok(n) => {
                    return Some(Err(fail(format!(
                        "stream ended inside the block ({n} of {length} bytes)"
                    ))))
                }
                Err(e) => return Some(Err(self.io_err(e))),
            }
        };
        Some(Ok(WarcRecord {
            number,
            offset,
            headers,
            block,
            block_length: length,
        }))
    }
}

/// An HTTP response block split into status, headers and payload.
#[derive(Clone, Debug)]
pub struct HttpResponse<'a> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub payload: &'a [u8],
}

impl HttpResponse<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a `response` record's block (`HTTP/1.x NNN …` + headers +
/// payload). `None` when it is not an HTTP response.
pub fn parse_http_response(block: &[u8]) -> Option<HttpResponse<'_>> {
    let head_end = block
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| block.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))?;
    let head = std::str::from_utf8(&block[..head_end]).ok()?;
    let mut lines = head.lines();
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/") {
        return None;
    }
    let status = status_line.split_whitespace().nth(1)?.parse::<u16>().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(HttpResponse {
        status,
        headers,
        payload: &block[head_end..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_payload_digest_is_the_payload_hash() {
        let body = b"<p>a page</p>";
        let hex = echotrace_signals::digest::sha256_hex(body);
        assert_eq!(hex32(&hex), Some(<[u8; 32]>::from(Sha256::digest(body))));
        assert_eq!(hex32(&hex.to_ascii_uppercase()), hex32(&hex));
        assert_eq!(hex32("abc"), None);
        assert_eq!(hex32(&"zz".repeat(32)), None);
    }

    #[test]
    fn base32_and_dates() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(base32(b""), "");
        assert_eq!(warc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(warc_date(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(cdx_timestamp(1_700_000_000_000), "20231114221320");
        assert_eq!(
            parse_warc_date("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_warc_date("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_warc_date("nonsense"), None);
        assert_eq!(
            surt("https://www.Example.com:8080/A/b?x=1"),
            "com,example:8080)/a/b?x=1"
        );
        let id = new_record_id();
        assert!(id.starts_with("<urn:uuid:") && id.len() == 47, "{id}");
    }

    #[test]
    fn write_then_read_back() {
        let dir = std::env::temp_dir().join(format!(
            "et-warc-{}",
            new_record_id().len() + std::process::id() as usize
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for retain in [false, true] {
            let mut w = WarcWriter::new(WarcConfig {
                dir: dir.clone(),
                prefix: format!("t{retain}"),
                retain_payloads: retain,
                max_file_bytes: 1 << 30,
            })
            .unwrap();
            let headers = vec![("Content-Type".to_string(), "text/html".to_string())];
            let recs = w
                .write_fetch(&FetchEvidence {
                    target_uri: "http://site.test/a",
                    date_ms: 1_700_000_000_000,
                    remote_ip: None,
                    request_head: "GET /a HTTP/1.1\r\nHost: site.test\r\n\r\n".into(),
                    status: 200,
                    response_headers: &headers,
                    payload: b"<p>payload bytes</p>",
                    payload_sha256_hex: None,
                    content_type: Some("text/html"),
                    metadata: serde_json::json!({"signals": [], "matched": false}).to_string(),
                })
                .unwrap();
            w.close().unwrap();
            let path = dir.join(&recs.response.file);
            let mut r = WarcReader::open(&path, WarcReadLimits::default()).unwrap();
            let mut types = Vec::new();
            while let Some(rec) = r.next_record() {
                let rec = rec.unwrap();
                types.push(rec.record_type().to_string());
                if rec.record_type() == "response" {
                    let http = parse_http_response(rec.block.as_deref().unwrap()).unwrap();
                    assert_eq!(http.status, 200);
                    assert_eq!(http.payload.is_empty(), !retain);
                    assert_eq!(rec.header("WARC-Truncated").is_some(), !retain);
                }
            }
            assert_eq!(types, ["warcinfo", "request", "response", "metadata"]);
            // The member at the recorded offset decodes alone.
            let bytes = std::fs::read(&path).unwrap();
            let member = &bytes[recs.metadata.offset as usize
                ..(recs.metadata.offset + recs.metadata.length) as usize];
            let mut r = WarcReader::new(
                flate2::read::GzDecoder::new(member),
                WarcReadLimits::default(),
            );
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(rec.record_type(), "metadata");
            let cdxj =
                std::fs::read_to_string(dir.join(format!("{}.cdxj", recs.response.file))).unwrap();
            assert!(cdxj.starts_with("test,site)/a 20231114221320 {"), "{cdxj}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reader_caps_and_errors() {
        let big = format!(
            "WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 100\r\n\r\n{}\r\n\r\nWARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n",
            "x".repeat(100)
        );
        let limits = WarcReadLimits {
            max_record_bytes: 10,
            ..WarcReadLimits::default()
        };
        let mut r = WarcReader::new(big.as_bytes(), limits.clone());
        let a = r.next_record().unwrap().unwrap();
        assert!(a.block.is_none() && a.block_length == 100);
        let b = r.next_record().unwrap().unwrap();
        assert_eq!(b.block.as_deref(), Some(&b"abc"[..]));
        assert!(r.next_record().is_none());
        // Truncated.
        let cut = &big[..80];
        let mut r = WarcReader::new(cut.as_bytes(), WarcReadLimits::default());
        let e = r.next_record().unwrap().unwrap_err().to_string();
        assert!(e.contains("record 1 at byte 0"), "{e}");
        // Not a WARC.
        let mut r = WarcReader::new(&b"hello\r\n"[..], WarcReadLimits::default());
        assert!(r.next_record().unwrap().is_err());
        // Over the skip limit.
        let huge = "WARC/1.1\r\nContent-Length: 99999999999\r\n\r\n";
        let mut r = WarcReader::new(
            huge.as_bytes(),
            WarcReadLimits {
                max_skip_bytes: 1000,
                ..limits
            },
        );
        assert!(r
            .next_record()
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("exceeds"));
    }
}
