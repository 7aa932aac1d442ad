//! Host → platform: which service a sighting's host belongs to, so
//! sightings can be grouped and notices addressed per platform.
//!
//! A built-in table covers well-known services; the operator extends or
//! overrides it (`host_platforms`, migration 0040; `echotrace collect
//! add-platform`, `POST /v1/platforms`). A host matches an entry when it is
//! the entry's host or a subdomain of it; the longest match wins, operator
//! entries before built-in ones. Unknown hosts get `''`.

use std::collections::HashMap;

use echotrace_store::Store;

/// Built-in entries: (host, platform).
pub const BUILTIN: &[(&str, &str)] = &[
    ("t.me", "telegram"),
    ("telegram.me", "telegram"),
    ("telegram.org", "telegram"),
    ("telegra.ph", "telegraph"),
    ("archive.org", "internet-archive"),
    ("web.archive.org", "internet-archive"),
    ("archive.ph", "archive-today"),
    ("archive.today", "archive-today"),
    ("youtube.com", "youtube"),
    ("youtu.be", "youtube"),
    ("x.com", "x"),
    ("twitter.com", "x"),
    ("facebook.com", "facebook"),
    ("fb.watch", "facebook"),
    ("instagram.com", "instagram"),
    ("tiktok.com", "tiktok"),
    ("vk.com", "vk"),
    ("ok.ru", "odnoklassniki"),
    ("rumble.com", "rumble"),
    ("odysee.com", "odysee"),
    ("bitchute.com", "bitchute"),
    ("dailymotion.com", "dailymotion"),
    ("vimeo.com", "vimeo"),
    ("drive.google.com", "google-drive"),
    ("docs.google.com", "google-docs"),
    ("dropbox.com", "dropbox"),
    ("mega.nz", "mega"),
    ("mediafire.com", "mediafire"),
    ("pastebin.com", "pastebin"),
    ("justpaste.it", "justpasteit"),
    ("files.catbox.moe", "catbox"),
    ("gofile.io", "gofile"),
    ("pixeldrain.com", "pixeldrain"),
    ("anonfiles.com", "anonfiles"),
    ("github.com", "github"),
    ("reddit.com", "reddit"),
    ("discord.com", "discord"),
    ("discord.gg", "discord"),
    ("element.io", "element"),
    ("matrix.to", "matrix"),
    ("rocket.chat", "rocketchat"),
    ("chirpwire.net", "chirpwire"),
    ("gab.com", "gab"),
    ("gettr.com", "gettr"),
    ("truthsocial.com", "truth-social"),
    ("mastodon.social", "mastodon"),
    ("bsky.app", "bluesky"),
    ("soundcloud.com", "soundcloud"),
    ("wordpress.com", "wordpress"),
    ("blogspot.com", "blogger"),
    ("medium.com", "medium"),
];

/// The host → platform lookup of one run.
#[derive(Clone, Debug, Default)]
pub struct Platforms {
    operator: HashMap<String, String>,
    builtin: HashMap<&'static str, &'static str>,
}

impl Platforms {
    /// Built-in entries only.
    pub fn builtin() -> Self {
        Platforms {
            operator: HashMap::new(),
            builtin: BUILTIN.iter().copied().collect(),
        }
    }

    /// Built-in entries plus the operator's, from the store.
    pub async fn load(store: &Store) -> Result<Self, echotrace_store::StoreError> {
        let mut p = Platforms::builtin();
        for (h, name) in store.host_platforms().await? {
            p.operator.insert(h.to_ascii_lowercase(), name);
        }
        Ok(p)
    }

    /// The platform of `host` ('' when unknown).
    pub fn platform_of(&self, host: &str) -> String {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut h = host.as_str();
        loop {
            if let Some(p) = self.operator.get(h) {
                return p.clone();
            }
            if let Some(p) = self.builtin.get(h) {
                return (*p).to_string();
            }
            match h.find('.') {
                Some(i) => h = &h[i + 1..],
                None => return String::new(),
            }
        }
    }
}

/// Check an operator entry: a host name and a short platform name.
pub fn validate_entry(host: &str, platform: &str) -> Result<(), String> {
    crate::source::validate_host_pattern(host)
        .map_err(|e| format!("host: {e}"))
        .and_then(|()| {
            if host.starts_with("*.") {
                Err("host: give the domain (subdomains match it)".into())
            } else {
                Ok(())
            }
        })?;
    let ok = !platform.is_empty()
        && platform.len() <= 64
        && platform
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err("platform: 1-64 characters of A-Z a-z 0-9 - _ .".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_suffix_and_operator_first() {
        let mut p = Platforms::builtin();
        assert_eq!(p.platform_of("t.me"), "telegram");
        assert_eq!(p.platform_of("WWW.YouTube.com."), "youtube");
        assert_eq!(p.platform_of("web.archive.org"), "internet-archive");
        assert_eq!(p.platform_of("unknown.test"), "");
        p.operator.insert("lock.test".into(), "demo-locker".into());
        p.operator
            .insert("youtube.com".into(), "yt-override".into());
        assert_eq!(p.platform_of("a.lock.test"), "demo-locker");
        assert_eq!(p.platform_of("m.youtube.com"), "yt-override");
        assert!(validate_entry("lock.test", "demo-locker").is_ok());
        assert!(validate_entry("*.lock.test", "x").is_err());
        assert!(validate_entry("lock.test", "bad name").is_err());
    }
}
