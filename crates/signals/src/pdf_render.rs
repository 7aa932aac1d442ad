//! Pages of a PDF without a text layer (scanned magazines, image-only
//! exports), rendered for OCR by Debian poppler's `pdftoppm` in an isolated
//! child.
//!
//! Why poppler: it is the renderer every Debian desktop uses, packaged and
//! security-maintained (`poppler-utils`); a pure-Rust renderer good enough
//! for scans (JPX, JBIG2, CCITT images) does not exist, and linking a C
//! renderer into the server would put a large parser in our address space.
//! So `pdftoppm` runs exactly like Tesseract ([`crate::isolate::run_isolated_env`]):
//! * the PDF arrives on **stdin** (`pdftoppm` with no file argument reads
//!   it) and one greyscale page leaves on **stdout** as PGM — no files;
//! * an **empty environment**, `RLIMIT_AS` ([`RenderLimits::memory_bytes`]),
//!   `RLIMIT_CPU`, no core files, `RLIMIT_FSIZE = 0` (it cannot write a
//!   file), a wall-clock kill ([`RenderLimits::timeout`]) and output capped
//!   at the largest page we accept;
//! * the page is scaled by poppler to at most [`RenderLimits::max_side`]
//!   pixels a side (`-scale-to`), and we re-check the PGM header, size and
//!   length before any pixel is used; the page then goes to Tesseract
//!   through the same [`crate::ocr::OcrInput`] as images.
//!
//! Which pages: those the lopdf extractor found no text on
//! ([`crate::pdf::PdfExtract::textless_pages`]), at most
//! [`RenderLimits::max_pages`] of them, one child per page.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::isolate::{run_isolated_env, IsolateError, IsolationLimits};
use crate::ocr::{from_grey, OcrInput, OcrLimits};

/// Limits of page rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// Wall-clock limit of one page. Default 15 s.
    pub timeout: Duration,
    /// Address-space limit of the child. Default 1 GiB.
    pub memory_bytes: u64,
    /// Longest side of a rendered page, px. Default 2,000 (≈ 180 dpi for
    /// A4), enough for 9-pt print.
    pub max_side: u32,
    /// Most pages rendered per PDF. Default 8.
    pub max_pages: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            timeout: Duration::from_secs(15),
            memory_bytes: 1 << 30,
            max_side: 2000,
            max_pages: 8,
        }
    }
}

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "pdftoppm not found or not runnable ({0}); install poppler-utils to OCR scanned PDF pages"
    )]
    Missing(String),
    #[error("rendering the page exceeded the {0:?} time limit and was stopped")]
    Timeout(Duration),
    #[error("rendering the page failed: {0}")]
    Failed(String),
}

/// A located `pdftoppm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdfRenderer {
    program: PathBuf,
    pub limits: RenderLimits,
}

