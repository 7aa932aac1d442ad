//! WARC reader: records or errors naming the record, within the caps.
#![no_main]
use echotrace_collector::warc::{parse_http_response, WarcReadLimits, WarcReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = WarcReadLimits {
        max_header_bytes: 4096,
        max_record_bytes: 1 << 16,
        max_skip_bytes: 1 << 20,
    };
    let mut r = WarcReader::new(data, limits);
    let mut n = 0;
    while let Some(rec) = r.next_record() {
        match rec {
            Ok(rec) => {
                if let Some(b) = rec.block.as_deref() {
                    let _ = parse_http_response(b);
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        n += 1;
        if n > 10_000 {
            break;
        }
    }
});
