//! The OpenAPI document (`GET /openapi.json`) describes what the server
//! really answers: each request below is made through HTTP and its status,
//! media type and JSON shape are looked up in the document's entry for the
//! operation (found by running schemathesis against the document:
//! `scripts/schemathesis.sh`). Runs on SQLite and on PostgreSQL
//! (`$ECHOTRACE_TEST_PG_URL`).

mod common;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_backends!(
    answers_are_documented,
    query_parameters_and_bodies_are_documented,
    create_and_update_bodies_are_told_apart,
    object_bodies_and_null_fields,
);

const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

/// A request as the admin: its status, its media type (without
/// parameters) and its body ([`common::json_or_text`]).
async fn send(
    svc: &common::Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = svc.request(Some(&svc.admin), method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let media = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (status, media, common::json_or_text(text))
}

/// Send a request and assert the document lists its answer for the
/// operation `method template`: the status (exactly or as its class,
/// `4XX`), the media type, and a JSON array or object as documented.
/// Returns the body.
async fn documented(
    svc: &common::Server,
    doc: &Value,
    method: Method,
    template: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, media, v) = send(svc, method.clone(), path, body).await;
    let op = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let responses = &op["responses"];
    let class = format!("{}XX", status.as_u16() / 100);
    let entry = match &responses[status.as_str()] {
        Value::Null => &responses[class.as_str()],
        e => e,
    };
    assert!(
        entry.is_object(),
        "{method} {path} answered {status} ({v}); the document lists {:?}",
        responses.as_object().map(|r| r.keys().collect::<Vec<_>>())
    );
    if status == StatusCode::NO_CONTENT {
        assert!(
            entry["content"].is_null(),
            "{method} {template}: 204 with content"
        );
        return v;
    }
    let content = &entry["content"];
    assert!(
        content[media.as_str()].is_object(),
        "{method} {path} answered {status} as {media:?}; the document lists {content}"
    );
    match content[media.as_str()]["schema"]["type"].as_str() {
        Some("array") => assert!(v.is_array(), "{method} {path}: not an array: {v}"),
        Some("object") => assert!(v.is_object(), "{method} {path}: not an object: {v}"),
        _ => {}
    }
    v
}

/// Created is 201 (an add the bank already held: 200), queued 202,
/// deleted 204, and the non-JSON and JSON-array answers are documented as
/// such.
async fn answers_are_documented(db: &TestDb) {
    let svc = common::Server::start(common::config(&db.url), None).await;
    let doc = svc.ok(Method::GET, "/openapi.json", None).await;

    let post = Method::POST;
    let bank = json!({"name": "b"});
    documented(
        &svc,
        &doc,
        post.clone(),
        "/v1/banks",
        "/v1/banks",
        Some(bank),
    )
    .await;
    documented(&svc, &doc, Method::GET, "/v1/banks", "/v1/banks", None).await;
    let item = documented(
        &svc,
        &doc,
        post.clone(),
        "/v1/banks/{name}/content",
        "/v1/banks/b/content",
        Some(json!({"signals": {"pdq": PDQ}})),
    )
    .await;
    // The same signals again: held, 200 (documented beside the 201).
    let held = documented(
        &svc,
        &doc,
        post.clone(),
        "/v1/banks/{name}/content",
        "/v1/banks/b/content",
        Some(json!({"signals": {"pdq": PDQ}})),
    )
    .await;
    assert_eq!(
        (&held["id"], &held["already_held"]),
        (&item["id"], &json!(true))
    );
    let path = format!("/v1/banks/b/content/{}", item["id"]);
    let template = "/v1/banks/{name}/content/{id}";
    documented(&svc, &doc, Method::DELETE, template, &path, None).await;
    let key = json!({"role": "matcher"});
    documented(&svc, &doc, post.clone(), "/v1/keys", "/v1/keys", Some(key)).await;
    let hook = documented(
        &svc,
        &doc,
        post.clone(),
        "/v1/actions/webhooks",
        "/v1/actions/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook", "secret": "s"})),
    )
    .await;
    let path = format!("/v1/actions/webhooks/{}", hook["id"]);
    let template = "/v1/actions/webhooks/{id}";
    documented(&svc, &doc, Method::DELETE, template, &path, None).await;
    let source = json!({"name": "s", "kind": "urls",
                        "config": {"urls": ["https://example.com/"]}});
    documented(
        &svc,
        &doc,
        post.clone(),
        "/v1/sources",
        "/v1/sources",
        Some(source),
    )
    .await;
    let run = "/v1/sources/{name}/run";
    documented(&svc, &doc, post.clone(), run, "/v1/sources/s/run", None).await;
    let one = "/v1/sources/{name}";
    documented(&svc, &doc, Method::DELETE, one, "/v1/sources/s", None).await;
    documented(&svc, &doc, Method::GET, "/metrics", "/metrics", None).await;
    documented(&svc, &doc, Method::GET, "/c/banks", "/c/banks", None).await;
    let report = "/v1/reports/transparency";
    for format in ["json", "csv", "html"] {
        let path = format!("{report}?format={format}");
        documented(&svc, &doc, Method::GET, report, &path, None).await;
    }
    documented(
        &svc,
        &doc,
        Method::DELETE,
        "/v1/banks/{name}",
        "/v1/banks/b",
        None,
    )
    .await;
    // Errors are JSON whatever the status.
    let one = "/v1/banks/{name}";
    documented(&svc, &doc, Method::GET, one, "/v1/banks/b", None).await;
    svc.stop().await;
}

