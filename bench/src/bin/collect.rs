//! Collector benchmark harness (not part of the test suite).
//!
//! * `site --pages N --listen ADDR`: serve a generated site on loopback —
//!   `/` links to N/100 sections, each section to 100 pages; a page has a
//!   paragraph of generated text, links to its section, the index, a
//!   sibling and an external host. Keep-alive HTTP/1.1, answers from memory.
//! * `crawl --db URL --seed URL [--workers W] [--bank-texts K]`: the
//!   collector, in process, crawls the site from the seed (depth 2,
//!   politeness off) into a fresh database with a bank of K texts (so every
//!   page is matched for real), writing WARC evidence; prints one JSON line:
//!   pages, wall and CPU seconds of this process, pages per CPU-second, RSS
//!   samples every 10,000 pages.
//! * `telegram-gen --messages N --out DIR [--photo-every K]`: a generated
//!   Telegram Desktop export (with `--photo-every`, every K-th message
//!   carries a generated 640×480 JPEG photo, and one photo in ten of those
//!   is the left-right mirror of a `--bank-images` image); `telegram --db
//!   URL --path DIR [--bank-images B]`: import it into a bank of 100 texts
//!   (and B generated images added as files), JSON line with messages/s,
//!   messages per CPU-second and the matched count.
//!
//! * `retro --db URL [--items K]`: on a store `telegram` filled, add K
//!   generated 640×480 photos (seeds no export photo uses) to bank `bench`
//!   as files and time one `Engine::retro_hunt` of them over every stored
//!   sighting signal; JSON line with the wall time and the report.
//!
//! Run by `bench/run_collect.sh`, which runs the Python peers on the same
//! site and export in the same run.

/// The `echotrace` binary's allocator, the same source file, so `telegram`
/// measures what `echotrace collect import-telegram` ships: glibc until the
/// switch, mimalloc for the import.
#[path = "../../../crates/cli/src/alloc.rs"]
mod alloc;
#[path = "../../../crates/server/tests/robust_images/blocks.rs"]
mod blocks;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use echotrace_collector::{
    Collector, CollectorConfig, FetchConfig, PrivateAllow, RunOptions, SourceConfig,
};
use echotrace_engine::{Actor, ContentSource, Engine, EngineConfig, NewBank, NewContent};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORDS: &[&str] = &[
    "river", "valley", "morning", "league", "harbour", "market", "garden", "bridge", "station",
    "weather", "cyclist", "festival", "library", "museum", "orchard", "meadow", "village", "coast",
    "ferry", "bakery", "concert", "stadium", "forecast", "lantern", "tram", "island", "summit",
];

fn text(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(n * 8);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    out
}

fn page(path: &str, sections: usize) -> Option<Vec<u8>> {
    if path == "/" || path == "/index.html" {
        let mut b = String::from(
            "<!doctype html><html><head><title>Index</title></head><body><h1>Index</h1><ul>",
        );
        for s in 0..sections {
            b.push_str(&format!("<li><a href=\"/s/{s}\">section {s}</a></li>"));
        }
        b.push_str("</ul></body></html>");
        return Some(b.into_bytes());
    }
    if let Some(s) = path.strip_prefix("/s/") {
        let s: usize = s.parse().ok()?;
        let mut b = format!(
            "<!doctype html><html><head><title>Section {s}</title></head><body><p>{}</p><ul>",
            text(s as u64, 30)
        );
        for p in 0..100 {
            b.push_str(&format!("<li><a href=\"/p/{s}/{p}\">page {p}</a></li>"));
        }
        b.push_str("</ul><a href=\"/\">home</a></body></html>");
        return Some(b.into_bytes());
    }
    if let Some(rest) = path.strip_prefix("/p/") {
        let (s, p) = rest.split_once('/')?;
        let (s, p): (usize, usize) = (s.parse().ok()?, p.parse().ok()?);
        let seed = (s * 100 + p) as u64;
        return Some(
            format!(
                "<!doctype html><html><head><title>Page {s}/{p}</title></head><body><article><h1>Notes {s}.{p}</h1>\
                 <p>{}</p><p>{}</p></article><nav><a href=\"/s/{s}\">section</a> <a href=\"/\">home</a> \
                 <a href=\"/p/{s}/{}\">next</a> <a href=\"http://elsewhere.invalid/{seed}\">elsewhere</a></nav></body></html>",
                text(seed, 80),
                text(seed + 7, 60),
                (p + 1) % 100
            )
            .into_bytes(),
        );
    }
    None
}

