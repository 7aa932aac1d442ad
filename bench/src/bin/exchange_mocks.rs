//! Are the exchange mock servers faithful? (driven by
//! `bench/run_exchange.sh mocks`; not part of the test suite.)
//!
//! The adapter tests (`crates/server/tests/exchange_api.rs`) fetch from
//! local mocks of Tech Against Terrorism's TCAP hash list and Meta's
//! ThreatExchange (`crates/exchange/tests/mocks/mod.rs`). This binary
//! serves the SAME mock code with a few pages of records, tombstones
//! included, then fetches each mock twice:
//!
//! * with python-threatexchange's own clients
//!   (`bench/peers/pytx_exchange_fetch.py`, pytx's `TATSignalExchangeAPI`
//!   and `FBThreatExchangeSignalExchangeAPI`);
//! * with echotrace's `tat` and `fb_threatexchange` adapters (one fetch
//!   round into a throwaway SQLite database),
//!
//! and compares the live `(signal type, value)` sets. They must be equal;
//! any difference is printed record by record and the exit status is 1.
//!
//!     exchange_mocks [--python python3] [--peer bench/peers/pytx_exchange_fetch.py]

#[path = "../../../crates/exchange/tests/mocks/mod.rs"]
mod mocks;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use echotrace_engine::{Actor, Engine, EngineConfig};
use echotrace_exchange::{ExchangeRequest, ExchangeService, NetPolicy, SecretBox, ServiceConfig};
use serde_json::{json, Value};

type Key = (String, String);

fn pdq(i: i64) -> String {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
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

/// Run the pytx peer; its stdout is one `{"signal_type","value"}` per live
/// record, its stderr ends with `{"pages": N}`.
async fn pytx(python: &str, peer: &str, argv: Vec<String>) -> anyhow::Result<(BTreeSet<Key>, u64)> {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(peer).args(&argv);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running the pytx peer")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("pytx peer failed ({}): {stderr}", out.status);
    }
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).context("pytx peer output")?;
        let t = v["signal_type"].as_str().ok_or_else(|| anyhow!("{line}"))?;
        let value = v["value"].as_str().ok_or_else(|| anyhow!("{line}"))?;
        set.insert((t.to_string(), value.to_string()));
    }
    let pages = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["pages"].as_u64())
        .unwrap_or(0);
    Ok((set, pages))
}

/// One echotrace fetch round of `api` against the mock; the exchange's
/// live record set afterwards, with the round report.
async fn ours(
    svc: &ExchangeService,
    name: &str,
    api: &str,
    config: Value,
    credentials: Value,
) -> anyhow::Result<(BTreeSet<Key>, Value)> {
    let ex = svc
        .create(
            &Actor::cli(),
            ExchangeRequest {
                name: name.into(),
                api: api.into(),
                config,
                credentials: Some(credentials),
                policy: None,
                enabled: Some(true),
                live: Some(true),
                poll_interval_secs: Some(3600),
                bank: None,
            },
        )
        .await?;
    let report = svc.fetch_once(ex.id).await.map_err(|e| anyhow!("{e}"))?;
    let mut set = BTreeSet::new();
    let mut after: Option<Key> = None;
    loop {
        let page = svc
            .engine()
            .store()
            .exchange_live_keys_page(
                ex.id,
                after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                10_000,
            )
            .await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        set.extend(page);
        after = Some(last);
    }
    let report = json!({
        "pages": report.pages, "records": report.records,
        "items_added": report.items_added, "tombstoned": report.tombstoned,
        "unsupported": report.unsupported, "malformed": report.malformed,
    });
    Ok((set, report))
}

