//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand.
//!
//! A derive-based generator would add a proc-macro dependency tree for a
//! document that changes rarely; instead the document is built from a
//! compact route table, and a test checks that every route the router
//! serves is described here (see `tests` below and the integration suite).

use echotrace_engine::limits::{
    MAX_BANK_NAME_BYTES, MAX_ID_BYTES, MAX_KEY_NAME_BYTES, MAX_LABELS, MAX_LABEL_BYTES,
    MAX_NOTE_BYTES, MAX_SECRET_BYTES, MAX_URL_BYTES, MIN_SECRET_BYTES,
};
use echotrace_engine::robust::REFINE_AUTO_MAX_HELD;
use serde_json::{json, Map, Value};

/// `(method, path, tag, summary, role needed or "public")`.
pub const ROUTES: &[(&str, &str, &str, &str, &str)] = &[
    ("get", "/healthz", "Operations", "Liveness", "public"),
    (
        "get",
        "/readyz",
        "Operations",
        "Readiness: 200 once indexes are loaded",
        "public",
    ),
    (
        "get",
        "/metrics",
        "Operations",
        "Prometheus metrics",
        "public",
    ),
    ("get", "/openapi.json", "Operations", "This document", "any"),
    ("post", "/v1/banks", "Banks", "Create a bank", "curator"),
    (
        "get",
        "/v1/banks",
        "Banks",
        "List banks",
        "curator|reviewer",
    ),
    (
        "get",
        "/v1/banks/{name}",
        "Banks",
        "Get a bank",
        "curator|reviewer",
    ),
    (
        "patch",
        "/v1/banks/{name}",
        "Banks",
        "Update enabled/description/thresholds/text_equivalences",
        "curator",
    ),
    (
        "delete",
        "/v1/banks/{name}",
        "Banks",
        "Delete a bank and its content",
        "curator",
    ),
    (
        "post",
        "/v1/banks/{name}/rederive",
        "Content",
        "Re-derive the robust-matching hashes of a page of items ({after, limit}) from their retained originals",
        "curator",
    ),
    (
        "post",
        "/v1/banks/{name}/content",
        "Content",
        "Add content: multipart file, {text}, {signals} or {url}",
        "curator",
    ),
    (
        "get",
        "/v1/banks/{name}/content",
        "Content",
        "List content of a bank (cursor paging)",
        "curator|reviewer",
    ),
    (
        "get",
        "/v1/banks/{name}/content/{id}",
        "Content",
        "Get a content item",
        "curator|reviewer",
    ),
    (
        "patch",
        "/v1/banks/{name}/content/{id}",
        "Content",
        "Update enabled/labels/note",
        "curator",
    ),
    (
        "delete",
        "/v1/banks/{name}/content/{id}",
        "Content",
        "Delete a content item",
        "curator",
    ),
    (
        "post",
        "/v1/hash",
        "Matching",
        "Hash a file or text into signals",
        "matcher",
    ),
    (
        "post",
        "/v1/lookup",
        "Matching",
        "Match a file, text or signals; records the submission and matches",
        "matcher",
    ),
    (
        "post",
        "/v1/lookup/batch",
        "Matching",
        "Match up to 1,000 signal sets and/or raw texts",
        "matcher",
    ),
    (
        "post",
        "/v1/compare",
        "Matching",
        "Compare two signals of one type",
        "matcher",
    ),
    (
        "get",
        "/v1/matches",
        "Review",
        "List matches (status, bank, cursor)",
        "reviewer|curator",
    ),
    (
        "get",
        "/v1/matches/{id}",
        "Review",
        "Get a match",
        "reviewer|curator",
    ),
    (
        "post",
        "/v1/matches/{id}/decision",
        "Review",
        "Confirm or reject a match",
        "reviewer",
    ),
    (
        "post",
        "/v1/actions/webhooks",
        "Actions",
        "Register a webhook (url, secret, events)",
        "admin",
    ),
    (
        "get",
        "/v1/actions/webhooks",
        "Actions",
        "List webhooks",
        "admin",
    ),
    (
        "delete",
        "/v1/actions/webhooks/{id}",
        "Actions",
        "Delete a webhook",
        "admin",
    ),
    (
        "post",
        "/v1/keys",
        "Keys",
        "Create an API key (returned once)",
        "admin",
    ),
    (
        "get",
        "/v1/keys",
        "Keys",
        "List API keys (never the keys)",
        "admin",
    ),
    (
        "delete",
        "/v1/keys/{id}",
        "Keys",
        "Revoke an API key",
        "admin",
    ),
    (
        "get",
        "/v1/audit",
        "Operations",
        "Audit log (cursor paging)",
        "admin|curator",
    ),
    (
        "get",
        "/m/lookup",
        "HMA compatibility",
        "HMA: look up one signal (signal_type=text: raw text)",
        "matcher",
    ),
    (
        "post",
        "/m/lookup",
        "HMA compatibility",
        "HMA: look up an uploaded file",
        "matcher",
    ),
    (
        "get",
        "/m/raw_lookup",
        "HMA compatibility",
        "HMA: raw index lookup",
        "matcher",
    ),
    (
        "get",
        "/c/banks",
        "HMA compatibility",
        "HMA: list banks",
        "curator|reviewer",
    ),
    (
        "post",
        "/c/banks",
        "HMA compatibility",
        "HMA: create a bank",
        "curator",
    ),
    (
        "post",
        "/c/bank/{name}/content",
        "HMA compatibility",
        "HMA: add a file to a bank ({id, signals}; already held: the holding item's)",
        "curator",
    ),
    (
        "post",
        "/c/bank/{name}/signal",
        "HMA compatibility",
        "HMA: add signals to a bank ({id, signals}; already held: the holding item's)",
        "curator",
    ),
];