impl PdfRenderer {
    /// Find `program` (a path or a name in `PATH`) and check that it runs.
    pub fn locate(program: &Path, limits: RenderLimits) -> Result<PdfRenderer, RenderError> {
        let program = crate::ocr::resolve_program(program)
            .map_err(|e| RenderError::Missing(e.to_string()))?;
        let probe = IsolationLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: limits.memory_bytes,
            max_output_bytes: 1 << 16,
        };
        let v = run_isolated_env(&program, &["-v"], &[], b"", &probe)
            .map_err(|e| RenderError::Missing(e.to_string()))?;
        if v.code != 0 {
            return Err(RenderError::Missing(format!("`-v` exited {}", v.code)));
        }
        Ok(PdfRenderer { program, limits })
    }

    /// Render page `page` (1-based) of `pdf` to a greyscale page for OCR.
    pub fn render_page(
        &self,
        pdf: &[u8],
        page: u32,
        ocr: &OcrLimits,
    ) -> Result<Option<OcrInput>, RenderError> {
        let n = page.to_string();
        let side = self.limits.max_side.max(16).to_string();
        let args = ["-f", &n, "-l", &n, "-gray", "-scale-to", &side];
        let max_side = u64::from(self.limits.max_side.max(16));
        let limits = IsolationLimits {
            timeout: self.limits.timeout,
            memory_bytes: self.limits.memory_bytes,
            max_output_bytes: usize::try_from(max_side * max_side + 64).unwrap_or(usize::MAX),
        };
        let out =
            run_isolated_env(&self.program, &args, &[], pdf, &limits).map_err(|e| match e {
                IsolateError::Timeout(d) => RenderError::Timeout(d),
                other => RenderError::Failed(other.to_string()),
            })?;
        if out.code != 0 {
            return Err(RenderError::Failed(format!("pdftoppm exited {}", out.code)));
        }
        let (w, h, px) = parse_pgm(&out.stdout, self.limits.max_side)
            .ok_or_else(|| RenderError::Failed("pdftoppm wrote no valid page image".into()))?;
        Ok(from_grey(px, w, h, ocr))
    }

    /// Render `pages` (at most [`RenderLimits::max_pages`]): the pages
    /// rendered, in order, and why the others failed (for the caller's log).
    pub fn render_pages(
        &self,
        pdf: &[u8],
        pages: &[u32],
        ocr: &OcrLimits,
    ) -> (Vec<OcrInput>, Vec<String>) {
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for &p in pages.iter().take(self.limits.max_pages) {
            match self.render_page(pdf, p, ocr) {
                Ok(Some(input)) => out.push(input),
                Ok(None) => {}
                Err(e) => failed.push(format!("page {p}: {e}")),
            }
        }
        (out, failed)
    }
}

/// `(width, height, pixels)` of a binary 8-bit PGM (`P5 W H 255`), both
/// sides in 1..=`max_side` and exactly `W × H` pixel bytes.
pub fn parse_pgm(bytes: &[u8], max_side: u32) -> Option<(u32, u32, &[u8])> {
    let mut fields = Vec::with_capacity(4);
    let mut i = 0;
    while fields.len() < 4 {
        while bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        if *bytes.get(i)? == b'#' {
            while *bytes.get(i)? != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
            if i - start > 10 {
                return None;
            }
        }
        fields.push(bytes.get(start..i)?);
    }
    // Exactly one whitespace byte separates the header from the pixels.
    i += 1;
    if fields[0] != b"P5" || fields[3] != b"255" {
        return None;
    }
    let num = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u32>().ok();
    let (w, h) = (num(fields[1])?, num(fields[2])?);
    if w == 0 || h == 0 || w > max_side || h > max_side {
        return None;
    }
    let len = usize::try_from(u64::from(w) * u64::from(h)).ok()?;
    let px = bytes.get(i..)?;
    (px.len() == len).then_some((w, h, px))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgm_header_and_length_checked() {
        let mut ok = b"P5\n3 2\n255\n".to_vec();
        ok.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_pgm(&ok, 10), Some((3, 2, &[1u8, 2, 3, 4, 5, 6][..])));
        assert!(parse_pgm(&ok[..ok.len() - 1], 10).is_none(), "short");
        assert!(parse_pgm(&ok, 2).is_none(), "over the side limit");
        assert!(parse_pgm(b"P6\n3 2\n255\n123456", 10).is_none());
        assert!(parse_pgm(b"P5\n0 2\n255\n", 10).is_none());
        assert!(parse_pgm(b"P5\n99999999999 2\n255\n", u32::MAX).is_none());
        assert!(parse_pgm(b"P5 # comment", 10).is_none());
        assert!(parse_pgm(b"", 10).is_none());
        let mut commented = b"P5\n# by poppler\n2 1\n255\n".to_vec();
        commented.extend_from_slice(&[7, 8]);
        assert_eq!(parse_pgm(&commented, 10), Some((2, 1, &[7u8, 8][..])));
    }
}
