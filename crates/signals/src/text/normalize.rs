//! Text normalisation `text-norm-v1`: raw text → a sequence of tokens.
//!
//! Two texts that a human reader would call "the same words" must give the
//! same tokens, whatever the keyboard, encoding tricks or decoration used.
//! The rules below are applied in this order and are part of the signal
//! format: changing any of them changes every `text_minhash` and needs a new
//! version name.
//!
//! 1. **NFKC** (`unicode-normalization`): compatibility forms fold to their
//!    plain letters (ﬁ → fi, full-width Ａ → A, ² → 2, Arabic presentation
//!    forms → base letters, NBSP → space).
//! 2. **Full case folding** with the `caseless` crate (`default_case_fold_str`,
//!    Unicode CaseFolding.txt statuses C+F — not `str::to_lowercase`): ß → ss,
//!    final sigma ς → σ, ﬀ → ff, Cherokee and Deseret fold too. Turkish dotted
//!    İ folds to i + U+0307, whose dot rule 3 removes.
//! 3. **Strip combining marks**: canonical decomposition (NFD), then every
//!    character with General_Category Mark is dropped. This removes Latin
//!    accents (é → e), Greek tonos and all Arabic harakat (fatha, damma,
//!    kasra, tanwin, shadda, sukun U+064B–U+065F, superscript alef U+0670,
//!    Quranic marks U+0610–U+061A and U+06D6–U+06ED — those ranges are also
//!    removed explicitly, since a few of their code points are not marks).
//!    Hamza above/below decompose into marks, so أ إ آ ؤ ئ lose them here.
//!    Deliberately aggressive: Indic and Thai vowel signs are marks too and
//!    are dropped; that loses a little discrimination, applied identically to
//!    both sides of every comparison.
//! 4. **Remove invisible characters**: Arabic tatweel U+0640; zero-width
//!    characters U+200B–U+200D, U+2060–U+2064, U+FEFF, soft hyphen U+00AD,
//!    Mongolian vowel separator U+180E; bidi controls U+200E, U+200F,
//!    U+202A–U+202E, U+2066–U+2069 and the Arabic letter mark U+061C. They
//!    are removed without leaving a space, so `ka\u{200B}boom` = `kaboom`.
//! 5. **Fold Arabic-script letter variants**: alef forms أ إ آ ٱ → ا,
//!    alef maqsura ى → ي, teh marbuta ة → ه, Persian yeh ی → ي and Persian
//!    keheh ک → ك (so Arabic- and Persian-keyboard spellings agree).
//! 6. **Digits**: Arabic-Indic U+0660–U+0669 and Persian U+06F0–U+06F9 →
//!    ASCII 0–9 (other scripts' digits stay as they are).
//! 7. **Punctuation → space**: every character that is not alphanumeric
//!    (`char::is_alphanumeric`) becomes a space. That covers punctuation,
//!    symbols, emoji and control characters: emoji are *not* tokens. An
//!    apostrophe therefore splits (`don't` → `don t`), the same on both sides.
//! 8. Canonical recomposition (NFC), which only matters for Hangul after
//!    rule 3 decomposed its syllables.
//! 9. **Segmentation**: text in scripts written without spaces (Han,
//!    Hiragana, Katakana, Bopomofo, Thai, Lao, Khmer, Myanmar) is cut into
//!    runs; each run becomes overlapping character bigrams (a one-character
//!    run is one token). Everything else is split into words by UAX #29
//!    (`unicode-segmentation`'s `unicode_words`), which after rule 7 amounts
//!    to splitting at whitespace. Whitespace is thereby collapsed.
//!
//! The result is the tokens joined by single spaces (tokens never contain
//! a space). ASCII chunks take a fast path (lowercase + rule 7) that gives
//! exactly the result of the full pipeline; a test checks the two agree.
//!
//! [`EquivalenceList`] optionally maps variant names and phrases
//! (`daesh = isis = isil = islamic state`) to one token, applied to the
//! token sequence of both texts before shingling.

use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// The normalisation version name, part of the signal format.
pub const NORMALIZATION_VERSION: &str = "text-norm-v1";

/// Normalised text: tokens separated by single spaces.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NormalizedText {
    text: String,
}

