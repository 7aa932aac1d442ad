//! Fuzz target: arbitrary bytes as Tesseract TSV output → `ocr::parse_tsv`,
//! and as RGB pixels → the text-presence gate and the OCR input encoder.
//! Nothing may panic; kept words carry their confidence in 0–100; the
//! signed text holds only kept words; the prepared PGM is exactly
//! header + width × height bytes within the limits.
#![no_main]

use echotrace_signals::ocr::{parse_tsv, prepare, text_presence, OcrLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tsv = String::from_utf8_lossy(data);
    let out = parse_tsv(&tsv, 40.0);
    for w in &out.words {
        assert!((0.0..=100.0).contains(&w.confidence));
        assert!(!w.text.is_empty());
    }
    let kept: usize = out.words.iter().filter(|w| w.kept).count();
    assert!(out.text.split_whitespace().count() >= kept.min(1) * usize::from(!out.text.is_empty()));
    if data.len() >= 2 {
        let w = u32::from(data[0]) + 1;
        let h = u32::from(data[1]) + 1;
        let px = &data[2..];
        let _ = text_presence(px, w, h);
        let limits = OcrLimits {
            max_side: 64,
            max_pixels: 2048,
            ..OcrLimits::default()
        };
        if let Some(p) = prepare(px, w, h, &limits) {
            let header = format!("P5\n{} {}\n255\n", p.width, p.height);
            assert_eq!(p.pgm.len(), header.len() + (p.width * p.height) as usize);
            assert!(p.width <= 64 && p.height <= 64);
        }
    }
});
