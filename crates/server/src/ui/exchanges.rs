//! The console's exchanges page: every exchange with its status (records,
//! items, lag, last success, last error), enable/disable, "fetch now",
//! policy editing with a dry-run diff ("would add N, delete M") before it
//! is saved, and going live after a dry run; plus the banks this instance
//! publishes as feeds. Credentials are never shown (only whether they are
//! set).

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use echotrace_engine::exchange::{Exchange, ExchangePolicy, PolicyDiff};
use echotrace_engine::{EngineError, Operation};
use echotrace_signals::signal::SignalType;
use maud::{html, Markup};

use super::session::{see_other, Authed, FormData, PostForm, UiPath, UiQuery};
use super::views::{csrf_field, layout, Flash, Viewer};
use super::{actor, engine_error, page, Ctx, FlashQuery, UiState};
use crate::auth::op;

pub(super) fn routes() -> Router<UiState> {
    Router::new()
        .route("/ui/exchanges", get(list))
        .route("/ui/exchanges/{id}", get(detail))
        .route("/ui/exchanges/{id}/toggle", post(toggle))
        .route("/ui/exchanges/{id}/fetch", post(fetch_now))
        .route("/ui/exchanges/{id}/policy", post(policy))
        .route("/ui/exchanges/{id}/live", post(go_live))
}

fn ago(ms: Option<i64>) -> String {
    match ms {
        None => "never".into(),
        Some(t) => {
            let s = (echotrace_store::now_ms() - t).max(0) / 1000;
            match s {
                0..=119 => format!("{s} s ago"),
                120..=7199 => format!("{} min ago", s / 60),
                7200..=172_799 => format!("{} h ago", s / 3600),
                _ => format!("{} days ago", s / 86_400),
            }
        }
    }
}

fn lag(ms: Option<i64>) -> String {
    match ms {
        None => "unknown".into(),
        Some(l) if l < 120_000 => format!("{} s", l / 1000),
        Some(l) if l < 7_200_000 => format!("{} min", l / 60_000),
        Some(l) => format!("{} h", l / 3_600_000),
    }
}

