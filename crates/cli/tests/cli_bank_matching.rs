//! `echotrace bank matching BANK` through the real binary (README "Robust
//! matching"): it shows a bank's robust-matching settings with the
//! file-added originals it holds and whether lookups refine toward it,
//! changes only the settings given (`--refine on|off|auto`, `--window …`),
//! audits the change as the CLI, and a running server follows it. Bad
//! words and unknown banks fail with exit code 2. On SQLite and on
//! PostgreSQL at `$ECHOTRACE_TEST_PG_URL` (FAILS if unset, unless
//! `ECHOTRACE_SKIP_PG=1`).

mod common;
#[path = "../../server/tests/robust_images/mod.rs"]
mod robust_images;

use std::time::{Duration, Instant};

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

use common::Server;
use robust_images::{photo, png};

both_backends!(refinement_switch_through_the_cli);

fn echotrace(args: &[&str]) -> std::process::Output {
    common::run(args, Duration::from_secs(120))
}

/// `echotrace bank matching --db DB --json BANK ARGS…`: its JSON answer.
fn matching(db: &str, bank: &str, args: &[&str]) -> Value {
    let mut all = vec!["bank", "matching", "--db", db, "--json", bank];
    all.extend_from_slice(args);
    let out = echotrace(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

impl Server {
    /// Wait (≤ 20 s) until the server's bank JSON satisfies `ok`.
    async fn bank_until(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.json(Method::GET, path, None).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "the server never followed: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn refinement_switch_through_the_cli(db: &TestDb) {
    let s = Server::spawn(&db.url, &["--no-ocr"]).await;
    let bank = s
        .json(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    // One file-added original (derived hashes stored).
    s.upload("/v1/banks/files/content", &png(&photo())).await;

    // Read: the defaults, refinement automatic and so on (1 ≤ 10,000).
    let v = matching(&db.url, "files", &[]);
    assert_eq!(
        v,
        json!({"bank": "files", "bank_id": bank["id"],
               "matching": {"dihedral": true, "window": true, "part": true, "refine": null},
               "held_originals": 1, "refining": true})
    );

    // Set: refinement off; the other settings are kept.
    let v = matching(&db.url, "files", &["--window", "on", "--dihedral", "off"]);
    assert_eq!(v["matching"]["dihedral"], false, "{v}");
    let v = matching(&db.url, "files", &["--refine", "off"]);
    assert_eq!(
        v["matching"],
        json!({"dihedral": false, "window": true, "part": true, "refine": false})
    );
    assert_eq!(v["refining"], false, "{v}");
    // Read back, as text too.
    assert_eq!(matching(&db.url, "files", &[])["matching"]["refine"], false);
    let out = echotrace(&["bank", "matching", "--db", &db.url, "files"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(&format!(
            "bank \"files\" (id {}): dihedral off, window on, part on, refine off (not refining; 1 file-added original(s)",
            bank["id"]
        )),
        "{text}"
    );
    // The running server follows the change sequence.
    let got = s
        .bank_until("/v1/banks/files", |b| b["matching"]["refine"] == false)
        .await;
    assert_eq!(got["refining"], false, "{got}");
    assert_eq!(got["held_originals"], 1, "{got}");

    // Back to automatic; the server follows.
    let v = matching(&db.url, "files", &["--refine", "auto"]);
    assert_eq!(v["matching"]["refine"], Value::Null, "{v}");
    assert_eq!(v["refining"], true, "{v}");
    let got = s
        .bank_until("/v1/banks/files", |b| b["matching"]["refine"].is_null())
        .await;
    assert_eq!(got["refining"], true, "{got}");

    // Each change that wrote is audited once, as the CLI; a read is not.
    let audit = s.json(Method::GET, "/v1/audit?limit=100", None).await;
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter(|e| e["action"] == "bank.matching")
        .collect();
    assert_eq!(entries.len(), 3, "{audit}");
    assert!(entries.iter().all(|e| e["actor"] == "cli"), "{audit}");

    // Bad input: a word the setting does not take, an unknown bank.
    let out = echotrace(&[
        "bank", "matching", "--db", &db.url, "files", "--refine", "maybe",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--refine"), "{stderr}");
    let out = echotrace(&[
        "bank", "matching", "--db", &db.url, "files", "--window", "auto",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
    let out = echotrace(&["bank", "matching", "--db", &db.url, "no-such-bank"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no bank named \"no-such-bank\""),
        "{stderr}"
    );
    assert_eq!(
        matching(&db.url, "files", &[])["matching"]["refine"],
        Value::Null
    );
    drop(s);
}
