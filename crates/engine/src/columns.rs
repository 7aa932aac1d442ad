//! Compact columnar storage of the matching state's per-item metadata.
//!
//! The state of ten million bank items used to be hash maps of structs
//! (labels, value strings, per-item vectors): ~350 bytes per item on top of
//! the PDQ index. Here every content item and every signal is a **dense
//! slot** (`u32`) and its metadata lives in parallel arrays indexed by it:
//!
//! * content: row id (`i64`), bank slot (`u32`), flags (`u8`: live,
//!   enabled, quarantined), first signal slot (`u32`) — 17 bytes;
//! * signals: row id (`i64`), content slot (`u32`), next signal of the same
//!   content item (`u32`, a singly linked chain; free slots chain the free
//!   list), signal type code (`u8`) — 17 bytes.
//!
//! Indexes (PDQ, text, vPDQ, exact) are keyed by **signal slot**, so a hit
//! reaches its content and bank by two array reads. Labels, notes and the
//! stored signal values are *not* in memory: they stay in the store and are
//! read only for the hits a lookup reports (`Engine::hydrate`).
//!
//! Finding a content slot by row id (needed only when applying a change)
//! is a binary search: content slots are assigned in ascending id order at
//! load, and a later id appends to the sorted run. An id that arrives out
//! of order (two writers committing in the opposite order of their ids)
//! goes to a small overflow map; [`ContentColumns::compact`] re-sorts when
//! that map, or the number of deleted slots, grows large. Deleted signal
//! slots are reused through the free list, so the signal arrays never
//! outgrow the peak number of live signals.

use std::collections::HashMap;

use echotrace_signals::signal::SignalType;

/// A dense index into the columns.
pub(crate) type Slot = u32;
/// "No slot" (end of a chain, free signal slot's content).
pub(crate) const NO_SLOT: Slot = Slot::MAX;

/// Content flag: the slot holds a content item (not deleted).
pub(crate) const LIVE: u8 = 1;
/// Content flag: the item is enabled.
pub(crate) const ENABLED: u8 = 2;
/// Content flag: the item is quarantined.
pub(crate) const QUARANTINED: u8 = 4;
const ALL_FLAGS: u8 = LIVE | ENABLED | QUARANTINED;

/// The stable one-byte code of a signal type in the columns (and in
/// snapshots, which also carry the code → wire-name table).
pub(crate) fn type_code(t: SignalType) -> u8 {
    SignalType::ALL
        .iter()
        .position(|x| *x == t)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(u8::MAX)
}

/// The signal type of a code from [`type_code`].
pub(crate) fn type_of_code(code: u8) -> Option<SignalType> {
    SignalType::ALL.get(usize::from(code)).copied()
}

/// Per-content-item columns (module doc).
///
/// `ids` is non-decreasing so a row id is found by binary search. A slot
/// whose id arrived out of order holds a copy of its predecessor's id there
/// (keeping the order) and its real id in `overflow` / `overflow_ids`; the
/// first slot of a run of equal ids is always the real one.
#[derive(Debug, Default)]
pub(crate) struct ContentColumns {
    pub(crate) ids: Vec<i64>,
    pub(crate) bank: Vec<Slot>,
    pub(crate) flags: Vec<u8>,
    pub(crate) first_signal: Vec<Slot>,
    /// Out-of-order ids → their slots.
    pub(crate) overflow: HashMap<i64, Slot>,
    /// The same, slot → real id.
    pub(crate) overflow_ids: HashMap<Slot, i64>,
    /// Live (not deleted) slots.
    pub(crate) live: usize,
}

impl ContentColumns {
    /// The row id of a slot.
    pub(crate) fn id_of(&self, slot: Slot) -> i64 {
        if !self.overflow_ids.is_empty() {
            if let Some(id) = self.overflow_ids.get(&slot) {
                return *id;
            }
        }
        self.ids.get(slot as usize).copied().unwrap_or(0)
    }

