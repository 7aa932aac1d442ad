//! `echotrace match`: offline matching of files (or hashes on stdin) against
//! a bank export, with no server.
//!
//! The bank is a CSV export with the header `signal_type,value[,label]`
//! (RFC 4180 quoting allowed in the label). `pdq` rows go into an exact
//! multi-index-hashing index ([`echotrace_index::MihIndex`]) and are matched
//! within `--radius` (inclusive, default 31); `md5` and `sha256` rows are
//! exact lookups. Rows of other signal types are counted and skipped with
//! one warning each type. Any malformed row (wrong column count, unknown
//! signal type, bad hash) makes the whole bank invalid: a clear message on
//! stderr naming the line, exit code 2, and nothing is matched.
//!
//! Files are hashed exactly as `echotrace hash` does (the shared
//! `echotrace_signals::content` dispatcher, same default limits). `-` reads
//! lines of hex from stdin instead: 64 hex characters are a PDQ hash (also
//! looked up as a SHA-256), 32 are an MD5.
//!
//! Images are also matched through the robust channels of the service
//! (`echotrace_engine::robust`), each within its own threshold: `dihedral`
//! (rotations and flips; `--no-dihedral` turns it off), `border` (content
//! rectangles found by the border detectors) and `window` (small crops;
//! `--no-window`). Every match says which `channel` found it; a bank
//! export holds only plain hashes, so the bank-side windows of the service
//! do not exist here.
//!
//! Output: one line per input (per stdin line), in input order; with
//! `--json` `{"path":…,"matches":[{"signal_type":"pdq","value":…,
//! "label":…,"distance":N}]}`, sorted by distance. Exit 0 when every input
//! was processed, matched or not; 1 if some input could not be read or
//! hashed (reported on stderr and as an `"error"` field); 2 for a bad bank.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use echotrace_engine::robust::{channel_threshold, Channel};
use echotrace_index::{Code256, Hit, MihIndex, MihParams};
use echotrace_signals::content::{ContentHasher, HashOptions, RobustHashes, RobustRole};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::robust::{QuerySource, RobustOptions};
use echotrace_signals::signal::SignalType;

use super::hash::LimitArgs;

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// Bank export CSV: header `signal_type,value[,label]`.
    #[arg(long, value_name = "FILE")]
    pub bank: PathBuf,
    /// Largest PDQ Hamming distance that counts as a match (inclusive).
    /// The derived channels' thresholds move with it (each is its default
    /// plus `radius - 31`, never above its default).
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub radius: u32,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Match the eight rotations/flips of each image (the default; kept
    /// for compatibility).
    #[arg(long, conflicts_with = "no_dihedral")]
    pub dihedral: bool,
    /// Do not match rotations/flips (the `dihedral` channel).
    #[arg(long)]
    pub no_dihedral: bool,
    /// Do not match small crops of each image (the `window` channel).
    #[arg(long)]
    pub no_window: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Files to match, or `-` for lines of hex hashes on stdin.
    #[arg(required = true, value_name = "PATH|-")]
    pub inputs: Vec<String>,
}

/// One bank row.
#[derive(Debug, Clone)]
struct Entry {
    signal_type: SignalType,
    value: String,
    label: Option<String>,
}

/// The loaded bank: PDQ rows indexed, digests in hash maps (row numbers).
struct Bank {
    entries: Vec<Entry>,
    pdq: MihIndex,
    exact: HashMap<(SignalType, String), Vec<usize>>,
    skipped: HashMap<SignalType, usize>,
}

#[derive(serde::Serialize)]
struct MatchOut<'a> {
    signal_type: &'static str,
    value: &'a str,
    label: Option<&'a str>,
    distance: u32,
    /// Which channel found it: plain, dihedral, border or window (the
    /// `part` channel needs held originals, which a hash list is not).
    channel: &'static str,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    matches: Vec<MatchOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Splits one CSV record (RFC 4180: `"` quotes, `""` escapes).
