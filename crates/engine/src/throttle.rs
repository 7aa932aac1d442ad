//! Console login throttle, shared by every process on the database.
//!
//! Failed logins are counted per username (case-folded, whether or not the
//! user exists) and per client address in the store's shared counters
//! (time buckets of a sixtieth of the window, at least a second), so five
//! failures spread over five replicas lock the account as five on one
//! would. An attempt is **admitted and counted in one transaction** before
//! the password is checked: the two counters are incremented, their window
//! sums read back, and the transaction is committed only when both are
//! within the limit — otherwise it is rolled back (a refused attempt is not
//! counted) and the caller answers 429 with the seconds until enough
//! failures have aged out. A failure counts for the window less at most one
//! bucket (a sixtieth of it, at least a second): 295–300 s of a 5-minute
//! window. The counters of a name or address are one row per
//! bucket shared by all processes, so concurrent attempts on different
//! processes are serialised by that row's lock and cannot all pass. A
//! success deletes the username's counts and takes back the attempt counted
//! against the address. The first refusal of a locked name
//! or address per window is reported once across processes (a counter of
//! its own), so hammering a locked login cannot grow the audit log.

use std::net::IpAddr;
use std::time::Duration;

use echotrace_store::{now_ms, CounterAdd, Store};

use crate::error::Result;

/// Buckets per window.
const BUCKETS: i64 = 60;

/// Shared failed-login counts (see the module doc).
#[derive(Clone, Debug)]
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
}

/// An admitted attempt: what a success must take back.
#[derive(Clone, Debug)]
pub struct Admitted {
    bucket: i64,
    ip_key: String,
    user_key: String,
}

/// A refused attempt.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Seconds until an attempt may be admitted again (≥ 1).
    pub retry_after_secs: u64,
    /// The counters at their limit.
    locked: Vec<String>,
}

impl LoginThrottle {
    /// At most `max_failures` failed logins per username and per address
    /// within `window` (`max_failures` 0 disables throttling).
    pub fn new(max_failures: usize, window: Duration) -> Self {
        LoginThrottle {
            max_failures,
            window,
        }
    }