impl NormalizedText {
    /// Builds from already-normalised tokens (used by [`EquivalenceList`]).
    fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut text = String::new();
        for t in tokens {
            if t.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(t);
        }
        NormalizedText { text }
    }

    /// The normalised text, tokens joined by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + '_ {
        self.text.split(' ').filter(|t| !t.is_empty())
    }

    /// Number of tokens.
    pub fn token_count(&self) -> usize {
        self.tokens().count()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Normalises `text` with `text-norm-v1` (see the module documentation).
pub fn normalize(text: &str) -> NormalizedText {
    if text.is_ascii() {
        // All-ASCII text needs no chunking: ASCII whitespace is not
        // alphanumeric, so the chunk fast path handles the whole text.
        let mut out = String::with_capacity(text.len());
        push_ascii_chunk(text, &mut out);
        return NormalizedText { text: out };
    }
    let mut out = String::with_capacity(text.len());
    // Rules 1–9 never join across ASCII whitespace (a space is an NFKC
    // starter, is never folded and always ends a word and a bigram run), so
    // the text is processed chunk by chunk and ASCII chunks take a fast path.
    for chunk in text.split(|c: char| c.is_ascii_whitespace()) {
        if chunk.is_empty() {
            continue;
        }
        if chunk.is_ascii() {
            push_ascii_chunk(chunk, &mut out);
        } else {
            push_unicode_chunk(chunk, &mut out);
        }
    }
    NormalizedText { text: out }
}

fn push_token(out: &mut String, token: &str) {
    if token.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(token);
}

fn push_ascii_chunk(chunk: &str, out: &mut String) {
    let mut in_token = false;
    for b in chunk.bytes() {
        if b.is_ascii_alphanumeric() {
            if !in_token {
                if !out.is_empty() {
                    out.push(' ');
                }
                in_token = true;
            }
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            in_token = false;
        }
    }
}

/// Full pipeline for one chunk (no ASCII whitespace inside).
pub(crate) fn push_unicode_chunk(chunk: &str, out: &mut String) {
    // Rules 1–2.
    let folded = caseless::default_case_fold_str(&chunk.nfkc().collect::<String>());
    // Rules 3–7 on the canonical decomposition.
    let mut cleaned = String::with_capacity(folded.len());
    for c in folded.nfd() {
        if unicode_normalization::char::is_combining_mark(c) || is_stripped(c) {
            continue;
        }
        let c = fold_letter(c);
        if c.is_alphanumeric() {
            cleaned.push(c);
        } else {
            cleaned.push(' ');
        }
    }
    // Rule 8.
    let recomposed: String = cleaned.nfc().collect();
    // Rule 9.
    let mut run_start: Option<usize> = None;
    let mut other_start = 0usize;
    for (i, c) in recomposed.char_indices() {
        if is_unspaced_script(c) {
            if run_start.is_none() {
                push_words(recomposed.get(other_start..i).unwrap_or(""), out);
                run_start = Some(i);
            }
        } else if let Some(start) = run_start.take() {
            push_bigrams(recomposed.get(start..i).unwrap_or(""), out);
            other_start = i;
        }
    }
    match run_start {
        Some(start) => push_bigrams(recomposed.get(start..).unwrap_or(""), out),
        None => push_words(recomposed.get(other_start..).unwrap_or(""), out),
    }
}

fn push_words(segment: &str, out: &mut String) {
    for w in segment.unicode_words() {
        // After rule 7 a UAX #29 word can only hold alphanumerics, but keep
        // tokens space-free whatever the segmenter does.
        for part in w.split_whitespace() {
            push_token(out, part);
        }
    }
}

fn push_bigrams(run: &str, out: &mut String) {
    let mut chars = run.char_indices().peekable();
    let mut emitted = false;
    while let Some((i, _)) = chars.next() {
        let Some(&(j, c2)) = chars.peek() else {
            break;
        };
        push_token(out, run.get(i..j + c2.len_utf8()).unwrap_or(""));
        emitted = true;
    }
    if !emitted {
        push_token(out, run);
    }
}

/// Rules 3 (explicit Arabic ranges) and 4.
fn is_stripped(c: char) -> bool {
    matches!(c,
        '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{06D6}'..='\u{06ED}'
        | '\u{0640}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{00AD}'
        | '\u{180E}'
        | '\u{061C}')
}

/// Rules 5 and 6.
fn fold_letter(c: char) -> char {
    match c {
        '\u{0623}' | '\u{0625}' | '\u{0622}' | '\u{0671}' => '\u{0627}',
        '\u{0649}' | '\u{06CC}' => '\u{064A}',
        '\u{0629}' => '\u{0647}',
        '\u{06A9}' => '\u{0643}',
        '\u{0660}'..='\u{0669}' => digit(c as u32 - 0x0660),
        '\u{06F0}'..='\u{06F9}' => digit(c as u32 - 0x06F0),
        _ => c,
    }
}

fn digit(d: u32) -> char {
    char::from_digit(d, 10).unwrap_or('0')
}

/// Scripts written without spaces between words (rule 9).
fn is_unspaced_script(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'      // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'    // CJK compatibility ideographs
        | '\u{20000}'..='\u{3FFFF}'  // CJK extensions B and later
        | '\u{3040}'..='\u{309F}'    // Hiragana
        | '\u{30A0}'..='\u{30FF}'    // Katakana
        | '\u{31F0}'..='\u{31FF}'    // Katakana phonetic extensions
        | '\u{3100}'..='\u{312F}'    // Bopomofo
        | '\u{31A0}'..='\u{31BF}'    // Bopomofo extended
        | '\u{0E00}'..='\u{0E7F}'    // Thai
        | '\u{0E80}'..='\u{0EFF}'    // Lao
        | '\u{1780}'..='\u{17FF}'    // Khmer
        | '\u{1000}'..='\u{109F}') // Myanmar
}