fn split_csv(line: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() && !was_quoted {
            quoted = true;
            was_quoted = true;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else if was_quoted {
            bail!("unexpected character {c:?} after a closing quote");
        } else {
            cur.push(c);
        }
    }
    if quoted {
        bail!("unterminated quoted field");
    }
    fields.push(cur);
    Ok(fields)
}

use echotrace_signals::digest::is_hex;

fn load_bank(path: &PathBuf) -> anyhow::Result<Bank> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open bank file {}", path.display()))?;
    let reader = std::io::BufReader::new(file);
    let mut lines = reader.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, line)) => {
                let line =
                    line.with_context(|| format!("bank file {}: read error", path.display()))?;
                if !line.trim().is_empty() {
                    break line;
                }
            }
            None => bail!(
                "bank file {} is empty (expected a header `signal_type,value[,label]`)",
                path.display()
            ),
        }
    };
    let cols: Vec<String> =
        split_csv(header.trim_start_matches('\u{feff}').trim_end_matches('\r'))?
            .into_iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
    if cols.len() < 2
        || cols.len() > 3
        || cols[0] != "signal_type"
        || cols[1] != "value"
        || (cols.len() == 3 && cols[2] != "label")
    {
        bail!(
            "bank file {}: header must be `signal_type,value[,label]`, found `{}`",
            path.display(),
            header.trim()
        );
    }
    let mut entries = Vec::new();
    let mut pdq_codes: Vec<(u64, Code256)> = Vec::new();
    let mut exact: HashMap<(SignalType, String), Vec<usize>> = HashMap::new();
    let mut skipped: HashMap<SignalType, usize> = HashMap::new();
    for (i, line) in lines {
        let lineno = i + 1;
        let line = line.with_context(|| {
            format!("bank file {}: read error at line {lineno}", path.display())
        })?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("bank file {} line {lineno}", path.display());
        let fields = split_csv(line).with_context(at)?;
        if fields.len() < 2 || fields.len() > cols.len() {
            bail!(
                "{}: expected {} columns, found {}",
                at(),
                cols.len(),
                fields.len()
            );
        }
        let signal_type: SignalType = fields[0].trim().parse().with_context(at)?;
        let value = fields[1].trim().to_string();
        let label = fields
            .get(2)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty());
        let row = entries.len();
        match signal_type {
            SignalType::Pdq => {
                let hash = PdqHash::from_hex(&value)
                    .map_err(|e| anyhow::anyhow!("{}: bad pdq value {value:?}: {e}", at()))?;
                pdq_codes.push((row as u64, hash.to_words()));
            }
            SignalType::Md5 | SignalType::Sha256 => {
                let len = if signal_type == SignalType::Md5 {
                    32
                } else {
                    64
                };
                if !is_hex(&value, len) {
                    bail!(
                        "{}: bad {signal_type} value {value:?} (expected {len} hex characters)",
                        at()
                    );
                }
                exact
                    .entry((signal_type, value.to_ascii_lowercase()))
                    .or_default()
                    .push(row);
            }
            other => {
                *skipped.entry(other).or_default() += 1;
            }
        }
        entries.push(Entry {
            signal_type,
            value: if matches!(
                signal_type,
                SignalType::Pdq | SignalType::Md5 | SignalType::Sha256
            ) {
                value.to_ascii_lowercase()
            } else {
                value
            },
            label,
        });
    }
    let pdq = MihIndex::build(pdq_codes, MihParams::default())
        .map_err(|e| anyhow::anyhow!("cannot index bank: {e}"))?;
    Ok(Bank {
        entries,
        pdq,
        exact,
        skipped,
    })
}

/// PDQ needles of one channel with the distance it matches within.
struct NeedleGroup {
    channel: Channel,
    radius: u32,
    needles: Vec<Code256>,
}

