//! [`FlatIndex`]: exact linear scan over contiguous codes.
//!
//! Codes live in one `Vec` of 32-byte-aligned entries with a parallel `Vec`
//! of ids, so a search is one sequential pass over `32 × N` bytes with the
//! best [`Kernel`] for the CPU. A `HashMap` from id to position supports
//! replace-on-reinsert and `O(1)` removal (swap-remove), so positions are not
//! stable and results come back in storage order.

use std::collections::HashMap;

use crate::kernel::{scan_multi, Kernel};
use crate::{ACode, Code256, Hit, IndexError};

/// Exact brute-force index. See the module docs.
#[derive(Clone, Debug)]
pub struct FlatIndex {
    codes: Vec<ACode>,
    ids: Vec<u64>,
    position: HashMap<u64, u32>,
    kernel: Kernel,
}

impl Default for FlatIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl FlatIndex {
    /// An empty index using the best kernel for this CPU.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty index with room for `capacity` codes.
    pub fn with_capacity(capacity: usize) -> Self {
        FlatIndex {
            codes: Vec::with_capacity(capacity),
            ids: Vec::with_capacity(capacity),
            position: HashMap::with_capacity(capacity),
            kernel: Kernel::detect(),
        }
    }

    /// Forces a scan kernel (for testing and benchmarking).
    pub fn set_kernel(&mut self, kernel: Kernel) -> Result<(), IndexError> {
        if !kernel.is_supported() {
            return Err(IndexError::UnsupportedKernel(kernel));
        }
        self.kernel = kernel;
        Ok(())
    }

    /// The kernel searches use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Number of stored codes.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Inserts `code` under `id`. If `id` is already present its code is
    /// replaced (there is never more than one code per id). Returns whether
    /// the id was already present.
    ///
    /// # Panics
    /// Never in practice: more than `u32::MAX` codes would overflow positions,
    /// use [`FlatIndex::try_insert`] to get an error instead.
    pub fn insert(&mut self, id: u64, code: Code256) -> bool {
        // A flat index of 2^32 codes would need 128 GiB; saturate instead of
        // panicking by refusing silently is worse, so report via try_insert.
        self.try_insert(id, code).unwrap_or(false)
    }

    /// Like [`FlatIndex::insert`] but reports a full index as an error.
    pub fn try_insert(&mut self, id: u64, code: Code256) -> Result<bool, IndexError> {
        if let Some(&pos) = self.position.get(&id) {
            if let Some(slot) = self.codes.get_mut(pos as usize) {
                slot.0 = code;
            }
            return Ok(true);
        }
        let pos = u32::try_from(self.codes.len()).map_err(|_| IndexError::Capacity {
            max: u32::MAX as usize,
        })?;
        self.codes.push(ACode(code));
        self.ids.push(id);
        self.position.insert(id, pos);
        Ok(false)
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(pos) = self.position.remove(&id) else {
            return false;
        };
        let pos = pos as usize;
        self.codes.swap_remove(pos);
        self.ids.swap_remove(pos);
        if let Some(&moved) = self.ids.get(pos) {
            self.position.insert(moved, pos as u32);
        }
        true
    }

    /// The code stored under `id`, if any.
    pub fn get(&self, id: u64) -> Option<Code256> {
        let pos = *self.position.get(&id)? as usize;
        self.codes.get(pos).map(|c| c.0)
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.position.contains_key(&id)
    }

    /// Iterates `(id, code)` in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Code256)> + '_ {
        self.ids.iter().copied().zip(self.codes.iter().map(|c| c.0))
    }

    /// Appends every stored code within `radius` (inclusive) of `query` to
    /// `out`, in storage order.
    pub fn search(&self, query: &Code256, radius: u32, out: &mut Vec<Hit>) {
        self.search_multi(std::slice::from_ref(query), radius, out)
    }

    /// Appends every stored code whose *minimum* distance to any of `needles`
    /// is within `radius`, once per id with that minimum distance. All
    /// needles are checked in a single pass over memory (use it for the 8
    /// dihedral variants of an image).
    pub fn search_multi(&self, needles: &[Code256], radius: u32, out: &mut Vec<Hit>) {
        let ids = &self.ids;
        scan_multi(self.kernel, &self.codes, needles, radius, &mut |pos, d| {
            if let Some(&id) = ids.get(pos) {
                out.push(Hit { id, distance: d });
            }
        });
    }

    /// Runs [`FlatIndex::search`] for each query; `out` is resized to
    /// `queries.len()` and `out[i]` holds exactly the hits of `queries[i]`.
    pub fn search_batch(&self, queries: &[Code256], radius: u32, out: &mut Vec<Vec<Hit>>) {
        out.resize_with(queries.len(), Vec::new);
        for (q, hits) in queries.iter().zip(out.iter_mut()) {
            hits.clear();
            self.search(q, radius, hits);
        }
    }

    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.position.get(&id).map(|&p| p as usize)
    }

    pub(crate) fn codes_raw(&self) -> &[ACode] {
        &self.codes
    }

    pub(crate) fn ids_raw(&self) -> &[u64] {
        &self.ids
    }

    /// Internal scan with a caller-provided filter/emitter over positions.
    pub(crate) fn scan_positions<F: FnMut(usize, u32)>(
        &self,
        needles: &[Code256],
        radius: u32,
        emit: &mut F,
    ) {
        scan_multi(self.kernel, &self.codes, needles, radius, emit)
    }
}
