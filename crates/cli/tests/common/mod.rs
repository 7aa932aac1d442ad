//! Shared helpers of the collector's process tests: the `echotrace` binary,
//! a served API to query, a tiny test site and a SOCKS5 proxy.

#![allow(dead_code)]

pub mod site;
pub mod socks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_echotrace")
}

/// Run `echotrace <args>` to completion (with a deadline).
pub fn run(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning echotrace");
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "echotrace {args:?} ran over {timeout:?}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for echotrace: {e}"),
        }
    }
    child.wait_with_output().expect("output")
}

/// `run`, asserting success; returns stdout.
pub fn ok(args: &[&str], timeout: Duration) -> String {
    let out = run(args, timeout);
    assert!(
        out.status.success(),
        "echotrace {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A running `echotrace serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `echotrace serve` on a database without API keys (prints one).
    pub async fn spawn(db_url: &str, extra: &[&str]) -> Server {
        Server::spawn_env(db_url, extra, &[]).await
    }

    /// [`Server::spawn`] with environment variables (an empty `db_url`
    /// omits `--db`).
    pub async fn spawn_env(db_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve"];
        if !db_url.is_empty() {
            args.extend_from_slice(&["--db", db_url]);
        }
        args.extend_from_slice(&["--listen", "127.0.0.1:0", "--no-webhooks", "--threads", "2"]);
        args.extend_from_slice(extra);
        let mut child = Command::new(bin())
            .args(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning echotrace serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut base = None;
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while base.is_none() || admin.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server prints its address and admin key");
            if let Some(addr) = line.strip_prefix("echotrace: listening on ") {
                base = Some(addr.trim().to_string());
            }
            if let Some((_, k)) = line.rsplit_once("(shown once): ") {
                if k.trim().starts_with("et_") {
                    admin = Some(k.trim().to_string());
                }
            }
        }
        let base = base.unwrap_or_default();
        let client = Client::new();
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server {
            child,
            base,
            admin: admin.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("GET");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every sighting (following cursors) matching `query`.
    pub async fn sightings(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<i64> = None;
        loop {
            let mut q = format!(
                "/v1/sightings?limit=1000{}",
                if query.is_empty() {
                    String::new()
                } else {
                    format!("&{query}")
                }
            );
            if let Some(c) = cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let (s, v) = self.get(&q).await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            let page = v["sightings"].as_array().cloned().unwrap_or_default();
            out.extend(page);
            match v["next_cursor"].as_i64() {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out
    }
}

/// A fresh directory under the temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "et-collect-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
