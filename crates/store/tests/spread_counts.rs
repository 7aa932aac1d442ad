//! Liveness checks counted per state over a window: the hourly tally
//! (migration 0051) plus the partial hours at the edges must equal a plain
//! COUNT(*) over the checks, after inserts, updates and the cascade from a
//! deleted sighting, on both backends.

use std::collections::BTreeMap;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use echotrace_store::{NewSighting, Store};

both_backends!(check_counts_equal_a_count_over_the_checks);

const HOUR: i64 = 3_600_000;

async fn direct(store: &Store, from: i64, to: i64) -> Vec<(String, i64)> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, COUNT(*) FROM liveness_checks WHERE checked_at >= $1 AND checked_at < $2 \
         GROUP BY state ORDER BY state",
    )
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows
}

async fn assert_windows(store: &Store, times: &[i64]) {
    let mut edges: Vec<i64> = vec![i64::MIN, 0, i64::MAX, -HOUR, 5 * HOUR];
    for t in times {
        edges.extend([t - HOUR, t - 1, *t, t + 1, t + HOUR, (t / HOUR) * HOUR]);
    }
    for &from in &edges {
        for &to in &edges {
            if from < to {
                assert_eq!(
                    store.check_counts(from, to).await.unwrap(),
                    direct(store, from, to).await,
                    "window [{from}, {to})"
                );
            }
        }
    }
}

async fn check_counts_equal_a_count_over_the_checks(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let mut ids = Vec::new();
    for (i, url) in ["https://a.example/1", "https://a.example/2"]
        .iter()
        .enumerate()
    {
        let (s, _) = tx
            .upsert_sighting(&NewSighting {
                source_id: None,
                url,
                url_canonical: url,
                url_sha256: &format!("{i:064x}"),
                host: "a.example",
                platform: "",
                parent_id: None,
                content_sha256: "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
                media_type: "image",
                seen_at: 0,
                expires_at: None,
                warc: None,
                implied_signals: 0,
            })
            .await
            .unwrap();
        ids.push(s.id);
    }
    tx.commit().await.unwrap();
    // Checks on hour boundaries, inside hours, and before 1970.
    let times = [
        -2 * HOUR - 5,
        -HOUR,
        -1,
        0,
        1,
        HOUR - 1,
        HOUR,
        HOUR + 17,
        3 * HOUR + 5,
        30 * HOUR,
    ];
    let states = ["live", "removed_gone", "inconclusive"];
    let mut seq = BTreeMap::new();
    for (k, t) in times.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            let n = seq.entry(*id).or_insert(0i64);
            *n += 1;
            sqlx::query(
                "INSERT INTO liveness_checks (sighting_id, seq, checked_at, state) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(*id)
            .bind(*n)
            .bind(*t)
            .bind(states[(k + j) % states.len()])
            .execute(store.pool())
            .await
            .unwrap();
        }
    }
    assert_windows(&store, &times).await;
    assert_eq!(
        store
            .check_counts(i64::MIN, i64::MAX)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>(),
        (times.len() * ids.len()) as i64
    );
    // An update moves a check to another hour and state.
    sqlx::query("UPDATE liveness_checks SET checked_at = $1, state = 'dns_fail' WHERE seq = 1")
        .bind(7 * HOUR + 3)
        .execute(store.pool())
        .await
        .unwrap();
    assert_windows(&store, &times).await;
    // Deleting a sighting deletes its checks (cascade); a state whose
    // checks are all gone is left out, as a COUNT(*) would.
    sqlx::query("DELETE FROM sightings WHERE id = $1")
        .bind(ids[0])
        .execute(store.pool())
        .await
        .unwrap();
    assert_windows(&store, &times).await;
    sqlx::query("DELETE FROM sightings")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store
        .check_counts(i64::MIN, i64::MAX)
        .await
        .unwrap()
        .is_empty());
}