/// Error from [`EquivalenceList::parse`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EquivalenceError {
    #[error("line {line}: a group needs at least two terms separated by '='")]
    TooFewTerms { line: usize },
    #[error("line {line}: term {term:?} is empty after normalisation")]
    EmptyTerm { line: usize, term: String },
    #[error("line {line}: term {term:?} already belongs to another group")]
    DuplicateTerm { line: usize, term: String },
    #[error("equivalence list too large ({0} terms, limit {MAX_TERMS})")]
    TooLarge(usize),
}

/// Upper bound on the number of terms in one list.
pub const MAX_TERMS: usize = 100_000;

/// Per-bank equivalence list: groups of names or phrases that mean the same
/// thing (`daesh = isis = isil = islamic state`). Every term of a group is
/// replaced by one canonical token on both sides of a comparison.
///
/// Format: one group per line, terms separated by `=`; blank lines and lines
/// starting with `#` are ignored. Terms are normalised with `text-norm-v1`,
/// so case, accents and punctuation do not matter, and may be several words.
/// The canonical token is the first term's tokens joined by `_` (which
/// cannot occur in normalised text, so it never collides with a real word).
/// Matching is greedy, longest phrase first, left to right.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EquivalenceList {
    /// First token → (phrase tokens, canonical token), longest phrase first.
    by_first: HashMap<String, Vec<(Vec<String>, String)>>,
}

impl EquivalenceList {
    pub fn parse(list: &str) -> Result<Self, EquivalenceError> {
        let mut by_first: HashMap<String, Vec<(Vec<String>, String)>> = HashMap::new();
        let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
        let mut terms = 0usize;
        for (idx, raw) in list.lines().enumerate() {
            let line = idx + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = trimmed.split('=').collect();
            if parts.len() < 2 {
                return Err(EquivalenceError::TooFewTerms { line });
            }
            let mut canonical: Option<String> = None;
            for part in parts {
                terms += 1;
                if terms > MAX_TERMS {
                    return Err(EquivalenceError::TooLarge(terms));
                }
                let toks: Vec<String> = normalize(part).tokens().map(str::to_string).collect();
                let Some(first) = toks.first().cloned() else {
                    return Err(EquivalenceError::EmptyTerm {
                        line,
                        term: part.trim().to_string(),
                    });
                };
                if seen.get(&toks).is_some_and(|&l| l != line) {
                    return Err(EquivalenceError::DuplicateTerm {
                        line,
                        term: part.trim().to_string(),
                    });
                }
                seen.insert(toks.clone(), line);
                let canon = canonical.get_or_insert_with(|| toks.join("_")).clone();
                by_first.entry(first).or_default().push((toks, canon));
            }
        }
        for phrases in by_first.values_mut() {
            phrases.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
            phrases.dedup_by(|a, b| a.0 == b.0);
        }
        Ok(EquivalenceList { by_first })
    }

    pub fn is_empty(&self) -> bool {
        self.by_first.is_empty()
    }

    /// Replaces every term by its group's canonical token.
    pub fn apply(&self, text: &NormalizedText) -> NormalizedText {
        if self.by_first.is_empty() {
            return text.clone();
        }
        let tokens: Vec<&str> = text.tokens().collect();
        let mut out: Vec<&str> = Vec::with_capacity(tokens.len());
        let mut i = 0;
        while let Some(&tok) = tokens.get(i) {
            let hit = self.by_first.get(tok).and_then(|phrases| {
                phrases.iter().find(|(p, _)| {
                    tokens
                        .get(i..i + p.len())
                        .is_some_and(|w| w.iter().zip(p).all(|(a, b)| *a == b))
                })
            });
            match hit {
                Some((p, canon)) => {
                    out.push(canon.as_str());
                    i += p.len().max(1);
                }
                None => {
                    out.push(tok);
                    i += 1;
                }
            }
        }
        NormalizedText::from_tokens(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).as_str().to_string()
    }

    #[test]
    fn nfkc_and_case_folding() {
        assert_eq!(n("ﬁnal ＡＢＣ x²"), "final abc x2");
        assert_eq!(n("STRASSE Straße"), "strasse strasse");
        assert_eq!(n("ΣΟΦΟΣ σοφος"), "σοφοσ σοφοσ");
        assert_eq!(n("İstanbul"), "istanbul");
    }

