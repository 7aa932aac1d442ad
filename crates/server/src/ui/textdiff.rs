//! Side-by-side text comparison for text matches: marks the words of each
//! text that belong to a run of at least [`SHINGLE`] consecutive normalised
//! words also present in the other text. The output is a list of segments
//! (text, highlighted) so the templates escape every byte themselves.

use std::collections::HashSet;

/// Words per shared run before it is highlighted.
pub const SHINGLE: usize = 3;

fn norm(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Byte spans of whitespace-separated words.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

fn shingles(norms: &[String]) -> HashSet<Vec<String>> {
    norms.windows(SHINGLE).map(|w| w.to_vec()).collect()
}

/// Segments of `text` with the passages shared with `other` highlighted.
pub fn highlight(text: &str, other: &str) -> Vec<(String, bool)> {
    let spans = words(text);
    let norms: Vec<String> = spans
        .iter()
        .map(|&(s, e)| norm(text.get(s..e).unwrap_or("")))
        .collect();
    let other_spans = words(other);
    let other_norms: Vec<String> = other_spans
        .iter()
        .map(|&(s, e)| norm(other.get(s..e).unwrap_or("")))
        .collect();
    let theirs = shingles(&other_norms);
    let mut marked = vec![false; spans.len()];
    for (i, w) in norms.windows(SHINGLE).enumerate() {
        if theirs.contains(w) {
            for m in marked.iter_mut().skip(i).take(SHINGLE) {
                *m = true;
            }
        }
    }
    // Merge into segments, keeping the original whitespace.
    let mut segs: Vec<(String, bool)> = Vec::new();
    let mut pos = 0;
    for (idx, &(s, e)) in spans.iter().enumerate() {
        let hl = marked.get(idx).copied().unwrap_or(false);
        let gap = text.get(pos..s).unwrap_or("");
        let word = text.get(s..e).unwrap_or("");
        // Whitespace between two highlighted words is highlighted too.
        let prev_hl = idx > 0 && marked.get(idx - 1).copied().unwrap_or(false);
        push(&mut segs, gap, hl && prev_hl);
        push(&mut segs, word, hl);
        pos = e;
    }
    push(&mut segs, text.get(pos..).unwrap_or(""), false);
    segs
}

fn push(segs: &mut Vec<(String, bool)>, s: &str, hl: bool) {
    if s.is_empty() {
        return;
    }
    match segs.last_mut() {
        Some((t, h)) if *h == hl => t.push_str(s),
        _ => segs.push((s.to_string(), hl)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_runs_are_marked() {
        let a = "the quick brown fox jumps over the lazy dog";
        let b = "a quick brown fox sleeps; the lazy dog barks";
        let segs = highlight(a, b);
        let joined: String = segs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(joined, a, "segments must reproduce the text");
        let marked: Vec<&str> = segs
            .iter()
            .filter(|(_, h)| *h)
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(marked, vec!["quick brown fox", "the lazy dog"]);
    }

    #[test]
    fn nothing_shared() {
        let segs = highlight("alpha beta gamma", "delta epsilon zeta");
        assert!(segs.iter().all(|(_, h)| !h));
        assert!(highlight("", "x").is_empty());
    }
}
