//! The process's allocator: glibc's by default, mimalloc for batch imports.
//!
//! A Telegram or WARC import allocates and frees many small values (rows,
//! signals, JSON) across its reader, hashing and database threads. glibc's
//! arenas spent ~11 % of such an import's CPU in `malloc`/`free` and their
//! locks. mimalloc for Rust's blocks and a less eager glibc for SQLite's
//! own take ~9 % off the whole import (docs/BENCHMARKS.md, "Collector",
//! sessions 17–18).
//!
//! mimalloc keeps freed memory for a while before returning it to the
//! system, and under a flood of large request bodies that retention raised
//! the server's peak RSS past the bound `cli_blackbox::body_flood_keeps_rss_bounded`
//! guards (+185–215 MiB over idle against +160; glibc +88). So the choice is
//! scoped: a long-running process that takes bytes from others (`serve`, the
//! crawler, the liveness checker, the PDF child) keeps glibc's prompt
//! release, and only the offline imports, whose memory is already bounded by
//! their batches, switch to mimalloc with [`for_batch_import`].
//!
//! One allocator value serves both. Until the switch every block comes from
//! glibc. After it, new blocks come from mimalloc, and a free or a resize
//! asks mimalloc whether it owns the block (`mi_is_in_heap_region`, a
//! page-map lookup), so the blocks glibc handed out before the switch (the
//! parsed arguments, the runtime's first structures) go back to glibc. The
//! switch is one-way and happens in `main` before the command starts its
//! threads. (Even a thread that misses it is safe: a thread handed a
//! mimalloc block got it through some synchronisation after the switch, so
//! it sees the switch too.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mi;

/// The dispatching allocator installed as the binary's global allocator.
pub struct Allocator {
    mimalloc: AtomicBool,
}

#[global_allocator]
static GLOBAL: Allocator = Allocator::new();

/// The batch imports' memory policy (see the module docs): from now on the
/// process's new Rust blocks come from mimalloc, and glibc, which still
/// serves SQLite's own `malloc` calls (its page cache and statement
/// journals), keeps up to 256 MiB of freed heap and grows in 64 MiB steps
/// instead of trimming and re-faulting its heaps at every transaction (5 %
/// of a 100,000-message import's CPU went to glibc's `sysmalloc` and its page
/// faults). An operator's own `MALLOC_TRIM_THRESHOLD_` / `MALLOC_TOP_PAD_`
/// win.
pub fn for_batch_import() {
    GLOBAL.switch_to_mimalloc();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (env, param, value) in [
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 256 << 20),
        ("MALLOC_TOP_PAD_", libc::M_TOP_PAD, 64 << 20),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: mallopt only sets a tunable; any value is accepted.
            unsafe { libc::mallopt(param, value) };
        }
    }
}

impl Allocator {
    const fn new() -> Self {
        Allocator {
            mimalloc: AtomicBool::new(false),
        }
    }

    fn switch_to_mimalloc(&self) {
        self.mimalloc.store(true, Ordering::Relaxed);
    }

    #[inline]
    fn mimalloc(&self) -> bool {
        self.mimalloc.load(Ordering::Relaxed)
    }

    /// Whether mimalloc handed out `ptr`. Only asked after the switch;
    /// before it mimalloc has handed out nothing.
    #[inline]
    fn owned_by_mimalloc(&self, ptr: *mut u8) -> bool {
        // SAFETY: a page-map lookup, defined for any pointer value.
        self.mimalloc() && unsafe { mi::mi_is_in_heap_region(ptr as *const c_void) }
    }
}

// SAFETY: every block is freed and resized by the allocator that made it:
// before the switch that is always glibc; after it, ownership is looked up
// in mimalloc's page map, which answers false for any pointer it did not
// hand out.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.mimalloc() {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.mimalloc() {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owned_by_mimalloc(ptr) {
            unsafe { mi::mi_free(ptr as *mut c_void) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owned_by_mimalloc(ptr) {
            return unsafe {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            };
        }
        if !self.mimalloc() {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A glibc block grown or shrunk after the switch moves to mimalloc.
        let new = unsafe { mi::mi_malloc_aligned(new_size, layout.align()) as *mut u8 };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                System.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks made before the switch are freed and resized by glibc, blocks
    /// made after it by mimalloc, and both keep their contents. (This
    /// drives its own `Allocator` value; the process's stays unswitched.)
    #[test]
    fn blocks_go_back_to_the_allocator_that_made_them() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(64, 8).expect("layout");
        unsafe {
            let before = a.alloc(layout);
            assert!(!before.is_null());
            before.write_bytes(7, 64);
            assert!(!mi::mi_is_in_heap_region(before as *const c_void));

            a.switch_to_mimalloc();
            let after = a.alloc(layout);
            assert!(mi::mi_is_in_heap_region(after as *const c_void));
            after.write_bytes(9, 64);

            // A glibc block resized after the switch moves to mimalloc.
            let moved = a.realloc(before, layout, 4096);
            assert!(mi::mi_is_in_heap_region(moved as *const c_void));
            assert!((0..64).all(|i| *moved.add(i) == 7));
            let grown = a.realloc(after, layout, 1 << 20);
            assert!((0..64).all(|i| *grown.add(i) == 9));

            let zeroed = a.alloc_zeroed(Layout::from_size_align(256, 64).expect("layout"));
            assert!((zeroed as usize).is_multiple_of(64) && (0..256).all(|i| *zeroed.add(i) == 0));

            a.dealloc(moved, Layout::from_size_align(4096, 8).expect("layout"));
            a.dealloc(grown, Layout::from_size_align(1 << 20, 8).expect("layout"));
            a.dealloc(zeroed, Layout::from_size_align(256, 64).expect("layout"));
        }
    }
}
