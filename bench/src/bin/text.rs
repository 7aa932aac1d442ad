//! Text-signal benchmark and parameter evaluation (not a test).
//!
//! `text gen DIR`   — writes the shared synthetic corpus (docs, long docs,
//!                    queries) that `bench/peers/datasketch_text.py` reads.
//! `text eval`      — parameter selection: labelled-corpus precision/recall
//!                    and score margins per shingle size k and bin count K;
//!                    containment estimation error per K; short-text limit.
//! `text run DIR`   — signature throughput; LSH build/query throughput, per
//!                    query kind, and containment recall, with and without
//!                    bin counting vs bands; all on the shared corpus.
//! Every line of output is one JSON object. `bench/run_text.sh` runs all.

use anyhow::{bail, Context, Result};
use echotrace_index::text_lsh::{MinHashSketch, TextLshIndex, TextRule};
use echotrace_signals::text::{
    compare_text_with, normalize, EquivalenceList, MinHashParams, MinHasher, TextHasher,
    TextMatchRule, TextSignature,
};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// A 20 000-word synthetic vocabulary sampled with a Zipf(1) law, so word
/// frequencies look like natural text.
struct Vocab {
    words: Vec<String>,
    cdf: Vec<f64>,
}

impl Vocab {
    fn new(rng: &mut Rng) -> Self {
        let syll = [
            "ka", "to", "ri", "men", "sa", "lo", "ve", "dun", "pra", "el", "os", "tir", "na", "bu",
            "gor", "fe", "li", "qua", "zen", "ho",
        ];
        let mut words = Vec::new();
        let mut seen = HashSet::new();
        while words.len() < 20_000 {
            let n = 1 + rng.below(4);
            let w: String = (0..n).map(|_| syll[rng.below(syll.len())]).collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut acc = 0.0;
        let cdf = (1..=words.len())
            .map(|r| {
                acc += 1.0 / r as f64;
                acc
            })
            .collect::<Vec<_>>();
        Vocab { words, cdf }
    }
    fn word(&self, rng: &mut Rng) -> &str {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self
            .cdf
            .partition_point(|&c| c < x)
            .min(self.words.len() - 1);
        &self.words[i]
    }
    fn doc(&self, rng: &mut Rng, n: usize) -> Vec<String> {
        (0..n).map(|_| self.word(rng).to_string()).collect()
    }
}

fn write_lines(path: &Path, lines: &[String]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| path.display().to_string())?,
    );
    for l in lines {
        writeln!(f, "{l}")?;
    }
    Ok(())
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    Ok(std::io::BufReader::new(f)
        .lines()
        .collect::<std::io::Result<_>>()?)
}

const N_DOCS: usize = 100_000;
const DOC_WORDS: usize = 100;
const N_LONG: usize = 2_000;
const LONG_WORDS: usize = 400;