impl Bank {
    /// Matches for a set of signals (PDQ needles per channel + exact
    /// digests); one match per bank row, from the first channel (plain
    /// first) that finds it.
    fn lookup(
        &self,
        groups: &[NeedleGroup],
        digests: &[(SignalType, String)],
    ) -> Vec<MatchOut<'_>> {
        let mut hits: Vec<Hit> = Vec::new();
        let mut seen: HashMap<u64, ()> = HashMap::new();
        let mut out: Vec<MatchOut<'_>> = Vec::new();
        for g in groups {
            if g.needles.is_empty() {
                continue;
            }
            hits.clear();
            self.pdq.search_multi(&g.needles, g.radius, &mut hits);
            for h in &hits {
                if seen.insert(h.id, ()).is_some() {
                    continue;
                }
                let Some(e) = usize::try_from(h.id).ok().and_then(|i| self.entries.get(i)) else {
                    continue;
                };
                out.push(MatchOut {
                    signal_type: e.signal_type.as_str(),
                    value: &e.value,
                    label: e.label.as_deref(),
                    distance: h.distance,
                    channel: g.channel.as_str(),
                });
            }
        }
        for key in digests {
            let key = (key.0, key.1.to_ascii_lowercase());
            for &row in self.exact.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(e) = self.entries.get(row) {
                    out.push(MatchOut {
                        signal_type: e.signal_type.as_str(),
                        value: &e.value,
                        label: e.label.as_deref(),
                        distance: 0,
                        channel: Channel::Plain.as_str(),
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.distance, a.signal_type, a.value, a.label, a.channel).cmp(&(
                b.distance,
                b.signal_type,
                b.value,
                b.label,
                b.channel,
            ))
        });
        out
    }
}

/// Which derived channels `match` uses.
#[derive(Clone, Copy)]
struct Channels {
    radius: u32,
    dihedral: bool,
    window: bool,
}

/// PDQ needle groups and digests of one hashed file: the plain hash, then
/// (images) its rotations/flips, border rectangles and small crops, each
/// within its channel's threshold (`echotrace_engine::robust`).
fn file_queries(
    hashed: &RobustHashes,
    ch: Channels,
) -> (Vec<NeedleGroup>, Vec<(SignalType, String)>) {
    let mut plain = NeedleGroup {
        channel: Channel::Plain,
        radius: ch.radius,
        needles: Vec::new(),
    };
    let mut digests = Vec::new();
    for s in &hashed.signals {
        match s.signal_type {
            SignalType::Pdq => {
                if let Ok(h) = PdqHash::from_hex(&s.value) {
                    plain.needles.push(h.to_words());
                }
            }
            SignalType::Md5 | SignalType::Sha256 => digests.push((s.signal_type, s.value.clone())),
            _ => {}
        }
    }
    let mut groups = vec![plain];
    if let Some(set) = &hashed.query {
        for (channel, on) in [
            (Channel::Dihedral, ch.dihedral),
            (Channel::Border, true),
            (Channel::Window, ch.window),
        ] {
            if !on {
                continue;
            }
            let needles = set
                .hashes
                .iter()
                .filter(|q| {
                    let c = match q.source {
                        QuerySource::Whole => Channel::Dihedral,
                        QuerySource::Border => Channel::Border,
                        QuerySource::Crop => Channel::Window,
                        // Parts pair with held originals' parts only.
                        QuerySource::Part => return false,
                    };
                    c == channel && (ch.dihedral || q.variant == 0)
                })
                .map(|q| q.hash.to_words())
                .collect();
            // A stricter --radius makes every channel stricter by as much.
            let t = channel_threshold(channel);
            let radius = t.saturating_sub(31u32.saturating_sub(ch.radius)).min(t);
            groups.push(NeedleGroup {
                channel,
                radius,
                needles,
            });
        }
    }
    (groups, digests)
}

