//! Leases and the sighting model, on both backends.

use std::time::Duration;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use echotrace_store::{
    split_implied_signals, NewSighting, NewSightingMatch, NewSource, SightingQuery, Store,
    StoreError, WarcRef,
};

both_backends!(
    lease_is_exclusive_renewable_and_expires,
    lease_fences_commits_after_takeover,
    sightings_dedup_match_and_cluster,
    expired_unmatched_sightings_are_swept,
    bulk_upsert_moves_last_seen_forward_once,
    bulk_upsert_mixes_new_and_known_rows_in_one_statement,
    legacy_signal_rows_fold_into_their_sighting,
    implied_signals_are_read_back_in_written_order,
    sighting_keys_are_digests_and_find_their_url,
);

async fn lease_is_exclusive_renewable_and_expires(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    // Long enough that the "still held" checks below cannot outlive it on a
    // loaded machine (300 ms could); the sleep outlives it for sure.
    let ttl = Duration::from_millis(1000);
    let a = store.try_lease("job", "a", ttl).await.unwrap();
    assert_eq!(a, Some(1));
    // Held: b cannot take it; a renews at the same epoch.
    assert_eq!(store.try_lease("job", "b", ttl).await.unwrap(), None);
    assert_eq!(store.try_lease("job", "a", ttl).await.unwrap(), Some(1));
    // Other names are independent.
    assert_eq!(store.try_lease("other", "b", ttl).await.unwrap(), Some(1));
    // Expiry: b takes over with a new epoch, and a is then refused.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(store.try_lease("job", "b", ttl).await.unwrap(), Some(2));
    assert_eq!(store.try_lease("job", "a", ttl).await.unwrap(), None);
    let row = store.get_lease("job").await.unwrap().unwrap();
    assert_eq!((row.holder.as_str(), row.epoch), ("b", 2));
    // Release: a takes it at once.
    store.release_lease("job", "b").await.unwrap();
    assert_eq!(store.try_lease("job", "a", ttl).await.unwrap(), Some(3));
    // Releasing someone else's lease does nothing.
    store.release_lease("job", "b").await.unwrap();
    assert_eq!(store.try_lease("job", "b", ttl).await.unwrap(), None);
}

async fn lease_fences_commits_after_takeover(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let ttl = Duration::from_millis(1000);
    let epoch = store.try_lease("fetch:x", "a", ttl).await.unwrap().unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(tx.holds_lease("fetch:x", "a", epoch).await.unwrap());
    tx.commit().await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let b = store.try_lease("fetch:x", "b", ttl).await.unwrap().unwrap();
    assert!(b > epoch);
    let mut tx = store.write().await.unwrap();
    assert!(!tx.holds_lease("fetch:x", "a", epoch).await.unwrap());
    assert!(tx.holds_lease("fetch:x", "b", b).await.unwrap());
}

/// A digest as sightings store them (64 lowercase hex digits) for a short
/// test name: the name itself when it is one, else the name's bytes in hex,
/// padded with zeros (distinct names give distinct digests). Leaked: a
/// test's handful of short strings.
fn digest(name: &str) -> &'static str {
    if name.is_empty() || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Box::leak(name.to_string().into_boxed_str());
    }
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    Box::leak(format!("{hex:0<64}").into_boxed_str())
}

fn sighting<'a>(url: &'a str, sha: &'a str, content: &'a str, seen_at: i64) -> NewSighting<'a> {
    let (sha, content) = (digest(sha), digest(content));
    NewSighting {
        source_id: None,
        url,
        url_canonical: url,
        url_sha256: sha,
        host: "files.example",
        platform: "example-locker",
        parent_id: None,
        content_sha256: content,
        media_type: "image",
        seen_at,
        expires_at: Some(seen_at + 1000),
        warc: None,
        implied_signals: 0,
    }
}