/// Writes docs.txt (100k × 100 words), long.txt (2k × 400 words) and
/// queries.tsv (`expected_id \t kind \t text`): 1 000 near-duplicates,
/// 5 × 250 docs embedded in pages 1/2/3/5/10× their length, 1 000 unrelated.
fn gen(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let vocab = Vocab::new(&mut rng);
    let docs: Vec<Vec<String>> = (0..N_DOCS)
        .map(|_| vocab.doc(&mut rng, DOC_WORDS))
        .collect();
    write_lines(
        &dir.join("docs.txt"),
        &docs.iter().map(|d| d.join(" ")).collect::<Vec<_>>(),
    )?;
    let long: Vec<String> = (0..N_LONG)
        .map(|_| vocab.doc(&mut rng, LONG_WORDS).join(" "))
        .collect();
    write_lines(&dir.join("long.txt"), &long)?;
    let mut queries = Vec::new();
    // Near duplicates: 10% of words replaced.
    for _ in 0..1000 {
        let id = rng.below(N_DOCS);
        let mut d = docs[id].clone();
        for _ in 0..DOC_WORDS / 10 {
            let p = rng.below(d.len());
            d[p] = vocab.word(&mut rng).to_string();
        }
        queries.push(format!("{id}\tnear_dup\t{}", d.join(" ")));
    }
    // Embedded: a stored doc inside a page with R× as many other words.
    for ratio in [1usize, 2, 3, 5, 10] {
        for _ in 0..250 {
            let id = rng.below(N_DOCS);
            let before = vocab.doc(&mut rng, DOC_WORDS * ratio / 2);
            let after = vocab.doc(&mut rng, DOC_WORDS * ratio - DOC_WORDS * ratio / 2);
            let page = [before, docs[id].clone(), after].concat();
            queries.push(format!("{id}\tembedded_x{ratio}\t{}", page.join(" ")));
        }
    }
    // Unrelated fresh text.
    for _ in 0..1000 {
        queries.push(format!(
            "-1\tunrelated\t{}",
            vocab.doc(&mut rng, DOC_WORDS).join(" ")
        ));
    }
    write_lines(&dir.join("queries.tsv"), &queries)?;
    println!(
        "{{\"gen\":\"{}\",\"docs\":{N_DOCS},\"long\":{N_LONG},\"queries\":{}}}",
        dir.display(),
        queries.len()
    );
    Ok(())
}

fn sketch(s: &TextSignature) -> MinHashSketch<'_> {
    MinHashSketch {
        mins: &s.mins,
        set_size: s.set_size,
    }
}

fn run(dir: &Path) -> Result<()> {
    run_sign(dir)?;
    run_lsh(dir)
}

/// Signature throughput.
fn run_sign(dir: &Path) -> Result<()> {
    let long = read_lines(&dir.join("long.txt"))?;
    // Signature throughput, full pipeline (normalise + shingle + sign).
    for (k, bins) in [(5usize, 128usize), (3, 128), (3, 256)] {
        let h = TextHasher::new(MinHashParams {
            num_bins: bins,
            shingle_size: k,
        });
        let mut sink = 0u64;
        let t = Watch::start();
        let mut n = 0usize;
        while t.cpu() < 2.0 {
            for d in &long {
                sink ^= h.hash(d).mins[0];
                n += 1;
            }
        }
        let (cpu, wall) = (t.cpu(), t.wall());
        println!(
            "{{\"impl\":\"echotrace\",\"bench\":\"sign\",\"words\":{LONG_WORDS},\"k\":{k},\"K\":{bins},\"docs_per_cpu_s\":{:.0},\"cpu_us_per_doc\":{:.2},\"docs_per_wall_s\":{:.0},\"sink\":{}}}",
            n as f64 / cpu,
            cpu * 1e6 / n as f64,
            n as f64 / wall,
            sink & 1
        );
    }
    // Sign only (text already normalised) to separate the two costs.
    let mh = MinHasher::new(MinHashParams {
        num_bins: 128,
        shingle_size: 5,
    });
    let norm: Vec<String> = long
        .iter()
        .map(|d| normalize(d).as_str().to_string())
        .collect();
    let t = Watch::start();
    let mut n = 0usize;
    while t.cpu() < 2.0 {
        for d in &norm {
            std::hint::black_box(mh.sign_normalized(d));
            n += 1;
        }
    }
    println!(
        "{{\"impl\":\"echotrace\",\"bench\":\"sign_prenormalised\",\"words\":{LONG_WORDS},\"k\":5,\"K\":128,\"docs_per_cpu_s\":{:.0}}}",
        n as f64 / t.cpu()
    );

    Ok(())
}