    /// The slot of content row `id` (live or deleted), if it has one.
    pub(crate) fn slot_of(&self, id: i64) -> Option<Slot> {
        let p = self.ids.partition_point(|x| *x < id);
        if self.ids.get(p) == Some(&id) {
            let slot = Slot::try_from(p).ok()?;
            if !self.overflow_ids.contains_key(&slot) {
                return Some(slot);
            }
        }
        self.overflow.get(&id).copied()
    }

    /// The slot of `id`, appending a (not yet live) slot when it has none.
    pub(crate) fn slot_for(&mut self, id: i64) -> Slot {
        if let Some(s) = self.slot_of(id) {
            return s;
        }
        let slot = Slot::try_from(self.ids.len()).unwrap_or(NO_SLOT);
        match self.ids.last().copied() {
            Some(last) if last >= id => {
                self.ids.push(last);
                self.overflow.insert(id, slot);
                self.overflow_ids.insert(slot, id);
            }
            _ => self.ids.push(id),
        }
        self.bank.push(NO_SLOT);
        self.flags.push(0);
        self.first_signal.push(NO_SLOT);
        slot
    }

    pub(crate) fn is_live(&self, slot: Slot) -> bool {
        self.flags.get(slot as usize).is_some_and(|f| f & LIVE != 0)
    }

    /// Set the item's bank and flags, making the slot live.
    pub(crate) fn set(&mut self, slot: Slot, bank: Slot, enabled: bool, quarantined: bool) {
        let i = slot as usize;
        let (Some(b), Some(f)) = (self.bank.get_mut(i), self.flags.get_mut(i)) else {
            return;
        };
        if *f & LIVE == 0 {
            self.live += 1;
        }
        *b = bank;
        *f = LIVE | if enabled { ENABLED } else { 0 } | if quarantined { QUARANTINED } else { 0 };
    }

    /// Mark a slot deleted (its signals must have been released).
    pub(crate) fn kill(&mut self, slot: Slot) {
        let i = slot as usize;
        if let Some(f) = self.flags.get_mut(i) {
            if *f & LIVE != 0 {
                self.live = self.live.saturating_sub(1);
            }
            *f = 0;
        }
        if let Some(s) = self.first_signal.get_mut(i) {
            *s = NO_SLOT;
        }
    }

    /// Whether [`ContentColumns::compact`] is worth running: many deleted
    /// slots, or many ids that arrived out of order.
    pub(crate) fn needs_compaction(&self) -> bool {
        let n = self.ids.len();
        let dead = n - self.live;
        dead > 65_536.max(n / 4) || self.overflow.len() > 65_536.max(n / 16)
    }

    /// Drop deleted slots and re-sort by id. Returns the map old slot → new
    /// slot (`NO_SLOT` for dropped ones) so references can be rewritten.
    pub(crate) fn compact(&mut self) -> Vec<Slot> {
        let mut order: Vec<(i64, Slot)> = (0..self.ids.len())
            .filter(|&i| self.flags[i] & LIVE != 0)
            .filter_map(|i| Slot::try_from(i).ok())
            .map(|s| (self.id_of(s), s))
            .collect();
        order.sort_unstable();
        let mut remap = vec![NO_SLOT; self.ids.len()];
        let mut next = ContentColumns {
            ids: Vec::with_capacity(order.len()),
            bank: Vec::with_capacity(order.len()),
            flags: Vec::with_capacity(order.len()),
            first_signal: Vec::with_capacity(order.len()),
            overflow: HashMap::new(),
            overflow_ids: HashMap::new(),
            live: order.len(),
        };
        for (new, &(id, old)) in order.iter().enumerate() {
            let o = old as usize;
            remap[o] = Slot::try_from(new).unwrap_or(NO_SLOT);
            next.ids.push(id);
            next.bank.push(self.bank[o]);
            next.flags.push(self.flags[o]);
            next.first_signal.push(self.first_signal[o]);
        }
        *self = next;
        remap
    }

