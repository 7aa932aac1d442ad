//! HTML → visible text and links, in one streaming pass of `lol_html`.
//!
//! Links come from `a[href]`, `img[src]` (and the first `srcset`
//! candidate), `video[src]`, `video[poster]`, `audio[src]`, `source[src]`,
//! `embed[src]`, `iframe[src]` and `meta[http-equiv=refresh]`, resolved
//! against the page URL or its `<base href>`. Text is every text node
//! outside `<script>`, `<style>` and other raw-text elements, entities
//! decoded. Optional [`Probe`]s capture an attribute or the text of
//! elements matching a CSS selector (the locker rules use them).
//!
//! Hostile pages are bounded: the parser has a memory limit, text is cut at
//! [`HtmlLimits::max_text_bytes`], links at [`HtmlLimits::max_links`]
//! (the rest are counted, not kept), and the parser is lenient (malformed
//! markup is read the way browsers read it, never an error unless the
//! memory limit is hit).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use lol_html::html_content::{Element, TextChunk, TextType};
use lol_html::{ElementContentHandlers, HtmlRewriter, MemorySettings, Selector, Settings};

/// Caps of one page.
#[derive(Clone, Debug)]
pub struct HtmlLimits {
    pub max_links: usize,
    pub max_text_bytes: usize,
    /// The parser's own buffers.
    pub max_parser_memory: usize,
}

impl Default for HtmlLimits {
    fn default() -> Self {
        HtmlLimits {
            max_links: 5_000,
            max_text_bytes: 1 << 20,
            max_parser_memory: 16 << 20,
        }
    }
}

/// Where on the page a link was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `a[href]`: a page or file to follow.
    Anchor,
    /// Embedded media (`img`, `video`, `audio`, `source`, `embed`): part of
    /// the page.
    Media,
    /// `iframe[src]`.
    Frame,
    /// `meta[http-equiv=refresh]`.
    Refresh,
}

/// One link, absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub kind: LinkKind,
}

/// A CSS selector to capture: an attribute's value, or (with `attr`
/// `None`) the element's text.
#[derive(Clone, Debug)]
pub struct Probe {
    pub selector: String,
    pub attr: Option<String>,
}

/// What a page yielded.
#[derive(Clone, Debug, Default)]
pub struct PageExtract {
    pub title: Option<String>,
    /// Visible text, whitespace collapsed.
    pub text: String,
    pub text_truncated: bool,
    /// Unique absolute http(s) links, in page order.
    pub links: Vec<Link>,
    /// Links beyond [`HtmlLimits::max_links`] (counted, not kept).
    pub links_dropped: usize,
    /// Per probe, the values captured (attributes resolved to absolute URLs
    /// when they parse as one relative to the page).
    pub probes: Vec<Vec<String>>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HtmlError {
    #[error("invalid CSS selector {0:?}")]
    Selector(String),
    #[error("HTML parser stopped: {0}")]
    Parser(String),
}

struct State {
    base: url::Url,
    limits: HtmlLimits,
    text: String,
    text_truncated: bool,
    pending_space: bool,
    title: Option<String>,
    in_title: bool,
    links: Vec<Link>,
    seen: HashSet<String>,
    dropped: usize,
    probes: Vec<Vec<String>>,
}

impl State {
    fn push_link(&mut self, raw: &str, kind: LinkKind) {
        let raw = decode_entities(raw.trim());
        if raw.is_empty() {
            return;
        }
        let Ok(url) = self.base.join(&raw) else {
            return;
        };
        if !matches!(url.scheme(), "http" | "https") {
            return;
        }
        let mut url = url;
        url.set_fragment(None);
        let s = url.to_string();
        if self.seen.contains(&s) {
            return;
        }
        if self.links.len() >= self.limits.max_links {
            self.dropped += 1;
            return;
        }
        self.seen.insert(s.clone());
        self.links.push(Link { url: s, kind });
    }