/// LSH at 100k documents.
fn run_lsh(dir: &Path) -> Result<()> {
    let docs = read_lines(&dir.join("docs.txt"))?;
    let h = TextHasher::default();
    let t = Watch::start();
    let sigs: Vec<TextSignature> = docs.iter().map(|d| h.hash(d)).collect();
    let sign_secs = t.cpu();
    let queries: Vec<(i64, String, TextSignature)> = read_lines(&dir.join("queries.tsv"))?
        .into_iter()
        .filter_map(|l| {
            let mut it = l.splitn(3, '\t');
            let id = it.next()?.parse().ok()?;
            let kind = it.next()?.to_string();
            Some((id, kind, h.hash(it.next()?)))
        })
        .collect();
    let kinds: Vec<String> = {
        let mut k: Vec<String> = queries.iter().map(|q| q.1.clone()).collect();
        k.dedup();
        k
    };
    let rule = TextRule::default();
    let jaccard_only = TextRule {
        jaccard: 0.5,
        containment: 2.0,
        min_contained_shingles: u32::MAX,
    };
    // The default index (bands for same-size queries, shared-bin counting
    // for the rest), counting alone, and bands alone (the classic design).
    for index in ["default", "bins_only", "bands_only"] {
        let t = Watch::start();
        let mut idx = match index {
            "default" => TextLshIndex::new(h.params().num_bins)?,
            "bins_only" => TextLshIndex::bins_only(h.params().num_bins)?,
            _ => TextLshIndex::banded(h.params().num_bins, 2)?,
        };
        for (i, s) in sigs.iter().enumerate() {
            idx.insert(i as u64, sketch(s))?;
        }
        let build_secs = t.cpu();
        println!(
            "{{\"impl\":\"echotrace\",\"bench\":\"lsh_build\",\"index\":\"{index}\",\"docs\":{},\"sign_cpu_s\":{sign_secs:.2},\"insert_cpu_s\":{build_secs:.2},\"inserts_per_cpu_s\":{:.0},\"index_mb\":{},\"rss_mb\":{}}}",
            docs.len(),
            docs.len() as f64 / build_secs,
            idx.memory_bytes() >> 20,
            rss_mb()
        );
        // The same 3 250-query mix as the datasketch peer, in file order.
        let mut out = Vec::new();
        // Median of MIX_ROUNDS timed passes of ≥ 1 CPU-s each (the peer
        // script does the same), so one noisy second does not decide.
        for (name, r) in [("containment_rule", rule), ("jaccard_0.5", jaccard_only)] {
            let mut per_cpu = Vec::new();
            let mut per_wall = Vec::new();
            let mut hits = 0usize;
            for _ in 0..MIX_ROUNDS {
                let t = Watch::start();
                let mut total = 0usize;
                let mut reps = 0;
                while t.cpu() < 1.0 {
                    for (_, _, q) in &queries {
                        idx.query_into(sketch(q), &r, &mut out)?;
                        total += out.len();
                    }
                    reps += 1;
                }
                let n = (reps * queries.len()) as f64;
                per_cpu.push(n / t.cpu());
                per_wall.push(n / t.wall());
                hits = total / reps;
            }
            println!(
                "{{\"impl\":\"echotrace\",\"bench\":\"lsh_query\",\"index\":\"{index}\",\"rule\":\"{name}\",\"docs\":{},\"queries\":{},\"queries_per_cpu_s\":{:.0},\"queries_per_wall_s\":{:.0},\"rounds_per_cpu_s\":{:?},\"hits\":{hits}}}",
                docs.len(),
                queries.len(),
                median(&mut per_cpu),
                median(&mut per_wall),
                per_cpu.iter().map(|x| x.round() as u64).collect::<Vec<_>>(),
            );
        }
        // Cost of each kind *inside* the mix (caches as cold as in the mix;
        // the per-kind loops below rerun a few hundred queries and so run
        // warmer). Wall clock per query, including ~40 ns of timer calls.
        {
            let mut acc: Vec<(String, f64, usize)> = Vec::new();
            for _ in 0..20 {
                for (_, kind, q) in &queries {
                    let t0 = std::time::Instant::now();
                    idx.query_into(sketch(q), &rule, &mut out)?;
                    let dt = t0.elapsed().as_secs_f64();
                    match acc.iter_mut().find(|e| &e.0 == kind) {
                        Some(e) => {
                            e.1 += dt;
                            e.2 += 1;
                        }
                        None => acc.push((kind.clone(), dt, 1)),
                    }
                }
            }
            for (kind, t, n) in acc {
                println!(
                    "{{\"impl\":\"echotrace\",\"bench\":\"in_mix\",\"index\":\"{index}\",\"kind\":\"{kind}\",\"us_per_query\":{:.3}}}",
                    t * 1e6 / n as f64
                );
            }
        }
        // Per query kind: speed and recall, LSH vs exhaustive, containment rule.
        for kind in &kinds {
            let sel: Vec<&(i64, String, TextSignature)> =
                queries.iter().filter(|q| &q.1 == kind).collect();
            let t = Watch::start();
            let mut n = 0usize;
            while t.cpu() < 0.5 {
                for (_, _, q) in &sel {
                    idx.query_into(sketch(q), &rule, &mut out)?;
                    n += 1;
                }
            }
            let qps = n as f64 / t.cpu();
            let (mut found, mut found_ex, mut false_hits) = (0usize, 0usize, 0usize);
            for (id, _, q) in &sel {
                let hits = idx.query(sketch(q), &rule)?;
                if *id >= 0 {
                    found += usize::from(hits.iter().any(|h| h.0 == *id as u64));
                    let ex = idx.query_exhaustive(sketch(q), &rule)?;
                    found_ex += usize::from(ex.iter().any(|h| h.0 == *id as u64));
                    false_hits += hits.iter().filter(|h| h.0 != *id as u64).count();
                } else {
                    false_hits += hits.len();
                }
            }
            println!(
                "{{\"impl\":\"echotrace\",\"bench\":\"recall\",\"index\":\"{index}\",\"kind\":\"{kind}\",\"queries\":{},\"queries_per_cpu_s\":{qps:.0},\"recall_lsh\":{:.3},\"recall_exhaustive\":{:.3},\"other_hits\":{false_hits}}}",
                sel.len(),
                found as f64 / sel.len() as f64,
                found_ex as f64 / sel.len() as f64
            );
        }
    }
    Ok(())
}