    /// Structural check of columns read from a snapshot.
    pub(crate) fn validate(&self, banks: usize, signals: usize) -> Result<(), String> {
        let n = self.ids.len();
        if self.bank.len() != n || self.flags.len() != n || self.first_signal.len() != n {
            return Err("content columns differ in length".into());
        }
        if !self.ids.windows(2).all(|w| w[0] <= w[1]) {
            return Err("content ids are not sorted".into());
        }
        if self.overflow.len() != self.overflow_ids.len() {
            return Err("content overflow maps differ".into());
        }
        for (&id, &slot) in &self.overflow {
            let s = slot as usize;
            if s == 0 || s >= n || self.overflow_ids.get(&slot) != Some(&id) {
                return Err(format!(
                    "content overflow entry {id} → {slot} is inconsistent"
                ));
            }
            if self.ids[s] != self.ids[s - 1] || id > self.ids[s] {
                return Err(format!("content overflow slot {slot} breaks the order"));
            }
        }
        let mut live = 0;
        for i in 0..n {
            let f = self.flags[i];
            if f & !ALL_FLAGS != 0 {
                return Err(format!("content slot {i} has unknown flags {f:#x}"));
            }
            if i > 0 && self.ids[i] == self.ids[i - 1] {
                let slot = Slot::try_from(i).unwrap_or(NO_SLOT);
                if !self.overflow_ids.contains_key(&slot) {
                    return Err(format!("content slot {i} repeats an id"));
                }
            }
            if f & LIVE != 0 {
                live += 1;
                if self.bank[i] as usize >= banks {
                    return Err(format!("content slot {i} names bank slot {}", self.bank[i]));
                }
            } else if f != 0 || self.first_signal[i] != NO_SLOT {
                return Err(format!("deleted content slot {i} still has state"));
            }
            let fs = self.first_signal[i];
            if fs != NO_SLOT && fs as usize >= signals {
                return Err(format!("content slot {i} points at signal slot {fs}"));
            }
        }
        if live != self.live {
            return Err(format!(
                "{live} live content slots, header says {}",
                self.live
            ));
        }
        Ok(())
    }
}

/// Per-signal columns (module doc).
#[derive(Debug)]
pub(crate) struct SignalColumns {
    pub(crate) ids: Vec<i64>,
    /// `NO_SLOT` = free slot.
    pub(crate) content: Vec<Slot>,
    /// Next signal of the same content item, or the next free slot.
    pub(crate) next: Vec<Slot>,
    pub(crate) kind: Vec<u8>,
    /// Head of the free list.
    pub(crate) free: Slot,
    pub(crate) live: usize,
}

impl Default for SignalColumns {
    fn default() -> Self {
        SignalColumns {
            ids: Vec::new(),
            content: Vec::new(),
            next: Vec::new(),
            kind: Vec::new(),
            free: NO_SLOT,
            live: 0,
        }
    }
}

impl SignalColumns {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Take a slot for signal row `id` of type `t`, owned by content slot
    /// `content` (not linked into its chain: see [`crate::state`]).
    pub(crate) fn alloc(&mut self, id: i64, content: Slot, t: SignalType) -> Slot {
        self.live += 1;
        let code = type_code(t);
        if self.free != NO_SLOT {
            let s = self.free;
            let i = s as usize;
            self.free = self.next[i];
            self.ids[i] = id;
            self.content[i] = content;
            self.next[i] = NO_SLOT;
            self.kind[i] = code;
            return s;
        }
        let s = Slot::try_from(self.ids.len()).unwrap_or(NO_SLOT);
        self.ids.push(id);
        self.content.push(content);
        self.next.push(NO_SLOT);
        self.kind.push(code);
        s
    }