fn compare(
    mock: &str,
    pytx: &BTreeSet<Key>,
    pytx_pages: u64,
    ours: &BTreeSet<Key>,
    report: Value,
    upstream: Value,
) -> bool {
    let only_pytx: Vec<&Key> = pytx.difference(ours).collect();
    let only_ours: Vec<&Key> = ours.difference(pytx).collect();
    let equal = only_pytx.is_empty() && only_ours.is_empty();
    println!(
        "{}",
        json!({
            "bench": "exchange_mocks",
            "mock": mock,
            "upstream": upstream,
            "pytx": {"live": pytx.len(), "pages": pytx_pages},
            "echotrace": {"live": ours.len(), "report": report},
            "equal": equal,
            "only_pytx": only_pytx,
            "only_echotrace": only_ours,
        })
    );
    equal
}

async fn run(args: &[String]) -> anyhow::Result<bool> {
    let python = arg(args, "--python").unwrap_or_else(|| "python3".into());
    let peer = arg(args, "--peer").unwrap_or_else(|| "bench/peers/pytx_exchange_fetch.py".into());
    let dir = std::env::temp_dir().join(format!("et-exchange-mocks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let engine = Engine::open(EngineConfig::with_database_url(format!(
        "sqlite://{}/mocks.db",
        dir.display()
    )))
    .await?;
    let svc = ExchangeService::new(
        engine,
        SecretBox::from_env_or_file_lazy(&dir.join("key.secret"))?,
        ServiceConfig {
            net: NetPolicy {
                allow_loopback: true,
                timeout: Duration::from_secs(20),
                ..NetPolicy::default()
            },
            ..ServiceConfig::default()
        },
    );

    // TCAP: 40 entries (PDQ, every third an MD5 of an mp4), four of them
    // tombstones; pages of 7 (pytx sends no limit, so the mock's default
    // applies to it; ours asks for 9).
    let mut records = mocks::tat_records(40, pdq);
    for r in records
        .iter_mut()
        .filter(|r| [4, 9, 17, 30].contains(&r.id))
    {
        r.deleted = true;
    }
    let tombstones = records.iter().filter(|r| r.deleted).count();
    let (base, tat) = mocks::tat(records).await;
    let (user, password) = {
        let mut m = tat.lock().map_err(|_| anyhow!("mock lock"))?;
        m.default_limit = 7;
        (m.username.clone(), m.password.clone())
    };
    let (p_set, p_pages) = pytx(
        &python,
        &peer,
        vec![
            "tat".into(),
            format!("{base}/"),
            user.clone(),
            password.clone(),
        ],
    )
    .await?;
    let (o_set, report) = ours(
        &svc,
        "TCAP",
        "tat",
        json!({"base_url": format!("{base}/"), "page_size": 9}),
        json!({"username": user, "password": password}),
    )
    .await?;
    let tat_equal = compare(
        "tat",
        &p_set,
        p_pages,
        &o_set,
        report,
        json!({"records": 40, "tombstones": tombstones}),
    );

    // ThreatExchange: 250 threat_updates (PDQ, video MD5, URI), 25
    // `should_delete` tombstones, two owners' descriptors; pages of 20 for
    // ours, 100 for pytx (its adapter hard-codes `page_size=100`, hence 250
    // records: pytx follows `paging.next` twice).
    let updates = mocks::te_updates_set(250, pdq);
    let te_tombstones = updates.iter().filter(|u| u.should_delete).count();
    let (base, _te) = mocks::te(updates).await;
    let (p_set, p_pages) = pytx(
        &python,
        &peer,
        vec![
            "te".into(),
            base.clone(),
            mocks::TE_TOKEN.into(),
            "123".into(),
        ],
    )
    .await?;
    let (o_set, report) = ours(
        &svc,
        "GIFCT_TE",
        "fb_threatexchange",
        json!({"privacy_group": 123, "base_url": base, "page_size": 20}),
        json!({"api_token": mocks::TE_TOKEN}),
    )
    .await?;
    let te_equal = compare(
        "fb_threatexchange",
        &p_set,
        p_pages,
        &o_set,
        report,
        json!({"records": 250, "tombstones": te_tombstones}),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tat_equal && te_equal)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    if !rt.block_on(run(&args))? {
        eprintln!("exchange_mocks: pytx and echotrace fetched different live sets (see above)");
        std::process::exit(1);
    }
    Ok(())
}