    fn push_text(&mut self, chunk: &str) {
        if self.text_truncated {
            return;
        }
        let decoded = decode_entities(chunk);
        for word in decoded.split_whitespace() {
            if self.text.len() + word.len() + 1 > self.limits.max_text_bytes {
                self.text_truncated = true;
                return;
            }
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            self.text.push_str(word);
        }
        self.pending_space = decoded.ends_with(char::is_whitespace);
    }
}

fn selector(s: &str) -> Result<Selector, HtmlError> {
    s.parse::<Selector>()
        .map_err(|_| HtmlError::Selector(s.to_string()))
}

/// The built-in selectors (see the module doc), in handler order.
const BUILTIN_SELECTORS: [&str; 13] = [
    "base[href]",
    "a[href]",
    "area[href]",
    "img[src]",
    "video[src]",
    "video[poster]",
    "audio[src]",
    "source[src]",
    "embed[src]",
    "iframe[src]",
    "img[srcset], source[srcset]",
    "meta[http-equiv][content]",
    "title",
];

/// [`BUILTIN_SELECTORS`] parsed once per process (parsing them for every
/// page was a few per cent of a crawl's CPU).
static BUILTIN: std::sync::LazyLock<Result<Vec<Selector>, String>> =
    std::sync::LazyLock::new(|| {
        BUILTIN_SELECTORS
            .iter()
            .map(|s| s.parse::<Selector>().map_err(|_| s.to_string()))
            .collect()
    });

/// The parsed built-in selector `s` (one of [`BUILTIN_SELECTORS`]).
fn builtin(s: &str) -> Result<Cow<'static, Selector>, HtmlError> {
    let parsed = BUILTIN
        .as_ref()
        .map_err(|e| HtmlError::Selector(e.clone()))?;
    BUILTIN_SELECTORS
        .iter()
        .position(|b| *b == s)
        .and_then(|i| parsed.get(i))
        .map(Cow::Borrowed)
        .ok_or_else(|| HtmlError::Selector(s.to_string()))
}

