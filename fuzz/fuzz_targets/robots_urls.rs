//! robots.txt rules (texting_robots behind catch_unwind) and URL lists
//! (TXT/CSV): never a panic.
#![no_main]
use echotrace_collector::robots::RobotsRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = RobotsRules::parse(data);
    for p in ["/", "/a/b?c=d", "http://site.test/private/x", "/%zz"] {
        let _ = rules.allowed(p);
    }
    let _ = rules.crawl_delay();
    if let Ok(text) = std::str::from_utf8(data) {
        let (urls, bad) = echotrace_collector::source::read_url_list(text);
        let _ = (urls.len(), bad.len());
        let _ = echotrace_collector::source::SourceConfig::parse(text);
    }
});
