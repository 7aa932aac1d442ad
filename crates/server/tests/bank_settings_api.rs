//! HTTP tests of per-bank settings: text-equivalence lists and vPDQ share
//! thresholds through `/v1/banks`, raw-text lookups signed per list
//! version, and 4xx JSON errors for bad settings. Every test body runs on a
//! fresh SQLite file and on a fresh PostgreSQL schema at
//! `$ECHOTRACE_TEST_PG_URL`.

mod common;

use echotrace_engine::EngineConfig;
use echotrace_store::testing::TestDb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use echotrace_store::both_backends;

both_backends!(bank_settings_over_http, lists_on_every_text_lookup_path);

use common::Server as Service;

async fn start(db: &TestDb) -> Service {
    start_with(db, |_| {}).await
}

async fn start_with(db: &TestDb, tweak: impl FnOnce(&mut EngineConfig)) -> Service {
    let mut config = common::config(&db.url);
    config.deliver_webhooks = false;
    tweak(&mut config.engine);
    Service::start(config, None).await
}

impl Service {
    /// POST `bytes` as a multipart file upload named `name`.
    async fn upload(&self, path: &str, bytes: &[u8], name: &str) -> (StatusCode, Value) {
        let form = Form::new().part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    /// Bank ids that a raw-text lookup matched.
    async fn text_hits(&self, text: &str) -> Vec<i64> {
        let v = self
            .ok(Method::POST, "/v1/lookup", Some(json!({"text": text})))
            .await;
        text_banks(&v)
    }
}

async fn bank_settings_over_http(db: &TestDb) {
    let s = start(db).await;

    // Create with a list; GET returns it.
    let (st, listed) = s
        .admin_call(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "listed", "text_equivalences": "# names\ndaesh = isis = isil"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{listed}");
    let listed_id = listed["id"].as_i64().unwrap();
    let v1 = listed["text_equivalences_version"].as_i64().unwrap();
    let plain = s
        .ok(Method::POST, "/v1/banks", Some(json!({"name": "plain"})))
        .await;
    let plain_id = plain["id"].as_i64().unwrap();
    assert_eq!(plain["text_equivalences"], Value::Null);
    let got = s.ok(Method::GET, "/v1/banks/listed", None).await;
    assert_eq!(got["text_equivalences"], "# names\ndaesh = isis = isil");
    assert_eq!(got["text_items_older_list"], 0);

    // Text added over the API (JSON text and a text file) is signed under
    // the bank's list; raw-text lookups are signed per version.
    for bank in ["listed", "plain"] {
        s.ok(
            Method::POST,
            &format!("/v1/banks/{bank}/content"),
            Some(json!({"text": "report on daesh"})),
        )
        .await;
    }
    let (st, v) = s
        .upload("/v1/banks/listed/content", b"statement by isil", "s.txt")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(s.text_hits("report on isis").await, vec![listed_id]);
    assert_eq!(
        s.text_hits("report on daesh").await,
        vec![listed_id, plain_id]
    );
    assert_eq!(s.text_hits("statement by daesh").await, vec![listed_id]);
    // An uploaded text file as the lookup is raw text too.
    let (_, v) = s.upload("/v1/lookup", b"report on ISIL", "q.txt").await;
    let banks: Vec<i64> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["bank_id"].as_i64().unwrap())
        .collect();
    assert_eq!(banks, vec![listed_id], "{v}");

    // A bad list: 400 JSON naming the line; nothing changed.
    let (st, err) = s
        .admin_call(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"text_equivalences": "daesh = isis\n\nno separator here"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    let msg = err["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("line 3"), "{err}");
    let (st, err) = s
        .admin_call(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "broken", "text_equivalences": "a = b = !!!"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("line 1"),
        "{err}"
    );
    let (st, _) = s.admin_call(Method::GET, "/v1/banks/broken", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, err) = s
        .admin_call(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"text_equivalences": 5})),
        )
        .await;
    assert!(st.is_client_error(), "{st} {err}");

