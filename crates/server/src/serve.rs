//! The accept loop, with a graceful stop that cuts off no request the
//! server had accepted.
//!
//! `axum::serve` stops by closing the listener (connections still queued
//! in the kernel are reset) and by shutting every connection down at once
//! (one whose first request has not been read yet is dropped). Under load
//! both cut requests that clients had already sent. So the stop here runs:
//!
//! 1. **draining**: `/readyz` answers 503 (load balancers stop sending) and
//!    every response carries `Connection: close`, so each keep-alive
//!    connection ends cleanly after the request it is serving or receives
//!    next;
//! 2. **stop accepting**: connections already queued in the kernel are
//!    accepted (a non-blocking accept until none is left) and served; then
//!    the listener is closed, so later connects are refused, not reset;
//! 3. **grace**: for [`DrainConfig::grace`] connections go on as usual, so
//!    a request already on its way (sent before the signal, not yet read)
//!    is read and answered;
//! 4. **close idle**: every connection is told to finish: in-flight
//!    requests complete, idle ones close;
//! 5. the call returns when all connections ended, or after
//!    [`DrainConfig::timeout`] (then the rest are dropped).
//!
//! HTTP/1.1 only (what the service spoke before), with hyper's 30 s limit
//! on reading a request's headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How the stop drains (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct DrainConfig {
    /// How long connections keep working normally after the signal.
    pub grace: Duration,
    /// Longest wait for in-flight requests after the grace.
    pub timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            grace: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Serve `app` on `listener` until `stop` resolves, then drain. `draining`
/// is set at the signal (the app reads it for `/readyz`).
pub(crate) async fn serve<F>(
    listener: TcpListener,
    app: Router,
    stop: F,
    drain: DrainConfig,
    draining: Arc<AtomicBool>,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send,
{
    // Every connection task holds a receiver of `finish` (told to close)
    // and a clone of `alive` (dropped when it ends).
    let (finish_tx, finish_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => spawn_conn(io, peer, &app, &draining, &finish_rx, &alive_rx),
                Err(e) => accept_error(e).await,
            },
        }
    }
    draining.store(true, Ordering::SeqCst);
    // Accept what the kernel had queued, then close the listener.
    let std_listener = listener.into_std()?;
    std_listener.set_nonblocking(true)?;
    loop {
        match std_listener.accept() {
            Ok((io, peer)) => {
                if io.set_nonblocking(true).is_ok() {
                    if let Ok(io) = TcpStream::from_std(io) {
                        spawn_conn(io, peer, &app, &draining, &finish_rx, &alive_rx);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    drop(std_listener);
    drop(alive_rx);
    drop(finish_rx);
    // Grace: connections carry on (ending after one more response).
    let _ = tokio::time::timeout(drain.grace, alive_tx.closed()).await;
    let _ = finish_tx.send(true);
    let _ = tokio::time::timeout(drain.timeout, alive_tx.closed()).await;
    Ok(())
}

/// Errors such as "too many open files" must not spin the loop.
async fn accept_error(e: std::io::Error) {
    eprintln!("echotrace-server: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn spawn_conn(
    io: TcpStream,
    peer: SocketAddr,
    app: &Router,
    draining: &Arc<AtomicBool>,
    finish: &watch::Receiver<bool>,
    alive: &watch::Receiver<()>,
) {
    let _ = io.set_nodelay(true);
    let app = app.clone();
    let draining = draining.clone();
    let mut finish = finish.clone();
    let alive = alive.clone();
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            let draining = draining.clone();
            async move {
                let mut resp = match app.oneshot(req.map(axum::body::Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                if draining.load(Ordering::SeqCst) {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(resp)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new());
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut told = false;
        loop {
            tokio::select! {
                _ = &mut conn => break,
                changed = finish.changed(), if !told => {
                    told = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        drop(alive);
    });
}
