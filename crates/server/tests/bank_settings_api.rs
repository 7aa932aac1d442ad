//! HTTP tests of per-bank settings: text-equivalence lists and vPDQ share
//! thresholds through `/v1/banks`, raw-text lookups signed per list
//! version, and 4xx JSON errors for bad settings. Every test body runs on a
//! fresh SQLite file and on a fresh PostgreSQL schema at
//! `$ECHOTRACE_TEST_PG_URL`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_engine::EngineConfig;
use echotrace_server::{ServerConfig, ServerHandle};
use echotrace_store::testing::TestDb;
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use echotrace_store::both_backends;

both_backends!(bank_settings_over_http);

struct Service {
    handle: Option<ServerHandle>,
    base: String,
    http: Client,
    admin: String,
}

impl Service {
    async fn start(db: &TestDb) -> Service {
        let key = Arc::new(Mutex::new(None::<String>));
        let k2 = key.clone();
        let mut engine = EngineConfig::with_database_url(&db.url);
        engine.tail_interval = Duration::from_millis(100);
        let config = ServerConfig {
            engine,
            hash_workers: 2,
            deliver_webhooks: false,
            bootstrap_admin: Some(Arc::new(move |k: &str| {
                *k2.lock().unwrap() = Some(k.to_string());
            })),
            ..ServerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = echotrace_server::start(config, listener, std::future::pending())
            .await
            .unwrap();
        handle.ready(Duration::from_secs(30)).await.unwrap();
        let admin = key.lock().unwrap().clone().expect("bootstrap admin key");
        Service {
            base: format!("http://{}", handle.addr),
            handle: Some(handle),
            http: Client::new(),
            admin,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path} -> {s}: {v}");
        v
    }

    /// Bank ids that a raw-text lookup matched.
    async fn text_hits(&self, text: &str) -> Vec<i64> {
        let v = self
            .ok(Method::POST, "/v1/lookup", Some(json!({"text": text})))
            .await;
        let mut ids: Vec<i64> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["signal_type"] == "text_minhash")
            .map(|m| m["bank_id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.unwrap();
        }
    }
}

async fn bank_settings_over_http(db: &TestDb) {
    let s = Service::start(db).await;

    // Create with a list; GET returns it.
    let (st, listed) = s
        .call(
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
    let form = Form::new().part(
        "file",
        Part::bytes(b"statement by isil".to_vec()).file_name("s.txt"),
    );
    let resp = s
        .http
        .post(format!("{}/v1/banks/listed/content", s.base))
        .bearer_auth(&s.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(s.text_hits("report on isis").await, vec![listed_id]);
    assert_eq!(
        s.text_hits("report on daesh").await,
        vec![listed_id, plain_id]
    );
    assert_eq!(s.text_hits("statement by daesh").await, vec![listed_id]);
    // An uploaded text file as the lookup is raw text too.
    let form = Form::new().part(
        "file",
        Part::bytes(b"report on ISIL".to_vec()).file_name("q.txt"),
    );
    let resp = s
        .http
        .post(format!("{}/v1/lookup", s.base))
        .bearer_auth(&s.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    let banks: Vec<i64> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["bank_id"].as_i64().unwrap())
        .collect();
    assert_eq!(banks, vec![listed_id], "{v}");

    // A bad list: 400 JSON naming the line; nothing changed.
    let (st, err) = s
        .call(
            Method::PATCH,
            "/v1/banks/listed",
            Some(json!({"text_equivalences": "daesh = isis\n\nno separator here"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    let msg = err["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("line 3"), "{err}");
    let (st, err) = s
        .call(
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
    let (st, _) = s.call(Method::GET, "/v1/banks/broken", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, err) = s
        .call(
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
            .call(
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
