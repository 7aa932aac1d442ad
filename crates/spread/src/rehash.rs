//! Re-hashing served bytes and comparing them with what a sighting matched:
//! its own stored signals and its bank items' signals, at each bank's
//! thresholds (the engine's defaults otherwise). Runs on the blocking pool
//! (image decoding and PDQ are CPU work).
//!
//! HTML is compared by its visible text (scripts, styles and tags dropped),
//! so a page whose ads or timestamps changed is still `live` while its
//! matched text is there.

use std::collections::HashSet;

use echotrace_signals::content::{detect_kind, hash_content, ContentKind, HashOptions};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::{compare_text_with, text_signature, TextMatchRule, TextSignature};
use echotrace_signals::video::vpdq::{compare as vpdq_compare, VpdqHash, VpdqMatchOptions};

use crate::verdict::Presence;

/// The signals served bytes are compared with.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    pdq: Vec<(PdqHash, u32)>,
    text: Vec<(TextSignature, TextMatchRule)>,
    vpdq: Vec<(VpdqHash, VpdqMatchOptions)>,
    exact: HashSet<String>,
}

impl Reference {
    /// Add one stored signal; `threshold` is the bank's override for its
    /// type (PDQ/vPDQ distance, text Jaccard). Unparseable values are
    /// skipped.
    pub fn add(&mut self, signal_type: &str, value: &str, threshold: Option<f64>) {
        match signal_type.parse::<SignalType>().ok() {
            Some(SignalType::Pdq) => {
                if let Ok(h) = PdqHash::from_hex(value) {
                    let t = threshold
                        .unwrap_or(echotrace_engine::default_threshold(SignalType::Pdq))
                        .clamp(0.0, 256.0) as u32;
                    self.pdq.push((h, t));
                }
            }
            Some(SignalType::TextMinhash) => {
                if let Ok(sig) = value.parse::<TextSignature>() {
                    let mut rule = TextMatchRule::default();
                    if let Some(j) = threshold {
                        rule.jaccard = j.clamp(0.0, 1.0);
                    }
                    self.text.push((sig, rule));
                }
            }
            Some(SignalType::Vpdq) => {
                if let Ok(v) = VpdqHash::from_signal_str(value) {
                    let mut opts = VpdqMatchOptions::default();
                    if let Some(d) = threshold {
                        opts.distance_threshold = d.clamp(0.0, 256.0) as u32;
                    }
                    self.vpdq.push((v, opts));
                }
            }
            Some(SignalType::Md5 | SignalType::Sha256) => {
                self.exact.insert(value.to_ascii_lowercase());
            }
            _ => {}
        }
    }

    /// Nothing to compare with.
    pub fn is_empty(&self) -> bool {
        self.pdq.is_empty() && self.text.is_empty() && self.vpdq.is_empty() && self.exact.is_empty()
    }

    fn expects_video(&self) -> bool {
        !self.vpdq.is_empty()
    }
}

/// True when the bytes look like an HTML document.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let t = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    t.starts_with("<!doctype html") || t.starts_with("<html") || t.contains("<body")
}

