//! The collector's side of the SSRF guard: the address rules themselves are
//! [`echotrace_engine::ssrf`] (shared with the exchange adapters and the
//! server's URL fetching); this module plugs them into reqwest's resolver.

use std::sync::Arc;

use echotrace_engine::ssrf::resolve_vetted;
pub use echotrace_engine::ssrf::{
    ip_literal, is_public, vet_host, vet_url, GuardError, IpNet, PrivateAllow,
};

/// A DNS resolver for reqwest that vets every answer: a name that resolves
/// to a refused address fails to connect, whichever request (first hop or
/// redirect) asked for it. (IP literals never reach a resolver; the fetcher
/// vets those itself.)
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    allow: Arc<PrivateAllow>,
}

impl GuardedResolver {
    pub fn new(allow: PrivateAllow) -> Self {
        GuardedResolver {
            allow: Arc::new(allow),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = resolve_vetted(&host, 0, &allow)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}
