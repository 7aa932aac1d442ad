//! Per-bank settings: text-equivalence lists (issue 4) and vPDQ share
//! thresholds (issue 7). Every test body runs on a fresh SQLite file and on
//! a fresh PostgreSQL schema at `$ECHOTRACE_TEST_PG_URL`.

use std::time::Duration;

use echotrace_engine::*;
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::{VpdqFeature, VpdqHash};
use echotrace_store::testing::TestDb;

use echotrace_store::both_backends;

mod common;
use common::*;

both_backends!(
    equivalence_lists_are_versioned_per_bank,
    equivalence_lists_apply_to_bytes_and_batches,
    vpdq_share_thresholds_are_per_bank,
);

async fn new_bank(e: &Engine, name: &str, thresholds: Thresholds, list: Option<&str>) -> Bank {
    e.create_bank(
        &admin(),
        NewBank {
            name: name.into(),
            kind: BankKind::Block,
            description: String::new(),
            thresholds,
            text_equivalences: list.map(str::to_string),
        },
    )
    .await
    .unwrap()
}

async fn add_text(e: &Engine, bank: &Bank, text: &str) -> ContentId {
    e.add_content(
        &admin(),
        bank.id,
        NewContent {
            source: ContentSource::Text(text.into()),
            labels: vec![],
            note: String::new(),
        },
    )
    .await
    .unwrap()
    .id
}

/// Raw-text lookup as the API does it: the text's plain signature, plus the
/// text itself so the engine can sign it under each bank's list.
async fn lookup_text(e: &Engine, text: &str) -> Vec<(BankId, ContentId)> {
    let signals: Vec<SignalValue> = e
        .hash_bytes(text.as_bytes())
        .unwrap()
        .into_iter()
        .filter(|s| s.signal_type == SignalType::TextMinhash)
        .collect();
    let r = e
        .lookup_text(
            &Actor::key(1),
            LookupRequest {
                signals,
                banks: None,
                context: SubmissionContext::default(),
            },
            text,
        )
        .await
        .unwrap();
    hits_of(&r)
}

