//! `echotrace`: another echotrace instance's published feed.
//!
//! * `GET {url}/v1/feeds/{bank}?after=<cursor>&limit=N&wait=W` with a
//!   partner key (`Authorization: Bearer`), answered `{records: [{seq,
//!   signal_type, value, deleted, labels, updated_at}], next_cursor, head,
//!   checksum, checksum_cursor}`. Tombstones (`deleted: true`) stand for
//!   deletions and disables.
//! * A fetch with no cursor pages the whole feed from the start: that is
//!   the full pass (mark-and-sweep), resumable at every committed cursor,
//!   which is why the adapter does not use the one-shot
//!   `/v1/feeds/{bank}/snapshot` (a JSONL stream for other consumers).
//! * `410 Gone` (our cursor is older than the publisher's tombstone
//!   horizon) starts a full pass.
//! * Once caught up, the next fetch long-polls (`wait`, default 30 s): the
//!   publisher answers as soon as a new entry exists. With the checksum of
//!   the publisher's live set at the cursor we are caught up to, the worker
//!   compares its own and starts a full pass on drift.
//! * Opinions: `POST {url}/v1/feeds/{bank}/opinions` with `{"opinions":
//!   [{signal_type, value, category}]}`.

use std::sync::Arc;

use echotrace_engine::exchange::{OpinionOut, RecordLabels};
use echotrace_engine::BoxFuture;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    each_record, id_string, page_json, record, Adapter, ApiInfo, FetchError, FieldSpec, Page,
    Parsed,
};
use crate::net::{Body, Http, NetError};

pub const API: &str = "echotrace";

pub const INFO: ApiInfo = ApiInfo {
    name: API,
    title: "Another echotrace instance (published feed)",
    write_back: true,
    needs_credentials: true,
    config_fields: &[
        FieldSpec {
            name: "url",
            kind: "string",
            required: true,
            default: None,
            help: "Base URL of the publishing instance, e.g. https://hashes.example.org",
            choices: None,
        },
        FieldSpec {
            name: "bank",
            kind: "string",
            required: true,
            default: None,
            help: "Name of the published bank",
            choices: None,
        },
        FieldSpec {
            name: "page_size",
            kind: "int",
            required: false,
            default: Some("1000"),
            help: "Records per page",
            choices: None,
        },
        FieldSpec {
            name: "wait_secs",
            kind: "int",
            required: false,
            default: Some("30"),
            help: "Long-poll: how long the publisher may hold a request when there is no news",
            choices: None,
        },
    ],
    credential_fields: &[FieldSpec {
        name: "api_key",
        kind: "string",
        required: true,
        default: None,
        help: "The partner key the publisher gave you",
        choices: None,
    }],
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    #[serde(default = "v1")]
    pub version: u32,
    pub url: String,
    pub bank: String,
    #[serde(default = "default_page")]
    pub page_size: u32,
    #[serde(default = "default_wait")]
    pub wait_secs: u32,
}

fn v1() -> u32 {
    1
}
fn default_page() -> u32 {
    1000
}
fn default_wait() -> u32 {
    30
}

