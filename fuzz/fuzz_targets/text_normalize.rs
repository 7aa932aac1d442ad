//! Fuzz target: arbitrary text → `text-norm-v1` → `text_minhash`, and
//! arbitrary strings → the signature parser. Normalisation must be
//! idempotent, the all-ASCII fast path must agree with the general path,
//! tokens must be non-empty and space-free, signatures must round-trip, and
//! nothing may panic.
#![no_main]

use echotrace_signals::text::{normalize, text_signature, TextSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let n = normalize(&text);
    assert!(n.tokens().all(|t| !t.is_empty() && !t.contains(' ')));
    assert_eq!(normalize(n.as_str()).as_str(), n.as_str(), "not idempotent");
    if text.is_ascii() {
        // Differential check of the all-ASCII fast path: a trailing tatweel
        // (removed by rule 4) sends the same text down the general path.
        let general = normalize(&format!("{text} \u{640}"));
        assert_eq!(general.as_str(), n.as_str(), "ASCII fast path differs");
    }
    let sig = text_signature(&text);
    let back: TextSignature = sig.to_string().parse().expect("own signature parses");
    assert_eq!(back, sig);
    if let Ok(parsed) = text.parse::<TextSignature>() {
        assert_eq!(
            parsed.to_string().parse::<TextSignature>().ok(),
            Some(parsed)
        );
    }
});
