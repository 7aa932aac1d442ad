//! Regression tests for the defects black-box testing found (issue 12),
//! each through HTTP as a client meets it: a real server on a loopback
//! port, reqwest or a raw TCP socket where the test must control how much
//! of a body is sent. Tests that touch storage run on SQLite and on
//! PostgreSQL at `$ECHOTRACE_TEST_PG_URL` (FAILS if unset, unless
//! `ECHOTRACE_SKIP_PG=1`).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use echotrace_engine::{Actor, RetentionPolicy, Role};
use echotrace_server::ServerConfig;
use echotrace_store::testing::TestDb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use echotrace_store::both_backends;

both_backends!(
    nul_in_any_string_is_a_400_naming_it,
    roles_are_checked_before_the_body,
    field_limits_are_400s_naming_the_field,
    bank_names_are_path_segments,
    video_bank_entries_are_hashed_every_frame_and_report_shares,
    retention_sweeps_expired_submissions,
    added_routes_refuse_nul_and_bad_path_parameters,
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

fn video(name: &str) -> Vec<u8> {
    let p = fixtures().join("vpdq/videos").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

use common::Server as Service;

async fn start(db_url: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Service {
    let mut config = common::config(db_url);
    config.deliver_webhooks = false;
    tweak(&mut config);
    Service::start(config, None).await.no_redirects()
}

impl Service {
    /// A JSON request; the body, if any, is sent as raw text (so it can
    /// hold `\u0000` escapes and malformed JSON).
    async fn call_text(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(key, method, path);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, common::json_or_text(resp.text().await.unwrap()))
    }

    async fn ok_json(&self, key: &str, method: Method, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let (s, v) = self
            .call_text(Some(key), method.clone(), path, Some(&body))
            .await;
        assert!(s.is_success(), "{method} {path} -> {s}: {v}");
        v
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {text}"))
    }

    /// The console's login form: (et_login cookie, its CSRF token).
    async fn login_form(&self) -> String {
        let r = self.http.get(self.url("/ui/login")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| {
                let s = v.to_str().ok()?;
                let kv = s.split(';').next()?;
                kv.strip_prefix("et_login=").map(str::to_string)
            })
            .expect("et_login cookie")
    }

    /// Log in a console user; the session cookie value.
    async fn console_login(&self, user: &str, password: &str) -> String {
        let token = self.login_form().await;
        let r = self
            .http
            .post(self.url("/ui/login"))
            .header("cookie", format!("et_login={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("csrf", token.as_str()),
                    ("username", user),
                    ("password", password),
                ])
                .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {user}");
        r.headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| {
                let kv = v.to_str().ok()?.split(';').next()?.to_string();
                let val = kv.strip_prefix("et_session=")?;
                (!val.is_empty()).then(|| val.to_string())
            })
            .expect("session cookie")
    }
}

/// The CSRF token of a console page.
fn csrf_of(page: &str) -> String {
    let i = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[i..i + page[i..].find('"').unwrap()].to_string()
}

fn assert_field_error(status: StatusCode, v: &Value, field: &str, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
    assert_eq!(v["error"]["code"], "invalid_input", "{what}: {v}");
    let m = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        m.contains(field),
        "{what}: message should name {field}: {m}"
    );
}

/// Send a request head (and the first bytes of its body) on a raw socket
/// and read the response head, without sending the rest of the body.
/// Returns (status, response head) — or panics if no answer comes in
/// `timeout`, which is what a server that waits for the body would do.
async fn head_only(
    addr: SocketAddr,
    head: &str,
    body_start: &[u8],
    timeout: Duration,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body_start).await.unwrap();
    read_head(&mut s, timeout).await
}

