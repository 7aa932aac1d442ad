//! Hand-rolled Prometheus text exposition.
//!
//! The service needs a handful of series (lookups, lookup latency, matches,
//! index sizes, outbox lag); a metrics framework would add more code than
//! it saves. Counters are relaxed atomics; the latency histogram uses fixed
//! buckets with one atomic per bucket, so recording never takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the lookup latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Process-wide service counters.
#[derive(Default)]
pub struct Metrics {
    lookups_total: AtomicU64,
    matches_total: AtomicU64,
    /// Responses with a 4xx status.
    client_errors_total: AtomicU64,
    /// Responses with a 5xx status.
    server_errors_total: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// Numbers the exposition needs from elsewhere (engine, outbox).
pub struct Gauges {
    /// `(signal type wire name, number of indexed signals)`.
    pub index_sizes: Vec<(String, u64)>,
    /// Undelivered outbox events.
    pub outbox_pending: u64,
    /// Age in seconds of the oldest undelivered outbox event.
    pub outbox_oldest_age_seconds: f64,
    pub ready: bool,
    /// Database changes not applied here yet, and the age of the oldest.
    pub change_lag: Option<(i64, f64)>,
}

impl Metrics {
    /// Record one lookup (one signal set) and its latency.
    pub fn record_lookup(&self, elapsed: Duration, matches: usize) {
        self.lookups_total.fetch_add(1, Ordering::Relaxed);
        self.matches_total
            .fetch_add(matches as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                if let Some(b) = self.buckets.get(i) {
                    b.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Count a response by its status class (only errors are counted).
    pub fn record_status(&self, status: axum::http::StatusCode) {
        if status.is_client_error() {
            self.client_errors_total.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            self.server_errors_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn lookups_total(&self) -> u64 {
        self.lookups_total.load(Ordering::Relaxed)
    }

    /// Render the Prometheus text format (version 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP echotrace_lookups_total Signal-set lookups served."
        );
        let _ = writeln!(out, "# TYPE echotrace_lookups_total counter");
        let _ = writeln!(out, "echotrace_lookups_total {}", self.lookups_total());
        let _ = writeln!(
            out,
            "# HELP echotrace_matches_total Matches returned and recorded."
        );
        let _ = writeln!(out, "# TYPE echotrace_matches_total counter");
        let _ = writeln!(
            out,
            "echotrace_matches_total {}",
            self.matches_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP echotrace_http_errors_total Requests answered with an error status, by class."
        );
        let _ = writeln!(out, "# TYPE echotrace_http_errors_total counter");
        let _ = writeln!(
            out,
            "echotrace_http_errors_total{{class=\"4xx\"}} {}",
            self.client_errors_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "echotrace_http_errors_total{{class=\"5xx\"}} {}",
            self.server_errors_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP echotrace_lookup_duration_seconds Lookup latency, signal set in to matches recorded.");
        let _ = writeln!(out, "# TYPE echotrace_lookup_duration_seconds histogram");
        let mut cumulative = 0u64;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "echotrace_lookup_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "echotrace_lookup_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "echotrace_lookup_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "echotrace_lookup_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP echotrace_index_size Signals held in the in-memory index, by signal type."
        );
        let _ = writeln!(out, "# TYPE echotrace_index_size gauge");
        for (t, n) in &g.index_sizes {
            let _ = writeln!(out, "echotrace_index_size{{signal_type=\"{t}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP echotrace_outbox_pending Action events not yet delivered."
        );
        let _ = writeln!(out, "# TYPE echotrace_outbox_pending gauge");
        let _ = writeln!(out, "echotrace_outbox_pending {}", g.outbox_pending);
        let _ = writeln!(
            out,
            "# HELP echotrace_outbox_lag_seconds Age of the oldest undelivered action event."
        );
        let _ = writeln!(out, "# TYPE echotrace_outbox_lag_seconds gauge");
        let _ = writeln!(
            out,
            "echotrace_outbox_lag_seconds {}",
            g.outbox_oldest_age_seconds
        );
        if let Some((changes, seconds)) = g.change_lag {
            let _ = writeln!(
                out,
                "# HELP echotrace_change_lag_changes Database changes not applied by this replica yet."
            );
            let _ = writeln!(out, "# TYPE echotrace_change_lag_changes gauge");
            let _ = writeln!(out, "echotrace_change_lag_changes {changes}");
            let _ = writeln!(
                out,
                "# HELP echotrace_change_lag_seconds Age of the oldest database change not applied yet."
            );
            let _ = writeln!(out, "# TYPE echotrace_change_lag_seconds gauge");
            let _ = writeln!(out, "echotrace_change_lag_seconds {seconds}");
        }
        let _ = writeln!(out, "# HELP echotrace_ready Whether indexes are loaded.");
        let _ = writeln!(out, "# TYPE echotrace_ready gauge");
        let _ = writeln!(out, "echotrace_ready {}", u8::from(g.ready));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::default();
        m.record_lookup(Duration::from_micros(300), 2);
        m.record_lookup(Duration::from_millis(3), 0);
        m.record_lookup(Duration::from_secs(10), 1);
        m.record_status(axum::http::StatusCode::NOT_FOUND);
        m.record_status(axum::http::StatusCode::OK);
        m.record_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        m.record_status(axum::http::StatusCode::BAD_REQUEST);
        let text = m.render(&Gauges {
            index_sizes: vec![("pdq".into(), 7)],
            outbox_pending: 1,
            outbox_oldest_age_seconds: 2.5,
            ready: true,
            change_lag: Some((3, 0.75)),
        });
        assert!(text.contains("echotrace_lookups_total 3\n"));
        assert!(text.contains("echotrace_http_errors_total{class=\"4xx\"} 2\n"));
        assert!(text.contains("echotrace_http_errors_total{class=\"5xx\"} 1\n"));
        assert!(text.contains("echotrace_matches_total 3\n"));
        assert!(text.contains("echotrace_lookup_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("echotrace_lookup_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("echotrace_lookup_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("echotrace_lookup_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("echotrace_index_size{signal_type=\"pdq\"} 7\n"));
        assert!(text.contains("echotrace_outbox_lag_seconds 2.5\n"));
        assert!(text.contains("echotrace_change_lag_changes 3\n"));
        assert!(text.contains("echotrace_change_lag_seconds 0.75\n"));
    }
}
