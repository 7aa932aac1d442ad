//! The source registry: add, change, delete and list sources, each change
//! audited (a source that ignores robots.txt is named so in the audit
//! action). Used by the CLI, the API and the console alike.

use std::collections::HashMap;

use echotrace_engine::Actor;
use echotrace_store::{NewAudit, NewSource, SourceRow, SourceStatusRow, Store, StoreError};
use serde_json::json;

use crate::process::Child;
use crate::run::{enqueue, Collector};
use crate::run::{validate_source_name, view, CollectorError, Result, SourceView};
use crate::source::{read_url_list, SourceConfig, SourceKind};
use echotrace_store::SourceStatsDelta;

// ----- sources -------------------------------------------------------

/// Add a source (audited; `ignore_robots` is called out in the entry).
pub async fn add_source(
    store: &Store,
    actor: &Actor,
    name: &str,
    kind: &str,
    config: &str,
) -> Result<SourceView> {
    let name = validate_source_name(name)?;
    let kind = SourceKind::parse(kind.trim()).ok_or_else(|| {
        CollectorError::Invalid(format!(
            "kind: {kind:?} is not a source kind (urls, page, feed, telegram_export, warc, locker)"
        ))
    })?;
    let cfg = SourceConfig::parse(config).map_err(CollectorError::Invalid)?;
    cfg.validate(kind).map_err(CollectorError::Invalid)?;
    let json = cfg.to_json();
    let mut tx = store.write().await?;
    let row = tx
        .insert_source(&NewSource {
            name,
            kind: kind.as_str(),
            config: &json,
            enabled: true,
            created_by: actor.as_str(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                CollectorError::Conflict(format!("a source named {name:?} already exists"))
            }
            other => other.into(),
        })?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: if cfg.ignore_robots {
            "source.create.ignore_robots"
        } else {
            "source.create"
        },
        target: &format!("source:{}", row.id),
        before: None,
        after: Some(json!({"name": row.name, "kind": row.kind, "config": cfg, "ignore_robots": cfg.ignore_robots}).to_string()),
    })
    .await?;
    tx.commit().await?;
    source_view(store, &row).await
}

/// Change a source's config and/or enabled flag (audited before/after).
pub async fn update_source(
    store: &Store,
    actor: &Actor,
    name: &str,
    config: Option<&str>,
    enabled: Option<bool>,
) -> Result<SourceView> {
    let before = source_row(store, name).await?;
    let kind = SourceKind::parse(&before.kind)
        .ok_or_else(|| CollectorError::Invalid(format!("stored kind {:?}", before.kind)))?;
    let mut next = before.clone();
    if let Some(c) = config {
        let cfg = SourceConfig::parse(c).map_err(CollectorError::Invalid)?;
        cfg.validate(kind).map_err(CollectorError::Invalid)?;
        next.config = cfg.to_json();
    }
    if let Some(e) = enabled {
        next.enabled = e;
    }
    let cfg = SourceConfig::parse(&next.config).unwrap_or_default();
    let was_ignoring = SourceConfig::parse(&before.config)
        .map(|c| c.ignore_robots)
        .unwrap_or(false);
    let mut tx = store.write().await?;
    let row = tx.update_source(&next).await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: if cfg.ignore_robots && !was_ignoring {
            "source.update.ignore_robots"
        } else {
            "source.update"
        },
        target: &format!("source:{}", row.id),
        before: Some(json!({"config": before.config, "enabled": before.enabled}).to_string()),
        after: Some(json!({"config": row.config, "enabled": row.enabled}).to_string()),
    })
    .await?;
    tx.commit().await?;
    source_view(store, &row).await
}

/// Delete a source (its sightings stay; its queued jobs go).
pub async fn delete_source(store: &Store, actor: &Actor, name: &str) -> Result<()> {
    let row = source_row(store, name).await?;
    let mut tx = store.write().await?;
    tx.delete_source(row.id).await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: "source.delete",
        target: &format!("source:{}", row.id),
        before: Some(json!({"name": row.name, "kind": row.kind, "config": row.config}).to_string()),
        after: None,
    })
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn source_row(store: &Store, name: &str) -> Result<SourceRow> {
    store
        .get_source_by_name(name.trim())
        .await?
        .ok_or_else(|| CollectorError::NotFound(format!("source {:?}", name.trim())))
}