fn print_line(out: &mut impl Write, json: bool, line: &Line<'_>) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, line)?;
        writeln!(out)?;
        return Ok(());
    }
    let name = match line.query {
        Some(q) => format!("{} {q}", line.path),
        None => line.path.to_string(),
    };
    if let Some(e) = &line.error {
        writeln!(out, "{name}: error: {e}")?;
        return Ok(());
    }
    writeln!(out, "{name}: {} match(es)", line.matches.len())?;
    for m in &line.matches {
        writeln!(
            out,
            "  {} {} distance={} channel={}{}",
            m.signal_type,
            m.value,
            m.distance,
            m.channel,
            m.label.map(|l| format!(" label={l}")).unwrap_or_default()
        )?;
    }
    Ok(())
}

pub fn run(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let bank = load_bank(&args.bank)?;
    let mut skipped: Vec<_> = bank.skipped.iter().collect();
    skipped.sort();
    for (t, n) in skipped {
        eprintln!("echotrace match: skipped {n} bank row(s) of type {t} (only pdq, md5 and sha256 are matched offline)");
    }
    let opts = HashOptions {
        limits: args.limits.to_limits(),
        pdf_extractor: std::env::current_exe().ok(),
        ..HashOptions::default()
    };
    let robust_opts = RobustOptions::default();
    let channels = Channels {
        radius: args.radius,
        dihedral: !args.no_dihedral,
        window: !args.no_window,
    };
    let mut hasher = ContentHasher::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for input in &args.inputs {
        if input == "-" {
            let stdin = std::io::stdin();
            for (i, line) in stdin.lock().lines().enumerate() {
                let line = line.context("reading stdin")?;
                let q = line.trim();
                if q.is_empty() {
                    continue;
                }
                let (needles, digests, error) = if is_hex(q, 64) {
                    match PdqHash::from_hex(q) {
                        Ok(h) => (
                            vec![h.to_words()],
                            vec![(SignalType::Sha256, q.to_string())],
                            None,
                        ),
                        Err(e) => (vec![], vec![], Some(e.to_string())),
                    }
                } else if is_hex(q, 32) {
                    (vec![], vec![(SignalType::Md5, q.to_string())], None)
                } else {
                    (
                        vec![],
                        vec![],
                        Some(format!(
                            "line {}: expected 64 (pdq/sha256) or 32 (md5) hex characters",
                            i + 1
                        )),
                    )
                };
                if let Some(e) = &error {
                    eprintln!("-: {e}");
                    failed = true;
                }
                let groups = [NeedleGroup {
                    channel: Channel::Plain,
                    radius: args.radius,
                    needles,
                }];
                let matches = bank.lookup(&groups, &digests);
                print_line(
                    &mut out,
                    args.json,
                    &Line {
                        path: "-",
                        query: Some(q),
                        matches,
                        error,
                    },
                )?;
            }
            continue;
        }
        let result = std::fs::read(input)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| {
                hasher
                    .hash_robust(&bytes, &opts, RobustRole::Query, &robust_opts)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(hashed) => {
                let (groups, digests) = file_queries(&hashed, channels);
                let matches = bank.lookup(&groups, &digests);
                print_line(
                    &mut out,
                    args.json,
                    &Line {
                        path: input,
                        query: None,
                        matches,
                        error: None,
                    },
                )?;
            }
            Err(e) => {
                eprintln!("{input}: {e}");
                failed = true;
                print_line(
                    &mut out,
                    args.json,
                    &Line {
                        path: input,
                        query: None,
                        matches: Vec::new(),
                        error: Some(e),
                    },
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::split_csv;

    #[test]
    fn csv_quoting() {
        assert_eq!(
            split_csv("pdq,ab,plain").ok(),
            Some(vec!["pdq".into(), "ab".into(), "plain".into()])
        );
        assert_eq!(
            split_csv(r#"pdq,ab,"with, comma and ""quote""""#).ok(),
            Some(vec![
                "pdq".into(),
                "ab".into(),
                r#"with, comma and "quote""#.into()
            ])
        );
        assert_eq!(
            split_csv("pdq,ab,").ok(),
            Some(vec!["pdq".into(), "ab".into(), String::new()])
        );
        assert!(split_csv(r#"pdq,"ab"#).is_err());
        assert!(split_csv(r#"pdq,"ab"x"#).is_err());
    }
}