/// Extract text, links and probe captures from `html` fetched at `base`.
/// `charset` (from `Content-Type`) picks the decoding; UTF-8 otherwise.
pub fn extract(
    html: &[u8],
    base: &url::Url,
    charset: Option<&str>,
    limits: &HtmlLimits,
    probes: &[Probe],
) -> Result<PageExtract, HtmlError> {
    let state = Rc::new(RefCell::new(State {
        base: base.clone(),
        limits: limits.clone(),
        text: String::new(),
        text_truncated: false,
        pending_space: false,
        title: None,
        in_title: false,
        links: Vec::new(),
        seen: HashSet::new(),
        dropped: 0,
        probes: vec![Vec::new(); probes.len()],
    }));
    let mut handlers: Vec<(Cow<'static, Selector>, ElementContentHandlers<'static>)> = Vec::new();
    {
        let st = state.clone();
        handlers.push((
            builtin("base[href]")?,
            ElementContentHandlers::default().element(move |el: &mut Element| {
                if let Some(h) = el.get_attribute("href") {
                    let mut s = st.borrow_mut();
                    if let Ok(b) = s.base.join(&decode_entities(h.trim())) {
                        if matches!(b.scheme(), "http" | "https") {
                            s.base = b;
                        }
                    }
                }
                Ok(())
            }),
        ));
    }
    for (sel, attr, kind) in [
        ("a[href]", "href", LinkKind::Anchor),
        ("area[href]", "href", LinkKind::Anchor),
        ("img[src]", "src", LinkKind::Media),
        ("video[src]", "src", LinkKind::Media),
        ("video[poster]", "poster", LinkKind::Media),
        ("audio[src]", "src", LinkKind::Media),
        ("source[src]", "src", LinkKind::Media),
        ("embed[src]", "src", LinkKind::Media),
        ("iframe[src]", "src", LinkKind::Frame),
    ] {
        let st = state.clone();
        handlers.push((
            builtin(sel)?,
            ElementContentHandlers::default().element(move |el: &mut Element| {
                if let Some(v) = el.get_attribute(attr) {
                    st.borrow_mut().push_link(&v, kind);
                }
                Ok(())
            }),
        ));
    }
    {
        let st = state.clone();
        handlers.push((
            builtin("img[srcset], source[srcset]")?,
            ElementContentHandlers::default().element(move |el: &mut Element| {
                if let Some(v) = el.get_attribute("srcset") {
                    if let Some(first) = v
                        .split(',')
                        .next()
                        .and_then(|c| c.split_whitespace().next())
                    {
                        st.borrow_mut().push_link(first, LinkKind::Media);
                    }
                }
                Ok(())
            }),
        ));
    }
    {
        let st = state.clone();
        handlers.push((
            builtin("meta[http-equiv][content]")?,
            ElementContentHandlers::default().element(move |el: &mut Element| {
                let equiv = el.get_attribute("http-equiv").unwrap_or_default();
                if equiv.trim().eq_ignore_ascii_case("refresh") {
                    if let Some(target) =
                        el.get_attribute("content").and_then(|c| refresh_target(&c))
                    {
                        st.borrow_mut().push_link(&target, LinkKind::Refresh);
                    }
                }
                Ok(())
            }),
        ));
    }
    {
        let st = state.clone();
        handlers.push((
            builtin("title")?,
            ElementContentHandlers::default().element(move |el: &mut Element| {
                st.borrow_mut().in_title = true;
                let st2 = st.clone();
                let _ = el.on_end_tag(Box::new(move |_| {
                    st2.borrow_mut().in_title = false;
                    Ok(())
                }));
                Ok(())
            }),
        ));
    }
    for (i, p) in probes.iter().enumerate() {
        let st = state.clone();
        let sel = selector(&p.selector)?;
        match p.attr.clone() {
            Some(attr) => handlers.push((
                Cow::Owned(sel),
                ElementContentHandlers::default().element(move |el: &mut Element| {
                    if let Some(v) = el.get_attribute(&attr) {
                        let mut s = st.borrow_mut();
                        let v = decode_entities(v.trim());
                        let value = s.base.join(&v).map(|u| u.to_string()).unwrap_or(v);
                        if s.probes[i].len() < 1000 {
                            s.probes[i].push(value);
                        }
                    }
                    Ok(())
                }),
            )),
            None => {
                let st_el = st.clone();
                handlers.push((
                    Cow::Owned(sel.clone()),
                    ElementContentHandlers::default().element(move |_el: &mut Element| {
                        let mut s = st_el.borrow_mut();
                        if s.probes[i].len() < 1000 {
                            s.probes[i].push(String::new());
                        }
                        Ok(())
                    }),
                ));
                handlers.push((
                    Cow::Owned(sel),
                    ElementContentHandlers::default().text(move |t: &mut TextChunk| {
                        let mut s = st.borrow_mut();
                        let cap = s.limits.max_text_bytes;
                        if let Some(last) = s.probes[i].last_mut() {
                            if last.len() + t.as_str().len() <= cap {
                                last.push_str(t.as_str());
                            }
                        }
                        Ok(())
                    }),
                ));
            }
        }
    }
    let st = state.clone();
    let doc_text = lol_html::doc_text!(move |t: &mut TextChunk| {
        match t.text_type() {
            TextType::Data | TextType::RCData | TextType::PlainText | TextType::CDataSection => {
                let mut s = st.borrow_mut();
                if s.in_title {
                    let title = s.title.get_or_insert_with(String::new);
                    if title.len() < 1000 {
                        title.push_str(t.as_str());
                    }
                }
                s.push_text(t.as_str());
            }
            _ => {}
        }
        Ok(())
    });
    let mut settings = Settings::new()
        .with_strict(false)
        .with_adjust_charset_on_meta_tag(true)
        .with_memory_settings(
            MemorySettings::new().with_max_allowed_memory_usage(limits.max_parser_memory),
        )
        .append_document_content_handler(doc_text);
    for h in handlers {
        settings = settings.append_element_content_handler(h);
    }
    if let Some(enc) = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes()))
        .and_then(lol_html::AsciiCompatibleEncoding::new)
    {
        settings = settings.with_encoding(enc);
    }
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        rewriter.write(html)?;
        rewriter.end()
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(HtmlError::Parser(e.to_string())),
        Err(_) => return Err(HtmlError::Parser("parser panicked".into())),
    }
    let s = Rc::try_unwrap(state)
        .map_err(|_| HtmlError::Parser("parser state still shared".into()))?
        .into_inner();
    Ok(PageExtract {
        title: s.title.map(|t| {
            decode_entities(t.trim())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }),
        text: s.text,
        text_truncated: s.text_truncated,
        links: s.links,
        links_dropped: s.dropped,
        probes: s
            .probes
            .into_iter()
            .map(|v| {
                v.into_iter()
                    .map(|x| decode_entities(x.trim()))
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .collect(),
    })
}

/// The URL of a `<meta http-equiv=refresh content="5; url=…">`.
fn refresh_target(content: &str) -> Option<String> {
    let (_, rest) = content.split_once([';', ','])?;
    let rest = rest.trim_start();
    let lower = rest.to_ascii_lowercase();
    let rest = if lower.starts_with("url") {
        rest[3..].trim_start().strip_prefix('=')?.trim()
    } else {
        rest.trim()
    };
    let rest = rest.trim_matches(|c| c == '\'' || c == '"');
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Decode HTML character references: the common named ones and numeric
/// (`&#38;`, `&#x26;`). Unknown names are left as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1)
            .unwrap_or(rest.len());
        let name = &rest[1..end];
        let has_semi = rest[end..].starts_with(';');
        let decoded = if let Some(num) = name.strip_prefix('#') {
            let n = match num.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok(),
                None => num.parse::<u32>().ok(),
            };
            n.and_then(char::from_u32).filter(|c| *c != '\0')
        } else {
            match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => None,
            }
        };
        match decoded {
            Some(c) if !name.is_empty() => {
                out.push(c);
                rest = &rest[end + usize::from(has_semi)..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("http://site.test/dir/page.html").unwrap()
    }

    #[test]
    fn links_text_and_refresh() {
        let html = br#"<html><head><title>Hi &amp; bye</title><meta http-equiv="Refresh" content="0; URL='/moved'">
            <style>.x{color:red}</style><script>var a = "<a href='/no'>";</script></head>
            <body><p>Hello&nbsp;<b>world</b> &#x41;&#66;</p>
            <a href="other.html?a=1&amp;b=2#frag">o</a><a href="mailto:x@y">m</a><a href="javascript:void(0)">j</a>
            <img src="/img/a.png" srcset="/img/a-2x.png 2x, /img/a-3x.png 3x"><video poster="p.jpg"><source src="v.mp4"></video>
            <iframe src="https://other.test/embed"></iframe><a href="other.html?a=1&amp;b=2">dup</a>
            </body></html>"#;
        let e = extract(html, &base(), None, &HtmlLimits::default(), &[]).unwrap();
        assert_eq!(e.title.as_deref(), Some("Hi & bye"));
        assert!(e.text.contains("Hello"), "{}", e.text);
        assert!(e.text.contains("world AB"), "{}", e.text);
        assert!(!e.text.contains("color"), "{}", e.text);
        assert!(!e.text.contains("var a"), "{}", e.text);
        let urls: Vec<&str> = e.links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            vec![
                "http://site.test/moved",
                "http://site.test/dir/other.html?a=1&b=2",
                "http://site.test/img/a.png",
                "http://site.test/img/a-2x.png",
                "http://site.test/dir/p.jpg",
                "http://site.test/dir/v.mp4",
                "https://other.test/embed",
            ]
        );
    }

    #[test]
    fn base_href_and_caps() {
        let mut html = String::from("<base href='http://cdn.test/x/'>");
        for i in 0..100 {
            html.push_str(&format!("<a href='p{i}'>l</a>"));
        }
        let limits = HtmlLimits {
            max_links: 10,
            ..HtmlLimits::default()
        };
        let e = extract(html.as_bytes(), &base(), None, &limits, &[]).unwrap();
        assert_eq!(e.links.len(), 10);
        assert_eq!(e.links_dropped, 90);
        assert_eq!(e.links[0].url, "http://cdn.test/x/p0");
    }

    #[test]
    fn probes_capture_attributes_and_text() {
        let html =
            br#"<a id="dl" class="btn" href="/files/f.bin">Download</a><pre class="paste">line one
line &lt;two&gt;</pre>"#;
        let probes = [
            Probe {
                selector: "a#dl".into(),
                attr: Some("href".into()),
            },
            Probe {
                selector: "pre.paste".into(),
                attr: None,
            },
        ];
        let e = extract(html, &base(), None, &HtmlLimits::default(), &probes).unwrap();
        assert_eq!(
            e.probes[0],
            vec!["http://site.test/files/f.bin".to_string()]
        );
        assert_eq!(e.probes[1], vec!["line one\nline <two>".to_string()]);
        assert!(matches!(
            extract(
                html,
                &base(),
                None,
                &HtmlLimits::default(),
                &[Probe {
                    selector: "a[".into(),
                    attr: None
                }]
            ),
            Err(HtmlError::Selector(_))
        ));
    }

    #[test]
    fn malformed_html_is_read() {
        for html in [
            &b"<a href='x"[..],
            b"<<<>>><a href=y>",
            b"\xff\xfe\x00<p>",
            b"<script>never closed",
            b"</a></b></p>",
        ] {
            assert!(extract(html, &base(), None, &HtmlLimits::default(), &[]).is_ok());
        }
        assert_eq!(
            decode_entities("a &amp b &unknown; &#0; &#x110000;"),
            "a & b &unknown; &#0; &#x110000;"
        );
    }
}
