//! The copies' summary rows (`spread_copies`, migration 0052) that a
//! transparency report reads must equal what the report would compute from
//! the raw tables (sightings, sighting_matches, liveness, removals,
//! notices) after inserts, updates, re-checks, confirmed removals,
//! resurfacing, notices, (un)matching and cascading deletes, on both
//! backends. Writes go through the store's own write paths where it has
//! them (sightings, matches, enrolment, leased checks, notices) and raw SQL
//! for the rest.

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use echotrace_store::{
    CheckWrite, CopyRow, LivenessRow, NewNotice, NewSighting, NewSightingMatch, RemovalRow, Store,
};
use sqlx::Row;

both_backends!(copy_summaries_equal_the_raw_tables);

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

/// What the report read per copy before the summary existed: the raw
/// tables joined, with `removed_at_end` over every removal episode.
async fn raw_copies(store: &Store, from: i64, to: i64) -> Vec<CopyRow> {
    let rows = sqlx::query(
        "SELECT s.id, substr(s.url_sha256, 1, 16) AS url_prefix, s.host, s.platform, \
         s.media_type, s.first_seen_at, s.last_seen_at, \
         (SELECT MIN(m.content_id) FROM sighting_matches m WHERE m.sighting_id = s.id) \
           AS content_id, \
         l.status, l.last_live_at AS l_last_live_at, l.checks, \
         r.episode, r.last_live_at AS r_last_live_at, r.first_removed_at, r.confirmed_at, \
         r.removed_state, r.resurfaced_at, \
         (SELECT MIN(n.sent_at) FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id \
           WHERE ns.sighting_id = s.id) AS first_notice_at, \
         (SELECT MAX(x.confirmed_at) FROM removals x WHERE x.sighting_id = s.id \
           AND x.confirmed_at < $2 AND (x.resurfaced_at IS NULL OR x.resurfaced_at >= $2)) \
           AS removed_at_end \
         FROM sightings s \
         LEFT JOIN liveness l ON l.sighting_id = s.id \
         LEFT JOIN removals r ON r.sighting_id = s.id AND r.episode = 1 \
         WHERE s.matched = 1 AND s.first_seen_at >= $1 AND s.first_seen_at < $2 ORDER BY s.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let id: i64 = r.get("id");
            let episode: Option<i64> = r.get("episode");
            CopyRow {
                sighting_id: id,
                url_prefix: r.get("url_prefix"),
                content_id: r.get("content_id"),
                host: r.get("host"),
                platform: r.get("platform"),
                media_type: r.get("media_type"),
                first_seen_at: r.get("first_seen_at"),
                last_seen_at: r.get("last_seen_at"),
                status: r.get("status"),
                live_last_live_at: r.get("l_last_live_at"),
                checks: r.get::<Option<i64>, _>("checks").unwrap_or(0),
                removal: episode.map(|episode| RemovalRow {
                    sighting_id: id,
                    episode,
                    last_live_at: r.get("r_last_live_at"),
                    first_removed_at: r.get("first_removed_at"),
                    confirmed_at: r.get("confirmed_at"),
                    removed_state: r.get("removed_state"),
                    resurfaced_at: r.get("resurfaced_at"),
                }),
                first_notice_at: r.get("first_notice_at"),
                removed_at_end: r.get("removed_at_end"),
            }
        })
        .collect()
}

/// The report's read of the window, page by page as `report::build` does.
async fn summary_copies(store: &Store, from: i64, to: i64, page: i64) -> Vec<CopyRow> {
    let Some((lo, hi)) = store.copy_id_range(from, to).await.unwrap() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut after = lo - 1;
    while after < hi {
        let upper = (after + page).min(hi);
        out.extend(
            store
                .copy_rows_page(from, to, after, upper, page)
                .await
                .unwrap(),
        );
        after = upper;
    }
    out
}

/// Rows in one of (summary, rows rebuilt from the raw tables by the
/// migration's back-fill view) and not the other, every column compared.
async fn differing_rows(store: &Store) -> i64 {
    const COLUMNS: &str = "sighting_id, first_seen_at, last_seen_at, url_prefix, host, \
        platform, media_type, content_id, status, live_last_live_at, checks, r_last_live_at, \
        first_removed_at, confirmed_at, removed_state, resurfaced_at, later_episodes, \
        first_notice_at";
    let mut n = 0;
    for (a, b) in [
        ("spread_copies", "spread_copies_source"),
        ("spread_copies_source", "spread_copies"),
    ] {
        let (k,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM (SELECT {COLUMNS} FROM {a} EXCEPT SELECT {COLUMNS} FROM {b}) d"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap();
        n += k;
    }
    n
}

async fn assert_equal(store: &Store, step: &str) {
    assert_eq!(
        differing_rows(store).await,
        0,
        "{step}: summary vs raw tables"
    );
    let mut edges = vec![i64::MIN, 0, T0, T0 + 1, i64::MAX];
    for h in [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 20, 30] {
        edges.extend([T0 + h * HOUR - 1, T0 + h * HOUR, T0 + h * HOUR + 1]);
    }
    for &from in &[i64::MIN, T0, T0 + 1, T0 + HOUR + 1] {
        for &to in &edges {
            if from < to {
                let raw = raw_copies(store, from, to).await;
                assert_eq!(
                    summary_copies(store, from, to, 50_000).await,
                    raw,
                    "{step}: window [{from}, {to})"
                );
                assert_eq!(
                    summary_copies(store, from, to, 1).await,
                    raw,
                    "{step}: window [{from}, {to}), one id per page"
                );
            }
        }
    }
}

/// A stand-in for the URL's SHA-256 (FNV-1a, hex, 64 digits).
fn url_sha(url: &str) -> String {
    let h = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}{:048x}", 0)
}

