//! Bulk import and batched lookup recording. Every test body runs on a
//! fresh SQLite file and on a fresh PostgreSQL schema at
//! `$ECHOTRACE_TEST_PG_URL` (see `echotrace_store::testing`).

use echotrace_engine::*;
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_store::testing::TestDb;

use echotrace_store::both_backends;

mod common;
use common::*;

both_backends!(
    import_writes_batches_visible_everywhere,
    import_rejects_bad_items_and_unknown_banks,
    concurrent_lookups_are_all_recorded,
    batch_lookup_records_every_item,
);

async fn bank(e: &Engine, name: &str) -> Bank {
    // Built from JSON so bank settings added later keep their defaults.
    let new: NewBank =
        serde_json::from_value(serde_json::json!({"name": name, "kind": "block"})).unwrap();
    e.create_bank(&admin(), new).await.unwrap()
}

fn items(range: std::ops::Range<u64>) -> impl Iterator<Item = ImportItem> {
    range.map(|i| ImportItem::new(&[pdq(hash(i))], vec![format!("set-{}", i % 3)], "dump").unwrap())
}

async fn look(e: &Engine, h: PdqHash) -> LookupResponse {
    e.lookup(
        &Actor::key(1),
        LookupRequest {
            signals: vec![pdq(h)],
            banks: None,
            context: SubmissionContext::default(),
        },
    )
    .await
    .unwrap()
}

async fn import_writes_batches_visible_everywhere(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let other = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "gifct-dump").await;
    let n = 2 * IMPORT_BATCH as u64 + 500;
    let report = e.import_signals(&admin(), b.id, items(0..n)).await.unwrap();
    assert_eq!(report.items, n);
    assert_eq!(report.signals, n);
    assert_eq!(report.batches, 3);
    let (first, last) = (
        report.first_content_id.unwrap(),
        report.last_content_id.unwrap(),
    );
    assert_eq!(
        last - first + 1,
        n as i64,
        "ids of one import are contiguous here"
    );

    // This process applied its own import before returning.
    let stats = e.index_stats().unwrap();
    assert_eq!(stats.pdq, n as usize);
    assert_eq!(stats.content, n as usize);

    // An imported hash and a near-duplicate of another one match, with labels.
    let r = look(&e, hash(7)).await;
    assert_eq!(r.matches.len(), 1, "{r:?}");
    assert_eq!(r.matches[0].distance, Some(0));
    assert_eq!(r.matches[0].labels, vec!["set-1".to_string()]);
    let r = look(&e, flip(hash(n - 1), 20)).await;
    assert_eq!(r.matches.len(), 1, "{r:?}");
    assert_eq!(r.matches[0].distance, Some(20));
    let item = e.get_content(r.matches[0].content_id).await.unwrap();
    assert_eq!(item.note, "dump");
    assert_eq!(item.signals.len(), 1);
    assert_eq!(item.signals[0].value, hash(n - 1).to_hex());

    // One audit entry per batch, not per row.
    let audit = e.audit_log(None, 1000).await.unwrap();
    let imports: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "content.import")
        .collect();
    assert_eq!(imports.len(), 3);
    let counted: u64 = imports
        .iter()
        .map(|a| a.after.as_ref().unwrap()["items"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, n);
    assert!(audit.iter().all(|a| a.action != "content.add"));

    // Another process picks the batches up from the change sequence.
    assert_eq!(other.index_stats().unwrap().pdq, 0);
    other.sync_changes().await.unwrap();
    assert_eq!(other.index_stats().unwrap().pdq, n as usize);
    assert_eq!(look(&other, hash(12_345)).await.matches.len(), 1);

    // Disabling an imported item works like any other item, everywhere.
    let id = r.matches[0].content_id;
    e.set_content_enabled(&admin(), id, false).await.unwrap();
    other.sync_changes().await.unwrap();
    assert!(look(&other, hash(n - 1)).await.matches.is_empty());

    // A restart loads everything from the store.
    let fresh = Engine::open(config(db)).await.unwrap();
    assert_eq!(fresh.index_stats().unwrap().pdq, n as usize);
    assert_eq!(look(&fresh, hash(3)).await.matches.len(), 1);
    assert!(look(&fresh, hash(n - 1)).await.matches.is_empty());

    // The write-only engine used by the CLI imports without loading.
    let writer = Engine::open_without_indexes(config(db)).await.unwrap();
    assert_eq!(writer.index_stats().unwrap().pdq, 0);
    let r2 = import_into_store(writer.store(), &admin(), b.id, items(n..n + 10), 4, |_| {})
        .await
        .unwrap();
    assert_eq!((r2.items, r2.batches), (10, 3));
    fresh.sync_changes().await.unwrap();
    assert_eq!(fresh.index_stats().unwrap().pdq, n as usize + 10);
    assert_eq!(look(&fresh, hash(n + 9)).await.matches.len(), 1);
}

