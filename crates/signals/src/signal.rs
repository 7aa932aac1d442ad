//! The signal vocabulary shared by every crate: what kinds of signal exist
//! and how each one is named on the wire (JSON, CSV bank exports, the API).

use std::fmt;
use std::str::FromStr;

/// A kind of signal. The string form (`as_str`) is the wire name used in
/// JSON output, bank exports and the HTTP API; it is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalType {
    /// Meta's PDQ perceptual image hash (256 bits).
    Pdq,
    /// Meta's vPDQ video hash: a bag of per-frame PDQ hashes.
    Vpdq,
    /// MinHash signature over normalised text shingles.
    TextMinhash,
    /// Canonicalised URL string.
    Url,
    /// SHA-256 of the canonicalised URL, for sharing without revealing it.
    UrlSha256,
    /// MD5 of the raw bytes.
    Md5,
    /// SHA-256 of the raw bytes.
    Sha256,
    /// A `text_minhash` signature of text read from an image, a video's key
    /// frames or a scanned PDF page by OCR (same serialisation; held to the
    /// bank's `ocr_text` threshold whenever either side came from OCR).
    OcrText,
}

impl SignalType {
    pub const ALL: [SignalType; 8] = [
        SignalType::Pdq,
        SignalType::Vpdq,
        SignalType::TextMinhash,
        SignalType::Url,
        SignalType::UrlSha256,
        SignalType::Md5,
        SignalType::Sha256,
        SignalType::OcrText,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignalType::Pdq => "pdq",
            SignalType::Vpdq => "vpdq",
            SignalType::TextMinhash => "text_minhash",
            SignalType::Url => "url",
            SignalType::UrlSha256 => "url_sha256",
            SignalType::Md5 => "md5",
            SignalType::Sha256 => "sha256",
            SignalType::OcrText => "ocr_text",
        }
    }

    /// Text signals (`text_minhash`, `ocr_text`): one serialisation, one
    /// index, compared with each other.
    pub fn is_text(self) -> bool {
        matches!(self, SignalType::TextMinhash | SignalType::OcrText)
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown signal type name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown signal type {0:?} (expected one of pdq, vpdq, text_minhash, ocr_text, url, url_sha256, md5, sha256)")]
pub struct UnknownSignalType(pub String);

impl FromStr for SignalType {
    type Err = UnknownSignalType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Accept the names other ecosystems use for the same signal.
        let t = match s.trim().to_ascii_lowercase().as_str() {
            "pdq" | "photo_pdq" | "pdq_signal" => SignalType::Pdq,
            "vpdq" | "video_vpdq" => SignalType::Vpdq,
            "text_minhash" | "minhash" => SignalType::TextMinhash,
            "url" => SignalType::Url,
            "url_sha256" => SignalType::UrlSha256,
            "md5" | "video_md5" | "photo_md5" => SignalType::Md5,
            "sha256" => SignalType::Sha256,
            "ocr_text" | "ocr" => SignalType::OcrText,
            _ => return Err(UnknownSignalType(s.to_string())),
        };
        Ok(t)
    }
}

impl serde::Serialize for SignalType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SignalType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One computed signal, as the CLI prints it and the API exchanges it:
/// `{"type":"pdq","value":"<64 hex>","quality":N}`, `{"type":"md5","value":".."}`.
/// Optional fields are omitted from JSON when absent, so the wire form stays
/// exactly the documented one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    #[serde(rename = "type")]
    pub signal_type: SignalType,
    /// The signal's canonical text form (lowercase hex for hashes).
    pub value: String,
    /// PDQ / vPDQ quality, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// PDQ only, on request: the eight dihedral variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dihedral: Option<DihedralHex>,
    /// `ocr_text` only: what OCR read (the kept text and confidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<OcrSummary>,
}

/// What OCR read, attached to an `ocr_text` signal for local display (CLI
/// `hash --ocr`, the console debugger). Never stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OcrSummary {
    /// The kept words (confidence ≥ the minimum) below the header, lines
    /// joined by `\n`: what is signed.
    pub text: String,
    /// The kept words of the short header lines at the top (an outlet's
    /// name or logo text), not signed ([`crate::ocr::split_header`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
    /// Mean per-word confidence, 0–100, over all words read.
    pub mean_confidence: f32,
    /// Words read / words kept for signing.
    pub words: usize,
    pub kept: usize,
    /// A weak reading of small text read again enlarged, and that reading
    /// kept ([`crate::ocr::wants_enlarged`]).
    #[serde(default)]
    pub enlarged: bool,
    /// A weak reading read again binarised by Sauvola's local threshold,
    /// and that reading kept ([`crate::ocr::wants_adaptive`]).
    #[serde(default)]
    pub adaptive: bool,
    /// Median word-box height (px) of the reading kept, in the image
    /// Tesseract read (the enlarged one when `enlarged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_height: Option<u32>,
    /// The script group whose reading was kept (`eng`, `ara`; the first
    /// image's for several).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// The Tesseract runs made, in order ([`crate::ocr::OcrOutput::runs`]):
    /// an image that looks cursive is read with `ara` first
    /// ([`crate::ocr::reads_cursive`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

impl Eq for OcrSummary {}

impl Signal {
    /// A signal with only a type and a value.
    pub fn new(signal_type: SignalType, value: impl Into<String>) -> Signal {
        Signal {
            signal_type,
            value: value.into(),
            quality: None,
            dihedral: None,
            ocr: None,
        }
    }
}

/// The eight PDQ dihedral hashes as hex, in the reference's order and names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DihedralHex {
    pub orig: String,
    pub rot90: String,
    pub rot180: String,
    pub rot270: String,
    pub flipx: String,
    pub flipy: String,
    pub flipplus1: String,
    pub flipminus1: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_json_shape() {
        let mut s = Signal::new(SignalType::Pdq, "ab");
        s.quality = Some(7);
        let j = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(j, r#"{"type":"pdq","value":"ab","quality":7}"#);
        let m = Signal::new(SignalType::Md5, "cd");
        let j = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(j, r#"{"type":"md5","value":"cd"}"#);
        let back: Result<Signal, _> = serde_json::from_str(&j);
        assert_eq!(back.ok(), Some(m));
    }

    #[test]
    fn names_round_trip() {
        for t in SignalType::ALL {
            assert_eq!(t.as_str().parse::<SignalType>(), Ok(t));
        }
        assert!("nope".parse::<SignalType>().is_err());
    }
}
