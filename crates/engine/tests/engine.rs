//! Engine tests. Every test body runs twice: on a fresh SQLite file and on a
//! fresh PostgreSQL schema at `$ECHOTRACE_TEST_PG_URL` (see
//! `echotrace_store::testing`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_engine::*;
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_store::testing::TestDb;

use echotrace_store::both_backends;

mod common;
use common::*;

both_backends!(
    lookup_records_matches_audit_and_outbox,
    concurrent_lookups_each_get_their_own_rows,
    per_bank_thresholds,
    allow_bank_suppresses_block_matches,
    enable_disable_is_immediate,
    incremental_updates_reach_other_processes,
    flood_guard_quarantines,
    decisions_are_audited_and_queued,
    outbox_retries_with_backoff,
    restart_keeps_answers,
    api_keys_and_users,
    invalid_input_is_typed,
    image_bytes_round_trip,
    text_content_matches_near_duplicates,
    delete_bank_removes_content_everywhere,
);

fn fixtures() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "test fixtures missing: expected ../shared/fixtures (next to the repo) at {}",
        dir.display()
    );
    dir
}

fn md5(s: &str) -> SignalValue {
    SignalValue {
        signal_type: SignalType::Md5,
        value: s.to_string(),
    }
}

async fn bank(e: &Engine, name: &str, kind: BankKind, pdq_threshold: Option<f64>) -> Bank {
    let mut t = Thresholds::default();
    if let Some(v) = pdq_threshold {
        t.0.insert("pdq".into(), v);
    }
    e.create_bank(
        &admin(),
        NewBank {
            name: name.into(),
            kind,
            description: String::new(),
            thresholds: t,
            text_equivalences: None,
        },
    )
    .await
    .unwrap()
}

async fn add(e: &Engine, bank: &Bank, signals: Vec<SignalValue>, labels: &[&str]) -> Content {
    e.add_content(
        &admin(),
        bank.id,
        NewContent {
            source: ContentSource::Signals(signals),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            note: "test item".into(),
        },
    )
    .await
    .unwrap()
}

async fn look(e: &Engine, signals: Vec<SignalValue>) -> LookupResponse {
    e.lookup(
        &Actor::key(1),
        LookupRequest {
            signals,
            banks: None,
            context: SubmissionContext::default(),
        },
    )
    .await
    .unwrap()
}

/// Lookups answered together share group commits (multi-row writes with
/// reserved ids): each still gets its own submission, exactly its matches,
/// one audit entry and one outbox event when it matched, and nothing when
/// it did not.
async fn concurrent_lookups_each_get_their_own_rows(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "block", BankKind::Block, None).await;
    let mut items = Vec::new();
    for i in 0..24u64 {
        items.push(add(&e, &b, vec![pdq(hash(1000 + i))], &["grp"]).await.id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..72u64 {
        let e = e.clone();
        tasks.spawn(async move {
            // Every third lookup matches item i/3 (a few bits away); the
            // others match nothing.
            let h = if i % 3 == 0 {
                flip(hash(1000 + i / 3), (i % 7) as usize)
            } else {
                hash(90_000 + i)
            };
            let r = e
                .lookup(
                    &Actor::key(9),
                    LookupRequest {
                        signals: vec![pdq(h)],
                        banks: None,
                        context: SubmissionContext {
                            uploader_id: Some(format!("u{i}")),
                            ..Default::default()
                        },
                    },
                )
                .await
                .unwrap();
            (i, r)
        });
    }
    let mut submissions = std::collections::HashSet::new();
    let mut matched_submissions = std::collections::HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.unwrap();
        let sid = r.submission_id.expect("--record all records every lookup");
        assert!(submissions.insert(sid), "submission {sid} given twice");
        let sub = e.store().get_submission(sid).await.unwrap().unwrap();
        assert_eq!(sub.uploader_id, Some(format!("u{i}")), "lookup {i}");
        assert_eq!(sub.match_count, r.matches.len() as i64, "lookup {i}");
        let listed = e
            .list_matches(MatchFilter {
                submission_id: Some(sid),
                ..Default::default()
            })
            .await
            .unwrap();
        if i % 3 == 0 {
            assert_eq!(r.matches.len(), 1, "lookup {i}: {r:?}");
            let m = &r.matches[0];
            assert_eq!(m.content_id, items[(i / 3) as usize], "lookup {i}");
            assert_eq!(m.distance, Some((i % 7) as i64), "lookup {i}");
            assert_eq!(m.labels, vec!["grp".to_string()]);
            // The answer is the stored row.
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].id, m.id);
            let stored = e.get_match(m.id).await.unwrap();
            assert_eq!(stored.submission_id, sid);
            assert_eq!(stored.distance, m.distance);
            assert_eq!(stored.content_id, m.content_id);
            assert_eq!(stored.created_at, m.created_at);
            matched_submissions.insert(sid);
        } else {
            assert!(r.matches.is_empty(), "lookup {i}: {r:?}");
            assert!(listed.is_empty(), "lookup {i}");
        }
    }
    assert_eq!(submissions.len(), 72);
    assert_eq!(matched_submissions.len(), 24);
    let events = e.list_outbox(false, 1000).await.unwrap();
    let mut event_subs: Vec<i64> = events
        .iter()
        .filter(|o| o.event == "match")
        .map(|o| o.payload["submission_id"].as_i64().unwrap())
        .collect();
    event_subs.sort_unstable();
    let mut want: Vec<i64> = matched_submissions.iter().copied().collect();
    want.sort_unstable();
    assert_eq!(event_subs, want, "one match event per matched lookup");
    let audit = e.audit_log(None, 1000).await.unwrap();
    let mut audited: Vec<i64> = audit
        .iter()
        .filter(|a| a.action == "lookup.match")
        .map(|a| {
            let sid = a.after.as_ref().unwrap()["submission_id"].as_i64().unwrap();
            assert_eq!(a.target, format!("submission:{sid}"));
            assert_eq!(a.actor, "key:9");
            sid
        })
        .collect();
    audited.sort_unstable();
    assert_eq!(audited, want, "one audit entry per matched lookup");
}