    #[test]
    fn accents_stripped() {
        assert_eq!(
            n("Café Zürich naïve São Paulo"),
            "cafe zurich naive sao paulo"
        );
        // Decomposed input gives the same.
        assert_eq!(n("Cafe\u{301}"), "cafe");
    }

    #[test]
    fn arabic_harakat_tatweel_and_letters() {
        // مُحَمَّد with harakat and tatweel → محمد
        assert_eq!(n("مُحَـــمَّد"), "محمد");
        assert_eq!(n("أحمد إبراهيم آمن ٱلله"), "احمد ابراهيم امن الله");
        assert_eq!(n("مستشفى مدرسة"), "مستشفي مدرسه");
        assert_eq!(n("\u{0670}\u{0610}كتاب\u{06D6}"), "كتاب");
    }

    #[test]
    fn persian_letters_and_digits() {
        assert_eq!(n("یک کتاب"), n("يك كتاب"));
        assert_eq!(n("۱۲۳ ٤٥٦"), "123 456");
    }

    #[test]
    fn invisible_and_bidi_removed() {
        assert_eq!(n("ka\u{200B}boom"), "kaboom");
        assert_eq!(n("\u{202E}abc\u{202C} \u{2066}d\u{2069}\u{FEFF}"), "abc d");
        assert_eq!(n("co\u{00AD}operate"), "cooperate");
    }

    #[test]
    fn punctuation_whitespace_and_emoji() {
        assert_eq!(
            n("  Hello,   world!!\n\t(again) — yes…"),
            "hello world again yes"
        );
        assert_eq!(n("goal ⚽\u{FE0F} scored 🎉🎉"), "goal scored");
        assert_eq!(n("don't"), "don t");
        assert_eq!(n("👍"), "");
    }

    #[test]
    fn cjk_and_thai_bigrams() {
        assert_eq!(n("東京大学"), "東京 京大 大学");
        assert_eq!(n("雨。晴れ"), "雨 晴れ");
        assert_eq!(n("ภาษาไทย"), n("ภาษาไทย"));
        assert!(n("ฝนตกหนัก").split(' ').all(|t| t.chars().count() <= 2));
        // Mixed Latin and Han in one chunk.
        assert_eq!(n("abc東京"), "abc 東京");
        // Half-width katakana folds under NFKC.
        assert_eq!(n("ｶﾀｶﾅ"), n("カタカナ"));
    }

    #[test]
    fn hangul_recomposed() {
        assert_eq!(n("한국어 뉴스"), "한국어 뉴스");
    }

    #[test]
    fn ascii_fast_path_matches_full_pipeline() {
        let samples = [
            "Hello, World! 123 abc-def don't",
            "A\u{7f}b\tc\x01d",
            "UPPER lower MiXeD 2024-05-01",
        ];
        // Every ASCII byte, and pseudo-random ASCII strings.
        let all: String = (0u8..128).map(char::from).collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<String> = (0..200)
            .map(|_| {
                (0..(x % 97))
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from((x % 128) as u8)
                    })
                    .collect()
            })
            .collect();
        for s in samples
            .iter()
            .copied()
            .chain([all.as_str()])
            .chain(random.iter().map(String::as_str))
        {
            let mut slow = String::new();
            for chunk in s
                .split(|c: char| c.is_ascii_whitespace())
                .filter(|c| !c.is_empty())
            {
                push_unicode_chunk(chunk, &mut slow);
            }
            assert_eq!(normalize(s).as_str(), slow, "{s:?}");
        }
    }

    #[test]
    fn equivalence_list() {
        let list = EquivalenceList::parse(
            "# teams\nRovers = Rvrs FC = Harbour Rovers\n\nLakeside = Lakeside United = LUFC\n",
        )
        .unwrap();
        let a = list.apply(&normalize("Harbour Rovers beat Lakeside United 2-1"));
        let b = list.apply(&normalize("RVRS fc beat LUFC 2-1"));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "rovers beat lakeside 2 1");
        let multi = EquivalenceList::parse("islamic state = daesh = isis").unwrap();
        assert_eq!(
            multi.apply(&normalize("ISIS and Daesh")).as_str(),
            "islamic_state and islamic_state"
        );
    }

    #[test]
    fn equivalence_list_errors() {
        assert_eq!(
            EquivalenceList::parse("alone"),
            Err(EquivalenceError::TooFewTerms { line: 1 })
        );
        assert!(matches!(
            EquivalenceList::parse("a = !!!"),
            Err(EquivalenceError::EmptyTerm { line: 1, .. })
        ));
        assert!(matches!(
            EquivalenceList::parse("a = b\nc = B"),
            Err(EquivalenceError::DuplicateTerm { line: 2, .. })
        ));
        assert!(EquivalenceList::parse("").unwrap().is_empty());
    }
}
