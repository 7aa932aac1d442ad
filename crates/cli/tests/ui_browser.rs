//! Acceptance test of the review console in real headless Chromium, driven
//! over WebDriver (chromedriver on a loopback port) with `fantoccini`.
//!
//! It runs `echotrace serve --demo` — once on its throwaway SQLite database
//! and once with `--db` pointing at a fresh PostgreSQL schema at
//! `$ECHOTRACE_TEST_PG_URL` (the same code and the same scenario on both
//! backends; the PostgreSQL run FAILS if the variable is unset, unless
//! `ECHOTRACE_SKIP_PG=1`) — seeded with generated, benign demo media, then:
//! logs in; sees the demo queue; checks that media
//! is blurred AND greyscale (computed `filter`) until revealed, one item at a
//! time; confirms a match and undoes it; confirms another and sees the
//! webhook delivered to a local receiver after the (shortened) undo window;
//! creates a bank and adds a hash; uses the match debugger; checks that a
//! reviewer gets 403 on the API-keys page; checks the phone-width layout; and
//! (SQLite run only) writes a 1280×720 screenshot of each page (to
//! `docs/screenshots/` with `ECHOTRACE_UPDATE_SCREENSHOTS=1`, else to a
//! scratch directory). The PostgreSQL run also checks that `serve --demo`
//! refuses to seed a database that is no longer empty. The two runs take
//! turns (one browser at a time).
//!
//! Needs `chromium` and `chromedriver` (`apt-get install -y chromium
//! chromium-driver`). If they are missing the test FAILS with that message.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Kills a child process when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromedriver on a free loopback port. The port comes from binding port 0
/// and letting it go, so another process may take it first; chromedriver
/// then exits, and another port is tried.
fn start_chromedriver(driver: &Path) -> (u16, Reaper) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Reaper(
            Command::new(driver)
                .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let exited = child.0.try_wait().ok().flatten().is_some();
            if exited {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (port, child);
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("chromedriver exited on five free ports in a row");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local webhook receiver: records every POST body.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || handle_hook(stream, &sink));
        }
    });
    (url, seen)
}

fn handle_hook(mut stream: TcpStream, sink: &Mutex<Vec<Value>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut len = 0usize;
    let mut event = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = lower.strip_prefix("x-echotrace-event:") {
            event = v.trim().to_string();
        }
    }
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_ok() {
        let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("_event".into(), Value::String(event));
        }
        sink.lock().unwrap().push(v);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/// Minimal HTTP/1.1 JSON POST (the test has no HTTP client dependency).
fn post_json(addr: &str, path: &str, bearer: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {bearer}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

/// What `serve --demo` prints.
struct Demo {
    base: String,
    admin_password: String,
    reviewer_password: String,
    admin_key: String,
}

fn start_demo(db_dir: &Path, db_url: Option<&str>) -> (Reaper, Demo) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echotrace"));
    cmd.args([
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--undo-window",
        "6",
    ]);
    if let Some(url) = db_url {
        // A demo seeded into a given database has no demo directory of its
        // own, so its WARC evidence would land in ./warc (the default).
        let warc = db_dir.join("warc");
        cmd.args(["--db", url, "--warc-dir", warc.to_str().unwrap()]);
    }
    let mut child = cmd
        .env("ECHOTRACE_DEMO_DIR", db_dir)
        .env_remove("ECHOTRACE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run echotrace serve --demo");
    let stdout = child.stdout.take().unwrap();
    let reaper = Reaper(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[serve] {line}");
            if tx.send(line).is_err() {
                // Keep draining so the server never blocks on a full pipe.
            }
        }
    });
    let (mut base, mut admin_password, mut reviewer_password, mut admin_key) =
        (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while base.is_none()
        || admin_password.is_none()
        || reviewer_password.is_none()
        || admin_key.is_none()
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("serve --demo did not print its URL, logins and admin key in time");
        let field = |prefix: &str| line.split_once(prefix).map(|(_, v)| v.trim().to_string());
        if let Some(v) = field("review console: ") {
            base = Some(v.trim_end_matches('/').trim_end_matches("/ui").to_string());
        }
        if let Some(v) = field("login: admin / ") {
            admin_password = Some(v);
        }
        if let Some(v) = field("login: reviewer / ") {
            reviewer_password = Some(v);
        }
        if line.contains("admin API key") {
            admin_key = field("(shown once): ");
        }
    }
    let demo = Demo {
        base: base.unwrap(),
        admin_password: admin_password.unwrap(),
        reviewer_password: reviewer_password.unwrap(),
        admin_key: admin_key.unwrap(),
    };
    (reaper, demo)
}