async fn serve_site(listen: &str, pages: usize) -> anyhow::Result<()> {
    let sections = pages.div_ceil(100);
    let l = tokio::net::TcpListener::bind(listen).await?;
    println!("{}", l.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (mut sock, _) = l.accept().await?;
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            loop {
                let end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    let mut chunk = [0u8; 4096];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                buf.drain(..end);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let resp = match page(&path, sections) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                };
                if sock.write_all(&resp).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// CPU seconds (user + system) of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A generated 640×480 photo, distinct per seed: a 8×6 grid of
/// seed-coloured blocks under a seed-tuned wave pattern (detailed enough
/// for PDQ quality 100).
fn bench_photo(seed: u64) -> image::RgbImage {
    blocks::blocks(seed)
}

/// JPEG bytes (quality 85) of a bench photo.
fn jpeg_of(img: &image::RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(img)?;
    Ok(out)
}

/// Seeds of the bank images (`telegram --bank-images`).
const BANK_PHOTO_SEED: u64 = 7_000_000;

async fn engine_with_bank(db: &str, texts: usize) -> anyhow::Result<Engine> {
    let cfg = EngineConfig::with_database_url(db);
    let engine = Engine::open(cfg).await?;
    let bank = engine
        .create_bank(
            &Actor::cli(),
            NewBank {
                name: "bench".into(),
                kind: echotrace_engine::BankKind::Block,
                description: String::new(),
                thresholds: Default::default(),
                text_equivalences: None,
            },
        )
        .await?;
    for i in 0..texts {
        engine
            .add_content(
                &Actor::cli(),
                bank.id,
                NewContent {
                    source: ContentSource::Text(text(1_000_000 + i as u64, 80)),
                    labels: vec![],
                    note: String::new(),
                },
            )
            .await?;
    }
    Ok(engine)
}

async fn crawl(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or(anyhow!("--db"))?;
    let seed = arg(args, "--seed").ok_or(anyhow!("--seed"))?;
    let workers: usize = arg(args, "--workers")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(16);
    let texts: usize = arg(args, "--bank-texts")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(100);
    let warc = arg(args, "--warc-dir").unwrap_or_else(|| "/tmp/echotrace-bench-warc".into());
    let engine = engine_with_bank(&db, texts).await?;
    let mut fetch = FetchConfig::new("https://bench.invalid/contact").map_err(|e| anyhow!(e))?;
    fetch.allow_private = "127.0.0.0/8"
        .parse::<PrivateAllow>()
        .map_err(|e| anyhow!(e))?;
    fetch.politeness.enabled = false;
    let mut cfg = CollectorConfig::new(fetch, warc.into());
    cfg.workers = workers;
    let collector = Collector::new(engine.clone(), cfg)?;
    let sc = SourceConfig {
        urls: vec![seed],
        depth: 2,
        ignore_robots: true,
        ..SourceConfig::default()
    };
    collector
        .add_source(&Actor::cli(), "bench", "page", &sc.to_json())
        .await?;
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(u64, f64)>::new()));
    let s2 = samples.clone();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let report = collector
        .run(RunOptions::default(), move |r| {
            if let Ok(mut s) = s2.lock() {
                let bucket = r.fetched / 10_000;
                if s.last().is_none_or(|(b, _)| *b < bucket) {
                    s.push((bucket, rss_mb()));
                }
            }
        })
        .await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rss: Vec<f64> = samples
        .lock()
        .map(|s| s.iter().map(|(_, m)| *m).collect())
        .unwrap_or_default();
    println!(
        "{}",
        json!({
            "pages": report.fetched, "failed": report.jobs_failed, "sightings": report.items,
            "wall_s": wall, "cpu_s": cpu, "pages_per_s": report.fetched as f64 / wall,
            "pages_per_cpu_s": report.fetched as f64 / cpu.max(1e-9),
            "rss_mb_every_10k_pages": rss, "rss_mb_end": rss_mb(),
        })
    );
    Ok(())
}

