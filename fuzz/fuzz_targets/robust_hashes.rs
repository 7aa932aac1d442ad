//! Robust matching on hostile input: any bytes that decode as an image go
//! through the border detectors, the query set and the bank windows; any
//! string goes through the derived-hash parser (`dpdq1:`). None may panic.
#![no_main]

use echotrace_signals::content::{ContentHasher, HashOptions, RobustRole};
use echotrace_signals::robust::{decode_bank_hashes, encode_bank_hashes, RobustOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(list) = decode_bank_hashes(s) {
            assert_eq!(decode_bank_hashes(&encode_bank_hashes(&list)), Some(list));
        }
    }
    let opts = HashOptions::default();
    let robust = RobustOptions::default();
    let mut h = ContentHasher::new();
    let _ = h.hash_robust(data, &opts, RobustRole::Query, &robust);
    let _ = h.hash_robust(data, &opts, RobustRole::BankEntry, &robust);
});
