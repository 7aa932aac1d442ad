//! HTTP delivery of outbox events to registered webhooks.
//!
//! The engine owns the persistent outbox (at-least-once, retry with
//! exponential backoff, survives restarts); this module only performs one
//! attempt: POST the JSON body to the hook's URL with
//! `X-Echotrace-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, an
//! event header and a delivery id (receivers de-duplicate on it, since
//! delivery is at-least-once). Any non-2xx status, timeout or connection
//! error is a failed attempt and the engine schedules a retry.
//!
//! The engine hands over one event at a time; [`WebhookDeliverer`] posts it
//! to every enabled webhook subscribed to its event name (no `events` =
//! all). The event counts as delivered only when every subscriber answered
//! 2xx; otherwise the whole event is retried later, so a subscriber that
//! already accepted it may see it again (same delivery id).
//!
//! Webhook URLs are configured by admins, so they may point at internal
//! hosts on purpose; redirects are still not followed (a redirect is a
//! failed attempt) so a compromised receiver can't bounce the signed body
//! elsewhere.

use std::time::Duration;

use echotrace_engine::{BoxFuture, Deliverer, Engine, OutboxEvent};

/// Header carrying the body signature.
pub const SIGNATURE_HEADER: &str = "X-Echotrace-Signature";
/// Header naming the event (`match`, `decision`, `quarantine`).
pub const EVENT_HEADER: &str = "X-Echotrace-Event";
/// Header carrying the outbox event id (stable across retries).
pub const DELIVERY_HEADER: &str = "X-Echotrace-Delivery";

/// Posts signed event bodies over HTTP(S).
#[derive(Clone)]
pub struct HttpDeliverer {
    client: reqwest::Client,
}

impl HttpDeliverer {
    /// A deliverer whose attempts time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("echotrace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpDeliverer { client })
    }

    /// One delivery attempt. `Ok` only on a 2xx answer.
    pub async fn post(
        &self,
        url: &str,
        secret: &[u8],
        event: &str,
        delivery_id: i64,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let signature = echotrace_engine::sign_body(secret, &body);
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, event)
            .header(DELIVERY_HEADER, delivery_id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("receiver answered {status}"))
        }
    }
}

/// The engine's [`Deliverer`] for webhooks.
pub struct WebhookDeliverer {
    engine: Engine,
    http: HttpDeliverer,
}

impl WebhookDeliverer {
    pub fn new(engine: Engine, http: HttpDeliverer) -> Self {
        WebhookDeliverer { engine, http }
    }

    async fn deliver_one(&self, event: &OutboxEvent) -> Result<(), String> {
        let hooks = self
            .engine
            .list_webhooks()
            .await
            .map_err(|e| format!("cannot list webhooks: {e}"))?;
        let body = serde_json::to_vec(&serde_json::json!({
            "id": event.id,
            "event": event.event,
            "created_at": event.created_at,
            "payload": event.payload,
        }))
        .map_err(|e| e.to_string())?;
        let mut failures = Vec::new();
        for hook in hooks.iter().filter(|h| {
            h.enabled && (h.events.is_empty() || h.events.iter().any(|e| e == &event.event))
        }) {
            if let Err(e) = self
                .http
                .post(
                    &hook.url,
                    hook.secret.as_bytes(),
                    &event.event,
                    event.id,
                    body.clone(),
                )
                .await
            {
                failures.push(format!("webhook {}: {e}", hook.id));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

impl Deliverer for WebhookDeliverer {
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.deliver_one(event))
    }
}