/// The collector's routes (sources, sightings, platforms).
pub const COLLECTOR_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::collect::OPENAPI;
/// Signal exchange routes (exchanges, feeds, HMA's `/c/exchange…`).
pub const EXCHANGE_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::exchange::OPENAPI;
/// Spread tracking routes (clusters, liveness, notices, reports).
pub const SPREAD_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::spread::OPENAPI;

/// Successes other than 200 OK: `(method, path, status, description)`.
#[rustfmt::skip]
const SUCCESS: &[(&str, &str, &str, &str)] = &[
    ("post", "/v1/banks", "201", "Created: the bank"),
    ("delete", "/v1/banks/{name}", "204", "Deleted"),
    ("post", "/v1/banks/{name}/content", "201", "Created: the content item, with \"already_held\": false"),
    ("post", "/v1/banks/{name}/content", "200", "Already held: nothing added; the bank's item holding \
      the signals (for a file, text or URL: any of its signals but ocr_text, and for text signed \
      under an equivalence list its text signature only; derived hashes do not count), with \
      \"already_held\": true; \"derived_added\": true when a file gave that item (the same \
      picture) derived hashes of a kind it lacked"),
    ("delete", "/v1/banks/{name}/content/{id}", "204", "Deleted"),
    ("post", "/v1/actions/webhooks", "201", "Created: the webhook (never its secret)"),
    ("delete", "/v1/actions/webhooks/{id}", "204", "Deleted"),
    ("post", "/v1/keys", "201", "Created: {key, api_key} (the key is shown once)"),
    ("post", "/c/banks", "201", "Created: the bank (HMA shape)"),
    ("post", "/v1/sources", "201", "Created: the source"),
    ("delete", "/v1/sources/{name}", "204", "Deleted"),
    ("post", "/v1/sources/{name}/run", "202", "Queued: {source, queued}"),
    ("post", "/v1/exchanges", "201", "Created: the exchange"),
    ("delete", "/v1/exchanges/{name}", "204", "Deleted"),
    ("delete", "/v1/feeds/{bank}", "204", "No longer published"),
    ("post", "/c/exchanges", "201", "Created: {message}"),
    ("post", "/v1/notices", "201", "Created: the notice"),
];

/// Routes answered with something other than one JSON object:
/// `(method, path, [media types])`; a type ending in `+array` is a JSON
/// array.
const OK_MEDIA: &[(&str, &str, &[&str])] = &[
    ("get", "/metrics", &["text/plain"]),
    (
        "get",
        "/v1/reports/transparency",
        &["application/json", "text/csv", "text/html"],
    ),
    (
        "get",
        "/v1/notices/{id}/export",
        &["text/plain", "application/json"],
    ),
    (
        "get",
        "/v1/feeds/{bank}/snapshot",
        &["application/x-ndjson"],
    ),
    ("get", "/c/banks", &["application/json+array"]),
    ("get", "/c/exchanges", &["application/json+array"]),
    ("get", "/c/exchanges/apis", &["application/json+array"]),
];

/// Routes that fetch from elsewhere (a `url` item, an upstream exchange):
/// 502 when the other end fails.
const FETCHING: &[(&str, &str)] = &[
    ("post", "/v1/hash"),
    ("post", "/v1/lookup"),
    ("post", "/v1/banks/{name}/content"),
    ("post", "/c/bank/{name}/content"),
    ("post", "/m/lookup"),
    ("post", "/v1/exchanges/{name}/fetch"),
];

/// POST and PUT routes that read no request body.
const NO_BODY: &[(&str, &str)] = &[
    ("post", "/v1/sources/{name}/run"),
    ("post", "/v1/exchanges/{name}/fetch"),
];

/// Fields that are optional in the server's body types, where JSON `null`
/// reads as leaving them out: `(component schema or "METHOD path", fields)`.
#[rustfmt::skip]
const NULLABLE: &[(&str, &[&str])] = &[
    ("BankCreate", &["matching"]),
    ("BankUpdate", &["enabled", "description", "thresholds", "matching"]),
    ("SourceCreate", &["config"]),
    ("SourceUpdate", &["config", "enabled"]),
    ("Item", &["text", "signals", "url", "note", "banks"]),
    ("LookupContext", &["content_id", "url", "uploader_id"]),
    ("patch /v1/banks/{name}/content/{id}", &["enabled", "labels", "note"]),
    ("post /v1/notices", &["platform", "sent_at"]),
    ("post /v1/notices/{id}/response", &["responded_at"]),
    ("put /v1/feeds/{bank}", &["horizon_days"]),
    ("post /v1/exchanges/{name}/dry-run", &["policy"]),
    ("post /v1/exchanges", &["credentials", "policy", "enabled", "live", "poll_interval_secs", "bank"]),
    ("patch /v1/exchanges/{name}", &["enabled", "live", "policy", "config", "poll_interval_secs"]),
    ("post /c/banks", &["enabled", "enabled_ratio"]),
    ("put /c/exchange/{name}", &["enabled"]),
];

