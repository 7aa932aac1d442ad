//! `echotrace bank rederive BANK` through the real binary (docs/ROBUST.md
//! "Upgrading"): a file added in the console with `serve --retain-media`
//! while its bank had `part` off gains its parts from the retained original
//! and a running server finds it through `part`; an item added through
//! `/v1` (no original kept) is counted `without_original`; progress lines go
//! to stderr, the totals to stdout (`--json` too); an unknown bank fails.
//! On SQLite and on PostgreSQL at `$ECHOTRACE_TEST_PG_URL` (FAILS if
//! unset, unless `ECHOTRACE_SKIP_PG=1`).

mod common;
#[path = "../../server/tests/console/mod.rs"]
mod console;
#[path = "../../server/tests/robust_images/mod.rs"]
mod robust_images;

use std::time::{Duration, Instant};

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

use common::Server;
use console::{console_add_content, console_session};
use robust_images::{fixtures, jpeg, photo, png, stamp};

both_backends!(rederive_through_the_cli);

fn echotrace(args: &[&str]) -> std::process::Output {
    common::run(args, Duration::from_secs(120))
}

/// `echotrace users create --role admin NAME`, the password on stdin.
fn create_admin(db: &str, name: &str, password: &str) {
    let out = common::users_create(db, "admin", name, password);
    assert!(
        out.status.success(),
        "users create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// The channels of the perceptual hits of a lookup.
    async fn channels(&self, bytes: &[u8]) -> Vec<String> {
        let v = self.upload("/v1/lookup", bytes).await;
        v["matches"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .filter(|m| m["signal_type"] == "pdq")
            .map(|m| m["channel"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

async fn rederive_through_the_cli(db: &TestDb) {
    create_admin(&db.url, "ada", "a long enough password");
    let s = Server::spawn(&db.url, &["--retain-media", "--no-ocr"]).await;
    let bank = s
        .json(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "files", "matching": {"part": false}})),
        )
        .await;

    // The original, added in the console (retained) while `part` is off.
    let (console, cookie) = console_session(&s.base, "ada", "a long enough password").await;
    let original = photo();
    console_add_content(
        &console,
        &s.base,
        &cookie,
        bank["id"].as_i64().unwrap_or_else(|| panic!("{bank}")),
        "o.png",
        png(&original),
    )
    .await;
    // A second file through /v1: hashed, its bytes dropped.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let api_item = s.upload("/v1/banks/files/content", &other).await;
    let list = s.json(Method::GET, "/v1/banks/files/content", None).await;
    let first = list["content"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{list}"));
    let item = format!("/v1/banks/files/content/{first}");
    assert_eq!(
        s.json(Method::GET, &item, None).await["derived"],
        json!(["window", "region"])
    );
    s.json(
        Method::PATCH,
        "/v1/banks/files",
        Some(json!({"matching": {"part": true}})),
    )
    .await;
    let stamped = jpeg(&stamp(&original, 15, 9, 90));
    let before = s.channels(&stamped).await;
    assert!(
        !before.iter().any(|c| c == "part"),
        "no parts yet: {before:?}"
    );

    // Bad input first: an unknown bank, and a page size out of range.
    let out = echotrace(&["bank", "rederive", "--db", &db.url, "no-such-bank"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no bank named \"no-such-bank\""),
        "{stderr}"
    );
    let out = echotrace(&["bank", "rederive", "--db", &db.url, "--page", "0", "files"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--page"));

    // One item a page: the console item, the API item, the empty end.
    let out = echotrace(&["bank", "rederive", "--db", &db.url, "--page", "1", "files"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("… ")).collect();
    assert_eq!(progress.len(), 3, "{stderr}");
    assert!(
        progress[0].starts_with("… 1 items (1 rederived, 0 without original, 0 skipped) in "),
        "{stderr}"
    );
    assert!(
        progress[1].starts_with("… 2 items (1 rederived, 1 without original, 0 skipped) in "),
        "{stderr}"
    );
    assert!(stderr.contains("must be added again"), "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "bank \"files\" (id {}): 2 items, 1 rederived, 1 without original, 0 skipped in ",
            bank["id"]
        )),
        "{stdout}"
    );

    // The item holds its parts; the running server picks the change up
    // and finds the stamped copy through `part`.
    assert_eq!(
        s.json(Method::GET, &item, None).await["derived"],
        json!(["window", "region", "part"])
    );
    let api = format!("/v1/banks/files/content/{}", api_item["id"]);
    let got = s.json(Method::GET, &api, None).await;
    assert!(
        !got["derived"]
            .as_array()
            .unwrap_or_else(|| panic!("{got}"))
            .contains(&json!("part")),
        "{got}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hits = s.channels(&stamped).await;
        if hits == ["part"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never found the stamped copy through part: {hits:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One audit entry by the CLI, for the one page that wrote.
    let audit = s.json(Method::GET, "/v1/audit?limit=100", None).await;
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter(|e| e["action"] == "bank.rederive")
        .collect();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "cli", "{audit}");
    assert_eq!(entries[0]["target"], format!("bank:{}", bank["id"]));

    // Again, as JSON with the default page: the same totals.
    let out = echotrace(&["bank", "rederive", "--db", &db.url, "--json", "files"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"bank": "files", "bank_id": bank["id"], "items": 2, "rederived": 1,
               "without_original": 1, "skipped": 0})
    );
}
