//! PDF → text and embedded-image signals.
//!
//! [`extract`] parses a PDF in memory with `lopdf` (pure Rust; `pdf-extract`
//! was not used: it panics on many malformed files and pulls in a font
//! stack) and returns a [`PdfExtract`]: the text of every page and, for
//! each embedded image XObject, its PDQ hash:
//! * `/DCTDecode` images are JPEG files as stored: decoded with
//!   [`crate::decode::decode_image`].
//! * `/FlateDecode` images (what PNGs become inside a PDF) are inflated,
//!   PNG/TIFF predictors undone by lopdf, and read as 8-bit DeviceGray or
//!   DeviceRGB (also `ICCBased` with N = 1 or 3). Other colour spaces, bit
//!   depths and filters (JPX, JBIG2, CCITT) are listed as skipped.
//! * The caller derives `text_minhash` from the text and `md5`/`sha256`
//!   from the file bytes; [`crate::isolate`] runs this extractor in a child
//!   process, which is how it must be used on untrusted input.
//!
//! Hardening inside the process (the child's rlimits and timeout are the
//! outer wall): [`PdfLimits`] bounds input size, object count, pages, text
//! length, number of images and each image's declared pixel count and
//! stream size *before* inflating it; everything runs under
//! `catch_unwind`, so a parser panic becomes [`PdfError::Panic`]. A broken
//! page or image is recorded in `warnings` and the rest is still used.
//!
//! **Inflation is bounded before anything allocates it.** While the
//! document loads, every `/FlateDecode` stream (page contents, object
//! streams, fonts' CMaps, images) is inflated into a counting sink — no
//! buffer — up to [`PdfLimits::max_stream_inflated`]; a stream over it, or
//! any stream once the document's total passes
//! [`PdfLimits::max_inflated_total`], is emptied (and reported in
//! `warnings`) before lopdf, which inflates without a limit, ever sees it.
//! So a deflate bomb costs bounded CPU and no memory, instead of growing a
//! buffer until the child's address-space limit kills it. (Cross-reference
//! streams are read before this hook and stay bounded by that limit only;
//! streams whose first filter is not Flate are not measured.) Page text is
//! read from one page map (`get_pages` once, not per page: 200,000 page
//! objects no longer cost 200,000 walks per page) for at most
//! [`PdfLimits::max_pages`] pages.

use crate::decode::{decode_image, DecodeLimits, DecodeOptions};
use crate::pdq::PdqHasher;
use lopdf::{Document, Object, ObjectId, Stream};
use serde::{Deserialize, Serialize};
use std::io::Read as _;

/// Resource limits for [`extract`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdfLimits {
    /// Largest PDF accepted. Default 64 MiB.
    pub max_file_bytes: usize,
    /// Most indirect objects. Default 500 000.
    pub max_objects: usize,
    /// Most pages whose text is extracted. Default 2 000.
    pub max_pages: usize,
    /// Extracted text is cut at this many bytes. Default 8 MiB.
    pub max_text_bytes: usize,
    /// Most images hashed. Default 64.
    pub max_images: usize,
    /// Largest image stream (compressed) and largest declared pixel buffer
    /// (`width × height × components`). Default 64 MiB.
    pub max_image_bytes: u64,
    /// Largest inflated size of one Flate stream; a larger one is skipped.
    /// Default 64 MiB.
    pub max_stream_inflated: u64,
    /// Most bytes inflated for the whole document (streams past it are
    /// skipped). Default 256 MiB.
    pub max_inflated_total: u64,
    /// Limits passed to the image decoder for JPEG images.
    pub decode: DecodeLimits,
}

impl Default for PdfLimits {
    fn default() -> Self {
        PdfLimits {
            max_file_bytes: 64 * 1024 * 1024,
            max_objects: 500_000,
            max_pages: 2_000,
            max_text_bytes: 8 * 1024 * 1024,
            max_images: 64,
            max_image_bytes: 64 * 1024 * 1024,
            max_stream_inflated: 64 * 1024 * 1024,
            max_inflated_total: 256 * 1024 * 1024,
            decode: DecodeLimits::default(),
        }
    }
}

/// One embedded image and its PDQ hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfImage {
    /// Indirect object number and generation, e.g. "12 0".
    pub object: String,
    /// The image filter: "DCTDecode" or "FlateDecode".
    pub filter: String,
    pub width: u32,
    pub height: u32,
    /// PDQ hash, 64 hex characters.
    pub pdq: String,
    pub quality: u8,
}