    fn bucket_ms(&self) -> i64 {
        let w = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX / 4);
        (w / BUCKETS).max(1000)
    }

    fn user_key(username: &str) -> String {
        format!("login:user:{}", username.trim().to_lowercase())
    }

    fn ip_key(ip: &IpAddr) -> String {
        format!("login:ip:{ip}")
    }

    fn add(&self, name: &str, bucket: i64, delta: i64) -> CounterAdd {
        CounterAdd {
            name: name.to_string(),
            bucket,
            replica: String::new(),
            delta,
            expires_at: bucket + (BUCKETS + 2) * self.bucket_ms(),
        }
    }

    /// Admit a login attempt (counting it as a failure until
    /// [`LoginThrottle::record_success`]) or refuse it.
    pub async fn admit(
        &self,
        store: &Store,
        username: &str,
        ip: &IpAddr,
    ) -> Result<std::result::Result<Admitted, Refusal>> {
        let b = self.bucket_ms();
        let now = now_ms();
        let bucket = now - now.rem_euclid(b);
        let since = bucket - (BUCKETS - 1) * b;
        let (user_key, ip_key) = (Self::user_key(username), Self::ip_key(ip));
        let admitted = Admitted {
            bucket,
            ip_key: ip_key.clone(),
            user_key: user_key.clone(),
        };
        if self.max_failures == 0 {
            return Ok(Ok(admitted));
        }
        let keys = [user_key, ip_key];
        let mut tx = store.write().await?;
        // Always in this order (user, then address): concurrent attempts
        // lock rows in one order and cannot deadlock.
        tx.add_counters(&[self.add(&keys[0], bucket, 1), self.add(&keys[1], bucket, 1)])
            .await?;
        let sums = tx.counter_sums(&keys, since).await?;
        let max = i64::try_from(self.max_failures).unwrap_or(i64::MAX);
        let locked: Vec<String> = keys
            .iter()
            .filter(|k| sums.get(*k).copied().unwrap_or(0) > max)
            .cloned()
            .collect();
        if locked.is_empty() {
            tx.commit().await?;
            return Ok(Ok(admitted));
        }
        // Refused: not counted. Find when enough failures age out.
        let mut wait_ms = 0i64;
        for key in &locked {
            let mut buckets = tx.counter_buckets(key, since).await?;
            if let Some(last) = buckets.last_mut() {
                if last.0 == bucket {
                    last.1 -= 1; // this attempt
                }
            }
            let before: i64 = buckets.iter().map(|(_, n)| n).sum();
            let drop_needed = before - max + 1;
            let mut dropped = 0;
            for (start, n) in &buckets {
                dropped += n;
                if dropped >= drop_needed {
                    // Out of the window once `since` passes its start.
                    wait_ms = wait_ms.max(start + BUCKETS * b - now);
                    break;
                }
            }
        }
        drop(tx);
        let secs = u64::try_from(wait_ms.max(0)).unwrap_or(0).div_ceil(1000);
        Ok(Err(Refusal {
            retry_after_secs: secs.max(1),
            locked,
        }))
    }

    /// Whether this refusal is the first of its locked name or address
    /// within a window (to be audited once, not per hammered attempt).
    pub async fn first_refusal(&self, store: &Store, refusal: &Refusal) -> Result<bool> {
        let b = self.bucket_ms();
        let now = now_ms();
        let bucket = now - now.rem_euclid(b);
        let since = bucket - (BUCKETS - 1) * b;
        let names: Vec<String> = refusal
            .locked
            .iter()
            .map(|k| format!("login-refused:{k}"))
            .collect();
        let mut tx = store.write().await?;
        let adds: Vec<CounterAdd> = names.iter().map(|n| self.add(n, bucket, 1)).collect();
        tx.add_counters(&adds).await?;
        let sums = tx.counter_sums(&names, since).await?;
        tx.commit().await?;
        Ok(names.iter().any(|n| sums.get(n) == Some(&1)))
    }

    /// A successful login: clear the username's failures and take back the
    /// attempt counted against the address.
    pub async fn record_success(&self, store: &Store, admitted: &Admitted) -> Result<()> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let mut tx = store.write().await?;
        tx.delete_counters(std::slice::from_ref(&admitted.user_key))
            .await?;
        tx.add_counters(&[self.add(&admitted.ip_key, admitted.bucket, -1)])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn five_failures_lock_a_name_across_handles_and_success_resets_it() {
        let db = echotrace_store::testing::TestDb::sqlite();
        let store = Store::open(&db.url).await.unwrap();
        // Two throttles = two processes: the counts are in the store.
        let a = LoginThrottle::new(3, Duration::from_secs(300));
        let b = LoginThrottle::new(3, Duration::from_secs(300));
        let ip1: IpAddr = "192.0.2.1".parse().unwrap();
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(a.admit(&store, "Alice", &ip1).await.unwrap().is_ok());
        assert!(b.admit(&store, "alice", &ip2).await.unwrap().is_ok());
        assert!(a.admit(&store, "ALICE ", &ip1).await.unwrap().is_ok());
        let refused = b.admit(&store, "alice", &ip2).await.unwrap().unwrap_err();
        assert!(refused.retry_after_secs >= 290, "{refused:?}");
        assert!(refused.retry_after_secs <= 300, "{refused:?}");
        assert!(a.first_refusal(&store, &refused).await.unwrap());
        assert!(!b.first_refusal(&store, &refused).await.unwrap());
        // A refused attempt is not counted; another name from ip2 passes.
        let ok = a.admit(&store, "bob", &ip2).await.unwrap().unwrap();
        a.record_success(&store, &ok).await.unwrap();
        // ip1 has 2 failures; a third name from it is its 3rd: admitted.
        let carol = a.admit(&store, "carol", &ip1).await.unwrap().unwrap();
        // Now ip1 is at the limit for everyone.
        assert!(a.admit(&store, "dave", &ip1).await.unwrap().is_err());
        // Success takes back carol's attempt against ip1.
        a.record_success(&store, &carol).await.unwrap();
        assert!(a.admit(&store, "dave", &ip1).await.unwrap().is_ok());
        store.close().await;
        db.cleanup().await.unwrap();
    }

    /// Attempts are counted when admitted, so a burst of parallel logins
    /// (all admitted before any password check finishes) gets only
    /// `max_failures` through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_parallel_burst_admits_only_the_limit() {
        let db = echotrace_store::testing::TestDb::sqlite();
        let store = Store::open(&db.url).await.unwrap();
        let t = LoginThrottle::new(3, Duration::from_secs(300));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, t) = (store.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                t.admit(&store, "mallory", &ip).await.unwrap().is_ok()
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 3);
        store.close().await;
        db.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn zero_disables() {
        let db = echotrace_store::testing::TestDb::sqlite();
        let store = Store::open(&db.url).await.unwrap();
        let t = LoginThrottle::new(0, Duration::from_secs(1));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(t.admit(&store, "x", &ip).await.unwrap().is_ok());
        }
        store.close().await;
        db.cleanup().await.unwrap();
    }
}
