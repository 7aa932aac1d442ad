//! `fb_threatexchange`: Meta's ThreatExchange Graph API.
//!
//! Wire format (python-threatexchange `clients/fb_threatexchange/api.py`,
//! `impl/fb_threatexchange_api.py`):
//! * `GET {base}/{privacy_group}/threat_updates/?access_token=…&limit=…
//!   &fields=indicator,type,last_updated,should_delete,descriptors{id,
//!   reactions,owner{id},tags,status}[&start_time=…]`, answered
//!   `{"data": [...], "paging": {"next": url}}`; `next` is followed as is
//!   (same origin only).
//! * An update is a tombstone when `should_delete` is true or it has no
//!   `descriptors` (ThreatExchange issue #834), or when no descriptor is
//!   visible (pytx does the same).
//! * Each descriptor is an opinion of its owner (`status` MALICIOUS →
//!   positive, NON_MALICIOUS → negative, else seed; `tags` as a list or
//!   `{"data": [{"text"}]}`); reactions HELPFUL → positive and
//!   DISAGREE_WITH_TAGS → negative for owners without a descriptor. Owner =
//!   our app id (the token's prefix) → `is_mine`. Tags become labels.
//! * Types: HASH_PDQ → pdq, HASH_MD5 and HASH_VIDEO_MD5 → md5, HASH_SHA256
//!   → sha256, URI → url, TEXT_STRING → text_minhash (the text is signed
//!   here; only the signature is kept). Others are counted as unsupported.
//! * Checkpoint `{update_time, last_fetch_time}`; stale after 85 days
//!   (deletions are kept upstream for 90), then a full fetch.
//! * Opinions: `POST {base}/{descriptor_id}/?access_token=…` with
//!   `reactions=HELPFUL` (confirm) or `reactions=NOT_HELPFUL` (reject),
//!   for every descriptor of the record that is not ours.

use std::sync::Arc;

use echotrace_engine::exchange::{Opinion, OpinionCategory, OpinionOut, RecordLabels};
use echotrace_engine::BoxFuture;
use echotrace_signals::signal::SignalType;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    each_record, id_string, page_json, record, time_ms, Adapter, ApiInfo, FetchError, FieldSpec,
    Page, Parsed,
};
use crate::net::{Body, Http, NetError};

pub const API: &str = "fb_threatexchange";

/// The fields pytx asks `threat_updates` for.
pub const FIELDS: &str =
    "indicator,type,last_updated,should_delete,descriptors{id,reactions,owner{id},tags,status}";

/// A checkpoint older than this starts a full fetch.
pub const STALE_AFTER_MS: i64 = 85 * 24 * 3_600_000;

