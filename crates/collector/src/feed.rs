//! RSS, Atom and JSON Feed documents (through `feed-rs`) → the links to
//! follow.
//!
//! Each entry yields its links (`link`/`links[].href`, resolved against
//! the feed URL), its content `src`, and its media and enclosures (Media
//! RSS, `enclosure`, JSON Feed `attachments`), with the entry's publication
//! time. A document that does not parse is an error with feed-rs's reason;
//! the parser runs under `catch_unwind` so a parser bug is an error too.

/// One link a feed points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedLink {
    pub url: String,
    /// Media (enclosure, media:content) rather than a page.
    pub media: bool,
    /// The entry's published (or updated) time, Unix ms.
    pub published_ms: Option<i64>,
    pub entry_title: Option<String>,
}

/// A parsed feed.
#[derive(Clone, Debug, Default)]
pub struct FeedExtract {
    pub title: Option<String>,
    pub entries: usize,
    pub links: Vec<FeedLink>,
    /// Links beyond the cap.
    pub links_dropped: usize,
}

/// Why a feed could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("feed could not be parsed: {0}")]
pub struct FeedError(pub String);

/// Parse `body` fetched from `base`; keep at most `max_links` links.
pub fn parse_feed(
    body: &[u8],
    base: &url::Url,
    max_links: usize,
) -> Result<FeedExtract, FeedError> {
    let parsed = std::panic::catch_unwind(|| feed_rs::parser::parse(body))
        .map_err(|_| FeedError("parser panicked".into()))?
        .map_err(|e| FeedError(e.to_string()))?;
    let mut out = FeedExtract {
        title: parsed.title.as_ref().map(|t| t.content.trim().to_string()),
        entries: parsed.entries.len(),
        ..FeedExtract::default()
    };
    let mut seen = std::collections::HashSet::new();
    for entry in &parsed.entries {
        let published_ms = entry
            .published
            .or(entry.updated)
            .map(|d| d.timestamp_millis());
        let title = entry.title.as_ref().map(|t| t.content.trim().to_string());
        let mut candidates: Vec<(String, bool)> = Vec::new();
        for l in &entry.links {
            let media = l.rel.as_deref() == Some("enclosure");
            candidates.push((l.href.clone(), media));
        }
        if let Some(src) = entry.content.as_ref().and_then(|c| c.src.as_ref()) {
            candidates.push((src.href.clone(), true));
        }
        for m in &entry.media {
            for c in &m.content {
                if let Some(u) = &c.url {
                    candidates.push((u.to_string(), true));
                }
            }
        }
        for (raw, media) in candidates {
            let Ok(mut u) = base.join(raw.trim()) else {
                continue;
            };
            if !matches!(u.scheme(), "http" | "https") {
                continue;
            }
            u.set_fragment(None);
            let s = u.to_string();
            if !seen.insert(s.clone()) {
                continue;
            }
            if out.links.len() >= max_links {
                out.links_dropped += 1;
                continue;
            }
            out.links.push(FeedLink {
                url: s,
                media,
                published_ms,
                entry_title: title.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("http://site.test/feed.xml").unwrap()
    }

    #[test]
    fn rss_atom_json() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
            <item><title>One</title><link>/p/1.html</link><pubDate>Tue, 02 Jan 2024 03:04:05 GMT</pubDate>
            <enclosure url="http://site.test/a.mp3" type="audio/mpeg" length="1"/></item>
            <item><title>Two</title><link>http://site.test/p/2.html</link></item></channel></rss>"#;
        let f = parse_feed(rss, &base(), 100).unwrap();
        assert_eq!(f.entries, 2);
        let urls: Vec<&str> = f.links.iter().map(|l| l.url.as_str()).collect();
        assert!(urls.contains(&"http://site.test/p/1.html"), "{urls:?}");
        assert!(urls.contains(&"http://site.test/a.mp3"));
        assert!(urls.contains(&"http://site.test/p/2.html"));
        assert_eq!(f.links[0].published_ms, Some(1_704_164_645_000));
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>x</id><updated>2024-01-01T00:00:00Z</updated>
            <entry><id>e</id><title>E</title><updated>2024-01-01T00:00:00Z</updated><link href="http://site.test/e"/></entry></feed>"#;
        assert_eq!(
            parse_feed(atom, &base(), 100).unwrap().links[0].url,
            "http://site.test/e"
        );
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","title":"J","items":[{"id":"1","url":"http://site.test/j","content_text":"x"}]}"#;
        assert_eq!(
            parse_feed(json, &base(), 100).unwrap().links[0].url,
            "http://site.test/j"
        );
    }

    #[test]
    fn malformed_feeds_are_errors() {
        for bad in [
            &b"<rss><channel><item><link>"[..],
            b"{\"version\": 3",
            b"\x00\x01\x02",
            b"",
        ] {
            assert!(parse_feed(bad, &base(), 10).is_err(), "{bad:?}");
        }
    }
}