/// Timed passes over the query mix; the median is reported.
const MIX_ROUNDS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// CPU time of this thread in seconds (`/proc/thread-self/schedstat`), so
/// figures stay meaningful on a machine shared with other jobs.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Wall-clock and CPU stopwatch.
struct Watch(Instant, f64);
impl Watch {
    fn start() -> Self {
        Watch(Instant::now(), cpu_secs())
    }
    fn cpu(&self) -> f64 {
        cpu_secs() - self.1
    }
    fn wall(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/signals/tests/corpus/text"
    ))
}

fn eval() -> Result<()> {
    let dir = corpus_dir();
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).with_context(|| n.to_string());
    let cases: Vec<(String, String, bool, Option<String>)> = read("cases.tsv")?
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                *f.get(2)? == "match",
                f.get(3).filter(|e| **e != "-").map(|e| e.to_string()),
            ))
        })
        .collect();
    if cases.is_empty() {
        bail!("no cases in {}", dir.display());
    }
    let rule = TextMatchRule::default();
    // 1. k and K on the labelled corpus: P/R with the default rule and the
    //    margin between the weakest positive and strongest negative score
    //    (score = max(J/J_thr, C/C_thr), short-edit cases excluded).
    for k in 1..=5usize {
        for bins in [64usize, 128, 256] {
            let (mut tp, mut fp, mut fn_) = (0, 0, 0);
            let (mut min_pos, mut max_neg) = (f64::MAX, 0.0f64);
            for (a, b, expected, eq) in &cases {
                let mut h = TextHasher::new(MinHashParams {
                    num_bins: bins,
                    shingle_size: k,
                });
                if let Some(e) = eq {
                    h = h.with_equivalences(EquivalenceList::parse(&read(e)?)?);
                }
                let c = compare_text_with(&h.hash(&read(a)?), &h.hash(&read(b)?), &rule)?;
                match (*expected, c.is_match) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    _ => {}
                }
                if c.short_edit_distance.is_none() {
                    let score = (c.jaccard / rule.jaccard)
                        .max(c.containment_a_in_b.max(c.containment_b_in_a) / rule.containment);
                    if *expected {
                        min_pos = min_pos.min(score);
                    } else {
                        max_neg = max_neg.max(score);
                    }
                }
            }
            println!(
                "{{\"eval\":\"corpus\",\"k\":{k},\"K\":{bins},\"precision\":{:.3},\"recall\":{:.3},\"weakest_positive_score\":{min_pos:.3},\"strongest_negative_score\":{max_neg:.3}}}",
                f64::from(tp) / f64::from((tp + fp).max(1)),
                f64::from(tp) / f64::from((tp + fn_).max(1))
            );
        }
    }
    // 2. Estimation error vs K: a 300-word article embedded in pages of
    //    1×–5× its size; true containment 1.
    let mut rng = Rng(0xfeed_0002);
    let vocab = Vocab::new(&mut rng);
    for bins in [64usize, 128, 256, 512] {
        let h = TextHasher::new(MinHashParams {
            num_bins: bins,
            shingle_size: 3,
        });
        let mut err = Vec::new();
        let mut detected = 0;
        let trials = 200;
        for t in 0..trials {
            let art = vocab.doc(&mut rng, 300);
            let ratio = 1 + t % 5;
            let page = [
                vocab.doc(&mut rng, 150 * ratio),
                art.clone(),
                vocab.doc(&mut rng, 150 * ratio),
            ]
            .concat();
            let c = compare_text_with(&h.hash(&art.join(" ")), &h.hash(&page.join(" ")), &rule)?;
            err.push((c.containment_a_in_b - 1.0).abs());
            detected += usize::from(c.is_match);
        }
        let mae = err.iter().sum::<f64>() / err.len() as f64;
        println!("{{\"eval\":\"containment_error\",\"K\":{bins},\"k\":3,\"mean_abs_error\":{mae:.4},\"match_rate\":{:.3}}}", detected as f64 / trials as f64);
    }
    // 3. Short texts: how often MinHash alone (no short-edit rule) still
    //    matches after 1 or 2 word substitutions, by length.
    let minhash_only = TextMatchRule {
        short_edit: -1.0,
        ..rule
    };
    let h = TextHasher::default();
    for n in [6usize, 8, 12, 16, 24, 32, 48, 64, 96] {
        for subs in [1usize, 2] {
            let trials = 300;
            let (mut mh, mut full) = (0, 0);
            for _ in 0..trials {
                let a = vocab.doc(&mut rng, n);
                let mut b = a.clone();
                for _ in 0..subs {
                    let p = rng.below(n);
                    b[p] = format!("{}x", vocab.word(&mut rng));
                }
                let (sa, sb) = (h.hash(&a.join(" ")), h.hash(&b.join(" ")));
                mh += usize::from(compare_text_with(&sa, &sb, &minhash_only)?.is_match);
                full += usize::from(compare_text_with(&sa, &sb, &rule)?.is_match);
            }
            println!(
                "{{\"eval\":\"short_text\",\"tokens\":{n},\"substitutions\":{subs},\"minhash_only_match_rate\":{:.3},\"with_short_edit_match_rate\":{:.3}}}",
                mh as f64 / trials as f64,
                full as f64 / trials as f64
            );
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("gen"), Some(dir)) => gen(Path::new(dir)),
        (Some("run"), Some(dir)) => run(Path::new(dir)),
        (Some("lsh"), Some(dir)) => run_lsh(Path::new(dir)),
        (Some("sign"), Some(dir)) => run_sign(Path::new(dir)),
        (Some("eval"), _) => eval(),
        _ => bail!("usage: text gen DIR | text run DIR | text sign DIR | text lsh DIR | text eval"),
    }
}
