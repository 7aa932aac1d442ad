//! The collector's tables (migration 0040) on both backends: frontier
//! dedup, leasing, expiry, fencing; host politeness slots; cursors,
//! platforms, source counters and sighting attributes.

use std::collections::HashSet;
use std::time::Duration;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use echotrace_store::{
    now_ms, JobOutcome, NewJob, NewSighting, NewSource, SourceStatsDelta, Store, JOB_DONE,
    JOB_FAILED, JOB_QUEUED,
};

/// Digests as sightings store them (64 lowercase hex digits).
const U1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const C1: &str = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c";

both_backends!(
    frontier_dedups_leases_and_fences,
    concurrent_leases_never_share_a_job,
    host_slots_space_requests,
    cursors_platforms_counters_attributes,
    finish_jobs_in_bulk_is_fenced_per_job,
);

async fn source(store: &Store, name: &str) -> i64 {
    let mut tx = store.write().await.unwrap();
    let s = tx
        .insert_source(&NewSource {
            name,
            kind: "page",
            config: "{}",
            enabled: true,
            created_by: "test",
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    s.id
}

fn job<'a>(source_id: i64, url: &'a str, sha: &'a str) -> NewJob<'a> {
    NewJob {
        source_id,
        url,
        url_sha256: sha,
        host: "h.test",
        kind: "page",
        depth: 0,
        seed_host: "h.test",
        parent_sighting_id: None,
        not_before: 0,
    }
}

async fn frontier_dedups_leases_and_fences(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let s = source(&store, "s").await;
    let mut tx = store.write().await.unwrap();
    let n = tx
        .enqueue_jobs(
            &[
                job(s, "http://h.test/a", "a"),
                job(s, "http://h.test/b", "b"),
                job(s, "http://h.test/a#x", "a"),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(n, 2, "the same canonical URL is queued once");
    tx.commit().await.unwrap();
    let c = store.frontier_counts(Some(s)).await.unwrap();
    assert_eq!((c.queued, c.ready), (2, 2));

    let got = store.lease_jobs("w1", 10, 60_000, false).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|j| j.state == "leased" && j.attempts == 1));
    assert!(store
        .lease_jobs("w2", 10, 60_000, false)
        .await
        .unwrap()
        .is_empty());

    // Only the holder finishes a job.
    let mut tx = store.write().await.unwrap();
    let done = JobOutcome {
        state: JOB_DONE,
        http_status: Some(200),
        ..JobOutcome::default()
    };
    assert!(!tx.finish_job(got[0].id, "w2", &done).await.unwrap());
    assert!(tx.holds_job(got[0].id, "w1").await.unwrap());
    assert!(tx.finish_job(got[0].id, "w1", &done).await.unwrap());
    tx.commit().await.unwrap();

    // Deferred: back to queued, attempt not counted, not ready yet.
    assert!(store
        .defer_job(got[1].id, "w1", now_ms() + 60_000)
        .await
        .unwrap());
    let j = store.get_job(got[1].id).await.unwrap().unwrap();
    assert_eq!((j.state.as_str(), j.attempts), (JOB_QUEUED, 0));
    let c = store.frontier_counts(Some(s)).await.unwrap();
    assert_eq!((c.done, c.queued, c.ready), (1, 1, 0));
    assert!(c.next_due_at.is_some());

    // A done job is queued again only when found after the revisit window.
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.enqueue_jobs(&[job(s, "http://h.test/a", "a")], 0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        tx.enqueue_jobs(&[job(s, "http://h.test/a", "a")], now_ms() + 1)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();

    // An expired lease is taken over; the old holder is fenced off.
    let short = store.lease_jobs("w3", 1, 100, false).await.unwrap();
    assert_eq!(short.len(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let taken = store.lease_jobs("w4", 1, 60_000, false).await.unwrap();
    assert_eq!(taken[0].id, short[0].id);
    assert_eq!(taken[0].attempts, short[0].attempts + 1);
    let mut tx = store.write().await.unwrap();
    assert!(!tx.finish_job(short[0].id, "w3", &done).await.unwrap());
    assert!(!tx.holds_job(short[0].id, "w3").await.unwrap());
    tx.commit().await.unwrap();

    // Many rows in one call (several statements).
    let urls: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("http://h.test/m{i}"), format!("m{i}")))
        .collect();
    let jobs: Vec<NewJob> = urls.iter().map(|(u, h)| job(s, u, h)).collect();
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.enqueue_jobs(&jobs, 0).await.unwrap(), 1000);
    tx.commit().await.unwrap();
    let listed = store
        .list_jobs(Some(s), Some(JOB_QUEUED), 0, 5000)
        .await
        .unwrap();
    assert!(listed.len() >= 1000);

    // Renewal and "still held" over more ids than one statement takes:
    // only the holder's leases move, only its jobs are reported held.
    let leased = store.lease_jobs("w5", 1500, 1_000, false).await.unwrap();
    assert!(leased.len() >= 1000, "{} leased", leased.len());
    let ids: Vec<i64> = leased.iter().map(|j| j.id).collect();
    assert_eq!(store.renew_jobs(&ids, "w6", 600_000).await.unwrap(), 0);
    let before = now_ms();
    assert_eq!(
        store.renew_jobs(&ids, "w5", 600_000).await.unwrap(),
        ids.len() as u64
    );
    let j = store.get_job(ids[ids.len() - 1]).await.unwrap().unwrap();
    assert!(j.lease_expires_at.unwrap_or(0) >= before + 590_000);
    let mut tx = store.write().await.unwrap();
    let mut asked = ids.clone();
    asked.push(taken[0].id); // w4's, not w5's
    let mut held = tx.held_jobs(&asked, "w5").await.unwrap();
    held.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(held, want);
    tx.commit().await.unwrap();
}

async fn concurrent_leases_never_share_a_job(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let s = source(&store, "c").await;
    let urls: Vec<(String, String)> = (0..400)
        .map(|i| (format!("http://h.test/{i}"), format!("{i}")))
        .collect();
    let jobs: Vec<NewJob> = urls.iter().map(|(u, h)| job(s, u, h)).collect();
    let mut tx = store.write().await.unwrap();
    tx.enqueue_jobs(&jobs, 0).await.unwrap();
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = Store::open(&db.url).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .lease_jobs(&format!("w{w}"), 7, 60_000, false)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} leased twice");
        }
    }
    assert_eq!(total, 400);
}

