//! One byte budget for every request body the server buffers.
//!
//! The hashing pools bound *work*, not the bodies waiting for it: without a
//! budget, N concurrent 64 MiB uploads hold N × 64 MiB (plus their parsed
//! copies) while they queue. [`BodyBudget`] is a process-wide semaphore of
//! bytes (counted in KiB units). Every body extractor ([`crate::extract`],
//! the console's forms) reads through [`read_body`] / [`metered`]:
//!
//! * a declared `Content-Length` over the route's limit is refused with 413
//!   before a byte is read;
//! * a declared length is reserved up front; a body without one (chunked)
//!   reserves as its frames arrive;
//! * a reservation waits at most [`BodyBudget::wait`]; then the request gets
//!   **503 with `Retry-After`** (`code: "overloaded"`), never an unbounded
//!   buffer;
//! * reservations are held until the handler has finished (the
//!   [`scope`] middleware owns them for the request), so the copies a handler
//!   makes of a body (parsed text, retained media) are covered by the same
//!   reservation's lifetime.
//!
//! Only authorised requests reach a body extractor (roles are checked from
//! the headers first, [`crate::auth::Caller`]), so anonymous clients cannot
//! hold budget; the console's login form, the one anonymous POST, has an
//! 8 KiB limit and checks its cookie first.
//!
//! A refused body that declared its length is drained (read and dropped,
//! nothing kept, at most 10 s) before the 503 goes out, so a client still
//! sending it reads the answer instead of a connection reset.
//!
//! **Memory bound.** The budget bounds the bodies in flight, and so the
//! copies handlers make of them while they work: a JSON text lookup holds
//! up to ~5× its body at its peak (the body, the parsed string, the
//! normalised text, token and shingle hashes, a retained copy with
//! `--retain-media`). `echotrace serve` fixes glibc's mmap threshold at
//! 1 MiB so such buffers go back to the OS when freed. Stated bound,
//! measured by the CLI test `body_flood_keeps_rss_bounded` (64 concurrent
//! maximum-size text lookups with `--retain-media`, plus 32 anonymous
//! 30 MiB login POSTs): peak RSS ≤ idle RSS + 6 × budget + 64 MiB at its
//! scale (4 MiB bodies, 16 MiB budget). At the default limits (64 MiB
//! bodies, 128 MiB budget) `scripts/blackbox.sh` measured +907 and
//! +929 MiB (≈ 7.2 × budget), so the stated bound is 8 × budget + 64 MiB,
//! whatever the number of concurrent uploads. Without the budget every
//! queued upload kept its body: 16 × 50 MB lookups reached 1.57 GB.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Budget accounting unit: 1 KiB.
const UNIT: usize = 1024;
/// A body without a declared length reserves at least this much at a time.
const STEP: usize = 256 * 1024;

/// The process-wide budget of buffered request-body bytes.
#[derive(Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
    wait: Duration,
}

impl BodyBudget {
    /// A budget of `bytes` (at least 1 MiB); a reservation waits at most `wait`.
    pub fn new(bytes: usize, wait: Duration) -> BodyBudget {
        let total_units = (bytes.max(1 << 20) / UNIT).min(Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
            wait,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> usize {
        self.total_units * UNIT
    }

    /// How long a request waits for room before its 503.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }

    fn units(bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
    }

    /// Reserve `bytes`, waiting at most [`BodyBudget::wait`].
    async fn reserve(self: &Arc<Self>, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = Self::units(bytes);
        if units as usize > self.total_units {
            return None;
        }
        let acquire = self.permits.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(p)) => Some(p),
            _ => None,
        }
    }

    fn try_reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .try_acquire_many_owned(Self::units(bytes))
            .ok()
    }
}

/// Seconds a client is told to wait after a 503 for lack of budget.
pub const RETRY_AFTER_SECS: u64 = 2;

/// The 503 of a request that found no room in the budget.
pub fn overloaded() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the server is busy receiving other uploads; retry shortly",
    )
    .with_retry_after(RETRY_AFTER_SECS)
}

/// A request's share of the budget: its reservations (held until the
/// request is answered), its body limit, and whether a reservation failed.
#[derive(Clone, Debug)]
pub struct BudgetScope {
    budget: Arc<BodyBudget>,
    limit: usize,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    exceeded: Arc<AtomicBool>,
}

impl BudgetScope {
    fn hold(&self, permit: OwnedSemaphorePermit) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(p) => p.merge(permit),
            None => *held = Some(permit),
        }
    }

    /// Whether this request was refused room in the budget.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// The body limit of the route.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The budget and body limit of a group of routes, installed by
/// [`scope`] (`axum::middleware::from_fn_with_state`).
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    pub budget: Arc<BodyBudget>,
    pub limit: usize,
}

/// Middleware: gives each request a [`BudgetScope`] and releases its
/// reservations once the handler has answered.
pub async fn scope(State(layer): State<BudgetLayer>, mut req: Request, next: Next) -> Response {
    let scope = BudgetScope {
        budget: layer.budget,
        limit: layer.limit,
        held: Arc::new(Mutex::new(None)),
        exceeded: Arc::new(AtomicBool::new(false)),
    };
    req.extensions_mut().insert(scope.clone());
    let resp = next.run(req).await;
    drop(scope);
    resp
}

/// Why a body could not be admitted.
#[derive(Debug)]
pub enum Admission {
    /// The declared length is over the route's limit (413).
    TooLarge,
    /// No room in the budget within the wait (503 + Retry-After).
    Overloaded,
}

