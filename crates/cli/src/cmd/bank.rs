//! `echotrace bank`: bank administration straight against the database (no
//! running server needed).
//!
//! `bank import --bank NAME FILE` bulk-loads a hash list (a GIFCT /
//! ThreatExchange style dump) into a bank, 10,000 items per transaction
//! with one change and one audit entry per batch; running servers pick the
//! batches up through the change sequence. One content item per line:
//!
//! * `pdq_hex[,labels…]` — a PDQ hash (64 hex digits), optional labels;
//! * `signal_type,value[,labels…]` — any signal type by wire name (`pdq`,
//!   `md5`, `sha256`, `url`, `url_sha256`, `text_minhash`, `vpdq`).
//!
//! Fields are separated by tabs if the line has one (use TSV for values that
//! contain commas, such as URLs), otherwise by commas; a label field may hold
//! several labels separated by `;`. Blank lines, `#` comments and a header
//! line (`pdq_hex`, `hash`, `signal_type`, … as first field of the first
//! line) are skipped.
//!
//! **Bad lines are skipped and reported** (`FILE:LINE: reason` on stderr,
//! the first 100 of them), the good ones are imported, and the exit code is
//! 1 when any line was bad (0 when all were good, 2 on a fatal error such as
//! an unknown bank). Skip-and-report rather than abort because a dump of
//! millions of hashes with a handful of malformed rows should not need a
//! second pass; `--dry-run` validates the whole file without writing.
//!
//! **Importing is idempotent.** An item whose signal (type and value) the
//! bank already holds — from an earlier import of the same list, another
//! source, or an earlier line of this file — is skipped and counted
//! (`N already held`), so running an import again, or resuming one that
//! failed half-way, adds nothing twice.
//!
//! `bank matching BANK [--refine on|off|auto] [--window on|off] …` shows
//! a bank's robust-matching settings (`--json`: one object with the file-added
//! originals it holds and whether lookups refine toward it), and changes the
//! ones given, keeping the others, through
//! [`echotrace_engine::Engine::set_bank_matching`] (audited, actor `cli`;
//! running servers follow the change sequence).
//!
//! `bank rederive BANK` re-derives the derived hashes of the bank's items
//! from their retained originals after an upgrade (docs/ROBUST.md
//! "Upgrading"), a page per transaction through the engine's
//! [`echotrace_engine::Engine::rederive_page`] — the function behind
//! `POST /v1/banks/{name}/rederive` — with a progress line per page on
//! stderr and the totals on stdout (`--json`: one JSON object).

use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use echotrace_engine::{
    import_into_store, parse_hash_list_line as parse_line, Actor, BankKind, ImportItem, NewBank,
};

#[derive(Args)]
pub struct BankArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: BankCommand,
}

#[derive(Subcommand)]
pub enum BankCommand {
    /// Bulk-import a hash list (CSV/TSV, one item per line) into a bank.
    Import(ImportArgs),
    /// Re-derive the derived hashes (e.g. `part`) of a bank's items from
    /// their retained originals, a page at a time.
    Rederive(RederiveArgs),
    /// Show a bank's robust-matching settings, or change some of them
    /// (the others are kept).
    Matching(MatchingArgs),
}

#[derive(Args)]
pub struct MatchingArgs {
    /// Bank name.
    pub bank: String,
    /// Alignment refinement: on, off, or auto (on while the bank holds at
    /// most 10,000 file-added originals).
    #[arg(long, value_parser = ["on", "off", "auto"])]
    pub refine: Option<String>,
    /// Crop windows of uploads and file-added images: on or off.
    #[arg(long, value_parser = ["on", "off"])]
    pub window: Option<String>,
    /// Rotations and flips of uploaded images: on or off.
    #[arg(long, value_parser = ["on", "off"])]
    pub dihedral: Option<String>,
    /// Fixed parts of file-added images: on or off.
    #[arg(long, value_parser = ["on", "off"])]
    pub part: Option<String>,
    /// Print the settings as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RederiveArgs {
    /// Bank name.
    pub bank: String,
    /// Items per page (one transaction and one audit entry per page that
    /// wrote), 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(echotrace_engine::REDERIVE_PAGE_MAX)))]
    pub page: u32,
    /// Print the totals as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Bank name.
    #[arg(long)]
    pub bank: String,
    /// Create the bank if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Kind of a bank created with --create: block or allow.
    #[arg(long, default_value = "block")]
    pub kind: String,
    /// A label added to every imported item (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Note stored with every imported item (e.g. the dump's name).
    #[arg(long, default_value = "")]
    pub note: String,
    /// Items per transaction.
    #[arg(long, default_value_t = echotrace_engine::IMPORT_BATCH)]
    pub batch: usize,
    /// Validate the file and report bad lines without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The hash list; `-` reads stdin.
    pub file: String,
}