async fn lookup_records_matches_audit_and_outbox(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "tve", BankKind::Block, None).await;
    let h = hash(1);
    let item = add(
        &e,
        &b,
        vec![pdq(h), md5(&"AB".repeat(16))],
        &["group-x", "video-still"],
    )
    .await;
    assert_eq!(item.signals.len(), 2);
    assert_eq!(
        item.signals[1].value,
        "ab".repeat(16),
        "hex is canonicalised to lowercase"
    );

    let ctx = SubmissionContext {
        content_id: Some("upload-42".into()),
        url: Some("https://example.org/u/42".into()),
        uploader_id: Some("user-7".into()),
    };
    let r = e
        .lookup(
            &Actor::key(5),
            LookupRequest {
                signals: vec![pdq(flip(h, 12)), md5(&"ab".repeat(16))],
                banks: None,
                context: ctx.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.matches.len(), 2, "{r:?}");
    let pm = r
        .matches
        .iter()
        .find(|m| m.signal_type == SignalType::Pdq)
        .unwrap();
    assert_eq!(pm.distance, Some(12));
    assert_eq!(pm.content_id, item.id);
    assert_eq!(pm.bank_name, "tve");
    assert_eq!(pm.matched_value, h.to_hex());
    assert_eq!(
        pm.labels,
        vec!["group-x".to_string(), "video-still".to_string()]
    );
    assert_eq!(pm.status, MatchStatus::Pending);
    let mm = r
        .matches
        .iter()
        .find(|m| m.signal_type == SignalType::Md5)
        .unwrap();
    assert_eq!(mm.distance, Some(0));

    // Durable: the submission and matches are in the store.
    let sub = e
        .store()
        .get_submission(r.submission_id.expect("recorded"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.content_ref.as_deref(), Some("upload-42"));
    assert_eq!(sub.uploader_id.as_deref(), Some("user-7"));
    assert_eq!(sub.actor, "key:5");
    assert_eq!(sub.match_count, 2);
    let listed = e
        .list_matches(MatchFilter {
            submission_id: r.submission_id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|m| m.status == MatchStatus::Pending && m.bank_name == "tve"));
    let outbox = e.list_outbox(true, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].event, "match");
    assert_eq!(outbox[0].payload["submission_id"].as_i64(), r.submission_id);
    assert_eq!(outbox[0].payload["context"]["content_id"], "upload-42");
    let audit = e.audit_log(None, 10).await.unwrap();
    assert_eq!(audit[0].action, "lookup.match");
    assert!(audit
        .iter()
        .any(|a| a.action == "content.add" && a.before.is_none() && a.after.is_some()));
    assert!(audit.iter().any(|a| a.action == "bank.create"));

    // Distance 32 is beyond the default 31; unknown md5 misses.
    let r = look(&e, vec![pdq(flip(h, 32)), md5(&"cd".repeat(16))]).await;
    assert!(r.matches.is_empty(), "{r:?}");
    let r = look(&e, vec![pdq(flip(h, 31))]).await;
    assert_eq!(r.matches.len(), 1);
    // Submissions without matches are recorded too, but queue no event.
    assert_eq!(e.list_outbox(true, 10).await.unwrap().len(), 2);
    // The bank filter restricts block banks.
    let other = bank(&e, "other", BankKind::Block, None).await;
    let r = e
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![pdq(h)],
                banks: Some(vec![other.id]),
                context: Default::default(),
            },
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty());
}

