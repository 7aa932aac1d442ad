//! Signal exchange for echotrace: pull the ecosystem's hash lists in,
//! publish banks to partners, and send reviewers' verdicts back.
//!
//! A matcher is only as good as the hashes in its banks, and most small
//! platforms get theirs from shared programmes — Tech Against Terrorism's
//! TCAP lists, the GIFCT database through Meta's ThreatExchange, and each
//! other. This crate is the hub that talks to them. It sits above the
//! engine: the engine owns every domain effect (records become bank items
//! through the change sequence, local overrides, provenance, opinions in
//! the outbox); this crate owns the wire.
//!
//! * **Adapters** ([`adapter`]) speak one wire format each — another
//!   echotrace instance's feed, TCAP's hash list v2 and URL list,
//!   ThreatExchange's `threat_updates`, and CSV / JSONL / pytx lines files —
//!   and hand out pages of typed records with typed checkpoints. They read
//!   upstream answers through [`net::Http`]: SSRF-vetted, size- and
//!   time-bounded, redirects re-vetted, so a hostile upstream ends in a
//!   recorded fetch error, never in unbounded memory or a request into the
//!   private network.
//! * **Workers** ([`worker`]): one task per exchange, all concurrent (not
//!   HMA's single global lock); a database lease per exchange so only one
//!   process of a deployment fetches it; each page and its checkpoint in one
//!   transaction fenced by the lease; 429/5xx retried with `Retry-After`;
//!   a missing or stale checkpoint, a 410 or a checksum drift start a full
//!   fetch reconciled by mark-and-sweep.
//! * **Feeds** ([`feed`]): a bank published to partner keys as an ordered
//!   log with tombstones, long-poll, snapshots and a checksum, derived from
//!   the change sequence by one builder per deployment.
//! * **Write-back** ([`OpinionDeliverer`]): `exchange.opinion` outbox events
//!   (queued by the engine with each decision on an exchange-backed item)
//!   are delivered through the exchange's adapter; every other event goes
//!   to the webhook deliverer as before.
//! * **Credentials** ([`secret`]) are sealed with ChaCha20-Poly1305 under a
//!   key from `ECHOTRACE_SECRET_KEY` or a 0600 key file; plaintext exists
//!   only in memory inside an adapter.

pub mod adapter;
pub mod feed;
pub mod net;
pub mod secret;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_engine::exchange::{
    Exchange, ExchangeChange, ExchangePolicy, NewExchangeSpec, OpinionOut, OPINION_EVENT,
};
use echotrace_engine::{Actor, BoxFuture, Deliverer, Engine, EngineError, OutboxEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use adapter::{api_info, ApiInfo, FetchError, APIS};
pub use feed::{FeedError, FeedHub};
pub use net::NetPolicy;
pub use secret::{SecretBox, SecretError, SECRET_KEY_ENV};
pub use worker::{RoundError, RoundReport};

/// Default poll interval of a new exchange.
pub const DEFAULT_POLL_SECS: u64 = 300;

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub net: NetPolicy,
    /// This process's name in leases.
    pub holder: String,
    /// How often the set of exchanges is re-read.
    pub rescan_every: Duration,
    /// Lease of an exchange's fetcher: renewed every third of it while a
    /// round runs; after a crash another process takes over within it.
    pub lease_ttl: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            net: NetPolicy::default(),
            holder: default_holder(),
            rescan_every: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(15),
        }
    }
}

/// `host-pid-random`: unique per process.
pub fn default_holder() -> String {
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    format!(
        "pid{}-{}",
        std::process::id(),
        echotrace_signals::digest::to_hex(&r)
    )
}

/// What an operator sends to create an exchange (v1, CLI, console).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    pub name: String,
    pub api: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Plaintext credentials (sealed before they are stored).
    #[serde(default)]
    pub credentials: Option<serde_json::Value>,
    #[serde(default)]
    pub policy: Option<ExchangePolicy>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `true` (default) applies records to the bank; `false` is a dry run.
    #[serde(default)]
    pub live: Option<bool>,
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// Share an existing bank instead of creating one named like the
    /// exchange.
    #[serde(default)]
    pub bank: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Changes to an exchange; absent fields stay.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeEdit {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub live: Option<bool>,
    #[serde(default)]
    pub policy: Option<ExchangePolicy>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// New credentials; JSON `null` removes the exchange's own.
    #[serde(default, deserialize_with = "present")]
    pub credentials: Option<Option<serde_json::Value>>,
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<serde_json::Value>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// HMA's answer about an API's credentials.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ApiCredentialStatus {
    pub supports_authentification: bool,
    pub has_set_authentification: bool,
}