pub fn run(args: BankArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        BankCommand::Import(import) => rt.block_on(import_async(&args.database, import)),
        BankCommand::Rederive(r) => rt.block_on(rederive_async(&args.database, r)),
        BankCommand::Matching(m) => rt.block_on(matching_async(&args.database, m)),
    }
}

async fn matching_async(db: &super::DatabaseArg, args: MatchingArgs) -> anyhow::Result<ExitCode> {
    let engine = db.open_for_admin().await?;
    let result = matching_show_or_set(&engine, &args).await;
    engine.store().close().await;
    let (bank, matching, held) = result?;
    let refining = matching.refines(held);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bank": bank.name,
                "bank_id": bank.id,
                "matching": matching,
                "held_originals": held,
                "refining": refining,
            })
        );
    } else {
        let on = |f: bool| if f { "on" } else { "off" };
        println!(
            "bank {:?} (id {}): dihedral {}, window {}, part {}, refine {} ({}; {} file-added original(s), automatic refines up to {})",
            bank.name,
            bank.id,
            on(matching.dihedral),
            on(matching.window),
            on(matching.part),
            matching.refine_word(),
            if refining { "refining" } else { "not refining" },
            held,
            echotrace_engine::robust::REFINE_AUTO_MAX_HELD,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The bank, its settings after the changes asked for (written, audited
/// as `bank.matching` with actor `cli`, when they differ) and its
/// file-added originals.
async fn matching_show_or_set(
    engine: &echotrace_engine::Engine,
    args: &MatchingArgs,
) -> anyhow::Result<(
    echotrace_engine::Bank,
    echotrace_engine::robust::MatchingSettings,
    u64,
)> {
    let bank = match engine.bank_by_name(&args.bank).await {
        Ok(b) => b,
        Err(echotrace_engine::EngineError::NotFound(_)) => {
            bail!("no bank named {:?}", args.bank)
        }
        Err(e) => return Err(e.into()),
    };
    let (before, held) = engine.stored_bank_matching(bank.id).await?;
    let mut matching = before;
    for (field, word) in [
        ("refine", &args.refine),
        ("window", &args.window),
        ("dihedral", &args.dihedral),
        ("part", &args.part),
    ] {
        if let Some(w) = word {
            matching.set_word(field, w).map_err(|e| anyhow!(e))?;
        }
    }
    if matching != before {
        engine
            .set_bank_matching(&Actor::cli(), bank.id, matching)
            .await?;
    }
    Ok((bank, matching, held))
}

/// Longest accepted line (a vPDQ signal of a long video is a few hundred
/// KiB; anything near this is not a hash list).
const MAX_LINE_BYTES: usize = 16 << 20;

/// How many bad lines are printed (all are counted).
const MAX_REPORTED: usize = 100;

/// A line that could not be imported.
#[derive(Debug, PartialEq)]
pub struct BadLine {
    pub line: u64,
    pub reason: String,
}

/// Lines → valid items; bad lines go to `bad`.
struct Items<'a, R: BufRead> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    seen_content: bool,
    labels: &'a [String],
    note: &'a str,
    bad: &'a mut Vec<BadLine>,
    bad_count: u64,
    source: &'a str,
    io_error: Option<std::io::Error>,
}

impl<R: BufRead> Items<'_, R> {
    fn report(&mut self, reason: String) {
        self.bad_count += 1;
        if self.bad.len() < MAX_REPORTED {
            eprintln!("{}:{}: {reason}", self.source, self.line);
            self.bad.push(BadLine {
                line: self.line,
                reason,
            });
        }
    }
}

impl<R: BufRead> Iterator for Items<'_, R> {
    type Item = ImportItem;

    fn next(&mut self) -> Option<ImportItem> {
        loop {
            self.buf.clear();
            // Bounded read: a hostile file without newlines must not be
            // read into memory whole.
            let limit = MAX_LINE_BYTES as u64 + 1;
            match (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.io_error = Some(e);
                    return None;
                }
            }
            self.line += 1;
            if self.buf.len() > MAX_LINE_BYTES {
                // Skip the rest of the line in bounded steps, then report it.
                while self.buf.last() != Some(&b'\n') {
                    self.buf.clear();
                    match (&mut self.reader)
                        .take(limit)
                        .read_until(b'\n', &mut self.buf)
                    {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            self.io_error = Some(e);
                            return None;
                        }
                    }
                }
                self.report(format!("line longer than {MAX_LINE_BYTES} bytes"));
                continue;
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.to_string(),
                Err(_) => {
                    self.report("not UTF-8".into());
                    continue;
                }
            };
            let first = !self.seen_content;
            let t = text.trim();
            if !t.is_empty() && !t.starts_with('#') {
                self.seen_content = true;
            }
            match parse_line(&text, first, self.labels, self.note) {
                Ok(Some(item)) => return Some(item),
                Ok(None) => {}
                Err(reason) => self.report(reason),
            }
        }
    }
}