/// Let each of `fields` of the object schema `schema` also be `null`;
/// the fields it has not (a table out of step) are returned.
fn allow_null(schema: Option<&mut Value>, fields: &[&'static str]) -> Vec<&'static str> {
    let mut props = schema.and_then(|s| s.get_mut("properties"));
    let mut missing = Vec::new();
    for field in fields {
        let Some(p) = props.as_mut().and_then(|ps| ps.get_mut(*field)) else {
            missing.push(*field);
            continue;
        };
        match p.get("type").cloned() {
            Some(Value::String(t)) => p["type"] = json!([t, "null"]),
            Some(_) => {}
            None => *p = json!({"anyOf": [p.clone(), {"type": "null"}]}),
        }
    }
    missing
}

/// [`NULLABLE`] applied to the document; the fields not found.
fn apply_nullable(doc: &mut Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (at, fields) in NULLABLE {
        let schema = match at.split_once(' ') {
            Some((method, path)) => doc
                .get_mut("paths")
                .and_then(|p| p.get_mut(path))
                .and_then(|p| p.get_mut(method))
                .and_then(|o| o.get_mut("requestBody"))
                .and_then(|b| b.get_mut("content"))
                .and_then(|c| c.get_mut("application/json"))
                .and_then(|j| j.get_mut("schema")),
            None => doc
                .get_mut("components")
                .and_then(|c| c.get_mut("schemas"))
                .and_then(|s| s.get_mut(*at)),
        };
        missing.extend(
            allow_null(schema, fields)
                .into_iter()
                .map(|f| format!("{at}: {f}")),
        );
    }
    missing
}

/// Query parameters: `(method, path, name, kind, description)`. Kinds:
/// `string`, `int64`, `uint32`, `MIN..MAX` (an integer in the range),
/// `cursor` (a non-negative integer as text; empty: the start), `bool` (`true`/`false`),
/// `flag` (`true`/`1`/`yes`, or `false`/`0`/`no`/empty) and `a|b|c` (one of). A parameter
/// a route does not take is refused (400) where the route takes any.
#[rustfmt::skip]
const QUERY: &[(&str, &str, &str, &str, &str)] = &[
    ("get", "/v1/banks/{name}/content", "cursor", "int64", "the next_cursor of the previous page"),
    ("get", "/v1/banks/{name}/content", "limit", "uint32", "page size, default 100, at most 1000"),
    ("post", "/v1/lookup", "frames", "flag", "include vPDQ frame lists"),
    ("post", "/v1/lookup/batch", "frames", "flag", "include vPDQ frame lists"),
    ("get", "/v1/matches", "frames", "flag", "include vPDQ frame lists"),
    ("get", "/v1/matches", "status", "|pending|confirmed|rejected", "only matches with this status (empty: any)"),
    ("get", "/v1/matches", "bank", "string", "only matches of this bank (a name)"),
    ("get", "/v1/matches", "submission", "int64", "only matches of this submission"),
    ("get", "/v1/matches", "cursor", "int64", "the next_cursor of the previous page"),
    ("get", "/v1/matches", "limit", "uint32", "page size, default 100, at most 1000"),
    ("get", "/v1/matches/{id}", "frames", "flag", "include vPDQ frame lists"),
    ("get", "/v1/audit", "cursor", "int64", "the next_cursor of the previous page"),
    ("get", "/v1/audit", "limit", "uint32", "page size, default 100, at most 1000"),
    ("get", "/m/lookup", "signal_type", "string", "a signal type wire name, or text (raw text)"),
    ("get", "/m/lookup", "signal", "string", "the signal's value (or the text)"),
    ("get", "/m/lookup", "banks", "string", "comma-separated bank names"),
    ("get", "/m/lookup", "seed", "string", "accepted for HMA clients, ignored"),
    ("post", "/m/lookup", "banks", "string", "comma-separated bank names"),
    ("post", "/m/lookup", "bypass_coinflip", "string", "accepted for HMA clients, ignored"),
    ("post", "/m/lookup", "seed", "string", "accepted for HMA clients, ignored"),
    ("get", "/m/raw_lookup", "signal_type", "string", "a signal type wire name"),
    ("get", "/m/raw_lookup", "signal", "string", "the signal's value"),
    ("get", "/m/raw_lookup", "banks", "string", "comma-separated bank names"),
    ("get", "/m/raw_lookup", "include_distance", "string", "true: include distances"),
    ("post", "/c/bank/{name}/content", "url", "string", "a URL to fetch and add (when URL fetching is enabled)"),
    ("get", "/v1/sightings", "url", "string", "a URL (compared canonically)"),
    ("get", "/v1/sightings", "content_id", "int64", "a bank item: its variant cluster"),
    ("get", "/v1/sightings", "source", "string", "a source name"),
    ("get", "/v1/sightings", "host", "string", "a host"),
    ("get", "/v1/sightings", "platform", "string", "a platform"),
    ("get", "/v1/sightings", "matched", "bool", "only matched (true) or unmatched (false) sightings"),
    ("get", "/v1/sightings", "from", "string", "first seen at or after: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or Unix ms"),
    ("get", "/v1/sightings", "to", "string", "first seen before: as from"),
    ("get", "/v1/sightings", "cursor", "int64", "the next_cursor of the previous page"),
    ("get", "/v1/sightings", "limit", "uint32", "page size, default 100, at most 1000"),
    ("get", "/v1/feeds/{bank}", "after", "cursor", "the cursor to continue from (a next_cursor)"),
    ("get", "/v1/feeds/{bank}", "limit", "1..10000", "records per page"),
    ("get", "/v1/feeds/{bank}", "wait", "0..60", "long-poll seconds while there is nothing new"),
    ("get", "/v1/feeds/{bank}/opinions", "limit", "uint32", "page size, default 100, at most 1000"),
    ("get", "/v1/reports/transparency", "from", "string", "YYYY-MM-DD, RFC 3339 UTC or Unix ms; default 30 days ago"),
    ("get", "/v1/reports/transparency", "to", "string", "as from; default now"),
    ("get", "/v1/reports/transparency", "format", "json|csv|html", "default json"),
    ("get", "/v1/reports/transparency", "redact", "bool", "pseudonymous platform and group names"),
    ("get", "/v1/reports/transparency", "group_prefix", "string", "label prefix of groups, default group:"),
    ("get", "/v1/survival", "by", "platform|group|content_type|notice", "the strata"),
    ("get", "/v1/survival", "from", "string", "as for reports"),
    ("get", "/v1/survival", "to", "string", "as for reports"),
    ("get", "/v1/survival", "a", "string", "first stratum of the log-rank test"),
    ("get", "/v1/survival", "b", "string", "second stratum of the log-rank test"),
    ("get", "/v1/survival", "group_prefix", "string", "label prefix of groups, default group:"),
    ("get", "/v1/clusters", "limit", "uint32", "clusters, default 100, at most 1000"),
    ("get", "/v1/notices", "platform", "string", "only notices to this platform"),
    ("get", "/v1/notices", "sighting", "int64", "only notices naming this sighting"),
    ("get", "/v1/notices", "cursor", "int64", "the next_cursor of the previous page"),
    ("get", "/v1/notices", "limit", "uint32", "page size, default 100, at most 1000"),
    ("get", "/v1/notices/{id}/export", "format", "text|json", "default text"),
];

fn query_params(method: &str, path: &str) -> Vec<Value> {
    QUERY
        .iter()
        .filter(|(m, p, ..)| *m == method && *p == path)
        .map(|(_, _, name, kind, description)| {
            let schema = match *kind {
                "string" => json!({"type": "string"}),
                "int64" => json!({"type": "integer", "format": "int64"}),
                "uint32" => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
                "bool" => json!({"type": "boolean"}),
                "cursor" => json!({"type": "string", "pattern": "^[0-9]*$"}),
                range if range.contains("..") => {
                    let (min, max) = range.split_once("..").unwrap_or_default();
                    json!({"type": "integer", "minimum": min.parse::<u64>().unwrap_or(0),
                           "maximum": max.parse::<u64>().unwrap_or(u64::from(u32::MAX))})
                }
                "flag" => {
                    json!({"type": "string", "enum": ["true", "1", "yes", "false", "0", "no", ""]})
                }
                one_of => json!({"type": "string", "enum": one_of.split('|').collect::<Vec<_>>()}),
            };
            json!({"name": name, "in": "query", "required": false, "schema": schema,
                   "description": description})
        })
        .collect()
}

/// The responses of one operation: its successes (200 unless [`SUCCESS`]
/// says otherwise) with their media types, and the errors it can give.
fn responses(method: &str, path: &str, role: &str, has_body: bool) -> Value {
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    let mut r = Map::new();
    let successes = SUCCESS
        .iter()
        .filter(|(m, p, ..)| *m == method && *p == path);
    for (_, _, status, description) in successes {
        let entry = match *status {
            "204" => json!({"description": description}),
            _ => json!({"description": description,
                        "content": {"application/json": {"schema": {"type": "object"}}}}),
        };
        r.insert((*status).into(), entry);
    }
    if r.is_empty() {
        let media: &[&str] = OK_MEDIA
            .iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .map_or(&["application/json"], |(_, _, media)| *media);
        let content: Map<String, Value> = media
            .iter()
            .map(|t| match t.strip_suffix("+array") {
                Some(t) => (t.to_string(), json!({"schema": {"type": "array"}})),
                None if *t == "application/json" => {
                    (t.to_string(), json!({"schema": {"type": "object"}}))
                }
                None => (t.to_string(), json!({"schema": {"type": "string"}})),
            })
            .collect();
        r.insert(
            "200".into(),
            json!({"description": "OK", "content": content}),
        );
    }
    r.insert(
        "4XX".into(),
        json!({"description": "Client error", "content": error}),
    );
    if role != "public" {
        r.insert(
            "401".into(),
            json!({"description": "Missing, unknown or revoked key", "content": error}),
        );
        r.insert(
            "403".into(),
            json!({"description": "The key's role may not do this \
            (checked before the request body is read)", "content": error}),
        );
    }
    if has_body {
        r.insert(
            "413".into(),
            json!({"description": "Body over the limit (64 MiB by default)", "content": error}),
        );
    }
    if FETCHING.contains(&(method, path)) {
        r.insert(
            "502".into(),
            json!({"description": "The URL or upstream could not be fetched", "content": error}),
        );
    }
    // Everything but liveness and metrics waits for the engine to load.
    if path != "/healthz" && path != "/metrics" {
        let description = if has_body {
            "Not ready (loading or stopping), or no room in the server's budget of \
             buffered request bodies: retry after the Retry-After header's seconds"
        } else {
            "Not ready: the indexes are loading or the server is stopping"
        };
        r.insert(
            "503".into(),
            json!({"description": description, "content": error,
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}}),
        );
    }
    Value::Object(r)
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter(|seg| seg.starts_with('{') && seg.ends_with('}'))
        .map(|seg| {
            let name = seg.trim_start_matches('{').trim_end_matches('}');
            // `{id}`, `{content_id}`, `{sighting_id}` are row ids.
            let schema = if name == "id" || name.ends_with("_id") {
                json!({"type": "integer", "format": "int64"})
            } else if name == "api" {
                json!({"type": "string", "enum": api_names()})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// A JSON request body of `schema`.
fn json_body(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The channels a takedown notice can go by.
fn notice_channels() -> Vec<&'static str> {
    use echotrace_spread::notice::Channel;
    [
        Channel::Email,
        Channel::Api,
        Channel::DsaArt16,
        Channel::TcoOrder,
    ]
    .map(Channel::as_str)
    .to_vec()
}

/// `schemas[to]`: a copy of `schemas[from]` (one schema documenting both a
/// create and an update body) for one of them: without the properties
/// `drop`, with `required`, and refusing other properties as the server
/// does.
fn variant(schemas: &mut Value, from: &str, to: &str, drop: &[&str], required: &[&str]) {
    let mut v = schemas[from].clone();
    if let Some(props) = v["properties"].as_object_mut() {
        for name in drop {
            props.remove(*name);
        }
    }
    v["additionalProperties"] = json!(false);
    if !required.is_empty() {
        v["required"] = json!(required);
    }
    schemas[to] = v;
}

/// The exchange APIs' names (`api` of an exchange, `{api}` in paths).
fn api_names() -> Vec<&'static str> {
    echotrace_exchange::APIS.iter().map(|a| a.name).collect()
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    if method != "post" && method != "patch" && method != "put" || NO_BODY.contains(&(method, path))
    {
        return None;
    }
    let item = json!({"$ref": "#/components/schemas/Item"});
    let multipart = json!({"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"},
        "labels": {"type": "string", "description": "comma-separated or JSON array"},
        "note": {"type": "string", "maxLength": MAX_NOTE_BYTES},
        "banks": {"type": "string"},
        "context": {"type": "string", "description": "JSON LookupContext"}
    }});
    let content = match path {
        "/v1/banks/{name}/content"
        | "/v1/lookup"
        | "/v1/hash"
        | "/c/bank/{name}/content"
        | "/m/lookup" => json!({
            "application/json": {"schema": item},
            "multipart/form-data": {"schema": multipart}
        }),
        "/v1/lookup/batch" => json!({
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchLookup"}}
        }),
        "/v1/banks" => json_body(json!({"$ref": "#/components/schemas/BankCreate"})),
        "/v1/banks/{name}" => json_body(json!({"$ref": "#/components/schemas/BankUpdate"})),
        "/v1/matches/{id}/decision" => json!({
            "application/json": {"schema": {"type": "object", "required": ["decision"],
                "properties": {
                    "decision": {"type": "string", "enum": ["confirm", "reject"]},
                    "note": {"type": "string", "maxLength": MAX_NOTE_BYTES}}}}
        }),
        "/v1/actions/webhooks" => json!({
            "application/json": {"schema": {"type": "object", "required": ["url", "secret"],
                "properties": {
                    "url": {"type": "string", "maxLength": MAX_URL_BYTES},
                    "secret": {"type": "string", "minLength": MIN_SECRET_BYTES,
                               "maxLength": MAX_SECRET_BYTES},
                    "events": {"type": "array", "items": {"type": "string",
                               "enum": ["match", "decision", "quarantine"]}}}}}
        }),
        "/v1/keys" => json!({
            "application/json": {"schema": {"type": "object", "required": ["role"],
                "properties": {
                    "role": {"type": "string", "enum": ["admin", "curator", "matcher", "reviewer", "partner"]},
                    "name": {"type": "string", "maxLength": MAX_KEY_NAME_BYTES,
                             "description": "default: the role and the UTC time of creation"}}}}
        }),
        "/v1/compare" => json_body(json!({"type": "object", "additionalProperties": false,
            "required": ["signal_type", "a", "b"], "properties": {
                "signal_type": {"type": "string",
                    "description": "a signal type wire name, or text to compare two raw texts"},
                "a": {"type": "string"}, "b": {"type": "string"}}})),
        "/v1/banks/{name}/rederive" => json_body(json!({"type": "object",
            "additionalProperties": false, "properties": {
                "after": {"type": "integer", "format": "int64", "default": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}})),
        "/v1/banks/{name}/content/{id}" => json_body(json!({"type": "object",
            "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean"},
                "labels": {"type": "array", "maxItems": MAX_LABELS,
                           "items": {"type": "string", "maxLength": MAX_LABEL_BYTES}},
                "note": {"type": "string", "maxLength": MAX_NOTE_BYTES}}})),
        "/v1/platforms" => json_body(json!({"type": "object", "additionalProperties": false,
            "required": ["host", "platform"], "properties": {
                "host": {"type": "string"}, "platform": {"type": "string"}}})),
        "/v1/notices" => json_body(json!({"type": "object", "additionalProperties": false,
            "required": ["channel", "sighting_ids"], "properties": {
                "channel": {"type": "string", "enum": notice_channels()},
                "sighting_ids": {"type": "array", "minItems": 1,
                                 "items": {"type": "integer", "format": "int64"}},
                "platform": {"type": "string",
                             "description": "default: the sightings' platform (they must share one)"},
                "reference": {"type": "string"},
                "sent_at": {"type": "integer", "format": "int64", "description": "Unix ms; default now"},
                "note": {"type": "string", "maxLength": MAX_NOTE_BYTES}}})),
        "/v1/notices/{id}/response" => json_body(json!({"type": "object",
            "additionalProperties": false, "required": ["response"], "properties": {
                "response": {"type": "string", "enum": ["removed", "rejected", "no_response"]},
                "responded_at": {"type": "integer", "format": "int64",
                                 "description": "Unix ms; default now"}}})),
        "/v1/feeds/{bank}" => json_body(json!({"type": "object", "additionalProperties": false,
            "properties": {
                "partners": {"type": "array", "items": {"type": "string"},
                             "description": "names of partner keys"},
                "horizon_days": {"type": "integer", "minimum": 1, "maximum": 3650,
                                 "default": 180}}})),
        "/v1/feeds/{bank}/opinions" => json_body(json!({"type": "object",
            "additionalProperties": false, "required": ["opinions"], "properties": {
                "opinions": {"type": "array", "items": {"type": "object",
                    "additionalProperties": false,
                    "required": ["signal_type", "value", "category"], "properties": {
                        "signal_type": {"type": "string"}, "value": {"type": "string"},
                        "category": {"type": "string", "enum": ["negative", "seed", "positive"]},
                        "tags": {"type": "array", "items": {"type": "string"}}}}}}})),
        "/v1/exchanges/apis/{api}/credentials" => json_body(json!({"type": "object",
            "additionalProperties": false, "required": ["credentials"], "properties": {
                "credentials": {"type": "object",
                    "description": "the API's credential fields (see /v1/exchanges/apis)"}}})),
        "/v1/exchanges/{name}/dry-run" => json_body(json!({"type": "object",
            "additionalProperties": false, "properties": {
                "policy": {"$ref": "#/components/schemas/ExchangePolicy"}}})),
        "/v1/exchanges" => json_body(json!({"type": "object", "additionalProperties": false,
            "required": ["name", "api"], "properties": {
                "name": {"type": "string"},
                "api": {"type": "string", "enum": api_names()},
                "config": {"type": "object"},
                "credentials": {"type": "object"},
                "policy": {"$ref": "#/components/schemas/ExchangePolicy"},
                "enabled": {"type": "boolean"},
                "live": {"type": "boolean", "description": "false: a dry run (default true)"},
                "poll_interval_secs": {"type": "integer", "minimum": 0},
                "bank": {"type": "string",
                         "description": "share this bank instead of creating one named like the exchange"}}})),
        "/v1/exchanges/{name}" => json_body(json!({"type": "object",
            "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean"},
                "live": {"type": "boolean"},
                "policy": {"$ref": "#/components/schemas/ExchangePolicy"},
                "config": {"type": "object"},
                "credentials": {"type": ["object", "null"],
                                "description": "null removes the exchange's own"},
                "poll_interval_secs": {"type": "integer", "minimum": 0}}})),
        "/c/banks" => json_body(
            json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "pattern": "^[A-Z0-9_]+$"},
                "enabled": {"type": "boolean"},
                "enabled_ratio": {"type": "number"}}}),
        ),
        "/c/exchanges" => json_body(json!({"type": "object", "required": ["bank", "api"],
            "properties": {
                "bank": {"type": "string", "pattern": "^[A-Z0-9_]+$"},
                "api": {"type": "string", "enum": api_names()},
                "api_json": {"type": "object"}}})),
        "/c/exchange/{name}" => json_body(json!({"type": "object", "properties": {
                "enabled": {"type": "boolean"}}})),
        "/c/exchanges/api/{api}" => json_body(json!({"type": "object", "properties": {
                "credential_json": {"type": "object"}}})),
        "/c/bank/{name}/signal" => json_body(json!({"type": "object",
            "description": "signal type wire name -> value, plus an optional note",
            "properties": {"note": {"type": ["string", "null"]}},
            "additionalProperties": {"type": "string"}})),
        "/v1/sources" => json_body(json!({"$ref": "#/components/schemas/SourceCreate"})),
        "/v1/sources/{name}" => json_body(json!({"$ref": "#/components/schemas/SourceUpdate"})),
        _ => json!({"application/json": {"schema": {"type": "object"}}}),
    };
    Some(json!({"required": true, "content": content}))
}

