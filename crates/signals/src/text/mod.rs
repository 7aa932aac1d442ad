//! Text signals: normalisation (`text-norm-v1`), the `text_minhash`
//! signature and the text match rule.
//!
//! * [`normalize`] turns raw text into tokens; rules in [`normalize`]'s
//!   module docs. An optional per-bank [`EquivalenceList`] maps variant
//!   names/phrases to one token on both sides.
//! * [`TextHasher`] builds a [`TextSignature`]: one-permutation MinHash
//!   over word k-shingles plus the shingle-set size (so both Jaccard and
//!   containment can be estimated), and for short texts the token sequence
//!   (layout in [`minhash`]).
//! * [`compare_text`] estimates Jaccard J from the fraction of equal bins and
//!   containment of a in b as `J·(|a|+|b|) / ((1+J)·|a|)` (clamped to 0–1),
//!   then applies a [`TextMatchRule`]: match if J ≥ `jaccard`, or if either
//!   containment ≥ `containment` with the contained side holding at least
//!   `min_contained_shingles` shingles (so a three-word snippet is not
//!   "contained" in every article), or — both texts short — if the
//!   word-level edit distance divided by the longer length is at most
//!   `short_edit`. Default thresholds were chosen on the labelled corpus in
//!   `tests/corpus/text/` (see ARCHITECTURE.md, "Text signals").

pub mod minhash;
pub mod normalize;

pub use minhash::{
    MinHashParams, MinHasher, ShortText, SignatureParseError, TextSignature, SHORT_TEXT_MAX_TOKENS,
};
pub use normalize::{normalize, EquivalenceError, EquivalenceList, NormalizedText};

use serde::Serialize;

/// Text → signature, with fixed parameters and an optional equivalence list.
#[derive(Clone, Debug, Default)]
pub struct TextHasher {
    minhasher: MinHasher,
    equivalences: Option<EquivalenceList>,
}

impl TextHasher {
    pub fn new(params: MinHashParams) -> Self {
        TextHasher {
            minhasher: MinHasher::new(params),
            equivalences: None,
        }
    }

    /// Uses a per-bank equivalence list (apply the same list to both sides).
    pub fn with_equivalences(mut self, list: EquivalenceList) -> Self {
        self.equivalences = Some(list);
        self
    }

    pub fn params(&self) -> MinHashParams {
        self.minhasher.params()
    }

    /// Normalised text after the equivalence list.
    pub fn normalize(&self, text: &str) -> NormalizedText {
        let n = normalize(text);
        match &self.equivalences {
            Some(eq) => eq.apply(&n),
            None => n,
        }
    }

    pub fn hash(&self, text: &str) -> TextSignature {
        self.minhasher
            .sign_normalized(self.normalize(text).as_str())
    }
}

/// Signature with default parameters and no equivalence list.
pub fn text_signature(text: &str) -> TextSignature {
    TextHasher::default().hash(text)
}

/// Thresholds of the text match rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TextMatchRule {
    /// Match when estimated Jaccard ≥ this.
    pub jaccard: f64,
    /// Match when either estimated containment ≥ this…
    pub containment: f64,
    /// …and the contained side has at least this many distinct shingles.
    pub min_contained_shingles: u32,
    /// Short texts: match when word edit distance / longer length ≤ this.
    pub short_edit: f64,
}

impl Default for TextMatchRule {
    fn default() -> Self {
        TextMatchRule {
            jaccard: 0.5,
            containment: 0.7,
            min_contained_shingles: 10,
            short_edit: 0.25,
        }
    }
}

/// Which part of the rule matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Jaccard,
    Containment,
    ShortEdit,
    None,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Jaccard => "jaccard",
            MatchedBy::Containment => "containment",
            MatchedBy::ShortEdit => "short_edit",
            MatchedBy::None => "none",
        }
    }
}

/// Result of comparing two text signatures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TextComparison {
    pub jaccard: f64,
    pub containment_a_in_b: f64,
    pub containment_b_in_a: f64,
    /// Word edit distance / longer length, when both texts are short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_edit_distance: Option<f64>,
    #[serde(rename = "match")]
    pub is_match: bool,
    pub rule: MatchedBy,
}

/// An operand of a comparison whose text has no words
/// ([`TextSignature::has_words`]): empty, blank or punctuation only. Its
/// signature is similar to nothing, so "no match" would be an answer about
/// nothing; callers refuse it instead, naming the operand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}: text has no words to compare (it is empty, blank or only punctuation)")]
pub struct NoWords(pub String);

/// `Ok` when `sig`'s text has words, else [`NoWords`] naming `operand`
/// (a request field such as `a`, or the path a user gave).
pub fn require_words(operand: &str, sig: &TextSignature) -> Result<(), NoWords> {
    if sig.has_words() {
        Ok(())
    } else {
        Err(NoWords(operand.to_string()))
    }
}