/// What [`extract`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfExtract {
    pub pages: usize,
    /// Page texts joined by newlines.
    pub text: String,
    pub images: Vec<PdfImage>,
    /// Pages (1-based) with no extractable text: scanned pages, OCR
    /// candidates ([`crate::pdf_render`]).
    #[serde(default)]
    pub textless_pages: Vec<u32>,
    /// Pages, images or limits that were skipped, and why.
    pub warnings: Vec<String>,
}

/// Why a PDF could not be processed at all.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdfError {
    #[error("empty input")]
    Empty,
    #[error("not a PDF (no %PDF- header)")]
    NotPdf,
    #[error("PDF is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("PDF has {count} objects, over the {max} limit")]
    TooManyObjects { count: usize, max: usize },
    #[error("malformed PDF: {0}")]
    Malformed(String),
    #[error("PDF parser panicked: {0}")]
    Panic(String),
}

/// True when `bytes` start like a PDF (`%PDF-` within the first 1 KiB, as
/// readers tolerate leading junk).
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    let head = bytes.get(..bytes.len().min(1024)).unwrap_or(bytes);
    head.windows(5).any(|w| w == b"%PDF-")
}

/// Extracts text and image hashes from `bytes` in this process.
pub fn extract(bytes: &[u8], limits: &PdfLimits) -> Result<PdfExtract, PdfError> {
    if bytes.is_empty() {
        return Err(PdfError::Empty);
    }
    if bytes.len() > limits.max_file_bytes {
        return Err(PdfError::TooLarge {
            size: bytes.len(),
            max: limits.max_file_bytes,
        });
    }
    if !looks_like_pdf(bytes) {
        return Err(PdfError::NotPdf);
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        extract_inner(bytes, limits)
    })) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PdfError::Panic(msg))
        }
    }
}

/// The inflation budget of the document being loaded on this thread (the
/// load hook is a plain `fn`, so it cannot capture it).
#[derive(Clone, Copy, Default)]
struct InflateBudget {
    per_stream: u64,
    remaining: u64,
    skipped: u32,
}

thread_local! {
    static INFLATE: std::cell::Cell<InflateBudget> = std::cell::Cell::new(InflateBudget::default());
}

/// Bytes `data` inflates to (zlib, else raw deflate as lopdf falls back
/// to), counted without buffering and without reading past `cap + 1`.
fn inflated_len(data: &[u8], cap: u64) -> u64 {
    fn count(mut r: impl std::io::Read, cap: u64) -> (u64, bool) {
        let mut buf = [0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (n, true),
                Ok(k) => {
                    n += k as u64;
                    if n > cap {
                        return (n, true);
                    }
                }
                Err(_) => return (n, false),
            }
        }
    }
    let (n, ok) = count(flate2::read::ZlibDecoder::new(data), cap);
    if !ok && n == 0 && data.len() > 2 {
        return count(
            flate2::read::DeflateDecoder::new(data.get(2..).unwrap_or(&[])),
            cap,
        )
        .0;
    }
    n
}

/// lopdf load hook: empty every Flate stream that would inflate past the
/// per-stream limit or the document's remaining budget (see the module doc).
fn bound_inflation(id: ObjectId, obj: &mut Object) -> Option<(ObjectId, Object)> {
    let Object::Stream(stream) = obj else {
        return Some((id, obj.clone()));
    };
    let flate_first = stream
        .filters()
        .ok()
        .and_then(|f| f.first().map(|f| *f == b"FlateDecode".as_slice()))
        .unwrap_or(false);
    if flate_first {
        let mut b = INFLATE.with(|c| c.get());
        let cap = b.per_stream.min(b.remaining);
        let n = inflated_len(&stream.content, cap);
        if n > cap {
            stream.content.clear();
            stream.dict.remove(b"Filter");
            stream.dict.remove(b"DecodeParms");
            b.skipped = b.skipped.saturating_add(1);
        } else {
            b.remaining -= n;
        }
        INFLATE.with(|c| c.set(b));
    }
    // lopdf keeps the object mutated in place; streams are never inside
    // object streams, where the returned value would be used.
    Some((id, Object::Null))
}