/// The exchange subsystem of one process.
pub struct ExchangeService {
    pub(crate) engine: Engine,
    pub(crate) secrets: Arc<SecretBox>,
    pub(crate) http: Arc<net::Http>,
    pub(crate) config: ServiceConfig,
    pub(crate) wakers: worker::Wakers,
    pub(crate) rescan: Notify,
    pub(crate) api_creds: Mutex<HashMap<String, Option<String>>>,
    /// Per exchange: the last upstream checksum ours matched.
    pub(crate) last_compared: Mutex<HashMap<i64, String>>,
    feeds: FeedHub,
}

impl ExchangeService {
    pub fn new(engine: Engine, secrets: SecretBox, config: ServiceConfig) -> Arc<ExchangeService> {
        Arc::new(ExchangeService {
            http: Arc::new(net::Http::new(config.net.clone())),
            feeds: FeedHub::new(engine.clone()),
            engine,
            secrets: Arc::new(secrets),
            config,
            wakers: Mutex::new(HashMap::new()),
            rescan: Notify::new(),
            api_creds: Mutex::new(HashMap::new()),
            last_compared: Mutex::new(HashMap::new()),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn feeds(&self) -> &FeedHub {
        &self.feeds
    }

    /// Start the fetch workers (a supervisor keeps one per exchange). Abort
    /// the handle to stop them.
    pub fn spawn_workers(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run_supervisor())
    }

    /// Start the feed builder (one process of a deployment builds at a
    /// time, through a lease). Abort the handle to stop it.
    pub fn spawn_feed_builder(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let holder = me.config.holder.clone();
            me.feeds.run_builder(holder).await
        })
    }

    /// Seal credentials for an API after validating their shape.
    fn seal(&self, api: &str, creds: &serde_json::Value) -> Result<String, EngineError> {
        let canonical = adapter::validate_credentials(api, creds)
            .map_err(|e| EngineError::InvalidInput(format!("credentials: {e}")))?;
        self.secrets
            .seal(canonical.as_bytes())
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Create an exchange (and its bank).
    pub async fn create(
        &self,
        actor: &Actor,
        req: ExchangeRequest,
    ) -> Result<Exchange, EngineError> {
        let info = api_info(req.api.trim()).ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "api: unknown exchange API {:?} (expected one of {})",
                req.api,
                APIS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let config = adapter::validate_config(info.name, &req.config)
            .map_err(|e| EngineError::InvalidInput(format!("config: {e}")))?;
        let credentials = match &req.credentials {
            Some(c) if !c.is_null() => Some(self.seal(info.name, c)?),
            _ => None,
        };
        let poll = req.poll_interval_secs.unwrap_or(DEFAULT_POLL_SECS);
        let ex = self
            .engine
            .create_exchange(
                actor,
                NewExchangeSpec {
                    name: req.name,
                    api: info.name.to_string(),
                    config,
                    policy: req.policy.unwrap_or_default(),
                    credentials,
                    write_back: info.write_back,
                    enabled: req.enabled.unwrap_or(true),
                    live: req.live.unwrap_or(true),
                    poll_interval_ms: i64::try_from(poll.saturating_mul(1000)).unwrap_or(i64::MAX),
                    bank: req.bank,
                },
            )
            .await?;
        self.rescan.notify_one();
        Ok(ex)
    }

    /// Change an exchange.
    pub async fn edit(
        &self,
        actor: &Actor,
        name: &str,
        edit: ExchangeEdit,
    ) -> Result<Exchange, EngineError> {
        let ex = self.engine.exchange_by_name(name).await?;
        let config = match &edit.config {
            Some(c) => Some(
                adapter::validate_config(&ex.api, c)
                    .map_err(|e| EngineError::InvalidInput(format!("config: {e}")))?,
            ),
            None => None,
        };
        let credentials = match &edit.credentials {
            Some(Some(c)) if !c.is_null() => Some(Some(self.seal(&ex.api, c)?)),
            Some(_) => Some(None),
            None => None,
        };
        let updated = self
            .engine
            .update_exchange(
                actor,
                ex.id,
                ExchangeChange {
                    enabled: edit.enabled,
                    live: edit.live,
                    poll_interval_ms: edit
                        .poll_interval_secs
                        .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
                    policy: edit.policy,
                    config,
                    credentials,
                },
            )
            .await?;
        self.wake(updated.id);
        Ok(updated)
    }

    /// Delete an exchange (its items and, unless shared, its bank).
    pub async fn remove(&self, actor: &Actor, name: &str) -> Result<(), EngineError> {
        let ex = self.engine.exchange_by_name(name).await?;
        self.engine.delete_exchange(actor, ex.id).await?;
        self.rescan.notify_one();
        Ok(())
    }

    /// Set (`Some`) or clear (`None`) the credentials shared by every
    /// exchange of an API (HMA's `/c/exchanges/api/{api}`).
    pub async fn set_api_credentials(
        &self,
        actor: &Actor,
        api: &str,
        creds: Option<&serde_json::Value>,
    ) -> Result<ApiCredentialStatus, EngineError> {
        let info = api_info(api)
            .ok_or_else(|| EngineError::InvalidInput(format!("no such exchange API {api:?}")))?;
        if !info.needs_credentials {
            return Err(EngineError::InvalidInput(format!(
                "{api} exchanges take no credentials"
            )));
        }
        let sealed = match creds {
            Some(c) => Some(self.seal(api, c)?),
            None => None,
        };
        self.engine
            .store()
            .set_exchange_api_credentials(api, sealed.as_deref())
            .await?;
        self.engine
            .record_audit(
                actor,
                "exchange.api_credentials",
                &format!("exchange_api:{api}"),
                serde_json::json!({"api": api, "credentials": if sealed.is_some() {"set"} else {"none"}}),
            )
            .await?;
        self.load_api_credentials().await;
        self.api_credential_status(api).await
    }

    /// Whether an API takes credentials and whether shared ones are set.
    pub async fn api_credential_status(
        &self,
        api: &str,
    ) -> Result<ApiCredentialStatus, EngineError> {
        let info = api_info(api)
            .ok_or_else(|| EngineError::InvalidInput(format!("no such exchange API {api:?}")))?;
        Ok(ApiCredentialStatus {
            supports_authentification: info.needs_credentials,
            has_set_authentification: self
                .engine
                .store()
                .exchange_api_credentials(api)
                .await?
                .is_some(),
        })
    }

    /// An exchange's config as JSON (it holds no secrets: credentials are
    /// separate).
    pub fn config_json(ex: &Exchange) -> serde_json::Value {
        serde_json::from_str(&ex.config).unwrap_or_default()
    }

    /// The exchange's checksum over its upstream-live records, with the
    /// checkpoint it corresponds to.
    pub async fn checksum(&self, name: &str) -> Result<serde_json::Value, EngineError> {
        let ex = self.engine.exchange_by_name(name).await?;
        let checksum = self.engine.exchange_checksum(ex.id).await?;
        let cursor = ex
            .status
            .checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|v| v.get("cursor").cloned());
        Ok(serde_json::json!({
            "exchange": ex.name,
            "checksum": checksum,
            "cursor": cursor,
            "upstream_checksum": ex.status.upstream_checksum,
        }))
    }

