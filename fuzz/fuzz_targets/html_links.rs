//! HTML text and link extraction (lol_html) with locker probes: bounded
//! links and text, never a panic.
#![no_main]
use echotrace_collector::html::{extract, HtmlLimits, Probe};
use echotrace_collector::locker::LockerTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = url::Url::parse("http://site.test/dir/page.html").expect("base");
    let limits = HtmlLimits {
        max_links: 50,
        max_text_bytes: 1 << 14,
        max_parser_memory: 1 << 20,
    };
    let table = LockerTable::builtin();
    let probes: Vec<Probe> = table.rules().iter().flat_map(LockerTable::probes).collect();
    if let Ok(p) = extract(data, &base, None, &limits, &probes) {
        assert!(p.links.len() <= 50);
        assert!(p.text.len() <= 1 << 14);
        if let Some(rule) = table.rules().first() {
            let _ = LockerTable::resolve(rule, 200, &p);
        }
    }
});
