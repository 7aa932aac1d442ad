//! A tiny HTTP/1.1 test site on loopback: routes are a function of the
//! path, every request is logged with its arrival time (server side), and
//! answers can be hostile (endless body, lying Content-Length, slow drip,
//! gzip bomb) — generated benign content only.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the site answers for a path.
#[derive(Clone)]
pub enum Reply {
    Ok {
        content_type: String,
        body: Vec<u8>,
    },
    Status {
        status: u16,
        body: Vec<u8>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    /// A chunked body that never ends.
    Endless,
    /// `Content-Length: 10 GB`, then a trickle.
    HugeLength,
    /// A 200 whose body arrives one byte every `every`.
    SlowDrip {
        every: Duration,
    },
    /// `Content-Encoding: gzip` of `inflated` zero bytes.
    GzipBomb {
        inflated: u64,
    },
    /// Close the connection without answering.
    Hang,
}

impl Reply {
    pub fn html(s: &str) -> Reply {
        Reply::Ok {
            content_type: "text/html; charset=utf-8".into(),
            body: s.as_bytes().to_vec(),
        }
    }
    pub fn bytes(ct: &str, b: Vec<u8>) -> Reply {
        Reply::Ok {
            content_type: ct.into(),
            body: b,
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub host: String,
    pub path: String,
    pub user_agent: String,
}

type Routes = Arc<dyn Fn(&str, &str) -> Option<Reply> + Send + Sync>;

/// A running site (one or more listening addresses, one route table).
pub struct Site {
    pub addrs: Vec<SocketAddr>,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Site {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Site {
    /// Listen on each of `ips` (e.g. 127.0.0.2, 127.0.0.3); the routes are
    /// made from the bound addresses; `routes(host, path)` answers (None →
    /// 404).
    pub async fn start<M, F>(ips: &[&str], make_routes: M) -> Site
    where
        M: FnOnce(&[SocketAddr]) -> F,
        F: Fn(&str, &str) -> Option<Reply> + Send + Sync + 'static,
    {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mut addrs = Vec::new();
        let mut listeners = Vec::new();
        for ip in ips {
            let l = TcpListener::bind(format!("{ip}:0"))
                .await
                .expect("bind test site");
            addrs.push(l.local_addr().expect("local addr"));
            listeners.push(l);
        }
        let routes: Routes = Arc::new(make_routes(&addrs));
        let mut tasks = Vec::new();
        for l in listeners {
            let routes = routes.clone();
            let hits = hits.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = l.accept().await else {
                        break;
                    };
                    let routes = routes.clone();
                    let hits = hits.clone();
                    tokio::spawn(async move {
                        let _ = serve_conn(sock, routes, hits).await;
                    });
                }
            }));
        }
        Site { addrs, hits, tasks }
    }

    pub fn base(&self, i: usize) -> String {
        format!("http://{}", self.addrs[i])
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Requests per path.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for h in self.hits() {
            *m.entry(h.path).or_default() += 1;
        }
        m
    }
}

async fn serve_conn(
    mut sock: TcpStream,
    routes: Routes,
    hits: Arc<Mutex<Vec<Hit>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 64 << 10 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let mut lines = head.lines();
        let req = lines.next().unwrap_or("");
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut host = String::new();
        let mut ua = String::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("host") {
                    host = v.trim().to_string();
                } else if k.eq_ignore_ascii_case("user-agent") {
                    ua = v.trim().to_string();
                }
            }
        }
        if let Ok(mut h) = hits.lock() {
            h.push(Hit {
                at: Instant::now(),
                host: host.clone(),
                path: path.clone(),
                user_agent: ua,
            });
        }
        let host_only = host
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or(host);
        let reply = routes(&host_only, &path).unwrap_or(Reply::Status {
            status: 404,
            body: b"not found".to_vec(),
        });
        match reply {
            Reply::Ok { content_type, body } => {
                let h = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                sock.write_all(h.as_bytes()).await?;
                sock.write_all(&body).await?;
            }
            Reply::Status { status, body } => {
                let h = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                sock.write_all(h.as_bytes()).await?;
                sock.write_all(&body).await?;
            }
            Reply::Redirect { status, location } => {
                let h = format!(
                    "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                );
                sock.write_all(h.as_bytes()).await?;
            }
            Reply::Endless => {
                sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await?;
                let chunk = vec![b'x'; 64 << 10];
                loop {
                    sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    sock.write_all(&chunk).await?;
                    sock.write_all(b"\r\n").await?;
                }
            }
            Reply::HugeLength => {
                sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 10737418240\r\n\r\n")
                    .await?;
                let chunk = vec![0u8; 64 << 10];
                loop {
                    sock.write_all(&chunk).await?;
                }
            }
            Reply::SlowDrip { every } => {
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n",
                )
                .await?;
                loop {
                    sock.write_all(b"a").await?;
                    tokio::time::sleep(every).await;
                }
            }
            Reply::GzipBomb { inflated } => {
                let body = gzip_zeros(inflated);
                let h = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                sock.write_all(h.as_bytes()).await?;
                sock.write_all(&body).await?;
            }
            Reply::Hang => return Ok(()),
        }
    }
}

/// Gzip of `n` zero bytes (compresses ~1000:1).
pub fn gzip_zeros(n: u64) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        let _ = e.write_all(&zeros[..k]);
        left -= k as u64;
    }
    e.finish().unwrap_or_default()
}
