//! Labelled benign corpus (`tests/corpus/text/cases.tsv`): every case is
//! compared with the default parameters and rule, and precision and recall
//! of the match decision are computed and asserted.

use echotrace_signals::text::{compare_text, EquivalenceList, TextHasher};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/text"))
}

fn read(name: &str) -> String {
    let p = corpus_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

struct Case {
    a: String,
    b: String,
    expected: bool,
    equivalences: Option<String>,
    description: String,
}

fn cases() -> Vec<Case> {
    read("cases.tsv")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad cases.tsv line {l:?}");
            Case {
                a: f[0].to_string(),
                b: f[1].to_string(),
                expected: match f[2] {
                    "match" => true,
                    "no_match" => false,
                    other => panic!("bad label {other:?}"),
                },
                equivalences: (f[3] != "-").then(|| f[3].to_string()),
                description: f[4].to_string(),
            }
        })
        .collect()
}

fn hasher(eq: &Option<String>) -> TextHasher {
    let h = TextHasher::default();
    match eq {
        Some(name) => h.with_equivalences(
            EquivalenceList::parse(&read(name)).expect("equivalence list parses"),
        ),
        None => h,
    }
}

#[test]
fn corpus_precision_and_recall() {
    let cases = cases();
    assert!(cases.len() >= 20, "corpus has only {} cases", cases.len());
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut wrong = Vec::new();
    for c in &cases {
        let h = hasher(&c.equivalences);
        let sa = h.hash(&read(&c.a));
        let sb = h.hash(&read(&c.b));
        let cmp = compare_text(&sa, &sb).expect("same parameters");
        println!(
            "{:<5} {:<8} J={:.3} Cab={:.3} Cba={:.3} edit={:?} rule={:?}  {} vs {} ({})",
            if cmp.is_match == c.expected {
                "ok"
            } else {
                "WRONG"
            },
            if c.expected { "match" } else { "no_match" },
            cmp.jaccard,
            cmp.containment_a_in_b,
            cmp.containment_b_in_a,
            cmp.short_edit_distance,
            cmp.rule,
            c.a,
            c.b,
            c.description
        );
        match (c.expected, cmp.is_match) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => tn += 1,
        }
        if cmp.is_match != c.expected {
            wrong.push(format!("{} vs {}: {}", c.a, c.b, c.description));
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    println!("tp={tp} fp={fp} fn={fn_} tn={tn} precision={precision:.3} recall={recall:.3}");
    assert!(
        tp + fn_ >= 8 && fp + tn >= 8,
        "corpus needs both kinds of case"
    );
    assert_eq!(precision, 1.0, "false matches: {wrong:?}");
    assert_eq!(recall, 1.0, "missed matches: {wrong:?}");
}

#[test]
fn equivalence_list_is_what_makes_the_outlets_match() {
    // Without the list the name swaps alone push Jaccard down.
    let plain = TextHasher::default();
    let with = hasher(&Some("equivalences.txt".to_string()));
    let a = read("sport_outlet_a.txt");
    let b = read("sport_outlet_b.txt");
    let j_plain = compare_text(&plain.hash(&a), &plain.hash(&b))
        .unwrap()
        .jaccard;
    let j_with = compare_text(&with.hash(&a), &with.hash(&b))
        .unwrap()
        .jaccard;
    assert!(
        j_with > j_plain + 0.1,
        "with list {j_with}, without {j_plain}"
    );
}

#[test]
fn arabic_variants_normalise_identically() {
    let h = TextHasher::default();
    let plain = h.normalize(&read("ar_weather_plain.txt"));
    let variant = h.normalize(&read("ar_weather_variant.txt"));
    assert_eq!(plain, variant);
}