    /// Return a slot to the free list.
    pub(crate) fn release(&mut self, slot: Slot) {
        let i = slot as usize;
        if self.content.get(i).is_none_or(|c| *c == NO_SLOT) {
            return;
        }
        self.live = self.live.saturating_sub(1);
        self.content[i] = NO_SLOT;
        self.ids[i] = 0;
        self.kind[i] = u8::MAX;
        self.next[i] = self.free;
        self.free = slot;
    }

    pub(crate) fn signal_type(&self, slot: Slot) -> Option<SignalType> {
        self.kind.get(slot as usize).and_then(|c| type_of_code(*c))
    }

    /// Structural check of columns read from a snapshot against the content
    /// columns: every live signal is reached exactly once, from the chain
    /// of the content item it names; every free slot exactly once from the
    /// free list.
    pub(crate) fn validate(&self, content: &ContentColumns) -> Result<(), String> {
        let n = self.ids.len();
        if self.content.len() != n || self.next.len() != n || self.kind.len() != n {
            return Err("signal columns differ in length".into());
        }
        let mut seen = vec![false; n];
        let visit = |s: Slot, owner: Slot, seen: &mut Vec<bool>| -> Result<(), String> {
            let i = s as usize;
            match seen.get_mut(i) {
                None => return Err(format!("signal chain reaches slot {s} of {n}")),
                Some(true) => return Err(format!("signal slot {s} is reached twice")),
                Some(v) => *v = true,
            }
            if self.content[i] != owner {
                return Err(format!("signal slot {s} is in the wrong chain"));
            }
            Ok(())
        };
        let mut live = 0;
        for (c, &first) in content.first_signal.iter().enumerate() {
            let owner = Slot::try_from(c).unwrap_or(NO_SLOT);
            let mut s = first;
            while s != NO_SLOT {
                visit(s, owner, &mut seen)?;
                if type_of_code(self.kind[s as usize]).is_none() {
                    return Err(format!("signal slot {s} has an unknown type"));
                }
                live += 1;
                s = self.next[s as usize];
            }
        }
        let mut s = self.free;
        while s != NO_SLOT {
            visit(s, NO_SLOT, &mut seen)?;
            s = self.next[s as usize];
        }
        if let Some(i) = seen.iter().position(|v| !v) {
            return Err(format!("signal slot {i} is neither in a chain nor free"));
        }
        if live != self.live {
            return Err(format!(
                "{live} live signal slots, header says {}",
                self.live
            ));
        }
        Ok(())
    }
}

/// Exact-match index (md5, sha256, url, url_sha256): a 64-bit fingerprint
/// of (type, value) → signal slots, and slot → fingerprint for removals.
/// Values are not kept in memory; a hit is confirmed against the stored
/// value when the lookup reads it for its answer, so a fingerprint
/// collision can never become a match.
#[derive(Debug, Default)]
pub(crate) struct ExactIndex {
    first: HashMap<u64, Slot>,
    /// Further slots of fingerprints held by several signals.
    more: HashMap<u64, Vec<Slot>>,
    by_slot: HashMap<Slot, u64>,
}

