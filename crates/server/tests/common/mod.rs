//! The HTTP harness the server's integration tests share: a real server on
//! a loopback port over the test database, the bootstrap admin key it
//! announced, and request helpers that hand back `(status, body)` with the
//! body parsed as JSON when it is JSON (`null` when empty, a string
//! otherwise). Each test file adds its own shorthands (`ok`, `upload`…) in
//! an `impl Server` block of its own.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_engine::{EngineConfig, OutboxConfig};
use echotrace_server::{ServerConfig, ServerHandle};
use reqwest::multipart::Form;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

/// A running server.
pub struct Server {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The client (follows redirects unless [`Server::no_redirects`]).
    pub http: Client,
    /// The bootstrap admin key.
    pub admin: String,
    /// How long [`Server::raw`] and [`Server::call`] wait (none: no limit).
    pub timeout: Option<Duration>,
    /// Removed by [`Server::stop`].
    scratch: Option<PathBuf>,
}

/// The tests' base configuration: the database at `db_url`, the change
/// tail polled every 100 ms, two hashing workers.
pub fn config(db_url: &str) -> ServerConfig {
    let mut engine = EngineConfig::with_database_url(db_url);
    engine.tail_interval = Duration::from_millis(100);
    ServerConfig {
        engine,
        hash_workers: 2,
        ..ServerConfig::default()
    }
}

/// Outbox retries fast enough for a test to watch (50 ms polls, 100-400 ms
/// backoff).
pub fn fast_outbox() -> OutboxConfig {
    OutboxConfig {
        poll_interval: Duration::from_millis(50),
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        ..OutboxConfig::default()
    }
}

/// A response body as a JSON value: `null` when empty, the text as a
/// string when it is not JSON.
pub fn json_or_text(text: String) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

impl Server {
    /// Start `config` and wait until it is ready. `admin` is the admin key
    /// of an earlier start on the same database (only the first start
    /// creates and announces one).
    pub async fn start(mut config: ServerConfig, admin: Option<String>) -> Server {
        let key = Arc::new(Mutex::new(None::<String>));
        let k2 = key.clone();
        config.bootstrap_admin = Some(Arc::new(move |k: &str| {
            *k2.lock().unwrap() = Some(k.to_string());
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = echotrace_server::start(config, listener, std::future::pending())
            .await
            .unwrap();
        handle.ready(Duration::from_secs(30)).await.unwrap();
        let announced = key.lock().unwrap().clone();
        let admin = announced.or(admin).expect("bootstrap admin key announced");
        Server {
            addr: handle.addr,
            base: format!("http://{}", handle.addr),
            handle: Some(handle),
            http: Client::new(),
            admin,
            timeout: None,
            scratch: None,
        }
    }

    /// Use a client that does not follow redirects (to see a 303 and its
    /// `Location`).
    pub fn no_redirects(mut self) -> Server {
        self.http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        self
    }

    /// Remove `dir` when the server stops.
    pub fn remove_on_stop(mut self, dir: PathBuf) -> Server {
        self.scratch = Some(dir);
        self
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.unwrap();
        }
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn engine(&self) -> echotrace_engine::Engine {
        self.handle
            .as_ref()
            .unwrap()
            .state
            .engine()
            .unwrap()
            .clone()
    }

    /// A request to `path` with `key` as its bearer token (none: anonymous).
    pub fn request(&self, key: Option<&str>, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// A JSON request (within [`Server::timeout`], if set); the answer's
    /// status and body text.
    pub async fn raw(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.request(key, method, path);
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let s = resp.status();
        (s, resp.text().await.unwrap())
    }

    /// A JSON request; the answer's status and body ([`json_or_text`]).
    pub async fn call(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, text) = self.raw(key, method, path, body).await;
        (s, json_or_text(text))
    }

    /// [`Server::call`] as the admin.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(Some(&self.admin), method, path, body).await
    }

    /// A JSON request as the admin that must succeed; its body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self
            .call(Some(&self.admin), method.clone(), path, body)
            .await;
        assert!(s.is_success(), "{method} {path} -> {s}: {v}");
        v
    }

    /// A multipart POST.
    pub async fn multipart(&self, key: &str, path: &str, form: Form) -> (StatusCode, Value) {
        let resp = self
            .request(Some(key), Method::POST, path)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let s = resp.status();
        (s, json_or_text(resp.text().await.unwrap()))
    }

    /// A new API key of `role` named like the role.
    pub async fn key(&self, role: &str) -> String {
        self.key_named(role, role).await
    }

    /// A new API key of `role` named `name`.
    pub async fn key_named(&self, role: &str, name: &str) -> String {
        let v = self
            .ok(
                Method::POST,
                "/v1/keys",
                Some(json!({"role": role, "name": name})),
            )
            .await;
        v["key"].as_str().unwrap().to_string()
    }
}

#[path = "../console/mod.rs"]
mod console;
#[allow(unused_imports)] // not every test file logs in
pub use console::{console_add_content, console_login, console_session, csrf_of};
