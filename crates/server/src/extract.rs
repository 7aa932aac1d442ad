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
//!
//! Two rules live here, once, for every route:
//! * **Bodies are read under the byte budget** ([`crate::budget`]): a
//!   declared length over the limit is a 413 before reading, a body that
//!   finds no room in the budget a 503 with `Retry-After`.
//! * **No NUL characters.** Every string a request brings — JSON strings
//!   and keys at any depth, multipart text fields, path parameters, query
//!   parameters (and the console's form fields and query, which use
//!   [`check_no_nul`]) — is refused with a 400 naming the field when it
//!   holds U+0000. PostgreSQL cannot store NUL in text and SQLite can, so
//!   the rule is decided here rather than by whichever backend is in use;
//!   typed text to hash follows it too, so adding a text to a bank and
//!   looking it up agree.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::budget;
use crate::error::{body_error, from_json_rejection, ApiError};

/// The one rule for text a request brings: no NUL character (a 400 naming
/// `field`).
pub fn check_no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{field} contains a NUL character (U+0000), which is not accepted"
        )));
    }
    Ok(())
}

/// Whether raw JSON text may hold a NUL in a string: a `\u0000` escape
/// (JSON cannot carry a raw NUL byte inside a string). Linear, no parse.
fn json_may_hold_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'\\') {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i) == Some(&b'\\') {
            i += 1;
        }
        if (i - start) % 2 == 1 && bytes.get(i..i + 5) == Some(b"u0000".as_slice()) {
            return true;
        }
    }
    false
}

/// The path (`context.content_id`, `items[2].text`) of the first string or
/// object key in `v` holding a NUL.
fn nul_path(v: &Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "the body".to_string()
        } else {
            path.to_string()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_path(item, &join(k))
            }
        }),
        _ => None,
    }
}

/// Refuse a JSON body with a NUL in any string or key, naming the field.
fn check_json_no_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !json_may_hold_nul(bytes) {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => match nul_path(&v, "") {
            Some(path) => check_no_nul(&path, "\0"),
            None => Ok(()),
        },
        // Malformed: the typed parse reports it.
        Err(_) => Ok(()),
    }
}

fn is_json(req: &Request) -> bool {
    let ct = content_type(req);
    ct.starts_with("application/json") || (ct.starts_with("application/") && ct.contains("+json"))
}

/// `Json<T>` with JSON-shaped rejections, read under the byte budget and
/// the NUL rule; the body is a JSON object (an array is a 422).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::unsupported_media(
                "expected Content-Type: application/json",
            ));
        }
        let bytes = budget::read_body(req).await?;
        check_json_no_nul(&bytes)?;
        // Every body is an object: serde would also read a struct from an
        // array of its fields in order (`[false, null, null]`).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "the body must be a JSON object, not an array",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(from_json_rejection(r)),
        }
    }
}

/// `Path<T>` with JSON-shaped rejections (a bad id is a 400, not a 500)
/// and the NUL rule.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            for (name, value) in &raw {
                check_no_nul(&format!("path parameter {name}"), value)?;
            }
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "bad path parameter: {}",
                r.body_text()
            ))),
        }
    }
}

/// The NUL rule over a query string (parameter names and values, decoded).
pub fn check_query_no_nul(query: Option<&str>) -> Result<(), ApiError> {
    let Some(q) = query else { return Ok(()) };
    if !q.contains("%00") && !q.contains('\0') {
        return Ok(());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    for (k, v) in &pairs {
        check_no_nul("a query parameter name", k)?;
        check_no_nul(&format!("query parameter {k}"), v)?;
    }
    Ok(())
}

/// `Query<T>` with JSON-shaped rejections and the NUL rule.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query_no_nul(parts.uri.query())?;
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

fn multipart_error(e: axum::extract::multipart::MultipartError, over: bool) -> ApiError {
    if over {
        return budget::overloaded();
    }
    body_error(e.status(), e.body_text())
}

impl<S: Send + Sync> FromRequest<S> for Item {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(&req);
        if ct.starts_with("multipart/form-data") {
            let req = budget::metered(req).await?;
            let scope = req.extensions().get::<budget::BudgetScope>().cloned();
            let over = move || scope.as_ref().is_some_and(budget::BudgetScope::exceeded);
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
            while let Some(field) = mp
                .next_field()
                .await
                .map_err(|e| multipart_error(e, over()))?
            {
                let name = field.name().unwrap_or("").to_string();
                let is_file = field.file_name().is_some();
                if is_file || name == "file" {
                    if file.is_some() {
                        return Err(ApiError::bad_request("upload exactly one file"));
                    }
                    file = Some(
                        field
                            .bytes()
                            .await
                            .map_err(|e| multipart_error(e, over()))?,
                    );
                    continue;
                }
                let value = field.text().await.map_err(|e| multipart_error(e, over()))?;
                check_no_nul(&format!("form field {name}"), &value)?;
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
        } else if is_json(&req) {
            let ApiJson(j) = ApiJson::<ItemJson>::from_request(req, state).await?;
            j.into_item()
        } else {
            Err(ApiError::unsupported_media(
                "send application/json or multipart/form-data",
            ))
        }
    }
}

/// Raw body bytes, read under the byte budget, with the size cap mapped to
/// a JSON 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        budget::read_body(req).await.map(RawBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_named() {
        assert!(json_may_hold_nul(br#"{"a":"x\u0000"}"#));
        assert!(
            !json_may_hold_nul(br#"{"a":"x\\u0000"}"#),
            "escaped backslash"
        );
        assert!(json_may_hold_nul(br#"{"a":"x\\\u0000"}"#));
        assert!(!json_may_hold_nul(br#"{"a":"u0000"}"#));
        let err = check_json_no_nul(br#"{"context":{"content_id":"a\u0000b"}}"#).unwrap_err();
        assert!(
            err.message.contains("context.content_id"),
            "{}",
            err.message
        );
        let err = check_json_no_nul(br#"{"items":[{"text":"ok"},{"text":"\u0000"}]}"#).unwrap_err();
        assert!(err.message.contains("items[1].text"), "{}", err.message);
        let err = check_json_no_nul(br#"{"signals":{"pdq\u0000":"x"}}"#).unwrap_err();
        assert!(err.message.contains("signals.pdq"), "{}", err.message);
        assert!(check_json_no_nul(br#"{"a":"\\u0000"}"#).is_ok());
    }

    #[test]
    fn nul_in_query_is_refused() {
        assert!(check_query_no_nul(Some("bank=%00")).is_err());
        assert!(check_query_no_nul(Some("bank=a%2500")).is_ok());
        assert!(check_query_no_nul(Some("bank=abc")).is_ok());
        assert!(check_query_no_nul(None).is_ok());
    }
}
