//! End-to-end tests of the console over real HTTP (no browser): every POST
//! form rejects a missing or wrong CSRF token, every page escapes
//! user-supplied text, roles are enforced, and decisions can be undone
//! inside the undo window but not after.

use std::time::Duration;

use echotrace_engine::console::{retain_media, MediaOwner};
use echotrace_engine::{
    Actor, BankKind, ContentSource, EngineConfig, LookupRequest, NewBank, NewContent, Role,
    SignalValue, SubmissionContext, Thresholds,
};
use echotrace_signals::signal::SignalType;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, StatusCode};

use crate::{ServerConfig, ServerHandle};

const XSS: &str = "<script>alert(1)</script>";
const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

struct TestServer {
    handle: Option<ServerHandle>,
    base: String,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for one test server's database.
fn test_dir() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("echotrace-ui-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The console admin the tests log in as (`admin` / `admin-password-1`).
async fn add_admin(engine: &echotrace_engine::Engine) {
    engine
        .create_user(&Actor::cli(), "admin", "admin-password-1", Role::Admin)
        .await
        .unwrap();
}

/// A block bank with default thresholds and an optional text-equivalence
/// list.
async fn block_bank(
    engine: &echotrace_engine::Engine,
    name: &str,
    text_equivalences: Option<&str>,
) -> echotrace_engine::Bank {
    engine
        .create_bank(
            &Actor::cli(),
            NewBank {
                name: name.to_string(),
                kind: BankKind::Block,
                description: String::new(),
                thresholds: Thresholds::default(),
                text_equivalences: text_equivalences.map(str::to_string),
            },
        )
        .await
        .unwrap()
}

async fn start(undo: Duration) -> TestServer {
    start_with(undo, |_| {}).await
}

/// [`start`] with the engine configuration adjusted by `tweak`.
async fn start_with(undo: Duration, tweak: impl FnOnce(&mut EngineConfig)) -> TestServer {
    let dir = test_dir();
    let mut engine =
        EngineConfig::with_database_url(format!("sqlite://{}", dir.join("db.sqlite").display()));
    engine.decision_undo_delay = undo;
    tweak(&mut engine);
    let config = ServerConfig {
        engine,
        retain_media: true,
        deliver_webhooks: false,
        exchanges: crate::ExchangeSettings {
            secret_key_file: dir.join("key.secret"),
            ..crate::ExchangeSettings::default()
        },
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = crate::start(config, listener, std::future::pending())
        .await
        .unwrap();
    handle.ready(Duration::from_secs(30)).await.unwrap();
    let base = format!("http://{}", handle.addr);
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    TestServer {
        handle: Some(handle),
        base,
        http,
        dir,
    }
}

impl TestServer {
    fn engine(&self) -> echotrace_engine::Engine {
        self.handle
            .as_ref()
            .unwrap()
            .state
            .engine()
            .unwrap()
            .clone()
    }

    async fn get(&self, path: &str, session: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("et_session={session}"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.text().await.unwrap())
    }

    async fn post(&self, path: &str, session: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("et_session={session}"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// Log in through the form; returns (session id, CSRF token of the session).
    async fn login(&self, user: &str, password: &str) -> (String, String) {
        let r = self
            .http
            .get(format!("{}/ui/login", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let pre = set_cookie_value(&r, "et_login").expect("login page sets et_login");
        let html = r.text().await.unwrap();
        let token = csrf_of(&html).expect("login form has a csrf field");
        assert_eq!(token, pre, "login form echoes the pre-session token");
        let r = self
            .http
            .post(format!("{}/ui/login", self.base))
            .header(COOKIE, format!("et_login={pre}"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
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
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "login of {user} should succeed"
        );
        let raw = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("et_session=") && !c.starts_with("et_session=;"))
            .expect("session cookie");
        assert!(
            raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
            "cookie flags: {raw}"
        );
        let sid = set_cookie_value(&r, "et_session").unwrap();
        let (status, page) = self.get("/ui/settings", &sid).await;
        assert_eq!(status, StatusCode::OK);
        (
            sid,
            csrf_of(&page).expect("pages carry the session csrf token"),
        )
    }
}

fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let s = v.to_str().ok()?;
        let (kv, _) = s.split_once(';').unwrap_or((s, ""));
        let (k, val) = kv.split_once('=')?;
        (k == name && !val.is_empty()).then(|| val.to_string())
    })
}

fn csrf_of(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = html.get(i..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}

/// (action, whole form html) of every POST form on a page.
fn post_forms(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<form") {
        let after = &rest[i..];
        let end = after.find("</form>").map(|e| e + 7).unwrap_or(after.len());
        let form = &after[..end];
        let tag_end = form.find('>').unwrap_or(form.len());
        let tag = &form[..tag_end];
        if tag.contains("method=\"post\"") {
            let a = tag.find("action=\"").map(|p| p + 8).unwrap();
            let action = tag[a..].split('"').next().unwrap().to_string();
            out.push((action, form.to_string()));
        }
        rest = &after[end..];
    }
    out
}

/// Seed: an admin and a reviewer, a bank with XSS-laden labels and note, and
/// a lookup whose context fields carry XSS payloads too.
async fn seed(ts: &TestServer) -> (i64, i64, Vec<i64>) {
    let engine = ts.engine();
    let cli = Actor::cli();
    add_admin(&engine).await;
    engine
        .create_user(&cli, "rev", "reviewer-password-1", Role::Reviewer)
        .await
        .unwrap();
    let bank = engine
        .create_bank(
            &cli,
            NewBank {
                // Bank names are URL path segments (A-Z a-z 0-9 _ - .), so
                // markup cannot get into one; the other fields carry it.
                name: "bank-xss".to_string(),
                kind: BankKind::Block,
                description: format!("desc{XSS}"),
                thresholds: Thresholds::default(),
                text_equivalences: Some(format!("rovers = harbour rovers {XSS}")),
            },
        )
        .await
        .unwrap();
    let text = "the river valley fog clears by noon and the afternoon stays bright and warm with a light breeze";
    let content = engine
        .add_content(
            &cli,
            bank.id,
            NewContent {
                source: ContentSource::Text(text.into()),
                labels: vec![format!("label{XSS}")],
                note: format!("note{XSS}"),
            },
        )
        .await
        .unwrap();
    retain_media(
        engine.store(),
        MediaOwner::Content,
        content.id,
        "text/plain",
        format!("{text} {XSS}").as_bytes(),
    )
    .await
    .unwrap();
    let sig = content
        .signals
        .iter()
        .find(|s| s.signal_type == SignalType::TextMinhash)
        .unwrap()
        .value
        .clone();
    let mut matches = Vec::new();
    for i in 0..3 {
        let resp = engine
            .lookup(
                &Actor::key(1),
                LookupRequest {
                    signals: vec![SignalValue {
                        signal_type: SignalType::TextMinhash,
                        value: sig.clone(),
                    }],
                    banks: None,
                    context: SubmissionContext {
                        content_id: Some(format!("post{i}{XSS}")),
                        url: Some(format!("https://x.example/{i}{XSS}")),
                        uploader_id: Some(format!("up{XSS}")),
                    },
                },
            )
            .await
            .unwrap();
        assert_eq!(resp.matches.len(), 1);
        if i == 0 {
            let edited = format!("{text} and showers later {XSS}");
            retain_media(
                engine.store(),
                MediaOwner::Submission,
                resp.submission_id.expect("recorded"),
                "text/plain",
                edited.as_bytes(),
            )
            .await
            .unwrap();
        }
        matches.push(resp.matches[0].id);
    }
    (bank.id, content.id, matches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_rejects_missing_or_wrong_csrf_and_pages_escape() {
    let ts = start(Duration::from_secs(30)).await;
    let (bank_id, content_id, matches) = seed(&ts).await;
    let (sid, token) = ts.login("admin", "admin-password-1").await;

    let pages = [
        "/ui/".to_string(),
        "/ui/queue".to_string(),
        "/ui/banks".to_string(),
        format!("/ui/banks/{bank_id}"),
        "/ui/debug".to_string(),
        "/ui/audit".to_string(),
        "/ui/keys".to_string(),
        "/ui/settings".to_string(),
        "/ui/sources".to_string(),
        "/ui/sightings".to_string(),
        "/ui/sightings/review".to_string(),
    ];
    let mut actions: Vec<String> = Vec::new();
    for p in &pages {
        let (status, html) = ts.get(p, &sid).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        // Escaping: no raw payload anywhere, and escaped where data is shown.
        assert!(
            !html.contains("<script>alert"),
            "{p} contains an unescaped payload"
        );
        if ["/ui/queue", "/ui/banks", "/ui/audit"].contains(&p.as_str())
            || p.starts_with("/ui/banks/")
        {
            assert!(
                html.contains(XSS_ESCAPED),
                "{p} should show the escaped payload"
            );
        }
        for (action, form) in post_forms(&html) {
            assert!(
                form.contains(&format!("name=\"csrf\" value=\"{token}\"")),
                "form {action} on {p} lacks the csrf token"
            );
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    // The queue shows the context fields and labels/notes escaped.
    let (_, queue) = ts.get("/ui/queue", &sid).await;
    for needle in [
        format!("post0{XSS_ESCAPED}"),
        format!("up{XSS_ESCAPED}"),
        format!("label{XSS_ESCAPED}"),
        format!("note{XSS_ESCAPED}"),
    ] {
        assert!(queue.contains(&needle), "queue lacks {needle}");
    }
    // The bank's retained text (with a payload) is shown escaped, side by side.
    assert!(
        queue.contains("class=\"texts\""),
        "text matches are shown side by side"
    );
    assert!(
        queue.contains("<mark>the river valley fog clears"),
        "shared passages are highlighted"
    );

    // Every form the console renders is covered.
    for expected in [
        "/ui/logout",
        "/ui/queue/bulk",
        "/ui/banks",
        "/ui/debug",
        "/ui/keys",
        "/ui/settings",
        "/ui/sources",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no form posts to {expected}: {actions:?}"
        );
    }
    assert!(actions
        .iter()
        .any(|a| a.starts_with("/ui/matches/") && a.ends_with("/decide")));
    assert!(actions.contains(&format!("/ui/banks/{bank_id}")));
    assert!(actions.contains(&format!("/ui/banks/{bank_id}/content")));
    assert!(actions.contains(&format!("/ui/content/{content_id}/toggle")));
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("/ui/keys/") && a.ends_with("/revoke"))
            || actions.contains(&"/ui/keys".to_string())
    );
    // Undo and key revocation forms appear only in some states; add them.
    actions.push(format!("/ui/matches/{}/undo", matches[0]));
    actions.push("/ui/keys/1/revoke".into());

    let m0 = matches[0].to_string();
    for action in &actions {
        let missing = ts
            .post(
                action,
                &sid,
                &[
                    ("verdict", "confirm"),
                    ("ids", m0.as_str()),
                    ("name", "x"),
                    ("enabled", "0"),
                ],
            )
            .await;
        assert_eq!(
            missing.status(),
            StatusCode::FORBIDDEN,
            "{action} without a token"
        );
        let wrong = ts
            .post(
                action,
                &sid,
                &[
                    ("csrf", "not-the-token"),
                    ("verdict", "confirm"),
                    ("ids", m0.as_str()),
                    ("name", "x"),
                ],
            )
            .await;
        assert_eq!(
            wrong.status(),
            StatusCode::FORBIDDEN,
            "{action} with a wrong token"
        );
    }
    // Multipart forms check the token too.
    let mp = ts
        .http
        .post(format!("{}/ui/banks/{bank_id}/content", ts.base))
        .header(COOKIE, format!("et_session={sid}"))
        .header(CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nwrong\r\n--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello there world\r\n--XyZ--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(mp.status(), StatusCode::FORBIDDEN);
    // Login without the pre-session cookie is rejected too.
    let r = ts
        .post(
            "/ui/login",
            "",
            &[
                ("csrf", "x"),
                ("username", "admin"),
                ("password", "admin-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Nothing changed: the matches are still pending, no bank was created.
    let engine = ts.engine();
    for id in &matches {
        assert_eq!(
            engine.get_match(*id).await.unwrap().status,
            echotrace_engine::MatchStatus::Pending
        );
    }
    assert_eq!(engine.list_banks().await.unwrap().len(), 1);

    // With the right token the same decision goes through.
    let ok = ts
        .post(
            &format!("/ui/matches/{}/decide", matches[0]),
            &sid,
            &[("csrf", &token), ("verdict", "confirm")],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        engine.get_match(matches[0]).await.unwrap().status,
        echotrace_engine::MatchStatus::Confirmed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_undo_window_and_grouping() {
    let ts = start(Duration::from_secs(3)).await;
    let (_bank_id, content_id, matches) = seed(&ts).await;
    let engine = ts.engine();

    // Unauthenticated: GET redirects to login, POST is refused.
    let r = ts
        .http
        .get(format!("{}/ui/queue", ts.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r
        .headers()
        .get(LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("/ui/login?next="));

    let (sid, token) = ts.login("rev", "reviewer-password-1").await;
    // A reviewer cannot reach admin or curator pages.
    for p in ["/ui/keys", "/ui/audit"] {
        let (status, html) = ts.get(p, &sid).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert!(html.contains("403"));
    }
    let r = ts
        .post(
            "/ui/banks",
            &sid,
            &[("csrf", &token), ("name", "nope"), ("kind", "block")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Three matches of the same bank item are one group with a select-all box.
    let (_, queue) = ts.get("/ui/queue", &sid).await;
    assert!(queue.contains(&format!("data-group-all=\"{content_id}\"")));
    assert_eq!(queue.matches("class=\"card\"").count(), 3);

    // Decide, undo inside the window: pending again and the event withdrawn.
    let r = ts
        .post(
            &format!("/ui/matches/{}/decide", matches[0]),
            &sid,
            &[("csrf", &token), ("verdict", "reject")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let pending_events = |evs: Vec<echotrace_engine::OutboxEvent>| {
        evs.iter().filter(|e| e.event == "decision").count()
    };
    assert_eq!(
        pending_events(engine.list_outbox(true, 100).await.unwrap()),
        1
    );
    let (_, queue) = ts.get("/ui/queue", &sid).await;
    assert!(
        queue.contains(&format!("/ui/matches/{}/undo", matches[0])),
        "undo offered"
    );
    let r = ts
        .post(
            &format!("/ui/matches/{}/undo", matches[0]),
            &sid,
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        engine.get_match(matches[0]).await.unwrap().status,
        echotrace_engine::MatchStatus::Pending
    );
    assert_eq!(
        pending_events(engine.list_outbox(true, 100).await.unwrap()),
        0
    );

    // Bulk decision on a selection.
    let (m1, m2) = (matches[1].to_string(), matches[2].to_string());
    let r = ts
        .post(
            "/ui/queue/bulk",
            &sid,
            &[
                ("csrf", token.as_str()),
                ("verdict", "confirm"),
                ("ids", m1.as_str()),
                ("ids", m2.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for id in &matches[1..] {
        assert_eq!(
            engine.get_match(*id).await.unwrap().status,
            echotrace_engine::MatchStatus::Confirmed
        );
    }
    // After the window the undo is refused (409) and the decision stands.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let r = ts
        .post(
            &format!("/ui/matches/{}/undo", matches[1]),
            &sid,
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        engine.get_match(matches[1]).await.unwrap().status,
        echotrace_engine::MatchStatus::Confirmed
    );

    // Logout ends the session server-side.
    let r = ts.post("/ui/logout", &sid, &[("csrf", &token)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_hidden_unless_retained() {
    let ts = start(Duration::ZERO).await;
    let engine = ts.engine();
    add_admin(&engine).await;
    let summary = echotrace_engine::demo::seed(&engine, true).await.unwrap();
    assert!(summary.matches >= 6, "demo produced {summary:?}");
    let (sid, _) = ts.login("admin", "admin-password-1").await;
    let (_, queue) = ts.get("/ui/queue", &sid).await;
    // Retained images render blurred and greyscale, each with a reveal button.
    let imgs = queue.matches("<img ").count();
    assert!(imgs >= 4, "expected retained images, got {imgs}");
    assert_eq!(queue.matches("class=\"media blur grey\"").count(), imgs);
    assert_eq!(queue.matches("data-reveal=").count(), imgs);
    // The media endpoint serves the retained bytes with a sniffed image type.
    let src_at = queue.find("src=\"/ui/media/").unwrap() + 5;
    let src = queue[src_at..].split('"').next().unwrap().to_string();
    let r = ts
        .http
        .get(format!("{}{src}", ts.base))
        .header(COOKIE, format!("et_session={sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get(CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("image/"));
    // Without a session the media is not served.
    let r = ts
        .http
        .get(format!("{}{src}", ts.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpdq_match_card_shows_shares_and_matched_frame_strip() {
    use crate::ui::videostrip::tests::{hash, video};

    let ts = start(Duration::from_secs(30)).await;
    let engine = ts.engine();
    let cli = Actor::cli();
    add_admin(&engine).await;
    let bank = block_bank(&engine, "videos", None).await;
    // Banked video: 10 frames of disjoint 20-bit hashes (pairwise distance 40).
    let frame = |k: usize, skip: usize| hash(&((k * 20 + skip)..(k * 20 + 20)).collect::<Vec<_>>());
    let banked: Vec<_> = (0..10).map(|k| (frame(k, 0), 100u8)).collect();
    // Query: frames 0–8 within 2 bits of banked frames, frame 9 far away,
    // frame 10 would match but has quality 30 (ignored).
    let mut query: Vec<_> = (0..9).map(|k| (frame(k, 2), 90u8)).collect();
    query.push((hash(&(220..256).collect::<Vec<_>>()), 90));
    query.push((frame(9, 0), 30));
    engine
        .add_content(
            &cli,
            bank.id,
            NewContent {
                source: ContentSource::Signals(vec![SignalValue {
                    signal_type: SignalType::Vpdq,
                    value: video(&banked).to_signal_string(),
                }]),
                labels: vec![format!("label{XSS}")],
                note: format!("note{XSS}"),
            },
        )
        .await
        .unwrap();
    let resp = engine
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![SignalValue {
                    signal_type: SignalType::Vpdq,
                    value: video(&query).to_signal_string(),
                }],
                banks: None,
                context: SubmissionContext {
                    content_id: Some(format!("clip{XSS}")),
                    url: None,
                    uploader_id: Some(format!("up{XSS}")),
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.matches.len(), 1, "the vPDQ query should match");
    // Retention holds only the video bytes: no thumbnails, said so.
    retain_media(
        engine.store(),
        MediaOwner::Submission,
        resp.submission_id.expect("recorded"),
        "video/mp4",
        b"not really a video",
    )
    .await
    .unwrap();

    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::OK);
    // Shares: 9 of 10 matchable query frames, 9 of 10 banked frames.
    assert!(
        html.contains("query share 90% · compared share 90%"),
        "shares missing: {html}"
    );
    assert!(html.contains("frame distance ≤ 31 (default), query share ≥ 80%"));
    // The strip: text alternative, one tick per matched frame, the list.
    assert!(html.contains("9 of 10 query frames matched, between 0:00 and 0:08 of a 0:10 video"));
    assert_eq!(html.matches("class=\"tick\"").count(), 9);
    assert!(html.contains(
        "Matched frames at: <span class=\"timestamps\">0:00, 0:01, 0:02, 0:03, 0:04, 0:05, 0:06, 0:07, 0:08</span>"
    ));
    // The retained bytes are no video: the card offers stills of the
    // matched frames (blurred, greyscale), decoding them fails cleanly
    // (404, not 500), and the card then says why instead.
    let mid = resp.matches[0].id;
    assert!(html.contains(&format!(
        "id=\"sub-media-{mid}\" class=\"media blur grey thumbs\""
    )));
    let (status, _) = ts
        .get(&format!("/ui/matches/{mid}/frames/submission/0"), &sid)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, html) = ts.get("/ui/queue", &sid).await;
    assert!(
        html.contains("frame thumbnails unavailable: the retained video could not be decoded"),
        "{html}"
    );
    assert!(
        !html.contains(&format!("<img id=\"sub-media-{mid}\"")),
        "a video must not be put in an <img>"
    );
    // User-supplied text is still escaped.
    assert!(!html.contains("<script>alert"));
    assert!(html.contains(&format!("clip{XSS_ESCAPED}")));
    assert!(html.contains(&format!("label{XSS_ESCAPED}")));
    assert!(html.contains("videos"));

    // The match debugger scores an identical vPDQ signal by share, not by a
    // distance against the per-frame threshold.
    let r = ts
        .post(
            "/ui/debug",
            &sid,
            &[
                ("csrf", token.as_str()),
                (
                    "hash",
                    &format!("vpdq:{}", video(&banked).to_signal_string()),
                ),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("query share 100% &gt;= 80% (frame distance 31)"),
        "{page}"
    );
    assert!(!page.contains("distance 0 &lt;= threshold"), "{page}");
}

/// POST the login form as `ip` (via `X-Forwarded-For`, honoured because the
/// test client is a loopback peer); returns the response.
async fn login_attempt(ts: &TestServer, user: &str, password: &str, ip: &str) -> reqwest::Response {
    let r = ts
        .http
        .get(format!("{}/ui/login", ts.base))
        .send()
        .await
        .unwrap();
    let pre = set_cookie_value(&r, "et_login").expect("login page sets et_login");
    ts.http
        .post(format!("{}/ui/login", ts.base))
        .header(COOKIE, format!("et_login={pre}"))
        .header("x-forwarded-for", ip)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", pre.as_str()),
                ("username", user),
                ("password", password),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_user_and_ip() {
    let ts = start(Duration::ZERO).await;
    let engine = ts.engine();
    add_admin(&engine).await;
    engine
        .create_user(&Actor::cli(), "rev", "reviewer-password-1", Role::Reviewer)
        .await
        .unwrap();

    // Per username: five failures from five different addresses lock the
    // account name; the right password is refused too, from anywhere.
    for i in 0..5 {
        let r = login_attempt(&ts, "admin", "wrong-password", &format!("198.51.100.{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = login_attempt(&ts, "admin", "admin-password-1", "198.51.100.77").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert!(r
        .headers()
        .get(SET_COOKIE)
        .is_none_or(|c| !c.to_str().unwrap().starts_with("et_session=")));
    let locked_page = r.text().await.unwrap();
    assert!(
        locked_page.contains("Too many failed sign-in attempts"),
        "{locked_page}"
    );

    // The same answer for a username that does not exist: nothing tells
    // whether "admin" is real.
    for i in 0..5 {
        let r = login_attempt(&ts, "nobody", "x-password-1", &format!("203.0.113.{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = login_attempt(&ts, "nobody", "x-password-1", "203.0.113.99").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let ghost_page = r.text().await.unwrap();
    let message = |page: &str| {
        let i = page.find("Too many").unwrap();
        page[i..].split('<').next().unwrap().to_string()
    };
    assert_eq!(message(&ghost_page), message(&locked_page));

    // Per IP: five failures for various names from one address block every
    // login from it, while the same user logs in from elsewhere.
    for (i, user) in ["a1", "a2", "a3", "a4", "a5"].iter().enumerate() {
        let r = login_attempt(&ts, user, "wrong-password", "192.0.2.50").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = login_attempt(&ts, "rev", "reviewer-password-1", "192.0.2.50").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = login_attempt(&ts, "rev", "reviewer-password-1", "192.0.2.51").await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "rev from another address"
    );

    // Failures and refusals are audited (never with the password).
    let audit = engine.audit_log(None, 200).await.unwrap();
    let failed = audit
        .iter()
        .filter(|a| a.action == "console.login_failed")
        .count();
    let throttled: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "console.login_throttled")
        .collect();
    assert_eq!(failed, 15);
    assert_eq!(throttled.len(), 3);
    assert!(throttled
        .iter()
        .any(|a| a.target == "login:admin" && a.after.as_ref().unwrap()["ip"] == "198.51.100.77"));
    assert!(!audit.iter().any(|a| a
        .after
        .as_ref()
        .is_some_and(|v| v.to_string().contains("password"))));
}

// ----- video frame thumbnails (retention only) -------------------------------

/// A console-only server (no API routes) with explicit console settings.
async fn start_console(ui: crate::ui::UiConfig) -> (TestServer, echotrace_engine::Engine) {
    let dir = test_dir();
    let engine_config =
        EngineConfig::with_database_url(format!("sqlite://{}", dir.join("db.sqlite").display()));
    let config = ServerConfig {
        engine: engine_config.clone(),
        retain_media: ui.retain_media,
        deliver_webhooks: false,
        ..ServerConfig::default()
    };
    let state = crate::AppState::new(config);
    let engine = echotrace_engine::Engine::open(engine_config).await.unwrap();
    state.attach(engine.clone());
    let app = crate::ui::router_with(state, ui);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let ts = TestServer {
        handle: None,
        base,
        http,
        dir,
    };
    (ts, engine)
}

/// A 3 s, 10 fps synthetic MP4 (moov first), made by ffmpeg.
fn test_video() -> Vec<u8> {
    let out = std::env::temp_dir().join(format!(
        "echotrace-ui-video-{}-{:?}.mp4",
        std::process::id(),
        std::thread::current().id()
    ));
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .args([
            "testsrc2=size=320x240:rate=10",
            "-t",
            "3",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("this test needs ffmpeg (apt-get install ffmpeg)");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    bytes
}

/// A vPDQ match of `query` against a banked `banked` video signal; both
/// sides retain `media` (as an API upload would: generic MIME type).
async fn video_match(
    engine: &echotrace_engine::Engine,
    banked: SignalValue,
    query: SignalValue,
    media: &[u8],
) -> i64 {
    let cli = Actor::cli();
    add_admin(engine).await;
    let bank = block_bank(engine, "videos", None).await;
    let content = engine
        .add_content(
            &cli,
            bank.id,
            NewContent {
                source: ContentSource::Signals(vec![banked]),
                labels: vec![],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    let resp = engine
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![query],
                banks: None,
                context: SubmissionContext::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.matches.len(), 1, "the vPDQ query should match");
    for (owner, id) in [
        (MediaOwner::Content, content.id),
        (
            MediaOwner::Submission,
            resp.submission_id.expect("recorded"),
        ),
    ] {
        assert!(
            retain_media(engine.store(), owner, id, "application/octet-stream", media)
                .await
                .unwrap()
        );
    }
    resp.matches[0].id
}

/// The `src` of every still of `side` on the page.
fn still_urls(html: &str, mid: i64, side: &str) -> Vec<String> {
    let prefix = format!("/ui/matches/{mid}/frames/{side}/");
    html.match_indices(&prefix)
        .filter_map(|(i, _)| {
            let rest = html.get(i..)?;
            rest.split('"').next().map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_match_shows_blurred_frame_thumbnails_when_retained() {
    let (ts, engine) = start_console(crate::ui::UiConfig {
        retain_media: true,
        ..crate::ui::UiConfig::default()
    })
    .await;
    let video = test_video();
    let vpdq_of = |sigs: Vec<SignalValue>| {
        sigs.into_iter()
            .find(|s| s.signal_type == SignalType::Vpdq)
            .expect("a vpdq signal")
    };
    // Both sides: the video hashed at 1 frame/s (0, 1, 2 s).
    let query = vpdq_of(engine.hash_bytes(&video).unwrap());
    let frames = echotrace_signals::video::VpdqHash::from_signal_str(&query.value).unwrap();
    assert_eq!(frames.features.len(), 3);
    let mid = video_match(&engine, query.clone(), query, &video).await;
    let (sid, _) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::OK);
    // Both sides: one media item, blurred and greyscale by default, with
    // the reveal button, holding the stills of the matched frames.
    for (side, id) in [("submission", "sub-media"), ("content", "bank-media")] {
        assert!(
            html.contains(&format!(
                "id=\"{id}-{mid}\" class=\"media blur grey thumbs\""
            )),
            "{side}: {html}"
        );
        assert!(html.contains(&format!("data-reveal=\"{id}-{mid}\"")));
        let urls = still_urls(&html, mid, side);
        assert_eq!(
            urls,
            [0, 1000, 2000]
                .map(|ms| format!("/ui/matches/{mid}/frames/{side}/{ms}"))
                .to_vec(),
            "{side}"
        );
        for url in &urls {
            let r = ts
                .http
                .get(format!("{}{url}", ts.base))
                .header(COOKIE, format!("et_session={sid}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{url}");
            assert_eq!(r.headers()[CONTENT_TYPE], "image/jpeg");
            assert_eq!(r.headers()["cache-control"], "private, no-store");
            let body = r.bytes().await.unwrap();
            assert!(body.starts_with(&[0xff, 0xd8, 0xff]), "{url}: not a JPEG");
            assert!(
                body.len() > 500 && body.len() < 30_000,
                "{url}: {}",
                body.len()
            );
        }
    }
    // Only the card's timestamps are served; a valid session is required.
    for bad in [
        format!("/ui/matches/{mid}/frames/submission/1500"),
        format!("/ui/matches/{mid}/frames/other/0"),
        format!("/ui/matches/{}/frames/submission/0", mid + 1000),
    ] {
        assert_eq!(ts.get(&bad, &sid).await.0, StatusCode::NOT_FOUND, "{bad}");
    }
    let still = format!("/ui/matches/{mid}/frames/submission/0");
    assert_eq!(ts.get(&still, "").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_frame_thumbnails_without_retention_or_ffmpeg() {
    use crate::ui::videostrip::tests::{hash, video};
    let frame = |k: usize| hash(&((k * 20)..(k * 20 + 20)).collect::<Vec<_>>());
    let frames: Vec<_> = (0..5).map(|k| (frame(k), 100u8)).collect();
    let signal = SignalValue {
        signal_type: SignalType::Vpdq,
        value: video(&frames).to_signal_string(),
    };
    // A real video container header, so the retained item is a video.
    let mut media = vec![0, 0, 0, 24];
    media.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2mp41 rest of a video");

    // Retention off: the strip, no stills, and the route does not exist.
    let (ts, engine) = start_console(crate::ui::UiConfig::default()).await;
    let mid = video_match(&engine, signal.clone(), signal.clone(), &media).await;
    let (sid, _) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("5 of 5 query frames matched"), "{html}");
    assert!(html.contains("Media not retained (hashing only)."));
    assert!(!html.contains("/frames/"), "{html}");
    let (status, _) = ts
        .get(&format!("/ui/matches/{mid}/frames/submission/0"), &sid)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Retention on, ffmpeg missing: the strip with a note, no stills, and
    // the route answers 404 rather than failing.
    let (ts, engine) = start_console(crate::ui::UiConfig {
        retain_media: true,
        ffmpeg: echotrace_signals::video::FfmpegConfig {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ..echotrace_signals::video::FfmpegConfig::default()
        },
        ..crate::ui::UiConfig::default()
    })
    .await;
    let mid = video_match(&engine, signal.clone(), signal, &media).await;
    let (sid, _) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("5 of 5 query frames matched"), "{html}");
    assert!(
        html.contains("Video retained; frame thumbnails unavailable: ffmpeg is not installed."),
        "{html}"
    );
    assert!(!html.contains("/frames/"), "{html}");
    let (status, page) = ts
        .get(&format!("/ui/matches/{mid}/frames/submission/0"), &sid)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert!(page.contains("ffmpeg is not installed"));
}

// ----- match debugger with text-equivalence lists -----------------------------

/// Pasted text and an uploaded text file are hashed off the async runtime
/// and re-signed under each bank's equivalence list: with `daesh = isis`,
/// "isis" text finds an item saying "daesh" in the bank with the list and
/// not in an otherwise identical bank without it.
/// Pasting a hash list twice adds nothing twice: lines whose hash the bank
/// already holds are skipped (the bank import's rule), and the flash says
/// so. Before, every paste added every line again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_paste_skips_hashes_the_bank_holds() {
    let ts = start(Duration::from_secs(0)).await;
    let engine = ts.engine();
    add_admin(&engine).await;
    let bank = block_bank(&engine, "pasted", None).await;
    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let a = format!("pdq,{}", "f".repeat(64));
    let b = format!("md5,{}", "0".repeat(32));
    let path = format!("/ui/banks/{}/content", bank.id);
    let paste = |csv: String| {
        let (ts, sid, token, path) = (&ts, &sid, &token, &path);
        async move {
            let r = ts
                .post(
                    path,
                    sid,
                    &[("csrf", token.as_str()), ("csv", csv.as_str())],
                )
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            let to = r.headers()[LOCATION].to_str().unwrap().to_string();
            ts.get(&to, sid).await.1
        }
    };
    let page = paste(format!("{a}\n{b}\n{a}\n")).await;
    assert!(
        page.contains("hashes the bank already held were skipped"),
        "{page}"
    );
    let page = paste(format!("{b}\n{a}\n")).await;
    assert!(page.contains("the bank already held every hash"), "{page}");
    let items = engine.list_content(bank.id, 0, 100).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let page = paste(format!("{a}\nsha256,{}\n", "1".repeat(64))).await;
    assert!(
        page.contains("hashes the bank already held were skipped"),
        "{page}"
    );
    assert_eq!(engine.list_content(bank.id, 0, 100).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debugger_resigns_pasted_text_under_bank_lists() {
    let (ts, engine) = start_console(crate::ui::UiConfig::default()).await;
    let cli = Actor::cli();
    add_admin(&engine).await;
    // Every shingle holds the term, so without the list nothing is shared.
    let item = "daesh claimed daesh attack daesh statement daesh online daesh \
                media daesh town daesh road daesh bridge";
    for (name, list) in [("with-list", Some("daesh = isis")), ("no-list", None)] {
        let bank = block_bank(&engine, name, list).await;
        engine
            .add_content(
                &cli,
                bank.id,
                NewContent {
                    source: ContentSource::Text(item.into()),
                    labels: vec![],
                    note: String::new(),
                },
            )
            .await
            .unwrap();
    }
    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let query = item.replace("daesh", "isis");
    let r = ts
        .post(
            "/ui/debug",
            &sid,
            &[("csrf", token.as_str()), ("text", query.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(row_matches(&page, "with-list"), "{page}");
    assert!(!row_matches(&page, "no-list"), "{page}");
    // The unchanged text matches in both banks (control).
    let r = ts
        .post(
            "/ui/debug",
            &sid,
            &[("csrf", token.as_str()), ("text", item)],
        )
        .await;
    let page = r.text().await.unwrap();
    assert!(row_matches(&page, "with-list"), "{page}");
    assert!(row_matches(&page, "no-list"), "{page}");
    // Nothing to look up is a 400 with the form shown again.
    let r = ts
        .post("/ui/debug", &sid, &[("csrf", token.as_str())])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Whether the debugger's row for `bank` says the item matched.
fn row_matches(page: &str, bank: &str) -> bool {
    page.split(&format!(">{bank}</a>"))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .is_some_and(|row| row.contains("<span class=\"why-ok\">match</span>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_page_status_dry_run_diff_policy_and_provenance() {
    use echotrace_engine::exchange::{
        ExchangeBatch, ExchangePolicy, NewExchangeSpec, RecordLabels, UpstreamRecord,
    };
    let ts = start(Duration::from_secs(30)).await;
    let engine = ts.engine();
    let cli = Actor::cli();
    add_admin(&engine).await;
    engine
        .create_user(&cli, "rev", "reviewer-password-1", Role::Reviewer)
        .await
        .unwrap();
    let ex = engine
        .create_exchange(
            &cli,
            NewExchangeSpec {
                name: "TCAP".into(),
                api: "tat".into(),
                config: r#"{"version":1,"base_url":"https://tcap.invalid/"}"#.into(),
                policy: ExchangePolicy::default(),
                credentials: Some("v1.00ff".into()),
                write_back: true,
                enabled: true,
                live: false,
                poll_interval_ms: 60_000,
                bank: None,
            },
        )
        .await
        .unwrap();
    let pdq = |i: u8| format!("{:02x}", i).repeat(32);
    let records: Vec<UpstreamRecord> = (1..=3u8)
        .map(|i| UpstreamRecord {
            signal: SignalValue {
                signal_type: SignalType::Pdq,
                value: pdq(i * 17),
            },
            upstream_id: format!("u{i}"),
            labels: RecordLabels {
                ideology: vec![if i == 3 { "islamist" } else { "far-right" }.into()],
                ..RecordLabels::default()
            },
            opinions: vec![],
            created_at: None,
            updated_at: None,
            deleted: false,
        })
        .collect();
    engine
        .apply_exchange_batch(
            ex.id,
            None,
            ExchangeBatch {
                records,
                ..ExchangeBatch::default()
            },
        )
        .await
        .unwrap();
    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/exchanges", &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("TCAP") && html.contains("dry run"), "{html}");
    assert!(!html.contains("v1.00ff"), "credentials never shown");
    let (status, html) = ts.get(&format!("/ui/exchanges/{}", ex.id), &sid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("would add <strong>3</strong>"), "{html}");
    assert!(html.contains("Go live"));
    // Every form carries the token and refuses a wrong one.
    for (action, form) in post_forms(&html) {
        assert!(
            form.contains(&format!("name=\"csrf\" value=\"{token}\"")),
            "{action}"
        );
        let r = ts.post(&action, &sid, &[("csrf", "wrong")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
    }
    // Preview a policy: the diff, nothing saved.
    let r = ts
        .post(
            &format!("/ui/exchanges/{}/policy", ex.id),
            &sid,
            &[
                ("csrf", &token),
                ("include_labels", "ideology:islamist"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("would add <strong>1</strong>"), "{html}");
    assert!(engine
        .exchange(ex.id)
        .await
        .unwrap()
        .policy
        .include_labels
        .is_empty());
    // Save it, go live: only the matching record fills the bank.
    let r = ts
        .post(
            &format!("/ui/exchanges/{}/policy", ex.id),
            &sid,
            &[
                ("csrf", &token),
                ("include_labels", "ideology:islamist"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = ts
        .post(
            &format!("/ui/exchanges/{}/live", ex.id),
            &sid,
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(engine.index_stats().unwrap().pdq, 1);
    // Disable through the page.
    let r = ts
        .post(
            &format!("/ui/exchanges/{}/toggle", ex.id),
            &sid,
            &[("csrf", &token), ("enabled", "0")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!engine.exchange(ex.id).await.unwrap().enabled);
    // The review card shows where the matched item came from.
    engine
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![SignalValue {
                    signal_type: SignalType::Pdq,
                    value: pdq(51),
                }],
                banks: None,
                context: SubmissionContext::default(),
            },
        )
        .await
        .unwrap();
    let (sid_r, _) = ts.login("rev", "reviewer-password-1").await;
    let (_, html) = ts.get("/ui/queue", &sid_r).await;
    assert!(
        html.contains("from exchange TCAP (tat); upstream id u3; ideology:islamist"),
        "{html}"
    );
    // Reviewers do not manage exchanges.
    let (status, _) = ts.get("/ui/exchanges", &sid_r).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The collector's console pages: sources with status and the add form,
/// sightings with filters, one sighting (escaped attributes, parent chain,
/// evidence), and the collected items awaiting review; every collector form
/// checks the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_pages_show_sources_and_sightings() {
    use echotrace_engine::sighting::{ItemContent, SightingConfig, SightingItem};
    let ts = start(Duration::from_secs(30)).await;
    let engine = ts.engine();
    add_admin(&engine).await;
    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let bank = block_bank(&engine, "known", None).await;
    let text =
        "the river valley fog clears by noon and the afternoon stays bright and warm with a breeze";
    let item = engine
        .add_content(
            &Actor::cli(),
            bank.id,
            NewContent {
                source: ContentSource::Text(text.into()),
                labels: vec![],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    echotrace_collector::registry::add_source(
        engine.store(),
        &Actor::cli(),
        "board",
        "page",
        r#"{"urls": ["http://board.test/"]}"#,
    )
    .await
    .unwrap();
    let source = engine
        .store()
        .get_source_by_name("board")
        .await
        .unwrap()
        .unwrap();
    let mk = |url: &str, parent: Option<i64>, content: ItemContent| SightingItem {
        source_id: Some(source.id),
        source_name: "board".into(),
        url: url.into(),
        platform: "demo".into(),
        parent_id: parent,
        seen_at: 1_700_000_000_000,
        content,
        attributes: Some(serde_json::json!({"telegram": {"chat": XSS}})),
        warc: Some(echotrace_store::WarcRef {
            file: "c1-x.warc.gz".into(),
            offset: 7,
            length: 99,
            record_id: "<urn:uuid:1>".into(),
        }),
        robust: true,
    };
    let page = engine
        .prepare_sighting(mk("http://board.test/", None, ItemContent::None))
        .unwrap();
    let mut tx = engine.store().write().await.unwrap();
    let rec = engine
        .record_sightings(&mut tx, &[page], &SightingConfig::default())
        .await
        .unwrap();
    let child = engine
        .prepare_sighting(mk(
            "http://board.test/post/1",
            Some(rec[0].sighting_id),
            ItemContent::Text {
                text: text.into(),
                raw: bytes::Bytes::from_static(b"<p>raw</p>"),
                media_type: "html".into(),
            },
        ))
        .unwrap();
    assert!(child.is_match());
    let rec2 = engine
        .record_sightings(&mut tx, &[child], &SightingConfig::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let id = rec2[0].sighting_id;

    let (s, html) = ts.get("/ui/sources", &sid).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("board") && html.contains("Politeness waits") && html.contains("<svg"));
    let forms: Vec<String> = post_forms(&html).into_iter().map(|(a, _)| a).collect();
    for f in [
        "/ui/sources",
        "/ui/sources/board/run",
        "/ui/sources/board/toggle",
    ] {
        assert!(forms.iter().any(|a| a == f), "{f}: {forms:?}");
        let r = ts.post(f, &sid, &[("name", "x"), ("kind", "page")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{f} without a token");
    }
    let r = ts
        .post("/ui/sources/board/run", &sid, &[("csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = ts
        .post(
            "/ui/sources",
            &sid,
            &[("csrf", &token), ("name", "bad"), ("kind", "feed")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("config.urls"));
    let r = ts
        .post(
            "/ui/sources",
            &sid,
            &[
                ("csrf", &token),
                ("name", "feed2"),
                ("kind", "feed"),
                ("urls", "http://feed.test/rss"),
                ("depth", "2"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The "plain hashes only" box stores `robust: false`; left unticked,
    // the source matches through every robust channel.
    let r = ts
        .post(
            "/ui/sources",
            &sid,
            &[
                ("csrf", &token),
                ("name", "feed3"),
                ("kind", "feed"),
                ("urls", "http://feed.test/atom"),
                ("plain_only", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let robust_of = |name: &'static str| {
        let store = engine.store().clone();
        async move {
            let row = store.get_source_by_name(name).await.unwrap().unwrap();
            echotrace_collector::source::SourceConfig::parse(&row.config)
                .unwrap()
                .robust
        }
    };
    assert!(robust_of("feed2").await, "unticked: robust");
    assert!(!robust_of("feed3").await, "ticked: plain only");
    let (_, html) = ts.get("/ui/sources", &sid).await;
    let row_of = |name: &str| -> String {
        let at = html
            .find(&format!("/ui/sightings?source={name}\""))
            .unwrap();
        html[at..].split("</tr>").next().unwrap().to_string()
    };
    assert!(row_of("feed2").contains(">robust<"), "{}", row_of("feed2"));
    assert!(
        row_of("feed3").contains(">plain only<"),
        "{}",
        row_of("feed3")
    );

    let (s, html) = ts
        .get(&format!("/ui/sightings?content_id={}", item.id), &sid)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("http://board.test/post/1") && !html.contains("http://board.test/\""));
    let (s, html) = ts
        .get(
            "/ui/sightings?host=board.test&matched=no&from=2023-11-01&to=2023-11-30",
            &sid,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("http://board.test/") && !html.contains("/post/1"));
    let (s, _) = ts.get("/ui/sightings?from=yesterday", &sid).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, html) = ts.get(&format!("/ui/sightings/{id}"), &sid).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(XSS_ESCAPED) && !html.contains("<script>alert"));
    assert!(
        html.contains(&format!("/ui/sightings/{}", rec[0].sighting_id)),
        "parent linked"
    );
    assert!(html.contains("c1-x.warc.gz") && html.contains("text_minhash"));
    let (s, html) = ts.get("/ui/sightings/review", &sid).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&format!("Sighting #{id}")) && html.contains("/decide"));
    let (s, _) = ts.get("/ui/sightings/999999", &sid).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Benign claim cards (Pango-rendered statements), shared with the CLI's OCR tests.
#[path = "../../../cli/tests/ocr_common/mod.rs"]
mod ocr_common;

/// An `ocr_text` match card links to the OCR text beside the bank text,
/// with the word diff of text matches; the page reads the retained card by
/// OCR on demand (needs tesseract-ocr, pango1.0-tools and the fonts CI
/// installs; fails without them).
#[tokio::test]
async fn ocr_match_card_shows_ocr_text_beside_bank_text() {
    let ts = start_with(Duration::from_secs(30), |e| e.ocr.enabled = true).await;
    let engine = ts.engine();
    assert!(engine.ocr_status().enabled, "{:?}", engine.ocr_status());
    let cli = Actor::cli();
    add_admin(&engine).await;
    let bank = block_bank(&engine, "statements", None).await;
    let statement = "Weather for Oslo: dense fog from Tuesday morning, near 12 degrees in the coastal districts. Trains to Bergen will run every 20 minutes.";
    let item = engine
        .add_content(
            &cli,
            bank.id,
            NewContent {
                source: ContentSource::Text(statement.into()),
                labels: vec![],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    retain_media(
        engine.store(),
        MediaOwner::Content,
        item.id,
        "text/plain",
        statement.as_bytes(),
    )
    .await
    .unwrap();
    // The statement posted as a card: OCR → typed bank text.
    let tmp = test_dir();
    let design = ocr_common::Design {
        font: "DejaVu Sans".into(),
        size_pt: 22,
        width: 800,
        align: "left",
        background: ocr_common::Background::Plain([245, 245, 240]),
        logo: false,
        quality: 80,
    };
    let card = ocr_common::render_card(statement, ocr_common::Lang::En, &design, &[], &tmp);
    let mut hashed = engine
        .hash_upload(axum::body::Bytes::from(card.clone()))
        .unwrap();
    engine.finish_ocr(&mut hashed).await;
    let resp = engine
        .lookup_text(
            &Actor::key(1),
            LookupRequest {
                signals: hashed.signals,
                banks: None,
                context: SubmissionContext::default(),
            },
            hashed.text.expect("OCR text becomes the query text"),
        )
        .await
        .unwrap();
    let m = resp
        .matches
        .iter()
        .find(|m| m.signal_type == SignalType::OcrText)
        .unwrap_or_else(|| panic!("the card should match the typed text: {resp:?}"));
    retain_media(
        engine.store(),
        MediaOwner::Submission,
        resp.submission_id.expect("recorded"),
        "image/jpeg",
        &card,
    )
    .await
    .unwrap();

    let (sid, _) = ts.login("admin", "admin-password-1").await;
    let (status, html) = ts.get("/ui/queue", &sid).await;
    assert_eq!(status, StatusCode::OK);
    let link = format!("/ui/matches/{}/text", m.id);
    assert!(
        html.contains(&link),
        "the ocr_text card links to its text view"
    );
    let (status, html) = ts.get(&link, &sid).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let column = |id: &str| {
        let start = html.find(&format!("id=\"{id}\"")).expect(id);
        let end = html[start..]
            .find("</pre>")
            .map_or(html.len(), |e| start + e);
        html[start..end].to_string()
    };
    let (bank_col, sub_col) = (column("ocr-bank-text"), column("ocr-sub-text"));
    assert!(
        bank_col.contains("Oslo") && bank_col.contains("coastal districts"),
        "{bank_col}"
    );
    assert!(
        sub_col.contains("Oslo") && sub_col.contains("fog"),
        "OCR text shown: {sub_col}"
    );
    // Not an OCR match, unknown match: clear 404s.
    let (status, _) = ts.get("/ui/matches/999999/text", &sid).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The debugger's OCR panel shows a card's logo header apart from the
/// signed text: read and shown, not signed (`ocr::split_header`).
#[tokio::test]
async fn debugger_shows_a_card_header_apart_from_the_signed_text() {
    let ts = start_with(Duration::from_secs(30), |e| e.ocr.enabled = true).await;
    let engine = ts.engine();
    assert!(engine.ocr_status().enabled, "{:?}", engine.ocr_status());
    add_admin(&engine).await;
    let tmp = test_dir();
    let design = ocr_common::Design {
        font: "DejaVu Sans Bold".into(),
        size_pt: 20,
        width: 820,
        align: "right",
        background: ocr_common::Background::Gradient([223, 246, 206], [222, 215, 211]),
        logo: true,
        quality: 90,
    };
    let statement =
        "City Rovers beat Lakeside Dynamo 5-0 on Saturday in front of 12000 supporters. \
                     Children from 24 schools in Porto painted a mural by the entrance.";
    let card = ocr_common::render_card(statement, ocr_common::Lang::En, &design, &[], &tmp);
    let (sid, token) = ts.login("admin", "admin-password-1").await;
    let mut body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"card.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&card);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = ts
        .http
        .post(format!("{}/ui/debug", ts.base))
        .header(COOKIE, format!("et_session={sid}"))
        .header(CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let element = |id: &str, end: &str| {
        let start = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}: {page}"));
        let stop = page[start..].find(end).map_or(page.len(), |e| start + e);
        page[start..stop].to_string()
    };
    let header = element("ocr-header", "</p>");
    assert!(header.contains("DAILY BULLETIN"), "{header}");
    let text = element("ocr-text", "</pre>");
    assert!(
        text.contains("Lakeside Dynamo") && !text.contains("BULLETIN"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
