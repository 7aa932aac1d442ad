//! What a fetched response becomes: the job's own item, the outlinks
//! recorded but not fetched, and the jobs to queue (the scope and depth
//! rules of [`crate::source`], the locker rules of [`crate::locker`]).
//! Pure functions of (source, job, response), so they are tested without a
//! network.

use echotrace_engine::sighting::{ItemContent, SightingItem};
use echotrace_store::FrontierJob;
use serde_json::json;

use crate::feed::parse_feed;
use crate::fetch::Fetched;
use crate::html::{extract, HtmlLimits, LinkKind};
use crate::locker::{LockerOutcome, LockerTable};
use crate::platform::Platforms;
use crate::source::{SourceConfig, SourceKind};

/// Everything the collector knows about a source during a run.
#[derive(Clone, Debug)]
pub struct SourceCtx {
    pub id: i64,
    pub name: String,
    pub kind: SourceKind,
    pub config: SourceConfig,
    pub lockers: LockerTable,
}

impl SourceCtx {
    pub fn new(id: i64, name: &str, kind: SourceKind, config: SourceConfig) -> Self {
        let lockers = LockerTable::with_rules(&config.locker_rules);
        SourceCtx {
            id,
            name: name.to_string(),
            kind,
            config,
            lockers,
        }
    }

    pub fn max_links(&self, limits: &HtmlLimits) -> usize {
        self.config
            .max_links_per_page
            .map(|n| n as usize)
            .unwrap_or(limits.max_links)
    }
}

/// A job to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub url: String,
    pub kind: &'static str,
    pub depth: i64,
    pub seed_host: String,
}