async fn sighting(store: &Store, url: &str, host: &str, platform: &str, seen_at: i64) -> i64 {
    let mut tx = store.write().await.unwrap();
    let (s, _) = tx
        .upsert_sighting(&NewSighting {
            source_id: None,
            url,
            url_canonical: url,
            url_sha256: &url_sha(url),
            host,
            platform,
            parent_id: None,
            content_sha256: "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
            media_type: "image",
            seen_at,
            expires_at: None,
            warc: None,
            implied_signals: 0,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    s.id
}

async fn matched(store: &Store, id: i64, content_id: i64) {
    let mut tx = store.write().await.unwrap();
    tx.insert_sighting_match(&NewSightingMatch {
        sighting_id: id,
        content_id,
        bank_id: 1,
        signal_type: "pdq",
        match_id: None,
        distance: Some(3),
        similarity: None,
        channel: "plain",
        found_by: "fetch",
    })
    .await
    .unwrap();
    tx.mark_sighting_matched(id, None).await.unwrap();
    tx.commit().await.unwrap();
}

/// Lease the copy's due check and apply what `outcome` makes of it, through
/// the checker's write path.
async fn check(
    store: &Store,
    clock: &mut i64,
    id: i64,
    outcome: impl FnOnce(&LivenessRow) -> CheckWrite,
) {
    *clock += 10;
    let due = store
        .lease_due_checks("test", i64::MAX / 4, *clock, 5, 100)
        .await
        .unwrap();
    let l = &due
        .iter()
        .find(|d| d.liveness.sighting_id == id)
        .expect("the copy's check is due")
        .liveness;
    let w = outcome(l);
    let mut tx = store.write().await.unwrap();
    assert!(tx.apply_check(&w).await.unwrap());
    tx.commit().await.unwrap();
}

fn write(l: &LivenessRow, at: i64, state: &str, status: &str) -> CheckWrite {
    let live = state == "live";
    CheckWrite {
        sighting_id: l.sighting_id,
        holder: "test".into(),
        expected_checks: l.checks,
        checked_at: at,
        state: state.into(),
        http_status: Some(if live { 200 } else { 404 }),
        final_url: String::new(),
        served_sha256: String::new(),
        detail: String::new(),
        via: "clearnet".into(),
        warc: None,
        status: status.into(),
        removed_streak: if live { 0 } else { l.removed_streak + 1 },
        last_live_at: if live { at } else { l.last_live_at },
        first_removed_at: if live {
            None
        } else {
            l.first_removed_at.or(Some(at))
        },
        removals: l.removals,
        resurfaced: l.resurfaced,
        anchor_at: l.anchor_at,
        next_check_at: Some(at + HOUR),
        confirmed_removal: None,
        resurfaced_episode: None,
    }
}

fn confirm(l: &LivenessRow, at: i64) -> CheckWrite {
    let mut w = write(l, at, "removed_gone", "removed");
    w.removals = l.removals + 1;
    w.confirmed_removal = Some(RemovalRow {
        sighting_id: l.sighting_id,
        episode: w.removals,
        last_live_at: l.last_live_at,
        first_removed_at: l.first_removed_at.unwrap_or(at),
        confirmed_at: at,
        removed_state: "removed_gone".into(),
        resurfaced_at: None,
    });
    w
}

async fn exec(store: &Store, sql: &str, id: i64) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn copy_summaries_equal_the_raw_tables(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut clock = 0;
    // Three matched copies and one unmatched sighting.
    let a = sighting(&store, "https://a.example/1", "a.example", "Files", T0).await;
    let b = sighting(&store, "https://b.example/2", "b.example", "", T0 + HOUR).await;
    let c = sighting(
        &store,
        "https://c.example/3",
        "c.example",
        "",
        T0 + 2 * HOUR,
    )
    .await;
    let d = sighting(
        &store,
        "https://d.example/4",
        "d.example",
        "Video",
        T0 + 3 * HOUR,
    )
    .await;
    matched(&store, a, 5).await;
    matched(&store, b, 7).await;
    matched(&store, d, 9).await;
    assert_equal(&store, "sightings and matches").await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM spread_copies")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 3, "one summary row per matched sighting");

    // Enrolment, then checks: live, removed, confirmed (episode 1).
    assert_eq!(store.enroll_liveness(HOUR, 100).await.unwrap(), 3);
    assert_equal(&store, "enrolled").await;
    check(&store, &mut clock, a, |l| {
        write(l, T0 + HOUR, "live", "live")
    })
    .await;
    check(&store, &mut clock, b, |l| {
        write(l, T0 + 2 * HOUR, "live", "live")
    })
    .await;
    assert_equal(&store, "first checks").await;
    check(&store, &mut clock, a, |l| {
        write(l, T0 + 2 * HOUR, "removed_gone", "removal_pending")
    })
    .await;
    assert_equal(&store, "a removed check").await;
    check(&store, &mut clock, a, |l| confirm(l, T0 + 3 * HOUR)).await;
    check(&store, &mut clock, d, |l| {
        write(l, T0 + 4 * HOUR, "removed_gone", "removal_pending")
    })
    .await;
    check(&store, &mut clock, d, |l| confirm(l, T0 + 5 * HOUR)).await;
    assert_equal(&store, "removals confirmed").await;

    // Resurfacing, then a second removal episode.
    check(&store, &mut clock, a, |l| {
        let mut w = write(l, T0 + 6 * HOUR, "live", "live");
        w.resurfaced = l.resurfaced + 1;
        w.resurfaced_episode = Some(1);
        w
    })
    .await;
    assert_equal(&store, "resurfaced").await;
    check(&store, &mut clock, a, |l| {
        write(l, T0 + 7 * HOUR, "removed_gone", "removal_pending")
    })
    .await;
    check(&store, &mut clock, a, |l| confirm(l, T0 + 8 * HOUR)).await;
    assert_equal(&store, "second episode").await;
    // A lease alone changes nothing the report reads.
    store
        .lease_due_checks("other", i64::MAX / 4, clock + 10, 5, 100)
        .await
        .unwrap();
    assert_equal(&store, "leased").await;

    // Notices: insert, an earlier one, a changed sent_at, an unlinked copy.
    let mut tx = store.write().await.unwrap();
    let notice = |sent_at| NewNotice {
        platform: "Files",
        channel: "email",
        reference: "r",
        sent_at,
        note: "",
        body: "",
        created_by: "test",
    };
    let n1 = tx
        .insert_notice(&notice(T0 + 2 * HOUR), &[a, b])
        .await
        .unwrap();
    let n2 = tx
        .insert_notice(&notice(T0 + 4 * HOUR), &[b, d])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_equal(&store, "notices").await;
    exec(
        &store,
        "UPDATE notices SET sent_at = sent_at + 10 * 3600000 WHERE id = $1",
        n1.id,
    )
    .await;
    assert_equal(&store, "notice re-dated").await;
    exec(
        &store,
        "DELETE FROM notice_sightings WHERE sighting_id = $1",
        d,
    )
    .await;
    assert_equal(&store, "notice unlinked").await;

    // Re-seen, renamed platform, a lower item matched and unmatched again.
    sighting(
        &store,
        "https://b.example/2",
        "b.example",
        "",
        T0 + 9 * HOUR,
    )
    .await;
    exec(
        &store,
        "UPDATE sightings SET platform = 'Paste' WHERE id = $1",
        b,
    )
    .await;
    assert_equal(&store, "re-seen").await;
    matched(&store, b, 3).await;
    assert_equal(&store, "lower item").await;
    exec(
        &store,
        "DELETE FROM sighting_matches WHERE sighting_id = $1 AND content_id = 3",
        b,
    )
    .await;
    exec(
        &store,
        "UPDATE sighting_matches SET content_id = 11 WHERE sighting_id = $1",
        d,
    )
    .await;
    assert_equal(&store, "match removed and changed").await;

    // Retro-hunt: an unmatched sighting becomes a copy; a copy stops being one.
    matched(&store, c, 2).await;
    assert_equal(&store, "retro-hunt").await;
    exec(&store, "UPDATE sightings SET matched = 0 WHERE id = $1", d).await;
    assert_equal(&store, "unmatched").await;
    exec(&store, "UPDATE sightings SET matched = 1 WHERE id = $1", d).await;
    assert_equal(&store, "matched again").await;

    // Raw edits and deletes of the liveness tables.
    exec(
        &store,
        "UPDATE removals SET resurfaced_at = NULL WHERE sighting_id = $1",
        a,
    )
    .await;
    assert_equal(&store, "removal edited").await;
    exec(
        &store,
        "DELETE FROM removals WHERE sighting_id = $1 AND episode = 1",
        a,
    )
    .await;
    assert_equal(&store, "episode 1 deleted").await;
    exec(&store, "DELETE FROM liveness WHERE sighting_id = $1", b).await;
    assert_equal(&store, "liveness deleted").await;

    // Cascades: a deleted notice, then deleted sightings.
    exec(&store, "DELETE FROM notices WHERE id = $1", n2.id).await;
    assert_equal(&store, "notice deleted").await;
    exec(&store, "DELETE FROM sightings WHERE id = $1", a).await;
    assert_equal(&store, "sighting deleted").await;
    sqlx::query("DELETE FROM sightings")
        .execute(store.pool())
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM spread_copies")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "summary rows go with their sightings");
}
