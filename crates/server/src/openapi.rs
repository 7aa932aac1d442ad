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
        "HMA: add a file to a bank",
        "curator",
    ),
    (
        "post",
        "/c/bank/{name}/signal",
        "HMA compatibility",
        "HMA: add signals to a bank",
        "curator",
    ),
];

/// The collector's routes (sources, sightings, platforms).
pub const COLLECTOR_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::collect::OPENAPI;
/// Signal exchange routes (exchanges, feeds, HMA's `/c/exchange…`).
pub const EXCHANGE_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::exchange::OPENAPI;
/// Spread tracking routes (clusters, liveness, notices, reports).
pub const SPREAD_ROUTES: &[(&str, &str, &str, &str, &str)] = crate::routes::spread::OPENAPI;

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter(|seg| seg.starts_with('{') && seg.ends_with('}'))
        .map(|seg| {
            let name = seg.trim_start_matches('{').trim_end_matches('}');
            // `{id}`, `{content_id}`, `{sighting_id}` are row ids.
            let schema = if name == "id" || name.ends_with("_id") {
                json!({"type": "integer", "format": "int64"})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    if method != "post" && method != "patch" && method != "put" {
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
        "/v1/banks" | "/v1/banks/{name}" => json!({
            "application/json": {"schema": {"$ref": "#/components/schemas/BankSettings"}}
        }),
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
        "/v1/sources" | "/v1/sources/{name}" => json!({
            "application/json": {"schema": {"$ref": "#/components/schemas/Source"}}
        }),
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
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": path_params(path),
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Client error",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if *role != "public" {
            op["security"] = json!([{"bearer": []}]);
            op["responses"]["401"] = json!({"description": "Missing, unknown or revoked key"});
            op["responses"]["403"] = json!({"description": "The key's role may not do this \
                (checked before the request body is read)"});
        }
        if let Some(b) = body_for(method, path) {
            op["responses"]["413"] =
                json!({"description": "Body over the limit (64 MiB by default)"});
            op["responses"]["503"] = json!({"description": "No room in the server's budget of \
                buffered request bodies; retry after the Retry-After header's seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}}});
            op["requestBody"] = b;
        }
        if let Some(obj) = entry.as_object_mut() {
            obj.insert((*method).to_string(), op);
        }
    }
    json!({
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
                                 "pattern": "^[A-Za-z0-9_.-]+$",
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
                        "name": {"type": "string", "description": "A-Z a-z 0-9 _ - . :, 1-100 characters (create only)"},
                        "kind": {"type": "string", "enum": ["urls", "page", "feed", "telegram_export", "warc", "locker"], "description": "create only"},
                        "enabled": {"type": "boolean", "description": "update only"},
                        "config": {"type": "object", "description": "version (1), urls (seeds), path (local file), \
                            depth (0-2), extra_hosts, locker_hosts, locker_rules, follow_links, \
                            proxy (socks5h://host:port), ignore_robots (audited), min_delay_ms, \
                            revisit_hours, max_links_per_page. Unknown fields are refused."}
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
