//! Signal exchange benchmarks (driven by `bench/run_exchange.sh`).
//!
//! * `apply`: fetch-and-apply rate of a `file` exchange of N PDQ records
//!   (python-threatexchange's `pdq <hex>` lines), from the file to
//!   matchable: one process opens the engine (indexes loaded), runs one
//!   fetch round of the exchange and returns when every batch is committed
//!   and applied to its in-memory index; then checks lookups match.
//! * `gen`: write the N-record file.
//! * `propagation`: publish-to-matchable latency between two running
//!   `echotrace serve` processes: add an item on A, poll B's lookup every
//!   5 ms until it matches; p50 / p99 / max over the samples.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use echotrace_engine::{
    Actor, Engine, EngineConfig, LookupRequest, SignalValue, SubmissionContext,
};
use echotrace_exchange::{ExchangeRequest, ExchangeService, SecretBox, ServiceConfig};
use echotrace_signals::signal::SignalType;

fn pdq(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn gen(path: &str, n: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(f, "pdq {}", pdq(i))?;
    }
    f.flush()?;
    Ok(())
}

async fn apply(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or_else(|| anyhow!("--db URL"))?;
    let file = arg(args, "--file").ok_or_else(|| anyhow!("--file PATH"))?;
    let n: u64 = arg(args, "--records")
        .unwrap_or_else(|| "1000000".into())
        .parse()?;
    let batch: usize = arg(args, "--batch")
        .unwrap_or_else(|| "10000".into())
        .parse()?;
    let opened = Instant::now();
    let engine = Engine::open(EngineConfig::with_database_url(&db)).await?;
    let load_s = opened.elapsed().as_secs_f64();
    let key = std::env::temp_dir().join(format!("et-bench-{}.secret", std::process::id()));
    let svc = ExchangeService::new(
        engine.clone(),
        SecretBox::from_env_or_file_lazy(&key)?,
        ServiceConfig::default(),
    );
    let ex = svc
        .create(
            &Actor::cli(),
            ExchangeRequest {
                name: "BENCH".into(),
                api: "file".into(),
                config: serde_json::json!({"path": file, "format": "lines", "batch": batch}),
                credentials: None,
                policy: None,
                enabled: Some(true),
                live: Some(true),
                poll_interval_secs: Some(3600),
                bank: None,
            },
        )
        .await?;
    let t = Instant::now();
    let report = svc.fetch_once(ex.id).await.map_err(|e| anyhow!("{e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if report.items_added != n {
        bail!("expected {n} items, report: {report:?}");
    }
    // Matchable: lookups in this process find them.
    for i in [0, n / 2, n - 1] {
        let r = engine
            .lookup(
                &Actor::cli(),
                LookupRequest {
                    signals: vec![SignalValue {
                        signal_type: SignalType::Pdq,
                        value: pdq(i),
                    }],
                    banks: None,
                    context: SubmissionContext::default(),
                },
            )
            .await?;
        if r.matches.is_empty() {
            bail!("record {i} is not matchable after the fetch");
        }
    }
    let _ = std::fs::remove_file(&key);
    println!(
        "{}",
        serde_json::json!({
            "bench": "exchange_apply",
            "backend": engine.store().backend() == echotrace_engine::Backend::Postgres,
            "records": n,
            "seconds": secs,
            "records_per_s": n as f64 / secs,
            "engine_open_s": load_s,
            "batch": batch,
            "peak_rss_mib": rss_mib(),
            "indexed_pdq": engine.index_stats()?.pdq,
        })
    );
    Ok(())
}

async fn propagation(args: &[String]) -> anyhow::Result<()> {
    let a = arg(args, "--a").ok_or_else(|| anyhow!("--a URL"))?;
    let b = arg(args, "--b").ok_or_else(|| anyhow!("--b URL"))?;
    let ka = arg(args, "--key-a").ok_or_else(|| anyhow!("--key-a KEY"))?;
    let kb = arg(args, "--key-b").ok_or_else(|| anyhow!("--key-b KEY"))?;
    let bank = arg(args, "--bank").unwrap_or_else(|| "shared".into());
    let n: u64 = arg(args, "--samples")
        .unwrap_or_else(|| "200".into())
        .parse()?;
    let http = reqwest::Client::new();
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let h = pdq(9_000_000 + i);
        let t0 = Instant::now();
        let r = http
            .post(format!("{a}/v1/banks/{bank}/content"))
            .bearer_auth(&ka)
            .json(&serde_json::json!({"signals": {"pdq": h}}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("add on A failed: {}", r.status());
        }
        loop {
            let v: serde_json::Value = http
                .post(format!("{b}/v1/lookup"))
                .bearer_auth(&kb)
                .json(&serde_json::json!({"signals": {"pdq": h}}))
                .send()
                .await?
                .json()
                .await?;
            if v["matches"].as_array().is_some_and(|m| !m.is_empty()) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("sample {i} never reached B");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Spread the samples out (not a burst).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lat.sort_by(|x, y| x.total_cmp(y));
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{}",
        serde_json::json!({
            "bench": "exchange_propagation",
            "samples": lat.len(),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
            "max_ms": lat.last(),
            "mean_ms": lat.iter().sum::<f64>() / lat.len() as f64,
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).cloned().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    match cmd.as_str() {
        "gen" => gen(
            &arg(&args, "--file").ok_or_else(|| anyhow!("--file PATH"))?,
            arg(&args, "--records")
                .unwrap_or_else(|| "1000000".into())
                .parse()?,
        ),
        "apply" => rt.block_on(apply(&args)),
        "propagation" => rt.block_on(propagation(&args)),
        _ => bail!("usage: exchange gen|apply|propagation …"),
    }
}