async fn import_async(db: &super::DatabaseArg, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let reader: Box<dyn Read> = if args.file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file))?)
    };
    let mut bad = Vec::new();
    let mut items = Items {
        reader: BufReader::with_capacity(1 << 20, reader),
        buf: Vec::new(),
        line: 0,
        seen_content: false,
        labels: &args.labels,
        note: &args.note,
        bad: &mut bad,
        bad_count: 0,
        source: &args.file,
        io_error: None,
    };

    if args.dry_run {
        let valid = items.by_ref().count();
        if let Some(e) = items.io_error.take() {
            return Err(e).with_context(|| format!("reading {}", args.file));
        }
        let bad_count = items.bad_count;
        println!("dry run: {valid} valid items, {bad_count} bad lines");
        return Ok(exit_for(bad_count));
    }

    // Write-only engine: loading every signal already in the database
    // would only slow the import down.
    let engine = db.open_for_admin().await?;
    let actor = Actor::cli();
    let bank = match engine.bank_by_name(&args.bank).await {
        Ok(b) => b,
        Err(echotrace_engine::EngineError::NotFound(_)) if args.create => {
            let kind = BankKind::parse(&args.kind)
                .ok_or_else(|| anyhow!("unknown bank kind {:?} (block or allow)", args.kind))?;
            // Built from JSON so settings added to banks later keep their defaults.
            let new: NewBank = serde_json::from_value(serde_json::json!({
                "name": args.bank,
                "kind": kind.as_str(),
            }))
            .context("building the new bank")?;
            let b = engine.create_bank(&actor, new).await?;
            eprintln!("created {} bank {:?} (id {})", kind.as_str(), b.name, b.id);
            b
        }
        Err(echotrace_engine::EngineError::NotFound(_)) => {
            bail!("no bank named {:?} (add --create to create it)", args.bank)
        }
        Err(e) => return Err(e.into()),
    };

    let mut last_print = Instant::now();
    let result = import_into_store(
        engine.store(),
        &actor,
        bank.id,
        &mut items,
        args.batch,
        |r| {
            if last_print.elapsed().as_secs() >= 5 {
                last_print = Instant::now();
                eprintln!(
                    "… {} items ({} already held) in {:.0} s",
                    r.items,
                    r.already_held,
                    started.elapsed().as_secs_f64()
                );
            }
        },
    )
    .await;
    let io_error = items.io_error.take();
    let bad_count = items.bad_count;
    engine.store().close().await;
    let report = result.with_context(|| {
        format!(
            "importing into bank {:?} (batches committed before the failure stay)",
            args.bank
        )
    })?;
    if let Some(e) = io_error {
        return Err(e).with_context(|| {
            format!(
                "reading {} ({} items were imported before the error)",
                args.file, report.items
            )
        });
    }
    println!(
        "imported {} items ({} signals) into bank {:?} (id {}) in {} transactions, {:.1} s; \
         {} already held, {} bad lines",
        report.items,
        report.signals,
        bank.name,
        bank.id,
        report.batches,
        started.elapsed().as_secs_f64(),
        report.already_held,
        bad_count
    );
    if bad_count as usize > MAX_REPORTED {
        eprintln!("(only the first {MAX_REPORTED} bad lines were printed)");
    }
    Ok(exit_for(bad_count))
}