async fn host_slots_space_requests(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(store.reserve_host("h", "a", 10_000).await.unwrap(), None);
    // Held: another holder must wait until it is released and then some.
    let busy = store.reserve_host("h", "b", 10_000).await.unwrap();
    assert!(busy.is_some_and(|t| t > now_ms()));
    // 1 s, so the reserve below surely comes before it on a loaded machine.
    let next = now_ms() + 1000;
    store.release_host("h", "a", next).await.unwrap();
    let wait = store.reserve_host("h", "b", 10_000).await.unwrap().unwrap();
    assert!((next - 5..=next + 5).contains(&wait), "{wait} vs {next}");
    tokio::time::sleep(Duration::from_millis(1020)).await;
    assert_eq!(store.reserve_host("h", "b", 10_000).await.unwrap(), None);
    // A stale release by a former holder does nothing.
    store.release_host("h", "a", 0).await.unwrap();
    assert!(store.reserve_host("h", "c", 10).await.unwrap().is_some());
    // Other hosts are independent.
    assert_eq!(store.reserve_host("other", "c", 10).await.unwrap(), None);
}

async fn cursors_platforms_counters_attributes(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(store.cursor("retro_hunt").await.unwrap(), 0);
    let s = source(&store, "p").await;
    let mut tx = store.write().await.unwrap();
    tx.set_cursor("retro_hunt", 41).await.unwrap();
    tx.set_cursor("retro_hunt", 42).await.unwrap();
    tx.set_host_platform("lock.test", "demo-locker")
        .await
        .unwrap();
    tx.set_host_platform("lock.test", "demo-locker-2")
        .await
        .unwrap();
    tx.source_run_started(s).await.unwrap();
    tx.add_source_stats(
        s,
        &SourceStatsDelta {
            items: 5,
            errors: 2,
            politeness_waits: 3,
            politeness_wait_ms: 4000,
            last_error: Some("boom".into()),
        },
    )
    .await
    .unwrap();
    tx.add_source_stats(
        s,
        &SourceStatsDelta {
            items: 1,
            ..SourceStatsDelta::default()
        },
    )
    .await
    .unwrap();
    let (row, _) = tx
        .upsert_sighting(&NewSighting {
            source_id: Some(s),
            url: "http://h.test/x",
            url_canonical: "https://h.test/x",
            url_sha256: U1,
            host: "h.test",
            platform: "",
            parent_id: None,
            content_sha256: C1,
            media_type: "image",
            seen_at: 1,
            expires_at: None,
            warc: None,
            implied_signals: 0,
        })
        .await
        .unwrap();
    tx.set_sighting_attributes(row.id, r#"{"telegram":{"forwarded_from":"x"}}"#)
        .await
        .unwrap();
    tx.insert_sighting_signals_bulk(&[(row.id, "sha256", C1), (row.id, "url_sha256", U1)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.cursor("retro_hunt").await.unwrap(), 42);
    assert_eq!(
        store.host_platforms().await.unwrap(),
        vec![("lock.test".to_string(), "demo-locker-2".to_string())]
    );
    let st = store
        .source_statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.source_id == s)
        .unwrap();
    assert_eq!(
        (
            st.items_total,
            st.errors_total,
            st.politeness_waits,
            st.politeness_wait_ms
        ),
        (6, 2, 3, 4000)
    );
    assert_eq!(st.last_error.as_deref(), Some("boom"));
    assert_eq!(st.last_run_status, "running");
    assert!(store
        .sighting_attributes(row.id)
        .await
        .unwrap()
        .contains("forwarded_from"));
    assert_eq!(
        store.signals_of_content_sha(C1).await.unwrap().unwrap(),
        vec![
            ("sha256".to_string(), C1.to_string()),
            ("url_sha256".to_string(), U1.to_string())
        ]
    );
    assert_eq!(store.signals_of_content_sha("nope").await.unwrap(), None);
    let mut tx = store.write().await.unwrap();
    assert!(tx.delete_host_platform("lock.test").await.unwrap());
    // Deleting a source drops its jobs (cascade), keeps its sightings.
    tx.enqueue_jobs(&[job(s, "http://h.test/z", "z")], 0)
        .await
        .unwrap();
    tx.delete_source(s).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store
        .list_jobs(Some(s), None, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.get_sighting(row.id).await.unwrap().is_some());
}

/// The collector finishes a commit's jobs in one call: each job gets its own
/// outcome (NULLs included), a job another worker holds is left alone, and
/// a finished job's sighting is kept when the outcome names none.
async fn finish_jobs_in_bulk_is_fenced_per_job(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let s = source(&store, "bulk").await;
    // More jobs than one statement takes (400).
    let urls: Vec<(String, String)> = (0..450)
        .map(|i| (format!("http://h.test/f{i}"), format!("f{i}")))
        .collect();
    let jobs: Vec<NewJob> = urls.iter().map(|(u, h)| job(s, u, h)).collect();
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.enqueue_jobs(&jobs, 0).await.unwrap(), 450);
    tx.commit().await.unwrap();
    let mine = store.lease_jobs("w1", 449, 60_000, false).await.unwrap();
    let theirs = store.lease_jobs("w2", 1, 60_000, false).await.unwrap();
    assert_eq!((mine.len(), theirs.len()), (449, 1));
    // The first job already points at a sighting (an earlier attempt).
    let mut tx = store.write().await.unwrap();
    assert!(tx
        .finish_job(
            mine[0].id,
            "w1",
            &JobOutcome {
                state: JOB_QUEUED,
                sighting_id: Some(77),
                ..JobOutcome::default()
            }
        )
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let again = store.lease_jobs("w1", 1, 60_000, false).await.unwrap();
    assert_eq!(again[0].id, mine[0].id);

    let message = "HTTP 404".to_string();
    let mut outcomes: Vec<(i64, JobOutcome)> = mine
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let o = match i % 3 {
                0 => JobOutcome {
                    state: JOB_DONE,
                    http_status: Some(200),
                    sighting_id: (i > 0).then_some(i as i64 + 1000),
                    ..JobOutcome::default()
                },
                1 => JobOutcome {
                    state: JOB_FAILED,
                    http_status: Some(404),
                    error_kind: Some("http"),
                    error: Some(&message),
                    ..JobOutcome::default()
                },
                _ => JobOutcome {
                    state: JOB_QUEUED,
                    not_before: 5_000,
                    error_kind: Some("timeout"),
                    ..JobOutcome::default()
                },
            };
            (j.id, o)
        })
        .collect();
    // w2's job is fenced off.
    outcomes.push((
        theirs[0].id,
        JobOutcome {
            state: JOB_DONE,
            ..JobOutcome::default()
        },
    ));
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.finish_jobs("w1", &outcomes).await.unwrap(), 449);
    tx.commit().await.unwrap();

    for (i, j) in mine.iter().enumerate() {
        let got = store.get_job(j.id).await.unwrap().unwrap();
        assert_eq!(got.lease_holder, None, "job {i}");
        match i % 3 {
            0 => {
                assert_eq!(got.state, JOB_DONE);
                assert_eq!(got.http_status, Some(200));
                assert_eq!((got.error_kind, got.error), (None, None));
                let want = if i == 0 { 77 } else { i as i64 + 1000 };
                assert_eq!(got.sighting_id, Some(want), "job {i}");
            }
            1 => {
                assert_eq!(got.state, JOB_FAILED);
                assert_eq!(got.http_status, Some(404));
                assert_eq!(got.error_kind.as_deref(), Some("http"));
                assert_eq!(got.error.as_deref(), Some("HTTP 404"));
                assert_eq!(got.sighting_id, None);
            }
            _ => {
                assert_eq!(got.state, JOB_QUEUED);
                assert_eq!((got.not_before, got.http_status), (5_000, None));
                assert_eq!(got.error_kind.as_deref(), Some("timeout"));
            }
        }
    }
    let other = store.get_job(theirs[0].id).await.unwrap().unwrap();
    assert_eq!(other.state, "leased");
    assert_eq!(other.lease_holder.as_deref(), Some("w2"));
}