/// Every documented route: [`ROUTES`] and the tables of the route modules
/// that keep their own (collector, exchanges and feeds, spread tracking).
pub fn all_routes() -> impl Iterator<
    Item = &'static (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
> {
    ROUTES
        .iter()
        .chain(COLLECTOR_ROUTES)
        .chain(EXCHANGE_ROUTES)
        .chain(SPREAD_ROUTES)
}

/// Build the document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary, role) in all_routes() {
        let entry = paths
            .entry((*path).to_string())
            .or_insert_with(|| json!({}));
        let body = body_for(method, path);
        let mut parameters = path_params(path);
        parameters.extend(query_params(method, path));
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": parameters,
            "responses": responses(method, path, role, body.is_some()),
        });
        if *role != "public" {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(b) = body {
            op["requestBody"] = b;
        }
        if let Some(obj) = entry.as_object_mut() {
            obj.insert((*method).to_string(), op);
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "echotrace", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Match uploads against banks of known violent-extremist content."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "BankSettings": {"type": "object",
                    "description": "POST /v1/banks (name required) and PATCH /v1/banks/{name} \
                                    (every field optional). A bad equivalence list is a 400 \
                                    naming the line.",
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": MAX_BANK_NAME_BYTES,
                                 "pattern": "^[A-Za-z0-9_.-]+$", "not": {"enum": [".", ".."]},
                                 "description": "one URL path segment: A-Z a-z 0-9 _ - ., \
                                                 not \".\" or \"..\" (create only)"},
                        "kind": {"type": "string", "enum": ["block", "allow"], "description": "create only"},
                        "enabled": {"type": "boolean", "description": "update only"},
                        "description": {"type": "string", "maxLength": MAX_NOTE_BYTES},
                        "thresholds": {"type": "object", "additionalProperties": {"type": "number"},
                            "description": "Overrides by key: pdq / vpdq (max Hamming distance, \
                                            0-256; vpdq per frame), text_minhash (min Jaccard, \
                                            0-1), vpdq_query_pct / vpdq_compared_pct (vPDQ share \
                                            rule in percent, 0-100, default 80 / 0)."},
                        "text_equivalences": {"type": ["string", "null"],
                            "description": "One group per line, terms separated by '=' \
                                            (e.g. \"daesh = isis = isil = islamic state\"); \
                                            '#' comments. Applied to bank text when added and to \
                                            raw lookup text. Each change is a new version; items \
                                            keep matching under the version they were signed \
                                            with (see text_items_older_list on the bank). \
                                            \"\" removes the list. A ready-made text_minhash \
                                            lookup is compared as-is."},
                        "matching": {"$ref": "#/components/schemas/MatchingSettings"}
                    }},
                "MatchingSettings": {"type": "object", "additionalProperties": false,
                    "description": "Robust-matching channels of the bank (docs/ROBUST.md). \
                                    The object is replaced whole: a missing field is its \
                                    default. A wrong type is a 4xx naming the field. The bank \
                                    JSON also reports held_originals (file-added originals \
                                    whose derived hashes it holds) and refining (whether \
                                    lookups refine toward its windows now: never while \
                                    it holds none, as a hash-only bank has no windows).",
                    "properties": {
                        "dihedral": {"type": "boolean", "default": true,
                            "description": "match the 8 rotations/flips of uploaded images"},
                        "window": {"type": "boolean", "default": true,
                            "description": "match small crops of uploads and the crop-grid \
                                            windows of file-added images (off also drops them \
                                            from memory)"},
                        "part": {"type": "boolean", "default": true,
                            "description": "match the fixed parts of file-added images (off \
                                            also drops them from memory and stores none for \
                                            items added meanwhile)"},
                        "refine": {"type": ["boolean", "null"], "default": null,
                            "description": format!(
                                "alignment refinement of needles that came near a low-quality \
                                 window (needs window): true on, false off, null automatic - on \
                                 while the bank holds at most {REFINE_AUTO_MAX_HELD} file-added \
                                 originals. A lookup that refines costs about 6-9x a plain \
                                 lookup.")}
                    }},
                "BatchLookup": {"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
                        "type": "object",
                        "description": "signals, text, or both. Raw text is signed without a \
                                        list (its text_minhash) and under each target bank's \
                                        text_equivalences version, like /v1/lookup text; it \
                                        may go with other signal types but not with a \
                                        text_minhash in signals (400). Empty text: 400. All \
                                        raw text of a batch together is bounded like one text \
                                        lookup (64 MiB by default; over it 413). The batch is \
                                        validated whole, then recorded in one transaction.",
                        "properties": {
                            "signals": {"type": "object", "additionalProperties": {"type": "string"}},
                            "text": {"type": "string"},
                            "banks": {"type": "array", "items": {"type": "string"}},
                            "context": {"$ref": "#/components/schemas/LookupContext"}
                        }}}}},
                "Source": {"type": "object",
                    "description": "POST /v1/sources (name, kind required) and PATCH \
                                    /v1/sources/{name} (config and/or enabled). A bad config is a \
                                    400 naming the field (config.urls[2]: ...).",
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$", "minLength": 1, "maxLength": 100, "description": "A-Z a-z 0-9 _ - . :, 1-100 characters (create only)"},
                        "kind": {"type": "string", "enum": ["urls", "page", "feed", "telegram_export", "warc", "locker"], "description": "create only"},
                        "enabled": {"type": "boolean", "description": "update only"},
                        "config": {"type": "object", "description": "version (1), urls (seeds), path (local file), \
                            depth (0-2), extra_hosts, locker_hosts, locker_rules, follow_links, \
                            proxy (socks5h://host:port), ignore_robots (audited), min_delay_ms, \
                            revisit_hours, max_links_per_page, robust (default true: images and \
                            videos match through the robust channels; false: plain hashes only). \
                            Unknown fields are refused."}
                    }},
                "ExchangePolicy": {"type": "object", "additionalProperties": false,
                    "description": "Which upstream records an exchange turns into bank items.",
                    "properties": {
                        "version": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                        "signal_types": {"type": "array", "items": {"type": "string"},
                                         "description": "signal type wire names to keep (empty: all)"},
                        "include_labels": {"type": "array", "items": {"type": "string"}},
                        "exclude_labels": {"type": "array", "items": {"type": "string"}},
                        "skip_negative": {"type": "boolean"},
                        "skip_disputed": {"type": "boolean"}
                    }},
                "LookupContext": {"type": "object", "properties": {
                    "content_id": {"type": "string", "maxLength": MAX_ID_BYTES},
                    "url": {"type": "string", "maxLength": MAX_URL_BYTES},
                    "uploader_id": {"type": "string", "maxLength": MAX_ID_BYTES}}},
                "Item": {"type": "object", "description": "Exactly one of text, signals, url. \
                    Lookups accept ?frames=true to include vPDQ frame lists (matched_value, \
                    query_value) in matches; by default a vPDQ match carries query_match_pct, \
                    compared_match_pct, query_frames and compared_frames instead. No string \
                    anywhere in a request may contain a NUL character (400 naming the field).",
                    "properties": {
                        "text": {"type": "string"},
                        "signals": {"type": "object", "additionalProperties": {"type": "string"},
                                    "description": "signal type wire name → value, e.g. {\"pdq\": \"<64 hex>\"}"},
                        "url": {"type": "string", "description": "fetched only when URL fetching is enabled"},
                        "labels": {"type": "array", "maxItems": MAX_LABELS,
                                   "items": {"type": "string", "maxLength": MAX_LABEL_BYTES}},
                        "note": {"type": "string", "maxLength": MAX_NOTE_BYTES},
                        "banks": {"type": "array", "items": {"type": "string"}},
                        "context": {"$ref": "#/components/schemas/LookupContext"}
                    }}
            }
        }
    });
    let schemas = &mut doc["components"]["schemas"];
    variant(
        schemas,
        "BankSettings",
        "BankCreate",
        &["enabled"],
        &["name"],
    );
    variant(
        schemas,
        "BankSettings",
        "BankUpdate",
        &["name", "kind"],
        &[],
    );
    variant(
        schemas,
        "Source",
        "SourceCreate",
        &["enabled"],
        &["name", "kind"],
    );
    variant(schemas, "Source", "SourceUpdate", &["name", "kind"], &[]);
    let missing = apply_nullable(&mut doc);
    debug_assert!(
        missing.is_empty(),
        "NULLABLE names no such fields: {missing:?}"
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_fields_exist() {
        let mut doc = document();
        // Applied twice: the second pass still finds every field.
        assert_eq!(apply_nullable(&mut doc), Vec::<String>::new());
        let update = &doc["components"]["schemas"]["BankUpdate"]["properties"];
        assert_eq!(update["enabled"]["type"], json!(["boolean", "null"]));
        assert!(update["matching"]["anyOf"].is_array(), "{update}");
    }

    #[test]
    fn every_route_is_documented_once() {
        let doc = document();
        let mut n = 0;
        for (method, path, ..) in all_routes() {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
            n += 1;
        }
        let total: usize = doc["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .filter_map(|v| v.as_object())
                    .map(|o| o.len())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(total, n, "duplicate route entries");
        assert_eq!(
            doc["paths"]["/v1/banks/{name}/content/{id}"]["patch"]["parameters"][1]["name"],
            "id"
        );
    }
}