async fn rederive_async(db: &super::DatabaseArg, args: RederiveArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // No match indexes: the pages write through the change sequence, which
    // running servers follow.
    let engine = db.open_for_admin().await?;
    let result = rederive_pages(&engine, &args, started).await;
    engine.store().close().await;
    let (bank, total) = result?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bank": bank.name,
                "bank_id": bank.id,
                "items": total.items,
                "rederived": total.rederived,
                "without_original": total.without_original,
                "skipped": total.skipped,
            })
        );
    } else {
        println!(
            "bank {:?} (id {}): {} items, {} rederived, {} without original, {} skipped in {:.1} s",
            bank.name,
            bank.id,
            total.items,
            total.rederived,
            total.without_original,
            total.skipped,
            started.elapsed().as_secs_f64()
        );
    }
    if total.without_original > 0 && !args.json {
        eprintln!(
            "items without a retained original must be added again from the file to gain new channels"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every page of the bank, a progress line on stderr after each; the totals.
async fn rederive_pages(
    engine: &echotrace_engine::Engine,
    args: &RederiveArgs,
    started: Instant,
) -> anyhow::Result<(echotrace_engine::Bank, echotrace_engine::RederivePage)> {
    let bank = match engine.bank_by_name(&args.bank).await {
        Ok(b) => b,
        Err(echotrace_engine::EngineError::NotFound(_)) => {
            bail!("no bank named {:?}", args.bank)
        }
        Err(e) => return Err(e.into()),
    };
    let actor = Actor::cli();
    let mut total = echotrace_engine::RederivePage::default();
    let mut after = 0;
    loop {
        let page = engine
            .rederive_page(&actor, bank.id, after, args.page)
            .await
            .with_context(|| {
                format!(
                    "re-deriving bank {:?} after item {after} (pages before it are committed)",
                    args.bank
                )
            })?;
        total.items += page.items;
        total.rederived += page.rederived;
        total.without_original += page.without_original;
        total.skipped += page.skipped;
        eprintln!(
            "… {} items ({} rederived, {} without original, {} skipped) in {:.0} s",
            total.items,
            total.rederived,
            total.without_original,
            total.skipped,
            started.elapsed().as_secs_f64()
        );
        match page.next_after {
            Some(next) => after = next,
            None => return Ok((bank, total)),
        }
    }
}

fn exit_for(bad: u64) -> ExitCode {
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    /// A line over the limit is skipped and reported without being held in
    /// memory whole; the lines around it still import.
    #[test]
    fn overlong_lines_are_bounded_and_reported() {
        let mut input = format!("{PDQ}\n").into_bytes();
        input.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES * 2 + 5));
        input.extend_from_slice(format!("\n{PDQ},x\n").as_bytes());
        let mut bad = Vec::new();
        let items = Items {
            reader: std::io::Cursor::new(input),
            buf: Vec::new(),
            line: 0,
            seen_content: false,
            labels: &[],
            note: "",
            bad: &mut bad,
            bad_count: 0,
            source: "test",
            io_error: None,
        };
        let got: Vec<ImportItem> = items.collect();
        assert_eq!(got.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 2);
        assert!(bad[0].reason.contains("longer than"), "{}", bad[0].reason);
    }
}
