//! Feed parser (RSS, Atom, JSON Feed via feed-rs): links or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = url::Url::parse("http://site.test/feed.xml").expect("base");
    if let Ok(f) = echotrace_collector::feed::parse_feed(data, &base, 100) {
        assert!(f.links.len() <= 100);
    }
});