async fn import_rejects_bad_items_and_unknown_banks(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let bad = SignalValue {
        signal_type: SignalType::Pdq,
        value: "1234".into(),
    };
    let err = ImportItem::new(&[bad], vec![], "").unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("pdq"), "{err}");
    assert!(ImportItem::new(&[], vec![], "").is_err());
    let long_label = "x".repeat(101);
    assert!(ImportItem::new(&[pdq(hash(1))], vec![long_label], "").is_err());
    // Upper-case hex is canonicalised like any other write.
    let upper = SignalValue {
        signal_type: SignalType::Pdq,
        value: hash(1).to_hex().to_uppercase(),
    };
    let item = ImportItem::new(&[upper], vec![], "").unwrap();
    assert_eq!(item.signals()[0].value, hash(1).to_hex());

    let err = e
        .import_signals(&admin(), 9_999, items(0..3))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 404);
    assert_eq!(e.index_stats().unwrap().content, 0);
}

async fn concurrent_lookups_are_all_recorded(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "b").await;
    e.import_signals(&admin(), b.id, items(0..100))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            // Even i: a near-duplicate of a banked hash; odd: a miss.
            let h = if i % 2 == 0 {
                flip(hash(i), 5)
            } else {
                hash(1_000_000 + i)
            };
            look(&e, h).await
        }));
    }
    let mut responses = Vec::new();
    for t in tasks {
        responses.push(t.await.unwrap());
    }
    let mut ids: Vec<_> = responses.iter().map(|r| r.submission_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64, "every lookup got its own submission");
    let matched = responses.iter().filter(|r| r.matches.len() == 1).count();
    assert_eq!(matched, 32);
    // Every acknowledged match is in the store, with its audit entry and
    // outbox event, whichever transaction carried it.
    for r in &responses {
        for m in &r.matches {
            let stored = e.get_match(m.id).await.unwrap();
            assert_eq!(Some(stored.submission_id), r.submission_id);
            assert_eq!(stored.distance, Some(5));
        }
    }
    let audit = e.audit_log(None, 1000).await.unwrap();
    assert_eq!(
        audit.iter().filter(|a| a.action == "lookup.match").count(),
        32
    );
    let outbox = e.list_outbox(false, 1000).await.unwrap();
    assert_eq!(outbox.iter().filter(|o| o.event == "match").count(), 32);
}

async fn batch_lookup_records_every_item(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "b").await;
    e.import_signals(&admin(), b.id, items(0..10))
        .await
        .unwrap();
    let requests: Vec<LookupRequest> = (0..20u64)
        .map(|i| LookupRequest {
            signals: vec![pdq(hash(i))],
            banks: None,
            context: SubmissionContext {
                content_id: Some(format!("upload-{i}")),
                ..SubmissionContext::default()
            },
        })
        .collect();
    let out = e.lookup_batch(&Actor::key(2), requests).await.unwrap();
    assert_eq!(out.len(), 20);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.matches.len(), usize::from(i < 10), "item {i}: {r:?}");
    }
    let audit = e.audit_log(None, 1000).await.unwrap();
    assert_eq!(
        audit.iter().filter(|a| a.action == "lookup.match").count(),
        10
    );
    // Validation happens before anything is recorded.
    let bad = vec![
        LookupRequest {
            signals: vec![pdq(hash(1))],
            banks: None,
            context: SubmissionContext::default(),
        },
        LookupRequest {
            signals: vec![],
            banks: None,
            context: SubmissionContext::default(),
        },
    ];
    assert!(e.lookup_batch(&Actor::key(2), bad).await.is_err());
    let matches = e.list_matches(MatchFilter::default()).await.unwrap();
    assert_eq!(matches.len(), 10);
}
