//! The echotrace collector: it goes and looks where known propaganda lives
//! — web pages, feeds, Telegram exports, WARC files, file lockers and paste
//! sites, onion services — and records every **sighting** with evidence.
//!
//! Sources produce **items**: a URL and, where there is one, its bytes, its
//! parent (the page or message that linked to it) and when it was seen.
//! The engine (`echotrace_engine::sighting`) hashes each item with the same
//! signals code as every other entry point, matches it against the banks and
//! records it; this crate only finds, fetches, parses and keeps evidence.
//!
//! Key decisions:
//!
//! * **One fetcher, one set of rules** ([`fetch::Fetcher`]): every request
//!   — a crawl, a robots.txt, a liveness re-check by spread tracking
//!   ([`fetch::Fetcher::refetch`]) — goes through the SSRF guard
//!   ([`guard`]: every resolved address vetted, IP literals too, redirects
//!   re-vetted, private addresses only where the operator allows them),
//!   robots.txt ([`robots`], `texting_robots`, cached 24 h), per-host
//!   politeness ([`politeness`], Heritrix's defaults: 3 s minimum, delay
//!   factor 5, Crawl-delay up to 300 s; a host clock in the store shared by
//!   every process plus a `governor` keyed limiter in each), a User-Agent
//!   with the operator's contact, and hard caps on time and bytes with
//!   bodies streamed (decoded bytes counted, so compression bombs are cut
//!   like endless bodies). A source may route through `socks5h://` (Tor):
//!   names resolve at the proxy, so DNS never leaks; an `.onion` URL
//!   without a proxy is refused.
//! * **A durable frontier in the store** (`echotrace_store::frontier`, both
//!   backends): jobs deduplicated by canonical URL (`url-canon-v1`), leased
//!   with `FOR UPDATE SKIP LOCKED` on PostgreSQL so N processes share the
//!   work without double fetches, one process per SQLite file. A job is
//!   finished in the same transaction as the sightings it produced, so
//!   kill -9 loses neither queued URLs nor sightings ([`run`]).
//! * **Scope**: from a seed, only the seed's host, the source's locker and
//!   paste hosts and its extra hosts are fetched, 0–2 hops deep; everything
//!   else found is recorded as an outlink, never fetched ([`source`],
//!   [`process`]).
//! * **Evidence**: every fetch is written to WARC 1.1 (gzip per record,
//!   CDXJ index, a `metadata` record with the signals and match result);
//!   payloads only with `--retain-media`, otherwise digests and headers
//!   ([`warc`]). A sighting points at its record.
//! * **Parsers are streaming and bounded**: HTML through `lol_html`
//!   ([`html`]), feeds through `feed-rs` ([`feed`]), Telegram exports
//!   message by message with errors naming line and column ([`telegram`]),
//!   WARC record by record with per-record caps ([`warc`]); locker pages
//!   through a small rule table ([`locker`]). Each has a fuzz target.

pub mod demo;
pub mod feed;
pub mod fetch;
pub mod guard;
pub mod html;
pub mod import;
pub mod locker;
pub mod platform;
pub mod politeness;
pub mod process;
pub mod registry;
pub mod robots;
pub mod run;
pub mod source;
pub mod telegram;
pub mod views;
pub mod warc;

pub use fetch::{FetchConfig, FetchError, FetchErrorKind, Fetched, Fetcher, NetOptions, Refetch};
pub use guard::PrivateAllow;
pub use import::ImportReport;
pub use locker::{LockerRule, LockerTable};
pub use politeness::PolitenessConfig;
pub use run::{Collector, CollectorConfig, CollectorError, RunOptions, RunReport, SourceView};
pub use source::{SourceConfig, SourceKind};
