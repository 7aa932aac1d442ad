//! File-locker and paste-site resolvers, driven by a small rule table.
//!
//! A rule says, for the hosts it covers, how to get from a landing page to
//! the file (CSS selectors whose attribute holds the download link), where
//! a paste's text is (a selector), and what the host's "file removed" page
//! looks like (statuses and phrases). The built-in [`LockerTable::builtin`]
//! holds generic rules that fit common locker and paste layouts; an
//! operator adds host-specific rules per source (`locker_rules` in the
//! source config, the same JSON shape as [`LockerRule`]). Rules with no
//! `hosts` apply to every host the source lists in `locker_hosts`; rules
//! with hosts apply to those hosts (and put them in scope). The first
//! matching rule wins, source rules before built-in ones.
//!
//! Spread tracking uses [`LockerTable::removed`] to tell a "file removed"
//! page served with 200 from a live copy.

use serde::{Deserialize, Serialize};

use crate::html::{PageExtract, Probe};
use crate::source::host_matches;

/// Where a file link is: a selector and the attribute holding the URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSelector {
    pub selector: String,
    #[serde(default = "default_attr")]
    pub attr: String,
}

fn default_attr() -> String {
    "href".into()
}

/// One resolver rule (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockerRule {
    pub name: String,
    /// Host patterns (`files.example`, `*.example`); empty: the source's
    /// `locker_hosts`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only landing pages whose path starts with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Download links, tried in order.
    #[serde(default)]
    pub file_links: Vec<LinkSelector>,
    /// The element holding a paste's text.
    #[serde(default)]
    pub paste_text: Option<String>,
    /// Statuses that mean "removed".
    #[serde(default)]
    pub removed_status: Vec<u16>,
    /// Phrases (case-insensitive) in the page's title or text that mean
    /// "removed".
    #[serde(default)]
    pub removed_text: Vec<String>,
}

/// What a landing page resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockerOutcome {
    /// The host's "file removed" page; the phrase or status that said so.
    Removed(String),
    /// Download links (absolute).
    Files(Vec<String>),
    /// A paste's text.
    Paste(String),
    /// The rule found nothing: read it as an ordinary page.
    Unresolved,
}

/// Rules, in priority order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockerTable {
    rules: Vec<LockerRule>,
}