/// Signatures built with different parameters cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("incompatible text signatures: K {0} vs {1}, shingle size {2} vs {3}")]
pub struct IncompatibleSignatures(pub usize, pub usize, pub u8, pub u8);

/// Estimated Jaccard similarity: fraction of equal bins (0 if either is empty).
pub fn estimate_jaccard(a: &TextSignature, b: &TextSignature) -> f64 {
    if a.set_size == 0 || b.set_size == 0 || a.mins.len() != b.mins.len() || a.mins.is_empty() {
        return 0.0;
    }
    let equal = a.mins.iter().zip(&b.mins).filter(|(x, y)| x == y).count();
    equal as f64 / a.mins.len() as f64
}

/// Containment of a (size `a`) in b (size `b`) from Jaccard `j`.
pub fn containment_from_jaccard(j: f64, a: u32, b: u32) -> f64 {
    if a == 0 || j <= 0.0 {
        return 0.0;
    }
    let c = j * (f64::from(a) + f64::from(b)) / ((1.0 + j) * f64::from(a));
    c.clamp(0.0, 1.0)
}

/// Compares with the default rule.
pub fn compare_text(
    a: &TextSignature,
    b: &TextSignature,
) -> Result<TextComparison, IncompatibleSignatures> {
    compare_text_with(a, b, &TextMatchRule::default())
}

pub fn compare_text_with(
    a: &TextSignature,
    b: &TextSignature,
    rule: &TextMatchRule,
) -> Result<TextComparison, IncompatibleSignatures> {
    if a.mins.len() != b.mins.len() || a.shingle_size != b.shingle_size {
        return Err(IncompatibleSignatures(
            a.mins.len(),
            b.mins.len(),
            a.shingle_size,
            b.shingle_size,
        ));
    }
    let jaccard = estimate_jaccard(a, b);
    let c_ab = containment_from_jaccard(jaccard, a.set_size, b.set_size);
    let c_ba = containment_from_jaccard(jaccard, b.set_size, a.set_size);
    let short_edit_distance = match (&a.short, &b.short) {
        (Some(sa), Some(sb)) => Some(if sa.digest == sb.digest {
            0.0
        } else {
            normalized_edit_distance(&sa.tokens, &sb.tokens)
        }),
        _ => None,
    };
    let contained_ok = (c_ab >= rule.containment && a.set_size >= rule.min_contained_shingles)
        || (c_ba >= rule.containment && b.set_size >= rule.min_contained_shingles);
    let rule_hit = if jaccard >= rule.jaccard && jaccard > 0.0 {
        MatchedBy::Jaccard
    } else if contained_ok {
        MatchedBy::Containment
    } else if short_edit_distance.is_some_and(|d| d <= rule.short_edit) {
        MatchedBy::ShortEdit
    } else {
        MatchedBy::None
    };
    Ok(TextComparison {
        jaccard,
        containment_a_in_b: c_ab,
        containment_b_in_a: c_ba,
        short_edit_distance,
        is_match: rule_hit != MatchedBy::None,
        rule: rule_hit,
    })
}

/// Word-level Levenshtein distance divided by the longer length (0–1).
pub fn normalized_edit_distance(a: &[u32], b: &[u32]) -> f64 {
    let longer = a.len().max(b.len());
    if longer == 0 {
        return 0.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i + 1;
        }
        for (j, y) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(x != y);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(longer) as f64 / longer as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_texts_match_by_jaccard() {
        let a = text_signature("Heavy rain is expected across the northern valleys on Tuesday, with flooding possible near the river.");
        let c = compare_text(&a, &a).unwrap();
        assert_eq!(c.jaccard, 1.0);
        assert!(c.is_match);
        assert_eq!(c.rule, MatchedBy::Jaccard);
    }

    #[test]
    fn edit_distance() {
        assert_eq!(normalized_edit_distance(&[1, 2, 3, 4], &[1, 2, 9, 4]), 0.25);
        assert_eq!(normalized_edit_distance(&[1, 2, 3], &[1, 2, 3]), 0.0);
        assert_eq!(normalized_edit_distance(&[], &[1, 2]), 1.0);
        assert_eq!(normalized_edit_distance(&[1, 2, 3, 4], &[2, 3, 4]), 0.25);
    }

    #[test]
    fn containment_formula() {
        // a ⊂ b, |a| = 10, |b| = 30 → J = 1/3 → containment 1.
        let c = containment_from_jaccard(1.0 / 3.0, 10, 30);
        assert!((c - 1.0).abs() < 1e-9);
        assert_eq!(containment_from_jaccard(0.0, 10, 30), 0.0);
    }

    #[test]
    fn incompatible_parameters_rejected() {
        let a = TextHasher::new(MinHashParams {
            num_bins: 64,
            shingle_size: 3,
        })
        .hash("a b c d");
        let b = text_signature("a b c d");
        assert!(compare_text(&a, &b).is_err());
    }
}