/// What one response yielded.
#[derive(Debug)]
pub struct Processed {
    /// The job's own item (parent: the job's parent sighting).
    pub main: SightingItem,
    /// Outlinks recorded without fetching (parent: `main`).
    pub outlinks: Vec<SightingItem>,
    /// Jobs to queue (parent: `main`).
    pub children: Vec<Child>,
    /// A per-item note worth counting as an error (links over the cap, a
    /// page that did not parse), kind and message.
    pub warning: Option<(&'static str, String)>,
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// An item for `url` with no payload (an outlink, a failed fetch).
pub fn bare_item(
    src: &SourceCtx,
    platforms: &Platforms,
    url: &str,
    parent: Option<i64>,
    seen_at: i64,
    attributes: Option<serde_json::Value>,
) -> SightingItem {
    SightingItem {
        source_id: Some(src.id),
        source_name: src.name.clone(),
        url: url.to_string(),
        platform: host_of(url)
            .map(|h| platforms.platform_of(&h))
            .unwrap_or_default(),
        parent_id: parent,
        seen_at,
        content: ItemContent::None,
        attributes,
        warc: None,
        robust: src.config.robust,
    }
}

fn is_html(f: &Fetched) -> bool {
    match f.content_type().as_deref() {
        Some("text/html") | Some("application/xhtml+xml") => true,
        Some(t) if !t.is_empty() && t != "text/plain" && t != "application/octet-stream" => false,
        _ => {
            let head = &f.body[..f.body.len().min(512)];
            let s = String::from_utf8_lossy(head).to_ascii_lowercase();
            let s = s.trim_start_matches('\u{feff}').trim_start();
            s.starts_with("<!doctype html") || s.starts_with("<html") || s.starts_with("<head")
        }
    }
}

fn charset(f: &Fetched) -> Option<String> {
    let ct = f.header("content-type")?;
    ct.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// Turn a successful (2xx) or locker-relevant response into items and jobs.
pub fn process_response(
    src: &SourceCtx,
    platforms: &Platforms,
    job: &FrontierJob,
    f: &Fetched,
    limits: &HtmlLimits,
) -> Processed {
    let final_host = host_of(&f.final_url).unwrap_or_else(|| job.host.clone());
    let item = |content: ItemContent, attributes: Option<serde_json::Value>| SightingItem {
        source_id: Some(src.id),
        source_name: src.name.clone(),
        url: f.final_url.clone(),
        platform: platforms.platform_of(&final_host),
        parent_id: job.parent_sighting_id,
        seen_at: f.fetched_at,
        content,
        attributes,
        warc: None,
        robust: src.config.robust,
    };
    let mut base_attrs = serde_json::Map::new();
    base_attrs.insert("http_status".into(), f.status.into());
    if f.final_url != job.url {
        base_attrs.insert("requested_url".into(), job.url.clone().into());
    }
    if let Some(ct) = f.content_type() {
        base_attrs.insert("content_type".into(), ct.into());
    }
    let Ok(base) = url::Url::parse(&f.final_url) else {
        return Processed {
            main: item(ItemContent::Bytes(f.body.clone()), Some(base_attrs.into())),
            outlinks: Vec::new(),
            children: Vec::new(),
            warning: None,
        };
    };
    let max_depth = i64::from(src.config.depth);
    let locker_rule = src
        .lockers
        .rule_for(&final_host, base.path(), &src.config.locker_hosts)
        .or_else(|| {
            (job.kind == "locker")
                .then(|| src.lockers.rules().last())
                .flatten()
        });

    // Feeds.
    if job.kind == "feed" {
        let mut outlinks = Vec::new();
        let mut children = Vec::new();
        let max = src.max_links(limits);
        return match parse_feed(&f.body, &base, max) {
            Ok(feed) => {
                for l in &feed.links {
                    let host = host_of(&l.url).unwrap_or_default();
                    let fetchable = src.config.in_scope(&host, &job.seed_host, &src.lockers);
                    if fetchable && l.media {
                        children.push(Child {
                            url: l.url.clone(),
                            kind: "file",
                            depth: job.depth,
                            seed_host: job.seed_host.clone(),
                        });
                    } else if fetchable && job.depth < max_depth {
                        children.push(Child {
                            url: l.url.clone(),
                            kind: child_kind(src, &host, base.path()),
                            depth: job.depth + 1,
                            seed_host: job.seed_host.clone(),
                        });
                    } else {
                        outlinks.push(bare_item(
                            src,
                            platforms,
                            &l.url,
                            None,
                            l.published_ms.unwrap_or(f.fetched_at),
                            None,
                        ));
                    }
                }
                base_attrs.insert("feed_entries".into(), feed.entries.into());
                let warning = (feed.links_dropped > 0).then(|| {
                    (
                        "too_many_links",
                        format!(
                            "{} feed links over the cap were dropped",
                            feed.links_dropped
                        ),
                    )
                });
                let text = feed
                    .links
                    .iter()
                    .filter_map(|l| l.entry_title.clone())
                    .chain(feed.title.clone())
                    .collect::<Vec<_>>()
                    .join("\n");
                Processed {
                    main: item(
                        ItemContent::Text {
                            text,
                            raw: f.body.clone(),
                            media_type: "feed".into(),
                        },
                        Some(base_attrs.into()),
                    ),
                    outlinks,
                    children,
                    warning,
                }
            }
            Err(e) => {
                base_attrs.insert("feed_error".into(), e.to_string().into());
                Processed {
                    main: item(ItemContent::Bytes(f.body.clone()), Some(base_attrs.into())),
                    outlinks,
                    children,
                    warning: Some(("feed_parse", e.to_string())),
                }
            }
        };
    }

    // Files (and anything that is not HTML).
    if job.kind == "file" || !is_html(f) {
        return Processed {
            main: item(ItemContent::Bytes(f.body.clone()), Some(base_attrs.into())),
            outlinks: Vec::new(),
            children: Vec::new(),
            warning: None,
        };
    }

    // HTML pages, locker landing pages among them.
    let probes = locker_rule.map(LockerTable::probes).unwrap_or_default();
    let page_limits = HtmlLimits {
        max_links: src.max_links(limits),
        ..limits.clone()
    };
    let page = match extract(&f.body, &base, charset(f).as_deref(), &page_limits, &probes) {
        Ok(p) => p,
        Err(e) => {
            base_attrs.insert("html_error".into(), e.to_string().into());
            return Processed {
                main: item(ItemContent::Bytes(f.body.clone()), Some(base_attrs.into())),
                outlinks: Vec::new(),
                children: Vec::new(),
                warning: Some(("html_parse", e.to_string())),
            };
        }
    };
    if let Some(t) = &page.title {
        base_attrs.insert("title".into(), t.clone().into());
    }
    let mut outlinks = Vec::new();
    let mut children = Vec::new();
    let mut main_content = ItemContent::Text {
        text: page.text.clone(),
        raw: f.body.clone(),
        media_type: "html".into(),
    };
    if let Some(rule) = locker_rule {
        match LockerTable::resolve(rule, f.status, &page) {
            LockerOutcome::Removed(why) => {
                base_attrs.insert(
                    "locker".into(),
                    json!({"rule": rule.name, "state": "removed", "reason": why}),
                );
                return Processed {
                    main: item(ItemContent::None, Some(base_attrs.into())),
                    outlinks,
                    children,
                    warning: None,
                };
            }
            LockerOutcome::Files(files) => {
                base_attrs.insert(
                    "locker".into(),
                    json!({"rule": rule.name, "state": "resolved", "files": files.len()}),
                );
                for u in files {
                    let host = host_of(&u).unwrap_or_default();
                    if src.config.in_scope(&host, &job.seed_host, &src.lockers)
                        || host == final_host
                    {
                        children.push(Child {
                            url: u,
                            kind: "file",
                            depth: job.depth,
                            seed_host: job.seed_host.clone(),
                        });
                    } else {
                        outlinks.push(bare_item(src, platforms, &u, None, f.fetched_at, None));
                    }
                }
            }
            LockerOutcome::Paste(text) => {
                base_attrs.insert(
                    "locker".into(),
                    json!({"rule": rule.name, "state": "paste"}),
                );
                main_content = ItemContent::Text {
                    raw: bytes::Bytes::from(text.clone().into_bytes()),
                    text,
                    media_type: "text".into(),
                };
            }
            LockerOutcome::Unresolved => {}
        }
    }
    if !(200..300).contains(&f.status) {
        // A non-locker error page: nothing to expand.
        return Processed {
            main: item(ItemContent::None, Some(base_attrs.into())),
            outlinks: Vec::new(),
            children: Vec::new(),
            warning: None,
        };
    }
    let already: std::collections::HashSet<String> =
        children.iter().map(|c| c.url.clone()).collect();
    for l in &page.links {
        if already.contains(&l.url) {
            continue;
        }
        let host = host_of(&l.url).unwrap_or_default();
        let fetchable = src.config.in_scope(&host, &job.seed_host, &src.lockers);
        match l.kind {
            LinkKind::Media if fetchable => children.push(Child {
                url: l.url.clone(),
                kind: "file",
                depth: job.depth,
                seed_host: job.seed_host.clone(),
            }),
            LinkKind::Anchor | LinkKind::Frame | LinkKind::Refresh
                if fetchable && job.depth < max_depth =>
            {
                let path = url::Url::parse(&l.url)
                    .map(|u| u.path().to_string())
                    .unwrap_or_default();
                children.push(Child {
                    url: l.url.clone(),
                    kind: child_kind(src, &host, &path),
                    depth: job.depth + 1,
                    seed_host: job.seed_host.clone(),
                })
            }
            _ => outlinks.push(bare_item(src, platforms, &l.url, None, f.fetched_at, None)),
        }
    }
    if page.text_truncated {
        base_attrs.insert("text_truncated".into(), true.into());
    }
    let warning = (page.links_dropped > 0).then(|| {
        base_attrs.insert("links_dropped".into(), page.links_dropped.into());
        (
            "too_many_links",
            format!(
                "{} links over the cap of {} were dropped",
                page.links_dropped, page_limits.max_links
            ),
        )
    });
    Processed {
        main: item(main_content, Some(base_attrs.into())),
        outlinks,
        children,
        warning,
    }
}

/// A followed link is a locker landing page when a locker rule covers its
/// host, else a page.
fn child_kind(src: &SourceCtx, host: &str, path: &str) -> &'static str {
    if src
        .lockers
        .rule_for(host, path, &src.config.locker_hosts)
        .is_some()
    {
        "locker"
    } else {
        "page"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(url: &str, kind: &str, depth: i64) -> FrontierJob {
        let host = host_of(url).unwrap();
        FrontierJob {
            id: 1,
            source_id: 1,
            url: url.into(),
            url_sha256: String::new(),
            host: host.clone(),
            kind: kind.into(),
            depth,
            seed_host: "seed.test".into(),
            parent_sighting_id: Some(7),
            state: "leased".into(),
            attempts: 1,
            not_before: 0,
            lease_holder: None,
            lease_expires_at: None,
            http_status: None,
            error_kind: None,
            error: None,
            sighting_id: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn fetched(url: &str, status: u16, ct: &str, body: &str) -> Fetched {
        Fetched {
            url: url.into(),
            final_url: url.into(),
            status,
            headers: vec![("content-type".into(), ct.into())],
            body: bytes::Bytes::from(body.to_string()),
            sha256: String::new(),
            remote_ip: None,
            fetched_at: 1000,
            elapsed: Duration::ZERO,
            redirects: Vec::new(),
            politeness_wait: Duration::ZERO,
            politeness_waits: 0,
        }
    }

    fn src() -> SourceCtx {
        SourceCtx::new(
            1,
            "s",
            SourceKind::Feed,
            SourceConfig {
                urls: vec!["http://seed.test/feed".into()],
                locker_hosts: vec!["lock.test".into()],
                depth: 2,
                ..SourceConfig::default()
            },
        )
    }

    #[test]
    fn page_links_follow_the_scope_and_depth_rules() {
        let html = r#"<p>words</p><a href="/p2">in</a><a href="http://lock.test/f/1">locker</a>
            <a href="http://far.test/x">out</a><img src="/i.png"><img src="http://far.test/i.png">"#;
        let p = process_response(
            &src(),
            &Platforms::builtin(),
            &job("http://seed.test/p1", "page", 1),
            &fetched("http://seed.test/p1", 200, "text/html", html),
            &HtmlLimits::default(),
        );
        let kids: Vec<(&str, &str, i64)> = p
            .children
            .iter()
            .map(|c| (c.url.as_str(), c.kind, c.depth))
            .collect();
        assert_eq!(
            kids,
            vec![
                ("http://seed.test/p2", "page", 2),
                ("http://lock.test/f/1", "locker", 2),
                ("http://seed.test/i.png", "file", 1),
            ]
        );
        let outs: Vec<&str> = p.outlinks.iter().map(|o| o.url.as_str()).collect();
        assert_eq!(outs, vec!["http://far.test/x", "http://far.test/i.png"]);
        assert_eq!(p.main.parent_id, Some(7));
        // At the depth limit, anchors become outlinks; media still fetched.
        let p = process_response(
            &src(),
            &Platforms::builtin(),
            &job("http://seed.test/p1", "page", 2),
            &fetched("http://seed.test/p1", 200, "text/html", html),
            &HtmlLimits::default(),
        );
        assert!(p.children.iter().all(|c| c.kind == "file"));
        assert_eq!(p.outlinks.len(), 4);
    }

    #[test]
    fn lockers_resolve_or_report_removed() {
        let p = process_response(
            &src(),
            &Platforms::builtin(),
            &job("http://lock.test/f/1", "locker", 2),
            &fetched(
                "http://lock.test/f/1",
                200,
                "text/html",
                r#"<a class="download" href="/dl/1.jpg">get</a>"#,
            ),
            &HtmlLimits::default(),
        );
        assert_eq!(
            p.children,
            vec![Child {
                url: "http://lock.test/dl/1.jpg".into(),
                kind: "file",
                depth: 2,
                seed_host: "seed.test".into()
            }]
        );
        let p = process_response(
            &src(),
            &Platforms::builtin(),
            &job("http://lock.test/f/2", "locker", 2),
            &fetched(
                "http://lock.test/f/2",
                200,
                "text/html",
                "<p>This file has been removed.</p>",
            ),
            &HtmlLimits::default(),
        );
        assert!(matches!(p.main.content, ItemContent::None));
        let a = p.main.attributes.unwrap();
        assert_eq!(a["locker"]["state"], "removed");
    }

    #[test]
    fn feeds_queue_entries() {
        let rss = r#"<rss version="2.0"><channel><title>t</title><item><title>a</title><link>http://seed.test/a</link></item>
            <item><title>b</title><link>http://far.test/b</link></item></channel></rss>"#;
        let p = process_response(
            &src(),
            &Platforms::builtin(),
            &job("http://seed.test/feed", "feed", 0),
            &fetched("http://seed.test/feed", 200, "application/rss+xml", rss),
            &HtmlLimits::default(),
        );
        assert_eq!(p.children.len(), 1);
        assert_eq!(p.children[0].depth, 1);
        assert_eq!(p.outlinks.len(), 1);
    }
}
