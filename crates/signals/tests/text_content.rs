//! Text through the content dispatcher: UTF-8 bytes → text_minhash + digests.

use echotrace_signals::content::{detect_kind, hash_content, ContentKind, HashError, HashOptions};
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::{compare_text, TextSignature};

#[test]
fn utf8_text_gives_text_minhash_then_digests() {
    let bytes =
        "Heavy snow closed the mountain pass road on Monday morning, police said.\n".as_bytes();
    assert_eq!(detect_kind(bytes), Some(ContentKind::Text));
    let sigs = hash_content(bytes, &HashOptions::default()).unwrap();
    let types: Vec<_> = sigs.iter().map(|s| s.signal_type).collect();
    assert_eq!(
        types,
        [SignalType::TextMinhash, SignalType::Md5, SignalType::Sha256]
    );
    let parsed: TextSignature = sigs[0].value.parse().unwrap();
    let bom = hash_content(
        "\u{feff}HEAVY snow closed the mountain pass road on Monday morning — police said"
            .as_bytes(),
        &HashOptions::default(),
    )
    .unwrap();
    let other: TextSignature = bom[0].value.parse().unwrap();
    assert_eq!(compare_text(&parsed, &other).unwrap().jaccard, 1.0);
}

#[test]
fn pdf_needs_an_isolated_extractor() {
    let r = hash_content(b"%PDF-1.4\n...", &HashOptions::default());
    assert!(matches!(r, Err(HashError::Pdf(_))), "{r:?}");
    assert_eq!(detect_kind(b"%PDF-1.7"), Some(ContentKind::Pdf));
    assert_eq!(detect_kind(b"\x00\x01binary"), None);
}
