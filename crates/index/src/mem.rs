//! Large-allocation helpers: ask Linux for transparent huge pages on the
//! big arrays (codes, postings, offsets) before they are first touched.
//!
//! MIH search is a stream of random accesses into ~100 MB–1 GB of arrays;
//! with 4 KiB pages nearly every access also misses the TLB. Backing the
//! arrays with 2 MiB pages (when the kernel's THP mode is `madvise` or
//! `always`) removes most page walks. This is purely advisory: on other
//! systems, or if the kernel refuses, nothing changes but speed.

/// Advises huge pages for the whole capacity of `v` (call before filling).
pub(crate) fn advise_huge<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < (4 << 20) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let aligned = start.div_ceil(HUGE) * HUGE;
        let end = (start + bytes) / HUGE * HUGE;
        if end > aligned {
            // SAFETY: the range lies inside this Vec's allocation; MADV_HUGEPAGE
            // only changes how the kernel backs it, never its contents.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

/// `Vec::with_capacity(n)` with huge pages advised.
pub(crate) fn huge_with_capacity<T>(n: usize) -> Vec<T> {
    let v = Vec::with_capacity(n);
    advise_huge(&v);
    v
}

/// Makes room for `additional` more elements, growing by doubling into a
/// fresh huge-page-advised allocation (a plain `Vec` growth would lose the
/// advice on every reallocation).
pub(crate) fn reserve_huge<T: Copy>(v: &mut Vec<T>, additional: usize) {
    let needed = v.len().saturating_add(additional);
    if v.capacity() >= needed {
        return;
    }
    let mut grown = huge_with_capacity(needed.max(v.capacity().saturating_mul(2)));
    grown.extend_from_slice(v);
    *v = grown;
}

/// A zero-filled `Vec` of `n` elements, with huge pages advised before the
/// pages are touched.
pub(crate) fn huge_zeroed<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = huge_with_capacity(n);
    v.resize(n, T::default());
    v
}

/// Fallible variant for snapshot loading (sizes come from the file).
pub(crate) fn try_huge_with_capacity<T>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    advise_huge(&v);
    Some(v)
}