async fn per_bank_thresholds(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let strict = bank(&e, "strict", BankKind::Block, Some(10.0)).await;
    let loose = bank(&e, "loose", BankKind::Block, None).await;
    let wide = bank(&e, "wide", BankKind::Block, Some(60.0)).await;
    let h = hash(2);
    add(&e, &strict, vec![pdq(h)], &[]).await;
    add(&e, &loose, vec![pdq(h)], &[]).await;
    add(&e, &wide, vec![pdq(h)], &[]).await;
    let banks_at = |r: &LookupResponse| {
        let mut v: Vec<String> = r.matches.iter().map(|m| m.bank_name.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(
        banks_at(&look(&e, vec![pdq(flip(h, 10))]).await),
        ["loose", "strict", "wide"]
    );
    assert_eq!(
        banks_at(&look(&e, vec![pdq(flip(h, 11))]).await),
        ["loose", "wide"]
    );
    assert_eq!(banks_at(&look(&e, vec![pdq(flip(h, 45))]).await), ["wide"]);
    assert!(banks_at(&look(&e, vec![pdq(flip(h, 61))]).await).is_empty());
    // Changing a threshold takes effect at once.
    let mut t = Thresholds::default();
    t.0.insert("pdq".into(), 12.0);
    e.update_bank(
        &admin(),
        strict.id,
        BankUpdate {
            thresholds: Some(t),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        banks_at(&look(&e, vec![pdq(flip(h, 11))]).await),
        ["loose", "strict", "wide"]
    );
    // Invalid thresholds are rejected.
    let mut t = Thresholds::default();
    t.0.insert("pdq".into(), 300.0);
    let err = e
        .update_bank(
            &admin(),
            strict.id,
            BankUpdate {
                thresholds: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

async fn allow_bank_suppresses_block_matches(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let block = bank(&e, "block", BankKind::Block, None).await;
    let allow = bank(&e, "allow", BankKind::Allow, None).await;
    let bad = hash(3);
    let news = hash(4);
    add(&e, &block, vec![pdq(bad), md5(&"11".repeat(16))], &[]).await;
    add(&e, &allow, vec![md5(&"11".repeat(16))], &["news-footage"]).await;
    add(&e, &block, vec![pdq(news)], &[]).await;

    // The md5 is on the allow list: the block hit is suppressed.
    let r = look(&e, vec![pdq(bad), md5(&"11".repeat(16))]).await;
    assert!(r.matches.is_empty(), "{r:?}");
    assert_eq!(r.allowed.len(), 1);
    assert_eq!(r.allowed[0].bank_name, "allow");
    assert_eq!(r.allowed[0].labels, vec!["news-footage".to_string()]);
    assert_eq!(r.suppressed, 2);
    // Suppressed matches are not recorded and raise no match event.
    let recorded = e
        .list_matches(MatchFilter {
            submission_id: r.submission_id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].bank_id, allow.id);
    assert!(e.list_outbox(true, 10).await.unwrap().is_empty());
    // Without the allow hit the block match stands.
    let r = look(&e, vec![pdq(bad)]).await;
    assert_eq!(r.matches.len(), 1);
    assert_eq!(r.suppressed, 0);
    // Allow banks apply even when the caller filters to block banks.
    let r = e
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![pdq(bad), md5(&"11".repeat(16))],
                banks: Some(vec![block.id]),
                context: Default::default(),
            },
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty());
    // Disabling the allow bank lifts the suppression immediately.
    e.update_bank(
        &admin(),
        allow.id,
        BankUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = look(&e, vec![pdq(bad), md5(&"11".repeat(16))]).await;
    assert_eq!(r.matches.len(), 2);
}

async fn enable_disable_is_immediate(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, None).await;
    let h = hash(5);
    let c = add(&e, &b, vec![pdq(h)], &[]).await;
    assert_eq!(look(&e, vec![pdq(h)]).await.matches.len(), 1);
    let off = e.set_content_enabled(&admin(), c.id, false).await.unwrap();
    assert!(!off.enabled);
    assert!(look(&e, vec![pdq(h)]).await.matches.is_empty());
    e.set_content_enabled(&admin(), c.id, true).await.unwrap();
    assert_eq!(look(&e, vec![pdq(h)]).await.matches.len(), 1);
    // Bank-level disable.
    e.update_bank(
        &admin(),
        b.id,
        BankUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(look(&e, vec![pdq(h)]).await.matches.is_empty());
    e.update_bank(
        &admin(),
        b.id,
        BankUpdate {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(look(&e, vec![pdq(h)]).await.matches.len(), 1);
    // Delete removes it from the index.
    e.delete_content(&admin(), c.id).await.unwrap();
    assert!(look(&e, vec![pdq(h)]).await.matches.is_empty());
    assert_eq!(e.index_stats().unwrap().pdq, 0);
    assert!(matches!(
        e.get_content(c.id).await,
        Err(EngineError::NotFound(_))
    ));
    // Audit has before/after for the toggles.
    let audit = e.audit_log(None, 50).await.unwrap();
    let dis = audit
        .iter()
        .find(|a| a.action == "content.disable")
        .unwrap();
    assert_eq!(dis.before.as_ref().unwrap()["enabled"], true);
    assert_eq!(dis.after.as_ref().unwrap()["enabled"], false);
    assert!(audit
        .iter()
        .any(|a| a.action == "content.delete" && a.after.is_none()));
}

async fn incremental_updates_reach_other_processes(db: &TestDb) {
    // Two engines on one database stand in for two server processes.
    let a = Engine::open(config(db)).await.unwrap();
    let b = Engine::open(config(db)).await.unwrap();
    let tailer = b.spawn_change_tailer();
    let bank_a = bank(&a, "shared", BankKind::Block, None).await;
    let h = hash(6);
    let started = Instant::now();
    let c = add(&a, &bank_a, vec![pdq(h)], &[]).await;
    // B picks the new content up by tailing, within 2 s.
    loop {
        if look(&b, vec![pdq(h)]).await.matches.len() == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B did not see A's new content within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen_after = started.elapsed();
    // Disable on A → B stops matching within 2 s.
    let t0 = Instant::now();
    a.set_content_enabled(&admin(), c.id, false).await.unwrap();
    loop {
        if look(&b, vec![pdq(h)]).await.matches.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "B still matched disabled content after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{}: add visible to peer after {:?}, disable after {:?}",
        db.backend,
        seen_after,
        t0.elapsed()
    );
    // The update was incremental: B's index holds exactly the one signal.
    let stats = b.index_stats().unwrap();
    assert_eq!((stats.banks, stats.content, stats.pdq), (1, 1, 1));
    // Bulk adds flow through too (100 items, one change each).
    for i in 0..100 {
        add(&a, &bank_a, vec![pdq(hash(1000 + i))], &[]).await;
    }
    let t1 = Instant::now();
    while b.index_stats().unwrap().pdq < 101 {
        assert!(
            t1.elapsed() < Duration::from_secs(2),
            "B did not catch up with 100 adds within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(look(&b, vec![pdq(hash(1077))]).await.matches.len(), 1);
    tailer.abort();
}

async fn flood_guard_quarantines(db: &TestDb) {
    let cfg = EngineConfig {
        flood_guard: FloodGuardConfig {
            enabled: true,
            window: Duration::from_secs(600),
            min_sample: 10,
            max_share: 0.5,
        },
        ..config(db)
    };
    let e = Engine::open(cfg).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, None).await;
    let blank = hash(7);
    let rare = hash(8);
    let noisy = add(&e, &b, vec![pdq(blank)], &[]).await;
    let quiet = add(&e, &b, vec![pdq(rare)], &[]).await;
    // Nine lookups all hit the noisy item: below the minimum sample.
    for i in 0..9 {
        let r = look(&e, vec![pdq(flip(blank, i % 5))]).await;
        assert_eq!(r.matches.len(), 1);
    }
    assert!(e.get_content(noisy.id).await.unwrap().quarantine.is_none());
    look(&e, vec![pdq(rare)]).await; // 10th lookup: noisy at 9/10 > 0.5
                                     // The 10th lookup hit only `rare`; the next noisy hit triggers.
    let r = look(&e, vec![pdq(blank)]).await;
    assert_eq!(
        r.matches.len(),
        1,
        "the triggering lookup still reports its match"
    );
    let q = e.get_content(noisy.id).await.unwrap();
    let reason = q.quarantine.expect("noisy item quarantined").reason;
    assert!(reason.contains("flood guard"), "{reason}");
    assert!(e.get_content(quiet.id).await.unwrap().quarantine.is_none());
    // Quarantined items stop matching at once.
    assert!(look(&e, vec![pdq(blank)]).await.matches.is_empty());
    let audit = e.audit_log(None, 100).await.unwrap();
    let qa = audit
        .iter()
        .find(|a| a.action == "content.quarantine")
        .unwrap();
    assert_eq!(qa.actor, "system");
    assert!(qa.before.as_ref().unwrap()["quarantine"].is_null());
    assert!(!qa.after.as_ref().unwrap()["quarantine"].is_null());
    let events = e.list_outbox(true, 100).await.unwrap();
    let qe = events.iter().find(|ev| ev.event == "quarantine").unwrap();
    assert_eq!(qe.payload["content_id"], noisy.id);
    // A reviewer releases it; it matches again.
    e.release_quarantine(&Actor::user("rev"), noisy.id)
        .await
        .unwrap();
    assert_eq!(look(&e, vec![pdq(blank)]).await.matches.len(), 1);
}

async fn decisions_are_audited_and_queued(db: &TestDb) {
    let cfg = EngineConfig {
        decision_undo_delay: Duration::from_secs(30),
        ..config(db)
    };
    let e = Engine::open(cfg).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, None).await;
    add(&e, &b, vec![md5(&"22".repeat(16))], &[]).await;
    let r = look(&e, vec![md5(&"22".repeat(16))]).await;
    let m = &r.matches[0];
    let before = echotrace_store::now_ms();
    let d = e
        .decide(
            &Actor::user("rev"),
            m.id,
            Verdict::Confirm,
            "known propaganda still",
        )
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::Confirm);
    assert_eq!(d.actor, "user:rev");
    assert!(d.publish_after >= before + 30_000, "undo delay applied");
    assert_eq!(
        e.get_match(m.id).await.unwrap().status,
        MatchStatus::Confirmed
    );
    let pending = e
        .list_matches(MatchFilter {
            status: Some(MatchStatus::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.is_empty());
    let audit = e.audit_log(None, 10).await.unwrap();
    let a = audit.iter().find(|a| a.action == "match.decide").unwrap();
    assert_eq!(a.before.as_ref().unwrap()["status"], "pending");
    assert_eq!(a.after.as_ref().unwrap()["status"], "confirmed");
    let ev = e.list_outbox(true, 10).await.unwrap();
    let de = ev.iter().find(|x| x.event == "decision").unwrap();
    assert_eq!(de.next_attempt_at, d.publish_after);
    assert_eq!(de.payload["match_id"], m.id);
    // Not due yet: a delivery pass leaves it alone.
    let sink = Recorder::default();
    e.deliver_due(&sink).await.unwrap();
    assert!(sink.events().iter().all(|ev| ev.event != "decision"));
    // Reject later; unknown match → 404.
    e.decide(&Actor::user("rev"), m.id, Verdict::Reject, "")
        .await
        .unwrap();
    assert_eq!(
        e.get_match(m.id).await.unwrap().status,
        MatchStatus::Rejected
    );
    let err = e
        .decide(&Actor::user("rev"), 999_999, Verdict::Reject, "")
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 404);
}

/// A deliverer that fails the first `fail_first` calls, then records.
#[derive(Default)]
struct Recorder {
    fail_first: usize,
    calls: AtomicUsize,
    seen: Mutex<Vec<OutboxEvent>>,
}

impl Recorder {
    fn events(&self) -> Vec<OutboxEvent> {
        self.seen.lock().unwrap().clone()
    }
}

impl Deliverer for Recorder {
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err(format!("receiver down (call {n})"));
            }
            self.seen.lock().unwrap().push(event.clone());
            Ok(())
        })
    }
}

async fn outbox_retries_with_backoff(db: &TestDb) {
    let cfg = EngineConfig {
        outbox: OutboxConfig {
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_attempts: 5,
            poll_interval: Duration::from_millis(20),
            ..OutboxConfig::default()
        },
        ..config(db)
    };
    let e = Engine::open(cfg.clone()).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, None).await;
    add(&e, &b, vec![md5(&"33".repeat(16))], &[]).await;
    look(&e, vec![md5(&"33".repeat(16))]).await;

    let flaky = Recorder {
        fail_first: 2,
        ..Default::default()
    };
    let t0 = echotrace_store::now_ms();
    let r1 = e.deliver_due(&flaky).await.unwrap();
    assert_eq!((r1.attempted, r1.retried, r1.delivered), (1, 1, 0));
    let ev = &e.list_outbox(true, 10).await.unwrap()[0];
    assert_eq!(ev.attempts, 1);
    assert_eq!(ev.last_error.as_deref(), Some("receiver down (call 0)"));
    assert!(
        ev.next_attempt_at >= t0 + 200,
        "first backoff is the base delay"
    );
    // Not due again yet.
    assert_eq!(e.deliver_due(&flaky).await.unwrap().attempted, 0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t1 = echotrace_store::now_ms();
    let r2 = e.deliver_due(&flaky).await.unwrap();
    assert_eq!(r2.retried, 1);
    let ev = &e.list_outbox(true, 10).await.unwrap()[0];
    assert_eq!(ev.attempts, 2);
    assert!(ev.next_attempt_at >= t1 + 400, "second backoff doubles");

    // "Restart": a new engine on the same database delivers the event.
    drop(e);
    let e2 = Engine::open(cfg).await.unwrap();
    let sink = Arc::new(Recorder {
        fail_first: 0,
        ..Default::default()
    });
    let worker = e2.spawn_outbox_worker(sink.clone());
    let t2 = Instant::now();
    // Wait until the worker has also marked the row delivered (the sink
    // sees the event just before that).
    while sink.events().is_empty() || !e2.list_outbox(true, 10).await.unwrap().is_empty() {
        assert!(
            t2.elapsed() < Duration::from_secs(5),
            "event not delivered after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let delivered = &sink.events()[0];
    assert_eq!(delivered.event, "match");
    assert_eq!(sink.events().len(), 1, "delivered once");
    let all = e2.list_outbox(false, 10).await.unwrap();
    assert_eq!(all[0].attempts, 3);
    assert!(all[0].delivered_at.is_some());

    // Giving up after max_attempts.
    look(&e2, vec![md5(&"33".repeat(16))]).await;
    let dead = Recorder {
        fail_first: usize::MAX,
        ..Default::default()
    };
    let mut gave_up = 0;
    let t3 = Instant::now();
    while gave_up == 0 {
        assert!(t3.elapsed() < Duration::from_secs(15), "never gave up");
        gave_up += e2.deliver_due(&dead).await.unwrap().gave_up;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = &e2.list_outbox(false, 10).await.unwrap()[0];
    assert_eq!(last.attempts, 5);
    assert!(last.failed_at.is_some() && last.delivered_at.is_none());
}

async fn restart_keeps_answers(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, Some(20.0)).await;
    let allow = bank(&e, "allow", BankKind::Allow, None).await;
    let mut queries = Vec::new();
    for i in 0..50u64 {
        let h = hash(100 + i);
        let c = add(&e, &b, vec![pdq(h), md5(&format!("{:032x}", i))], &[]).await;
        if i % 10 == 0 {
            e.set_content_enabled(&admin(), c.id, false).await.unwrap();
        }
        queries.push(vec![pdq(flip(h, (i % 25) as usize))]);
    }
    add(&e, &allow, vec![md5(&format!("{:032x}", 7))], &[]).await;
    queries.push(vec![md5(&format!("{:032x}", 7))]);
    let summarize = |r: &LookupResponse| {
        let mut v: Vec<(i64, i64, String)> = r
            .matches
            .iter()
            .chain(r.allowed.iter())
            .map(|m| (m.content_id, m.distance.unwrap_or(-1), m.bank_name.clone()))
            .collect();
        v.sort();
        (v, r.suppressed)
    };
    let mut before = Vec::new();
    for q in &queries {
        before.push(summarize(&look(&e, q.clone()).await));
    }
    let stats = e.index_stats().unwrap();
    e.store().close().await;
    drop(e);
    let e2 = Engine::open(config(db)).await.unwrap();
    assert_eq!(e2.index_stats().unwrap(), stats);
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&summarize(&look(&e2, q.clone()).await), want);
    }
    // Sanity: the answers were not trivial.
    assert!(before.iter().filter(|(m, _)| !m.is_empty()).count() > 20);
    assert!(before.iter().any(|(m, _)| m.is_empty()));
}

async fn api_keys_and_users(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let (info, key) = e
        .create_api_key(&admin(), "platform-a", Role::Matcher)
        .await
        .unwrap();
    assert!(key.starts_with("et_"));
    assert_eq!(info.role, Role::Matcher);
    // Only the hash is stored.
    let row = e.store().list_api_keys().await.unwrap();
    assert_eq!(row.len(), 1);
    assert_ne!(row[0].key_hash, key);
    assert_eq!(row[0].key_hash, hash_api_key(&key));
    let v = e.verify_api_key(&key).await.unwrap();
    assert_eq!((v.id, v.role), (info.id, Role::Matcher));
    assert!(v.role.require(Operation::Lookup).is_ok());
    assert_eq!(
        v.role
            .require(Operation::WriteBanks)
            .unwrap_err()
            .http_status(),
        403
    );
    assert!(matches!(
        e.verify_api_key("et_wrong").await,
        Err(EngineError::Unauthorized)
    ));
    assert!(matches!(
        e.verify_api_key("").await,
        Err(EngineError::Unauthorized)
    ));
    e.revoke_api_key(&admin(), info.id).await.unwrap();
    assert_eq!(e.verify_api_key(&key).await.unwrap_err().http_status(), 401);
    assert!(e.list_api_keys().await.unwrap()[0].revoked_at.is_some());

    let u = e
        .create_user(&admin(), "reviewer1", "a long passphrase", Role::Reviewer)
        .await
        .unwrap();
    assert_eq!(u.role, Role::Reviewer);
    assert_eq!(
        e.verify_user("reviewer1", "a long passphrase")
            .await
            .unwrap()
            .id,
        u.id
    );
    assert!(matches!(
        e.verify_user("reviewer1", "wrong").await,
        Err(EngineError::Unauthorized)
    ));
    assert!(matches!(
        e.verify_user("nobody", "a long passphrase").await,
        Err(EngineError::Unauthorized)
    ));
    assert_eq!(
        e.create_user(&admin(), "reviewer1", "another passphrase", Role::Admin)
            .await
            .unwrap_err()
            .http_status(),
        409
    );
    assert_eq!(
        e.create_user(&admin(), "x", "short", Role::Admin)
            .await
            .unwrap_err()
            .http_status(),
        400
    );
    let stored = e.store().user_by_name("reviewer1").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));

    let hook = e
        .create_webhook(
            &admin(),
            "https://hooks.example.org/et",
            "a-16-byte-secret",
            vec!["match".into()],
        )
        .await
        .unwrap();
    assert_eq!(e.list_webhooks().await.unwrap(), vec![hook.clone()]);
    assert!(e
        .create_webhook(&admin(), "ftp://x", "k", vec![])
        .await
        .is_err());
    e.delete_webhook(&admin(), hook.id).await.unwrap();
    assert!(e.list_webhooks().await.unwrap().is_empty());
    let audit = e.audit_log(None, 50).await.unwrap();
    for action in [
        "api_key.create",
        "api_key.revoke",
        "user.create",
        "webhook.create",
        "webhook.delete",
    ] {
        assert!(
            audit.iter().any(|a| a.action == action),
            "missing audit {action}"
        );
    }
    // No secret material in the audit log.
    let dump = serde_json::to_string(&audit).unwrap();
    assert!(!dump.contains(&key) && !dump.contains("a long passphrase"));
}

async fn invalid_input_is_typed(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "b", BankKind::Block, None).await;
    let err = e
        .add_content(
            &admin(),
            b.id,
            NewContent {
                source: ContentSource::Signals(vec![SignalValue {
                    signal_type: SignalType::Pdq,
                    value: "zz".into(),
                }]),
                labels: vec![],
                note: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput(_)), "{err:?}");
    let err = e
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: vec![md5("nothex")],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    let err = e
        .lookup(&Actor::key(1), LookupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    let err = add_err(&e, 999_999).await;
    assert_eq!(err.http_status(), 404);
    let err = e
        .create_bank(
            &admin(),
            NewBank {
                name: "b".into(),
                kind: BankKind::Allow,
                description: String::new(),
                thresholds: Thresholds::default(),
                text_equivalences: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert_eq!(e.get_bank(424_242).await.unwrap_err().http_status(), 404);
    assert_eq!(e.bank_by_name("b").await.unwrap().id, b.id);
    assert_eq!(e.get_match(1).await.unwrap_err().http_status(), 404);
    // Nothing half-written: no content, no changes beyond the bank.
    assert!(e.list_content(b.id, 0, 10).await.unwrap().is_empty());
}

async fn add_err(e: &Engine, bank_id: i64) -> EngineError {
    e.add_content(
        &admin(),
        bank_id,
        NewContent {
            source: ContentSource::Signals(vec![md5(&"44".repeat(16))]),
            labels: vec![],
            note: String::new(),
        },
    )
    .await
    .unwrap_err()
}

async fn image_bytes_round_trip(db: &TestDb) {
    let dir = fixtures().join("pdq");
    let orig = std::fs::read(dir.join("lossless/bridge-mods/aaa-orig.png")).unwrap();
    let edit = std::fs::read(dir.join("lossless/bridge-mods/shrink-a-lot.png")).unwrap();
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "images", BankKind::Block, None).await;
    let c = e
        .add_content(
            &admin(),
            b.id,
            NewContent {
                source: ContentSource::Bytes(orig.clone()),
                labels: vec!["bridge".into()],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    let types: Vec<SignalType> = c.signals.iter().map(|s| s.signal_type).collect();
    assert_eq!(
        types,
        vec![SignalType::Pdq, SignalType::Md5, SignalType::Sha256]
    );
    // The reference hash of this exact-pixel PNG (fixtures' expected.csv).
    assert_eq!(
        c.signals[0].value,
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    );
    let r = e
        .lookup_bytes(&Actor::key(1), orig, None, SubmissionContext::default())
        .await
        .unwrap();
    let mut got: Vec<(SignalType, Option<i64>)> = r
        .matches
        .iter()
        .map(|m| (m.signal_type, m.distance))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (SignalType::Pdq, Some(0)),
            (SignalType::Md5, Some(0)),
            (SignalType::Sha256, Some(0))
        ]
    );
    // An edited copy matches on PDQ only.
    let want =
        PdqHash::from_hex("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22")
            .unwrap()
            .distance(
                &PdqHash::from_hex(
                    "d0f8f1ccc0f4a84d0a370a3a228f67f0b36e2ed5b6623e1d33e6339c4e9c9b22",
                )
                .unwrap(),
            );
    let r = e
        .lookup_bytes(&Actor::key(1), edit, None, SubmissionContext::default())
        .await
        .unwrap();
    assert_eq!(r.matches.len(), 1);
    assert_eq!(r.matches[0].signal_type, SignalType::Pdq);
    assert_eq!(r.matches[0].distance, Some(i64::from(want)));
    // Garbage bytes are a typed 4xx.
    let err = e
        .lookup_bytes(
            &Actor::key(1),
            vec![0x89, b'P', b'N', b'G', 0, 0],
            None,
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.http_status() == 400 || err.http_status() == 413,
        "{err:?}"
    );
}

async fn text_content_matches_near_duplicates(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let b = bank(&e, "texts", BankKind::Block, None).await;
    let original = "The quick brown fox jumps over the lazy dog while the farmer watches from the \
        old wooden gate at the edge of the field, counting the sheep that wander past the barn.";
    let edited = "the quick brown fox jumps over the lazy dog while the farmer watches from the \
        old wooden gate at the edge of the field counting the sheep that wander past the red barn!";
    let unrelated = "Quarterly revenue grew on strong demand for cloud services, the company said \
        on Tuesday, while operating costs fell for the third consecutive quarter.";
    let c = e
        .add_content(
            &admin(),
            b.id,
            NewContent {
                source: ContentSource::Text(original.into()),
                labels: vec![],
                note: String::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.signals[0].signal_type, SignalType::TextMinhash);
    let r = e
        .lookup_bytes(&Actor::key(1), edited.as_bytes(), None, Default::default())
        .await
        .unwrap();
    let tm: Vec<_> = r
        .matches
        .iter()
        .filter(|m| m.signal_type == SignalType::TextMinhash)
        .collect();
    assert_eq!(tm.len(), 1, "{r:?}");
    let sim = tm[0].similarity.unwrap();
    assert!(sim > 0.5 && sim <= 1.0, "{sim}");
    let r = e
        .lookup_bytes(
            &Actor::key(1),
            unrelated.as_bytes(),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty());
}

async fn delete_bank_removes_content_everywhere(db: &TestDb) {
    // Two engines on one database stand in for two server processes.
    let a = Engine::open(config(db)).await.unwrap();
    let b = Engine::open(config(db)).await.unwrap();
    let tailer = b.spawn_change_tailer();
    let doomed = bank(&a, "doomed", BankKind::Block, None).await;
    let kept = bank(&a, "kept", BankKind::Block, None).await;
    let h1 = hash(71);
    let h2 = hash(72);
    let hk = hash(73);
    add(&a, &doomed, vec![pdq(h1), md5(&"d1".repeat(16))], &[]).await;
    add(&a, &doomed, vec![pdq(h2)], &[]).await;
    let kept_item = add(&a, &kept, vec![pdq(hk)], &[]).await;
    // A match on the doomed bank, with a decision: history to keep.
    let r = look(&a, vec![pdq(h1)]).await;
    assert_eq!(r.matches.len(), 1);
    let m = a
        .list_matches(MatchFilter {
            submission_id: r.submission_id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].bank_id, doomed.id);
    a.decide(&admin(), m[0].id, Verdict::Confirm, "seen")
        .await
        .unwrap();
    // B sees the doomed bank's content before the delete.
    let started = Instant::now();
    while look(&b, vec![pdq(h2)]).await.matches.len() != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B did not see the bank's content within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    a.delete_bank(&admin(), doomed.id).await.unwrap();
    // A stops matching immediately; the other bank is untouched.
    let r = look(&a, vec![pdq(h1), pdq(h2), md5(&"d1".repeat(16)), pdq(hk)]).await;
    assert_eq!(r.matches.len(), 1, "{r:?}");
    assert_eq!(r.matches[0].content_id, kept_item.id);
    assert!(matches!(
        a.get_bank(doomed.id).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        a.bank_by_name("doomed").await,
        Err(EngineError::NotFound(_))
    ));
    assert!(a
        .list_banks()
        .await
        .unwrap()
        .iter()
        .all(|x| x.id != doomed.id));
    // B stops matching within 2 s.
    let t0 = Instant::now();
    loop {
        let r = look(&b, vec![pdq(h1), pdq(h2), md5(&"d1".repeat(16))]).await;
        if r.matches.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "B still matches the deleted bank after 2 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(look(&b, vec![pdq(hk)]).await.matches.len(), 1);
    tailer.abort();
    // Unknown (and already deleted) banks are NotFound.
    assert!(matches!(
        a.delete_bank(&admin(), doomed.id).await,
        Err(EngineError::NotFound(_))
    ));
    // Match and decision history stays, with the deleted bank's id.
    let kept_match = a.get_match(m[0].id).await.unwrap();
    assert_eq!(kept_match.bank_id, doomed.id);
    assert_eq!(kept_match.status, MatchStatus::Confirmed);
    // The audit keeps the bank as it was.
    let audit = a.audit_log(None, 50).await.unwrap();
    let entry = audit
        .iter()
        .find(|x| x.action == "bank.delete")
        .expect("bank.delete audit entry");
    assert_eq!(entry.target, format!("bank:{}", doomed.id));
    assert!(entry.after.is_none());
    let before = entry.before.as_ref().expect("before");
    assert_eq!(before["name"], "doomed");
    assert_eq!(before["content_deleted"], 2);
    // The name can be reused; the new bank starts empty.
    let again = bank(&a, "doomed", BankKind::Block, None).await;
    assert_ne!(again.id, doomed.id);
    assert!(look(&a, vec![pdq(h1)]).await.matches.is_empty());
    add(&a, &again, vec![pdq(h1)], &[]).await;
    assert_eq!(look(&a, vec![pdq(h1)]).await.matches.len(), 1);
    // A fresh process loads the same picture from the database.
    let c = Engine::open(config(db)).await.unwrap();
    let r = look(&c, vec![pdq(h1), pdq(h2)]).await;
    assert_eq!(r.matches.len(), 1, "{r:?}");
    assert_eq!(r.matches[0].bank_name, "doomed");
    assert_eq!(r.matches[0].bank_id, again.id);
}