pub const INFO: ApiInfo = ApiInfo {
    name: API,
    title: "Meta ThreatExchange (threat_updates)",
    write_back: true,
    needs_credentials: true,
    config_fields: &[
        FieldSpec {
            name: "privacy_group",
            kind: "int",
            required: true,
            default: None,
            help: "ThreatPrivacyGroup id of the collaboration",
            choices: None,
        },
        FieldSpec {
            name: "base_url",
            kind: "string",
            required: false,
            default: Some("https://graph.facebook.com/v21.0"),
            help: "Graph API base URL",
            choices: None,
        },
        FieldSpec {
            name: "page_size",
            kind: "int",
            required: false,
            default: Some("500"),
            help: "Updates per page (limit)",
            choices: None,
        },
    ],
    credential_fields: &[FieldSpec {
        name: "api_token",
        kind: "string",
        required: true,
        default: None,
        help: "App access token `<app id>|<secret>`",
        choices: None,
    }],
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeConfig {
    #[serde(default = "v1")]
    pub version: u32,
    pub privacy_group: i64,
    #[serde(default = "default_base")]
    pub base_url: String,
    #[serde(default = "default_page")]
    pub page_size: u32,
}

fn v1() -> u32 {
    1
}
fn default_base() -> String {
    "https://graph.facebook.com/v21.0".into()
}
fn default_page() -> u32 {
    500
}

impl TeConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err("version: expected 1".into());
        }
        if self.privacy_group <= 0 {
            return Err("privacy_group: must be a positive id".into());
        }
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err("base_url: must be http(s)".into());
        }
        if !(1..=5_000).contains(&self.page_size) {
            return Err("page_size: must be 1-5000".into());
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeCredentials {
    pub api_token: String,
}

impl TeCredentials {
    pub(crate) fn check(&self) -> Result<(), String> {
        self.app_id()
            .map(|_| ())
            .ok_or_else(|| "api_token: expected `<app id>|<secret>`".into())
    }

    /// The app id: the token's part before `|`.
    fn app_id(&self) -> Option<String> {
        let (id, secret) = self.api_token.split_once('|')?;
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !secret.is_empty())
            .then(|| id.to_string())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TeCheckpoint {
    v: u32,
    /// Highest `last_updated` applied (seconds).
    update_time: i64,
    /// When the last fetch round started (seconds).
    last_fetch_time: i64,
}

#[derive(Deserialize)]
struct UpdatesPage {
    #[serde(default)]
    data: Vec<Box<RawValue>>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    id: serde_json::Value,
    indicator: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    last_updated: serde_json::Value,
    #[serde(default)]
    should_delete: bool,
    #[serde(default)]
    descriptors: Option<Descriptors>,
}

#[derive(Deserialize)]
struct Descriptors {
    #[serde(default)]
    data: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    id: serde_json::Value,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Option<Tags>,
    #[serde(default)]
    reactions: Vec<Reaction>,
}

#[derive(Deserialize)]
struct Owner {
    id: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Tags {
    List(Vec<String>),
    Data { data: Vec<TagText> },
}

#[derive(Deserialize)]
struct TagText {
    text: String,
}

#[derive(Deserialize)]
struct Reaction {
    key: String,
    value: String,
}

/// ThreatExchange type → (echotrace type, value). TEXT_STRING is signed.
fn convert(kind: &str, indicator: &str) -> Option<(SignalType, String)> {
    match kind {
        "HASH_PDQ" => Some((SignalType::Pdq, indicator.to_string())),
        "HASH_MD5" | "HASH_VIDEO_MD5" => Some((SignalType::Md5, indicator.to_string())),
        "HASH_SHA256" => Some((SignalType::Sha256, indicator.to_string())),
        "URI" => Some((SignalType::Url, indicator.to_string())),
        "TEXT_STRING" => Some((
            SignalType::TextMinhash,
            echotrace_signals::text::text_signature(indicator).to_string(),
        )),
        _ => None,
    }
}

/// pytx's opinion rules for one update's descriptors.
fn opinions_of(descriptors: &[Descriptor], my_app: &str) -> (Vec<Opinion>, Vec<String>) {
    let mut explicit: Vec<Opinion> = Vec::new();
    let mut implicit: Vec<(String, OpinionCategory)> = Vec::new();
    let mut tags_all: Vec<String> = Vec::new();
    for d in descriptors {
        let Some(owner) = d.owner.as_ref().map(|o| id_string(&o.id)) else {
            continue; // ThreatExchange visibility bug: skip, as pytx does
        };
        let category = match d.status.as_deref() {
            Some("MALICIOUS") => OpinionCategory::Positive,
            Some("NON_MALICIOUS") => OpinionCategory::Negative,
            _ => OpinionCategory::Seed,
        };
        let mut tags: Vec<String> = match &d.tags {
            Some(Tags::List(l)) => l.clone(),
            Some(Tags::Data { data }) => data.iter().map(|t| t.text.clone()).collect(),
            None => Vec::new(),
        };
        tags.sort();
        tags.dedup();
        tags_all.extend(tags.iter().cloned());
        explicit.retain(|o| o.owner != owner);
        explicit.push(Opinion {
            is_mine: owner == my_app,
            owner,
            category,
            tags,
            upstream_ref: Some(id_string(&d.id)),
        });
        for r in &d.reactions {
            for who in r.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match r.key.as_str() {
                    "HELPFUL" => {
                        implicit.retain(|(o, _)| o != who);
                        implicit.push((who.to_string(), OpinionCategory::Positive));
                    }
                    "DISAGREE_WITH_TAGS" if !implicit.iter().any(|(o, _)| o == who) => {
                        implicit.push((who.to_string(), OpinionCategory::Negative));
                    }
                    _ => {}
                }
            }
        }
    }
    for (owner, category) in implicit {
        if explicit.iter().any(|o| o.owner == owner) {
            continue;
        }
        explicit.push(Opinion {
            is_mine: owner == my_app,
            owner,
            category,
            tags: Vec::new(),
            upstream_ref: None,
        });
    }
    tags_all.sort();
    tags_all.dedup();
    (explicit, tags_all)
}

/// One `threat_updates` response body, parsed without I/O: its records and
/// skips, the newest `last_updated` seen (seconds, at least `since`) as the
/// cursor, and `paging.next` as given (the caller checks its origin).
/// Public for the fuzz targets (`fuzz/fuzz_targets/exchange_wire.rs`).
pub fn parse_updates_page(
    body: &[u8],
    my_app: &str,
    since: i64,
) -> Result<Parsed<i64>, FetchError> {
    let resp: UpdatesPage = page_json(body, "threat_updates page")?;
    let mut page = Page::default();
    let mut highest = since;
    each_record(&mut page, &resp.data, "id", |page, u: Update| {
        let id = id_string(&u.id);
        let updated = time_ms(&u.last_updated);
        if let Some(t) = updated {
            highest = highest.max(t / 1000);
        }
        let Some((st, value)) = convert(&u.kind, &u.indicator) else {
            page.unsupported += 1;
            return;
        };
        let (opinions, tags) = match &u.descriptors {
            Some(d) => opinions_of(&d.data, my_app),
            None => (Vec::new(), Vec::new()),
        };
        let deleted = u.should_delete || u.descriptors.is_none() || opinions.is_empty();
        let labels = RecordLabels {
            tags,
            ..RecordLabels::default()
        };
        let built = record(
            st,
            &value,
            id.clone(),
            labels,
            opinions,
            (None, updated),
            deleted,
        );
        page.keep(&format!("id {id}"), built);
    });
    Ok(Parsed {
        page,
        next: resp.paging.and_then(|p| p.next).filter(|n| !n.is_empty()),
        cursor: highest,
    })
}

pub struct TeAdapter {
    config: TeConfig,
    credentials: TeCredentials,
    http: Arc<Http>,
    next: Option<String>,
    round_started: i64,
}

impl TeAdapter {
    pub fn new(config: TeConfig, credentials: TeCredentials, http: Arc<Http>) -> TeAdapter {
        TeAdapter {
            config,
            credentials,
            http,
            next: None,
            round_started: 0,
        }
    }

    fn follow(&self, next: &str) -> Result<String, FetchError> {
        let base = reqwest::Url::parse(self.config.base())
            .map_err(|e| FetchError::Config(format!("base_url: {e}")))?;
        let url = reqwest::Url::parse(next)
            .map_err(|e| FetchError::Malformed(format!("bad paging.next: {e}")))?;
        if url.origin() != base.origin() {
            return Err(FetchError::Malformed(
                "paging.next points to another host".into(),
            ));
        }
        Ok(url.to_string())
    }

    async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
        match self.http.send(Method::GET, url, &[], None, &[]).await {
            Ok(r) => Ok(r.body),
            Err(NetError::Status {
                status: 401 | 403, ..
            }) => Err(FetchError::Auth(
                "ThreatExchange refused the access token".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

fn now_secs() -> i64 {
    echotrace_store::now_ms() / 1000
}

impl Adapter for TeAdapter {
    fn fetch<'a>(
        &'a mut self,
        checkpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page, FetchError>> {
        Box::pin(async move {
            let cp: TeCheckpoint = checkpoint
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default();
            let my_app = self.credentials.app_id().unwrap_or_default();
            let url = match self.next.take() {
                Some(n) => n,
                None => {
                    self.round_started = now_secs();
                    let mut u = reqwest::Url::parse(&format!(
                        "{}/{}/threat_updates/",
                        self.config.base(),
                        self.config.privacy_group
                    ))
                    .map_err(|e| FetchError::Config(format!("base_url: {e}")))?;
                    {
                        let mut q = u.query_pairs_mut();
                        q.append_pair("access_token", &self.credentials.api_token);
                        q.append_pair("limit", &self.config.page_size.to_string());
                        q.append_pair("fields", FIELDS);
                        if cp.update_time > 0 {
                            q.append_pair("start_time", &cp.update_time.to_string());
                        }
                    }
                    u.to_string()
                }
            };
            let result = async {
                let body = self.get(&url).await?;
                let Parsed {
                    mut page,
                    next,
                    cursor: highest,
                } = parse_updates_page(&body, &my_app, cp.update_time)?;
                page.upstream_at = (highest > 0).then_some(highest * 1000);
                page.checkpoint = Some(
                    serde_json::to_string(&TeCheckpoint {
                        v: 1,
                        update_time: highest,
                        last_fetch_time: if self.round_started > 0 {
                            self.round_started
                        } else {
                            now_secs()
                        },
                    })
                    .map_err(|e| FetchError::Io(e.to_string()))?,
                );
                match next {
                    Some(n) => self.next = Some(self.follow(&n)?),
                    None => page.caught_up = true,
                }
                Ok(page)
            }
            .await;
            if result.is_err() {
                self.next = None;
            }
            result
        })
    }

    fn is_stale(&self, checkpoint: &str) -> bool {
        serde_json::from_str::<TeCheckpoint>(checkpoint)
            .map(|c| (now_secs() - c.last_fetch_time) * 1000 > STALE_AFTER_MS)
            .unwrap_or(true)
    }

    fn report_opinion<'a>(
        &'a mut self,
        opinion: &'a OpinionOut,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move {
            if opinion.upstream_refs.is_empty() {
                return Err(FetchError::Unsupported(
                    "no ThreatExchange descriptor of another app to react to".into(),
                ));
            }
            let reaction = match opinion.category {
                OpinionCategory::Positive => "HELPFUL",
                OpinionCategory::Negative => "NOT_HELPFUL",
                OpinionCategory::Seed => "SAW_THIS_TOO",
            };
            for descriptor in &opinion.upstream_refs {
                if !descriptor.bytes().all(|b| b.is_ascii_digit()) || descriptor.is_empty() {
                    return Err(FetchError::Malformed(format!(
                        "descriptor id {descriptor:?} is not numeric"
                    )));
                }
                let mut u = reqwest::Url::parse(&format!("{}/{descriptor}/", self.config.base()))
                    .map_err(|e| FetchError::Config(format!("base_url: {e}")))?;
                u.query_pairs_mut()
                    .append_pair("access_token", &self.credentials.api_token);
                match self
                    .http
                    .send(
                        Method::POST,
                        u.as_str(),
                        &[],
                        Some(Body::Form(vec![("reactions".into(), reaction.into())])),
                        &[],
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(NetError::Status {
                        status: 401 | 403, ..
                    }) => {
                        return Err(FetchError::Auth(
                            "ThreatExchange refused the access token".into(),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opinions_follow_pytx() {
        let ds: Vec<Descriptor> = serde_json::from_value(serde_json::json!([
            {"id": "11", "owner": {"id": "100"}, "status": "MALICIOUS",
             "tags": {"data": [{"text": "b"}, {"text": "a"}]},
             "reactions": [{"key": "DISAGREE_WITH_TAGS", "value": "300,400"},
                           {"key": "HELPFUL", "value": "400"}]},
            {"id": "12", "owner": {"id": "200"}, "status": "NON_MALICIOUS", "tags": ["c"]},
            {"id": "13", "status": "MALICIOUS"}
        ]))
        .unwrap();
        let (ops, tags) = opinions_of(&ds, "200");
        assert_eq!(tags, vec!["a", "b", "c"]);
        let find = |o: &str| {
            ops.iter()
                .find(|x| x.owner == o)
                .map(|x| (x.category, x.is_mine))
        };
        assert_eq!(find("100"), Some((OpinionCategory::Positive, false)));
        assert_eq!(find("200"), Some((OpinionCategory::Negative, true)));
        assert_eq!(find("300"), Some((OpinionCategory::Negative, false)));
        assert_eq!(find("400"), Some((OpinionCategory::Positive, false)));
        assert_eq!(ops.len(), 4);
    }

    #[test]
    fn token_app_id() {
        let ok = TeCredentials {
            api_token: "12345678|abcdefghijklmnopqrstuv".into(),
        };
        assert_eq!(ok.app_id().as_deref(), Some("12345678"));
        let bad = TeCredentials {
            api_token: "nope".into(),
        };
        assert!(bad.check().is_err());
    }
}