impl From<Admission> for ApiError {
    fn from(a: Admission) -> ApiError {
        match a {
            Admission::TooLarge => {
                ApiError::payload_too_large("request body exceeds the configured limit")
            }
            Admission::Overloaded => overloaded(),
        }
    }
}

/// Put `req`'s body under the budget: refuse a declared length over the
/// limit, reserve a declared length (waiting at most the budget's wait), and
/// meter a body of unknown length as it is read. Without a [`BudgetScope`]
/// (a router built without [`scope`]) the request passes unchanged.
pub async fn metered(req: Request) -> Result<Request, Admission> {
    let Some(scope) = req.extensions().get::<BudgetScope>().cloned() else {
        return Ok(req);
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let granted = match declared {
        Some(n) if n > scope.limit as u64 => {
            // Read and discard (no buffering) what arrives within a moment,
            // up to twice the limit, so a client still sending a moderately
            // oversized body reads the 413 instead of a connection reset;
            // a client that stalls is answered after that moment.
            let max = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(scope.limit.saturating_mul(2));
            drain(req.into_body(), max, TOO_LARGE_DRAIN_TIME).await;
            return Err(Admission::TooLarge);
        }
        Some(0) => 0,
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            match scope.budget.reserve(n).await {
                Some(p) => {
                    scope.hold(p);
                    n.div_ceil(UNIT) * UNIT
                }
                None => {
                    scope.exceeded.store(true, Ordering::Relaxed);
                    // Read and discard the body (no buffering) so the
                    // client, still sending, gets to read the 503 instead
                    // of a connection reset.
                    drain(req.into_body(), n, DRAIN_TIME).await;
                    return Err(Admission::Overloaded);
                }
            }
        }
        None => 0,
    };
    Ok(req.map(|body| {
        Body::new(Metered {
            inner: body,
            scope,
            granted,
            used: 0,
            waiting: None,
        })
    }))
}

/// How long a refused body is drained at most before the 503 goes out.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// How long a body declared over the limit is drained before the 413.
const TOO_LARGE_DRAIN_TIME: Duration = Duration::from_millis(500);

/// Read and drop up to `max` bytes of `body` (nothing is kept), for at
/// most `time`.
async fn drain(mut body: Body, max: usize, time: Duration) {
    let discard = async {
        let mut seen = 0usize;
        while seen <= max {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(f)) => seen += f.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(time, discard).await;
}

/// [`metered`], then read the whole body (the route's limit applies: 413).
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let req = metered(req).await?;
    let scope = req.extensions().get::<BudgetScope>().cloned();
    match <Bytes as axum::extract::FromRequest<()>>::from_request(req, &()).await {
        Ok(b) => Ok(b),
        Err(_) if scope.as_ref().is_some_and(BudgetScope::exceeded) => Err(overloaded()),
        Err(r) => Err(crate::error::body_error(r.status(), r.body_text())),
    }
}

type Reservation = Pin<Box<dyn std::future::Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// A body that takes budget for its bytes as they arrive (beyond what was
/// reserved up front).
struct Metered {
    inner: Body,
    scope: BudgetScope,
    /// Bytes covered by reservations.
    granted: usize,
    /// Bytes passed on.
    used: usize,
    /// A frame waiting for its reservation.
    waiting: Option<(http_body::Frame<Bytes>, usize, Reservation)>,
}

/// The error a metered body ends with when the budget has no room.
#[derive(Debug)]
struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body budget exhausted")
    }
}

impl std::error::Error for BudgetExceeded {}

impl HttpBody for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some((_, want, fut)) = this.waiting.as_mut() {
            let want = *want;
            return match fut.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(permit) => {
                    let Some((frame, _, _)) = this.waiting.take() else {
                        return Poll::Ready(None);
                    };
                    match permit {
                        Some(p) => {
                            this.scope.hold(p);
                            this.granted += want;
                            Poll::Ready(Some(Ok(frame)))
                        }
                        None => {
                            this.scope.exceeded.store(true, Ordering::Relaxed);
                            Poll::Ready(Some(Err(axum::Error::new(BudgetExceeded))))
                        }
                    }
                }
            };
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(f))) => f,
        };
        let n = frame.data_ref().map_or(0, Bytes::len);
        this.used = this.used.saturating_add(n);
        if this.used <= this.granted {
            return Poll::Ready(Some(Ok(frame)));
        }
        let want = (this.used - this.granted).max(STEP).div_ceil(UNIT) * UNIT;
        if let Some(p) = this.scope.budget.try_reserve(want) {
            this.scope.hold(p);
            this.granted += want;
            return Poll::Ready(Some(Ok(frame)));
        }
        let budget = this.scope.budget.clone();
        let fut: Reservation = Box::pin(async move { budget.reserve(want).await });
        this.waiting = Some((frame, want, fut));
        // Poll the reservation once so it registers for a wake-up.
        Pin::new(this).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_then_fail_and_are_released() {
        let budget = Arc::new(BodyBudget::new(2 << 20, Duration::from_millis(50)));
        let a = budget.reserve(1 << 20).await.expect("room");
        let b = budget.reserve(1 << 20).await.expect("room");
        assert_eq!(budget.available(), 0);
        assert!(budget.reserve(1).await.is_none(), "over budget: refused");
        drop(a);
        assert!(budget.reserve(1 << 20).await.is_some());
        drop(b);
        assert!(
            budget.reserve(3 << 20).await.is_none(),
            "more than the whole budget"
        );
        assert_eq!(budget.available(), 2 << 20);
    }
}
