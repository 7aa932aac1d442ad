//! Spread tracking's parsers on arbitrary input: the check schedule, the
//! removal-rules JSON (and classifying a page with the rules), the report
//! window's times, and the HTML text used to re-hash served pages. None
//! may panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = echotrace_spread::schedule::Schedule::parse(&text) {
        assert!(!s.offsets().is_empty());
        assert!(s.offsets().windows(2).all(|w| w[0] < w[1]));
        let _ = s.next_after(0, s.horizon() / 2);
    }
    if let Ok(rules) = echotrace_spread::rules::RemovalRules::parse_json(&text) {
        let _ = rules.classify("files.example", 200, "http://files.example/x", data);
    }
    let _ = echotrace_spread::rules::RemovalRules::builtin().classify("x.example", 200, &text, data);
    if let Some(t) = echotrace_spread::time::parse_time(&text) {
        let _ = echotrace_spread::time::fmt_ts(t);
    }
    let _ = echotrace_spread::time::window(Some(&text), None, 1_767_225_600_000);
    let html = echotrace_spread::rehash::html_text(data);
    assert!(html.len() <= 3 * data.len() + 16);
    let _ = echotrace_spread::rehash::looks_like_html(data);
});
