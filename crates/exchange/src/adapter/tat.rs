//! `tat`: Tech Against Terrorism's TCAP lists.
//!
//! Wire format (python-threatexchange `clients/techagainstterrorism/api.py`
//! and TCAP's public docs):
//! * auth: `POST {base}token-auth/tcap/` with form fields `username`,
//!   `password` → `{"token": …, "user": …}`; the token goes in
//!   `Authorization: Bearer`. A 401/403 re-authenticates once (tokens
//!   expire), then fails as an authentication error.
//! * hash list v2: `GET {base}api/hash-list/v2/all?order=asc&after=<utc>,<id>
//!   &ideology=…&limit=…`, answered `{count, next, previous, checkpoint,
//!   results: [{hash_digest, algorithm, ideology, file_type, deleted,
//!   updated_on, created_on, id}]}`. `next` pages the same query by offset;
//!   `checkpoint` is the `"<utc>,<id>"` of the page's last record, stored as
//!   ours, so a new round resumes with `after=` it. `deleted: true` is a
//!   tombstone. Unlike pytx (which keeps only PDQ and video MD5 and drops
//!   the metadata), every supported algorithm is kept (PDQ → pdq, MD5 →
//!   md5, SHA256 → sha256; SHA512 is counted as unsupported) with its
//!   ideology and file type as labels.
//! * URL list (`"list": "urls"`): `GET {base}integrations/api/jigsaw/urls/`
//!   paged by `next`, items `{id, url, terrorist_group{name}, created_on,
//!   url_status}` → `url` signals with the group as entity label. It is a
//!   snapshot: each round is one full pass (mark-and-sweep).
//! * feedback: `GET {base}api/hash-list/v2/feedback/categories` lists
//!   categories (`FALSE_POSITIVE`, …); an opinion is `POST
//!   {base}{feedback_path}` with `{"hash_digest", "hash_id", "category"}`.
//!   TCAP documents the categories route but not the POST body publicly;
//!   the body here is our best reading and is configurable by path only.

use std::sync::Arc;

use echotrace_engine::exchange::{OpinionCategory, OpinionOut, RecordLabels};
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

pub const API: &str = "tat";

pub const INFO: ApiInfo = ApiInfo {
    name: API,
    title: "Tech Against Terrorism (TCAP hash list v2 / URL list)",
    write_back: true,
    needs_credentials: true,
    config_fields: &[
        FieldSpec {
            name: "base_url",
            kind: "string",
            required: false,
            default: Some("https://app.terrorismanalytics.org/"),
            help: "TCAP base URL",
            choices: None,
        },
        FieldSpec {
            name: "list",
            kind: "string",
            required: false,
            default: Some("hashes"),
            help: "hashes (content hash list v2) or urls (URL list)",
            choices: Some(&["hashes", "urls"]),
        },
        FieldSpec {
            name: "ideology",
            kind: "string",
            required: false,
            default: Some("all"),
            help: "islamist, far-right or all",
            choices: Some(&["all", "islamist", "far-right"]),
        },
        FieldSpec {
            name: "page_size",
            kind: "int",
            required: false,
            default: Some("1000"),
            help: "Records per page (limit)",
            choices: None,
        },
    ],
    credential_fields: &[
        FieldSpec {
            name: "username",
            kind: "string",
            required: true,
            default: None,
            help: "TCAP username",
            choices: None,
        },
        FieldSpec {
            name: "password",
            kind: "string",
            required: true,
            default: None,
            help: "TCAP password",
            choices: None,
        },
    ],
};

/// Which TCAP list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TatList {
    #[default]
    Hashes,
    Urls,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TatConfig {
    #[serde(default = "v1")]
    pub version: u32,
    #[serde(default = "default_base")]
    pub base_url: String,
    #[serde(default)]
    pub list: TatList,
    #[serde(default = "default_ideology")]
    pub ideology: String,
    #[serde(default = "default_page")]
    pub page_size: u32,
    #[serde(default = "default_feedback")]
    pub feedback_path: String,
}

