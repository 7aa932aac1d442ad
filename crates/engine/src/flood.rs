//! Flood guard: a sliding window over the last N lookups of this process,
//! counting in how many of them each content item matched. An item whose
//! share exceeds the limit (once the window holds at least `min_sample`
//! lookups) is reported for quarantine — typically a near-blank image or a
//! stock phrase that slipped into a bank and now matches everything.

use std::collections::{HashMap, VecDeque};

use crate::types::ContentId;

/// Flood-guard settings.
#[derive(Clone, Debug)]
pub struct FloodGuardConfig {
    pub enabled: bool,
    /// Number of most recent lookups considered.
    pub window: usize,
    /// No quarantine before the window holds this many lookups.
    pub min_sample: usize,
    /// Quarantine when an item matched more than this share (0..1) of the window.
    pub max_share: f64,
}

impl Default for FloodGuardConfig {
    fn default() -> Self {
        FloodGuardConfig {
            enabled: true,
            window: 1000,
            min_sample: 200,
            max_share: 0.2,
        }
    }
}

pub(crate) struct FloodWindow {
    cfg: FloodGuardConfig,
    recent: VecDeque<Vec<ContentId>>,
    counts: HashMap<ContentId, usize>,
}

impl FloodWindow {
    pub(crate) fn new(cfg: FloodGuardConfig) -> Self {
        FloodWindow {
            cfg,
            recent: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    /// Record one lookup's matched content ids (deduplicated by the caller);
    /// returns the items now over the limit with their share.
    pub(crate) fn record(&mut self, hits: &[ContentId]) -> Vec<(ContentId, f64)> {
        if !self.cfg.enabled || self.cfg.window == 0 {
            return Vec::new();
        }
        self.recent.push_back(hits.to_vec());
        for id in hits {
            *self.counts.entry(*id).or_insert(0) += 1;
        }
        while self.recent.len() > self.cfg.window {
            if let Some(old) = self.recent.pop_front() {
                for id in old {
                    if let Some(c) = self.counts.get_mut(&id) {
                        *c = c.saturating_sub(1);
                        if *c == 0 {
                            self.counts.remove(&id);
                        }
                    }
                }
            }
        }
        let n = self.recent.len();
        if n < self.cfg.min_sample.max(1) {
            return Vec::new();
        }
        hits.iter()
            .filter_map(|id| {
                let share = *self.counts.get(id)? as f64 / n as f64;
                (share > self.cfg.max_share).then_some((*id, share))
            })
            .collect()
    }

    /// Stop counting an item (after quarantine or release) so it starts afresh.
    pub(crate) fn forget(&mut self, id: ContentId) {
        self.counts.remove(&id);
        for l in self.recent.iter_mut() {
            l.retain(|x| *x != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_only_after_min_sample_and_over_share() {
        let mut w = FloodWindow::new(FloodGuardConfig {
            enabled: true,
            window: 10,
            min_sample: 5,
            max_share: 0.5,
        });
        // Item 7 matches every lookup: nothing before 5 lookups.
        for _ in 0..4 {
            assert!(w.record(&[7]).is_empty());
        }
        let out = w.record(&[7]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 7);
        assert!((out[0].1 - 1.0).abs() < 1e-9);
        w.forget(7);
        // Item 8 matches 1 of 2: share 0.5 is not > 0.5.
        let mut w = FloodWindow::new(FloodGuardConfig {
            enabled: true,
            window: 10,
            min_sample: 2,
            max_share: 0.5,
        });
        assert!(w.record(&[8]).is_empty());
        assert!(w.record(&[]).is_empty());
        assert!(w.record(&[]).is_empty());
        assert!(w.record(&[8]).is_empty()); // 2/4
        assert_eq!(w.record(&[8]).len(), 1); // 3/5 > 0.5
    }

    #[test]
    fn window_slides() {
        let mut w = FloodWindow::new(FloodGuardConfig {
            enabled: true,
            window: 3,
            min_sample: 3,
            max_share: 0.9,
        });
        w.record(&[1]);
        w.record(&[2]);
        w.record(&[2]);
        // 1 left the window after this one; 2 is at 2/3.
        assert!(w.record(&[]).is_empty());
        assert_eq!(w.counts.get(&1), None);
        assert_eq!(w.counts.get(&2), Some(&2));
    }
}