impl PeerConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err("version: expected 1".into());
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err("url: must be http(s)".into());
        }
        if self.bank.is_empty()
            || !self
                .bank
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err("bank: 1-100 characters of A-Z a-z 0-9 _ - .".into());
        }
        if !(1..=10_000).contains(&self.page_size) {
            return Err("page_size: must be 1-10000".into());
        }
        if self.wait_secs > 60 {
            return Err("wait_secs: at most 60".into());
        }
        Ok(())
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCredentials {
    pub api_key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerCheckpoint {
    v: u32,
    cursor: String,
}

#[derive(Deserialize)]
struct FeedPage {
    records: Vec<Box<RawValue>>,
    next_cursor: String,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    checksum_cursor: Option<String>,
}

#[derive(Deserialize)]
struct FeedRecord {
    signal_type: String,
    value: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    seq: serde_json::Value,
    #[serde(default)]
    updated_at: Option<i64>,
}

/// One feed page of a publishing echotrace parsed without I/O: its records
/// and skips, caught up when it holds fewer than `page_size` records (and
/// then the publisher's checksum of its live set, when it is for this
/// cursor), and `next_cursor` as the cursor. Public for the fuzz targets.
pub fn parse_feed_page(body: &[u8], page_size: u32) -> Result<Parsed<String>, FetchError> {
    let feed: FeedPage = page_json(body, "feed page")?;
    let mut page = Page::default();
    let mut last_time = None;
    each_record(&mut page, &feed.records, "seq", |page, r: FeedRecord| {
        let id = id_string(&r.seq);
        let Some(st) = super::file::signal_type_of(&r.signal_type) else {
            page.unsupported += 1;
            return;
        };
        last_time = r.updated_at.or(last_time);
        let labels = RecordLabels::from_flat(&r.labels);
        let built = record(
            st,
            &r.value,
            id.clone(),
            labels,
            Vec::new(),
            (None, r.updated_at),
            r.deleted,
        );
        page.keep(&format!("seq {id}"), built);
    });
    page.caught_up = feed.records.len() < page_size as usize;
    page.upstream_at = last_time;
    if page.caught_up && feed.checksum_cursor.as_deref() == Some(feed.next_cursor.as_str()) {
        page.upstream_checksum = feed.checksum;
    }
    Ok(Parsed {
        page,
        next: None,
        cursor: feed.next_cursor,
    })
}

pub struct PeerAdapter {
    config: PeerConfig,
    credentials: PeerCredentials,
    http: Arc<Http>,
    /// The last page was caught up: the next one may long-poll.
    caught_up: bool,
}

impl PeerAdapter {
    pub fn new(config: PeerConfig, credentials: PeerCredentials, http: Arc<Http>) -> PeerAdapter {
        PeerAdapter {
            config,
            credentials,
            http,
            caught_up: false,
        }
    }

    fn feed_url(&self, suffix: &str) -> String {
        format!(
            "{}/v1/feeds/{}{suffix}",
            self.config.url.trim_end_matches('/'),
            self.config.bank
        )
    }

    fn auth(&self) -> [(&'static str, String); 1] {
        [(
            "Authorization",
            format!("Bearer {}", self.credentials.api_key),
        )]
    }
}

impl Adapter for PeerAdapter {
    fn fetch<'a>(
        &'a mut self,
        checkpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page, FetchError>> {
        Box::pin(async move {
            let cp: Option<PeerCheckpoint> = checkpoint.and_then(|c| serde_json::from_str(c).ok());
            let mut u = reqwest::Url::parse(&self.feed_url(""))
                .map_err(|e| FetchError::Config(format!("url: {e}")))?;
            let wait = if self.caught_up && cp.is_some() {
                self.config.wait_secs
            } else {
                0
            };
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("limit", &self.config.page_size.to_string());
                if let Some(c) = &cp {
                    q.append_pair("after", &c.cursor);
                }
                if wait > 0 {
                    q.append_pair("wait", &wait.to_string());
                }
            }
            let resp = match self
                .http
                .send(Method::GET, u.as_str(), &self.auth(), None, &[])
                .await
            {
                Ok(r) => r,
                Err(NetError::Status { status: 410, .. }) => {
                    self.caught_up = false;
                    return Err(FetchError::Restart(
                        "the publisher purged tombstones past our cursor (410)".into(),
                    ));
                }
                Err(NetError::Status {
                    status: 401 | 403, ..
                }) => {
                    return Err(FetchError::Auth(
                        "the publisher refused the partner key for this feed".into(),
                    ))
                }
                Err(e) => {
                    self.caught_up = false;
                    return Err(e.into());
                }
            };
            let Parsed {
                mut page,
                cursor: next_cursor,
                ..
            } = parse_feed_page(&resp.body, self.config.page_size)?;
            page.restart = cp.is_none();
            self.caught_up = page.caught_up;
            page.checkpoint = Some(
                serde_json::to_string(&PeerCheckpoint {
                    v: 1,
                    cursor: next_cursor,
                })
                .map_err(|e| FetchError::Io(e.to_string()))?,
            );
            Ok(page)
        })
    }

    fn long_polls(&self) -> bool {
        self.config.wait_secs > 0
    }

    fn report_opinion<'a>(
        &'a mut self,
        opinion: &'a OpinionOut,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&serde_json::json!({
                "opinions": [{
                    "signal_type": opinion.signal_type,
                    "value": opinion.value,
                    "category": opinion.category,
                }]
            }))
            .map_err(|e| FetchError::Io(e.to_string()))?;
            match self
                .http
                .send(
                    Method::POST,
                    &self.feed_url("/opinions"),
                    &self.auth(),
                    Some(Body::Json(body)),
                    &[],
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(NetError::Status {
                    status: 401 | 403, ..
                }) => Err(FetchError::Auth(
                    "the publisher refused the partner key".into(),
                )),
                Err(e) => Err(e.into()),
            }
        })
    }
}