    /// A deliverer that sends `exchange.opinion` events through the
    /// exchange's adapter and everything else to `inner`.
    pub fn deliverer(self: &Arc<Self>, inner: Option<Arc<dyn Deliverer>>) -> Arc<dyn Deliverer> {
        Arc::new(OpinionDeliverer {
            service: self.clone(),
            inner,
        })
    }

    async fn deliver_opinion(&self, event: &OutboxEvent) -> Result<(), String> {
        let opinion: OpinionOut = serde_json::from_value(event.payload.clone())
            .map_err(|e| format!("unreadable opinion event: {e}"))?;
        let row = match self.engine.exchange_row(opinion.exchange_id).await {
            Ok(r) => r,
            Err(EngineError::NotFound(_)) => {
                // Deleted since: nothing to tell; say so in the audit log.
                let _ = self
                    .engine
                    .record_audit(
                        &Actor::system(),
                        "exchange.opinion_dropped",
                        &format!("exchange:{}", opinion.exchange_id),
                        serde_json::json!({"reason": "exchange deleted", "opinion": opinion}),
                    )
                    .await;
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        self.load_api_credentials().await;
        let mut adapter = self.adapter_for(&row).map_err(|e| e.to_string())?;
        adapter
            .report_opinion(&opinion)
            .await
            .map_err(|e| e.to_string())?;
        self.engine
            .record_audit(
                &Actor::system(),
                "exchange.opinion_sent",
                &format!("exchange:{}", row.id),
                serde_json::json!({"opinion": opinion}),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The outbox [`Deliverer`] of a process running exchanges.
pub struct OpinionDeliverer {
    service: Arc<ExchangeService>,
    inner: Option<Arc<dyn Deliverer>>,
}

impl Deliverer for OpinionDeliverer {
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if event.event == OPINION_EVENT {
                self.service.deliver_opinion(event).await
            } else {
                match &self.inner {
                    Some(d) => d.deliver(event).await,
                    None => Ok(()),
                }
            }
        })
    }
}