fn telegram_gen(args: &[String]) -> anyhow::Result<()> {
    let n: usize = arg(args, "--messages")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(100_000);
    let photo_every: usize = arg(args, "--photo-every")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(0);
    let out = std::path::PathBuf::from(arg(args, "--out").ok_or(anyhow!("--out"))?);
    std::fs::create_dir_all(out.join("photos"))?;
    let mut photos = 0u64;
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("result.json"))?);
    write!(
        f,
        "{{\"name\": \"Bench\", \"type\": \"public_channel\", \"id\": 99, \"messages\": ["
    )?;
    for i in 1..=n {
        if i > 1 {
            write!(f, ",")?;
        }
        let t = text(i as u64, 40);
        let mut m = if i % 3 == 0 {
            json!({"id": i, "type": "message", "date_unixtime": (1_700_000_000 + i).to_string(), "from": "Bench",
                   "text": [t.clone(), {"type": "text_link", "text": "here", "href": format!("https://mirror.example/f/{i}")}],
                   "text_entities": [{"type": "plain", "text": t}, {"type": "text_link", "text": "here", "href": format!("https://mirror.example/f/{i}")}]})
        } else {
            json!({"id": i, "type": "message", "date_unixtime": (1_700_000_000 + i).to_string(), "from": "Bench",
                   "text": t.clone(), "text_entities": [{"type": "plain", "text": t}]})
        };
        if photo_every > 0 && i % photo_every == 0 {
            // One in ten: the mirror of bank image (photos / 10) % 10.
            let img = if photos % 10 == 9 {
                image::imageops::flip_horizontal(&bench_photo(BANK_PHOTO_SEED + (photos / 10) % 10))
            } else {
                bench_photo(i as u64)
            };
            let name = format!("photos/p{i}.jpg");
            std::fs::write(out.join(&name), jpeg_of(&img)?)?;
            m["photo"] = json!(name);
            photos += 1;
        }
        serde_json::to_writer(&mut f, &m)?;
    }
    write!(f, "]}}")?;
    f.flush()?;
    Ok(())
}

async fn telegram(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or(anyhow!("--db"))?;
    let path = arg(args, "--path").ok_or(anyhow!("--path"))?;
    let bank_images: u64 = arg(args, "--bank-images")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(0);
    let engine = engine_with_bank(&db, 100).await?;
    if bank_images > 0 {
        let bank = engine.bank_by_name("bench").await?;
        for k in 0..bank_images {
            engine
                .add_content(
                    &Actor::cli(),
                    bank.id,
                    NewContent {
                        source: ContentSource::Bytes(jpeg_of(&bench_photo(BANK_PHOTO_SEED + k))?),
                        labels: vec![],
                        note: String::new(),
                    },
                )
                .await?;
        }
    }
    let fetch = FetchConfig::new("https://bench.invalid/contact").map_err(|e| anyhow!(e))?;
    let collector = Collector::new(
        engine.clone(),
        CollectorConfig::new(fetch, "/tmp/echotrace-bench-warc".into()),
    )?;
    let sc = SourceConfig {
        path: Some(path.clone()),
        ..SourceConfig::default()
    };
    collector
        .add_source(&Actor::cli(), "tg", "telegram_export", &sc.to_json())
        .await?;
    let row = engine
        .store()
        .get_source_by_name("tg")
        .await?
        .context("source")?;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let r = collector
        .import_telegram(&row, std::path::Path::new(&path), |_| {})
        .await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{}",
        json!({"messages": r.messages, "sightings": r.items, "matched": r.matched,
               "media_hashed": r.media_hashed, "wall_s": wall, "cpu_s": cpu,
               "messages_per_s": r.messages as f64 / wall, "messages_per_cpu_s": r.messages as f64 / cpu.max(1e-9),
               "rss_mb_end": rss_mb()})
    );
    Ok(())
}

async fn retro(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or(anyhow!("--db"))?;
    let items: u64 = arg(args, "--items")
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(1);
    let engine = Engine::open(EngineConfig::with_database_url(&db)).await?;
    let bank = engine.bank_by_name("bench").await?;
    let mut ids = Vec::new();
    for k in 0..items {
        let item = engine
            .add_content(
                &Actor::cli(),
                bank.id,
                NewContent {
                    source: ContentSource::Bytes(jpeg_of(&bench_photo(9_000_000 + k))?),
                    labels: vec![],
                    note: String::new(),
                },
            )
            .await?;
        ids.push(item.id);
    }
    let t0 = Instant::now();
    let r = engine.retro_hunt(&ids).await?;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"items": items, "signals_scanned": r.signals_scanned,
               "sightings_matched": r.sightings_matched, "retro_hunt_s": wall})
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("telegram") {
        alloc::for_batch_import();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("site") => {
            let pages: usize = arg(&args, "--pages")
                .map(|w| w.parse())
                .transpose()?
                .unwrap_or(100_000);
            let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.2:0".into());
            rt.block_on(serve_site(&listen, pages))
        }
        Some("crawl") => rt.block_on(crawl(&args)),
        Some("telegram-gen") => telegram_gen(&args),
        Some("telegram") => rt.block_on(telegram(&args)),
        Some("retro") => rt.block_on(retro(&args)),
        _ => bail!("usage: collect site|crawl|telegram-gen|telegram|retro (see the module doc)"),
    }?;
    let _ = Duration::ZERO;
    Ok(())
}