impl LockerTable {
    /// The generic rules shipped with echotrace.
    pub fn builtin() -> Self {
        let removed_common = [
            "file not found",
            "file has been removed",
            "file was removed",
            "file has been deleted",
            "file was deleted",
            "file does not exist",
            "file is no longer available",
            "this file is no longer available",
            "has been removed for violation",
            "removed due to a copyright",
            "content has been removed",
            "has been taken down",
            "paste not found",
            "paste has been removed",
            "this paste has been deleted",
            "paste does not exist",
            "this paste has expired",
        ];
        LockerTable {
            rules: vec![LockerRule {
                name: "generic".into(),
                hosts: Vec::new(),
                path_prefix: None,
                file_links: [
                    ("a[download][href]", "href"),
                    ("a#download[href]", "href"),
                    ("a.download[href]", "href"),
                    ("a[id*=download][href]", "href"),
                    ("a[class*=download][href]", "href"),
                    ("[data-download-url]", "data-download-url"),
                    ("a[href*=\"/download/\"]", "href"),
                    ("a[href*=\"/raw/\"]", "href"),
                ]
                .into_iter()
                .map(|(s, a)| LinkSelector {
                    selector: s.into(),
                    attr: a.into(),
                })
                .collect(),
                paste_text: Some(
                    "pre.paste, textarea.paste, #paste, .paste-content, pre#paste".into(),
                ),
                removed_status: vec![404, 410, 451],
                removed_text: removed_common.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    /// Source rules first, then the built-in ones.
    pub fn with_rules(source_rules: &[LockerRule]) -> Self {
        let mut rules = source_rules.to_vec();
        rules.extend(LockerTable::builtin().rules);
        LockerTable { rules }
    }

    pub fn rules(&self) -> &[LockerRule] {
        &self.rules
    }

    /// Check a rule's selectors and shape (for source validation).
    pub fn validate_rule(rule: &LockerRule) -> Result<(), String> {
        if rule.name.trim().is_empty() {
            return Err("a locker rule needs a name".into());
        }
        for s in rule
            .file_links
            .iter()
            .map(|l| l.selector.as_str())
            .chain(rule.paste_text.as_deref())
        {
            s.parse::<lol_html::Selector>()
                .map_err(|e| format!("rule {:?}: invalid CSS selector {s:?}: {e}", rule.name))?;
        }
        for h in &rule.hosts {
            crate::source::validate_host_pattern(h)
                .map_err(|e| format!("rule {:?}: {e}", rule.name))?;
        }
        Ok(())
    }

    /// The rule for a landing page on `host` at `path`, given the source's
    /// locker hosts.
    pub fn rule_for(&self, host: &str, path: &str, locker_hosts: &[String]) -> Option<&LockerRule> {
        self.rules.iter().find(|r| {
            let host_ok = if r.hosts.is_empty() {
                locker_hosts.iter().any(|p| host_matches(p, host))
            } else {
                r.hosts.iter().any(|p| host_matches(p, host))
            };
            host_ok && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
        })
    }

    /// Hosts named by rules (in scope for crawling).
    pub fn rule_hosts(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.hosts.iter().map(String::as_str))
    }

    /// The probes a page must be extracted with for `rule`.
    pub fn probes(rule: &LockerRule) -> Vec<Probe> {
        let mut p: Vec<Probe> = rule
            .file_links
            .iter()
            .map(|l| Probe {
                selector: l.selector.clone(),
                attr: Some(l.attr.clone()),
            })
            .collect();
        if let Some(sel) = &rule.paste_text {
            p.push(Probe {
                selector: sel.clone(),
                attr: None,
            });
        }
        p
    }

    /// The "removed" verdict of `rule` for a page that answered `status`
    /// with this title and text.
    pub fn removed(rule: &LockerRule, status: u16, title: &str, text: &str) -> Option<String> {
        if rule.removed_status.contains(&status) {
            return Some(format!("HTTP {status}"));
        }
        let hay = format!("{} {}", title, text).to_lowercase();
        rule.removed_text
            .iter()
            .find(|p| !p.is_empty() && hay.contains(&p.to_lowercase()))
            .map(|p| format!("page says {p:?}"))
    }

    /// Is this response a "file removed" notice of the locker rule covering
    /// `url`? For liveness checks (spread tracking): a removed page is often
    /// served with 200. `locker_hosts` are the source's; rules with their
    /// own hosts apply regardless. Returns the reason (status or phrase).
    pub fn removed_notice(
        &self,
        url: &str,
        status: u16,
        body: &[u8],
        locker_hosts: &[String],
    ) -> Option<String> {
        let u = url::Url::parse(url).ok()?;
        let rule = self.rule_for(u.host_str()?, u.path(), locker_hosts)?;
        let page = crate::html::extract(body, &u, None, &crate::html::HtmlLimits::default(), &[])
            .unwrap_or_default();
        LockerTable::removed(
            rule,
            status,
            page.title.as_deref().unwrap_or(""),
            &page.text,
        )
    }

    /// Resolve a landing page extracted with [`LockerTable::probes`].
    pub fn resolve(rule: &LockerRule, status: u16, page: &PageExtract) -> LockerOutcome {
        if let Some(why) = LockerTable::removed(
            rule,
            status,
            page.title.as_deref().unwrap_or(""),
            &page.text,
        ) {
            return LockerOutcome::Removed(why);
        }
        let n_links = rule.file_links.len();
        let mut files: Vec<String> = Vec::new();
        for values in page.probes.iter().take(n_links) {
            for v in values {
                if (v.starts_with("http://") || v.starts_with("https://")) && !files.contains(v) {
                    files.push(v.clone());
                }
            }
            if !files.is_empty() {
                break;
            }
        }
        if !files.is_empty() {
            return LockerOutcome::Files(files);
        }
        if rule.paste_text.is_some() {
            if let Some(text) = page.probes.get(n_links).and_then(|v| v.first()) {
                if !text.trim().is_empty() {
                    return LockerOutcome::Paste(text.clone());
                }
            }
        }
        LockerOutcome::Unresolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::{extract, HtmlLimits};

    fn page(html: &str, rule: &LockerRule) -> PageExtract {
        let base = url::Url::parse("http://locker.test/f/abc").unwrap();
        extract(
            html.as_bytes(),
            &base,
            None,
            &HtmlLimits::default(),
            &LockerTable::probes(rule),
        )
        .unwrap()
    }

    #[test]
    fn generic_rules_resolve_files_pastes_and_removals() {
        let t = LockerTable::builtin();
        let hosts = vec!["locker.test".to_string()];
        assert!(t.rule_for("other.test", "/", &hosts).is_none());
        let rule = t.rule_for("locker.test", "/f/abc", &hosts).unwrap();
        let p = page(
            r#"<h1>abc.zip</h1><a class="btn download-button" href="/dl/abc.zip">Download</a>"#,
            rule,
        );
        assert_eq!(
            LockerTable::resolve(rule, 200, &p),
            LockerOutcome::Files(vec!["http://locker.test/dl/abc.zip".into()])
        );
        let p = page(
            "<title>Gone</title><p>Sorry, this file has been REMOVED for good.</p>",
            rule,
        );
        assert!(matches!(
            LockerTable::resolve(rule, 200, &p),
            LockerOutcome::Removed(_)
        ));
        let p = page("<p>whatever</p>", rule);
        assert!(matches!(
            LockerTable::resolve(rule, 410, &p),
            LockerOutcome::Removed(_)
        ));
        let p = page("<pre class=paste>some pasted words</pre>", rule);
        assert_eq!(
            LockerTable::resolve(rule, 200, &p),
            LockerOutcome::Paste("some pasted words".into())
        );
        let p = page("<p>nothing here</p>", rule);
        assert_eq!(
            LockerTable::resolve(rule, 200, &p),
            LockerOutcome::Unresolved
        );
    }

    #[test]
    fn source_rules_come_first_and_are_validated() {
        let custom: LockerRule = serde_json::from_str(
            r#"{"name": "myhost", "hosts": ["*.files.test"], "file_links": [{"selector": "a.get"}], "removed_text": ["vanished"]}"#,
        )
        .unwrap();
        assert!(LockerTable::validate_rule(&custom).is_ok());
        let t = LockerTable::with_rules(&[custom]);
        assert_eq!(t.rule_for("a.files.test", "/", &[]).unwrap().name, "myhost");
        let bad: LockerRule =
            serde_json::from_str(r#"{"name": "x", "file_links": [{"selector": "a["}]}"#).unwrap();
        assert!(LockerTable::validate_rule(&bad)
            .unwrap_err()
            .contains("invalid CSS selector"));
        assert!(serde_json::from_str::<LockerRule>(r#"{"name": "x", "typo": 1}"#).is_err());
    }
}