fn v1() -> u32 {
    1
}
fn default_base() -> String {
    "https://app.terrorismanalytics.org/".into()
}
fn default_ideology() -> String {
    "all".into()
}
fn default_page() -> u32 {
    1000
}
fn default_feedback() -> String {
    "api/hash-list/v2/feedback".into()
}

impl TatConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err("version: expected 1".into());
        }
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err("base_url: must be http(s)".into());
        }
        if !["all", "islamist", "far-right"].contains(&self.ideology.as_str()) {
            return Err("ideology: expected all, islamist or far-right".into());
        }
        if !(1..=10_000).contains(&self.page_size) {
            return Err("page_size: must be 1-10000".into());
        }
        Ok(())
    }

    fn base(&self) -> String {
        if self.base_url.ends_with('/') {
            self.base_url.clone()
        } else {
            format!("{}/", self.base_url)
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TatCredentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TatCheckpoint {
    v: u32,
    /// Hash list: the `"<utc>,<id>"` to resume after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// URL list: the next page of the pass in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Deserialize)]
struct TatPage {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    checkpoint: Option<String>,
    results: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct TatEntry {
    hash_digest: String,
    algorithm: String,
    #[serde(default)]
    ideology: Option<String>,
    #[serde(default)]
    file_type: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    updated_on: serde_json::Value,
    #[serde(default)]
    created_on: serde_json::Value,
    #[serde(default)]
    id: serde_json::Value,
}

#[derive(Deserialize)]
struct TatUrl {
    url: String,
    #[serde(default)]
    id: serde_json::Value,
    #[serde(default)]
    terrorist_group: Option<TatGroup>,
    #[serde(default)]
    created_on: serde_json::Value,
    #[serde(default)]
    url_status: Option<String>,
}

#[derive(Deserialize)]
struct TatGroup {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Categories {
    results: Vec<Category>,
}

#[derive(Deserialize)]
struct Category {
    id: serde_json::Value,
    name: String,
}

/// One hash-list page (`api/hash-list/v2/all`) parsed without I/O: its
/// records and skips, `next` as given, and the page's non-empty
/// `checkpoint` as the cursor. Public for the fuzz targets.
pub fn parse_hash_page(body: &[u8]) -> Result<Parsed<Option<String>>, FetchError> {
    let resp: TatPage = page_json(body, "hash list page")?;
    let mut page = Page::default();
    each_record(&mut page, &resp.results, "id", |page, entry: TatEntry| {
        let id = id_string(&entry.id);
        let st = match entry.algorithm.to_ascii_uppercase().as_str() {
            "PDQ" => SignalType::Pdq,
            "MD5" => SignalType::Md5,
            "SHA256" => SignalType::Sha256,
            _ => {
                page.unsupported += 1;
                return;
            }
        };
        let labels = RecordLabels {
            ideology: entry
                .ideology
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            content_type: entry
                .file_type
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            ..RecordLabels::default()
        };
        let times = (time_ms(&entry.created_on), time_ms(&entry.updated_on));
        let built = record(
            st,
            &entry.hash_digest,
            id.clone(),
            labels,
            Vec::new(),
            times,
            entry.deleted,
        );
        page.keep(&format!("id {id}"), built);
    });
    Ok(Parsed {
        page,
        next: resp.next.filter(|n| !n.is_empty()),
        cursor: resp.checkpoint.filter(|c| !c.is_empty()),
    })
}

/// One URL-list page (`integrations/api/jigsaw/urls/`) parsed without I/O:
/// its records and skips, and `next` as given. Public for the fuzz targets.
pub fn parse_url_page(body: &[u8]) -> Result<Parsed<()>, FetchError> {
    #[derive(Deserialize)]
    struct UrlPage {
        #[serde(default)]
        next: Option<String>,
        results: Vec<Box<RawValue>>,
    }
    let resp: UrlPage = page_json(body, "URL list page")?;
    let mut page = Page::default();
    each_record(&mut page, &resp.results, "id", |page, item: TatUrl| {
        let id = id_string(&item.id);
        let labels = RecordLabels {
            entity: item
                .terrorist_group
                .and_then(|g| g.name)
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            tags: item
                .url_status
                .map(|s| format!("url_status:{s}"))
                .into_iter()
                .collect(),
            ..RecordLabels::default()
        };
        let times = (time_ms(&item.created_on), None);
        let built = record(
            SignalType::Url,
            &item.url,
            id.clone(),
            labels,
            Vec::new(),
            times,
            false,
        );
        page.keep(&format!("id {id}"), built);
    });
    Ok(Parsed {
        page,
        next: resp.next.filter(|n| !n.is_empty()),
        cursor: (),
    })
}

pub struct TatAdapter {
    config: TatConfig,
    credentials: TatCredentials,
    http: Arc<Http>,
    token: Option<String>,
    /// Hash list: the next page of the round in progress (offset paging).
    next: Option<String>,
}

impl TatAdapter {
    pub fn new(config: TatConfig, credentials: TatCredentials, http: Arc<Http>) -> TatAdapter {
        TatAdapter {
            config,
            credentials,
            http,
            token: None,
            next: None,
        }
    }

    async fn authenticate(&mut self) -> Result<String, FetchError> {
        let url = format!("{}token-auth/tcap/", self.config.base());
        let resp = self
            .http
            .send(
                Method::POST,
                &url,
                &[],
                Some(Body::Form(vec![
                    ("username".into(), self.credentials.username.clone()),
                    ("password".into(), self.credentials.password.clone()),
                    ("resend".into(), "False".into()),
                ])),
                &[],
            )
            .await
            .map_err(|e| match e {
                NetError::Status {
                    status: 400 | 401 | 403,
                    ..
                } => FetchError::Auth("TCAP refused the username or password".into()),
                other => FetchError::Net(other),
            })?;
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let t: Token = serde_json::from_slice(&resp.body).map_err(|_| {
            FetchError::Malformed("TCAP's token answer is not {\"token\": …}".into())
        })?;
        self.token = Some(t.token.clone());
        Ok(t.token)
    }

    /// GET with the bearer token; re-authenticate once on 401/403.
    async fn get(&mut self, url: &str) -> Result<bytes::Bytes, FetchError> {
        self.send(Method::GET, url, None).await
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Body>,
    ) -> Result<bytes::Bytes, FetchError> {
        for attempt in 0..2 {
            let token = match &self.token {
                Some(t) => t.clone(),
                None => self.authenticate().await?,
            };
            match self
                .http
                .send(
                    method.clone(),
                    url,
                    &[("Authorization", format!("Bearer {token}"))],
                    body.clone(),
                    &[],
                )
                .await
            {
                Ok(r) => return Ok(r.body),
                Err(NetError::Status {
                    status: 401 | 403, ..
                }) if attempt == 0 => {
                    self.token = None;
                }
                Err(NetError::Status {
                    status: 401 | 403, ..
                }) => {
                    return Err(FetchError::Auth(
                        "TCAP rejected a fresh token for this request".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FetchError::Auth("TCAP authentication failed".into()))
    }

    /// The URL of a `next` link, refused unless it stays on the configured
    /// origin (the token is sent with it).
    fn follow(&self, next: &str) -> Result<String, FetchError> {
        let base = reqwest::Url::parse(&self.config.base())
            .map_err(|e| FetchError::Config(format!("base_url: {e}")))?;
        let url = base
            .join(next)
            .map_err(|e| FetchError::Malformed(format!("bad next link: {e}")))?;
        if url.origin() != base.origin() {
            return Err(FetchError::Malformed(
                "next link points to another host".into(),
            ));
        }
        Ok(url.to_string())
    }

    async fn fetch_hashes(&mut self, cp: TatCheckpoint) -> Result<Page, FetchError> {
        let url = match self.next.take() {
            Some(n) => n,
            None => {
                let mut u =
                    reqwest::Url::parse(&format!("{}api/hash-list/v2/all", self.config.base()))
                        .map_err(|e| FetchError::Config(format!("base_url: {e}")))?;
                {
                    let mut q = u.query_pairs_mut();
                    q.append_pair("order", "asc");
                    q.append_pair("limit", &self.config.page_size.to_string());
                    q.append_pair("ideology", &self.config.ideology);
                    if let Some(after) = &cp.after {
                        q.append_pair("after", after);
                    }
                }
                u.to_string()
            }
        };
        let body = self.get(&url).await?;
        let Parsed {
            mut page,
            next,
            cursor,
        } = parse_hash_page(&body)?;
        page.restart = cp.after.is_none() && !url.contains("offset=");
        let after = cursor.or(cp.after);
        page.upstream_at = after
            .as_deref()
            .and_then(|c| c.split(',').next())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite())
            .map(|secs| (secs * 1000.0) as i64);
        page.checkpoint = Some(
            serde_json::to_string(&TatCheckpoint {
                v: 1,
                after,
                next: None,
            })
            .map_err(|e| FetchError::Io(e.to_string()))?,
        );
        match next {
            Some(n) => self.next = Some(self.follow(&n)?),
            None => page.caught_up = true,
        }
        Ok(page)
    }

    async fn fetch_urls(&mut self, cp: TatCheckpoint) -> Result<Page, FetchError> {
        let (url, restart) = match cp.next {
            Some(n) => (self.follow(&n)?, false),
            None => (
                format!("{}integrations/api/jigsaw/urls/", self.config.base()),
                true,
            ),
        };
        let body = self.get(&url).await?;
        let Parsed { mut page, next, .. } = parse_url_page(&body)?;
        page.restart = restart;
        page.caught_up = next.is_none();
        page.checkpoint = Some(
            serde_json::to_string(&TatCheckpoint {
                v: 1,
                after: None,
                next,
            })
            .map_err(|e| FetchError::Io(e.to_string()))?,
        );
        Ok(page)
    }

    async fn category_id(
        &mut self,
        wanted: OpinionCategory,
    ) -> Result<serde_json::Value, FetchError> {
        let url = format!(
            "{}api/hash-list/v2/feedback/categories?limit=100",
            self.config.base()
        );
        let body = self.get(&url).await?;
        let cats: Categories = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Malformed(format!("feedback categories: {e}")))?;
        let names: &[&str] = match wanted {
            OpinionCategory::Negative => &["FALSE_POSITIVE"],
            OpinionCategory::Positive => &["MATCH", "TRUE_POSITIVE", "CONFIRMED"],
            OpinionCategory::Seed => &[],
        };
        cats.results
            .into_iter()
            .find(|c| names.iter().any(|n| c.name.eq_ignore_ascii_case(n)))
            .map(|c| c.id)
            .ok_or_else(|| {
                FetchError::Unsupported(format!(
                    "TCAP offers no feedback category for a {} opinion",
                    wanted.as_str()
                ))
            })
    }
}

impl Adapter for TatAdapter {
    fn fetch<'a>(
        &'a mut self,
        checkpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page, FetchError>> {
        Box::pin(async move {
            let cp: TatCheckpoint = checkpoint
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default();
            let result = match self.config.list {
                TatList::Hashes => self.fetch_hashes(cp).await,
                TatList::Urls => self.fetch_urls(cp).await,
            };
            if result.is_err() {
                self.next = None;
            }
            result
        })
    }

    fn report_opinion<'a>(
        &'a mut self,
        opinion: &'a OpinionOut,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move {
            if self.config.list == TatList::Urls {
                return Err(FetchError::Unsupported(
                    "TCAP's URL list takes no feedback".into(),
                ));
            }
            let category = self.category_id(opinion.category).await?;
            let url = format!("{}{}", self.config.base(), self.config.feedback_path);
            let body = serde_json::to_vec(&serde_json::json!({
                "hash_digest": opinion.value,
                "hash_id": opinion.upstream_id,
                "category": category,
            }))
            .map_err(|e| FetchError::Io(e.to_string()))?;
            self.send(Method::POST, &url, Some(Body::Json(body)))
                .await?;
            Ok(())
        })
    }
}
