//! The exchange domain: upstream records become bank items through the
//! change sequence, shared banks share items, tombstones and sweeps delete,
//! local overrides survive upstream churn, policies filter, and decisions
//! become opinions in the outbox. Both backends.

use echotrace_engine::exchange::*;
use echotrace_engine::*;
use echotrace_signals::signal::SignalType;
use echotrace_store::testing::TestDb;

use echotrace_store::both_backends;

mod common;
use common::*;

both_backends!(
    records_become_items_and_tombstones_delete_them,
    same_hash_from_two_exchanges_is_one_item,
    disabled_items_stay_disabled_across_upstream_churn,
    full_fetch_sweeps_what_it_did_not_see,
    policy_and_dry_run,
    decisions_queue_opinions,
    lost_lease_cannot_commit,
    applied_rows_match_what_a_fresh_process_loads,
    last_record_of_a_key_wins_within_a_batch,
);

fn rec(i: u64) -> UpstreamRecord {
    UpstreamRecord {
        signal: pdq(hash(i)),
        upstream_id: format!("u{i}"),
        labels: RecordLabels {
            ideology: vec!["far-right".into()],
            ..RecordLabels::default()
        },
        opinions: vec![],
        created_at: None,
        updated_at: Some(1_700_000_000_000),
        deleted: false,
    }
}

fn tomb(i: u64) -> UpstreamRecord {
    UpstreamRecord {
        deleted: true,
        ..rec(i)
    }
}

async fn exchange(e: &Engine, name: &str, bank: Option<&str>, write_back: bool) -> Exchange {
    e.create_exchange(
        &admin(),
        NewExchangeSpec {
            name: name.into(),
            api: "file".into(),
            config: "{}".into(),
            policy: ExchangePolicy::default(),
            credentials: None,
            write_back,
            enabled: true,
            live: true,
            poll_interval_ms: 60_000,
            bank: bank.map(str::to_string),
        },
    )
    .await
    .unwrap()
}

async fn apply(e: &Engine, ex: &Exchange, records: Vec<UpstreamRecord>) -> BatchReport {
    e.apply_exchange_batch(
        ex.id,
        None,
        ExchangeBatch {
            records,
            checkpoint: Some("{\"v\":1}".into()),
            ..ExchangeBatch::default()
        },
    )
    .await
    .unwrap()
}

async fn hits(e: &Engine, i: u64) -> Vec<MatchRecord> {
    e.lookup(
        &Actor::key(1),
        LookupRequest {
            signals: vec![pdq(hash(i))],
            banks: None,
            context: SubmissionContext::default(),
        },
    )
    .await
    .unwrap()
    .matches
}

async fn records_become_items_and_tombstones_delete_them(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let other = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "TCAP", None, true).await;
    assert_eq!(ex.bank, "TCAP");
    let r = apply(&e, &ex, (0..5).map(rec).collect()).await;
    assert_eq!((r.records, r.items_added), (5, 5));
    let m = hits(&e, 3).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, vec!["ideology:far-right"]);
    let prov = e.provenance(&[m[0].content_id]).await.unwrap();
    assert_eq!(prov[&m[0].content_id][0].exchange, "TCAP");
    assert_eq!(prov[&m[0].content_id][0].upstream_id, "u3");
    // Re-applying the same batch changes nothing (no duplicate items).
    let r = apply(&e, &ex, (0..5).map(rec).collect()).await;
    assert_eq!((r.items_added, r.items_deleted), (0, 0));
    assert_eq!(e.index_stats().unwrap().pdq, 5);
    // A tombstone deletes the item; another process follows the change.
    let r = apply(&e, &ex, vec![tomb(3)]).await;
    assert_eq!((r.tombstoned, r.items_deleted), (1, 1));
    assert!(hits(&e, 3).await.is_empty());
    other.sync_changes().await.unwrap();
    assert!(hits(&other, 3).await.is_empty());
    assert_eq!(hits(&other, 2).await.len(), 1);
    // Labels follow upstream updates.
    let mut r2 = rec(2);
    r2.labels.ideology = vec!["islamist".into()];
    let r = apply(&e, &ex, vec![r2]).await;
    assert_eq!(r.items_relabelled, 1);
    assert_eq!(hits(&e, 2).await[0].labels, vec!["ideology:islamist"]);
    let st = e.exchange(ex.id).await.unwrap().status;
    assert_eq!((st.records, st.upstream_live, st.applied), (5, 4, 4));
}