/// The query parameters a route reads are documented (a fuzzer can only
/// try what the document names), and a route that reads no body does not
/// demand one.
async fn query_parameters_and_bodies_are_documented(db: &TestDb) {
    let svc = common::Server::start(common::config(&db.url), None).await;
    let doc = svc.ok(Method::GET, "/openapi.json", None).await;
    let names = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    };
    for (path, method, expected) in [
        (
            "/v1/matches",
            "get",
            &["frames", "status", "bank", "submission", "cursor", "limit"][..],
        ),
        (
            "/v1/sightings",
            "get",
            &["url", "content_id", "host", "platform", "from", "to"][..],
        ),
        ("/v1/feeds/{bank}", "get", &["after", "limit", "wait"][..]),
        (
            "/v1/reports/transparency",
            "get",
            &["from", "to", "format", "redact"][..],
        ),
        ("/m/lookup", "get", &["signal_type", "signal", "banks"][..]),
    ] {
        let got = names(path, method);
        for name in expected {
            assert!(
                got.iter().any(|n| n == name),
                "{method} {path}: no {name} in {got:?}"
            );
        }
    }
    // An empty frames= or status= is read as leaving it out, and
    // documented so.
    for name in ["frames", "status"] {
        let (s, v) = svc
            .admin_call(Method::GET, &format!("/v1/matches?{name}="), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let one_of = doc["paths"]["/v1/matches"]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"]["enum"].clone())
            .unwrap_or_default();
        let listed = one_of.as_array().is_some_and(|e| e.contains(&json!("")));
        assert!(listed, "{name}: {one_of}");
    }
    // A documented query parameter is read: a bad value is refused.
    let (s, v) = svc
        .admin_call(Method::GET, "/v1/matches?status=maybe", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The ranges the server enforces are the documented ones.
    svc.ok(Method::POST, "/v1/banks", Some(json!({"name": "f"})))
        .await;
    let (s, v) = svc
        .admin_call(
            Method::PUT,
            "/v1/feeds/f",
            Some(json!({"horizon_days": 3651})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    svc.ok(Method::PUT, "/v1/feeds/f", Some(json!({}))).await;
    let feed = &doc["paths"]["/v1/feeds/{bank}"];
    let horizon = &feed["put"]["requestBody"]["content"]["application/json"]["schema"]
        ["properties"]["horizon_days"];
    assert_eq!(horizon["maximum"], 3650, "{horizon}");
    for (name, max) in [("limit", 10_000), ("wait", 60)] {
        let param = feed["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("no {name} parameter: {feed}"));
        assert_eq!(param["schema"]["maximum"], max, "{param}");
        let over = format!("/v1/feeds/f?{name}={}", max + 1);
        let (s, v) = svc.admin_call(Method::GET, &over, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{over}: {v}");
    }
    for path in ["/v1/sources/{name}/run", "/v1/exchanges/{name}/fetch"] {
        let op = &doc["paths"][path]["post"];
        assert!(op.is_object(), "{path}");
        assert!(op["requestBody"].is_null(), "{path} reads no body: {op}");
    }
    let compare = &doc["paths"]["/v1/compare"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(
        compare["required"],
        json!(["signal_type", "a", "b"]),
        "{compare}"
    );
    svc.stop().await;
}

/// A body schema shared by a create and an update documents, for each,
/// only the fields that one accepts: the server refuses the others.
async fn create_and_update_bodies_are_told_apart(db: &TestDb) {
    let svc = common::Server::start(common::config(&db.url), None).await;
    let doc = svc.ok(Method::GET, "/openapi.json", None).await;
    let body = |path: &str, method: &str| -> Value {
        let schema =
            &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        match schema["$ref"].as_str() {
            Some(r) => {
                doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone()
            }
            None => schema.clone(),
        }
    };
    // (method, path, its template, a body accepted, one refused, the field
    // that makes it refused)
    for (method, path, template, good, refused, field) in [
        (
            "post",
            "/v1/banks",
            "/v1/banks",
            json!({"name": "c"}),
            json!({"name": "d", "enabled": true}),
            "enabled",
        ),
        (
            "patch",
            "/v1/banks/c",
            "/v1/banks/{name}",
            json!({"enabled": false}),
            json!({"kind": "allow"}),
            "kind",
        ),
        (
            "post",
            "/v1/sources",
            "/v1/sources",
            json!({"name": "s", "kind": "urls", "config": {"urls": ["https://example.com/"]}}),
            json!({"name": "t", "kind": "urls", "enabled": true}),
            "enabled",
        ),
        (
            "patch",
            "/v1/sources/s",
            "/v1/sources/{name}",
            json!({"enabled": false}),
            json!({"name": "u"}),
            "name",
        ),
    ] {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (s, v) = svc.admin_call(m.clone(), path, Some(good)).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        let (s, v) = svc.admin_call(m, path, Some(refused)).await;
        assert!(s.is_client_error(), "{method} {path} with {field}: {s} {v}");
        let schema = body(template, method);
        assert!(
            schema["properties"].is_object(),
            "{method} {template}: {schema}"
        );
        assert!(
            schema["properties"][field].is_null(),
            "{method} {template} documents {field}"
        );
        assert_eq!(schema["additionalProperties"], false, "{method} {template}");
    }
    let banks = body("/v1/banks", "post");
    assert_eq!(banks["required"], json!(["name"]), "{banks}");
    let channel = &body("/v1/notices", "post")["properties"]["channel"];
    assert!(
        channel["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("dsa_art16"))),
        "{channel}"
    );
    svc.stop().await;
}

/// A JSON body is an object: an array of a body's fields in order was read
/// as that body (`[false, null, null]` disabled a bank item); and `null`
/// for an optional field, read as leaving it out, is documented (both
/// found by schemathesis's negative_data_rejection check).
async fn object_bodies_and_null_fields(db: &TestDb) {
    let svc = common::Server::start(common::config(&db.url), None).await;
    svc.ok(Method::POST, "/v1/banks", Some(json!({"name": "a"})))
        .await;
    let item = svc
        .ok(
            Method::POST,
            "/v1/banks/a/content",
            Some(json!({"signals": {"pdq": PDQ}})),
        )
        .await;
    let path = format!("/v1/banks/a/content/{}", item["id"]);
    let (s, v) = svc
        .admin_call(Method::PATCH, &path, Some(json!([false, null, null])))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("JSON object"),
        "{v}"
    );
    let item = svc.ok(Method::GET, &path, None).await;
    assert_eq!(item["enabled"], true, "{item}");
    // null is "leave it out" for an optional field, and documented so.
    let (s, v) = svc
        .admin_call(
            Method::PATCH,
            &path,
            Some(json!({"note": null, "enabled": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc = svc.ok(Method::GET, "/openapi.json", None).await;
    let note = &doc["paths"]["/v1/banks/{name}/content/{id}"]["patch"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["note"];
    assert_eq!(note["type"], json!(["string", "null"]), "{note}");
    let (s, v) = svc
        .admin_call(Method::POST, "/v1/banks", Some(json!(["b"])))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    svc.stop().await;
}
