//! HTTP integration tests of the matching service: a real server on a
//! loopback port (in-process router on a `TcpListener`), driven over HTTP
//! with reqwest. Every test body runs twice: on a fresh SQLite file and on a
//! fresh PostgreSQL schema at `$ECHOTRACE_TEST_PG_URL` (FAILS if unset,
//! unless `ECHOTRACE_SKIP_PG=1`).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_server::{FetchPolicy, ServerConfig};
use echotrace_store::testing::TestDb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use echotrace_store::both_backends;

both_backends!(
    banks_content_lookup_review_round_trip,
    bad_input_is_a_json_4xx,
    auth_matrix,
    webhooks_are_signed_and_retried,
    hma_compatible_endpoints,
    url_fetch_is_off_and_ssrf_guarded,
    operations_endpoints,
    single_adds_of_held_signals_add_nothing,
    source_config_errors_name_the_field,
    wordless_text_files_are_refused,
);

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "test fixtures missing: expected ../shared/fixtures (next to the repo) at {}",
        dir.display()
    );
    dir
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = fixtures().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// (method, path, content type, body, expected status, expected error code)
type BadCase = (
    Method,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    StatusCode,
    &'static str,
);

/// What a webhook receiver saw: headers, body, the status it answered.
type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, Vec<u8>, u16)>>>;

const ORIG_PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

use common::Server as Service;

async fn start(db: &TestDb) -> Service {
    start_with(db, None, |_| {}).await
}

/// Start on `db`; `admin` is the admin key of an earlier start on the
/// same database (only the first start creates one).
async fn start_with(
    db: &TestDb,
    admin: Option<String>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Service {
    let mut config = common::config(&db.url);
    config.engine.outbox = common::fast_outbox();
    tweak(&mut config);
    Service::start(config, admin).await
}

impl Service {
    /// A JSON request as `key` that must succeed; its body.
    async fn ok_as(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(Some(key), method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path} -> {s}: {v}");
        v
    }
}

fn file_form(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()))
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "error body: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