fn extract_inner(bytes: &[u8], limits: &PdfLimits) -> Result<PdfExtract, PdfError> {
    INFLATE.with(|c| {
        c.set(InflateBudget {
            per_stream: limits.max_stream_inflated,
            remaining: limits.max_inflated_total,
            skipped: 0,
        })
    });
    let doc =
        Document::load_mem_with_options(bytes, lopdf::LoadOptions::with_filter(bound_inflation))
            .map_err(|e| PdfError::Malformed(e.to_string()))?;
    let skipped = INFLATE.with(|c| c.get().skipped);
    if doc.objects.len() > limits.max_objects {
        return Err(PdfError::TooManyObjects {
            count: doc.objects.len(),
            max: limits.max_objects,
        });
    }
    let mut out = PdfExtract::default();
    if skipped > 0 {
        out.warnings.push(format!(
            "{skipped} compressed streams skipped: over the inflation limit"
        ));
    }
    let pages = doc.get_pages();
    out.pages = pages.len();
    for (&number, &page_id) in pages.iter().take(limits.max_pages) {
        match page_text(&doc, page_id) {
            Ok(t) => {
                if t.trim().is_empty() {
                    out.textless_pages.push(number);
                }
                if !out.text.is_empty() {
                    out.text.push('\n');
                }
                out.text.push_str(t.trim_end());
            }
            Err(e) => {
                out.textless_pages.push(number);
                out.warnings
                    .push(format!("page {number}: text not extracted: {e}"))
            }
        }
        if out.text.len() > limits.max_text_bytes {
            let mut cut = limits.max_text_bytes;
            while !out.text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.text.truncate(cut);
            out.warnings.push(format!("text cut at {cut} bytes"));
            break;
        }
    }
    if pages.len() > limits.max_pages {
        out.warnings.push(format!(
            "only the first {} of {} pages read",
            limits.max_pages,
            pages.len()
        ));
    }
    let mut hasher = PdqHasher::new();
    for (id, obj) in &doc.objects {
        let Object::Stream(stream) = obj else {
            continue;
        };
        if !is_image(stream) {
            continue;
        }
        if out.images.len() >= limits.max_images {
            out.warnings.push(format!(
                "only the first {} images hashed",
                limits.max_images
            ));
            break;
        }
        match image_signal(&doc, *id, stream, limits, &mut hasher) {
            Ok(img) => out.images.push(img),
            Err(why) => out.warnings.push(format!("image {} {}: {why}", id.0, id.1)),
        }
    }
    Ok(out)
}

/// The text of one page: what lopdf's `extract_text` does for a page, given
/// its id (so the page tree is walked once per document, not per page).
fn page_text(doc: &Document, page_id: ObjectId) -> Result<String, lopdf::Error> {
    let encodings: std::collections::BTreeMap<Vec<u8>, lopdf::Encoding> = doc
        .get_page_fonts(page_id)?
        .into_iter()
        .filter_map(|(name, font)| font.get_font_encoding(doc).ok().map(|e| (name, e)))
        .collect();
    let content = lopdf::content::Content::decode(&doc.get_page_content(page_id)?)?;
    let mut text = String::new();
    let mut encoding = None;
    for op in &content.operations {
        match op.operator.as_str() {
            "Tf" => {
                encoding = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|n| encodings.get(n));
            }
            "Tj" | "TJ" => {
                if let Some(enc) = encoding {
                    collect_text(&mut text, enc, &op.operands);
                }
            }
            "'" => {
                if let Some(enc) = encoding {
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    collect_text(&mut text, enc, &op.operands);
                }
            }
            "\"" => {
                if let (Some(enc), Some(s)) = (encoding, op.operands.get(2)) {
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    collect_text(&mut text, enc, std::slice::from_ref(s));
                }
            }
            "T*" | "ET" if !text.ends_with('\n') => text.push('\n'),
            _ => {}
        }
    }
    Ok(text)
}

/// Text of `Tj`/`TJ` operands (lopdf's rule: a kerning over 100 units is a
/// space, an array ends with one).
fn collect_text(text: &mut String, encoding: &lopdf::Encoding, operands: &[Object]) {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => {
                let _ = encoding.write_to_string(bytes, text);
            }
            Object::Array(items) => {
                collect_text(text, encoding, items);
                text.push(' ');
            }
            Object::Integer(i) if *i < -100 => text.push(' '),
            _ => {}
        }
    }
}

fn is_image(stream: &Stream) -> bool {
    stream
        .dict
        .get(b"Subtype")
        .and_then(Object::as_name)
        .is_ok_and(|n| n == b"Image")
}

fn int(doc: &Document, stream: &Stream, key: &[u8]) -> Option<i64> {
    stream
        .dict
        .get_deref(key, doc)
        .ok()
        .and_then(|o| o.as_i64().ok())
}

