//! Store tests. Every test body runs twice: on a fresh SQLite file and on a
//! fresh PostgreSQL schema (`$ECHOTRACE_TEST_PG_URL`; see `testing`).

use echotrace_store::testing::TestDb;
use echotrace_store::{
    now_ms, Backend, ExchangeRecordRow, MatchQuery, NewAudit, NewExchange, NewMatch, NewSubmission,
    Store, StoreError,
};

use echotrace_store::both_backends;

both_backends!(
    migrations_are_idempotent_and_backend_detected,
    banks_content_signals_round_trip,
    change_sequence_is_monotonic_and_tailable,
    change_writers_of_two_databases_do_not_wait_for_each_other,
    unique_violations_are_conflicts,
    submissions_matches_decisions,
    outbox_claim_is_exclusive,
    keys_users_webhooks_audit,
    rollback_on_drop,
    signals_are_found_by_value_through_the_value_index,
    exchange_records_filled_in_one_transaction_are_looked_up_by_key,
    a_second_fetch_does_not_wait_for_the_first_ones_statistics,
);

async fn migrations_are_idempotent_and_backend_detected(db: &TestDb) {
    let s1 = Store::open(&db.url).await.unwrap();
    let expected = if db.backend == "sqlite" {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(s1.backend(), expected);
    s1.close().await;
    // Re-opening runs the migrator again: nothing to apply, no error.
    let s2 = Store::open(&db.url).await.unwrap();
    assert!(s2.list_banks().await.unwrap().is_empty());
    assert_eq!(s2.max_change_id().await.unwrap(), 0);
}

async fn banks_content_signals_round_trip(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let bank = tx
        .insert_bank("tve-images", "block", "test bank", r#"{"pdq":20.0}"#)
        .await
        .unwrap();
    assert!(bank.enabled);
    let c = tx
        .insert_content(bank.id, true, r#"["a","b"]"#, "a note")
        .await
        .unwrap();
    let s1 = tx
        .insert_signal(c.id, bank.id, "pdq", &"ab".repeat(32))
        .await
        .unwrap();
    let s2 = tx
        .insert_signal(c.id, bank.id, "md5", &"cd".repeat(16))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let got = store.get_bank_by_name("tve-images").await.unwrap().unwrap();
    assert_eq!(got, bank);
    assert_eq!(got.thresholds, r#"{"pdq":20.0}"#);
    let content = store.get_content(c.id).await.unwrap().unwrap();
    assert_eq!(content.labels, r#"["a","b"]"#);
    assert_eq!(content.note, "a note");
    assert!(!content.quarantined);
    let sigs = store.signals_of_content(c.id).await.unwrap();
    assert_eq!(sigs, vec![s1.clone(), s2.clone()]);
    assert_eq!(store.all_signals_page(0, 10).await.unwrap().len(), 2);
    assert_eq!(store.all_signals_page(s1.id, 10).await.unwrap(), vec![s2]);

    // Quarantine and disable through update_content.
    let mut tx = store.write().await.unwrap();
    let mut next = content.clone();
    next.enabled = false;
    next.quarantined = true;
    next.quarantine_reason = Some("flood".into());
    next.quarantined_at = Some(now_ms());
    let updated = tx.update_content(&next).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!updated.enabled && updated.quarantined);
    assert_eq!(
        store
            .get_content(c.id)
            .await
            .unwrap()
            .unwrap()
            .quarantine_reason
            .as_deref(),
        Some("flood")
    );

    // Bank update and delete content.
    let mut tx = store.write().await.unwrap();
    let b2 = tx.update_bank(bank.id, false, "off", "{}").await.unwrap();
    assert!(!b2.enabled);
    tx.delete_content(c.id).await.unwrap();
    assert!(matches!(
        tx.delete_content(c.id).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    assert!(store.get_content(c.id).await.unwrap().is_none());
    assert!(store.signals_of_content(c.id).await.unwrap().is_empty());
    assert!(!store.get_bank(bank.id).await.unwrap().unwrap().enabled);
}

async fn change_sequence_is_monotonic_and_tailable(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut tx = store.write().await.unwrap();
        ids.push(tx.record_change("content", i, "upsert").await.unwrap());
        tx.commit().await.unwrap();
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(store.max_change_id().await.unwrap(), ids[4]);
    let tail = store.changes_after(ids[1], 100).await.unwrap();
    assert_eq!(
        tail.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[2..].to_vec()
    );
    assert_eq!(tail[0].entity, "content");
    assert_eq!(tail[0].entity_id, 2);
    // A rolled-back change never shows up.
    let mut tx = store.write().await.unwrap();
    tx.record_change("bank", 99, "upsert").await.unwrap();
    drop(tx);
    assert!(store.changes_after(ids[4], 100).await.unwrap().is_empty());

    // Concurrent writers: every committed change is seen exactly once by a
    // reader that tails in id order.
    let mut handles = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut tx = s.write().await.unwrap();
                tx.record_change("content", w * 100 + i, "upsert")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    let mut cursor = ids[4];
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.len() < 40 && std::time::Instant::now() < deadline {
        for c in store.changes_after(cursor, 7).await.unwrap() {
            cursor = c.id;
            seen.push(c.entity_id);
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    for c in store.changes_after(cursor, 100).await.unwrap() {
        seen.push(c.entity_id);
    }
    seen.sort_unstable();
    let mut want: Vec<i64> = (0..4)
        .flat_map(|w| (0..10).map(move |i| w * 100 + i))
        .collect();
    want.sort_unstable();
    assert_eq!(seen, want);
}

/// Two databases (on PostgreSQL: two schemas of one database, e.g. two
/// deployments or two tests) each keep their own change sequence, and a
/// writer of one never waits for a writer of the other. PostgreSQL's
/// advisory locks span the whole database, so a fixed lock key made every
/// change writer in it wait for every other.
async fn change_writers_of_two_databases_do_not_wait_for_each_other(db: &TestDb) {
    let other_db = if db.backend == "postgres" {
        TestDb::postgres()
            .await
            .unwrap()
            .expect("PostgreSQL configured")
    } else {
        TestDb::sqlite()
    };
    let a = Store::open(&db.url).await.unwrap();
    let b = Store::open(&other_db.url).await.unwrap();
    let mut held = a.write().await.unwrap();
    held.record_change("content", 1, "upsert").await.unwrap();
    // `held` keeps its change lock until it commits; b's change commits now.
    let other = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut tx = b.write().await?;
        let id = tx.record_change("content", 2, "upsert").await?;
        tx.commit().await.map(|()| id)
    })
    .await;
    let other_id = match other {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => panic!("the other database's change failed: {e}"),
        Err(_) => panic!("the other database's change waited for this one's transaction"),
    };
    held.commit().await.unwrap();
    let seen_a: Vec<i64> = a
        .changes_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.entity_id)
        .collect();
    let seen_b: Vec<(i64, i64)> = b
        .changes_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.id, c.entity_id))
        .collect();
    assert_eq!(seen_a, vec![1]);
    assert_eq!(seen_b, vec![(other_id, 2)]);
    other_db.cleanup().await.unwrap();
}

async fn unique_violations_are_conflicts(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    tx.insert_bank("dup", "block", "", "{}").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.write().await.unwrap();
    let err = tx.insert_bank("dup", "allow", "", "{}").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    drop(tx);
    let mut tx = store.write().await.unwrap();
    tx.insert_user("alice", "h", "admin").await.unwrap();
    assert!(matches!(
        tx.insert_user("alice", "h", "admin").await,
        Err(StoreError::Conflict(_))
    ));
}

async fn submissions_matches_decisions(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let bank = tx.insert_bank("b", "block", "", "{}").await.unwrap();
    let c = tx.insert_content(bank.id, true, "[]", "").await.unwrap();
    let (subs, match_ids) = tx.reserve_lookup_ids(1, 1).await.unwrap();
    let sub = subs[0];
    tx.insert_submissions_with_ids(&[(
        sub,
        NewSubmission {
            actor: "key:1",
            content_ref: Some("post-9"),
            url: Some("https://example.org/p/9"),
            uploader_id: None,
            signals_json: r#"[{"signal_type":"md5","value":"x"}]"#,
            match_count: 1,
        },
    )])
    .await
    .unwrap();
    let m = tx
        .insert_matches_with_ids(&[(
            match_ids[0],
            NewMatch {
                submission_id: sub,
                bank_id: bank.id,
                content_id: c.id,
                signal_id: None,
                signal_type: "text_minhash",
                matched_value: "v",
                query_value: "q",
                distance: None,
                similarity: Some(0.75),
                compared_similarity: Some(0.5),
                channel: "window",
                channel_detail: Some(r#"{"plain_distance":90}"#),
            },
        )])
        .await
        .unwrap()
        .pop()
        .unwrap();
    // The row returned is the row stored (it is built, not read back).
    assert_eq!(tx.get_match(m.id).await.unwrap().as_ref(), Some(&m));
    tx.commit().await.unwrap();
    assert_eq!(m.status, "pending");
    assert_eq!(m.similarity, Some(0.75));
    assert_eq!(m.channel, "window");
    assert_eq!(
        m.channel_detail.as_deref(),
        Some(r#"{"plain_distance":90}"#)
    );
    assert_eq!(m.distance, None);
    let s = store.get_submission(sub).await.unwrap().unwrap();
    assert_eq!(s.content_ref.as_deref(), Some("post-9"));
    assert_eq!(s.uploader_id, None);

    let mut tx = store.write().await.unwrap();
    let after = tx.set_match_status(m.id, "confirmed").await.unwrap();
    let d = tx
        .insert_decision(m.id, "confirm", "looks right", "user:rev", 123)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(after.status, "confirmed");
    assert_eq!(store.decisions_of_match(m.id).await.unwrap(), vec![d]);
    let q = MatchQuery {
        status: Some("confirmed".into()),
        limit: 10,
        ..MatchQuery::default()
    };
    assert_eq!(store.list_matches(&q).await.unwrap().len(), 1);
    let q = MatchQuery {
        status: Some("pending".into()),
        limit: 10,
        ..MatchQuery::default()
    };
    assert!(store.list_matches(&q).await.unwrap().is_empty());
    let q = MatchQuery {
        submission_id: Some(sub),
        bank_id: Some(bank.id),
        limit: 10,
        ..MatchQuery::default()
    };
    assert_eq!(store.list_matches(&q).await.unwrap()[0].id, m.id);
    // An invalid status is rejected by the CHECK constraint.
    let mut tx = store.write().await.unwrap();
    assert!(tx.set_match_status(m.id, "bogus").await.is_err());
}

async fn outbox_claim_is_exclusive(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let now = now_ms();
    let mut tx = store.write().await.unwrap();
    let id = tx.enqueue("match", "{}", now - 10).await.unwrap();
    let later = tx.enqueue("decision", "{}", now + 60_000).await.unwrap();
    tx.commit().await.unwrap();
    let due = store.due_outbox(now, 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    let row = &due[0];
    assert!(store
        .claim_outbox(id, row.next_attempt_at, now + 1000)
        .await
        .unwrap());
    // Second claim with the stale expectation loses.
    assert!(!store
        .claim_outbox(id, row.next_attempt_at, now + 1000)
        .await
        .unwrap());
    assert!(store.due_outbox(now, 10).await.unwrap().is_empty());
    store
        .mark_outbox_attempt_failed(id, 1, now + 5, "boom", None)
        .await
        .unwrap();
    let r = store.get_outbox(id).await.unwrap().unwrap();
    assert_eq!((r.attempts, r.last_error.as_deref()), (1, Some("boom")));
    store.mark_outbox_delivered(id, 2, now + 6).await.unwrap();
    let r = store.get_outbox(id).await.unwrap().unwrap();
    assert_eq!(r.delivered_at, Some(now + 6));
    assert_eq!(
        store
            .list_outbox(true, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![later]
    );
    assert_eq!(store.list_outbox(false, 10).await.unwrap().len(), 2);
}

async fn keys_users_webhooks_audit(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let k = tx.insert_api_key("ci", "matcher", "hash1").await.unwrap();
    let u = tx
        .insert_user("bob", "$argon2id$x", "reviewer")
        .await
        .unwrap();
    let w = tx
        .insert_webhook("https://hooks.example/x", "s3cret", r#"["match"]"#)
        .await
        .unwrap();
    tx.audit(&NewAudit {
        actor: "cli",
        action: "api_key.create",
        target: "api_key:1",
        before: None,
        after: Some(r#"{"name":"ci"}"#.into()),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.api_key_by_hash("hash1").await.unwrap(),
        Some(k.clone())
    );
    assert!(store.api_key_by_hash("nope").await.unwrap().is_none());
    let mut tx = store.write().await.unwrap();
    let r1 = tx.revoke_api_key(k.id).await.unwrap();
    let r2 = tx.revoke_api_key(k.id).await.unwrap();
    assert!(matches!(
        tx.revoke_api_key(9999).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    assert!(r1.revoked_at.is_some());
    assert_eq!(r1.revoked_at, r2.revoked_at, "revocation time is kept");
    assert_eq!(store.user_by_name("bob").await.unwrap(), Some(u));
    assert_eq!(store.list_webhooks().await.unwrap(), vec![w.clone()]);
    let audit = store.list_audit(None, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "cli");
    assert_eq!(audit[0].after_json.as_deref(), Some(r#"{"name":"ci"}"#));
    assert_eq!(audit[0].before_json, None);
    let mut tx = store.write().await.unwrap();
    tx.delete_webhook(w.id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.list_webhooks().await.unwrap().is_empty());
}

async fn rollback_on_drop(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    {
        let mut tx = store.write().await.unwrap();
        tx.insert_bank("ghost", "block", "", "{}").await.unwrap();
    }
    assert!(store.get_bank_by_name("ghost").await.unwrap().is_none());
    // The write lock was released: the next write proceeds.
    let mut tx = store.write().await.unwrap();
    tx.insert_bank("real", "block", "", "{}").await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.get_bank_by_name("real").await.unwrap().is_some());
}

#[test]
fn bad_urls_are_rejected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Store::open("mysql://localhost/x"))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidUrl(_)), "{err:?}");
}

/// Exact lookups by value (a feed's backing item) find the item for short
/// and long values and values sharing their first 16 characters, and on
/// SQLite go through the value-prefix index (migration 0062).
async fn signals_are_found_by_value_through_the_value_index(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let bank = tx.insert_bank("b", "block", "", "{}").await.unwrap();
    let a = "ab".repeat(32);
    let b = format!("{}{}", &a[..16], "cd".repeat(24)); // same first 16
    let long = "0123456789abcdef".repeat(512); // an 8 KiB value
    let mut ids = Vec::new();
    for v in [&a, &b, &long] {
        let c = tx.insert_content(bank.id, true, "[]", "").await.unwrap();
        tx.insert_signal(c.id, bank.id, "pdq", v).await.unwrap();
        ids.push(c.id);
    }
    for (v, id) in [&a, &b, &long].into_iter().zip(&ids) {
        let found = tx
            .active_content_with_signal(bank.id, "pdq", v)
            .await
            .unwrap();
        assert_eq!(found.map(|(cid, _)| cid), Some(*id));
    }
    let missing = format!("{}{}", &a[..16], "ef".repeat(24));
    assert!(tx
        .active_content_with_signal(bank.id, "pdq", &missing)
        .await
        .unwrap()
        .is_none());
    tx.commit().await.unwrap();
    if store.backend() == Backend::Sqlite {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT id FROM signals s WHERE s.signal_type = $1 AND {}",
            echotrace_store::signal_value_eq(Backend::Sqlite, "s.value", 2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind("pdq")
            .bind(a.as_str())
            .fetch_all(store.pool())
            .await
            .unwrap();
        let detail: Vec<String> = rows
            .iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap_or_default())
            .collect();
        assert!(
            detail
                .iter()
                .any(|d| d.contains("signals_type_prefix (signal_type=? AND <expr>=?)")),
            "plan: {detail:?}"
        );
    }
}

/// An exchange fetch fills `exchange_records` and reads every page's values
/// back by key in the same transaction. On PostgreSQL the table's
/// statistics are refreshed as it doubles, so the lookup of a list of
/// values probes the key instead of hashing every record of the exchange
/// (planned from an empty table's statistics, it did: a 200k-record fetch
/// spent half its time there).
async fn exchange_records_filled_in_one_transaction_are_looked_up_by_key(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut tx = store.write().await.unwrap();
    let bank = tx.insert_bank("x", "block", "", "{}").await.unwrap();
    let ex = tx
        .insert_exchange(&NewExchange {
            name: "x",
            api: "file",
            config: "{}",
            policy: "{}",
            credentials: None,
            write_back: false,
            enabled: true,
            live: false,
            poll_interval_ms: 3_600_000,
            bank_id: bank.id,
        })
        .await
        .unwrap();
    let value = |i: usize| format!("{i:064x}");
    for page in 0..3 {
        let rows = exchange_rows(ex.id, page * 10_000, 10_000);
        let refs: Vec<&ExchangeRecordRow> = rows.iter().collect();
        tx.insert_exchange_records(&refs).await.unwrap();
        // The next page's lookup: half of its values are already held.
        let wanted: Vec<String> = (0..500)
            .map(|k| value((page + 1) * 10_000 - 250 + k))
            .collect();
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let found = tx
            .exchange_records_by_values(&[ex.id], "pdq", &refs)
            .await
            .unwrap();
        assert_eq!(found.len(), 250, "page {page}");
    }
    tx.commit().await.unwrap();
    if store.backend() == Backend::Postgres {
        // The statistics were gathered inside the transaction, as the table
        // doubled (no autovacuum has had its turn yet), and count its rows:
        // the planner sees 30,000 records of this exchange, not the two an
        // unanalysed table is guessed to hold.
        let tuples: f32 = sqlx::query_scalar(
            "SELECT reltuples FROM pg_class WHERE oid = CAST('exchange_records' AS regclass)",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert!(tuples >= 20_000.0, "reltuples {tuples}");
    }
}

fn exchange_rows(exchange_id: i64, from: usize, n: usize) -> Vec<ExchangeRecordRow> {
    (from..from + n)
        .map(|i| ExchangeRecordRow {
            exchange_id,
            signal_type: "pdq".into(),
            value: format!("{i:064x}"),
            upstream_id: format!("u{i}"),
            meta: "{}".into(),
            upstream_created_at: None,
            upstream_updated_at: None,
            deleted: false,
            applied: true,
            content_id: None,
            local_state: String::new(),
            my_opinion: None,
            seen_gen: 1,
            updated_at: 0,
        })
        .collect()
}

/// Two processes fetch two exchanges at once on PostgreSQL. The first one's
/// statistics refresh holds its lock to the end of its transaction; the
/// second skips its own refresh instead of waiting for (or deadlocking
/// with) the first transaction.
async fn a_second_fetch_does_not_wait_for_the_first_ones_statistics(db: &TestDb) {
    let store = Store::open(&db.url).await.unwrap();
    let mut ids = Vec::new();
    let mut tx = store.write().await.unwrap();
    for name in ["a", "b"] {
        let bank = tx.insert_bank(name, "block", "", "{}").await.unwrap();
        let ex = tx
            .insert_exchange(&NewExchange {
                name,
                api: "file",
                config: "{}",
                policy: "{}",
                credentials: None,
                write_back: false,
                enabled: true,
                live: false,
                poll_interval_ms: 3_600_000,
                bank_id: bank.id,
            })
            .await
            .unwrap();
        ids.push(ex.id);
    }
    tx.commit().await.unwrap();
    if store.backend() == Backend::Sqlite {
        // One writer at a time: nothing runs concurrently to check.
        return;
    }
    let mut first = store.write().await.unwrap();
    let rows = exchange_rows(ids[0], 0, 10_000);
    first
        .insert_exchange_records(&rows.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    // The first transaction is still open, its refresh's lock held.
    let second = async {
        let mut tx = store.write().await.unwrap();
        let rows = exchange_rows(ids[1], 1_000_000, 20_000);
        tx.insert_exchange_records(&rows.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), second)
        .await
        .expect("the second fetch waited for the first transaction");
    first.commit().await.unwrap();
}

/// SQLite: a database this build creates has 8 KiB pages; one created with
/// SQLite's 4 KiB pages keeps them, migrates and takes writes as before.
#[tokio::test]
async fn sqlite_page_size_is_8k_for_new_databases_and_kept_for_old_ones() {
    async fn page_size(store: &Store) -> i64 {
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }
    let new = TestDb::sqlite();
    let store = Store::open(&new.url).await.unwrap();
    assert_eq!(page_size(&store).await, 8192);
    store.close().await;
    new.cleanup().await.unwrap();

    let old = TestDb::sqlite();
    let path = old.url.trim_start_matches("sqlite://").to_string();
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let store = Store::open(&old.url).await.unwrap();
    assert_eq!(page_size(&store).await, 4096);
    let mut tx = store.write().await.unwrap();
    tx.record_change("content", 1, "upsert").await.unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    old.cleanup().await.unwrap();
}