async fn banks_content_lookup_review_round_trip(db: &TestDb) {
    let svc = start(db).await;
    let curator = svc.key("curator").await;
    let matcher = svc.key("matcher").await;
    let reviewer = svc.key("reviewer").await;

    // Banks.
    let (s, bank) = svc
        .call(
            Some(&curator),
            Method::POST,
            "/v1/banks",
            Some(
                json!({"name": "tve-images", "kind": "block", "description": "test bank",
                          "thresholds": {"pdq": 40}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{bank}");
    assert_eq!(bank["name"], "tve-images");
    assert_eq!(bank["kind"], "block");
    let (s, v) = svc
        .call(
            Some(&curator),
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "tve-images"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    svc.ok_as(
        &curator,
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "texts"})),
    )
    .await;
    let list = svc.ok_as(&curator, Method::GET, "/v1/banks", None).await;
    assert_eq!(list["banks"].as_array().unwrap().len(), 2);
    let patched = svc
        .ok_as(
            &curator,
            Method::PATCH,
            "/v1/banks/tve-images",
            Some(json!({"description": "known items", "thresholds": {"pdq": 31}})),
        )
        .await;
    assert_eq!(patched["description"], "known items");
    assert_eq!(
        svc.ok_as(&curator, Method::GET, "/v1/banks/tve-images", None)
            .await["thresholds"]["pdq"],
        31.0
    );

    // Content: a multipart image upload with labels and note.
    let form = file_form("orig.jpg", fixture("pdq/images/bridge-mods/aaa-orig.jpg"))
        .text("labels", "bridge,test")
        .text("note", "original");
    let (s, image_item) = svc
        .multipart(&curator, "/v1/banks/tve-images/content", form)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{image_item}");
    assert_eq!(image_item["labels"], json!(["bridge", "test"]));
    assert_eq!(image_item["note"], "original");
    let types: Vec<&str> = image_item["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"pdq") && types.contains(&"md5") && types.contains(&"sha256"),
        "{types:?}"
    );
    let image_id = image_item["id"].as_i64().unwrap();

    // Content from explicit signals (one bit from the image's PDQ: the
    // image's own would be held already) and from text.
    let sig_pdq = ORIG_PDQ.replace("9b22", "9b23");
    let (s, sig_item) = svc
        .call(Some(&curator), Method::POST, "/v1/banks/tve-images/content",
              Some(json!({"signals": {"pdq": sig_pdq.to_uppercase()}, "labels": ["hex"], "note": "from hex"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sig_item}");
    assert_eq!(
        sig_item["signals"][0]["value"], sig_pdq,
        "hex is canonicalised"
    );
    let sig_id = sig_item["id"].as_i64().unwrap();
    let text = "Storm warning for the northern coast: gale force winds expected through Tuesday night, \
                with heavy rain, flooding on low roads, and ferry crossings cancelled until Wednesday morning.";
    let (s, text_item) = svc
        .call(
            Some(&curator),
            Method::POST,
            "/v1/banks/texts/content",
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{text_item}");

    // Get / list / patch content.
    let got = svc
        .ok_as(
            &curator,
            Method::GET,
            &format!("/v1/banks/tve-images/content/{sig_id}"),
            None,
        )
        .await;
    assert_eq!(got["note"], "from hex");
    let (s, _) = svc
        .call(
            Some(&curator),
            Method::GET,
            &format!("/v1/banks/texts/content/{sig_id}"),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "content of another bank is not reachable through this one"
    );
    let page = svc
        .ok_as(
            &curator,
            Method::GET,
            "/v1/banks/tve-images/content?limit=1",
            None,
        )
        .await;
    assert_eq!(page["content"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_i64().unwrap();
    let page2 = svc
        .ok_as(
            &curator,
            Method::GET,
            &format!("/v1/banks/tve-images/content?limit=1&cursor={next}"),
            None,
        )
        .await;
    assert_ne!(page2["content"][0]["id"], page["content"][0]["id"]);

    // Lookup by signals: a PDQ within distance of the original.
    let near = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22"; // blur-a-little
    let res = svc
        .ok_as(&matcher, Method::POST, "/v1/lookup",
            Some(json!({"signals": {"pdq": near}, "context": {"content_id": "post-1", "uploader_id": "u9"}})))
        .await;
    let matches = res["matches"].as_array().unwrap();
    let ids: Vec<i64> = matches
        .iter()
        .map(|m| m["content_id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&sig_id) && ids.contains(&image_id), "{res}");
    let m = matches.iter().find(|m| m["content_id"] == sig_id).unwrap();
    assert_eq!(m["bank_name"], "tve-images");
    assert_eq!(m["signal_type"], "pdq");
    assert_eq!(m["matched_value"], sig_pdq);
    assert!(m["distance"].as_i64().unwrap() > 0 && m["distance"].as_i64().unwrap() <= 31);
    assert_eq!(m["labels"], json!(["hex"]));
    assert!(res["submission_id"].as_i64().is_some());

    // Disable → no match; enable → match again (immediate).
    svc.ok_as(
        &curator,
        Method::PATCH,
        &format!("/v1/banks/tve-images/content/{sig_id}"),
        Some(json!({"enabled": false, "labels": ["hex", "disabled-once"]})),
    )
    .await;
    let res = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": near}})),
        )
        .await;
    assert!(
        !res["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content_id"] == sig_id),
        "{res}"
    );
    svc.ok_as(
        &curator,
        Method::PATCH,
        &format!("/v1/banks/tve-images/content/{sig_id}"),
        Some(json!({"enabled": true})),
    )
    .await;

    // Lookup by file: an altered re-upload matches by pdq.
    let form = file_form("x.jpg", fixture("pdq/images/bridge-mods/high-contrast.jpg"));
    let (s, res) = svc.multipart(&matcher, "/v1/lookup", form).await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert!(
        res["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content_id"] == image_id && m["signal_type"] == "pdq"),
        "{res}"
    );
    assert!(res["signals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "pdq"));
    // The identical file also matches exactly (md5/sha256).
    let form = file_form("orig.jpg", fixture("pdq/images/bridge-mods/aaa-orig.jpg"));
    let (_, res) = svc.multipart(&matcher, "/v1/lookup", form).await;
    assert!(
        res["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["signal_type"] == "sha256" && m["distance"] == 0),
        "{res}"
    );

    // Lookup by text: a lightly edited copy matches.
    let edited = text
        .replace("Tuesday", "Monday")
        .replace("heavy rain", "very heavy rain");
    let res = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/lookup",
            Some(json!({"text": edited})),
        )
        .await;
    assert!(
        res["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["signal_type"] == "text_minhash" && m["bank_name"] == "texts"),
        "{res}"
    );

    // Bank filter.
    let res = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": near}, "banks": ["texts"]})),
        )
        .await;
    assert_eq!(res["matches"].as_array().unwrap().len(), 0, "{res}");
    let (s, v) = svc
        .call(
            Some(&matcher),
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": near}, "banks": ["nope"]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "not_found");

    // Batch.
    let res = svc.ok_as(&matcher, Method::POST, "/v1/lookup/batch", Some(json!({"items": [
        {"signals": {"pdq": near}},
        {"signals": {"pdq": "0000000000000000000000000000000000000000000000000000000000000000"}},
        {"signals": {"md5": "00000000000000000000000000000000"}, "context": {"content_id": "b3"}},
    ]}))).await;
    let results = res["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(!results[0]["matches"].as_array().unwrap().is_empty());
    assert!(results[1]["matches"].as_array().unwrap().is_empty());
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"signals": {"pdq": near}}))
        .collect();
    let (s, v) = svc
        .call(
            Some(&matcher),
            Method::POST,
            "/v1/lookup/batch",
            Some(json!({"items": too_many})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = svc
        .call(
            Some(&matcher),
            Method::POST,
            "/v1/lookup/batch",
            Some(json!({"items": [
        {"signals": {"pdq": near}}, {"signals": {"pdq": "zz"}}]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("items[1]"),
        "{v}"
    );

    // Hash and compare.
    let (s, v) = svc
        .multipart(
            &matcher,
            "/v1/hash",
            file_form("a.jpg", fixture("pdq/images/bridge-mods/aaa-orig.jpg")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let pdq = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "pdq")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let d = {
        let a = echotrace_signals::pdq::PdqHash::from_hex(&pdq).unwrap();
        a.distance(&echotrace_signals::pdq::PdqHash::from_hex(ORIG_PDQ).unwrap())
    };
    assert!(
        d <= 10,
        "our JPEG pipeline lands near Pillow's hash, got {d}"
    );
    let v = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/compare",
            Some(json!({"signal_type": "pdq", "a": ORIG_PDQ, "b": near})),
        )
        .await;
    assert_eq!(v["match"], true);
    assert_eq!(v["distance"], 2);
    let v = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/compare",
            Some(json!({"signal_type": "text", "a": text, "b": edited})),
        )
        .await;
    assert_eq!(v["match"], true, "{v}");

    // Review: pending matches, paging, decisions.
    let pending = svc
        .ok_as(
            &reviewer,
            Method::GET,
            "/v1/matches?status=pending&limit=2",
            None,
        )
        .await;
    let first_page = pending["matches"].as_array().unwrap();
    assert_eq!(first_page.len(), 2);
    let cursor = pending["next_cursor"].as_i64().unwrap();
    let more = svc
        .ok_as(
            &reviewer,
            Method::GET,
            &format!("/v1/matches?status=pending&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert!(more["matches"][0]["id"].as_i64().unwrap() < cursor);
    let mid = first_page[0]["id"].as_i64().unwrap();
    let d = svc
        .ok_as(
            &reviewer,
            Method::POST,
            &format!("/v1/matches/{mid}/decision"),
            Some(json!({"decision": "confirm", "note": "looks right"})),
        )
        .await;
    assert_eq!(d["verdict"], "confirm");
    let m = svc
        .ok_as(&reviewer, Method::GET, &format!("/v1/matches/{mid}"), None)
        .await;
    assert_eq!(m["status"], "confirmed");
    let confirmed = svc
        .ok_as(&reviewer, Method::GET, "/v1/matches?status=confirmed", None)
        .await;
    assert_eq!(confirmed["matches"].as_array().unwrap().len(), 1);
    let by_bank = svc
        .ok_as(&reviewer, Method::GET, "/v1/matches?bank=texts", None)
        .await;
    assert!(by_bank["matches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["bank_name"] == "texts"));
    let (s, v) = svc
        .call(
            Some(&reviewer),
            Method::POST,
            &format!("/v1/matches/{mid}/decision"),
            Some(json!({"decision": "maybe"})),
        )
        .await;
    assert!(s.is_client_error(), "{v}");

    // Audit log shows who did what.
    let audit = svc
        .ok_as(&svc.admin, Method::GET, "/v1/audit?limit=500", None)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.iter().any(|a| a.contains("bank")), "{actions:?}");
    assert!(
        actions
            .iter()
            .any(|a| a.contains("decision") || a.contains("decide")),
        "{actions:?}"
    );

    // Deletes.
    let (s, _) = svc
        .call(
            Some(&curator),
            Method::DELETE,
            &format!("/v1/banks/tve-images/content/{sig_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = svc
        .call(
            Some(&curator),
            Method::GET,
            &format!("/v1/banks/tve-images/content/{sig_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = svc
        .call(Some(&curator), Method::DELETE, "/v1/banks/texts", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let res = svc
        .ok_as(
            &matcher,
            Method::POST,
            "/v1/lookup",
            Some(json!({"text": edited})),
        )
        .await;
    assert!(
        res["matches"].as_array().unwrap().is_empty(),
        "deleted bank no longer matches: {res}"
    );
    // The bank itself is gone (JSON 404), also from the listing and the
    // HMA view, and its name can be used again.
    let (s, v) = svc
        .call(Some(&curator), Method::GET, "/v1/banks/texts", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_error(&v, "not_found");
    let (s, v) = svc
        .call(Some(&curator), Method::DELETE, "/v1/banks/texts", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_error(&v, "not_found");
    let list = svc.ok_as(&curator, Method::GET, "/v1/banks", None).await;
    assert!(
        !list.to_string().contains("\"texts\""),
        "deleted bank still listed: {list}"
    );
    let (s, v) = svc
        .call(
            Some(&curator),
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "texts"})),
        )
        .await;
    assert!(s.is_success(), "name reusable after delete: {s} {v}");
    svc.stop().await;
}

async fn bad_input_is_a_json_4xx(db: &TestDb) {
    let svc = start_with(db, None, |c| c.body_limit = 1 << 20).await;
    let key = svc.admin.clone();
    svc.ok_as(&key, Method::POST, "/v1/banks", Some(json!({"name": "b"})))
        .await;
    let cases: Vec<BadCase> = vec![
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("text/plain"),
            Some("hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/lookup",
            None,
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"signals":{"pdq":"abc"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"signals":{"nope":"abc"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"signals":{}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"text":"a","url":"http://x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"signals":{"pdq":5}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("application/json"),
            Some(r#"{"bogus":1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/banks/nope/content",
            Some("application/json"),
            Some(r#"{"signals":{"pdq":"00"}}"#),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/banks/b/content/notanumber",
            None,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/v1/matches?status=weird",
            None,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/v1/matches?cursor=x",
            None,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/banks",
            Some("application/json"),
            Some(r#"{"name":"bad name!"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/banks",
            Some("application/json"),
            Some(r#"{"name":"k","kind":"maybe"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/banks",
            Some("application/json"),
            Some(r#"{"name":"t","thresholds":{"pdq":999}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/v1/matches/999999/decision",
            Some("application/json"),
            Some(r#"{"decision":"confirm"}"#),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/nothing-here",
            None,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/v1/banks",
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/v1/lookup",
            Some("multipart/form-data; boundary=xyz"),
            Some("--xyz\r\nbroken"),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (method, path, ct, body, want, code) in cases {
        let mut req = svc
            .http
            .request(method.clone(), svc.url(path))
            .bearer_auth(&key);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON: {e}"));
        assert_eq!(status, want, "{method} {path} {body:?}: {v}");
        assert_error(&v, code);
    }
    // Undecodable upload → 4xx, never 500.
    let (s, v) = svc
        .multipart(
            &key,
            "/v1/lookup",
            file_form("junk.jpg", b"\xff\xd8\xff\xe0 truncated jpeg".to_vec()),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    // Oversized body → 413 JSON. Only a little over the 1 MiB limit: the
    // server answers as soon as the limit is crossed and closes the
    // connection, so a body far over the limit races the client's writes
    // (a reset instead of the 413); the small excess fits in loopback
    // socket buffers and the client always reads the answer.
    let big = vec![b'a'; (1 << 20) + (16 << 10)];
    let (s, v) = svc
        .multipart(&key, "/v1/lookup", file_form("big.bin", big))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_error(&v, "payload_too_large");
    svc.stop().await;
}

async fn auth_matrix(db: &TestDb) {
    let svc = start(db).await;
    svc.ok_as(
        &svc.admin,
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "m"})),
    )
    .await;
    let item = svc
        .ok_as(
            &svc.admin,
            Method::POST,
            "/v1/banks/m/content",
            Some(json!({"signals": {"pdq": ORIG_PDQ}})),
        )
        .await;
    let cid = item["id"].as_i64().unwrap();
    let lookup = svc
        .ok_as(
            &svc.admin,
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": ORIG_PDQ}})),
        )
        .await;
    let mid = lookup["matches"][0]["id"].as_i64().unwrap();
    let mut keys = vec![("admin", svc.admin.clone())];
    for r in ["curator", "matcher", "reviewer"] {
        keys.push((r, svc.key(r).await));
    }
    // (method, path, body, roles allowed)
    let lookup_body = json!({"signals": {"pdq": ORIG_PDQ}});
    let routes: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (
            Method::GET,
            "/v1/banks".into(),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::GET,
            "/v1/banks/m".into(),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::PATCH,
            "/v1/banks/m".into(),
            Some(json!({"description": "x"})),
            &["admin", "curator"],
        ),
        (
            Method::GET,
            format!("/v1/banks/m/content/{cid}"),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::PATCH,
            format!("/v1/banks/m/content/{cid}"),
            Some(json!({"note": "n"})),
            &["admin", "curator"],
        ),
        (
            Method::POST,
            "/v1/banks/m/content".into(),
            Some(json!({"signals": {"md5": "0123456789abcdef0123456789abcdef"}})),
            &["admin", "curator"],
        ),
        (
            Method::POST,
            "/v1/lookup".into(),
            Some(lookup_body.clone()),
            &["admin", "curator", "matcher"],
        ),
        (
            Method::POST,
            "/v1/lookup/batch".into(),
            Some(json!({"items": [lookup_body.clone()]})),
            &["admin", "curator", "matcher"],
        ),
        (
            Method::POST,
            "/v1/hash".into(),
            Some(json!({"text": "hello there world"})),
            &["admin", "curator", "matcher"],
        ),
        (
            Method::POST,
            "/v1/compare".into(),
            Some(json!({"signal_type": "pdq", "a": ORIG_PDQ, "b": ORIG_PDQ})),
            &["admin", "curator", "matcher"],
        ),
        (
            Method::GET,
            "/v1/matches".into(),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::GET,
            format!("/v1/matches/{mid}"),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::POST,
            format!("/v1/matches/{mid}/decision"),
            Some(json!({"decision": "reject"})),
            &["admin", "reviewer"],
        ),
        (Method::GET, "/v1/actions/webhooks".into(), None, &["admin"]),
        (Method::GET, "/v1/keys".into(), None, &["admin"]),
        (Method::GET, "/v1/audit".into(), None, &["admin", "curator"]),
        (
            Method::GET,
            "/openapi.json".into(),
            None,
            &["admin", "curator", "matcher", "reviewer"],
        ),
        (
            Method::GET,
            format!("/m/lookup?signal_type=pdq&signal={ORIG_PDQ}"),
            None,
            &["admin", "curator", "matcher"],
        ),
        (
            Method::GET,
            format!("/m/raw_lookup?signal_type=pdq&signal={ORIG_PDQ}"),
            None,
            &["admin", "curator", "matcher"],
        ),
        (
            Method::GET,
            "/c/banks".into(),
            None,
            &["admin", "curator", "reviewer"],
        ),
        (
            Method::POST,
            "/c/bank/m/signal".into(),
            Some(json!({"md5": "fedcba9876543210fedcba9876543210"})),
            &["admin", "curator"],
        ),
    ];
    for (method, path, body, allowed) in &routes {
        // No key / unknown key / malformed header → 401.
        let (s, v) = svc.call(None, method.clone(), path, body.clone()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without key: {v}"
        );
        assert_error(&v, "unauthorized");
        let (s, _) = svc
            .call(
                Some("et_not_a_real_key"),
                method.clone(),
                path,
                body.clone(),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with unknown key"
        );
        let resp = svc
            .http
            .request(method.clone(), svc.url(path))
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        for (role, key) in &keys {
            let (s, v) = svc
                .call(Some(key), method.clone(), path, body.clone())
                .await;
            if allowed.contains(role) {
                assert!(
                    s.is_success(),
                    "{role} {method} {path} should be allowed: {s} {v}"
                );
            } else {
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {path} should be forbidden: {v}"
                );
                assert_error(&v, "forbidden");
            }
        }
    }
    // Deleting a bank is for curators and admins only (not in the table
    // above: an allowed call would remove the bank the other rows use).
    for (role, key) in keys
        .iter()
        .filter(|(r, _)| *r == "matcher" || *r == "reviewer")
    {
        let (s, v) = svc
            .call(Some(key), Method::DELETE, "/v1/banks/m", None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role} DELETE /v1/banks/m: {v}");
        assert_error(&v, "forbidden");
    }
    svc.ok_as(&svc.admin, Method::GET, "/v1/banks/m", None)
        .await;
    for (role, key) in keys
        .iter()
        .filter(|(r, _)| *r == "admin" || *r == "curator")
    {
        let name = format!("del-{role}");
        svc.ok_as(key, Method::POST, "/v1/banks", Some(json!({"name": name})))
            .await;
        let path = format!("/v1/banks/{name}");
        let (s, v) = svc.call(Some(key), Method::DELETE, &path, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{role} DELETE {path}: {v}");
        let (s, _) = svc.call(Some(key), Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{role} GET {path} after delete");
    }
    // Public endpoints need no key.
    for p in ["/healthz", "/readyz", "/metrics"] {
        let resp = svc.http.get(svc.url(p)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{p}");
    }
    // A revoked key stops working (after the key cache TTL).
    let list = svc.ok_as(&svc.admin, Method::GET, "/v1/keys", None).await;
    let matcher_id = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "matcher")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    svc.ok_as(
        &svc.admin,
        Method::DELETE,
        &format!("/v1/keys/{matcher_id}"),
        None,
    )
    .await;
    let matcher_key = &keys.iter().find(|(r, _)| *r == "matcher").unwrap().1;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = svc
            .call(
                Some(matcher_key),
                Method::POST,
                "/v1/lookup",
                Some(lookup_body.clone()),
            )
            .await;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "revoked key still accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    svc.stop().await;
}

/// A local webhook receiver that fails its first `fail_first` deliveries.
async fn receiver(fail_first: usize) -> (String, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = s2.clone();
                async move {
                    let mut g = seen.lock().unwrap();
                    let status = if g.len() < fail_first { 503 } else { 200 };
                    g.push((headers, body.to_vec(), status));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/hook"), seen)
}

async fn webhooks_are_signed_and_retried(db: &TestDb) {
    let (url, seen) = receiver(2).await;
    let svc = start(db).await;
    let admin = svc.admin.clone();
    let (s, hook) = svc
        .call(
            Some(&admin),
            Method::POST,
            "/v1/actions/webhooks",
            Some(json!({"url": url, "secret": "a-webhook-s3cret-key", "events": ["match", "decision"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    assert!(hook.get("secret").is_none(), "the secret is write-only");
    let (s, v) = svc
        .call(
            Some(&admin),
            Method::POST,
            "/v1/actions/webhooks",
            Some(json!({"url": url, "secret": "a-webhook-s3cret-key", "events": ["nope"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let hooks = svc
        .ok_as(&admin, Method::GET, "/v1/actions/webhooks", None)
        .await;
    assert_eq!(hooks["webhooks"].as_array().unwrap().len(), 1);

    svc.ok_as(
        &admin,
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "w"})),
    )
    .await;
    svc.ok_as(
        &admin,
        Method::POST,
        "/v1/banks/w/content",
        Some(json!({"signals": {"pdq": ORIG_PDQ}})),
    )
    .await;
    let res = svc
        .ok_as(
            &admin,
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": ORIG_PDQ}})),
        )
        .await;
    let match_id = res["matches"][0]["id"].as_i64().unwrap();

    // Two failures, then success: the event arrives (at least once) signed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let got = seen.lock().unwrap().clone();
        if let Some(ok) = got.iter().find(|(_, _, st)| *st == 200) {
            break (ok.clone(), got.len());
        }
        assert!(
            Instant::now() < deadline,
            "webhook not delivered; saw {} attempts",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ((headers, body, _), attempts) = delivered;
    assert!(attempts >= 3, "first two attempts fail, got {attempts}");
    let sig = headers
        .get("x-echotrace-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(sig.starts_with("sha256="));
    assert!(
        echotrace_engine::verify_body_signature(b"a-webhook-s3cret-key", &body, sig),
        "HMAC verifies"
    );
    assert!(!echotrace_engine::verify_body_signature(
        b"wrong", &body, sig
    ));
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "match");
    assert_eq!(headers.get("x-echotrace-event").unwrap(), "match");
    assert!(body
        .windows(match_id.to_string().len())
        .any(|w| w == match_id.to_string().as_bytes()));
    // All attempts of one event carry the same delivery id.
    let got = seen.lock().unwrap().clone();
    let ids: Vec<_> = got
        .iter()
        .take(3)
        .map(|(h, _, _)| h.get("x-echotrace-delivery").cloned())
        .collect();
    assert!(ids.iter().all(|i| i.is_some() && *i == ids[0]), "{ids:?}");

    let hook_id = hook["id"].as_i64().unwrap();
    let (s, _) = svc
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("/v1/actions/webhooks/{hook_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = svc
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("/v1/actions/webhooks/{hook_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    svc.stop().await;
}

async fn hma_compatible_endpoints(db: &TestDb) {
    let svc = start(db).await;
    let k = svc.admin.clone();
    let (s, v) = svc
        .call(
            Some(&k),
            Method::POST,
            "/c/banks",
            Some(json!({"name": "HMA_BANK"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v,
        json!({"name": "HMA_BANK", "matching_enabled_ratio": 1.0})
    );
    let (s, _) = svc
        .call(
            Some(&k),
            Method::POST,
            "/c/banks",
            Some(json!({"name": "HMA_BANK"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "HMA answers a duplicate bank with 403"
    );
    let banks = svc.ok_as(&k, Method::GET, "/c/banks", None).await;
    assert_eq!(banks[0]["name"], "HMA_BANK");

    let added = svc
        .ok_as(
            &k,
            Method::POST,
            "/c/bank/HMA_BANK/signal",
            Some(json!({"pdq": ORIG_PDQ, "note": "n"})),
        )
        .await;
    let id = added["id"].as_i64().unwrap();
    assert_eq!(added["signals"]["pdq"], ORIG_PDQ);
    let (s, v) = svc
        .multipart(
            &k,
            "/c/bank/HMA_BANK/content",
            file_form(
                "a.jpg",
                fixture("pdq/images/bridge-mods/square-512x512.jpg"),
            )
            .text("note", "upload"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["signals"]["pdq"].is_string() && v["signals"]["md5"].is_string(),
        "{v}"
    );

    let near = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22";
    let v = svc
        .ok_as(
            &k,
            Method::GET,
            &format!("/m/lookup?signal_type=pdq&signal={near}"),
            None,
        )
        .await;
    let hits = v["HMA_BANK"].as_array().unwrap();
    assert!(
        hits.iter()
            .any(|h| h["bank_content_id"] == id && h["distance"] == "2"),
        "{v}"
    );
    let v = svc
        .ok_as(
            &k,
            Method::GET,
            &format!("/m/raw_lookup?signal_type=pdq&signal={near}"),
            None,
        )
        .await;
    assert!(v["matches"].as_array().unwrap().contains(&json!(id)), "{v}");
    let v = svc
        .ok_as(
            &k,
            Method::GET,
            &format!("/m/raw_lookup?signal_type=pdq&signal={near}&include_distance=true"),
            None,
        )
        .await;
    assert!(
        v["matches"]
            .as_array()
            .unwrap()
            .contains(&json!({"bank_content_id": id, "distance": "2", "channel": "plain"})),
        "{v}"
    );
    let (s, v) = svc
        .multipart(
            &k,
            "/m/lookup",
            file_form("q.jpg", fixture("pdq/images/bridge-mods/blur-a-little.jpg")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["pdq"]["HMA_BANK"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert!(v["md5"].is_object(), "{v}");
    let (s, v) = svc
        .call(
            Some(&k),
            Method::GET,
            "/m/lookup?signal_type=pdq&signal=nothex",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = svc
        .call(Some(&k), Method::GET, "/m/lookup?signal_type=pdq", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    svc.stop().await;
}

async fn url_fetch_is_off_and_ssrf_guarded(db: &TestDb) {
    // Off by default.
    let svc = start(db).await;
    let k = svc.admin.clone();
    svc.ok_as(&k, Method::POST, "/v1/banks", Some(json!({"name": "u"})))
        .await;
    let (s, v) = svc
        .call(
            Some(&k),
            Method::POST,
            "/v1/banks/u/content",
            Some(json!({"url": "http://127.0.0.1:1/x.jpg"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    svc.stop().await;
    // Enabled: internal targets are refused before any connection.
    let svc = start_with(db, Some(k), |c| {
        c.fetch = FetchPolicy {
            enabled: true,
            ..FetchPolicy::default()
        }
    })
    .await;
    let k = svc.admin.clone();
    for target in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        &format!("{}/healthz", svc.base),
    ] {
        let (s, v) = svc
            .call(
                Some(&k),
                Method::POST,
                "/v1/lookup",
                Some(json!({"url": target})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{target}: {v}");
    }
    svc.stop().await;
}

async fn operations_endpoints(db: &TestDb) {
    let svc = start(db).await;
    let k = svc.admin.clone();
    let v: Value = svc
        .http
        .get(svc.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ok");
    let v: Value = svc
        .http
        .get(svc.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ready");
    svc.ok_as(&k, Method::POST, "/v1/banks", Some(json!({"name": "o"})))
        .await;
    svc.ok_as(
        &k,
        Method::POST,
        "/v1/banks/o/content",
        Some(json!({"signals": {"pdq": ORIG_PDQ}})),
    )
    .await;
    for _ in 0..3 {
        svc.ok_as(
            &k,
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": ORIG_PDQ}})),
        )
        .await;
    }
    let resp = svc.http.get(svc.url("/metrics")).send().await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("echotrace_lookups_total 3\n"), "{text}");
    assert!(text.contains("echotrace_matches_total 3\n"), "{text}");
    assert!(
        text.contains("echotrace_index_size{signal_type=\"pdq\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("echotrace_lookup_duration_seconds_count 3\n"),
        "{text}"
    );
    assert!(text.contains("echotrace_outbox_pending "), "{text}");
    // OpenAPI needs a key and documents every served route.
    let (s, _) = svc.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let doc = svc.ok_as(&k, Method::GET, "/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path, ..) in echotrace_server::openapi::all_routes() {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        // Every documented route exists: anything but 404/405 without a key.
        let real = path.replace("{name}", "o").replace("{id}", "1");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = svc.http.request(m, svc.url(&real)).send().await.unwrap();
        assert!(
            resp.status() != StatusCode::NOT_FOUND
                && resp.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served ({})",
            resp.status()
        );
    }
    svc.stop().await;
}

/// A single add of signals the bank already holds adds nothing, as `bank
/// import` skips a held line: `POST /v1/banks/{name}/content` answers 200
/// with the item holding them and `"already_held": true` (a new item: 201,
/// `false`), HMA's add routes answer that item's id in HMA's shape, a file
/// whose hashes are held is held, and adds of one signal running at once
/// make one item. Text signed under an equivalence list is held by its
/// signature alone, so re-adding it after a list change still adds it.
/// (Before, every add made a new item: reviewers saw each match twice.)
async fn single_adds_of_held_signals_add_nothing(db: &TestDb) {
    let svc = start(db).await;
    let k = svc.admin.clone();
    for bank in ["held", "other"] {
        svc.ok(Method::POST, "/v1/banks", Some(json!({"name": bank})))
            .await;
    }
    let add = |bank: &'static str, body: Value| {
        let svc = &svc;
        async move {
            svc.admin_call(
                Method::POST,
                &format!("/v1/banks/{bank}/content"),
                Some(body),
            )
            .await
        }
    };
    let (s, first) = add(
        "held",
        json!({"signals": {"pdq": ORIG_PDQ}, "labels": ["a"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["already_held"], false, "{first}");
    let id = first["id"].as_i64().unwrap();
    // Again, in upper case, and with another signal beside it.
    for body in [
        json!({"signals": {"pdq": ORIG_PDQ}, "labels": ["b"]}),
        json!({"signals": {"pdq": ORIG_PDQ.to_uppercase()}}),
        json!({"signals": {"md5": "d41d8cd98f00b204e9800998ecf8427e", "pdq": ORIG_PDQ}}),
    ] {
        let (s, v) = add("held", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (v["id"].as_i64(), &v["already_held"]),
            (Some(id), &json!(true)),
            "{v}"
        );
        assert_eq!(v["labels"], json!(["a"]), "the held item is unchanged: {v}");
    }
    // Another bank does not hold it.
    let (s, v) = add("other", json!({"signals": {"pdq": ORIG_PDQ}})).await;
    assert_eq!(
        (s, &v["already_held"]),
        (StatusCode::CREATED, &json!(false)),
        "{v}"
    );
    // HMA's routes: 200 and HMA's {id, signals}, the held item's.
    let v = svc
        .ok_as(
            &k,
            Method::POST,
            "/c/bank/held/signal",
            Some(json!({"pdq": ORIG_PDQ})),
        )
        .await;
    assert_eq!(v, json!({"id": id, "signals": {"pdq": ORIG_PDQ}}));

    // A file: added once, then held (through /v1 and HMA alike).
    let photo = || fixture("pdq/images/bridge-mods/aaa-orig.jpg");
    let (s, v) = svc
        .multipart(&k, "/v1/banks/other/content", file_form("a.jpg", photo()))
        .await;
    assert_eq!(s, StatusCode::OK, "held by its pdq: {v}");
    let (s, v) = svc
        .multipart(&k, "/v1/banks/held/content", file_form("b.jpg", photo()))
        .await;
    assert_eq!((s, v["id"].as_i64()), (StatusCode::OK, Some(id)), "{v}");
    let sq = || fixture("pdq/images/bridge-mods/square-512x512.jpg");
    let (s, file) = svc
        .multipart(&k, "/v1/banks/held/content", file_form("c.jpg", sq()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{file}");
    let (s, v) = svc
        .multipart(&k, "/c/bank/held/content", file_form("d.jpg", sq()))
        .await;
    assert_eq!((s, &v["id"]), (StatusCode::OK, &file["id"]), "{v}");

    // Eight adds of one new signal at once: one item, seven held.
    let md5 = "0123456789abcdef0123456789abcdef";
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let req = svc
                .request(Some(&k), Method::POST, "/v1/banks/held/content")
                .json(&json!({"signals": {"md5": md5}}));
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                (resp.status(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in racing {
        answers.push(task.await.unwrap());
    }
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let ids: std::collections::HashSet<i64> = answers
        .iter()
        .filter_map(|(_, v)| v["id"].as_i64())
        .collect();
    assert_eq!((created, ids.len()), (1, 1), "{answers:?}");

    // The bank holds each signal once: ORIG_PDQ's item, the square's, the md5's.
    let listed = svc.ok(Method::GET, "/v1/banks/held/content", None).await;
    let items = listed["content"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{listed}");

    // Text under an equivalence list: held by its signature.
    svc.ok(
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "listed", "text_equivalences": "daesh = isis"})),
    )
    .await;
    let text = json!({"text": "a report on isis and its statements"});
    let (s, t1) = add("listed", text.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{t1}");
    let (s, v) = add("listed", text.clone()).await;
    assert_eq!((s, &v["id"]), (StatusCode::OK, &t1["id"]), "{v}");
    svc.ok(
        Method::PATCH,
        "/v1/banks/listed",
        Some(json!({"text_equivalences": "daesh = isil"})),
    )
    .await;
    let (s, v) = add("listed", text).await;
    assert_eq!(s, StatusCode::CREATED, "a new signature is a new item: {v}");
    svc.stop().await;
}

/// A source config with a field of the wrong type is a 400 whose reason
/// names the field (`config.robust: invalid type: string "no", expected a
/// boolean`), on create and on update; bad JSON syntax cannot reach it (the
/// body is JSON). (Before: serde's `at line 1 column 15` of the config as
/// re-serialised, naming nothing.)
async fn source_config_errors_name_the_field(db: &TestDb) {
    let svc = start(db).await;
    let urls = json!(["https://example.com/"]);
    let cases = [
        (
            json!({"urls": urls, "robust": "no"}),
            "config.robust: invalid type",
        ),
        (
            json!({"urls": urls, "depth": "two"}),
            "config.depth: invalid type",
        ),
        (
            json!({"urls": urls, "min_delay_ms": -5}),
            "config.min_delay_ms: invalid value",
        ),
        (
            json!({"urls": [urls[0], 7]}),
            "config.urls[1]: invalid type",
        ),
        (
            json!({"urls": urls, "locker_rules": [{"name": "r", "hosts": "x.example"}]}),
            "config.locker_rules[0].hosts: invalid type",
        ),
        (
            json!({"urls": urls, "typo": 1}),
            "config.typo: unknown field `typo`",
        ),
        (
            json!(["not", "an", "object"]),
            "config: expected a JSON object",
        ),
    ];
    for (config, reason) in &cases {
        let body = json!({"name": "s", "kind": "urls", "config": config});
        let (st, v) = svc
            .admin_call(Method::POST, "/v1/sources", Some(body))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{config}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(reason), "{config}: {v}");
        assert!(!message.contains("line 1"), "{config}: {v}");
    }
    let body = json!({"name": "s", "kind": "urls", "config": {"urls": urls}});
    svc.ok(Method::POST, "/v1/sources", Some(body)).await;
    for (config, reason) in &cases {
        let (st, v) = svc
            .admin_call(
                Method::PATCH,
                "/v1/sources/s",
                Some(json!({"config": config})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{config}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(reason), "{config}: {v}");
    }
    let v = svc.ok(Method::GET, "/v1/sources/s", None).await;
    assert_eq!(v["config"]["urls"], urls, "the source is unchanged: {v}");
    svc.stop().await;
}

/// A text *file* with no words (blank, punctuation only) uploaded to be
/// hashed, looked up or added is a 400 saying so, as typed text is
/// (blackbox.rs); a file with words is hashed with its `text_minhash`.
/// Pins the behaviour across the move of the decision into the signals
/// dispatcher (`content::text_signal`).
async fn wordless_text_files_are_refused(db: &TestDb) {
    let svc = start(db).await;
    let k = svc.admin.clone();
    svc.ok(Method::POST, "/v1/banks", Some(json!({"name": "t"})))
        .await;
    for body in [
        &b" \n\t \n"[..],
        b"?! -- ...",
        "\u{feff}\u{feff}".as_bytes(),
    ] {
        for path in [
            "/v1/hash",
            "/v1/lookup",
            "/v1/banks/t/content",
            "/c/bank/t/content",
        ] {
            let (s, v) = svc
                .multipart(&k, path, file_form("t.txt", body.to_vec()))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body:?}: {v}");
            assert!(
                v.to_string().contains("text has no words to hash"),
                "{path}: {v}"
            );
        }
    }
    let (s, v) = svc
        .multipart(
            &k,
            "/v1/hash",
            file_form("t.txt", b"a statement in words".to_vec()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let types: Vec<&str> = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(types, ["text_minhash", "md5", "sha256"], "{v}");
    svc.stop().await;
}
