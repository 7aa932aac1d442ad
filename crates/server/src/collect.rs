//! The collector inside `serve`.
//!
//! * The **retro-hunter** always runs (every few seconds, under a lease, so
//!   one replica does it): bank items added through the API, the console or
//!   a bulk import are matched against the signals of earlier sightings.
//! * With `serve --collect` (and `--demo`) a collector loop runs too: it
//!   polls the shared frontier, re-seeds sources periodically, and records
//!   what it finds, exactly like `echotrace collect run --watch`.
//! * In demo mode the server also serves a small generated website under
//!   `/demo/site/` and the demo seeds a page source and a Telegram-export
//!   source that point at it ([`seed_demo`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use echotrace_collector::demo::DemoSite;
use echotrace_collector::{Collector, CollectorConfig, RunOptions};
use echotrace_engine::{Actor, Engine};

use crate::AppState;

/// How often the retro-hunter looks for new bank items.
const RETRO_HUNT_EVERY: Duration = Duration::from_secs(3);

/// Start the background work of `serve`: the retro-hunter, and the
/// collector loop when configured. Returns the collector (for the demo)
/// and the task handles (aborted at shutdown).
pub(crate) fn spawn(
    engine: &Engine,
    config: Option<&CollectorConfig>,
) -> (Option<Collector>, Vec<tokio::task::JoinHandle<()>>) {
    let holder = config
        .map(|c| c.holder.clone())
        .unwrap_or_else(echotrace_collector::run::default_holder);
    let mut handles = vec![engine.spawn_retro_hunter(holder, RETRO_HUNT_EVERY)];
    let Some(config) = config else {
        return (None, handles);
    };
    let collector = match Collector::new(engine.clone(), config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("echotrace-server: collector disabled: {e}");
            return (None, handles);
        }
    };
    let c = collector.clone();
    handles.push(tokio::spawn(async move {
        loop {
            let opts = RunOptions {
                until_idle: false,
                reseed_every: Some(Duration::from_secs(600)),
                ..RunOptions::default()
            };
            match c.run(opts, |_| {}).await {
                Ok(_) => {}
                Err(e) => eprintln!("echotrace-server: collector loop: {e}; retrying in 10 s"),
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }));
    (Some(collector), handles)
}

/// Create the demo's sources (a page source on the demo site, a generated
/// Telegram export in `dir`) and queue them for the running collector.
pub async fn seed_demo(
    state: &AppState,
    base_url: &str,
    dir: &std::path::Path,
) -> Result<String, String> {
    let engine = state.engine().map_err(|e| e.message)?.clone();
    let collector = state
        .collector()
        .ok_or("the collector is not running (serve --collect)")?;
    let site_root = format!("{}/demo/site/", base_url.trim_end_matches('/'));
    let actor = Actor("demo:curator".to_string());
    let store = engine.store();
    let page_cfg = serde_json::json!({
        "urls": [format!("{site_root}index.html")],
        "depth": 2,
        "locker_hosts": [reqwest::Url::parse(&site_root).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()],
        "min_delay_ms": 100,
    });
    echotrace_collector::registry::add_source(
        store,
        &actor,
        "demo-site",
        "page",
        &page_cfg.to_string(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let export = echotrace_collector::demo::write_telegram_export(dir, &site_root)?;
    let tg_cfg = serde_json::json!({"path": export.display().to_string(), "follow_links": true, "min_delay_ms": 100});
    echotrace_collector::registry::add_source(
        store,
        &actor,
        "demo-telegram",
        "telegram_export",
        &tg_cfg.to_string(),
    )
    .await
    .map_err(|e| e.to_string())?;
    echotrace_collector::registry::queue_seeds(store, &actor, "demo-site")
        .await
        .map_err(|e| e.to_string())?;
    let row = store
        .get_source_by_name("demo-telegram")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("demo-telegram source missing")?;
    let report = collector
        .import_telegram(&row, &export, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "collector demo: a page source on {site_root} and a Telegram export ({} messages, {} sightings, {} matched) — see /ui/sightings",
        report.messages, report.items, report.matched
    ))
}

/// `GET /demo/site/{*path}`: the generated demo website (demo mode only).
pub(crate) async fn demo_file(
    State(site): State<Arc<DemoSite>>,
    Path(path): Path<String>,
) -> Response {
    match site.get(&path) {
        Some((ct, bytes)) => {
            let mut r = bytes.clone().into_response();
            if let Ok(v) = HeaderValue::from_str(ct) {
                r.headers_mut().insert(CONTENT_TYPE, v);
            }
            r
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
