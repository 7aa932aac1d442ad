//! Properties of `text-norm-v1` on arbitrary Unicode input.

use echotrace_signals::text::{normalize, text_signature, TextSignature};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn idempotent_and_well_formed(s in "\\PC{0,40}") {
        let n = normalize(&s);
        prop_assert!(n.tokens().all(|t| !t.is_empty() && !t.contains(' ')));
        let again = normalize(n.as_str());
        prop_assert_eq!(again.as_str(), n.as_str());
    }

    #[test]
    fn mixed_scripts_idempotent(s in "[a-zA-Zé \u{0600}-\u{06FF}\u{0E00}-\u{0E7F}\u{4E00}-\u{4E20}\u{3040}-\u{30FF}\u{AC00}-\u{AC20}\u{200B}-\u{200F}0-9.,!]{0,40}") {
        let n = normalize(&s);
        let again = normalize(n.as_str());
        prop_assert_eq!(again.as_str(), n.as_str());
    }

    #[test]
    fn ascii_fast_path_equals_unicode_path(s in "[ -~\t\n]{0,60}") {
        // Appending a non-ASCII no-op character (a zero-width space, removed
        // by rule 4) to every chunk forces the full Unicode pipeline.
        let slow: String = s
            .split(|c: char| c.is_ascii_whitespace())
            .map(|w| format!("{w}\u{200B}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (fast, full) = (normalize(&s), normalize(&slow));
        prop_assert_eq!(fast.as_str(), full.as_str());
    }

    #[test]
    fn signatures_round_trip(s in "\\PC{0,200}") {
        let sig = text_signature(&s);
        let back: TextSignature = sig.to_string().parse().unwrap();
        prop_assert_eq!(back, sig);
    }
}