    // A new version: the two older items are reported and still match.
    let v = s
        .ok(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"text_equivalences": "daesh = isil"})),
        )
        .await;
    assert_ne!(v["text_equivalences_version"].as_i64().unwrap(), v1);
    assert_eq!(v["text_items_older_list"], 2);
    assert_eq!(s.text_hits("report on isis").await, vec![listed_id]);
    // PATCH without the field keeps the list.
    let v = s
        .ok(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(v["text_equivalences"], "daesh = isil");
    // "" removes it.
    let v = s
        .ok(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"text_equivalences": ""})),
        )
        .await;
    assert_eq!(v["text_equivalences"], Value::Null);

    // vPDQ share thresholds: validated 0..=100, returned as set.
    let v = s
        .ok(
            Method::PATCH,
            "/v1/banks/plain",
            Some(
                json!({"thresholds": {"vpdq": 20, "vpdq_query_pct": 50, "vpdq_compared_pct": 10}}),
            ),
        )
        .await;
    assert_eq!(v["thresholds"]["vpdq_query_pct"], 50.0);
    for bad in [
        json!({"vpdq_query_pct": 150}),
        json!({"vpdq_compared_pct": -1}),
        json!({"vpdq_pct": 5}),
    ] {
        let (st, err) = s
            .admin_call(
                Method::PATCH,
                "/v1/banks/plain",
                Some(json!({"thresholds": bad})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"]["code"], "invalid_input", "{err}");
    }

    // The OpenAPI document describes the new fields.
    let doc = s.ok(Method::GET, "/openapi.json", None).await;
    let props = &doc["components"]["schemas"]["BankSettings"]["properties"];
    assert!(props["text_equivalences"].is_object(), "{props}");
    assert!(props["thresholds"]["description"]
        .as_str()
        .unwrap_or("")
        .contains("vpdq_query_pct"));
    s.stop().await;
}

/// Content ids per bank name of an HMA `{"BANK": [{"bank_content_id": …}]}`.
fn hma_hits(v: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = v
        .as_object()
        .unwrap_or_else(|| panic!("HMA lookup answers an object: {v}"))
        .iter()
        .flat_map(|(bank, list)| {
            list.as_array()
                .into_iter()
                .flatten()
                .map(move |m| (bank.clone(), m["bank_content_id"].as_i64().unwrap()))
        })
        .collect();
    out.sort();
    out
}

/// Banks (by id) a `/v1` lookup response matched on text.
fn text_banks(v: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v["matches"]
        .as_array()
        .unwrap_or_else(|| panic!("a lookup response: {v}"))
        .iter()
        .filter(|m| m["signal_type"] == "text_minhash")
        .map(|m| m["bank_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// HMA raw-text lookups (GET `signal_type=text`, `/m/raw_lookup`, a text
/// file to POST `/m/lookup`) and `/v1/lookup/batch` items with raw `text`
/// are signed under each bank's list; a bank without the list (same item)
/// is the control. (PDFs: tests/pdf_api.rs.)
async fn lists_on_every_text_lookup_path(db: &TestDb) {
    let s = start_with(db, |c| c.max_query_text_bytes = 4096).await;
    let listed = s
        .ok(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "listed", "text_equivalences": "daesh = isis"})),
        )
        .await;
    let plain = s
        .ok(Method::POST, "/v1/banks", Some(json!({"name": "plain"})))
        .await;
    let (listed_id, plain_id) = (
        listed["id"].as_i64().unwrap(),
        plain["id"].as_i64().unwrap(),
    );
    let mut items = Vec::new();
    for bank in ["listed", "plain"] {
        let c = s
            .ok(
                Method::POST,
                &format!("/v1/banks/{bank}/content"),
                Some(json!({"text": "statement by daesh"})),
            )
            .await;
        items.push(c["id"].as_i64().unwrap());
    }
    let (in_listed, in_plain) = (items[0], items[1]);

    // HMA GET /m/lookup with raw text: the list maps isis to daesh (its
    // first term), so only list-aware signing finds the listed item.
    let q = "/m/lookup?signal_type=text&signal=Statement%20by%20ISIS";
    let v = s.ok(Method::GET, q, None).await;
    assert_eq!(hma_hits(&v), vec![("listed".to_string(), in_listed)], "{v}");
    let v = s
        .ok(
            Method::GET,
            "/m/lookup?signal_type=text&signal=statement%20by%20daesh",
            None,
        )
        .await;
    assert_eq!(
        hma_hits(&v),
        vec![
            ("listed".to_string(), in_listed),
            ("plain".to_string(), in_plain)
        ],
        "{v}"
    );
    let v = s
        .ok(
            Method::GET,
            "/m/lookup?signal_type=text&signal=statement%20by%20isis&banks=plain",
            None,
        )
        .await;
    assert_eq!(hma_hits(&v), vec![], "bank filter: plain has no list: {v}");
    let v = s
        .ok(
            Method::GET,
            "/m/raw_lookup?signal_type=TEXT&signal=statement%20by%20isis",
            None,
        )
        .await;
    assert_eq!(v["matches"], json!([in_listed]), "{v}");
    let (st, err) = s
        .admin_call(
            Method::GET,
            "/m/lookup?signal_type=text&signal=%20%20",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"]["message"].is_string(), "{err}");

    // HMA POST /m/lookup with a text file.
    let (st, v) = s.upload("/m/lookup", b"statement by isis", "q.txt").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        hma_hits(&v["text_minhash"]),
        vec![("listed".to_string(), in_listed)],
        "{v}"
    );

    // /v1/lookup/batch with raw text, alone or next to other signals.
    let batch = json!({"items": [
        {"text": "statement by isis"},
        {"text": "statement by isis", "signals": {"md5": "0".repeat(32)},
         "context": {"content_id": "post-2"}},
        {"text": "statement by isis", "banks": ["plain"]},
        {"signals": {"md5": "1".repeat(32)}},
    ]});
    let v = s.ok(Method::POST, "/v1/lookup/batch", Some(batch)).await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{v}");
    assert_eq!(text_banks(&results[0]), vec![listed_id], "{v}");
    assert_eq!(text_banks(&results[1]), vec![listed_id], "{v}");
    assert_eq!(text_banks(&results[2]), Vec::<i64>::new(), "{v}");
    assert_eq!(results[3]["matches"], json!([]), "{v}");
    let sub = results[1]["submission_id"].as_i64().unwrap();
    let m = s
        .ok(Method::GET, &format!("/v1/matches?submission={sub}"), None)
        .await;
    assert_eq!(m["matches"].as_array().map(Vec::len), Some(1), "{m}");
    // Control: the verbatim text matches the plain bank too.
    let v = s
        .ok(
            Method::POST,
            "/v1/lookup/batch",
            Some(json!({"items": [{"text": "statement by daesh"}]})),
        )
        .await;
    assert_eq!(
        text_banks(&v["results"][0]),
        vec![listed_id, plain_id],
        "{v}"
    );

    // Invalid items: a 400 JSON naming the item; nothing is recorded.
    let before = s.ok(Method::GET, "/v1/matches?limit=1000", None).await["matches"]
        .as_array()
        .map(Vec::len);
    let text_sig = s
        .ok(
            Method::POST,
            "/v1/hash",
            Some(json!({"text": "statement by daesh"})),
        )
        .await["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "text_minhash")
        .map(|x| x["value"].clone())
        .unwrap();
    for (bad, says) in [
        (
            json!({"items": [{"text": "statement by isis"},
                             {"text": "statement by isis", "signals": {"text_minhash": text_sig}}]}),
            "not both",
        ),
        (
            json!({"items": [{"text": "statement by isis"}, {"text": "  "}]}),
            "empty",
        ),
        (
            json!({"items": [{"text": "statement by isis"}, {"text": "?!"}]}),
            "no words",
        ),
        (
            json!({"items": [{"text": "statement by isis"}, {"signals": {}}]}),
            "\"text\"",
        ),
        (
            json!({"items": [{"text": "statement by isis"}, {"banks": ["plain"]}]}),
            "\"signals\"",
        ),
    ] {
        let (st, err) = s
            .admin_call(Method::POST, "/v1/lookup/batch", Some(bad.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"]["code"], "invalid_input", "{err}");
        let msg = err["error"]["message"].as_str().unwrap_or("");
        assert!(msg.starts_with("items[1]: "), "{bad}: {err}");
        assert!(msg.contains(says), "{bad}: {err}");
    }
    // Raw text is bounded per batch in total (this server: 4096 bytes).
    let chunk = "statement by isis ".repeat(100);
    let (st, err) = s
        .admin_call(
            Method::POST,
            "/v1/lookup/batch",
            Some(json!({"items": [{"text": chunk}, {"text": chunk}, {"text": chunk}]})),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["error"]["code"], "too_large", "{err}");
    let after = s.ok(Method::GET, "/v1/matches?limit=1000", None).await["matches"]
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after, "refused batches record nothing");
    let v = s
        .ok(
            Method::POST,
            "/v1/lookup/batch",
            Some(json!({"items": [{"text": chunk}]})),
        )
        .await;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1), "{v}");

    // The OpenAPI document describes batch text.
    let doc = s.ok(Method::GET, "/openapi.json", None).await;
    let item = &doc["components"]["schemas"]["BatchLookup"]["properties"]["items"]["items"];
    assert!(item["properties"]["text"].is_object(), "{item}");
    assert_eq!(
        doc["paths"]["/v1/lookup/batch"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/BatchLookup"
    );
    s.stop().await;
}