async fn source_view(store: &Store, row: &SourceRow) -> Result<SourceView> {
    let status = store
        .source_statuses()
        .await?
        .into_iter()
        .find(|s| s.source_id == row.id)
        .unwrap_or_default();
    let counts = store.frontier_counts(Some(row.id)).await?;
    Ok(view(
        row,
        &status,
        counts.queued + counts.leased,
        counts.done,
        counts.failed,
    ))
}

/// One source with its status.
pub async fn get_source(store: &Store, name: &str) -> Result<SourceView> {
    let row = source_row(store, name).await?;
    source_view(store, &row).await
}

/// Every source with its status.
pub async fn list_sources(store: &Store) -> Result<Vec<SourceView>> {
    let rows = store.list_sources().await?;
    let statuses: HashMap<i64, SourceStatusRow> = store
        .source_statuses()
        .await?
        .into_iter()
        .map(|s| (s.source_id, s))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let counts = store.frontier_counts(Some(r.id)).await?;
        let st = statuses.get(&r.id).cloned().unwrap_or_default();
        out.push(view(
            r,
            &st,
            counts.queued + counts.leased,
            counts.done,
            counts.failed,
        ));
    }
    Ok(out)
}

/// Queue a source's seeds (a urls source's file is read here; its bad
/// lines are counted as the source's errors). Returns how many jobs were
/// queued (new, or finished longer ago than the revisit interval).
pub async fn seed(store: &Store, row: &SourceRow) -> Result<u64> {
    let ctx = Collector::ctx(row)?;
    let mut urls = ctx.config.urls.clone();
    if ctx.kind == SourceKind::Urls {
        if let Some(path) = &ctx.config.path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CollectorError::Invalid(format!("source {:?}: config.path {path:?}: {e}", row.name))
            })?;
            let (list, bad) = read_url_list(&text);
            if !bad.is_empty() {
                let mut tx = store.write().await?;
                tx.add_source_stats(
                    row.id,
                    &SourceStatsDelta {
                        errors: bad.len() as i64,
                        last_error: bad.first().map(|b| format!("{path}: {b}")),
                        ..SourceStatsDelta::default()
                    },
                )
                .await?;
                tx.commit().await?;
            }
            urls.extend(list);
        }
    }
    let kind = ctx.kind.seed_job_kind();
    let children: Vec<Child> = urls
        .iter()
        .filter_map(|u| {
            let host = url::Url::parse(u.trim())
                .ok()?
                .host_str()?
                .to_ascii_lowercase();
            Some(Child {
                url: u.trim().to_string(),
                kind,
                depth: 0,
                seed_host: host,
            })
        })
        .collect();
    let mut tx = store.write().await?;
    let n = enqueue(&mut tx, &ctx, &children, None).await?;
    tx.commit().await?;
    Ok(n)
}

/// Queue the seeds of the source `name` for the collector processes
/// (audited). File-based sources are imported by a collector process, not
/// queued.
pub async fn queue_seeds(store: &Store, actor: &Actor, name: &str) -> Result<u64> {
    let row = source_row(store, name).await?;
    let kind = SourceKind::parse(&row.kind).unwrap_or(SourceKind::Page);
    if kind.is_file_based() {
        return Err(CollectorError::Invalid(format!(
            "source {:?} is a {} source: a collector process imports it \
             (`echotrace collect run --source {}`)",
            row.name, row.kind, row.name
        )));
    }
    let n = seed(store, &row).await?;
    let mut tx = store.write().await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: "source.run",
        target: &format!("source:{}", row.id),
        before: None,
        after: Some(json!({"queued": n}).to_string()),
    })
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Add or replace a host -> platform entry (audited).
pub async fn set_platform(store: &Store, actor: &Actor, host: &str, platform: &str) -> Result<()> {
    let host = host.trim().to_ascii_lowercase();
    let platform = platform.trim();
    crate::platform::validate_entry(&host, platform).map_err(CollectorError::Invalid)?;
    let mut tx = store.write().await?;
    tx.set_host_platform(&host, platform).await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: "platform.set",
        target: &format!("host:{host}"),
        before: None,
        after: Some(json!({"platform": platform}).to_string()),
    })
    .await?;
    tx.commit().await?;
    Ok(())
}
