//! Fuzz target: untrusted bytes → in-process PDF extraction with tight
//! limits. Errors are fine; a panic escaping `extract` is a bug (parser
//! panics must come back as `PdfError::Panic`). In production extraction
//! also runs in a limited child process (`isolate`).
#![no_main]

use echotrace_signals::pdf::{extract, PdfLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = PdfLimits {
        max_file_bytes: 1 << 20,
        max_objects: 10_000,
        max_pages: 50,
        max_text_bytes: 1 << 20,
        max_images: 4,
        max_image_bytes: 4 << 20,
        ..PdfLimits::default()
    };
    // Prepend a header half the time so the parser proper is reached.
    if data.first().is_some_and(|b| b & 1 == 1) {
        let mut v = b"%PDF-1.7\n".to_vec();
        v.extend_from_slice(data.get(1..).unwrap_or_default());
        let _ = extract(&v, &limits);
    } else {
        let _ = extract(data, &limits);
    }
});