fn failing(e: &Exchange) -> bool {
    match (e.status.last_error_at, e.status.last_success_at) {
        (Some(err), Some(ok)) => err > ok,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A bar of items backed vs records live upstream (inline SVG).
fn bar(e: &Exchange) -> Markup {
    let total = e.status.upstream_live.max(1) as f64;
    let w = ((e.status.applied as f64 / total) * 120.0).clamp(0.0, 120.0);
    let label = format!(
        "{} of {} upstream records back bank items",
        e.status.applied, e.status.upstream_live
    );
    html! {
        svg width="120" height="10" viewBox="0 0 120 10" role="img" aria-label=(label) {
            rect x="0" y="0" width="120" height="10" fill="#ddd" {}
            rect x="0" y="0" width=(format!("{w:.1}")) height="10" fill="#2a6" {}
        }
    }
}

async fn list(st: Ctx, auth: Authed) -> Response {
    if let Err(r) = auth.require(Operation::Exchanges) {
        return r;
    }
    let exchanges = match st.engine.list_exchanges().await {
        Ok(l) => l,
        Err(e) => return engine_error(Some(&auth.viewer), e),
    };
    let feeds = match st.app.exchanges() {
        Ok(svc) => svc
            .feeds()
            .list(&admin_view(&auth))
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let body = html! {
        h1 { "Exchanges" }
        p class="muted" {
            "Hash lists fetched from the ecosystem into banks. Add one with "
            code { "echotrace exchange add" } " or " code { "POST /v1/exchanges" } "."
        }
        @if exchanges.is_empty() {
            p { "No exchanges yet." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th { "Exchange" } th { "API" } th { "Bank" } th { "State" }
                        th { "Items" } th { "Lag" } th { "Last success" } th { "Last error" }
                    } }
                    tbody {
                        @for e in &exchanges {
                            tr {
                                td { a href=(format!("/ui/exchanges/{}", e.id)) { (e.name) } }
                                td { (e.api) }
                                td { a href=(format!("/ui/banks/{}", e.bank_id)) { (e.bank) } }
                                td {
                                    (if e.enabled { "enabled" } else { "disabled" })
                                    @if !e.live { " · dry run" }
                                    @if e.status.full_fetch { " · full fetch" }
                                }
                                td { (bar(e)) " " (e.status.applied) " / " (e.status.upstream_live) }
                                td { (lag(e.status.lag_ms)) }
                                td { (ago(e.status.last_success_at)) }
                                td class=(if failing(e) { "error" } else { "muted" }) {
                                    (e.status.last_error.as_deref().map(|m| m.chars().take(120).collect::<String>()).unwrap_or_default())
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Published feeds" }
        @if feeds.is_empty() {
            p class="muted" { "No bank is published. Publish one with " code { "PUT /v1/feeds/{bank}" } "." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr { th { "Bank" } th { "Head" } th { "Live" } th { "Tombstones" } th { "Partners" } } }
                    tbody {
                        @for f in &feeds {
                            tr {
                                td { (f.bank) } td { (f.head) } td { (f.live) } td { (f.tombstones) }
                                td { (f.partners.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(layout(
        "Exchanges",
        "exchanges",
        Some(&auth.viewer),
        None,
        body,
    ))
}

/// A key-shaped view of a console user for feed listing (they see every
/// feed their role may manage).
fn admin_view(auth: &Authed) -> echotrace_engine::ApiKey {
    echotrace_engine::ApiKey {
        id: 0,
        name: auth.session.user.username.clone(),
        role: auth.session.user.role,
        created_at: 0,
        revoked_at: None,
    }
}

fn policy_from(form: &FormData) -> ExchangePolicy {
    let list = |name: &str| -> Vec<String> {
        form.get(name)
            .unwrap_or("")
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    ExchangePolicy {
        signal_types: form
            .all("signal_type")
            .iter()
            .filter_map(|t| t.parse::<SignalType>().ok())
            .collect(),
        include_labels: list("include_labels"),
        exclude_labels: list("exclude_labels"),
        skip_negative: form.get("skip_negative").is_some(),
        skip_disputed: form.get("skip_disputed").is_some(),
        ..ExchangePolicy::default()
    }
}

fn detail_page(
    viewer: &Viewer,
    e: &Exchange,
    policy: &ExchangePolicy,
    diff: Option<&PolicyDiff>,
    flash: Option<&Flash>,
) -> Markup {
    let s = &e.status;
    let body = html! {
        h1 { "Exchange " (e.name) }
        p class="muted" {
            (e.api) " → bank " a href=(format!("/ui/banks/{}", e.bank_id)) { (e.bank) }
            " · credentials " (if e.has_credentials { "set" } else { "not set (or shared per API)" })
            " · write-back " (if e.write_back { "on" } else { "not supported by this API: verdicts are counted, not sent" })
        }
        @if !e.live {
            div class="panel" {
                h2 { "Dry run" }
                p { "Records are fetched and kept, but the bank is not touched yet." }
                form method="post" action=(format!("/ui/exchanges/{}/live", e.id)) {
                    (csrf_field(&viewer.csrf))
                    button type="submit" { "Go live" }
                }
            }
        }
        div class="panel" {
            h2 { "Status" }
            dl {
                dt { "State" } dd { (if e.enabled { "enabled" } else { "disabled" }) @if s.full_fetch { ", full fetch in progress" } }
                dt { "Records" } dd { (s.records) " kept, " (s.upstream_live) " live upstream, " (s.applied) " backing items " (bar(e)) }
                dt { "Lag" } dd { (lag(s.lag_ms)) }
                dt { "Last success" } dd { (ago(s.last_success_at)) }
                dt { "Last error" } dd class=(if failing(e) { "error" } else { "muted" }) {
                    (s.last_error.clone().unwrap_or_else(|| "none".into())) " (" (ago(s.last_error_at)) ")"
                }
                dt { "Fetched" } dd { (s.fetched_total) " records, " (s.malformed_total) " malformed skipped" }
                dt { "Verdicts not sent" } dd { (s.opinions_unsent) }
                dt { "Checkpoint" } dd { code { (s.checkpoint.clone().unwrap_or_else(|| "none".into())) } }
            }
            form method="post" action=(format!("/ui/exchanges/{}/toggle", e.id)) class="inline" {
                (csrf_field(&viewer.csrf))
                input type="hidden" name="enabled" value=(if e.enabled { "0" } else { "1" });
                button type="submit" { (if e.enabled { "Disable" } else { "Enable" }) }
            }
            " "
            form method="post" action=(format!("/ui/exchanges/{}/fetch", e.id)) class="inline" {
                (csrf_field(&viewer.csrf))
                button type="submit" { "Fetch now" }
            }
        }
        div class="panel" {
            h2 { "Policy" }
            @if let Some(d) = diff {
                p class="flash ok" role="status" {
                    "This policy would add " strong { (d.would_add) } " and delete " strong { (d.would_delete) }
                    " bank items (" (d.unchanged_live) " unchanged)."
                }
            }
            form method="post" action=(format!("/ui/exchanges/{}/policy", e.id)) {
                (csrf_field(&viewer.csrf))
                fieldset {
                    legend { "Signal types (none checked = all)" }
                    @for t in SignalType::ALL {
                        label {
                            input type="checkbox" name="signal_type" value=(t.as_str())
                                checked[policy.signal_types.contains(&t)];
                            " " (t.as_str())
                        }
                        " "
                    }
                }
                label for="include_labels" { "Keep only records with one of these labels (comma-separated, e.g. ideology:far-right)" }
                input id="include_labels" name="include_labels" type="text" value=(policy.include_labels.join(", "));
                label for="exclude_labels" { "Drop records with any of these labels" }
                input id="exclude_labels" name="exclude_labels" type="text" value=(policy.exclude_labels.join(", "));
                label { input type="checkbox" name="skip_negative" checked[policy.skip_negative]; " Skip records whose aggregate opinion is negative" }
                label { input type="checkbox" name="skip_disputed" checked[policy.skip_disputed]; " Skip disputed records" }
                p {
                    button type="submit" name="action" value="preview" { "Preview (dry run)" }
                    " "
                    button type="submit" name="action" value="save" { "Save" }
                }
            }
        }
        div class="panel" {
            h2 { "Config" }
            pre { code { (serde_json::to_string_pretty(&echotrace_exchange::ExchangeService::config_json(e)).unwrap_or_default()) } }
        }
    };
    layout(
        &format!("Exchange {}", e.name),
        "exchanges",
        Some(viewer),
        flash,
        body,
    )
}

fn flash_of(msg: Option<&str>) -> Option<Flash> {
    match msg? {
        "saved" => Some(Flash::Ok("Saved.".into())),
        "live" => Some(Flash::Ok(
            "The exchange is live: its records now fill the bank.".into(),
        )),
        "fetching" => Some(Flash::Ok("A fetch was requested.".into())),
        "toggled" => Some(Flash::Ok("Exchange updated.".into())),
        _ => None,
    }
}

async fn detail(
    st: Ctx,
    auth: Authed,
    UiPath(id): UiPath<i64>,
    UiQuery(q): UiQuery<FlashQuery>,
) -> Response {
    if let Err(r) = auth.require(Operation::Exchanges) {
        return r;
    }
    match st.engine.exchange(id).await {
        Ok(e) => {
            let diff = if e.live {
                None
            } else {
                st.engine.exchange_policy_diff(e.id, &e.policy).await.ok()
            };
            let flash = flash_of(q.msg.as_deref());
            page(detail_page(
                &auth.viewer,
                &e,
                &e.policy.clone(),
                diff.as_ref(),
                flash.as_ref(),
            ))
        }
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn toggle(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::Exchanges>,
) -> Response {
    let change = echotrace_engine::exchange::ExchangeChange {
        enabled: Some(form.get("enabled") == Some("1")),
        ..Default::default()
    };
    match st.engine.update_exchange(&actor(&auth), id, change).await {
        Ok(_) => {
            if let Ok(svc) = st.app.exchanges() {
                svc.wake(id);
            }
            see_other(&format!("/ui/exchanges/{id}?msg=toggled"))
        }
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn fetch_now(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, .. }: PostForm<op::Exchanges>,
) -> Response {
    match (st.engine.exchange(id).await, st.app.exchanges()) {
        (Ok(_), Ok(svc)) => {
            svc.wake(id);
            see_other(&format!("/ui/exchanges/{id}?msg=fetching"))
        }
        (Err(e), _) => engine_error(Some(&auth.viewer), e),
        (_, Err(e)) => engine_error(Some(&auth.viewer), EngineError::Conflict(e.message)),
    }
}

async fn policy(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::Exchanges>,
) -> Response {
    let policy = policy_from(&form);
    let e = match st.engine.exchange(id).await {
        Ok(e) => e,
        Err(e) => return engine_error(Some(&auth.viewer), e),
    };
    if form.get("action") == Some("save") {
        let change = echotrace_engine::exchange::ExchangeChange {
            policy: Some(policy),
            ..Default::default()
        };
        return match st.engine.update_exchange(&actor(&auth), id, change).await {
            Ok(_) => see_other(&format!("/ui/exchanges/{id}?msg=saved")),
            Err(e) => engine_error(Some(&auth.viewer), e),
        };
    }
    match st.engine.exchange_policy_diff(id, &policy).await {
        Ok(diff) => page(detail_page(&auth.viewer, &e, &policy, Some(&diff), None)),
        Err(err) => engine_error(Some(&auth.viewer), err),
    }
}

async fn go_live(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, .. }: PostForm<op::Exchanges>,
) -> Response {
    let change = echotrace_engine::exchange::ExchangeChange {
        live: Some(true),
        ..Default::default()
    };
    match st.engine.update_exchange(&actor(&auth), id, change).await {
        Ok(_) => see_other(&format!("/ui/exchanges/{id}?msg=live")),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

/// One line for a review card: where an exchange-backed item came from.
pub(super) fn provenance_line(list: &[echotrace_engine::exchange::Provenance]) -> String {
    list.iter()
        .map(|p| {
            let mut parts = vec![format!("from exchange {} ({})", p.exchange, p.api)];
            if !p.upstream_id.is_empty() {
                parts.push(format!("upstream id {}", p.upstream_id));
            }
            let labels = p.labels.flatten();
            if !labels.is_empty() {
                parts.push(labels.join(", "));
            }
            if let Some(a) = p.aggregate {
                parts.push(format!(
                    "upstream opinion {}",
                    serde_json::to_string(&a)
                        .unwrap_or_default()
                        .trim_matches('"')
                ));
            }
            parts.join("; ")
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