/// FNV-1a over the type's wire name, a separator and the value, finished
/// with a 64-bit mixer. Stable across builds and platforms (snapshots keep
/// fingerprints).
pub(crate) fn fingerprint(t: SignalType, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in t
        .as_str()
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(value.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl ExactIndex {
    pub(crate) fn len(&self) -> usize {
        self.by_slot.len()
    }

    pub(crate) fn insert(&mut self, fp: u64, slot: Slot) {
        if self.by_slot.contains_key(&slot) {
            self.remove(slot);
        }
        self.by_slot.insert(slot, fp);
        match self.first.entry(fp) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(fp).or_default().push(slot);
            }
        }
    }

    /// Remove a slot (no-op if it is not an exact signal).
    pub(crate) fn remove(&mut self, slot: Slot) {
        let Some(fp) = self.by_slot.remove(&slot) else {
            return;
        };
        if self.first.get(&fp) == Some(&slot) {
            match self.more.get_mut(&fp).and_then(Vec::pop) {
                Some(next) => {
                    self.first.insert(fp, next);
                }
                None => {
                    self.first.remove(&fp);
                }
            }
        } else if let Some(list) = self.more.get_mut(&fp) {
            if let Some(p) = list.iter().position(|s| *s == slot) {
                list.swap_remove(p);
            }
        }
        if self.more.get(&fp).is_some_and(Vec::is_empty) {
            self.more.remove(&fp);
        }
    }

    /// Every slot under `fp`.
    pub(crate) fn get(&self, fp: u64, out: &mut Vec<Slot>) {
        if let Some(s) = self.first.get(&fp) {
            out.push(*s);
            if let Some(more) = self.more.get(&fp) {
                out.extend_from_slice(more);
            }
        }
    }

    /// Every (slot, fingerprint) pair.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Slot, u64)> + '_ {
        self.by_slot.iter().map(|(s, f)| (*s, *f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_slots_find_ids_in_and_out_of_order_and_compact() {
        let mut c = ContentColumns::default();
        for id in [10, 20, 30] {
            let s = c.slot_for(id);
            c.set(s, 0, true, false);
        }
        let late = c.slot_for(25); // out of order
        c.set(late, 0, true, false);
        let after = c.slot_for(40); // back in order
        c.set(after, 0, false, true);
        assert_eq!(c.ids, vec![10, 20, 30, 30, 40]);
        assert_eq!(c.overflow.len(), 1);
        assert_eq!(c.slot_of(25), Some(3));
        assert_eq!(c.slot_of(30), Some(2));
        assert_eq!(c.id_of(3), 25);
        assert_eq!(c.slot_of(40), Some(4));
        assert_eq!(c.slot_of(20), Some(1));
        assert_eq!(c.slot_of(21), None);
        c.kill(1);
        assert_eq!(c.live, 4);
        let remap = c.compact();
        assert_eq!(remap, vec![0, NO_SLOT, 2, 1, 3]);
        assert_eq!(c.ids, vec![10, 25, 30, 40]);
        assert!(c.overflow.is_empty());
        assert_eq!(c.flags[3], LIVE | QUARANTINED);
        assert!(c.validate(1, 0).is_ok());
    }

    #[test]
    fn signal_slots_are_reused_and_validated() {
        let mut c = ContentColumns::default();
        let cs = c.slot_for(1);
        c.set(cs, 0, true, false);
        let mut s = SignalColumns::default();
        let a = s.alloc(100, cs, SignalType::Md5);
        let b = s.alloc(101, cs, SignalType::Pdq);
        s.next[a as usize] = b;
        c.first_signal[cs as usize] = a;
        assert!(s.validate(&c).is_ok());
        // Unlink and free `b`: the slot is reused by the next alloc.
        s.next[a as usize] = NO_SLOT;
        s.release(b);
        assert!(s.validate(&c).is_ok());
        let again = s.alloc(102, cs, SignalType::Sha256);
        assert_eq!(again, b);
        // Allocated but not linked: refused.
        assert!(s.validate(&c).is_err());
    }

    #[test]
    fn exact_index_is_a_multimap() {
        let mut x = ExactIndex::default();
        let fp = fingerprint(SignalType::Md5, "abc");
        assert_ne!(fp, fingerprint(SignalType::Sha256, "abc"));
        x.insert(fp, 1);
        x.insert(fp, 2);
        x.insert(fp, 3);
        let mut out = Vec::new();
        x.get(fp, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![1, 2, 3]);
        x.remove(1);
        x.remove(3);
        out.clear();
        x.get(fp, &mut out);
        assert_eq!(out, vec![2]);
        x.remove(2);
        x.remove(2);
        assert!(x.first.is_empty() && x.more.is_empty());
        assert_eq!(x.len(), 0);
    }
}