async fn same_hash_from_two_exchanges_is_one_item(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let a = exchange(&e, "TCAP", None, true).await;
    let b = exchange(&e, "GIFCT", Some("TCAP"), true).await;
    assert_eq!(a.bank_id, b.bank_id);
    apply(&e, &a, vec![rec(1)]).await;
    let mut from_b = rec(1);
    from_b.labels = RecordLabels {
        tags: vec!["gifct".into()],
        ..RecordLabels::default()
    };
    let r = apply(&e, &b, vec![from_b]).await;
    assert_eq!((r.items_added, r.items_shared), (0, 1));
    assert_eq!(e.index_stats().unwrap().pdq, 1, "one indexed signal");
    let m = hits(&e, 1).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, vec!["gifct", "ideology:far-right"]);
    let prov = e.provenance(&[m[0].content_id]).await.unwrap();
    let names: Vec<&str> = prov[&m[0].content_id]
        .iter()
        .map(|p| p.exchange.as_str())
        .collect();
    assert_eq!(names, vec!["TCAP", "GIFCT"]);
    // One exchange deleting it keeps the item (the other still backs it).
    let r = apply(&e, &a, vec![tomb(1)]).await;
    assert_eq!(r.items_deleted, 0);
    assert_eq!(hits(&e, 1).await[0].labels, vec!["gifct"]);
    let r = apply(&e, &b, vec![tomb(1)]).await;
    assert_eq!(r.items_deleted, 1);
    assert!(hits(&e, 1).await.is_empty());
}

async fn disabled_items_stay_disabled_across_upstream_churn(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "TCAP", None, true).await;
    apply(&e, &ex, vec![rec(1), rec(2)]).await;
    let cid = hits(&e, 1).await[0].content_id;
    e.set_content_enabled(&admin(), cid, false).await.unwrap();
    assert!(hits(&e, 1).await.is_empty());
    // Upstream updates it: still disabled.
    let mut upd = rec(1);
    upd.labels.tags = vec!["new".into()];
    apply(&e, &ex, vec![upd]).await;
    assert!(hits(&e, 1).await.is_empty());
    assert!(!e.get_content(cid).await.unwrap().enabled);
    // Upstream deletes and re-adds it: it comes back disabled.
    apply(&e, &ex, vec![tomb(1)]).await;
    let r = apply(&e, &ex, vec![rec(1)]).await;
    assert_eq!(r.items_added, 1);
    assert!(
        hits(&e, 1).await.is_empty(),
        "re-added item must stay disabled"
    );
    // A curator deletes the other item: upstream churn never re-creates it.
    let cid2 = hits(&e, 2).await[0].content_id;
    e.delete_content(&admin(), cid2).await.unwrap();
    let mut upd = rec(2);
    upd.labels.tags = vec!["changed".into()];
    apply(&e, &ex, vec![upd]).await;
    apply(&e, &ex, vec![tomb(2)]).await;
    apply(&e, &ex, vec![rec(2)]).await;
    assert!(
        hits(&e, 2).await.is_empty(),
        "locally deleted stays deleted"
    );
}

async fn full_fetch_sweeps_what_it_did_not_see(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "FILE", None, false).await;
    e.begin_full_fetch(ex.id, None).await.unwrap();
    apply(&e, &ex, (0..30).map(rec).collect()).await;
    e.sweep_exchange(ex.id, None).await.unwrap();
    assert_eq!(e.index_stats().unwrap().pdq, 30);
    // The next pass no longer lists 10 of them.
    e.begin_full_fetch(ex.id, None).await.unwrap();
    apply(&e, &ex, (0..15).map(rec).collect()).await;
    apply(&e, &ex, (25..30).map(rec).collect()).await;
    let r = e.sweep_exchange(ex.id, None).await.unwrap();
    assert_eq!((r.tombstoned, r.items_deleted), (10, 10));
    assert_eq!(e.index_stats().unwrap().pdq, 20);
    for i in 15..25 {
        assert!(hits(&e, i).await.is_empty());
    }
    assert!(!e.exchange(ex.id).await.unwrap().status.full_fetch);
    // Sweeping again is harmless.
    let r = e.sweep_exchange(ex.id, None).await.unwrap();
    assert_eq!(r.tombstoned, 0);
}