/// `docs/screenshots/` when `ECHOTRACE_UPDATE_SCREENSHOTS=1`; otherwise a
/// scratch directory, so an ordinary test run leaves the checkout clean.
fn screenshots_dir() -> PathBuf {
    let d = if std::env::var("ECHOTRACE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        std::env::temp_dir().join(format!("echotrace-screenshots-{}", std::process::id()))
    };
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write a screenshot, on the run that records them (`shots`).
async fn shot(c: &Client, name: &str, shots: bool) {
    if !shots {
        return;
    }
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {script}: {e}"))
}

async fn login(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    // Unauthenticated: redirected to the login form.
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/ui/login"));
    c.find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/ui/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("header.top .who"))
        .await
        .expect("logged in");
}

async fn filter_of(c: &Client, css: &str) -> String {
    js(
        c,
        &format!("return getComputedStyle(document.querySelector({css:?})).filter;"),
    )
    .await
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// Press one key wherever the focus is (WebDriver actions).
async fn press_key(c: &Client, key: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let actions = KeyActions::new("keyboard".to_string())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(actions).await.expect("key press");
}

async fn wait_for<F: Fn() -> bool>(what: &str, timeout: Duration, f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One browser at a time on this small machine.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_console_in_headless_chromium() {
    let _turn = BROWSER.lock().await;
    scenario(None, "sqlite", true).await;
    // The scratch copies of the screenshots are not kept.
    if std::env::var("ECHOTRACE_UPDATE_SCREENSHOTS").as_deref() != Ok("1") {
        let _ = std::fs::remove_dir_all(screenshots_dir());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_console_in_headless_chromium_on_postgres() {
    let _turn = BROWSER.lock().await;
    let Some(db) = echotrace_store::testing::TestDb::postgres().await.unwrap() else {
        return;
    };
    scenario(Some(&db.url), "postgres", false).await;
    // The database now holds the demo: a second `serve --demo` refuses it.
    let out = Command::new(env!("CARGO_BIN_EXE_echotrace"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db.url,
        ])
        .env_remove("ECHOTRACE_DATABASE_URL")
        .output()
        .expect("run echotrace serve --demo again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a non-empty database must be refused: {stderr}"
    );
    assert!(
        stderr.contains("only an empty database") && stderr.contains("banks"),
        "clear refusal expected, got: {stderr}"
    );
    db.cleanup().await.unwrap();
}

/// The whole browser scenario against `serve --demo` on `db_url` (None:
/// the demo's throwaway SQLite database).
async fn scenario(db_url: Option<&str>, backend: &str, shots: bool) {
    let missing = "the review-console browser test needs chromium and chromedriver: \
                   install them with `apt-get install -y chromium chromium-driver`";
    let driver = which(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver not found on PATH; {missing}"));
    let chrome = which(&["chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("chromium not found on PATH; {missing}"));

    let tmp = std::env::temp_dir().join(format!(
        "echotrace-ui-browser-{}-{backend}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (_server, demo) = start_demo(&tmp.join("db"), db_url);
    let addr = demo.base.trim_start_matches("http://").to_string();

    // Webhook receiver for decision events.
    let (hook_url, hooks) = webhook_receiver();
    let (status, body) = post_json(
        &addr,
        "/v1/actions/webhooks",
        &demo.admin_key,
        &json!({"url": hook_url, "secret": "test-secret-of-16+", "events": ["decision"]}),
    );
    assert_eq!(status, 201, "registering the webhook: {body}");

    // chromedriver on a loopback port, Chromium with a fresh profile.
    let (port, _driver) = start_chromedriver(&driver);
    let profile = tmp.join("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--hide-scrollbars",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    // chromedriver is plain HTTP on loopback: no TLS stack needed.
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver");
    // Inner viewport of exactly 1280×720 for the screenshots.
    c.set_window_size(1280, 720).await.unwrap();
    let inner = js(&c, "return [window.innerWidth, window.innerHeight];").await;
    let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
    c.set_window_size((2560 - iw) as u32, (1440 - ih) as u32)
        .await
        .unwrap();

    let base = demo.base.clone();
    let result = async {
        // ----- login page, then log in as admin --------------------------------
        c.goto(&format!("{base}/ui/login")).await.unwrap();
        shot(&c, "login", shots).await;
        login(&c, &base, "admin", &demo.admin_password).await;

        // ----- dashboard ---------------------------------------------------------
        let pending: i64 = c.find(Locator::Css("[data-stat=pending]")).await.unwrap().text().await.unwrap().trim().parse().unwrap();
        assert!(pending >= 5, "demo queue should have pending matches, has {pending}");
        let bars = c.find_all(Locator::Css(".chart svg rect.bar")).await.unwrap().len();
        assert_eq!(bars, 30, "one bar per day");
        shot(&c, "dashboard", shots).await;
        // Keyboard: on a fresh page the first Tab lands on the skip link.
        c.goto(&format!("{base}/ui/")).await.unwrap();
        press_key(&c, '\u{e004}').await;
        let active = js(&c, "return document.activeElement.className;").await;
        assert_eq!(active.as_str(), Some("skip"), "first Tab should focus the skip link");

        // ----- queue: media hidden until revealed -----------------------------
        c.goto(&format!("{base}/ui/queue")).await.unwrap();
        let cards = c.find_all(Locator::Css(".card[data-match]")).await.unwrap();
        assert!(cards.len() >= 5, "demo queue shows {} cards", cards.len());
        let imgs = js(&c, "return Array.from(document.querySelectorAll('img.media')).map(i => i.id);").await;
        let imgs: Vec<String> = imgs.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert!(imgs.len() >= 2, "demo media should be retained and shown (hidden)");
        for id in &imgs {
            let f = filter_of(&c, &format!("#{id}")).await;
            assert!(f.contains("blur(") && f.contains("grayscale(1)"), "{id} should be blurred and greyscale, filter = {f}");
        }
        shot(&c, "queue", shots).await;
        // Reveal the first: only it becomes visible.
        c.find(Locator::Css(&format!("[data-reveal='{}']", imgs[0]))).await.unwrap().click().await.unwrap();
        assert_eq!(filter_of(&c, &format!("#{}", imgs[0])).await, "none");
        let f1 = filter_of(&c, &format!("#{}", imgs[1])).await;
        assert!(f1.contains("blur(") && f1.contains("grayscale(1)"), "others stay hidden: {f1}");
        // Revealing another hides the first again (one at a time), by keyboard.
        let b = c.find(Locator::Css(&format!("[data-reveal='{}']", imgs[1]))).await.unwrap();
        b.send_keys("\u{e007}").await.unwrap(); // Enter on the focused button
        assert_eq!(filter_of(&c, &format!("#{}", imgs[1])).await, "none");
        let f0 = filter_of(&c, &format!("#{}", imgs[0])).await;
        assert!(f0.contains("blur("), "first re-hidden: {f0}");

        // ----- confirm one match and undo it ----------------------------------
        let first_id = js(&c, "return document.querySelector('.card[data-match]').getAttribute('data-match');").await;
        let first_id = first_id.as_str().unwrap().to_string();
        js(&c, &format!("document.querySelector(\".card[data-match='{first_id}'] button[value=confirm]\").scrollIntoView({{block: 'center'}}); return 1;")).await;
        c.find(Locator::Css(&format!(".card[data-match='{first_id}'] button[value=confirm]"))).await.unwrap().click().await.unwrap();
        let undo = c
            .wait()
            .for_element(Locator::Css(&format!("form[action='/ui/matches/{first_id}/undo'] button")))
            .await
            .expect("undo offered after confirming");
        shot(&c, "queue-undo", shots).await;
        js(&c, &format!("document.querySelector(\"form[action='/ui/matches/{first_id}/undo']\").scrollIntoView({{block: 'center'}}); return 1;")).await;
        undo.click().await.unwrap();
        c.wait()
            .for_element(Locator::Css(&format!(".card[data-match='{first_id}'] button[value=confirm]")))
            .await
            .expect("match pending again after undo");
        assert!(c.find(Locator::Css(".flash.ok")).await.unwrap().text().await.unwrap().contains("undone"));

        // ----- confirm another (keyboard shortcut) and see the webhook --------
        let second_id = js(&c, &format!(
            "return Array.from(document.querySelectorAll('.card[data-match]')).map(c => c.getAttribute('data-match')).find(i => i !== '{first_id}');"
        )).await;
        let second_id = second_id.as_str().unwrap().to_string();
        js(&c, &format!(
            "document.querySelectorAll('.card').forEach(c => c.classList.remove('current')); document.querySelector(\".card[data-match='{second_id}']\").classList.add('current'); document.activeElement.blur(); return 1;"
        )).await;
        press_key(&c, 'c').await;
        c.wait()
            .for_element(Locator::Css(&format!("form[action='/ui/matches/{second_id}/undo']")))
            .await
            .expect("keyboard confirm recorded");
        let want: i64 = second_id.parse().unwrap();
        wait_for("the decision webhook", Duration::from_secs(40), || {
            hooks.lock().unwrap().iter().any(|v| v["payload"]["match_id"].as_i64() == Some(want) && v["_event"] == "decision")
        })
        .await;
        let undone: i64 = first_id.parse().unwrap();
        assert!(
            !hooks.lock().unwrap().iter().any(|v| v["payload"]["match_id"].as_i64() == Some(undone)),
            "the undone decision must never be published"
        );

        // ----- banks: create one and add a hash --------------------------------
        c.goto(&format!("{base}/ui/banks")).await.unwrap();
        shot(&c, "banks", shots).await;
        c.find(Locator::Css("#name")).await.unwrap().send_keys("e2e-bank").await.unwrap();
        c.find(Locator::Css("#description")).await.unwrap().send_keys("created by the browser test").await.unwrap();
        c.find(Locator::Css("#text_equivalences")).await.unwrap().send_keys("rovers = harbour rovers fc\nlakeside = lufc").await.unwrap();
        c.find(Locator::Css("form[action='/ui/banks'] button[type=submit]")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("#csv")).await.expect("bank page");
        let state = c.find(Locator::Css("#equivalences-state")).await.expect("list shown on the bank page").text().await.unwrap();
        assert!(state.contains("2 group(s)"), "{state}");
        let listed = c.find(Locator::Css("#text_equivalences")).await.unwrap().prop("value").await.unwrap().unwrap_or_default();
        assert_eq!(listed, "rovers = harbour rovers fc\nlakeside = lufc");
        let hash = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
        c.find(Locator::Css("#csv")).await.unwrap().send_keys(&format!("pdq,{hash},e2e;test,added by test")).await.unwrap();
        c.find(Locator::Css("#csv")).await.unwrap().find(Locator::XPath("./ancestor::form//button[@type='submit']")).await.unwrap().click().await.unwrap();
        c.wait()
            .for_element(Locator::XPath("//td[contains(., 'added by test')]"))
            .await
            .expect("the pasted hash is listed in the bank");
        let page = c.source().await.unwrap();
        assert!(page.contains("added by test") && page.contains("e2e-bank"));
        shot(&c, "bank", shots).await;

        // ----- match debugger ---------------------------------------------------
        c.goto(&format!("{base}/ui/debug")).await.unwrap();
        let near = format!("{}{}", &hash[..60], "0000"); // a few bits away
        c.find(Locator::Css("#dhash")).await.unwrap().send_keys(&format!("pdq,{near}")).await.unwrap();
        c.find(Locator::Css("form[action='/ui/debug'] button[type=submit]")).await.unwrap().click().await.unwrap();
        let table = c.wait().for_element(Locator::Css("#debug-hits")).await.expect("debugger results");
        let text = table.text().await.unwrap();
        assert!(text.contains("e2e-bank") && text.contains("match"), "debugger explains the hit: {text}");
        shot(&c, "debugger", shots).await;

        // ----- audit and keys (admin) ---------------------------------------------
        c.goto(&format!("{base}/ui/audit?action=match")).await.unwrap();
        assert!(c.source().await.unwrap().contains("match.undo"));
        shot(&c, "audit", shots).await;
        c.goto(&format!("{base}/ui/keys")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Create a key"));
        shot(&c, "keys", shots).await;
        c.goto(&format!("{base}/ui/settings")).await.unwrap();
        shot(&c, "settings", shots).await;

        // ----- spread tracking: dashboard, cluster page, HTML report ----------------
        let demo_db = db_url.map(str::to_string).unwrap_or_else(|| format!("sqlite://{}", tmp.join("db/demo.sqlite").display()));
        spread_pages(&c, &base, &demo_db, &tmp, (iw, ih), shots).await;

        // ----- phone width: no horizontal scrolling -------------------------------
        c.set_window_size(390 + (2560 - iw as u32) - 1280, 844 + (1440 - ih as u32) - 720).await.unwrap();
        c.goto(&format!("{base}/ui/queue")).await.unwrap();
        let overflow = js(&c, "return document.documentElement.scrollWidth - window.innerWidth;").await;
        if overflow.as_i64().unwrap_or(1) > 0 {
            // Name the widest elements, so a failure says what to fix.
            let wide = js(&c, "return Array.from(document.querySelectorAll('body *')).filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0).map(e => e.tagName + '.' + e.className + ' ' + e.clientWidth + '/' + e.scrollWidth + ': ' + (e.textContent || '').slice(0, 60)).slice(-5);").await;
            panic!("queue overflows horizontally at phone width by {overflow}: {wide}");
        }
        shot(&c, "queue-phone", shots).await;
        c.set_window_size((2560 - iw) as u32, (1440 - ih) as u32).await.unwrap();

        // ----- a reviewer cannot reach the keys page --------------------------------
        c.find(Locator::Css("form[action='/ui/logout'] button")).await.unwrap().click().await.unwrap();
        login(&c, &base, "reviewer", &demo.reviewer_password).await;
        c.goto(&format!("{base}/ui/keys")).await.unwrap();
        let h1 = c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
        assert_eq!(h1, "403 Forbidden");
        assert!(c.find(Locator::Css("a[href='/ui/keys']")).await.is_err(), "reviewer nav hides the keys page");
    }
    .await;
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The Spread dashboard, a cluster page (media blurred and greyscale,
/// keyboard, phone width) and the self-contained HTML report from
/// `echotrace report` opened as a file: it makes no network request.
async fn spread_pages(
    c: &Client,
    base: &str,
    db_url: &str,
    tmp: &Path,
    (iw, ih): (i64, i64),
    shots: bool,
) {
    c.goto(&format!("{base}/ui/spread")).await.unwrap();
    let curves = c
        .find_all(Locator::Css("svg.survival path.curve"))
        .await
        .unwrap()
        .len();
    assert!(curves >= 3, "survival curves by platform: {curves}");
    let stat = c
        .find(Locator::Css("[data-stat=copies]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The spread demo seeds 25 copies; the collector demo running beside it
    // may have added matched sightings by now.
    let copies: u64 = stat.trim().parse().unwrap_or(0);
    assert!(copies >= 25, "demo copies: {stat}");
    shot(c, "spread", shots).await;
    // Keyboard: the first cluster link is reachable by Tab and opens with Enter.
    let link = c
        .find(Locator::Css("a[href^='/ui/clusters/']"))
        .await
        .expect("cluster list");
    let href = link.attr("href").await.unwrap().unwrap();
    link.send_keys("\u{e007}").await.unwrap();
    c.wait()
        .for_element(Locator::Css("svg.timeline"))
        .await
        .expect("cluster page");
    assert!(c.current_url().await.unwrap().path().ends_with(&href));
    let f = filter_of(c, "#cluster-item-media").await;
    assert!(
        f.contains("blur(") && f.contains("grayscale(1)"),
        "bank item media hidden: {f}"
    );
    let lanes = c
        .find_all(Locator::Css("svg.timeline rect.lane"))
        .await
        .unwrap()
        .len();
    // One lane per copy: the spread demo's 5, plus any copy of the same
    // item the collector demo found.
    assert!(lanes >= 5, "one lane per copy of the item: {lanes}");
    shot(c, "cluster", shots).await;
    // Phone width: the cluster page and the dashboard do not scroll sideways.
    c.set_window_size(
        390 + (2560 - iw as u32) - 1280,
        844 + (1440 - ih as u32) - 720,
    )
    .await
    .unwrap();
    for path in [href.as_str(), "/ui/spread"] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let overflow = js(
            c,
            "return document.documentElement.scrollWidth - window.innerWidth;",
        )
        .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{path} overflows at phone width by {overflow}"
        );
    }
    shot(c, "spread-phone", shots).await;
    c.set_window_size((2560 - iw) as u32, (1440 - ih) as u32)
        .await
        .unwrap();
    // The HTML report, written by the CLI from the same database.
    let file = tmp.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_echotrace"))
        .args(["report", "--db", db_url, "--format", "html", "--out"])
        .arg(&file)
        .env_remove("ECHOTRACE_DATABASE_URL")
        .output()
        .expect("run echotrace report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.goto(&format!("file://{}", file.display())).await.unwrap();
    c.wait()
        .for_element(Locator::Css("svg.survival"))
        .await
        .expect("report rendered");
    let requests = js(c, "return performance.getEntriesByType('resource').length;").await;
    assert_eq!(requests.as_i64(), Some(0), "the report loaded something");
    let refs = js(c, "return Array.from(document.querySelectorAll('[src],[href],link,script,img,iframe,object')).length;").await;
    assert_eq!(
        refs.as_i64(),
        Some(0),
        "the report references nothing outside itself"
    );
    let urls = c
        .find(Locator::Css("[data-k=urls_found]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The spread demo's 25 URLs, plus any the collector demo matched.
    let urls_found: u64 = urls.trim().parse().unwrap_or(0);
    assert!(urls_found >= 25, "URLs found: {urls}");
    shot(c, "report", shots).await;
}