async fn read_head(s: &mut tokio::net::TcpStream, timeout: Duration) -> (u16, String) {
    let mut buf = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .expect("the server answered without waiting for the body")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

const TEXT: &str = "the river valley fog clears by noon and the afternoon stays bright and warm with a light breeze from the west";

/// Defect 1 and 10b: a NUL in any string — body, multipart field, path,
/// query, console form — is one 400 naming the field, on both backends
/// (PostgreSQL used to answer 500), and text with a NUL gets the same
/// answer whether it is added to a bank or looked up.
async fn nul_in_any_string_is_a_400_naming_it(db: &TestDb) {
    let s = start(&db.url, |_| {}).await;
    let k = s.admin.clone();
    s.ok_json(&k, Method::POST, "/v1/banks", json!({"name": "nulbank"}))
        .await;
    s.ok_json(
        &k,
        Method::POST,
        "/v1/banks/nulbank/content",
        json!({"text": TEXT}),
    )
    .await;
    let hit = s
        .ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    let match_id = hit["matches"][0]["id"].as_i64().expect("a match");
    let n = r"\u0000";
    let cases: Vec<(Method, String, Option<String>, &str)> = vec![
        (
            Method::POST,
            "/v1/banks".into(),
            Some(format!(r#"{{"name":"b1","description":"a{n}"}}"#)),
            "description",
        ),
        (
            Method::PATCH,
            "/v1/banks/nulbank".into(),
            Some(format!(r#"{{"description":"x{n}"}}"#)),
            "description",
        ),
        (
            Method::PATCH,
            "/v1/banks/nulbank".into(),
            Some(format!(r#"{{"text_equivalences":"a = b{n}"}}"#)),
            "text_equivalences",
        ),
        (
            Method::POST,
            "/v1/banks/nulbank/content".into(),
            Some(format!(r#"{{"text":"{TEXT}","note":"n{n}"}}"#)),
            "note",
        ),
        (
            Method::POST,
            "/v1/banks/nulbank/content".into(),
            Some(format!(r#"{{"text":"some{n}text"}}"#)),
            "text",
        ),
        (
            Method::POST,
            "/v1/lookup".into(),
            Some(format!(r#"{{"text":"some{n}text"}}"#)),
            "text",
        ),
        (
            Method::POST,
            "/v1/lookup".into(),
            Some(format!(
                r#"{{"text":"hello","context":{{"content_id":"c{n}"}}}}"#
            )),
            "context.content_id",
        ),
        (
            Method::POST,
            "/v1/lookup".into(),
            Some(format!(r#"{{"text":"hello","banks":["nulbank{n}"]}}"#)),
            "banks[0]",
        ),
        (
            Method::POST,
            "/v1/lookup/batch".into(),
            Some(format!(
                r#"{{"items":[{{"text":"a"}},{{"text":"b","context":{{"uploader_id":"{n}"}}}}]}}"#
            )),
            "items[1].context.uploader_id",
        ),
        (
            Method::POST,
            "/v1/keys".into(),
            Some(format!(r#"{{"role":"matcher","name":"k{n}"}}"#)),
            "name",
        ),
        (
            Method::POST,
            "/v1/actions/webhooks".into(),
            Some(format!(
                r#"{{"url":"https://hooks.example/x","secret":"a long enough secret{n}"}}"#
            )),
            "secret",
        ),
        (
            Method::POST,
            format!("/v1/matches/{match_id}/decision"),
            Some(format!(r#"{{"decision":"confirm","note":"n{n}"}}"#)),
            "note",
        ),
        (
            Method::POST,
            "/c/bank/nulbank/signal".into(),
            Some(format!(r#"{{"pdq":"{}","note":"{n}"}}"#, "a".repeat(64))),
            "note",
        ),
        (Method::GET, "/v1/banks/%00".into(), None, "name"),
        (
            Method::GET,
            "/v1/banks/nul%00bank/content".into(),
            None,
            "name",
        ),
        (Method::GET, "/v1/matches?bank=%00".into(), None, "bank"),
        (
            Method::GET,
            "/m/lookup?signal_type=pdq&signal=%00".into(),
            None,
            "signal",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, v) = s
            .call_text(Some(&k), method.clone(), &path, body.as_deref())
            .await;
        assert_field_error(status, &v, field, &format!("{method} {path}"));
    }
    // A multipart text field.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(TEXT.as_bytes().to_vec()).file_name("t.txt"),
        )
        .text("context", "{\"content_id\":\"a\u{0}\"}");
    let (status, v) = s.multipart(&k, "/v1/lookup", form).await;
    assert_field_error(status, &v, "context", "multipart context");
    // The console: the anonymous login form and a page's query string.
    let token = s.login_form().await;
    let r = s
        .http
        .post(s.url("/ui/login"))
        .header("cookie", format!("et_login={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&username=ad%00min&password=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("username"));
    let engine = s.engine();
    engine
        .create_user(&Actor::system(), "auditor", "correct horse 1", Role::Admin)
        .await
        .unwrap();
    let sid = s.console_login("auditor", "correct horse 1").await;
    let r = s
        .http
        .get(s.url("/ui/audit?actor=a%00"))
        .header("cookie", format!("et_session={sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("actor"));
    // Nothing above was a 500, and the service still works.
    assert_eq!(
        s.metric("echotrace_http_errors_total{class=\"5xx\"}").await,
        0.0
    );
    s.ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    s.stop().await;
}

/// The routes added since (exchanges, feeds, sources, sightings, notices,
/// reports and their console pages) follow the same rules: a NUL in a JSON
/// body, a query or a path is a 400 naming the field on both backends, and
/// a console path parameter that does not parse (or holds a NUL) is a 400
/// page — not axum's plain-text rejection, a 404 on one backend, or a 500.
async fn added_routes_refuse_nul_and_bad_path_parameters(db: &TestDb) {
    let s = start(&db.url, |_| {}).await;
    let k = s.admin.clone();
    let n = r"\u0000";
    let cases: Vec<(Method, &str, Option<String>, &str)> = vec![
        (
            Method::POST,
            "/v1/exchanges",
            Some(format!(
                r#"{{"name":"ex{n}","api":"file","config":{{"path":"/x"}}}}"#
            )),
            "name",
        ),
        (
            Method::PATCH,
            "/v1/exchanges/ex",
            Some(format!(r#"{{"policy":{{"include_labels":["a{n}"]}}}}"#)),
            "policy.include_labels[0]",
        ),
        (
            Method::POST,
            "/c/exchanges",
            Some(format!(
                r#"{{"bank":"B","api":"file","api_json":{{"path":"a{n}"}}}}"#
            )),
            "api_json.path",
        ),
        (
            Method::PUT,
            "/v1/feeds/b",
            Some(format!(r#"{{"partners":["p{n}"]}}"#)),
            "partners[0]",
        ),
        (
            Method::POST,
            "/v1/sources",
            Some(format!(
                r#"{{"name":"s","kind":"page","config":{{"urls":["http://h/{n}"]}}}}"#
            )),
            "config.urls[0]",
        ),
        (
            Method::POST,
            "/v1/platforms",
            Some(format!(r#"{{"host":"h{n}","platform":"p"}}"#)),
            "host",
        ),
        (
            Method::POST,
            "/v1/notices",
            Some(format!(
                r#"{{"channel":"email","sighting_ids":[1],"note":"{n}"}}"#
            )),
            "note",
        ),
        (Method::GET, "/v1/sightings?host=%00", None, "host"),
        (Method::GET, "/v1/sightings?url=a%00", None, "url"),
        (Method::GET, "/v1/notices?platform=%00", None, "platform"),
        (
            Method::GET,
            "/v1/reports/transparency?group_prefix=%00",
            None,
            "group_prefix",
        ),
        (Method::GET, "/v1/survival?a=%00&b=x", None, "a"),
        (Method::GET, "/v1/sources/a%00", None, "name"),
        (Method::GET, "/v1/exchanges/a%00/status", None, "name"),
        (Method::GET, "/v1/feeds/a%00?wait=1", None, "bank"),
    ];
    for (method, path, body, field) in cases {
        let (status, v) = s
            .call_text(Some(&k), method.clone(), path, body.as_deref())
            .await;
        assert_field_error(status, &v, field, &format!("{method} {path}"));
    }
    // The console's path parameters.
    s.engine()
        .create_user(
            &Actor::system(),
            "pathcheck",
            "correct horse 1",
            Role::Admin,
        )
        .await
        .unwrap();
    let sid = s.console_login("pathcheck", "correct horse 1").await;
    let cookie = format!("et_session={sid}");
    let sources = s
        .http
        .get(s.url("/ui/sources"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.status(), StatusCode::OK);
    let csrf = csrf_of(&sources.text().await.unwrap());
    let pages = [
        (Method::GET, "/ui/clusters/abc"),
        (Method::GET, "/ui/exchanges/abc"),
        (Method::GET, "/ui/sightings/1x"),
        (Method::GET, "/ui/notices/abc/export"),
        (Method::POST, "/ui/sources/a%00b/toggle"),
        (Method::POST, "/ui/sources/a%00b/run"),
        (Method::POST, "/ui/exchanges/abc/toggle"),
    ];
    for (method, path) in pages {
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/html"), "{method} {path}: {ct}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("path parameter"),
            "{method} {path}: the page names the parameter: {page}"
        );
    }
    assert_eq!(
        s.metric("echotrace_http_errors_total{class=\"5xx\"}").await,
        0.0
    );
    s.stop().await;
}

/// Defect 8: the role is checked from the headers before any of the body
/// is read: a reviewer's malformed JSON is a 403 (not a JSON error), and a
/// matcher's (or anonymous) 64 MiB upload is refused while the socket
/// still holds almost all of it.
async fn roles_are_checked_before_the_body(db: &TestDb) {
    let s = start(&db.url, |_| {}).await;
    let reviewer = s.key("reviewer").await;
    let matcher = s.key("matcher").await;
    s.ok_json(&s.admin, Method::POST, "/v1/banks", json!({"name": "rb"}))
        .await;
    let (status, v) = s
        .call_text(Some(&reviewer), Method::POST, "/v1/banks", Some("{bad"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let big = 64 << 20;
    for (auth, want) in [
        (format!("Authorization: Bearer {matcher}\r\n"), 403),
        (String::new(), 401),
    ] {
        let head = format!(
            "POST /v1/banks/rb/content HTTP/1.1\r\nHost: x\r\n{auth}\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {big}\r\n\r\n"
        );
        let (status, _) = head_only(s.addr, &head, b"--XX\r\n", Duration::from_secs(5)).await;
        assert_eq!(status, want, "{auth}");
    }
    // The console: a reviewer's upload to a bank is refused before reading.
    s.engine()
        .create_user(&Actor::system(), "rev", "reviewer pass 1", Role::Reviewer)
        .await
        .unwrap();
    let sid = s.console_login("rev", "reviewer pass 1").await;
    let head = format!(
        "POST /ui/banks/1/content HTTP/1.1\r\nHost: x\r\nCookie: et_session={sid}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
        30 << 20
    );
    let (status, _) = head_only(s.addr, &head, b"--XX\r\n", Duration::from_secs(5)).await;
    assert_eq!(status, 403);
    s.stop().await;
}

/// Defect 5: ids and URLs are at most 2 KiB, notes and descriptions 16 KiB;
/// over it is a 400 naming the field, and the limits are in the OpenAPI
/// document.
async fn field_limits_are_400s_naming_the_field(db: &TestDb) {
    let s = start(&db.url, |_| {}).await;
    let k = s.admin.clone();
    s.ok_json(&k, Method::POST, "/v1/banks", json!({"name": "lim"}))
        .await;
    let id_max = "i".repeat(2048);
    let id_over = "i".repeat(2049);
    let note_over = "n".repeat(16 * 1024 + 1);
    // At the limit: accepted.
    s.ok_json(
        &k,
        Method::POST,
        "/v1/lookup",
        json!({"text": "hello there", "context": {"content_id": id_max, "url": id_max, "uploader_id": id_max}}),
    )
    .await;
    let cases = [
        (
            "/v1/lookup",
            json!({"text": "hello", "context": {"content_id": id_over}}),
            "context.content_id",
        ),
        (
            "/v1/lookup",
            json!({"text": "hello", "context": {"url": id_over}}),
            "context.url",
        ),
        (
            "/v1/lookup",
            json!({"signals": {"md5": "0".repeat(32)}, "context": {"uploader_id": id_over}}),
            "context.uploader_id",
        ),
        (
            "/v1/lookup/batch",
            json!({"items": [{"signals": {"md5": "0".repeat(32)}, "context": {"content_id": id_over}}]}),
            "items[0].context.content_id",
        ),
        (
            "/v1/banks/lim/content",
            json!({"text": TEXT, "note": note_over}),
            "note",
        ),
        (
            "/v1/banks",
            json!({"name": "lim2", "description": note_over}),
            "description",
        ),
        (
            "/v1/actions/webhooks",
            json!({"url": format!("https://h.example/{id_over}"), "secret": "0123456789abcdef"}),
            "url",
        ),
        // A webhook secret keys the HMAC of every delivery: under 16 bytes
        // it is refused (an empty or one-character key signs nothing).
        (
            "/v1/actions/webhooks",
            json!({"url": "https://h.example/x", "secret": ""}),
            "secret",
        ),
        (
            "/v1/actions/webhooks",
            json!({"url": "https://h.example/x", "secret": "s"}),
            "secret",
        ),
        (
            "/v1/actions/webhooks",
            json!({"url": "https://h.example/x", "secret": "0123456789abcde"}),
            "secret",
        ),
    ];
    for (path, body, field) in cases {
        let (status, v) = s
            .call_text(Some(&k), Method::POST, path, Some(&body.to_string()))
            .await;
        assert_field_error(status, &v, field, path);
    }
    // A text with no words (empty, blank, punctuation only) has nothing to
    // compare: refused naming the operand (`a:` / `b:`), not answered "no
    // match"; a one-letter field name is checked as the message's prefix.
    let wordless = [
        (json!({"signal_type": "text", "a": "", "b": TEXT}), "a:"),
        (
            json!({"signal_type": "text", "a": TEXT, "b": " \n\t "}),
            "b:",
        ),
        (
            json!({"signal_type": "text", "a": "?! -- ...", "b": TEXT}),
            "a:",
        ),
        (json!({"signal_type": "text", "a": "", "b": ""}), "a:"),
    ];
    for (body, prefix) in wordless {
        let (status, v) = s
            .call_text(
                Some(&k),
                Method::POST,
                "/v1/compare",
                Some(&body.to_string()),
            )
            .await;
        assert_field_error(status, &v, prefix, &body.to_string());
        let m = v["error"]["message"].as_str().unwrap_or("");
        assert!(m.starts_with(prefix), "{body}: {m}");
    }
    // The same text looked up or added to a bank: a 400 naming `text`.
    for path in ["/v1/lookup", "/v1/banks/lim/content"] {
        let body = json!({"text": "?! -- ..."}).to_string();
        let (status, v) = s.call_text(Some(&k), Method::POST, path, Some(&body)).await;
        assert_field_error(status, &v, "text has no words", path);
    }
    let same = s
        .ok_json(
            &k,
            Method::POST,
            "/v1/compare",
            json!({"signal_type": "text", "a": TEXT, "b": TEXT}),
        )
        .await;
    assert_eq!(same["match"], true, "{same}");
    s.ok_json(
        &k,
        Method::POST,
        "/v1/banks/lim/content",
        json!({"text": TEXT}),
    )
    .await;
    let hit = s
        .ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    let mid = hit["matches"][0]["id"].as_i64().unwrap();
    let (status, v) = s
        .call_text(
            Some(&k),
            Method::POST,
            &format!("/v1/matches/{mid}/decision"),
            Some(&json!({"decision": "reject", "note": note_over}).to_string()),
        )
        .await;
    assert_field_error(status, &v, "note", "decision note");
    let (status, v) = s
        .call_text(
            Some(&k),
            Method::PATCH,
            "/v1/banks/lim",
            Some(&json!({"description": note_over}).to_string()),
        )
        .await;
    assert_field_error(status, &v, "description", "bank PATCH");
    // `?frames=` is true or false: any other value is a 400 naming it (it
    // was read as false), before a lookup is recorded.
    let before = s.engine().store().count_submissions().await.unwrap();
    let frames_cases = [
        (
            Method::POST,
            "/v1/lookup?frames=maybe".to_string(),
            json!({"text": TEXT}),
        ),
        (
            Method::POST,
            "/v1/lookup/batch?frames=2".to_string(),
            json!({"items": [{"text": TEXT}]}),
        ),
        (
            Method::GET,
            "/v1/matches?frames=yes please".replace(' ', "%20"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/v1/matches/{mid}?frames=TRUE!"),
            json!(null),
        ),
    ];
    for (method, path, body) in frames_cases {
        let body = (!body.is_null()).then(|| body.to_string());
        let (status, v) = s.call_text(Some(&k), method, &path, body.as_deref()).await;
        assert_field_error(status, &v, "\"frames\"", &path);
    }
    assert_eq!(
        s.engine().store().count_submissions().await.unwrap(),
        before
    );
    s.ok_json(&k, Method::GET, "/v1/matches?frames=false", json!(null))
        .await;
    // Documented in OpenAPI.
    let (_, doc) = s
        .call_text(Some(&k), Method::GET, "/openapi.json", None)
        .await;
    let ctx = &doc["components"]["schemas"]["LookupContext"]["properties"];
    assert_eq!(ctx["content_id"]["maxLength"], 2048, "{ctx}");
    assert_eq!(ctx["url"]["maxLength"], 2048);
    assert_eq!(
        doc["components"]["schemas"]["Item"]["properties"]["note"]["maxLength"],
        16384
    );
    s.stop().await;
}

/// Defect 9: `.` and `..` (and anything else that is not one URL path
/// segment) are refused as bank names, through the API, HMA's route and
/// the console; `...` is a fine name and addressable.
async fn bank_names_are_path_segments(db: &TestDb) {
    let s = start(&db.url, |_| {}).await;
    let k = s.admin.clone();
    for bad in [".", "..", "a/b", "a b", ""] {
        let (status, v) = s
            .call_text(
                Some(&k),
                Method::POST,
                "/v1/banks",
                Some(&json!({ "name": bad }).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
    }
    let (status, _) = s
        .call_text(
            Some(&k),
            Method::POST,
            "/c/banks",
            Some(&json!({"name": ".."}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.ok_json(&k, Method::POST, "/v1/banks", json!({"name": "..."}))
        .await;
    let v = s
        .ok_json(&k, Method::GET, "/v1/banks/...", json!(null))
        .await;
    assert_eq!(v["name"], "...");
    // The console's bank form follows the same rule.
    s.engine()
        .create_user(&Actor::system(), "cur", "curator pass 1", Role::Curator)
        .await
        .unwrap();
    let sid = s.console_login("cur", "curator pass 1").await;
    let page = s
        .http
        .get(s.url("/ui/banks"))
        .header("cookie", format!("et_session={sid}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let r = s
        .http
        .post(s.url("/ui/banks"))
        .header("cookie", format!("et_session={sid}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", csrf.as_str()), ("name", "..")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let banks = s.ok_json(&k, Method::GET, "/v1/banks", json!(null)).await;
    assert_eq!(banks["banks"].as_array().unwrap().len(), 1, "{banks}");
    s.stop().await;
}

fn vpdq_frames(value: &str) -> usize {
    serde_json::from_str::<Vec<String>>(value).unwrap().len()
}

/// Defects 11 and 14: a video added to a bank through `/v1` (and HMA's
/// content route) is hashed at every frame, so a 1 s-sampled lookup of
/// another cut matches; the match reports both shares and frame counts,
/// never the frame lists unless `?frames=true`.
async fn video_bank_entries_are_hashed_every_frame_and_report_shares(db: &TestDb) {
    let s = start(&db.url, |c| c.heavy_hash_workers = 2).await;
    let k = s.admin.clone();
    s.ok_json(&k, Method::POST, "/v1/banks", json!({"name": "videos"}))
        .await;
    let form = Form::new().part(
        "file",
        Part::bytes(video("chair-19-sd-bar.mp4")).file_name("a.mp4"),
    );
    let (status, item) = s.multipart(&k, "/v1/banks/videos/content", form).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let stored = item["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["signal_type"] == "vpdq")
        .expect("a vpdq signal");
    // 18.8 s at 30 fps: every frame, not one a second (19).
    let frames = vpdq_frames(stored["value"].as_str().unwrap());
    assert!(frames > 500, "bank entry has {frames} frames");
    // Another cut of the clip, as an upload (1 s sampling).
    let form = Form::new().part(
        "file",
        Part::bytes(video("chair-22-sd-sepia-bar.mp4")).file_name("b.mp4"),
    );
    let (status, hit) = s.multipart(&k, "/v1/lookup", form).await;
    assert_eq!(status, StatusCode::OK, "{hit}");
    let m = &hit["matches"][0];
    assert_eq!(m["signal_type"], "vpdq", "{hit}");
    let q = m["query_match_pct"].as_f64().expect("query share");
    let c = m["compared_match_pct"].as_f64().expect("compared share");
    assert!(q >= 80.0, "query share {q}");
    assert!(c > 0.0 && c <= 100.0, "compared share {c}");
    assert_eq!(m["compared_frames"].as_u64().unwrap() as usize, frames);
    let qf = m["query_frames"].as_u64().unwrap();
    assert!((15..=30).contains(&qf), "query frames {qf}");
    assert!(
        m.get("matched_value").is_none() && m.get("query_value").is_none(),
        "{m}"
    );
    // The frame lists on request.
    let mid = m["id"].as_i64().unwrap();
    let full = s
        .ok_json(
            &k,
            Method::GET,
            &format!("/v1/matches/{mid}?frames=true"),
            json!(null),
        )
        .await;
    assert_eq!(vpdq_frames(full["matched_value"].as_str().unwrap()), frames);
    let compact = s
        .ok_json(&k, Method::GET, &format!("/v1/matches/{mid}"), json!(null))
        .await;
    assert!(compact.get("matched_value").is_none(), "{compact}");
    assert_eq!(compact["query_match_pct"], m["query_match_pct"]);
    // The audit entry of the lookup holds no frame list either.
    let audit = s.ok_json(&k, Method::GET, "/v1/audit", json!(null)).await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "lookup.match")
        .unwrap();
    assert!(entry["after"]["matches"][0].get("matched_value").is_none());
    // HMA: a video added through /c/bank/{name}/content is hashed every
    // frame too, and lookups carry the shares.
    let form = Form::new().part(
        "file",
        Part::bytes(video("chair-20-sd-bar.mp4")).file_name("c.mp4"),
    );
    let (status, v) = s.multipart(&k, "/c/bank/videos/content", form).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        vpdq_frames(v["signals"]["vpdq"].as_str().unwrap()) > 500,
        "{v}"
    );
    let form = Form::new().part(
        "file",
        Part::bytes(video("chair-22-sd-sepia-bar.mp4")).file_name("d.mp4"),
    );
    let (status, v) = s.multipart(&k, "/m/lookup", form).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let entries = v["vpdq"]["videos"].as_array().expect("vpdq hits").clone();
    assert_eq!(entries.len(), 2, "{v}");
    for e in entries {
        assert!(e["query_match_pct"].as_f64().unwrap() >= 80.0, "{e}");
        assert!(e["compared_match_pct"].is_number(), "{e}");
    }
    // The console's upload form: a bank entry too, every frame.
    s.engine()
        .create_user(&Actor::system(), "cur", "curator pass 1", Role::Curator)
        .await
        .unwrap();
    let sid = s.console_login("cur", "curator pass 1").await;
    let bank_id = s
        .ok_json(&k, Method::GET, "/v1/banks/videos", json!(null))
        .await["id"]
        .as_i64()
        .unwrap();
    let page = s
        .http
        .get(s.url(&format!("/ui/banks/{bank_id}")))
        .header("cookie", format!("et_session={sid}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let form = Form::new().text("csrf", csrf).part(
        "file",
        Part::bytes(video("chair-22-with-small-logo-bar.mp4")).file_name("e.mp4"),
    );
    let r = s
        .http
        .post(s.url(&format!("/ui/banks/{bank_id}/content")))
        .header("cookie", format!("et_session={sid}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let listed = s
        .ok_json(&k, Method::GET, "/v1/banks/videos/content", json!(null))
        .await;
    let last = listed["content"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let v = last["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["signal_type"] == "vpdq")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        vpdq_frames(&v) > 500,
        "console upload has {} frames",
        vpdq_frames(&v)
    );
    s.stop().await;
}

/// Defect 15: `--retain-submissions`: a background sweep deletes lookups
/// without matches after the window, and matched ones once every match is
/// decided and the decision window passed — with their matches, decisions
/// and audit trail; a pending match keeps its submission. Two sweeps at
/// once delete each row once and fail nothing.
async fn retention_sweeps_expired_submissions(db: &TestDb) {
    let window = Duration::from_millis(1500);
    let s = start(&db.url, |c| {
        c.retention = Some((
            RetentionPolicy {
                submissions: window,
                decided: window,
            },
            Duration::from_millis(200),
        ));
    })
    .await;
    let k = s.admin.clone();
    s.ok_json(&k, Method::POST, "/v1/banks", json!({"name": "ret"}))
        .await;
    s.ok_json(
        &k,
        Method::POST,
        "/v1/banks/ret/content",
        json!({"text": TEXT}),
    )
    .await;
    let miss = s
        .ok_json(
            &k,
            Method::POST,
            "/v1/lookup",
            json!({"text": "completely different words about cooking pasta at home tonight"}),
        )
        .await;
    assert!(miss["matches"].as_array().unwrap().is_empty());
    let decided = s
        .ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    // Every match of the submission (text_minhash, md5, sha256) decided.
    let decided_match = decided["matches"][0]["id"].as_i64().unwrap();
    for m in decided["matches"].as_array().unwrap() {
        s.ok_json(
            &k,
            Method::POST,
            &format!("/v1/matches/{}/decision", m["id"]),
            json!({"decision": "confirm"}),
        )
        .await;
    }
    let pending = s
        .ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    let pending_match = pending["matches"][0]["id"].as_i64().unwrap();
    let store = s.engine().store().clone();
    let sub = |v: &Value| v["submission_id"].as_i64().unwrap();
    for v in [&miss, &decided, &pending] {
        assert!(store.get_submission(sub(v)).await.unwrap().is_some());
    }
    tokio::time::sleep(window + Duration::from_millis(1200)).await;
    assert!(store.get_submission(sub(&miss)).await.unwrap().is_none());
    assert!(store.get_submission(sub(&decided)).await.unwrap().is_none());
    assert!(store.get_submission(sub(&pending)).await.unwrap().is_some());
    let (status, _) = s
        .call_text(
            Some(&k),
            Method::GET,
            &format!("/v1/matches/{decided_match}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.ok_json(
        &k,
        Method::GET,
        &format!("/v1/matches/{pending_match}"),
        json!(null),
    )
    .await;
    let audit = s
        .ok_json(&k, Method::GET, "/v1/audit?limit=1000", json!(null))
        .await;
    let targets: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert!(!targets.contains(&format!("match:{decided_match}").as_str()));
    assert!(!targets.contains(&format!("submission:{}", sub(&decided)).as_str()));
    assert!(targets.contains(&format!("submission:{}", sub(&pending)).as_str()));
    assert!(targets.contains(&"submissions"), "a retention.sweep entry");
    // Two sweepers at once (two replicas): each row is deleted once.
    let engine = s.engine();
    for _ in 0..30 {
        s.ok_json(
            &k,
            Method::POST,
            "/v1/lookup",
            json!({"signals": {"md5": "1".repeat(32)}}),
        )
        .await;
    }
    let policy = RetentionPolicy {
        submissions: Duration::ZERO,
        decided: Duration::ZERO,
    };
    let later = echotrace_store::now_ms() + 60_000;
    let (a, b) = tokio::join!(
        engine.sweep_submissions_at(&policy, later),
        engine.sweep_submissions_at(&policy, later)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.submissions + b.submissions >= 30, "{a:?} {b:?}");
    assert!(store.get_submission(sub(&pending)).await.unwrap().is_some());
    assert_eq!(store.count_submissions().await.unwrap(), 1);
    s.stop().await;
}

// ----- SQLite only: no storage involved ------------------------------------

/// Defect 2: errors are counted by status class, whatever produced them.
/// Defect 3: a body that finds the budget full waits briefly, then gets a
/// 503 with `Retry-After` (declared length or chunked); the holder of the
/// budget is served, and so is the refused request once it retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_budget_503_and_errors_counted_by_class() {
    let db = TestDb::sqlite();
    let budget = 2 << 20;
    let s = start(&db.url, |c| {
        c.body_limit = budget;
        c.body_budget = budget;
        c.body_budget_wait = Duration::from_millis(300);
    })
    .await;
    let k = s.admin.clone();
    // Three client errors of different kinds.
    assert_eq!(
        s.call_text(None, Method::GET, "/v1/banks", None).await.0,
        401
    );
    assert_eq!(
        s.call_text(Some(&k), Method::GET, "/v1/nope", None).await.0,
        404
    );
    assert_eq!(
        s.call_text(Some(&k), Method::POST, "/v1/banks", Some("{bad"))
            .await
            .0,
        400
    );
    assert_eq!(
        s.metric("echotrace_http_errors_total{class=\"4xx\"}").await,
        3.0
    );
    // A maximum-size lookup holds the whole budget while its body trickles in.
    let words = "lorem ipsum dolor sit amet ".repeat(budget / 27);
    let mut body = format!("{{\"text\":\"{words}");
    body.truncate(budget - 2);
    body.push_str("\"}");
    assert_eq!(body.len(), budget);
    let mut holder = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&body.as_bytes()[..1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another lookup cannot get room: 503 + Retry-After after the wait.
    let started = Instant::now();
    let r = s
        .http
        .post(s.url("/v1/lookup"))
        .bearer_auth(&k)
        .json(&json!({"text": "a short lookup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    // A chunked body (no declared length) is metered as it arrives.
    let head = format!(
        "POST /v1/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = format!("{{\"text\":\"{}\"}}", "x".repeat(300 * 1024));
    let mut body_chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
    body_chunked.extend_from_slice(chunk.as_bytes());
    body_chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (status, head_text) = head_only(s.addr, &head, &body_chunked, Duration::from_secs(5)).await;
    assert_eq!(status, 503, "{head_text}");
    // The holder finishes and is answered.
    holder.write_all(&body.as_bytes()[1000..]).await.unwrap();
    let (status, _) = read_head(&mut holder, Duration::from_secs(30)).await;
    assert_eq!(status, 200);
    // Room again.
    s.ok_json(
        &k,
        Method::POST,
        "/v1/lookup",
        json!({"text": "a short lookup"}),
    )
    .await;
    assert_eq!(
        s.metric("echotrace_http_errors_total{class=\"5xx\"}").await,
        2.0
    );
    assert_eq!(
        s.metric("echotrace_http_errors_total{class=\"4xx\"}").await,
        3.0
    );
    s.stop().await;
    db.cleanup().await.unwrap();
}

/// Defect 4: the anonymous login form reads no large body: without its
/// cookie it is refused before the body, with it a declared 30 MiB body is
/// a 413 at once. Defect 10a: a `next` with CR/LF still redirects (to the
/// dashboard) instead of a 303 without `Location`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reads_no_large_anonymous_body_and_next_cannot_strand() {
    let db = TestDb::sqlite();
    let s = start(&db.url, |_| {}).await;
    let big = 30 << 20;
    let form_head = |cookie: &str| {
        format!(
            "POST /ui/login HTTP/1.1\r\nHost: x\r\n{cookie}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {big}\r\n\r\n"
        )
    };
    let (status, _) = head_only(s.addr, &form_head(""), b"csrf=", Duration::from_secs(5)).await;
    assert_eq!(status, 403);
    let token = s.login_form().await;
    let (status, _) = head_only(
        s.addr,
        &form_head(&format!("Cookie: et_login={token}\r\n")),
        b"csrf=",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, 413);
    // A well-formed login whose `next` holds a header break.
    s.engine()
        .create_user(&Actor::system(), "ada", "ada password 1", Role::Reviewer)
        .await
        .unwrap();
    let r = s
        .http
        .post(s.url("/ui/login"))
        .header("cookie", format!("et_login={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={token}&username=ada&password=ada+password+1&next=%2Fui%2Fqueue%0D%0ASet-Cookie%3A+x%3D1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/");
    s.stop().await;
    db.cleanup().await.unwrap();
}

/// An executable stand-in for the PDF extractor: records its environment,
/// sleeps, then fails the way a crashing extractor does (a panic with
/// source paths, an allocator message, a backtrace) without any output.
fn failing_extractor(dir: &std::path::Path, sleep_secs: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let env_file = dir.join("env.txt");
    let script = dir.join("extractor.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n/usr/bin/env > '{}'\n/bin/sleep {sleep_secs}\n\
             echo \"thread 'main' panicked at crates/signals/src/pdf.rs:10:5:\" >&2\n\
             echo 'memory allocation of 750968960 bytes failed' >&2\n\
             echo 'stack backtrace: 0: std::panicking::begin_panic at /rustc/0123abcd/library/std/src/panicking.rs:1' >&2\n\
             exit 101\n",
            env_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Defect 6: PDFs (and videos) hash in a pool of their own, so a short text
/// lookup answers in under a second while every PDF slot is busy. Defect
/// 7: the extractor's failure reaches the client as one fixed message — no
/// stderr, paths, allocator sizes or backtrace — and the child runs with
/// an empty environment (no inherited `RUST_BACKTRACE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lookups_do_not_wait_behind_pdfs_and_child_failures_are_fixed_messages() {
    let db = TestDb::sqlite();
    let dir = std::env::temp_dir().join(format!("et-i12-pdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let extractor = failing_extractor(&dir, 2);
    let s = start(&db.url, |c| {
        c.engine.pdf_extractor = Some(extractor.clone());
        c.hash_workers = 1;
        c.heavy_hash_workers = 1;
    })
    .await;
    let k = s.admin.clone();
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let mut pdfs = Vec::new();
    for _ in 0..2 {
        let http = s.http.clone();
        let url = s.url("/v1/lookup");
        let key = k.clone();
        pdfs.push(tokio::spawn(async move {
            let form = Form::new().part("file", Part::bytes(pdf.to_vec()).file_name("a.pdf"));
            let r = http
                .post(url)
                .bearer_auth(key)
                .multipart(form)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    s.ok_json(&k, Method::POST, "/v1/lookup", json!({"text": TEXT}))
        .await;
    let took = started.elapsed();
    eprintln!("text lookup behind a busy PDF pool: {took:?} (bound 1 s)");
    assert!(
        took < Duration::from_secs(1),
        "text lookup took {took:?} behind the PDF pool"
    );
    for p in pdfs {
        let (status, body) = p.await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["error"]["message"],
            echotrace_engine::PDF_UNPROCESSABLE,
            "{body}"
        );
        for leak in ["panicked", "src/", "750968960", "backtrace", "rustc"] {
            assert!(!body.contains(leak), "{leak} leaked: {body}");
        }
    }
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    let vars: Vec<&str> = env.lines().filter(|l| !l.starts_with("PWD=")).collect();
    assert!(
        !env.contains("RUST_BACKTRACE") && vars.is_empty(),
        "the extractor inherited an environment: {env}"
    );
    // A video that ffmpeg cannot decode: a fixed message, none of ffmpeg's
    // own words (heap addresses).
    let mut broken = video("chair-19-sd-bar.mp4");
    broken.truncate(broken.len() / 3);
    let form = Form::new().part("file", Part::bytes(broken).file_name("cut.mp4"));
    let (status, v) = s.multipart(&k, "/v1/lookup", form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(!m.contains("0x") && !m.contains('@'), "{m}");
    assert!(
        m == echotrace_engine::VIDEO_UNDECODABLE || m.starts_with("cannot hash video: "),
        "{m}"
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    db.cleanup().await.unwrap();
}
