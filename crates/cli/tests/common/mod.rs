//! Shared helpers of the process tests: the `echotrace` binary, a served
//! API to query ([`launch`] starts any `serve`), a tiny test site and a
//! SOCKS5 proxy.

#![allow(dead_code)]

pub mod site;
pub mod socks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
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

/// `run`, also returning the child's peak resident memory (VmHWM, KiB),
/// read every 20 ms while it runs (a high-water mark: any reading after
/// the peak holds it).
pub fn run_peak(args: &[&str], timeout: Duration) -> (Output, u64) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning echotrace");
    let deadline = Instant::now() + timeout;
    let mut peak = 0u64;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        if let Some(kib) = status.ok().as_deref().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak = peak.max(kib);
        }
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
    (child.wait_with_output().expect("output"), peak)
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

/// A started `echotrace serve`: the child, its address, the admin key it
/// printed (only a database without keys gets one) and its output lines.
pub struct Launch {
    pub child: Child,
    pub base: String,
    pub admin: Option<String>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Launch {
    /// Everything the process printed so far (stdout, then stderr).
    pub fn logs(&self) -> String {
        let mut s = self.stdout.lock().unwrap().join("\n");
        s.push('\n');
        s.push_str(&self.stderr.lock().unwrap().join("\n"));
        s
    }
}

/// Start `echotrace <args>` (a `serve`) with `env` added: stdout is read
/// for the address and the admin key; stdout and stderr lines are kept
/// (stderr echoed);
/// returns once `/readyz` answers 200.
pub async fn launch(args: &[&str], env: &[(&str, &str)]) -> Launch {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning echotrace serve");
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr_pipe = child.stderr.take().expect("stderr piped");
    let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                lines.lock().unwrap().push(line);
            }
        });
    }
    let stdout_lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    {
        let lines = stdout_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                // The receiver is gone once the server is up; keep reading
                // so the child never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
    }
    let admin_in = |line: &str| {
        line.rsplit_once("(shown once): ")
            .map(|(_, k)| k.trim().to_string())
            .filter(|k| k.starts_with("et_"))
    };
    let mut admin = None;
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server prints its address");
        admin = admin.or_else(|| admin_in(&line));
        if let Some(addr) = line.strip_prefix("echotrace: listening on ") {
            break addr.trim().to_string();
        }
    };
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The bootstrap key (if any) is printed before the server is ready;
    // give the reader thread a moment to pass it on.
    while admin.is_none() {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => admin = admin_in(&line),
            Err(_) => break,
        }
    }
    Launch {
        child,
        base,
        admin,
        stdout: stdout_lines,
        stderr,
    }
}

impl Server {
    /// `echotrace serve` on a database without API keys (prints one).
    pub async fn spawn(db_url: &str, extra: &[&str]) -> Server {
        Server::spawn_env(db_url, extra, &[]).await
    }

    /// `echotrace serve` on a database that has API keys already (none is
    /// printed): set `admin` before calling authenticated routes.
    pub async fn spawn_with_key(db_url: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--db", db_url];
        args.extend_from_slice(&["--listen", "127.0.0.1:0", "--no-webhooks", "--threads", "2"]);
        args.extend_from_slice(extra);
        let l = launch(&args, &[]).await;
        Server {
            child: l.child,
            base: l.base,
            admin: l.admin.unwrap_or_default(),
        }
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
        let l = launch(&args, env).await;
        Server {
            child: l.child,
            base: l.base,
            admin: l.admin.expect("server prints its admin key"),
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
