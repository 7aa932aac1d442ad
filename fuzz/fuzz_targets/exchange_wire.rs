//! The exchange adapters' JSON wire parsers on untrusted response bodies: a
//! ThreatExchange `threat_updates` page, a TCAP hash-list and URL-list page,
//! and a publishing echotrace's feed page. The first byte picks the parser.
//! A page parses or is refused with an error; a record is kept or skipped
//! with a reason. Never a panic; reasons stay bounded. (Hash-list files, line
//! by line: `hash_lists`.)
#![no_main]

use echotrace_exchange::adapter::{peer, tat, te, Page, Parsed, MAX_REASONS};
use libfuzzer_sys::fuzz_target;

fn check<C>(parsed: Result<Parsed<C>, echotrace_exchange::FetchError>, body: &[u8]) {
    let Ok(Parsed { page, .. }) = parsed else {
        return;
    };
    let Page {
        records,
        malformed,
        malformed_count,
        unsupported,
        ..
    } = page;
    assert!(malformed.len() <= MAX_REASONS, "reasons unbounded");
    assert!(malformed.len() as u64 <= malformed_count);
    assert!(malformed.iter().all(|r| r.chars().count() <= 64 + 2 + 200));
    // Every record, kept or skipped, took at least two bytes of the body.
    let seen = records.len() as u64 + malformed_count + unsupported;
    assert!(seen <= body.len() as u64);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => check(te::parse_updates_page(body, "1234567890", 0), body),
        1 => check(tat::parse_hash_page(body), body),
        2 => check(tat::parse_url_page(body), body),
        _ => check(peer::parse_feed_page(body, u32::from(pick / 4) + 1), body),
    }
});
