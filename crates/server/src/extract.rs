//! Custom extractors whose rejections are this crate's JSON errors.
//!
//! axum's stock extractors answer bad input with plain-text bodies and, for
//! some cases, statuses we do not want. Every handler takes its inputs
//! through these wrappers instead, so malformed JSON, a wrong content type,
//! an oversized body or a bad path/query parameter always yields a 4xx
//! `{"error":{...}}` body.
//!
//! [`Item`] is the one body format for "something to hash or match": a
//! multipart upload (`file` field, plus optional `labels`, `note`, `banks`,
//! `context` fields), or JSON with exactly one of `text`, `signals`, `url`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{body_error, from_json_rejection, ApiError};

/// `Json<T>` with JSON-shaped rejections.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(from_json_rejection(r)),
        }
    }
}

/// `Path<T>` with JSON-shaped rejections (a bad id is a 400, not a 500).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "bad path parameter: {}",
                r.body_text()
            ))),
        }
    }
}

/// `Query<T>` with JSON-shaped rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "bad query string: {}",
                r.body_text()
            ))),
        }
    }
}

/// Caller-supplied context recorded with a submission (never raw content).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LookupContext {
    pub content_id: Option<String>,
    pub url: Option<String>,
    pub uploader_id: Option<String>,
}

/// What the caller handed us to hash or match.
#[derive(Debug)]
pub enum ItemInput {
    /// Raw bytes of an uploaded file.
    File(Bytes),
    /// Text to MinHash.
    Text(String),
    /// Ready-made signals: wire name → value (or list of values).
    Signals(serde_json::Map<String, serde_json::Value>),
    /// A URL to fetch (only when the operator enabled fetching).
    Url(String),
}

/// A hash/match/bank-content request body, JSON or multipart.
#[derive(Debug)]
pub struct Item {
    pub input: ItemInput,
    pub labels: Vec<String>,
    pub note: Option<String>,
    pub banks: Option<Vec<String>>,
    pub context: LookupContext,
    /// HMA's `metadata` form field (accepted by the `/c/...` routes only).
    pub metadata: Option<String>,
}

/// The JSON form of [`Item`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemJson {
    text: Option<String>,
    signals: Option<serde_json::Map<String, serde_json::Value>>,
    url: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    note: Option<String>,
    banks: Option<Vec<String>>,
    #[serde(default)]
    context: LookupContext,
}

impl ItemJson {
    fn into_item(self) -> Result<Item, ApiError> {
        let given = [
            self.text.is_some(),
            self.signals.is_some(),
            self.url.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(ApiError::bad_request(
                "give exactly one of \"text\", \"signals\" or \"url\" (or upload a file as multipart/form-data)",
            ));
        }
        let input = if let Some(t) = self.text {
            ItemInput::Text(t)
        } else if let Some(s) = self.signals {
            if s.is_empty() {
                return Err(ApiError::bad_request("\"signals\" is empty"));
            }
            ItemInput::Signals(s)
        } else if let Some(u) = self.url {
            ItemInput::Url(u)
        } else {
            return Err(ApiError::bad_request("nothing to process"));
        };
        Ok(Item {
            input,
            labels: self.labels,
            note: self.note,
            banks: self.banks,
            context: self.context,
            metadata: None,
        })
    }
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Parse a label list given as a JSON array or comma-separated text.
fn parse_list(s: &str) -> Result<Vec<String>, ApiError> {
    let t = s.trim();
    if t.starts_with('[') {
        serde_json::from_str::<Vec<String>>(t)
            .map_err(|e| ApiError::bad_request(format!("bad list: {e}")))
    } else {
        Ok(t.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect())
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    body_error(e.status(), e.body_text())
}

impl<S: Send + Sync> FromRequest<S> for Item {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(&req);
        if ct.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, state)
                .await
                .map_err(|r| ApiError::bad_request(r.body_text()))?;
            let mut file: Option<Bytes> = None;
            let mut text: Option<String> = None;
            let mut item = Item {
                input: ItemInput::Text(String::new()),
                labels: Vec::new(),
                note: None,
                banks: None,
                context: LookupContext::default(),
                metadata: None,
            };
            while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
                let name = field.name().unwrap_or("").to_string();
                let is_file = field.file_name().is_some();
                if is_file || name == "file" {
                    if file.is_some() {
                        return Err(ApiError::bad_request("upload exactly one file"));
                    }
                    file = Some(field.bytes().await.map_err(multipart_error)?);
                    continue;
                }
                let value = field.text().await.map_err(multipart_error)?;
                match name.as_str() {
                    "text" => text = Some(value),
                    "labels" => item.labels = parse_list(&value)?,
                    "note" => item.note = Some(value),
                    "metadata" => item.metadata = Some(value),
                    "banks" => item.banks = Some(parse_list(&value)?),
                    "context" => {
                        item.context = serde_json::from_str(&value)
                            .map_err(|e| ApiError::bad_request(format!("bad context field: {e}")))?
                    }
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "unexpected form field {other:?}"
                        )))
                    }
                }
            }
            item.input = match (file, text) {
                (Some(f), None) => ItemInput::File(f),
                (None, Some(t)) => ItemInput::Text(t),
                (None, None) => return Err(ApiError::bad_request("multipart body has no file")),
                (Some(_), Some(_)) => {
                    return Err(ApiError::bad_request("give a file or text, not both"))
                }
            };
            Ok(item)
        } else if ct.starts_with("application/json") || ct.contains("+json") {
            let ApiJson(j) = ApiJson::<ItemJson>::from_request(req, state).await?;
            j.into_item()
        } else {
            Err(ApiError::unsupported_media(
                "send application/json or multipart/form-data",
            ))
        }
    }
}

/// Raw body bytes with the size cap mapped to a JSON 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| body_error(r.status(), r.body_text()))
    }
}