async fn policy_and_dry_run(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let ex = e
        .create_exchange(
            &admin(),
            NewExchangeSpec {
                name: "PREVIEW".into(),
                api: "file".into(),
                config: "{}".into(),
                policy: ExchangePolicy::default(),
                credentials: None,
                write_back: false,
                enabled: true,
                live: false,
                poll_interval_ms: 60_000,
                bank: None,
            },
        )
        .await
        .unwrap();
    let mut disputed = rec(9);
    disputed.opinions = vec![
        Opinion {
            owner: "1".into(),
            category: OpinionCategory::Positive,
            tags: vec![],
            is_mine: false,
            upstream_ref: None,
        },
        Opinion {
            owner: "2".into(),
            category: OpinionCategory::Negative,
            tags: vec![],
            is_mine: false,
            upstream_ref: None,
        },
    ];
    let mut md5 = rec(0);
    md5.signal = SignalValue {
        signal_type: SignalType::Md5,
        value: "0123456789abcdef0123456789abcdef".into(),
    };
    apply(&e, &ex, vec![rec(1), rec(2), disputed, md5]).await;
    assert_eq!(e.index_stats().unwrap().pdq, 0, "dry run touches no bank");
    let diff = e
        .exchange_policy_diff(ex.id, &ExchangePolicy::default())
        .await
        .unwrap();
    assert_eq!((diff.would_add, diff.would_delete), (4, 0));
    let strict = ExchangePolicy {
        signal_types: vec![SignalType::Pdq],
        skip_disputed: true,
        ..ExchangePolicy::default()
    };
    let diff = e.exchange_policy_diff(ex.id, &strict).await.unwrap();
    assert_eq!(diff.would_add, 2);
    e.update_exchange(
        &admin(),
        ex.id,
        ExchangeChange {
            live: Some(true),
            policy: Some(strict),
            ..ExchangeChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(e.index_stats().unwrap().pdq, 2);
    assert!(hits(&e, 9).await.is_empty());
    // Loosen the policy: the disputed record comes in.
    e.update_exchange(
        &admin(),
        ex.id,
        ExchangeChange {
            policy: Some(ExchangePolicy::default()),
            ..ExchangeChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(hits(&e, 9).await.len(), 1);
    // The audit log never holds credentials, and records the changes.
    let audit = e.audit_log(None, 100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "exchange.update"));
}

async fn decisions_queue_opinions(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let with = exchange(&e, "PEER", None, true).await;
    let without = exchange(&e, "LIST", None, false).await;
    apply(&e, &with, vec![rec(1)]).await;
    apply(&e, &without, vec![rec(2)]).await;
    let m1 = hits(&e, 1).await.remove(0);
    let m2 = hits(&e, 2).await.remove(0);
    e.decide(&admin(), m1.id, Verdict::Reject, "")
        .await
        .unwrap();
    e.decide(&admin(), m2.id, Verdict::Confirm, "")
        .await
        .unwrap();
    let events = e.list_outbox(true, 100).await.unwrap();
    let ops: Vec<&OutboxEvent> = events.iter().filter(|x| x.event == OPINION_EVENT).collect();
    assert_eq!(ops.len(), 1, "only the exchange with write-back gets one");
    let op: OpinionOut = serde_json::from_value(ops[0].payload.clone()).unwrap();
    assert_eq!(op.category, OpinionCategory::Negative);
    assert_eq!(op.exchange, "PEER");
    assert_eq!(op.value, hash(1).to_hex());
    let st = e.exchange(without.id).await.unwrap().status;
    assert_eq!(st.opinions_unsent, 1);
    let prov = e.provenance(&[m1.content_id]).await.unwrap();
    assert_eq!(
        prov[&m1.content_id][0].my_opinion.as_deref(),
        Some("negative")
    );
}

async fn lost_lease_cannot_commit(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "TCAP", None, true).await;
    let ttl = std::time::Duration::from_secs(60);
    let epoch = e
        .store()
        .try_lease("exchange:x", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    let fence = LeaseFence {
        name: "exchange:x".into(),
        holder: "a".into(),
        epoch,
    };
    e.apply_exchange_batch(
        ex.id,
        Some(&fence),
        ExchangeBatch {
            records: vec![rec(1)],
            ..ExchangeBatch::default()
        },
    )
    .await
    .unwrap();
    // Another holder takes over (after expiry).
    e.store().release_lease("exchange:x", "a").await.unwrap();
    e.store()
        .try_lease("exchange:x", "b", ttl)
        .await
        .unwrap()
        .unwrap();
    let err = e
        .apply_exchange_batch(
            ex.id,
            Some(&fence),
            ExchangeBatch {
                records: vec![rec(2)],
                ..ExchangeBatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Conflict(_)), "{err}");
    assert!(hits(&e, 2).await.is_empty());
}

/// The applying process indexes a batch's new items from the rows it just
/// wrote (no re-read of the range); what it holds must equal what a process
/// loading the database holds, and what a tailing process re-reads.
async fn applied_rows_match_what_a_fresh_process_loads(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let tailer = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "TCAP", None, false).await;
    let mut first: Vec<UpstreamRecord> = (0..40).map(rec).collect();
    first[7].labels.tags = vec!["t7".into()];
    let r = apply(&e, &ex, first).await;
    assert_eq!(r.items_added, 40);
    // A second batch: updates, new items and a tombstone together.
    let mut second: Vec<UpstreamRecord> = (30..60).map(rec).collect();
    second.push(tomb(3));
    let r = apply(&e, &ex, second).await;
    assert_eq!((r.items_added, r.tombstoned), (20, 1));
    tailer.sync_changes().await.unwrap();
    let fresh = Engine::open(config(db)).await.unwrap();
    let stats = e.index_stats().unwrap();
    assert_eq!(stats.pdq, 59);
    assert_eq!(stats, fresh.index_stats().unwrap());
    assert_eq!(stats, tailer.index_stats().unwrap());
    for i in 0..60 {
        let key = |m: &MatchRecord| (m.bank_id, m.content_id, m.labels.clone(), m.distance);
        let mine: Vec<_> = hits(&e, i).await.iter().map(key).collect();
        let loaded: Vec<_> = hits(&fresh, i).await.iter().map(key).collect();
        let tailed: Vec<_> = hits(&tailer, i).await.iter().map(key).collect();
        assert_eq!(mine.len(), usize::from(i != 3), "record {i}");
        assert_eq!(mine, loaded, "record {i}");
        assert_eq!(mine, tailed, "record {i}");
    }
    let labels = &hits(&e, 7).await[0].labels;
    assert!(labels.iter().any(|l| l == "t7"), "{labels:?}");
}

async fn last_record_of_a_key_wins_within_a_batch(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let ex = exchange(&e, "TCAP", None, true).await;
    let relabelled = |i: u64, ideology: &str| {
        let mut r = rec(i);
        r.labels.ideology = vec![ideology.into()];
        r.upstream_id = format!("u{i}-{ideology}");
        r
    };
    // Key 1 three times (the last label wins), key 2 added then withdrawn,
    // key 3 withdrawn then re-added, in one batch, keys out of order.
    let r = apply(
        &e,
        &ex,
        vec![
            relabelled(1, "a"),
            rec(3),
            rec(2),
            relabelled(1, "b"),
            tomb(3),
            tomb(2),
            rec(3),
            relabelled(1, "c"),
        ],
    )
    .await;
    assert_eq!((r.records, r.items_added), (3, 2), "{r:?}");
    let m = hits(&e, 1).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, vec!["ideology:c"]);
    let prov = e.provenance(&[m[0].content_id]).await.unwrap();
    assert_eq!(prov[&m[0].content_id][0].upstream_id, "u1-c");
    assert!(hits(&e, 2).await.is_empty(), "withdrawn last");
    assert_eq!(hits(&e, 3).await.len(), 1, "re-added last");
    assert_eq!(e.index_stats().unwrap().pdq, 2);
}