async fn sightings_dedup_match_and_cluster(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let src = tx
        .insert_source(&NewSource {
            name: "demo-feed",
            kind: "feed",
            config: r#"{"version":1}"#,
            enabled: true,
            created_by: "test",
        })
        .await
        .unwrap();
    let mut page = sighting("https://files.example/p", "u1", "", 100);
    page.source_id = Some(src.id);
    page.media_type = "html";
    let (page, new) = tx.upsert_sighting(&page).await.unwrap();
    assert!(new);
    let mut item = sighting("https://files.example/f.jpg", "u2", "c1", 110);
    item.parent_id = Some(page.id);
    item.source_id = Some(src.id);
    let (s1, new) = tx.upsert_sighting(&item).await.unwrap();
    assert!(new);
    tx.insert_sighting_signals(s1.id, &[("pdq", "ab"), ("sha256", "c1")])
        .await
        .unwrap();
    // Seen again: same row, last_seen_at moves, first_seen_at stays.
    let again = sighting("https://files.example/f.jpg", "u2", "c1", 200);
    let (s1b, new) = tx.upsert_sighting(&again).await.unwrap();
    assert!(!new);
    assert_eq!(s1b.id, s1.id);
    assert_eq!((s1b.first_seen_at, s1b.last_seen_at), (110, 200));
    // Other bytes at the same URL are another sighting.
    let (s2, new) = tx
        .upsert_sighting(&sighting("https://files.example/f.jpg", "u2", "c2", 300))
        .await
        .unwrap();
    assert!(new);
    assert_ne!(s2.id, s1.id);
    let m = NewSightingMatch {
        sighting_id: s1.id,
        content_id: 42,
        bank_id: 7,
        signal_type: "pdq",
        match_id: None,
        distance: Some(4),
        similarity: None,
        channel: "plain",
        found_by: "fetch",
    };
    assert!(tx.insert_sighting_match(&m).await.unwrap());
    assert!(!tx.insert_sighting_match(&m).await.unwrap());
    let m2 = NewSightingMatch {
        sighting_id: s2.id,
        signal_type: "text_minhash",
        distance: None,
        similarity: Some(0.875),
        found_by: "retro_hunt",
        ..m.clone()
    };
    assert!(tx.insert_sighting_match(&m2).await.unwrap());
    tx.mark_sighting_matched(s1.id, None).await.unwrap();
    let warc = WarcRef {
        file: "echotrace-0001.warc.gz".into(),
        offset: 512,
        length: 2048,
        record_id: "<urn:uuid:00000000-0000-0000-0000-000000000001>".into(),
    };
    tx.set_sighting_warc(s1.id, &warc).await.unwrap();
    tx.commit().await.unwrap();

    let s1 = store.get_sighting(s1.id).await.unwrap().unwrap();
    assert!(s1.matched);
    assert_eq!(s1.expires_at, None);
    assert_eq!(s1.parent_id, Some(page.id));
    assert_eq!(s1.warc, Some(warc));
    let cluster = store.cluster_matches(42).await.unwrap();
    assert_eq!(cluster.len(), 2);
    assert_eq!(cluster[1].similarity, Some(0.875));
    assert_eq!(cluster[1].found_by, "retro_hunt");
    let in_cluster = store
        .list_sightings(&SightingQuery {
            content_id: Some(42),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        in_cluster.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![s2.id, s1.id]
    );
    let by_source = store
        .list_sightings(&SightingQuery {
            source_id: Some(src.id),
            matched: Some(false),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_source.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![page.id]
    );
    let window = store
        .list_sightings(&SightingQuery {
            host: Some("files.example".into()),
            seen_from: Some(105),
            seen_to: Some(301),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 2);
    assert_eq!(
        store.sightings_with_signal("pdq", "ab").await.unwrap(),
        vec![s1.id]
    );
    let page1 = store.sighting_signals_page("pdq", 0, 10).await.unwrap();
    assert_eq!(page1.len(), 1);
    assert_eq!(store.sighting_signals(s1.id).await.unwrap().len(), 2);
    // Deleting the source keeps the sightings.
    let mut tx = store.write().await.unwrap();
    tx.delete_source(src.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.get_sighting(s1.id).await.unwrap().unwrap().source_id,
        None
    );
    assert!(store.list_sources().await.unwrap().is_empty());
}

async fn expired_unmatched_sightings_are_swept(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let (parent, _) = tx
        .upsert_sighting(&sighting("https://a.example/", "p", "", 10))
        .await
        .unwrap();
    let mut child = sighting("https://a.example/x.png", "c", "x", 10);
    child.parent_id = Some(parent.id);
    let (child, _) = tx.upsert_sighting(&child).await.unwrap();
    tx.insert_sighting_signals(parent.id, &[("url_sha256", "p")])
        .await
        .unwrap();
    let (kept, _) = tx
        .upsert_sighting(&sighting("https://a.example/y.png", "k", "y", 10))
        .await
        .unwrap();
    tx.mark_sighting_matched(kept.id, Some(5)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    // Not yet expired.
    assert_eq!(tx.delete_expired_sightings(500, 100).await.unwrap(), 0);
    assert_eq!(tx.delete_expired_sightings(5000, 100).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(store.get_sighting(parent.id).await.unwrap().is_none());
    assert!(store.get_sighting(child.id).await.unwrap().is_none());
    let kept = store.get_sighting(kept.id).await.unwrap().unwrap();
    assert_eq!(kept.submission_id, Some(5));
}

/// Sightings recorded in bulk and seen again in a later batch keep their
/// rows; `last_seen_at` moves to the latest time of the batch (several
/// sightings of one row included) and never back. More rows than one
/// statement takes (400).
async fn bulk_upsert_moves_last_seen_forward_once(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let urls: Vec<(String, String)> = (0..450)
        .map(|i| (format!("https://files.example/b{i}"), format!("b{i}")))
        .collect();
    let first: Vec<(NewSighting, Option<&str>)> = urls
        .iter()
        .map(|(u, h)| (sighting(u, h, "", 1_000), None))
        .collect();
    let mut tx = store.write().await.unwrap();
    let made = tx.upsert_sightings_bulk(&first).await.unwrap();
    tx.commit().await.unwrap();
    assert!(made.iter().all(|u| u.is_new));

    // Each row seen twice more (at 2,000 + i and at 1,500), one seen only
    // earlier than before (500), and a new one.
    let mut again: Vec<(NewSighting, Option<&str>)> = Vec::new();
    for (i, (u, h)) in urls.iter().enumerate().skip(1) {
        again.push((sighting(u, h, "", 2_000 + i as i64), None));
        again.push((sighting(u, h, "", 1_500), None));
    }
    again.push((sighting(&urls[0].0, &urls[0].1, "", 500), None));
    again.push((
        sighting("https://files.example/new", "new", "", 3_000),
        None,
    ));
    let mut tx = store.write().await.unwrap();
    let got = tx.upsert_sightings_bulk(&again).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(got.len(), again.len());
    let new_one = got.last().unwrap();
    assert!(new_one.is_new);
    assert!(got[..got.len() - 1].iter().all(|u| !u.is_new));
    for (i, m) in made.iter().enumerate() {
        let row = store.get_sighting(m.id).await.unwrap().unwrap();
        let want = if i == 0 { 1_000 } else { 2_000 + i as i64 };
        assert_eq!(
            (row.first_seen_at, row.last_seen_at),
            (1_000, want),
            "row {i}"
        );
        if i > 0 {
            assert_eq!(got[2 * (i - 1)].id, m.id);
            assert_eq!(got[2 * (i - 1) + 1].id, m.id);
        }
    }
    let row = store.get_sighting(new_one.id).await.unwrap().unwrap();
    assert_eq!((row.first_seen_at, row.last_seen_at), (3_000, 3_000));
}

/// New and already recorded keys interleaved in one statement: the known
/// ones keep their rows (and their match), the new ones get fresh rows, and
/// a key given twice gets one row, new only the first time.
async fn bulk_upsert_mixes_new_and_known_rows_in_one_statement(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let known: Vec<(String, String)> = (0..5)
        .map(|i| (format!("https://files.example/k{i}"), format!("k{i}")))
        .collect();
    let first: Vec<(NewSighting, Option<&str>)> = known
        .iter()
        .map(|(u, h)| (sighting(u, h, "", 1_000), None))
        .collect();
    let mut tx = store.write().await.unwrap();
    let made = tx.upsert_sightings_bulk(&first).await.unwrap();
    tx.mark_sighting_matched(made[3].id, Some(9)).await.unwrap();
    tx.commit().await.unwrap();

    let fresh: Vec<(String, String)> = (0..4)
        .map(|i| (format!("https://files.example/n{i}"), format!("n{i}")))
        .collect();
    let batch: Vec<(NewSighting, Option<&str>)> = vec![
        (sighting(&fresh[0].0, &fresh[0].1, "", 2_000), None),
        (sighting(&known[1].0, &known[1].1, "", 2_000), None),
        (sighting(&fresh[1].0, &fresh[1].1, "", 2_000), None),
        (sighting(&known[3].0, &known[3].1, "", 2_000), None),
        (sighting(&fresh[2].0, &fresh[2].1, "", 2_000), None),
        (sighting(&fresh[0].0, &fresh[0].1, "", 2_100), None),
        (sighting(&fresh[3].0, &fresh[3].1, "", 2_000), None),
    ];
    let mut tx = store.write().await.unwrap();
    let got = tx.upsert_sightings_bulk(&batch).await.unwrap();
    tx.commit().await.unwrap();
    let is_new: Vec<bool> = got.iter().map(|u| u.is_new).collect();
    assert_eq!(is_new, [true, false, true, false, true, false, true]);
    assert_eq!(got[1].id, made[1].id);
    assert_eq!(
        (got[3].id, got[3].matched, got[3].submission_id),
        (made[3].id, true, Some(9))
    );
    assert!(!got[1].matched);
    assert_eq!(got[5].id, got[0].id);
    let mut new_ids: Vec<i64> = [0, 2, 4, 6].iter().map(|&i| got[i].id).collect();
    new_ids.sort_unstable();
    new_ids.dedup();
    assert_eq!(new_ids.len(), 4);
    let old_max = made.iter().map(|u| u.id).max().unwrap();
    assert!(new_ids.iter().all(|&id| id > old_max));
    for (i, (u, h)) in fresh.iter().enumerate() {
        let row = store
            .get_sighting(got[[0, 2, 4, 6][i]].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.url.as_str(), row.url_sha256.as_str()),
            (u.as_str(), digest(h))
        );
    }
    // The known rows moved forward; the key given twice, to its latest time.
    let row = store.get_sighting(made[1].id).await.unwrap().unwrap();
    assert_eq!((row.first_seen_at, row.last_seen_at), (1_000, 2_000));
    let row = store.get_sighting(got[0].id).await.unwrap().unwrap();
    assert_eq!((row.first_seen_at, row.last_seen_at), (2_000, 2_100));
}

/// The signals of a sighting as (type, value), in the order read back.
async fn signals_of(store: &Store, id: i64) -> Vec<(String, String)> {
    store
        .sighting_signals(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.signal_type, s.value))
        .collect()
}

/// Rows stored in `sighting_signals` for one sighting.
async fn stored_rows(store: &Store, id: i64) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sighting_signals WHERE sighting_id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

/// Migration 0063 on rows written before it: a sighting's trailing
/// `sha256`, `url` and `url_sha256` rows that repeat its columns become
/// `implied_signals` bits and are read back as before (same values, same
/// order); a row that does not repeat a column (another SHA-256) stays.
/// The migration's data statements are run again on rows written the old
/// way (implied bits 0, every signal a row).
async fn legacy_signal_rows_fold_into_their_sighting(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let content = "c".repeat(64);
    let mut tx = store.write().await.unwrap();
    let (msg, _) = tx
        .upsert_sighting(&sighting("https://t.me/c/1/2", "u1", &content, 1_000))
        .await
        .unwrap();
    let (link, _) = tx
        .upsert_sighting(&sighting("https://files.example/x", "u2", "", 1_000))
        .await
        .unwrap();
    let (odd, _) = tx
        .upsert_sighting(&sighting("https://files.example/y", "u3", &content, 1_000))
        .await
        .unwrap();
    let msg_rows = [
        ("text_minhash", "tmh"),
        ("md5", "m1"),
        ("sha256", content.as_str()),
        ("url", "https://t.me/c/1/2"),
        ("url_sha256", digest("u1")),
    ];
    tx.insert_sighting_signals(msg.id, &msg_rows).await.unwrap();
    let link_rows = [
        ("url", "https://files.example/x"),
        ("url_sha256", digest("u2")),
    ];
    tx.insert_sighting_signals(link.id, &link_rows)
        .await
        .unwrap();
    let odd_rows = [("md5", "m3"), ("sha256", "d3")];
    tx.insert_sighting_signals(odd.id, &odd_rows).await.unwrap();
    tx.commit().await.unwrap();

    let sql = include_str!("../migrations/sqlite/0063_implied_sighting_signals.sql");
    let data: Vec<&str> = sql
        .split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with("ALTER"))
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();
    assert_eq!(data.len(), 2, "{data:?}");
    for stmt in data {
        sqlx::query(stmt).execute(store.pool()).await.unwrap();
    }

    let owned = |rows: &[(&str, &str)]| -> Vec<(String, String)> {
        rows.iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(signals_of(&store, msg.id).await, owned(&msg_rows));
    assert_eq!(stored_rows(&store, msg.id).await, 2);
    assert_eq!(signals_of(&store, link.id).await, owned(&link_rows));
    assert_eq!(stored_rows(&store, link.id).await, 0);
    assert_eq!(signals_of(&store, odd.id).await, owned(&odd_rows));
    assert_eq!(stored_rows(&store, odd.id).await, 2);
    // Lookups and the retro-hunt's pages see the rebuilt signals.
    assert_eq!(
        store
            .sightings_with_signal("sha256", &content)
            .await
            .unwrap(),
        vec![msg.id]
    );
    assert_eq!(
        store
            .sightings_with_signal("url_sha256", digest("u2"))
            .await
            .unwrap(),
        vec![link.id]
    );
    let page = store.implied_signals_page("url", 0, 10).await.unwrap();
    let urls: Vec<(i64, &str)> = page
        .iter()
        .map(|r| (r.sighting_id, r.value.as_str()))
        .collect();
    assert_eq!(
        urls,
        vec![
            (msg.id, "https://t.me/c/1/2"),
            (link.id, "https://files.example/x")
        ]
    );
    assert!(store.any_sighting_digests().await.unwrap());
    // Content dedup reads the message's full list.
    let dedup = store
        .signals_of_content_sha(&content)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dedup, owned(&msg_rows));
}

/// URL, content SHA-256, signals as given, how many are stored.
type ImpliedCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, usize);

/// `split_implied_signals` takes only a suffix in rebuild order, so stored rows
/// followed by the rebuilt ones are always the signals as given.
async fn implied_signals_are_read_back_in_written_order(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let content = "e".repeat(64);
    let cases: Vec<ImpliedCase> = vec![
        // A message: three of five rows rebuilt.
        (
            "https://t.me/c/9/1",
            &content,
            vec![
                ("text_minhash", "t"),
                ("md5", "m"),
                ("sha256", &content),
                ("url", "https://t.me/c/9/1"),
                ("url_sha256", digest("k0")),
            ],
            2,
        ),
        // Out of rebuild order: only the tail that is in order goes.
        (
            "https://t.me/c/9/2",
            &content,
            vec![
                ("sha256", &content),
                ("url_sha256", digest("k1")),
                ("url", "https://t.me/c/9/2"),
            ],
            2,
        ),
        // A sha256 that is not the content's stays a row.
        (
            "https://t.me/c/9/3",
            &content,
            vec![
                ("md5", "m"),
                ("sha256", "other"),
                ("url", "https://t.me/c/9/3"),
                ("url_sha256", digest("k2")),
            ],
            2,
        ),
        // No bytes: no sha256 is rebuilt.
        (
            "https://t.me/c/9/4",
            "",
            vec![
                ("sha256", ""),
                ("url", "https://t.me/c/9/4"),
                ("url_sha256", digest("k3")),
            ],
            1,
        ),
    ];
    for (i, (url, content, signals, keep)) in cases.iter().enumerate() {
        let key = format!("k{i}");
        let s = sighting(url, &key, content, 1_000);
        let (bits, kept) = split_implied_signals(&s, signals);
        assert_eq!(kept, *keep, "case {i}");
        let mut tx = store.write().await.unwrap();
        let (row, _) = tx
            .upsert_sighting(&NewSighting {
                implied_signals: bits,
                ..s
            })
            .await
            .unwrap();
        tx.insert_sighting_signals(row.id, &signals[..kept])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let want: Vec<(String, String)> = signals
            .iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect();
        assert_eq!(signals_of(&store, row.id).await, want, "case {i}");
    }
}

/// The unique key is the two digests as bytes (migration 0064): a digest
/// that is not 64 lowercase hex digits is refused before it is stored (on
/// SQLite it would decode to NULL, and NULL keys never collide), a key is
/// stored once through either upsert, and the URL lookup the key index
/// serves by range finds every sighting of the URL, with or without bytes,
/// and none of the URLs next to it.
async fn sighting_keys_are_digests_and_find_their_url(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let a = "a1".repeat(32);
    let below = format!("{}a0", "a1".repeat(31));
    let above = format!("{}a2", "a1".repeat(31));
    let (ff, zeros) = ("ff".repeat(32), "00".repeat(32));
    let bad_url = [
        "u1".to_string(),
        a.to_uppercase(),
        format!("{a}00"),
        a[..62].to_string(),
    ];
    let mut tx = store.write().await.unwrap();
    for bad in &bad_url {
        let mut s = sighting("https://x.example/bad", &a, "", 1);
        s.url_sha256 = bad;
        let err = tx.upsert_sighting(&s).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
        let err = tx.upsert_sightings_bulk(&[(s, None)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
    let mut s = sighting("https://x.example/bad", &a, "", 1);
    s.content_sha256 = "c1";
    let err = tx.upsert_sightings_bulk(&[(s, None)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    tx.commit().await.unwrap();

    let mut ids = Vec::new();
    let mut tx = store.write().await.unwrap();
    for (url, sha, content) in [
        ("https://x.example/a", &a, ""),
        ("https://x.example/a", &a, ff.as_str()),
        ("https://x.example/below", &below, ff.as_str()),
        ("https://x.example/above", &above, ""),
        ("https://x.example/above", &above, zeros.as_str()),
    ] {
        let (row, new) = tx
            .upsert_sighting(&sighting(url, sha, content, 10))
            .await
            .unwrap();
        assert!(new, "{url} {content}");
        ids.push(row.id);
    }
    let got = tx
        .upsert_sightings_bulk(&[
            (sighting("https://x.example/a", &a, &zeros, 20), None),
            (sighting("https://x.example/a", &a, &ff, 20), None),
            (sighting("https://x.example/a", &a, "", 20), None),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(got[0].is_new);
    assert_eq!(
        got[1..]
            .iter()
            .map(|u| (u.id, u.is_new))
            .collect::<Vec<_>>(),
        vec![(ids[1], false), (ids[0], false)],
        "a key stored once, found again by the bulk upsert"
    );
    let mut tx = store.write().await.unwrap();
    let (again, new) = tx
        .upsert_sighting(&sighting("https://x.example/a", &a, &ff, 30))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((again.id, new), (ids[1], false));
    assert_eq!(
        store.sightings_at_url(&a, 10).await.unwrap(),
        vec![got[0].id, ids[1], ids[0]],
        "every sighting of the URL, newest first, and none of its neighbours"
    );
    assert_eq!(
        store.sightings_at_url(&above, 10).await.unwrap(),
        vec![ids[4], ids[3]]
    );
    assert_eq!(
        store.sightings_at_url(&a, 1).await.unwrap(),
        vec![got[0].id]
    );
    assert!(store
        .sightings_at_url(&"22".repeat(32), 10)
        .await
        .unwrap()
        .is_empty());
}