async fn equivalence_lists_are_versioned_per_bank(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let listed = new_bank(&e, "listed", Thresholds::default(), Some("daesh = isis")).await;
    let plain = new_bank(&e, "plain", Thresholds::default(), None).await;
    assert_eq!(listed.text_equivalences.as_deref(), Some("daesh = isis"));
    let v1 = listed.text_equivalences_version.expect("a list version");
    assert_eq!(plain.text_equivalences, None);

    // Three-word texts: one swapped word is a third of the text, beyond the
    // short-text edit rule (0.25), so only the list can make them match.
    let a_listed = add_text(&e, &listed, "report on daesh").await;
    let a_plain = add_text(&e, &plain, "report on daesh").await;
    assert_eq!(
        lookup_text(&e, "report on isis").await,
        vec![(listed.id, a_listed)],
        "the list maps isis to daesh in the listed bank only"
    );
    assert_eq!(
        lookup_text(&e, "Report on DAESH!").await,
        vec![(listed.id, a_listed), (plain.id, a_plain)]
    );
    assert!(lookup_text(&e, "report on weather").await.is_empty());
    // A ready-made signature cannot be re-normalised: compared as-is.
    let ready = e.hash_bytes(b"report on isis").unwrap();
    let r = e
        .lookup(
            &Actor::key(1),
            LookupRequest {
                signals: ready
                    .into_iter()
                    .filter(|s| s.signal_type == SignalType::TextMinhash)
                    .collect(),
                banks: None,
                context: SubmissionContext::default(),
            },
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty(), "{r:?}");
    // The bank filter restricts which versions are in play, not the result.
    let only_plain: Vec<SignalValue> = e
        .hash_bytes(b"report on isis")
        .unwrap()
        .into_iter()
        .filter(|s| s.signal_type == SignalType::TextMinhash)
        .collect();
    let r = e
        .lookup_text(
            &Actor::key(1),
            LookupRequest {
                signals: only_plain,
                banks: Some(vec![plain.id]),
                context: SubmissionContext::default(),
            },
            "report on isis",
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty(), "{r:?}");

    // The match debugger explains it the same way for pasted text.
    let q: Vec<SignalValue> = e
        .hash_bytes(b"report on isis")
        .unwrap()
        .into_iter()
        .filter(|s| s.signal_type == SignalType::TextMinhash)
        .collect();
    let why = console::explain_with_text(e.store(), &q, Some("report on isis"))
        .await
        .unwrap();
    let verdict = |content: ContentId| {
        why.iter()
            .find(|x| x.content_id == content)
            .map(|x| x.verdict)
    };
    assert_eq!(verdict(a_listed), Some(console::Verdict::Match), "{why:?}");
    assert_ne!(verdict(a_plain), Some(console::Verdict::Match), "{why:?}");
    let as_is = console::explain(e.store(), &q).await.unwrap();
    assert!(
        !as_is.iter().any(|x| x.verdict == console::Verdict::Match),
        "{as_is:?}"
    );

    // A bad list is refused with its line number, nothing changes.
    let err = e
        .update_bank(
            &admin(),
            listed.id,
            BankUpdate {
                text_equivalences: Some("daesh = isil\nlonely term".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = e
        .create_bank(
            &admin(),
            NewBank {
                name: "bad".into(),
                kind: BankKind::Block,
                description: String::new(),
                thresholds: Thresholds::default(),
                text_equivalences: Some("# teams\na = b\nc = B".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
    assert!(e.bank_by_name("bad").await.is_err());

    // Change the list: isis is no longer an equivalent of daesh.
    let updated = e
        .update_bank(
            &admin(),
            listed.id,
            BankUpdate {
                text_equivalences: Some("daesh = isil".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v2 = updated.text_equivalences_version.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(updated.text_items_older_list, 1);
    // The same list again is not a new version.
    let same = e
        .update_bank(
            &admin(),
            listed.id,
            BankUpdate {
                text_equivalences: Some("daesh = isil".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same.text_equivalences_version, Some(v2));
    // The old item keeps matching under the version it was signed with.
    assert_eq!(
        lookup_text(&e, "report on isis").await,
        vec![(listed.id, a_listed)]
    );
    // A new item is signed under the new version.
    let b_listed = add_text(&e, &listed, "summary of daesh").await;
    assert_eq!(
        lookup_text(&e, "summary of isil").await,
        vec![(listed.id, b_listed)]
    );
    assert!(lookup_text(&e, "summary of isis").await.is_empty());
    assert_eq!(
        e.get_bank(listed.id).await.unwrap().text_items_older_list,
        1
    );

    // The change is audited with before and after.
    let audit = e.audit_log(None, 50).await.unwrap();
    let list_of =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v["text_equivalences"].clone());
    let upd = audit
        .iter()
        .find(|a| {
            a.action == "bank.update"
                && list_of(&a.before) == Some(serde_json::json!("daesh = isis"))
        })
        .expect("bank.update audited with the list before");
    assert_eq!(list_of(&upd.after), Some(serde_json::json!("daesh = isil")));
    assert_eq!(upd.after.as_ref().unwrap()["text_equivalences_version"], v2);

    // Another process (same database) sees lists, versions and items, both
    // at startup and through the change sequence.
    let other = Engine::open(config(db)).await.unwrap();
    assert_eq!(
        lookup_text(&other, "report on isis").await,
        vec![(listed.id, a_listed)]
    );
    assert_eq!(
        lookup_text(&other, "summary of isil").await,
        vec![(listed.id, b_listed)]
    );
    let third = new_bank(
        &e,
        "third",
        Thresholds::default(),
        Some("rovers = harbour rovers fc"),
    )
    .await;
    let c_third = add_text(&e, &third, "harbour rovers fc won today").await;
    other.sync_changes().await.unwrap();
    assert_eq!(
        lookup_text(&other, "rovers won today").await,
        vec![(third.id, c_third)]
    );

    // Removing the list: every text item is now under an older version, and
    // still matches under it.
    let cleared = e
        .update_bank(
            &admin(),
            listed.id,
            BankUpdate {
                text_equivalences: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.text_equivalences, None);
    assert_eq!(cleared.text_equivalences_version, None);
    assert_eq!(cleared.text_items_older_list, 2);
    assert_eq!(
        lookup_text(&e, "report on isis").await,
        vec![(listed.id, a_listed)]
    );
    // Text added now is signed without a list.
    let d_listed = add_text(&e, &listed, "notes about isil").await;
    assert!(lookup_text(&e, "notes about daesh").await.is_empty());
    assert_eq!(
        lookup_text(&e, "notes about isil").await,
        vec![(listed.id, d_listed)]
    );
    assert_eq!(
        e.get_bank(listed.id).await.unwrap().text_items_older_list,
        2
    );
    // Deleting the bank drops its list versions with it.
    e.delete_bank(&admin(), listed.id).await.unwrap();
    assert!(lookup_text(&e, "report on isis").await.is_empty());
}

/// Sorted (bank, content) pairs of a response's block matches.
fn hits_of(r: &LookupResponse) -> Vec<(BankId, ContentId)> {
    let mut hits: Vec<_> = r
        .matches
        .iter()
        .map(|m| (m.bank_id, m.content_id))
        .collect();
    hits.sort_unstable();
    hits
}

fn request(signals: Vec<SignalValue>, banks: Option<Vec<BankId>>) -> LookupRequest {
    LookupRequest {
        signals,
        banks,
        context: SubmissionContext::default(),
    }
}

/// Lookups by bytes and by batch with raw text honour the lists too (PDF
/// bytes: `crates/server/tests/pdf_api.rs`, which can run the extractor).
async fn equivalence_lists_apply_to_bytes_and_batches(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    let listed = new_bank(&e, "listed", Thresholds::default(), Some("daesh = isis")).await;
    let plain = new_bank(&e, "plain", Thresholds::default(), None).await;
    let a_listed = add_text(&e, &listed, "statement by daesh").await;
    let a_plain = add_text(&e, &plain, "statement by daesh").await;
    let actor = Actor::key(1);

    // Text bytes: the list maps isis to daesh (its first term) in the
    // listed bank only (the plain bank, same item, no list, is the
    // control). Queries say the non-canonical "isis": their plain signature
    // differs from the stored one, so only list-aware signing matches.
    let r = e
        .lookup_bytes(&actor, &b"Statement by ISIS"[..], None, Default::default())
        .await
        .unwrap();
    assert_eq!(hits_of(&r), vec![(listed.id, a_listed)], "{r:?}");
    let r = e
        .lookup_bytes(&actor, &b"statement by daesh"[..], None, Default::default())
        .await
        .unwrap();
    assert_eq!(
        hits_of(&r),
        vec![(listed.id, a_listed), (plain.id, a_plain)]
    );
    // The bank filter decides which lists are in play.
    let r = e
        .lookup_bytes(
            &actor,
            b"statement by isis".to_vec(),
            Some(vec![plain.id]),
            Default::default(),
        )
        .await
        .unwrap();
    assert!(r.matches.is_empty(), "{r:?}");
    // hash_upload hands back the text with its plain signature.
    let up = e
        .hash_upload(bytes::Bytes::from_static(b"statement by isis"))
        .unwrap();
    assert_eq!(
        up.text.as_ref().map(QueryText::as_str),
        Some("statement by isis")
    );
    let plain_sig = e.hash_bytes(b"statement by isis").unwrap();
    assert_eq!(up.signals, plain_sig);
    let png = e.hash_upload(bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\n"));
    assert!(png.is_err(), "a truncated PNG is refused");

    // A batch: raw text alone, raw text next to another signal type, raw
    // text limited to the plain bank, and ready-made signals only.
    let md5 = SignalValue {
        signal_type: SignalType::Md5,
        value: "0".repeat(32),
    };
    // A ready-made signature of the isis text is compared as-is: no list,
    // no match.
    let ready: Vec<SignalValue> = plain_sig
        .iter()
        .filter(|s| s.signal_type == SignalType::TextMinhash)
        .cloned()
        .collect();
    let items = vec![
        (
            request(vec![], None),
            Some(QueryText::from("statement by isis")),
        ),
        (
            request(vec![md5.clone()], None),
            Some("Statement by DAESH!".into()),
        ),
        (
            request(vec![], Some(vec![plain.id])),
            Some(QueryText::from("statement by isis")),
        ),
        (request(ready.clone(), None), None),
        (
            request(vec![], None),
            Some(QueryText::from("weather report today")),
        ),
    ];
    let before = e.list_matches(MatchFilter::default()).await.unwrap().len();
    let results = e.lookup_batch_with_text(&actor, items).await.unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(hits_of(&results[0]), vec![(listed.id, a_listed)]);
    assert_eq!(
        hits_of(&results[1]),
        vec![(listed.id, a_listed), (plain.id, a_plain)]
    );
    assert!(results[2].matches.is_empty(), "{:?}", results[2]);
    assert!(results[3].matches.is_empty(), "{:?}", results[3]);
    assert!(results[4].matches.is_empty(), "{:?}", results[4]);
    let mut ids: Vec<_> = results.iter().map(|r| r.submission_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one submission per item");
    assert_eq!(results[0].matches[0].signal_type, SignalType::TextMinhash);
    let after = e.list_matches(MatchFilter::default()).await.unwrap().len();
    assert_eq!(after - before, 3);

    // Invalid combinations are refused whole: nothing is recorded.
    let bad = [
        vec![
            (
                request(vec![], None),
                Some(QueryText::from("statement by isis")),
            ),
            (
                request(ready.clone(), None),
                Some(QueryText::from("statement by isis")),
            ),
        ],
        vec![
            (
                request(vec![], None),
                Some(QueryText::from("statement by isis")),
            ),
            (request(vec![], None), Some(QueryText::from("!!! ???"))),
        ],
    ];
    for (n, items) in bad.into_iter().enumerate() {
        let err = e.lookup_batch_with_text(&actor, items).await.unwrap_err();
        assert_eq!(err.http_status(), 400, "{n}: {err}");
        assert!(err.to_string().contains("items[1]"), "{n}: {err}");
    }
    assert_eq!(
        e.list_matches(MatchFilter::default()).await.unwrap().len(),
        after
    );

    // Raw query text is bounded: per lookup and per batch in total.
    let small = Engine::open(EngineConfig {
        max_query_text_bytes: 40,
        ..config(db)
    })
    .await
    .unwrap();
    let text = "statement by isis and some more words";
    assert!(text.len() <= 40);
    let two = vec![
        (request(vec![], None), Some(QueryText::from(text))),
        (request(vec![], None), Some(QueryText::from(text))),
    ];
    let err = small.lookup_batch_with_text(&actor, two).await.unwrap_err();
    assert_eq!(err.http_status(), 413, "{err}");
    let one = small
        .lookup_batch_with_text(&actor, vec![(request(vec![], None), Some(text.into()))])
        .await
        .unwrap();
    assert_eq!(one.len(), 1, "one text at the limit is accepted");
    let long = "statement by isis ".repeat(3);
    let err = small
        .lookup_text(
            &actor,
            request(e.hash_bytes(long.as_bytes()).unwrap(), None),
            long,
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 413, "{err}");
}

/// Signing a large raw text under every list version happens on the
/// blocking pool: on a single-threaded runtime, another task keeps running
/// while `lookup_text` signs (the old code stalled it for the whole
/// signing). SQLite only: this is about the runtime, not the store.
#[tokio::test(flavor = "current_thread")]
async fn list_signing_does_not_stall_the_runtime() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let db = TestDb::sqlite();
    let e = Engine::open(config(&db)).await.unwrap();
    let listed = new_bank(&e, "listed", Thresholds::default(), Some("daesh = isis")).await;
    let plain = new_bank(&e, "plain", Thresholds::default(), None).await;
    add_text(&e, &listed, "statement by isis").await;
    add_text(&e, &plain, "statement by isis").await;
    // Distinct words, so every shingle is new work for the signer.
    let text: String = (0..1_600_000u32)
        .map(|i| format!("w{:x} ", i.wrapping_mul(2_654_435_761)))
        .collect();
    let started = Instant::now();
    let signals = e.hash_bytes(text.as_bytes()).unwrap();
    let one_signing = started.elapsed();

    let max_gap = Arc::new(Mutex::new(Duration::ZERO));
    let gap = max_gap.clone();
    let ticker = tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = Instant::now();
            let mut g = gap.lock().unwrap();
            *g = (*g).max(now - last);
            last = now;
        }
    });
    tokio::task::yield_now().await;
    let started = Instant::now();
    let r = e
        .lookup_text(&Actor::key(1), request(signals, None), text)
        .await
        .unwrap();
    let lookup = started.elapsed();
    ticker.abort();
    assert!(r.matches.is_empty());
    let max_gap = *max_gap.lock().unwrap();
    println!("one signing {one_signing:?}, lookup {lookup:?}, longest runtime stall {max_gap:?}");
    // The lookup signs twice (no list, the listed bank's version); on the
    // runtime thread that stalled the ticker for about twice one signing.
    assert!(
        max_gap < one_signing / 2,
        "runtime stalled {max_gap:?} (one signing takes {one_signing:?})"
    );
    db.cleanup().await.unwrap();
}

/// A deterministic pseudo-random PDQ hash.
fn frame_hash(seed: u64) -> PdqHash {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut w = [0u64; 4];
    for v in &mut w {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    PdqHash::from_words(w)
}

/// A vPDQ signal whose frames have the given seeds (one a second).
fn video(seeds: impl IntoIterator<Item = u64>) -> SignalValue {
    let features = seeds
        .into_iter()
        .enumerate()
        .map(|(i, s)| VpdqFeature {
            frame_number: i as u64,
            hash: frame_hash(s),
            quality: 100,
            timestamp: i as f64,
        })
        .collect();
    SignalValue {
        signal_type: SignalType::Vpdq,
        value: VpdqHash { features }.to_signal_string(),
    }
}

fn shares(query: f64, compared: f64) -> Thresholds {
    let mut t = Thresholds::default();
    t.0.insert(VPDQ_QUERY_PCT.into(), query);
    t.0.insert(VPDQ_COMPARED_PCT.into(), compared);
    t
}

async fn vpdq_share_thresholds_are_per_bank(db: &TestDb) {
    let e = Engine::open(config(db)).await.unwrap();
    // Bank video: 20 distinct frames (seeds 0..20).
    let bank_video = video(0..20);
    let default = new_bank(&e, "default-shares", Thresholds::default(), None).await;
    let loose = new_bank(&e, "loose-shares", shares(40.0, 0.0), None).await;
    let strict_compared = new_bank(&e, "compared-90", shares(0.0, 90.0), None).await;
    let mut ids = std::collections::BTreeMap::new();
    for b in [&default, &loose, &strict_compared] {
        let c = e
            .add_content(
                &admin(),
                b.id,
                NewContent {
                    source: ContentSource::Signals(vec![bank_video.clone()]),
                    labels: vec![],
                    note: String::new(),
                },
            )
            .await
            .unwrap();
        ids.insert(b.id, c.id);
    }
    let find = |signal: SignalValue| {
        let e = e.clone();
        async move {
            let r = e
                .lookup(
                    &Actor::key(1),
                    LookupRequest {
                        signals: vec![signal],
                        banks: None,
                        context: SubmissionContext::default(),
                    },
                )
                .await
                .unwrap();
            let mut banks: Vec<(BankId, f64)> = r
                .matches
                .iter()
                .map(|m| (m.bank_id, m.similarity.unwrap_or(-1.0)))
                .collect();
            banks.sort_by_key(|b| b.0);
            banks
        }
    };
    // Partial overlap: 5 of the query's 10 frames are in the bank video
    // (query share 50 %, compared share 5/20 = 25 %).
    let partial = video((15..20).chain(1000..1005));
    let hits = find(partial.clone()).await;
    let banks: Vec<BankId> = hits.iter().map(|h| h.0).collect();
    assert_eq!(
        banks,
        vec![loose.id],
        "only the bank accepting 40 % of the query's frames matches: {hits:?}"
    );
    assert!(
        (hits[0].1 - 0.5).abs() < 1e-9,
        "query share reported: {hits:?}"
    );
    // The whole video: every bank (compared share 100 % ≥ 90 %).
    let banks: Vec<BankId> = find(bank_video.clone()).await.iter().map(|h| h.0).collect();
    assert_eq!(banks, vec![default.id, loose.id, strict_compared.id]);
    // Query = the first 15 frames: query share 100 %, compared 75 % < 90 %.
    let banks: Vec<BankId> = find(video(0..15)).await.iter().map(|h| h.0).collect();
    assert_eq!(banks, vec![default.id, loose.id]);

    // Changing a bank's shares applies at once.
    e.update_bank(
        &admin(),
        default.id,
        BankUpdate {
            thresholds: Some(shares(50.0, 0.0)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let banks: Vec<BankId> = find(partial).await.iter().map(|h| h.0).collect();
    assert_eq!(banks, vec![default.id, loose.id]);

    // Out-of-range shares are refused.
    for bad in [-1.0, 100.5, f64::NAN] {
        let err = e
            .update_bank(
                &admin(),
                loose.id,
                BankUpdate {
                    thresholds: Some(shares(bad, 0.0)),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 400, "{bad}: {err}");
    }
    assert_eq!(ids.len(), 3);
}