/// Number of colour components for the colour spaces we read.
fn components(doc: &Document, stream: &Stream) -> Result<usize, String> {
    let cs = stream
        .dict
        .get_deref(b"ColorSpace", doc)
        .map_err(|_| "no colour space".to_string())?;
    match cs {
        Object::Name(n) if n == b"DeviceRGB" => Ok(3),
        Object::Name(n) if n == b"DeviceGray" => Ok(1),
        Object::Array(a) => {
            let is_icc = a.first().and_then(|o| o.as_name().ok()) == Some(b"ICCBased".as_slice());
            let n = a
                .get(1)
                .and_then(|o| doc.dereference(o).ok())
                .and_then(|(_, o)| o.as_stream().ok())
                .and_then(|s| s.dict.get(b"N").ok())
                .and_then(|o| o.as_i64().ok());
            match (is_icc, n) {
                (true, Some(1)) => Ok(1),
                (true, Some(3)) => Ok(3),
                _ => Err("unsupported colour space".into()),
            }
        }
        _ => Err("unsupported colour space".into()),
    }
}

fn image_signal(
    doc: &Document,
    id: ObjectId,
    stream: &Stream,
    limits: &PdfLimits,
    hasher: &mut PdqHasher,
) -> Result<PdfImage, String> {
    if stream.content.len() as u64 > limits.max_image_bytes {
        return Err(format!(
            "stream of {} bytes over the limit",
            stream.content.len()
        ));
    }
    let filters: Vec<Vec<u8>> = stream
        .filters()
        .map(|f| f.into_iter().map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    let (filter, rgb, width, height) = match filters.as_slice() {
        [f] if f.as_slice() == b"DCTDecode" => {
            let img = decode_image(&stream.content, &limits.decode, &DecodeOptions::default())
                .map_err(|e| format!("JPEG: {e}"))?;
            ("DCTDecode", img.rgb, img.width, img.height)
        }
        [f] if f.as_slice() == b"FlateDecode" => {
            let w = int(doc, stream, b"Width").ok_or("no width")?;
            let h = int(doc, stream, b"Height").ok_or("no height")?;
            let bpc = int(doc, stream, b"BitsPerComponent").unwrap_or(8);
            if bpc != 8 {
                return Err(format!("{bpc} bits per component not supported"));
            }
            let w = u32::try_from(w)
                .ok()
                .filter(|&w| w > 0)
                .ok_or("bad width")?;
            let h = u32::try_from(h)
                .ok()
                .filter(|&h| h > 0)
                .ok_or("bad height")?;
            let comps = components(doc, stream)?;
            let pixels = u64::from(w) * u64::from(h);
            let needed = pixels * comps as u64;
            if pixels > limits.decode.max_pixels || needed > limits.max_image_bytes {
                return Err(format!("{w}x{h} image over the size limit"));
            }
            let data = stream
                .decompressed_content()
                .map_err(|e| format!("inflate: {e}"))?;
            let needed = usize::try_from(needed).map_err(|_| "too large")?;
            let data = data
                .get(..needed)
                .ok_or("image data shorter than declared")?;
            let rgb = if comps == 3 {
                data.to_vec()
            } else {
                data.iter().flat_map(|&g| [g, g, g]).collect()
            };
            ("FlateDecode", rgb, w, h)
        }
        other => {
            let names: Vec<String> = other
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            return Err(format!("filter {names:?} not supported"));
        }
    };
    let out = hasher
        .hash_rgb8(&rgb, width, height)
        .map_err(|e| format!("PDQ: {e}"))?;
    Ok(PdfImage {
        object: format!("{} {}", id.0, id.1),
        filter: filter.to_string(),
        width,
        height,
        pdq: out.hash.to_hex(),
        quality: out.quality,
    })
}

/// Result of the child-process protocol: either an extract or an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildReply {
    Ok(PdfExtract),
    Err(PdfError),
}

/// The child side of [`crate::isolate::extract_pdf_isolated`]: reads a PDF
/// from `input` (at most `limits.max_file_bytes + 1` bytes are read), runs
/// [`extract`] and writes one JSON [`ChildReply`] to `output`. Returns the
/// process exit code (0 extract, 1 PDF error, 2 I/O error).
pub fn run_child(
    input: &mut impl std::io::Read,
    output: &mut impl std::io::Write,
    limits: &PdfLimits,
) -> i32 {
    let mut bytes = Vec::new();
    let cap = limits.max_file_bytes as u64 + 1;
    if std::io::Read::read_to_end(&mut input.by_ref().take(cap), &mut bytes).is_err() {
        return 2;
    }
    let (reply, code) = match extract(&bytes, limits) {
        Ok(e) => (ChildReply::Ok(e), 0),
        Err(e) => (ChildReply::Err(e), 1),
    };
    match serde_json::to_writer(&mut *output, &reply) {
        Ok(()) => {
            let _ = output.flush();
            code
        }
        Err(_) => 2,
    }
}
