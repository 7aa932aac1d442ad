//! URL canonicalisation (`url-canon-v1`) on arbitrary text: a URL
//! canonicalises or is refused, never a panic; a canonical form is a fixed
//! point (canonicalising it again gives the same URL, digest and host); the
//! digest is the SHA-256 of the canonical form.
#![no_main]

use echotrace_signals::canonical_url::canonicalize_url;
use echotrace_signals::digest::sha256_hex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = canonicalize_url(text) else {
        return;
    };
    assert_eq!(first.sha256, sha256_hex(first.canonical.as_bytes()));
    let again = match canonicalize_url(&first.canonical) {
        Ok(c) => c,
        Err(e) => panic!("canonical form {:?} refused: {e}", first.canonical),
    };
    assert_eq!(again.canonical, first.canonical, "not idempotent for {text:?}");
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(again.host, first.host);
});
