//! Set-up shared by the engine's integration tests (each `tests/*.rs` is its
//! own crate, so not every binary uses every helper).
#![allow(dead_code)]

use std::time::Duration;

use echotrace_engine::{Actor, EngineConfig, FloodGuardConfig, SignalValue};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::signal::SignalType;
use echotrace_store::testing::TestDb;

/// Engine settings for tests: a fast change tailer, no flood guard.
pub fn config(db: &TestDb) -> EngineConfig {
    EngineConfig {
        tail_interval: Duration::from_millis(100),
        flood_guard: FloodGuardConfig {
            enabled: false,
            ..FloodGuardConfig::default()
        },
        ..EngineConfig::with_database_url(db.url.clone())
    }
}

pub fn admin() -> Actor {
    Actor::cli()
}

/// A deterministic pseudo-random PDQ hash.
pub fn hash(seed: u64) -> PdqHash {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut w = [0u64; 4];
    for v in &mut w {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    PdqHash::from_words(w)
}

/// `h` with its first `k` bits flipped (distance exactly k).
pub fn flip(h: PdqHash, k: usize) -> PdqHash {
    let mut w = h.to_words();
    for i in 0..k {
        w[i / 64] ^= 1u64 << (i % 64);
    }
    PdqHash::from_words(w)
}

pub fn pdq(h: PdqHash) -> SignalValue {
    SignalValue {
        signal_type: SignalType::Pdq,
        value: h.to_hex(),
    }
}