/// The visible text of an HTML document: tags, comments, scripts and
/// styles dropped, a few entities decoded. Linear, no allocation per tag.
pub fn html_text(bytes: &[u8]) -> String {
    let src = String::from_utf8_lossy(bytes);
    let lower = src.to_ascii_lowercase();
    let mut out = String::with_capacity(src.len() / 2);
    let mut i = 0;
    let b = src.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            let rest = &lower[i..];
            let skip_to = if rest.starts_with("<!--") {
                rest.find("-->").map(|e| i + e + 3)
            } else if rest.starts_with("<script") {
                rest.find("</script").map(|e| i + e + 8)
            } else if rest.starts_with("<style") {
                rest.find("</style").map(|e| i + e + 7)
            } else {
                None
            };
            let from = skip_to.unwrap_or(i);
            i = match lower[from..].find('>') {
                Some(e) => from + e + 1,
                None => b.len(),
            };
            out.push(' ');
            continue;
        }
        let next = lower[i..].find('<').map_or(b.len(), |e| i + e);
        out.push_str(&src[i..next]);
        i = next;
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Do the served bytes still carry the item? (see the module doc)
pub fn presence(body: &[u8], reference: &Reference, opts: &HashOptions) -> Presence {
    if reference.is_empty() {
        return Presence::Differs("other bytes, and no stored signal to compare them with".into());
    }
    if looks_like_html(body) {
        if reference.text.is_empty() {
            return Presence::Differs("an HTML page where the item was not text".into());
        }
        let sig = text_signature(&html_text(body));
        return compare_text_sig(&sig, reference);
    }
    let signals = match hash_content(body, opts) {
        Ok(s) => s,
        Err(e) if reference.expects_video() && e.to_string().contains("video") => {
            return Presence::Unknown(e.to_string())
        }
        Err(e) => return Presence::Differs(format!("served bytes do not hash: {e}")),
    };
    let mut compared = false;
    let mut best = String::new();
    for s in &signals {
        match s.signal_type {
            SignalType::Md5 | SignalType::Sha256 if reference.exact.contains(&s.value) => {
                return Presence::Matches(format!(
                    "same bytes as a bank item ({})",
                    s.signal_type.as_str()
                ));
            }
            SignalType::Pdq if !reference.pdq.is_empty() => {
                compared = true;
                if let Ok(h) = PdqHash::from_hex(&s.value) {
                    let (d, t) = reference
                        .pdq
                        .iter()
                        .map(|(r, t)| (h.distance(r), *t))
                        .min_by_key(|(d, _)| *d)
                        .unwrap_or((256, 0));
                    if d <= t {
                        return Presence::Matches(format!("pdq distance {d} ≤ {t}"));
                    }
                    best = format!("nearest pdq distance {d} > {t}");
                }
            }
            SignalType::TextMinhash if !reference.text.is_empty() => {
                compared = true;
                if let Ok(sig) = s.value.parse::<TextSignature>() {
                    match compare_text_sig(&sig, reference) {
                        m @ Presence::Matches(_) => return m,
                        Presence::Differs(why) | Presence::Unknown(why) => best = why,
                    }
                }
            }
            SignalType::Vpdq if !reference.vpdq.is_empty() => {
                compared = true;
                if let Ok(q) = VpdqHash::from_signal_str(&s.value) {
                    for (r, o) in &reference.vpdq {
                        let c = vpdq_compare(&q, r, o);
                        if c.is_match {
                            return Presence::Matches(format!(
                                "vpdq {:.0}% of frames match",
                                c.query_match_pct
                            ));
                        }
                        best = format!("vpdq {:.0}% of frames match", c.query_match_pct);
                    }
                }
            }
            _ => {}
        }
    }
    if compared {
        Presence::Differs(best)
    } else if !reference.text.is_empty() && detect_kind(body) == Some(ContentKind::Text) {
        // Text with no words: hashed without a `text_minhash`, it matches
        // no bank text.
        Presence::Differs(no_text_match(0.0))
    } else {
        Presence::Differs("served a different kind of content".into())
    }
}

fn compare_text_sig(sig: &TextSignature, reference: &Reference) -> Presence {
    let mut best = 0.0f64;
    for (r, rule) in &reference.text {
        if let Ok(c) = compare_text_with(sig, r, rule) {
            if c.is_match {
                return Presence::Matches(format!(
                    "text {} (jaccard {:.2})",
                    c.rule.as_str(),
                    c.jaccard
                ));
            }
            best = best.max(c.jaccard);
        }
    }
    Presence::Differs(no_text_match(best))
}

/// Why served text does not match: its best Jaccard similarity.
fn no_text_match(best: f64) -> String {
    format!("text no longer matches (best jaccard {best:.2})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_drops_markup() {
        let t = html_text(
            b"<html><head><style>p{}</style><script>var x='<p>';</script></head>\
              <body><!-- c --><p>Hello &amp; welcome</p><b>there</b></body></html>",
        );
        let words: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(words, ["Hello", "&", "welcome", "there"]);
        assert!(looks_like_html(b"  <!DOCTYPE html><p>x"));
        assert!(!looks_like_html(b"plain text"));
    }

    #[test]
    fn text_presence() {
        let article = "The harbour rovers won the regional cup final on Saturday after a late \
                       goal from the captain, sending thousands of supporters into the streets \
                       of the old town to celebrate until the early hours of the morning.";
        let mut r = Reference::default();
        r.add("text_minhash", &text_signature(article).to_string(), None);
        let page = format!("<html><body><nav>menu</nav><article>{article}</article></body></html>");
        assert!(matches!(
            presence(page.as_bytes(), &r, &HashOptions::default()),
            Presence::Matches(_)
        ));
        let other = "<html><body><p>Weather: light rain over the hills, clearing by evening, \
                     with temperatures near twelve degrees and a gentle westerly breeze.</p></body></html>";
        assert!(matches!(
            presence(other.as_bytes(), &r, &HashOptions::default()),
            Presence::Differs(_)
        ));
        // Served text with no words (hashed without a `text_minhash`) is
        // text that no longer matches, not another kind of content.
        assert_eq!(
            presence(b" ?! -- \n", &r, &HashOptions::default()),
            Presence::Differs("text no longer matches (best jaccard 0.00)".into())
        );
    }
}
